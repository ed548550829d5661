"""Shared flow pieces: the transform convention, logit preprocessing, elementwise affine maps
and the `Flow` composite (a sequence of transforms on top of a standard normal base).

Convention. Every transform maps in the *normalizing* direction, data -> base:

* ``forward(x) -> (z, ladj)`` with ``x, z`` of shape (N, D) and ``ladj`` (N,) the log of the
  absolute Jacobian determinant ``log|det dz/dx|``;
* ``inverse(z) -> x``, of shape (N, D), the exact (or, for planar layers, numerically exact)
  inverse used for sampling.

All transforms work on flat vectors: `Flow` flattens (N, *event_shape) to (N, D) once.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Transform(nn.Module):
    """A bijection on R^D (or an open box of it), in the data -> base direction."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def inverse(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


#: The logit preprocessing constant: Papamakarios et al. (2017)'s value for MNIST. The map sends
#: [0, 1]^D onto the box [logit(alpha), logit(1 - alpha)]^D (+-13.8 here), so the base mass
#: outside that box is missing from `log_prob` and lands on the boundary of [0, 1]^D in the
#: (clamped) samples; it must be negligible. With Dinh et al.'s alpha = 0.05 (box +-2.94) it was
#: not: on digits about 4% of the sampled coordinates were clamped, and the density on the
#: dequantized values integrated to well below 1 (found by ``evalgen check flows``).
DEFAULT_ALPHA = 1e-6


class LogitTransform(Transform):
    """Logit preprocessing for dequantized data in [0, 1)^D (Dinh et al. 2017, sec. 4.1).

    ``s = logit(alpha + (1 - 2 alpha) y)``; log-Jacobian
    ``sum_i log(1 - 2 alpha) - log p_i - log(1 - p_i)`` with ``p = alpha + (1 - 2 alpha) y``.
    Because ``alpha > 0`` the map is finite on the closed cube [0, 1]^D, so `log_prob` is finite
    there; it is a log-density on [0, 1)^D up to the base mass outside the box
    [logit(alpha), logit(1 - alpha)]^D, negligible for a small ``alpha`` (`DEFAULT_ALPHA`). The
    inverse ``y = (sigmoid(s) - alpha) / (1 - 2 alpha)`` leaves [0, 1] for ``s`` outside that box;
    `Flow.sample` clamps the final samples, the transform does not.
    """

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        super().__init__()
        if not 0.0 < alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.alpha
        p = a + (1.0 - 2.0 * a) * x
        s = torch.log(p) - torch.log1p(-p)
        ladj = (math.log(1.0 - 2.0 * a) - torch.log(p) - torch.log1p(-p)).sum(-1)
        return s, ladj

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(z) - self.alpha) / (1.0 - 2.0 * self.alpha)


class ElementwiseAffine(Transform):
    """``z = (x - loc) * exp(-log_scale)`` per dimension; learned, initialised to identity.

    Placed last in a flow it is exactly a learned diagonal Gaussian base
    N(loc, diag(exp(2 log_scale))); placed between layers it is a data-independent ActNorm.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (x - self.loc) * torch.exp(-self.log_scale)
        ladj = (-self.log_scale).sum().expand(x.shape[0])
        return z, ladj

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.exp(self.log_scale) + self.loc


class Reverse(Transform):
    """Reverses the order of the D coordinates (volume preserving)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.flip(-1), x.new_zeros(x.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z.flip(-1)


class Flow(nn.Module):
    """A normalizing flow: transforms ``x -> z`` (data -> base) and a standard normal base.

    ``log p(x) = log N(f(x); 0, I) + log|det J_f(x)|`` with ``f`` the composition of the
    transforms in order.

    Args:
        event_shape: per-example shape, e.g. ``(2,)`` or ``(1, 28, 28)``.
        transforms: the transforms, data side first.
        dequantized: True if the data lie in [0, 1)^D (then samples are clamped into [0, 1]).
    """

    def __init__(self, event_shape: tuple[int, ...], transforms: list[Transform], dequantized: bool) -> None:
        super().__init__()
        self.event_shape = tuple(int(s) for s in event_shape)
        self.dim = math.prod(self.event_shape)
        self.dequantized = bool(dequantized)
        self.transforms = nn.ModuleList(transforms)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 1 + len(self.event_shape) or tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(
                f"expected a tensor of shape (N, {', '.join(map(str, self.event_shape))}), "
                f"got {tuple(x.shape)}"
            )

    def forward_to_base(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map flat data (N, D) to the base: returns ``z`` (N, D) and ``log|det dz/dx|`` (N,)."""
        ladj = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, step_ladj = t(x)
            ladj = ladj + step_ladj
        return x, ladj

    def inverse_from_base(self, z: torch.Tensor) -> torch.Tensor:
        """Map flat base points (N, D) to flat data (N, D) (no clamping)."""
        for t in reversed(self.transforms):
            z = t.inverse(z)
        return z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of ``x`` (N, *event_shape) -> (N,) in nats."""
        self._check(x)
        x = x.reshape(x.shape[0], self.dim).to(self._dtype())
        z, ladj = self.forward_to_base(x)
        base = -0.5 * (z * z).sum(-1) - 0.5 * self.dim * math.log(2.0 * math.pi)
        return base + ladj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as `log_prob`."""
        return self.log_prob(x)

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw (N, *event_shape) samples; all randomness comes from ``generator``."""
        device = generator.device if generator is not None else self._device()
        z = torch.randn(num_samples, self.dim, generator=generator, device=device, dtype=self._dtype())
        x = self.inverse_from_base(z)
        if self.dequantized:
            x = x.clamp(0.0, 1.0)
        return x.reshape(num_samples, *self.event_shape)

    def _dtype(self) -> torch.dtype:
        p = next(self.parameters(), None)
        return p.dtype if p is not None else torch.get_default_dtype()

    def _device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
