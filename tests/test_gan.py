"""The `gan` family: objectives against closed forms, the step's mechanics, the conv nets through
the conformance kit (every model's contract on small data is checked by
tests/test_conformance_bundled.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evalgen import DataKind, DatasetInfo, Representation, TrainingDiverged, TrainState
from evalgen.options import resolved_options
from evalgen.testing import DEFAULTS, check_plugin
from evalgen.types import Batch
from evalgen_gan import hooks, losses, training

INFOS = {
    "digits-like": DatasetInfo("d", DataKind.DISCRETE, (1, 8, 8), 17, 10, Representation.DEQUANTIZED, 100),
    "binary-28": DatasetInfo("b", DataKind.BINARY, (1, 28, 28), 2, None, Representation.DEQUANTIZED, 100),
    "odd-image": DatasetInfo("o", DataKind.DISCRETE, (1, 6, 6), 4, None, Representation.DEQUANTIZED, 100),
    "2-d": DatasetInfo("t", DataKind.CONTINUOUS, (2,), None, None, Representation.CONTINUOUS, 100),
}


def _data(info: DatasetInfo, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if info.levels is None:
        return 3 * torch.randn(n, *info.shape, generator=g) + 1
    return torch.rand(n, *info.shape, generator=g)


def _setup(model_name: str, info: DatasetInfo, config=None, seed: int = 0):
    config = resolved_options(hooks.evalgen_family(), model_name, config)  # as a run hands the hooks
    torch.manual_seed(seed)
    model = hooks.evalgen_build_model(model_name=model_name, dataset=info, config=config)
    opts = hooks.evalgen_configure_optimizers(model=model, config=config)
    state = TrainState(0, opts, torch.Generator().manual_seed(seed), torch.device("cpu"), info, config)
    return model, state


def _step(model, state, x) -> dict[str, float]:
    out = hooks.evalgen_train_step(model=model, batch=Batch(x), state=state)
    state.step += 1
    return {k: float(v) for k, v in out.items()}


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: nn.Module) -> list[bool]:
    return [not torch.equal(b, p) for b, p in zip(before, module.parameters())]


# --- objectives against independent formulas ------------------------------------------------


def test_gan_losses_are_binary_cross_entropies():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(50, generator=g) * 3, torch.randn(50, generator=g) * 3
    bce = F.binary_cross_entropy
    expected_d = bce(torch.sigmoid(real), torch.ones(50)) + bce(torch.sigmoid(fake), torch.zeros(50))
    assert torch.allclose(losses.gan_discriminator_loss(real, fake), expected_d, atol=1e-5)
    # non-saturating: -E log D(G(z)), not E log(1 - D(G(z)))
    assert torch.allclose(losses.gan_generator_loss(fake), bce(torch.sigmoid(fake), torch.ones(50)), atol=1e-5)


def test_gradient_penalty_of_a_linear_critic_is_its_closed_form():
    """f(x) = w.x + b has gradient w everywhere, so the penalty is (||w|| - 1)^2 exactly."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    with torch.no_grad():
        critic[1].weight.copy_(torch.arange(12.0).view(1, 12) / 10)
    real, fake = torch.randn(8, 3, 4), torch.randn(8, 3, 4)
    penalty = losses.gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    norm = math.sqrt(sum((i / 10) ** 2 for i in range(12)))
    assert float(penalty.detach()) == pytest.approx((norm - 1) ** 2, rel=1e-5)
    penalty.backward()  # differentiable in the critic's parameters (create_graph=True)
    assert critic[1].weight.grad is not None and torch.isfinite(critic[1].weight.grad).all()


def test_wasserstein_estimate_and_critic_loss():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    assert float(losses.wasserstein_estimate(real, fake)) == pytest.approx(2.5)
    assert float(losses.critic_loss(real, fake)) == pytest.approx(-2.5)
    assert float(losses.wgan_generator_loss(fake)) == pytest.approx(0.5)


# --- the DCGAN conv nets, through the conformance kit ------------------------------------------
# The bundled conformance run (tests/test_conformance_bundled.py) checks every model's contract on
# 4x4 images and 2-D data, which get MLPs; images whose side is a multiple of 4 (8 or more) get the
# DCGAN conv nets with batch norm, checked here on 8x8 images by the same kit.

CONV_SIZED = dataclasses.replace(DEFAULTS, binary_shape=(1, 8, 8), discrete_shape=(1, 8, 8), num_train=128,
                                 batch_size=32, num_samples=16, eval_examples=32, train_steps=10)


def test_every_model_conforms_with_conv_nets():
    report = check_plugin("gan", checks=["build", "sample", "determinism", "checkpoint", "training", "one_step",
                                         "side_effects", "outlier_score"], settings=CONV_SIZED)
    assert report.ok, "\n" + str(report)
    checked = {(r.model, r.data) for r in report.results if r.status == "passed"}
    assert {(m.name, kind) for m in hooks.MODELS for kind in ("binary", "discrete")} <= checked


@pytest.mark.parametrize("model_name", [m.name for m in hooks.MODELS])
def test_a_generator_update_reports_both_gradient_norms(model_name):
    model, state = _setup(model_name, INFOS["digits-like"])
    for _ in range(model.settings.n_critic):
        out = _step(model, state, _data(INFOS["digits-like"], 16, seed=state.step))
    assert {"grad_norm/discriminator", "grad_norm/generator"} <= out.keys()


def test_conv_nets_for_images_whose_side_is_a_multiple_of_4_else_mlps():
    conv, _ = _setup("gan", INFOS["digits-like"])
    mlp, _ = _setup("gan", INFOS["odd-image"])
    assert any(isinstance(m, nn.ConvTranspose2d) for m in conv.generator.modules())
    assert not any(isinstance(m, nn.Conv2d) for m in mlp.discriminator.modules())
    with pytest.raises(ValueError, match="multiple of 4"):
        _setup("gan", INFOS["odd-image"], {"networks": "conv"})


def test_defaults_follow_the_papers():
    wgan, _ = _setup("wgan", INFOS["digits-like"])
    assert (wgan.settings.n_critic, wgan.settings.clip) == (5, 0.01)
    gp_image, state = _setup("wgan-gp", INFOS["digits-like"])
    gp_toy, _ = _setup("wgan-gp", INFOS["2-d"])
    assert (gp_image.settings.gp_weight, gp_toy.settings.gp_weight) == (10.0, 0.1)
    assert state.optimizers["discriminator"].defaults["betas"] == (0.5, 0.9)
    assert isinstance(_setup("wgan", INFOS["2-d"])[1].optimizers["generator"], torch.optim.RMSprop)
    _, gan_state = _setup("gan", INFOS["digits-like"])
    assert gan_state.optimizers["generator"].defaults["lr"] == 2e-4
    assert gan_state.optimizers["generator"].defaults["betas"] == (0.5, 0.999)


# --- the training step's mechanics --------------------------------------------------------------


def test_wgan_keeps_critic_weights_clipped():
    model, state = _setup("wgan", INFOS["digits-like"])
    for _ in range(3):
        _step(model, state, _data(INFOS["digits-like"], 32, seed=state.step))
    assert max(float(p.detach().abs().max()) for p in model.discriminator.parameters()) <= 0.01


def test_generator_updates_every_n_critic_steps():
    model, state = _setup("wgan-gp", INFOS["2-d"])
    before = _params(model.generator)
    for step in range(1, 6):
        out = _step(model, state, _data(INFOS["2-d"], 32, seed=step))
        assert any(_changed(before, model.generator)) == (step == 5), step
        assert ("loss/generator" in out) == (step == 5)


def test_ema_generator_is_the_moving_average_of_the_generator():
    model, state = _setup("gan", INFOS["2-d"], {"ema": 0.75})
    old = _params(model.generator_ema)
    _step(model, state, _data(INFOS["2-d"], 32, seed=0))
    for before, live, ema in zip(old, model.generator.parameters(), model.generator_ema.parameters()):
        assert torch.allclose(ema, 0.75 * before + 0.25 * live.detach())
    g = torch.Generator().manual_seed(0)
    z = model.noise(4, g)
    expected = model.to_data(model.generator_ema(z))
    assert torch.equal(model.sample(4, torch.Generator().manual_seed(0)), expected)


def test_vectors_are_standardized_with_the_first_batch():
    model, state = _setup("gan", INFOS["2-d"])
    x = _data(INFOS["2-d"], 256, seed=0)
    _step(model, state, x)
    assert torch.allclose(model.data_mean, x.mean(0))
    assert float(model.data_std) == pytest.approx(float((x - x.mean(0)).std()), rel=1e-5)
    assert torch.allclose(model.to_data(model.to_network(x)), x, atol=1e-5)
    _step(model, state, x * 100)  # later batches leave it alone
    assert torch.allclose(model.data_mean, x.mean(0))


def test_a_discriminator_that_wins_every_batch_for_the_window_ends_training():
    state = TrainState(0, {}, torch.Generator(), torch.device("cpu"), INFOS["2-d"])
    for _ in range(4):
        training.check_dominance(True, state, window=5)
        state.step += 1
    training.check_dominance(False, state, window=5)  # one batch not separated: the count restarts
    state.step += 1
    for _ in range(4):
        training.check_dominance(True, state, window=5)
        state.step += 1
    with pytest.raises(TrainingDiverged, match=r"last 5 steps \(since step 6\)"):
        training.check_dominance(True, state, window=5)
    training.check_dominance(True, state, window=0)  # 0 disables the check


def test_separated_means_every_real_above_every_generated():
    assert losses.separated(torch.tensor([2.0, 3.0]), torch.tensor([1.0, 1.9]))
    assert not losses.separated(torch.tensor([2.0, 3.0]), torch.tensor([1.0, 2.5]))
