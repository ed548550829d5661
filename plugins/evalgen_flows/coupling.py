"""RealNVP: affine coupling layers (Dinh, Sohl-Dickstein & Bengio 2017)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import DEFAULT_ALPHA, ElementwiseAffine, Flow, LogitTransform, Transform


def coupling_mask(dim: int, index: int, event_shape: tuple[int, ...]) -> torch.Tensor:
    """The binary mask of coupling layer ``index`` (1 = passed through and conditioned on).

    Cycles through: checkerboard, inverted checkerboard, first half, second half. For images
    ``(C, H, W)`` the checkerboard is the spatial one (``(h + w) % 2``), for vectors it is
    even/odd coordinates; the halves are in flattened order (top/bottom rows for images).
    """
    if len(event_shape) == 3:
        c, h, w = event_shape
        hh, ww = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        checker = ((hh + ww) % 2).expand(c, h, w).reshape(-1)
    else:
        checker = torch.arange(dim) % 2
    half = (torch.arange(dim) < dim // 2).long() if dim > 1 else torch.ones(dim, dtype=torch.long)
    kind = index % 4
    mask = [checker, 1 - checker, half, 1 - half][kind]
    if dim > 1 and (mask.sum() == 0 or mask.sum() == dim):  # degenerate: fall back to even/odd
        mask = (torch.arange(dim) + index) % 2
    return mask.float()


class AffineCoupling(Transform):
    """``z = m * x + (1 - m) * (x * exp(s) + t)``, ``(s, t) = NN(m * x)`` (data -> base).

    The log-scale is bounded, ``s = scale * tanh(raw)`` with a learned per-dimension ``scale``;
    the last layer of the conditioner starts at zero so the layer starts as the identity.

    Args:
        mask: (D,) float mask, 1 for the conditioning coordinates.
        hidden: conditioner width; the conditioner is an MLP with two hidden layers.

    Shapes: ``forward`` (N, D) -> ((N, D), (N,)); ``inverse`` (N, D) -> (N, D).
    """

    def __init__(self, mask: torch.Tensor, hidden: int) -> None:
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask.clone())
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * dim),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(dim))

    def _params(self, xm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(xm).chunk(2, dim=-1)
        inv = 1.0 - self.mask
        return self.scale * torch.tanh(raw_s) * inv, t * inv

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._params(x * self.mask)
        z = x * torch.exp(s) + t
        return z, s.sum(-1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        s, t = self._params(z * self.mask)
        return (z - t) * torch.exp(-s)


class RealNVP(Flow):
    """RealNVP density model on R^D or [0, 1)^D.

    Layers, data side first: [logit preprocessing, for dequantized data], a learned elementwise
    affine, then ``layers`` affine couplings with alternating masks (checkerboard / inverted
    checkerboard / halves, see `coupling_mask`), each followed by a learned elementwise affine
    (data-independent ActNorm; the last one is a learned diagonal Gaussian base). No batch
    normalization, so evaluation is exact and independent of the batch. Exact inverse.

    Args:
        event_shape: per-example shape, ``(D,)`` or ``(C, H, W)``.
        layers: number of coupling layers.
        hidden: conditioner MLP width.
        dequantized: data in [0, 1)^D (adds the logit preprocessing).
        alpha: logit-preprocessing constant.

    Shapes: ``log_prob`` (N, *event_shape) -> (N,); ``sample(N)`` -> (N, *event_shape).
    """

    def __init__(self, event_shape: tuple[int, ...], layers: int = 8, hidden: int = 128,
                 dequantized: bool = False, alpha: float = DEFAULT_ALPHA) -> None:
        dim = math.prod(event_shape)
        transforms: list[Transform] = [LogitTransform(alpha)] if dequantized else []
        transforms.append(ElementwiseAffine(dim))
        for i in range(layers):
            transforms += [AffineCoupling(coupling_mask(dim, i, tuple(event_shape)), hidden),
                           ElementwiseAffine(dim)]
        super().__init__(event_shape, transforms, dequantized)
