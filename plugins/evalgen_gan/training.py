"""One harness step: a discriminator (critic) update, and a generator update every n_critic steps."""

from __future__ import annotations

from typing import Any

import torch

from evalgen import TrainingDiverged, TrainState

from . import losses
from .gan import GAN

STREAK_KEY = "separated_streak"


def _grad_norm(module: torch.nn.Module) -> torch.Tensor:
    return torch.nn.utils.clip_grad_norm_(module.parameters(), float("inf"))


def discriminator_step(model: GAN, real: torch.Tensor, state: TrainState) -> tuple[dict[str, Any], bool]:
    """Update the discriminator on ``real`` (B, *shape) in data space against as many generated
    examples; returns the scalars to log and whether it separated the batch completely."""
    s = model.settings
    opt = state.optimizers["discriminator"]
    with torch.no_grad():
        fake = model.generator(model.noise(real.shape[0], state.generator))
    real_net = model.to_network(real)
    real_score, fake_score = model.discriminator(real_net), model.discriminator(fake)
    out: dict[str, Any] = {}
    if s.objective == "gan":
        loss = losses.gan_discriminator_loss(real_score, fake_score)
        out["loss/discriminator"] = loss.detach()
        out["D(real)"] = torch.sigmoid(real_score).mean().detach()
        out["D(fake)"] = torch.sigmoid(fake_score).mean().detach()
    else:
        loss = losses.critic_loss(real_score, fake_score)
        out["loss/critic"] = loss.detach()
        out["wasserstein_estimate"] = -loss.detach()
        if s.gp_weight > 0:
            penalty = losses.gradient_penalty(model.discriminator, real_net, fake, state.generator)
            loss = loss + s.gp_weight * penalty
            out["gradient_penalty"] = penalty.detach()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    out["grad_norm/discriminator"] = _grad_norm(model.discriminator).detach()
    opt.step()
    if s.clip > 0:
        with torch.no_grad():
            for p in model.discriminator.parameters():
                p.clamp_(-s.clip, s.clip)
    return out, losses.separated(real_score.detach(), fake_score.detach())


def generator_step(model: GAN, batch_size: int, state: TrainState) -> dict[str, Any]:
    opt = state.optimizers["generator"]
    model.discriminator.requires_grad_(False)  # no discriminator gradients are needed here
    try:
        fake_score = model.discriminator(model.generator(model.noise(batch_size, state.generator)))
        gan = model.settings.objective == "gan"
        loss = losses.gan_generator_loss(fake_score) if gan else losses.wgan_generator_loss(fake_score)
        opt.zero_grad(set_to_none=True)
        loss.backward()
    finally:
        model.discriminator.requires_grad_(True)
    norm = _grad_norm(model.generator)
    opt.step()
    model.update_ema()
    return {"loss/generator": loss.detach(), "grad_norm/generator": norm.detach()}


def check_dominance(separated: bool, state: TrainState, window: int) -> None:
    """Raise `TrainingDiverged` once the discriminator has separated every batch for ``window``
    steps in a row (the "discriminator wins completely" failure); 0 disables the check."""
    streak = state.scratch.get(STREAK_KEY, 0) + 1 if separated else 0
    state.scratch[STREAK_KEY] = streak
    if window > 0 and streak >= window:
        raise TrainingDiverged(
            f"the discriminator separated every real from every generated example in each of the "
            f"last {window} steps (since step {state.step + 2 - window}): it has won completely")


def train_step(model: GAN, x: torch.Tensor, state: TrainState) -> dict[str, Any]:
    model.fit_standardization(x)
    out, separated = discriminator_step(model, x, state)
    if (state.step + 1) % model.settings.n_critic == 0:
        out.update(generator_step(model, x.shape[0], state))
    check_dominance(separated, state, model.settings.divergence_window)
    return out
