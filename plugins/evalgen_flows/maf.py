"""Masked autoregressive flow (Papamakarios, Pavlakou & Murray 2017) with MADE conditioners
(Germain et al. 2015)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DEFAULT_ALPHA, ElementwiseAffine, Flow, LogitTransform, Reverse, Transform


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed binary mask (out, in)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def made_degrees(dim: int, hidden: int, num_hidden: int) -> list[torch.Tensor]:
    """Degrees of the input units (1..D, natural order) and of each hidden layer.

    Hidden degrees are spread evenly over 1..D-1 (a deterministic version of Germain et al.'s
    assignment), so that every input reaches some unit even when ``hidden < D - 1``; for D = 1
    the hidden units have degree 0 (they see nothing).
    """
    degrees = [torch.arange(1, dim + 1)]
    for _ in range(num_hidden):
        if dim > 1:
            degrees.append(torch.arange(hidden) * (dim - 1) // hidden + 1)
        else:
            degrees.append(torch.zeros(hidden, dtype=torch.long))
    return degrees


class MADE(nn.Module):
    """MADE: an MLP (D -> hidden x num_hidden -> 2D) whose output ``i`` depends on inputs ``< i``.

    Shapes: (N, D) -> ``(mu, raw_log_scale)``, each (N, D).
    """

    def __init__(self, dim: int, hidden: int, num_hidden: int = 2) -> None:
        super().__init__()
        deg = made_degrees(dim, hidden, num_hidden)
        layers: list[nn.Module] = []
        for k in range(num_hidden):
            mask = deg[k + 1].unsqueeze(-1) >= deg[k].unsqueeze(0)  # (out, in)
            layers += [MaskedLinear(deg[k].numel(), hidden, mask), nn.ReLU()]
        out_mask = deg[0].unsqueeze(-1) > deg[-1].unsqueeze(0)  # (D, hidden)
        self.body = nn.Sequential(*layers)
        self.out = MaskedLinear(deg[-1].numel(), 2 * dim, out_mask.repeat(2, 1))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.out(self.body(x)).chunk(2, dim=-1)
        return mu, raw

    def sequential(self, z: torch.Tensor, step) -> torch.Tensor:
        """Fill in ``x`` one coordinate at a time: ``x_i = step(z_i, mu_i, raw_i)`` where
        ``(mu_i, raw_i)`` are outputs ``i`` of ``self(x)``; returns ``x`` (N, D).

        D passes, as autoregressive sampling needs, but each pass only updates the first
        layer's pre-activations by the new coordinate's column (rank one) and evaluates the two
        output units of coordinate ``i``, instead of running the whole network.
        """
        n, dim = z.shape
        first, rest = self.body[0], self.body[2:]  # body = [linear, relu, linear, relu, ...]
        w_in = first.weight * first.mask  # (H, D)
        w_out = self.out.weight * self.out.mask  # (2D, H)
        pre = first.bias.expand(n, -1).clone()
        x = torch.zeros_like(z)
        for i in range(dim):
            h = rest(torch.relu(pre))
            mu = h @ w_out[i] + self.out.bias[i]
            raw = h @ w_out[dim + i] + self.out.bias[dim + i]
            xi = step(z[:, i], mu, raw)
            x[:, i] = xi
            pre = torch.addr(pre, xi, w_in[:, i])
        return x


class MaskedAutoregressive(Transform):
    """One MAF layer, data -> base: ``z_i = (x_i - mu_i(x_<i)) exp(-a_i(x_<i))``.

    The log-scale is soft-clamped, ``a = scale * tanh(raw / scale)`` with ``scale`` = 3 by default.
    ``forward`` (density) is one MADE pass; ``inverse`` (sampling) is D sequential passes.

    Shapes: ``forward`` (N, D) -> ((N, D), (N,)); ``inverse`` (N, D) -> (N, D).
    """

    def __init__(self, dim: int, hidden: int, num_hidden: int = 2, clamp: float = 3.0) -> None:
        super().__init__()
        self.dim = dim
        self.clamp = float(clamp)
        self.made = MADE(dim, hidden, num_hidden)

    def _params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.made(x)
        return mu, self.clamp * torch.tanh(raw / self.clamp)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, a = self._params(x)
        return (x - mu) * torch.exp(-a), -a.sum(-1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        c = self.clamp
        return self.made.sequential(z, lambda zi, mu, raw: zi * torch.exp(c * torch.tanh(raw / c)) + mu)


class MAF(Flow):
    """Masked autoregressive flow density model on R^D or [0, 1)^D.

    Layers, data side first: [logit preprocessing, for dequantized data], a learned elementwise
    affine, then ``layers`` MADE-based affine autoregressive layers with the order reversed
    between consecutive layers, then a learned elementwise affine (= learned diagonal Gaussian
    base). Images are flattened in raster order. ``log_prob`` takes one pass per layer;
    sampling takes D passes per layer.

    Args:
        event_shape: per-example shape.
        layers: number of MADE layers.
        hidden: MADE width (two hidden layers).
        dequantized: data in [0, 1)^D (adds the logit preprocessing).
        alpha: logit-preprocessing constant.

    Shapes: ``log_prob`` (N, *event_shape) -> (N,); ``sample(N)`` -> (N, *event_shape).
    """

    def __init__(self, event_shape: tuple[int, ...], layers: int = 5, hidden: int = 128,
                 dequantized: bool = False, alpha: float = DEFAULT_ALPHA) -> None:
        dim = math.prod(event_shape)
        transforms: list[Transform] = [LogitTransform(alpha)] if dequantized else []
        transforms.append(ElementwiseAffine(dim))
        for i in range(layers):
            if i > 0:
                transforms.append(Reverse())
            transforms.append(MaskedAutoregressive(dim, hidden))
        transforms.append(ElementwiseAffine(dim))
        super().__init__(event_shape, transforms, dequantized)
