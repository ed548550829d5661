"""Generators and discriminators: MLPs for vectors (the 2-D toys), DCGAN-style conv nets for images.

Shapes: a generator maps z (B, latent) to (B, *shape) in "network space" (images in [-1, 1]
through tanh, vectors unbounded); a discriminator maps (B, *shape) in network space to (B,)
scores (the discriminator's logit for the GAN, the critic's value for a WGAN).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

LEAK = 0.2  #: LeakyReLU slope of every discriminator (Radford et al. 2016)


def mlp(sizes: list[int], activation: type[nn.Module], **kwargs) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation(**kwargs))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """z (B, latent) -> (B, *shape): ReLU MLP with ``depth`` hidden layers of ``hidden`` units
    (as the toy experiments of Gulrajani et al. 2017); tanh on the output for images."""

    def __init__(self, shape: tuple[int, ...], latent: int, hidden: int, depth: int, bounded: bool):
        super().__init__()
        self.shape = shape
        self.net = mlp([latent] + [hidden] * depth + [math.prod(shape)], nn.ReLU)
        self.bounded = bounded

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z).view(z.shape[0], *self.shape)
        return torch.tanh(out) if self.bounded else out


class MLPDiscriminator(nn.Module):
    """(B, *shape) -> (B,): LeakyReLU MLP with ``depth`` hidden layers of ``hidden`` units."""

    def __init__(self, shape: tuple[int, ...], hidden: int, depth: int):
        super().__init__()
        self.net = mlp([math.prod(shape)] + [hidden] * depth + [1], nn.LeakyReLU, negative_slope=LEAK)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


def conv_fits(shape: tuple[int, ...]) -> bool:
    """The conv nets halve the side twice: square images whose side is a multiple of 4."""
    return len(shape) == 3 and shape[1] == shape[2] and shape[1] % 4 == 0 and shape[1] >= 8


class ConvGenerator(nn.Module):
    """DCGAN generator (Radford et al. 2016) for (C, S, S) images, S a multiple of 4:
    z -> linear -> (2c, S/4, S/4) -> BN-ReLU -> convT 4x4/2 -> (c, S/2, S/2) -> BN-ReLU
    -> convT 4x4/2 -> (C, S, S) -> tanh."""

    def __init__(self, shape: tuple[int, ...], latent: int, channels: int):
        super().__init__()
        c, side = channels, shape[1] // 4
        self.start = (2 * c, side, side)
        self.project = nn.Linear(latent, 2 * c * side * side)
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.ConvTranspose2d(c, shape[0], 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(z.shape[0], *self.start))


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator without batch norm (a batch-dependent critic would break the
    per-example gradient penalty of WGAN-GP; Gulrajani et al. 2017 drop it too):
    conv 4x4/2 (c) - LeakyReLU - conv 4x4/2 (2c) - LeakyReLU - linear -> (B,)."""

    def __init__(self, shape: tuple[int, ...], channels: int):
        super().__init__()
        c, side = channels, shape[1] // 4
        self.net = nn.Sequential(
            nn.Conv2d(shape[0], c, 4, stride=2, padding=1), nn.LeakyReLU(LEAK),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.LeakyReLU(LEAK),
            nn.Flatten(), nn.Linear(2 * c * side * side, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)
