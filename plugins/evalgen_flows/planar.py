"""Planar flows (Rezende & Mohamed 2015) with a numerical inverse.

Direction. Each planar layer (`PlanarStack`) is defined in the *normalizing* direction, data -> base:

    z = x + u_hat * tanh(w^T x + b),        log|det dz/dx| = log(1 + (w . u_hat) tanh'(w^T x + b)),

so `log_prob` (and hence maximum-likelihood training) is closed form, exact, differentiable and
costs one pass. Sampling needs the inverse base -> data, which planar maps do not have in closed
form; `PlanarStack.inverse` computes it numerically (see `solve_planar_inverse`), to machine
precision, in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DEFAULT_ALPHA, ElementwiseAffine, Flow, LogitTransform, Transform

#: ``w . u_hat`` is kept above ``-1 + WU_MARGIN`` so that ``1 + (w . u_hat) tanh'`` stays
#: bounded away from 0 even after floating-point rounding.
WU_MARGIN = 1e-4


def reparameterize_u(u: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rezende & Mohamed's (2015, appendix A.1) reparameterization of ``u``.

    ``u_hat = u + (m(w.u) - w.u) w / |w|^2`` with ``m(a) = -1 + margin + softplus(a)``, so that
    ``w . u_hat = m(w . u) > -1`` for any raw ``u`` and ``w`` (for ``w = 0``: ``u_hat = u`` and
    ``w . u_hat = 0``). This makes the layer invertible.

    The value ``m`` is returned too: it is ``w . u_hat`` in exact arithmetic and, unlike the
    dot product recomputed in floating point (whose rounding error grows like
    ``eps |w| |u|``), it is > -1 for every input, so the layer uses it for its log-determinant
    and its inverse.

    Args:
        u, w: (..., D) raw parameters (a stack of layers along the leading dimensions).

    Returns:
        ``u_hat`` (..., D) and ``w . u_hat`` (...).
    """
    wu = (w * u).sum(-1)
    m = -1.0 + WU_MARGIN + F.softplus(wu)
    norm2 = (w * w).sum(-1)
    safe = norm2 > 0
    k = torch.where(safe, (m - wu) / torch.where(safe, norm2, torch.ones_like(norm2)), torch.zeros_like(m))
    return u + k.unsqueeze(-1) * w, torch.where(safe, m, torch.zeros_like(m))


def solve_planar_inverse(c: torch.Tensor, wu: torch.Tensor, b: torch.Tensor,
                         max_iter: int = 200) -> torch.Tensor:
    """Solve ``alpha + wu * tanh(alpha + b) = c`` for ``alpha``, elementwise.

    The left side is strictly increasing in ``alpha`` when ``wu > -1`` (its derivative is
    ``1 + wu * tanh'(alpha + b) >= min(1, 1 + wu) > 0``), and since ``|tanh| <= 1`` the root lies in
    the bracket ``[c - |wu|, c + |wu|]``. We run Newton's method safeguarded by bisection
    (``rtsafe``: a Newton step that leaves the current bracket, or that does not at least halve
    the step before last, is replaced by a bisection step), in float64, vectorized over ``c``,
    until every step or bracket is at the level of float64 round-off. Typical residuals are a
    few ulp of ``max(|c|, |wu|)``.

    Args:
        c: (N,) right-hand sides ``w^T z``.
        wu: scalar ``w . u_hat`` (> -1).
        b: scalar bias.

    Returns:
        (N,) float64 ``alpha = w^T x``.
    """
    c = c.double()
    wu = wu.double()
    b = b.double()
    lo = c - wu.abs()
    hi = c + wu.abs()
    alpha = c.clone()
    dx = hi - lo
    dx_old = dx.clone()
    for _ in range(max_iter):
        t = torch.tanh(alpha + b)
        g = alpha + wu * t - c
        gp = 1.0 + wu * (1.0 - t * t)
        lo = torch.where(g < 0, alpha, lo)
        hi = torch.where(g > 0, alpha, hi)
        newton = alpha - g / gp
        bisect = (newton <= lo) | (newton >= hi) | ((2.0 * g).abs() > (dx_old * gp).abs())
        new = torch.where(bisect, 0.5 * (lo + hi), newton)
        new = torch.where(g == 0, alpha, new)
        dx_old = dx
        dx = new - alpha
        alpha = new
        tol = 4e-16 * (1.0 + alpha.abs())
        if bool(((dx.abs() <= tol) | (hi - lo <= tol)).all()):
            break
    return alpha


class PlanarStack(Transform):
    """K planar layers, each preceded by a learned elementwise affine map (data -> base).

    Layer ``k`` maps ``x -> y = x * s_k + t_k`` (``s_k = exp(-log_scale_k)``, an exact
    diagonal map) and then ``y -> y + u_hat_k tanh(w_k^T y + b_k)``, the planar map of
    Rezende & Mohamed (2015) run in the normalizing direction. The K layers' parameters are
    stored stacked, (K, D), so the constraint and the affine scales are computed once per call
    and each layer costs four fused tensor ops; ``K = 1`` with zero affine parameters is a
    single plain planar layer.

    Args:
        dim: D.
        num_layers: K.

    Shapes: ``forward`` (N, D) -> ((N, D), (N,)); ``inverse`` (N, D) -> (N, D).
    """

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(num_layers, dim) / math.sqrt(dim))
        self.u = nn.Parameter(torch.randn(num_layers, dim) * 0.01)
        self.b = nn.Parameter(torch.zeros(num_layers))
        self.log_scale = nn.Parameter(torch.zeros(num_layers, dim))
        self.shift = nn.Parameter(torch.zeros(num_layers, dim))

    def u_hat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The constrained ``u_hat`` (K, D) and ``w . u_hat`` (K,) (> -1), see `reparameterize_u`."""
        return reparameterize_u(self.u, self.w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, wu = self.u_hat()
        scale = torch.exp(-self.log_scale)
        hs = []
        # unbind once: indexing a stacked parameter per layer would give each layer's backward a
        # full (K, D) zero gradient to add, K^2 D work and 4K extra ops per step
        layers = zip(self.shift.unbind(0), scale.unbind(0), self.b.unbind(0), self.w.unbind(0), u.unbind(0))
        for shift, scale_k, b, w, u_k in layers:
            x = torch.addcmul(shift, x, scale_k)
            h = torch.tanh(torch.addmv(b, x, w))
            x = torch.addr(x, h, u_k)
            hs.append(h)
        h = torch.stack(hs, -1)  # (N, K)
        ladj = torch.log1p(wu * (1.0 - h * h)).sum(-1) - self.log_scale.sum()
        return x, ladj

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Numerical inverse, last layer first: for each planar map solve for ``alpha = w^T y``
        along ``w`` (`solve_planar_inverse`), then ``y = z - u_hat tanh(alpha + b)``; then undo
        the affine map exactly. Computed in float64, returned in ``z``'s dtype."""
        u, wu = reparameterize_u(self.u.double(), self.w.double())
        w, b = self.w.double(), self.b.double()
        scale, shift = torch.exp(-self.log_scale.double()), self.shift.double()
        x = z.double()
        for k in reversed(range(w.shape[0])):
            alpha = solve_planar_inverse(x @ w[k], wu[k], b[k])
            x = x - torch.tanh(alpha + b[k]).unsqueeze(-1) * u[k]
            x = (x - shift[k]) / scale[k]
        return x.to(z.dtype)


class PlanarFlow(Flow):
    """Planar flow (Rezende & Mohamed 2015) as a density model on R^D or [0, 1)^D.

    Layers, data side first: [logit preprocessing, for dequantized data], then ``layers`` blocks
    of (learned elementwise affine, planar layer) (`PlanarStack`), then a learned elementwise
    affine, which is the same as a learned diagonal Gaussian base. The elementwise affine maps are triangular
    (diagonal) and exact; they only let each planar layer act at its own scale per dimension
    (a planar map alone can only bend the density along one direction per layer), which is
    needed to be competitive in 64-D and above. The model is a planar flow at heart: all the
    dependence between dimensions comes from the planar layers.

    Planar layers run in the normalizing direction (closed-form ``log_prob``); sampling inverts
    each layer numerically (safeguarded Newton in float64, see `solve_planar_inverse`).

    Args:
        event_shape: per-example shape.
        layers: number of planar layers K.
        dequantized: data in [0, 1)^D (adds the logit preprocessing).
        alpha: logit-preprocessing constant.

    Shapes: ``log_prob`` (N, *event_shape) -> (N,); ``sample(N)`` -> (N, *event_shape).
    """

    def __init__(self, event_shape: tuple[int, ...], layers: int = 32, dequantized: bool = False,
                 alpha: float = DEFAULT_ALPHA) -> None:
        dim = math.prod(event_shape)
        transforms: list[Transform] = [LogitTransform(alpha)] if dequantized else []
        transforms += [PlanarStack(dim, layers), ElementwiseAffine(dim)]
        super().__init__(event_shape, transforms, dequantized)
