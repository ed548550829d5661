"""Encoder and decoder networks: MLPs (Burda et al. 2016's architecture) and small convnets.

Encoders map images (N, C, H, W) in [-1, 1], optionally with a one-hot label (N, num_classes),
to ``(mean, log_std)`` of a diagonal Gaussian q(z|x), each (N, latent). Decoders map latents
(..., N, latent), optionally with a label, to decoder parameters (..., N, D, P) where D = C*H*W
and P the parameters per dimension of the pixel distribution.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


class _MLP(nn.Module):
    """Linear layers with tanh between them; a label (one-hot) joins the input of every layer, so
    a conditional model cannot lose it in the hidden units."""

    def __init__(self, sizes: list[int], num_labels: int = 0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a + num_labels, b) for a, b in itertools.pairwise(sizes))

    def forward(self, h: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            h = layer(_with_label(h, label))
            if i < len(self.layers) - 1:
                h = torch.tanh(h)
        return h


def _with_label(h: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
    if label is None:
        return h
    return torch.cat([h, label.expand(*h.shape[:-1], label.shape[-1])], dim=-1)


class MLPEncoder(nn.Module):
    """x (N, *shape) [+ label] -> hidden layers -> (mean, log_std), each (N, latent)."""

    def __init__(self, num_dims: int, latent: int, hidden: int, depth: int = 2, num_labels: int = 0) -> None:
        super().__init__()
        self.net = _MLP([num_dims] + [hidden] * depth + [2 * latent], num_labels)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(x.flatten(1), label).chunk(2, dim=-1)
        return mean, log_std


class MLPDecoder(nn.Module):
    """z (..., N, latent) [+ label] -> hidden layers -> parameters (..., N, D, P)."""

    def __init__(self, num_dims: int, params_per_dim: int, latent: int, hidden: int, depth: int = 2,
                 num_labels: int = 0) -> None:
        super().__init__()
        self.num_dims, self.params_per_dim = num_dims, params_per_dim
        self.net = _MLP([latent] + [hidden] * depth + [num_dims * params_per_dim], num_labels)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        out = self.net(z, label)
        return out.reshape(*z.shape[:-1], self.num_dims, self.params_per_dim)


class ConvEncoder(nn.Module):
    """Two stride-2 4x4 convolutions (H and W must be divisible by 4), then a linear map."""

    def __init__(self, shape: tuple[int, int, int], latent: int, channels: int = 32, num_labels: int = 0) -> None:
        super().__init__()
        c, h, w = shape
        if h % 4 or w % 4:
            raise ValueError(f"the convolutional VAE needs height and width divisible by 4, got {h}x{w}")
        self.conv = nn.Sequential(
            nn.Conv2d(c, channels, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(2 * channels * (h // 4) * (w // 4) + num_labels, 2 * latent)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.head(_with_label(self.conv(x), label)).chunk(2, dim=-1)
        return mean, log_std


class ConvDecoder(nn.Module):
    """A linear map to a (2*channels, H/4, W/4) grid, then two stride-2 transposed convolutions."""

    def __init__(self, shape: tuple[int, int, int], params_per_dim: int, latent: int, channels: int = 32,
                 num_labels: int = 0) -> None:
        super().__init__()
        c, h, w = shape
        self.shape, self.params_per_dim, self.channels = shape, params_per_dim, channels
        self.grid = (2 * channels, h // 4, w // 4)
        self.head = nn.Sequential(nn.Linear(latent + num_labels, 2 * channels * (h // 4) * (w // 4)), nn.ReLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(channels, c * params_per_dim, 4, 2, 1))

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        lead = z.shape[:-1]
        h = self.head(_with_label(z, label)).reshape(-1, *self.grid)
        out = self.deconv(h)  # (B, C*P, H, W), channel-major
        c, height, width = self.shape
        out = out.reshape(-1, c, self.params_per_dim, height * width).permute(0, 1, 3, 2)
        return out.reshape(*lead, c * height * width, self.params_per_dim)
