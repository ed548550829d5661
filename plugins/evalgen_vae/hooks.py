"""The `vae` family's hook implementations."""

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
    ModelSpec,
    Option,
    TrainState,
    hookimpl,
    iwae_likelihood,
)

from .likelihoods import DECODERS, default_decoder, make_decoder
from .networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from .vae import VAE

ALL_KINDS = frozenset(DataKind)
IMAGE_KINDS = frozenset({DataKind.BINARY, DataKind.DISCRETE})
KINGMA = "Kingma & Welling 2014, Auto-Encoding Variational Bayes"
BURDA = "Burda, Grosse & Salakhutdinov 2016, Importance Weighted Autoencoders"

#: k of the training objective per model (the option ``train_samples``'s default).
TRAIN_SAMPLES = {"vae": 1, "vae-conv": 1, "iwae": 5, "cvae": 1}
#: Weight of the KL term in the training ELBO (the option ``kl_weight``'s default). The conditional
#: VAE trains with beta = 4 (Higgins et al. 2017): at beta = 1 the latent keeps much of the
#: class and samples often ignore the requested label (on MNIST 86.5% of conditional samples had
#: the asked class after 8,000 steps; at beta = 4, 93.5-95.2% over three seeds after 10,000).
#: The reported likelihood is the IWAE bound of the trained model either way.
KL_WEIGHT = {"vae": 1.0, "vae-conv": 1.0, "iwae": 1.0, "cvae": 4.0}

#: The options every model takes (``-o key=value``); `_own_options` adds each model's defaults.
FAMILY_OPTIONS = (
    Option("latent", int, None, "latent dimensions; default by data size: 2 for D <= 16, 16 for D <= 256, else 50",
           minimum=1),
    Option("hidden", int, None, "hidden units of the MLPs (and of the cvae classifier); default by data size: "
                                "64 for D <= 16, 128 for D <= 256, else 200", minimum=1),
    Option("depth", int, 2, "hidden layers of the MLP encoder and decoder", minimum=1),
    Option("channels", int, 32, "channels of the convolutional encoder and decoder", minimum=1),
    Option("decoder", str, None, "p(x|z); default by data: bernoulli (2 levels), categorical (<= 32 levels), "
                                 "logistic-mixture (more), gaussian (continuous)", choices=tuple(sorted(DECODERS))),
    Option("lr", float, 1e-3, "Adam's learning rate", minimum=0.0),
    Option("clip", float, 100.0, "gradient-norm clipping threshold", minimum=0.0),
)


def _own_options(model_name: str) -> tuple[Option, ...]:
    return (Option("networks", str, "conv" if model_name == "vae-conv" else "mlp",
                   "encoder and decoder networks", choices=("mlp", "conv")),
            Option("train_samples", int, TRAIN_SAMPLES[model_name],
                   "importance samples k of the training objective (1 = the ELBO)", minimum=1),
            Option("kl_weight", float, KL_WEIGHT[model_name], "weight (beta) of the KL term in the training ELBO",
                   minimum=0.0))


MODELS = (
    ModelSpec("vae", "VAE, MLP encoder/decoder (2x tanh hidden layers), Gaussian latent, trained on the ELBO",
              ALL_KINDS, iwae_likelihood(), reference=KINGMA, options=_own_options("vae")),
    ModelSpec("vae-conv", "VAE with a convolutional encoder/decoder, trained on the ELBO",
              IMAGE_KINDS, iwae_likelihood(), reference=KINGMA, options=_own_options("vae-conv")),
    ModelSpec("iwae", "importance-weighted autoencoder: the MLP VAE trained on the IWAE bound with k=5",
              ALL_KINDS, iwae_likelihood(), reference=BURDA, options=_own_options("iwae")),
    ModelSpec("cvae", "conditional VAE on class labels with a classifier q(y|x), trained with beta=4 on the KL; "
                      "samples draw y from p(y)",
              IMAGE_KINDS, iwae_likelihood(), needs_labels=True,
              reference="Kingma, Rezende, Mohamed & Welling 2014, Semi-supervised Learning with Deep "
                        "Generative Models (M2); Sohn, Lee & Yan 2015 (CVAE)", options=_own_options("cvae")),
)


def default_sizes(num_dims: int) -> tuple[int, int]:
    """(hidden, latent): Burda et al.'s 200 hidden units and 50 latents for MNIST-sized images;
    smaller for 8x8 digits, whose ~1,300 training images a larger net overfits in minutes;
    a 2-D latent for the 2-D toys."""
    if num_dims <= 16:
        return 64, 2
    return (200, 50) if num_dims > 256 else (128, 16)


@hookimpl
def evalgen_family() -> FamilyInfo:
    return FamilyInfo(name="vae", summary="variational autoencoders with IWAE lower bounds: VAE, IWAE, CVAE",
                      models=MODELS, version="0.1.0", options=FAMILY_OPTIONS)


def _networks(model_name: str, dataset: DatasetInfo, params_per_dim: int, config: Mapping[str, Any],
              num_labels: int) -> tuple[nn.Module, nn.Module, int]:
    hidden_d, latent_d = default_sizes(dataset.num_dims)
    latent = config["latent"] or latent_d
    if config["networks"] == "conv":
        if len(dataset.shape) != 3:
            raise ValueError(f"vae-conv needs images (C, H, W), got shape {dataset.shape}")
        channels = config["channels"]
        return (ConvEncoder(dataset.shape, latent, channels, num_labels),
                ConvDecoder(dataset.shape, params_per_dim, latent, channels, num_labels), latent)
    hidden = config["hidden"] or hidden_d
    depth = config["depth"]
    return (MLPEncoder(dataset.num_dims, latent, hidden, depth, num_labels),
            MLPDecoder(dataset.num_dims, params_per_dim, latent, hidden, depth, num_labels), latent)


@hookimpl
def evalgen_build_model(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
    if model_name not in TRAIN_SAMPLES:
        raise ValueError(f"unknown vae model {model_name!r}; choose from {sorted(TRAIN_SAMPLES)}")
    pixel = make_decoder(config["decoder"] or default_decoder(dataset.levels), dataset.levels)
    conditional = model_name == "cvae"
    if conditional and not dataset.label_counts:
        raise ValueError(f"cvae needs class labels; dataset '{dataset.name}' has none")
    num_labels = len(dataset.label_counts) if conditional else 0
    encoder, decoder, latent = _networks(model_name, dataset, pixel.params_per_dim, config, num_labels)
    classifier = None
    if conditional:
        hidden = config["hidden"] or default_sizes(dataset.num_dims)[0]
        classifier = nn.Sequential(nn.Linear(dataset.num_dims, hidden), nn.ReLU(), nn.Linear(hidden, num_labels))
    return VAE(dataset.shape, dataset.levels, encoder, decoder, pixel, latent,
               train_samples=config["train_samples"],
               label_counts=dataset.label_counts if conditional else None, classifier=classifier,
               kl_weight=config["kl_weight"])


@hookimpl
def evalgen_configure_optimizers(model: nn.Module, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    return {"model": torch.optim.Adam(model.parameters(), lr=config["lr"])}


@hookimpl
def evalgen_train_step(model: VAE, batch: Batch, state: TrainState) -> Mapping[str, Any]:
    opt = state.optimizers["model"]
    losses = model.loss(batch.x, batch.y)
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), state.config["clip"])
    opt.step()
    return {name: value.detach() for name, value in losses.items()}


@hookimpl
def evalgen_sample(model: VAE, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    return model.sample(num_samples, generator)


@hookimpl
def evalgen_log_prob(model: VAE, x: torch.Tensor, num_importance_samples: int) -> torch.Tensor:
    return model.log_prob(x, num_importance_samples)
