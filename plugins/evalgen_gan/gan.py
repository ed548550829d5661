"""The GAN module: a generator, a discriminator (critic), the objective and an optional EMA copy."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

OBJECTIVES = ("gan", "wgan", "wgan-gp")


@dataclass(frozen=True)
class Settings:
    """How one model trains. Defaults per model are in `hooks.PAPER_DEFAULTS`.

    n_critic: discriminator updates per generator update (one harness step = one discriminator
        update; the generator updates on every ``n_critic``-th step).
    clip: WGAN weight clipping bound c (critic weights kept in [-c, c]); 0 = none.
    gp_weight: WGAN-GP's lambda; 0 = no gradient penalty.
    ema: decay of the exponential moving average of the generator's weights used for sampling;
        0 = off (sample from the trained generator).
    divergence_window: steps in a row in which the discriminator separates every real example
        from every generated one before the run is declared diverged; 0 = never.
    """

    objective: str
    n_critic: int
    clip: float
    gp_weight: float
    ema: float
    divergence_window: int


class GAN(nn.Module):
    """A generator and a discriminator over data of shape ``shape``.

    ``image`` data reach the networks as 2x - 1 (the representation's [0, 1] mapped to the
    generator's tanh range [-1, 1]). Vectors are standardized, (x - mean) / std with one mean
    per dimension and one std overall, taken from the first training batch and kept as buffers
    (Gulrajani et al.'s toy experiments divide by the data's std too): the gradient penalty's
    unit norm and the learning rates then mean the same thing at any data scale.
    """

    def __init__(self, shape: tuple[int, ...], latent: int, generator: nn.Module,
                 discriminator: nn.Module, settings: Settings, image: bool) -> None:
        super().__init__()
        if settings.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {settings.objective!r}; choose from {OBJECTIVES}")
        self.shape, self.latent, self.settings, self.image = tuple(shape), latent, settings, image
        self.generator = generator
        self.discriminator = discriminator
        self.generator_ema = None
        if settings.ema > 0:
            self.generator_ema = copy.deepcopy(generator).requires_grad_(False)
        self.register_buffer("data_mean", torch.zeros(shape))
        self.register_buffer("data_std", torch.ones(()))
        self.register_buffer("standardized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit_standardization(self, x: torch.Tensor) -> None:
        """Set the vector standardization from the first training batch (no-op for images)."""
        if self.image or bool(self.standardized):
            return
        self.data_mean.copy_(x.mean(0))
        self.data_std.copy_((x - x.mean(0)).std().clamp_min(1e-6))
        self.standardized.fill_(True)

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """z ~ N(0, I): (n, latent) on the model's device, drawn from ``generator``."""
        device = next(self.parameters()).device
        return torch.randn(n, self.latent, generator=generator, device=device)

    def to_network(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1 if self.image else (x - self.data_mean) / self.data_std

    def to_data(self, out: torch.Tensor) -> torch.Tensor:
        return ((out + 1) / 2).clamp(0, 1) if self.image else out * self.data_std + self.data_mean

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Discriminator scores (N,) of data-space x (N, *shape): higher = more like the data."""
        self._check(x)
        return self.discriminator(self.to_network(x))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n samples (n, *shape) in data space, from the EMA generator when there is one."""
        net = self.generator_ema if self.generator_ema is not None else self.generator
        return self.to_data(net(self.noise(n, generator)))

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.generator_ema is None:
            return
        decay = self.settings.ema
        for ema, live in zip(self.generator_ema.parameters(), self.generator.parameters()):
            ema.lerp_(live, 1 - decay)
        for ema, live in zip(self.generator_ema.buffers(), self.generator.buffers()):
            ema.copy_(live)

    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"expected x of shape (N, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
