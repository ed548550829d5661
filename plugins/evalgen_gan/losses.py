"""The three objectives, as functions of discriminator scores. Scores are (B,) tensors: the
discriminator's logits for the GAN, the critic's values for the WGANs."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] with D = sigmoid(logit) (Goodfellow et al. 2014)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def gan_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating loss -E[log D(G(z))] (Goodfellow et al. 2014, Sec. 3)."""
    return F.softplus(-fake).mean()


def wasserstein_estimate(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[f(x)] - E[f(G(z))]: the critic's estimate of the Wasserstein-1 distance (up to the
    Lipschitz constant the critic actually has)."""
    return real.mean() - fake.mean()


def critic_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The critic minimises -(E[f(x)] - E[f(G(z))]) (Arjovsky et al. 2017)."""
    return -wasserstein_estimate(real, fake)


def wgan_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """-E[f(G(z))]."""
    return -fake.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """E[(||grad f(x_hat)||_2 - 1)^2] at x_hat = e x + (1 - e) G(z), e ~ U[0, 1] per example
    (Gulrajani et al. 2017, Algorithm 1). Differentiable in the critic's parameters."""
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator,
                     device=real.device, dtype=real.dtype)
    mixed = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def separated(real: torch.Tensor, fake: torch.Tensor) -> bool:
    """Every real example scored above every generated one: the discriminator wins the batch outright."""
    return bool(real.min() > fake.max())
