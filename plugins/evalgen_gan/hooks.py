"""The `gan` family's hook implementations, and the defaults each model takes from its paper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from evalgen import (
    Batch,
    DataKind,
    DatasetInfo,
    FamilyInfo,
    Likelihood,
    LikelihoodKind,
    ModelSpec,
    TrainState,
    hookimpl,
)

from . import training
from .gan import GAN, Settings
from .networks import ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator, conv_fits

GOODFELLOW = "Goodfellow et al. 2014, Generative Adversarial Nets; Radford et al. 2016 (DCGAN)"
ARJOVSKY = "Arjovsky, Chintala & Bottou 2017, Wasserstein GAN"
GULRAJANI = "Gulrajani et al. 2017, Improved Training of Wasserstein GANs"
IMPLICIT = Likelihood(LikelihoodKind.NONE, "none")
DISCRIMINATOR_SCORE = "-logit D(x) (discriminator)"
CRITIC_SCORE = "-f(x) (critic output)"

MODELS = (
    ModelSpec("gan", "GAN: discriminator by maximum likelihood on real vs generated, non-saturating "
                     "generator loss; DCGAN conv nets for images, MLPs for vectors",
              frozenset(DataKind), IMPLICIT, dequantize=True, reference=GOODFELLOW,
              outlier_score=DISCRIMINATOR_SCORE),
    ModelSpec("wgan", "Wasserstein GAN with weight clipping (c = 0.01, RMSProp, 5 critic steps per "
                      "generator step), as published",
              frozenset(DataKind), IMPLICIT, dequantize=True, reference=ARJOVSKY, outlier_score=CRITIC_SCORE),
    ModelSpec("wgan-gp", "Wasserstein GAN with gradient penalty (lambda 10 on images, 0.1 on 2-D data; "
                         "Adam(0.5, 0.9); 5 critic steps per generator step)",
              frozenset(DataKind), IMPLICIT, dequantize=True, reference=GULRAJANI, outlier_score=CRITIC_SCORE),
)

#: Each model's training settings as its paper (or its authors' released code) gives them; every
#: key can be overridden with ``-o key=value`` (``-o lr=...`` sets both learning rates). lr_g and
#: lr_d are the generator's and discriminator's learning rates, beta1/beta2 Adam's betas
#: (unused by RMSProp). gp_weight None = by data: 10 for images (the paper), 0.1 for vectors (the
#: authors' toy code, gan_toy.py: "smaller lambda makes things faster for toy tasks").
PAPER_DEFAULTS: dict[str, dict[str, Any]] = {
    # DCGAN (Radford et al. 2016, Sec. 4): Adam, lr 2e-4, beta1 0.5; one D step per G step.
    "gan": {"optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999,
            "n_critic": 1, "clip": 0.0, "gp_weight": 0.0},
    # WGAN (Arjovsky et al. 2017, Algorithm 1): RMSProp, lr 5e-5, c = 0.01, n_critic = 5.
    "wgan": {"optimizer": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5, "beta1": 0.0, "beta2": 0.0,
             "n_critic": 5, "clip": 0.01, "gp_weight": 0.0},
    # WGAN-GP (Gulrajani et al. 2017): n_critic 5 and Adam beta2 0.9 as Algorithm 1; beta1 0.5 as
    # the authors' MNIST and toy code; lr 2e-4 as their CIFAR-10 ResNet code (Algorithm 1 says
    # 1e-4: on eight-gaussians at the quick CPU budget, ~15k steps, 1e-4 left 82% of samples
    # high-quality, 2e-4 85-87%, still sharpening either way).
    "wgan-gp": {"optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.9,
                "n_critic": 5, "clip": 0.0, "gp_weight": None},
}
#: Shared defaults: latent size (None = 2 for 2-D data as the WGAN-GP toy code, else 64), MLP
#: width/depth (the WGAN-GP toy nets are 3 x 512; 3 x 128 runs ~15k steps a minute on one CPU
#: core), DCGAN conv width, EMA off, and the dominance window (see `training.check_dominance`).
COMMON_DEFAULTS: dict[str, Any] = {"latent": None, "hidden": 128, "depth": 3, "channels": 16,
                                   "networks": None, "ema": 0.0, "divergence_window": 2000}


def option(config: Mapping[str, Any] | None, model_name: str, key: str) -> Any:
    """``config[key]`` if given, else the model's paper default, else the shared default."""
    value = None if config is None else config.get(key)
    if value is not None:
        return value
    return PAPER_DEFAULTS[model_name].get(key, COMMON_DEFAULTS.get(key))


@hookimpl
def evalgen_family() -> FamilyInfo:
    return FamilyInfo(name="gan", summary="implicit models: GAN, WGAN and WGAN-GP (no likelihood)",
                      models=MODELS, version="0.1.0")


def _networks(dataset: DatasetInfo, model_name: str, config: Mapping[str, Any]) -> tuple[nn.Module, nn.Module, int]:
    image = len(dataset.shape) == 3
    networks = option(config, model_name, "networks") or ("conv" if conv_fits(dataset.shape) else "mlp")
    if networks not in ("mlp", "conv"):
        raise ValueError(f"networks must be 'mlp' or 'conv', got {networks!r}")
    if networks == "conv" and not conv_fits(dataset.shape):
        raise ValueError(f"conv networks need square images with a side that is a multiple of 4, got {dataset.shape}")
    latent = int(option(config, model_name, "latent") or (2 if dataset.num_dims <= 2 else 64))
    if networks == "conv":
        channels = int(option(config, model_name, "channels"))
        return ConvGenerator(dataset.shape, latent, channels), ConvDiscriminator(dataset.shape, channels), latent
    hidden, depth = int(option(config, model_name, "hidden")), int(option(config, model_name, "depth"))
    return (MLPGenerator(dataset.shape, latent, hidden, depth, bounded=image),
            MLPDiscriminator(dataset.shape, hidden, depth), latent)


@hookimpl
def evalgen_build_model(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
    if model_name not in PAPER_DEFAULTS:
        raise ValueError(f"unknown gan model {model_name!r}; choose from {sorted(PAPER_DEFAULTS)}")
    generator, discriminator, latent = _networks(dataset, model_name, config)
    settings = Settings(
        objective=model_name,
        n_critic=int(option(config, model_name, "n_critic")),
        clip=float(option(config, model_name, "clip")),
        gp_weight=_gp_weight(config, model_name, image=len(dataset.shape) == 3),
        ema=float(option(config, model_name, "ema")),
        divergence_window=int(option(config, model_name, "divergence_window")),
    )
    if settings.n_critic < 1 or not 0 <= settings.ema < 1:
        raise ValueError("n_critic must be >= 1 and ema in [0, 1)")
    return GAN(dataset.shape, latent, generator, discriminator, settings, image=len(dataset.shape) == 3)


def _gp_weight(config: Mapping[str, Any], model_name: str, image: bool) -> float:
    value = option(config, model_name, "gp_weight")
    return float(value) if value is not None else (10.0 if image else 0.1)


def _optimizer(params, model_name: str, config: Mapping[str, Any], lr_key: str) -> torch.optim.Optimizer:
    kind, lr = option(config, model_name, "optimizer"), float(option(config, model_name, lr_key))
    if config and config.get("lr") is not None:
        lr = float(config["lr"])
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if kind == "adam":
        betas = (float(option(config, model_name, "beta1")), float(option(config, model_name, "beta2")))
        return torch.optim.Adam(params, lr=lr, betas=betas)
    raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {kind!r}")


@hookimpl
def evalgen_configure_optimizers(model: GAN, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    name = model.settings.objective
    return {"discriminator": _optimizer(model.discriminator.parameters(), name, config, "lr_d"),
            "generator": _optimizer(model.generator.parameters(), name, config, "lr_g")}


@hookimpl
def evalgen_train_step(model: GAN, batch: Batch, state: TrainState) -> Mapping[str, Any]:
    return training.train_step(model, batch.x, state)


@hookimpl
def evalgen_sample(model: GAN, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    return model.sample(num_samples, generator)


@hookimpl
def evalgen_outlier_score(model: GAN, x: torch.Tensor) -> torch.Tensor:
    return -model.score(x)
