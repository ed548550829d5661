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
    Option,
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

#: Each model's training settings as its paper (or its authors' released code) gives them: the
#: defaults of its options (`paper_options`; ``-o lr=...`` sets both learning rates). lr_g and
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
#: The options every model shares: latent size (2 for 2-D data as the WGAN-GP toy code, else
#: 64), MLP width/depth (the WGAN-GP toy nets are 3 x 512; 3 x 128 runs ~15k steps a minute on one
#: CPU core), DCGAN conv width, EMA off, and the dominance window (see `training.check_dominance`).
FAMILY_OPTIONS = (
    Option("latent", int, None, "latent dimensions; default by data size: 2 for D <= 2, else 64", minimum=1),
    Option("networks", str, None, "generator and discriminator networks; default by data: conv for square "
                                  "images with a side that is a multiple of 4, else mlp", choices=("mlp", "conv")),
    Option("hidden", int, 128, "hidden units of the MLPs", minimum=1),
    Option("depth", int, 3, "hidden layers of the MLPs", minimum=1),
    Option("channels", int, 16, "base channels of the DCGAN conv nets", minimum=1),
    Option("ema", float, 0.0, "decay of an EMA of the generator's weights, used for sampling; 0 = off",
           minimum=0.0, maximum=1.0),
    Option("divergence_window", int, 2000, "steps the discriminator may win every comparison before the run "
                                           "is declared diverged; 0 = never", minimum=0),
    Option("lr", float, None, "both learning rates at once; default: lr_g and lr_d", minimum=0.0),
)


def paper_options(model_name: str) -> tuple[Option, ...]:
    """The options whose defaults are the model's `PAPER_DEFAULTS`."""
    d = PAPER_DEFAULTS[model_name]
    gp_help = ("gradient-penalty weight lambda; default by data: 10 for images, 0.1 for vectors"
               if d["gp_weight"] is None else "gradient-penalty weight lambda; 0 = none")
    return (
        Option("optimizer", str, d["optimizer"], "the optimizer of both networks", choices=("adam", "rmsprop")),
        Option("lr_g", float, d["lr_g"], "the generator's learning rate", minimum=0.0),
        Option("lr_d", float, d["lr_d"], "the discriminator's (critic's) learning rate", minimum=0.0),
        Option("beta1", float, d["beta1"], "Adam's beta1 (unused by RMSProp)", minimum=0.0, maximum=1.0),
        Option("beta2", float, d["beta2"], "Adam's beta2 (unused by RMSProp)", minimum=0.0, maximum=1.0),
        Option("n_critic", int, d["n_critic"], "discriminator steps per generator step", minimum=1),
        Option("clip", float, d["clip"], "weight clipping c of the critic ([-c, c]); 0 = none", minimum=0.0),
        Option("gp_weight", float, d["gp_weight"], gp_help, minimum=0.0),
    )


MODELS = (
    ModelSpec("gan", "GAN: discriminator by maximum likelihood on real vs generated, non-saturating "
                     "generator loss; DCGAN conv nets for images, MLPs for vectors",
              frozenset(DataKind), IMPLICIT, dequantize=True, reference=GOODFELLOW,
              outlier_score=DISCRIMINATOR_SCORE, options=paper_options("gan")),
    ModelSpec("wgan", "Wasserstein GAN with weight clipping (c = 0.01, RMSProp, 5 critic steps per "
                      "generator step), as published",
              frozenset(DataKind), IMPLICIT, dequantize=True, reference=ARJOVSKY, outlier_score=CRITIC_SCORE,
              options=paper_options("wgan")),
    ModelSpec("wgan-gp", "Wasserstein GAN with gradient penalty (lambda 10 on images, 0.1 on 2-D data; "
                         "Adam(0.5, 0.9); 5 critic steps per generator step)",
              frozenset(DataKind), IMPLICIT, dequantize=True, reference=GULRAJANI, outlier_score=CRITIC_SCORE,
              options=paper_options("wgan-gp")),
)


@hookimpl
def evalgen_family() -> FamilyInfo:
    return FamilyInfo(name="gan", summary="implicit models: GAN, WGAN and WGAN-GP (no likelihood)",
                      models=MODELS, version="0.1.0", options=FAMILY_OPTIONS)


def _networks(dataset: DatasetInfo, config: Mapping[str, Any]) -> tuple[nn.Module, nn.Module, int]:
    image = len(dataset.shape) == 3
    networks = config["networks"] or ("conv" if conv_fits(dataset.shape) else "mlp")
    if networks == "conv" and not conv_fits(dataset.shape):
        raise ValueError(f"conv networks need square images with a side that is a multiple of 4, got {dataset.shape}")
    latent = config["latent"] or (2 if dataset.num_dims <= 2 else 64)
    if networks == "conv":
        channels = config["channels"]
        return ConvGenerator(dataset.shape, latent, channels), ConvDiscriminator(dataset.shape, channels), latent
    hidden, depth = config["hidden"], config["depth"]
    return (MLPGenerator(dataset.shape, latent, hidden, depth, bounded=image),
            MLPDiscriminator(dataset.shape, hidden, depth), latent)


@hookimpl
def evalgen_build_model(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
    if model_name not in PAPER_DEFAULTS:
        raise ValueError(f"unknown gan model {model_name!r}; choose from {sorted(PAPER_DEFAULTS)}")
    generator, discriminator, latent = _networks(dataset, config)
    gp_weight = config["gp_weight"]
    settings = Settings(
        objective=model_name,
        n_critic=config["n_critic"],
        clip=config["clip"],
        gp_weight=gp_weight if gp_weight is not None else (10.0 if len(dataset.shape) == 3 else 0.1),
        ema=config["ema"],
        divergence_window=config["divergence_window"],
    )
    if settings.n_critic < 1 or not 0 <= settings.ema < 1:
        raise ValueError("n_critic must be >= 1 and ema in [0, 1)")
    return GAN(dataset.shape, latent, generator, discriminator, settings, image=len(dataset.shape) == 3)


def _optimizer(params, config: Mapping[str, Any], lr_key: str) -> torch.optim.Optimizer:
    lr = config[lr_key] if config["lr"] is None else config["lr"]
    if config["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=(config["beta1"], config["beta2"]))


@hookimpl
def evalgen_configure_optimizers(model: GAN, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    return {"discriminator": _optimizer(model.discriminator.parameters(), config, "lr_d"),
            "generator": _optimizer(model.generator.parameters(), config, "lr_g")}


@hookimpl
def evalgen_train_step(model: GAN, batch: Batch, state: TrainState) -> Mapping[str, Any]:
    return training.train_step(model, batch.x, state)


@hookimpl
def evalgen_sample(model: GAN, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    return model.sample(num_samples, generator)


@hookimpl
def evalgen_outlier_score(model: GAN, x: torch.Tensor) -> torch.Tensor:
    return -model.score(x)
