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
    TrainState,
    hookimpl,
    iwae_likelihood,
)

from .likelihoods import default_decoder, make_decoder
from .networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from .vae import VAE

ALL_KINDS = frozenset(DataKind)
IMAGE_KINDS = frozenset({DataKind.BINARY, DataKind.DISCRETE})
KINGMA = "Kingma & Welling 2014, Auto-Encoding Variational Bayes"
BURDA = "Burda, Grosse & Salakhutdinov 2016, Importance Weighted Autoencoders"

MODELS = (
    ModelSpec("vae", "VAE, MLP encoder/decoder (2x tanh hidden layers), Gaussian latent, trained on the ELBO",
              ALL_KINDS, iwae_likelihood(), reference=KINGMA),
    ModelSpec("vae-conv", "VAE with a convolutional encoder/decoder, trained on the ELBO",
              IMAGE_KINDS, iwae_likelihood(), reference=KINGMA),
    ModelSpec("iwae", "importance-weighted autoencoder: the MLP VAE trained on the IWAE bound with k=5",
              ALL_KINDS, iwae_likelihood(), reference=BURDA),
    ModelSpec("cvae", "conditional VAE on class labels with a classifier q(y|x), trained with beta=4 on the KL; "
                      "samples draw y from p(y)",
              IMAGE_KINDS, iwae_likelihood(), needs_labels=True,
              reference="Kingma, Rezende, Mohamed & Welling 2014, Semi-supervised Learning with Deep "
                        "Generative Models (M2); Sohn, Lee & Yan 2015 (CVAE)"),
)

#: k of the training objective per model (config ``train_samples`` overrides).
TRAIN_SAMPLES = {"vae": 1, "vae-conv": 1, "iwae": 5, "cvae": 1}
#: Weight of the KL term in the training ELBO (config ``kl_weight`` overrides). The conditional
#: VAE trains with beta = 4 (Higgins et al. 2017): at beta = 1 the latent keeps much of the
#: class and samples often ignore the requested label (on MNIST 86.5% of conditional samples had
#: the asked class after 8,000 steps; at beta = 4, 93.5-95.2% over three seeds after 10,000).
#: The reported likelihood is the IWAE bound of the trained model either way.
KL_WEIGHT = {"vae": 1.0, "vae-conv": 1.0, "iwae": 1.0, "cvae": 4.0}


def default_sizes(num_dims: int) -> tuple[int, int]:
    """(hidden, latent): Burda et al.'s 200 hidden units and 50 latents for MNIST-sized images;
    smaller for 8x8 digits, whose ~1,300 training images a larger net overfits in minutes;
    a 2-D latent for the 2-D toys."""
    if num_dims <= 16:
        return 64, 2
    return (200, 50) if num_dims > 256 else (128, 16)


def _opt(config: Mapping[str, Any] | None, key: str, default: Any, cast: type) -> Any:
    value = config.get(key) if config is not None else None
    return default if value is None else cast(value)


@hookimpl
def evalgen_family() -> FamilyInfo:
    return FamilyInfo(name="vae", summary="variational autoencoders with IWAE lower bounds: VAE, IWAE, CVAE",
                      models=MODELS, version="0.1.0")


def _networks(model_name: str, dataset: DatasetInfo, params_per_dim: int, config: Mapping[str, Any],
              num_labels: int) -> tuple[nn.Module, nn.Module, int]:
    hidden_d, latent_d = default_sizes(dataset.num_dims)
    latent = _opt(config, "latent", latent_d, int)
    networks = _opt(config, "networks", "conv" if model_name == "vae-conv" else "mlp", str)
    if networks not in ("mlp", "conv"):
        raise ValueError(f"networks must be 'mlp' or 'conv', got {networks!r}")
    if networks == "conv":
        if len(dataset.shape) != 3:
            raise ValueError(f"vae-conv needs images (C, H, W), got shape {dataset.shape}")
        channels = _opt(config, "channels", 32, int)
        return (ConvEncoder(dataset.shape, latent, channels, num_labels),
                ConvDecoder(dataset.shape, params_per_dim, latent, channels, num_labels), latent)
    hidden = _opt(config, "hidden", hidden_d, int)
    depth = _opt(config, "depth", 2, int)
    return (MLPEncoder(dataset.num_dims, latent, hidden, depth, num_labels),
            MLPDecoder(dataset.num_dims, params_per_dim, latent, hidden, depth, num_labels), latent)


@hookimpl
def evalgen_build_model(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
    if model_name not in TRAIN_SAMPLES:
        raise ValueError(f"unknown vae model {model_name!r}; choose from {sorted(TRAIN_SAMPLES)}")
    pixel = make_decoder(_opt(config, "decoder", default_decoder(dataset.levels), str), dataset.levels)
    conditional = model_name == "cvae"
    if conditional and not dataset.label_counts:
        raise ValueError(f"cvae needs class labels; dataset '{dataset.name}' has none")
    num_labels = len(dataset.label_counts) if conditional else 0
    encoder, decoder, latent = _networks(model_name, dataset, pixel.params_per_dim, config, num_labels)
    classifier = None
    if conditional:
        hidden = _opt(config, "hidden", default_sizes(dataset.num_dims)[0], int)
        classifier = nn.Sequential(nn.Linear(dataset.num_dims, hidden), nn.ReLU(), nn.Linear(hidden, num_labels))
    return VAE(dataset.shape, dataset.levels, encoder, decoder, pixel, latent,
               train_samples=_opt(config, "train_samples", TRAIN_SAMPLES[model_name], int),
               label_counts=dataset.label_counts if conditional else None, classifier=classifier,
               kl_weight=_opt(config, "kl_weight", KL_WEIGHT[model_name], float))


@hookimpl
def evalgen_configure_optimizers(model: nn.Module, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    return {"model": torch.optim.Adam(model.parameters(), lr=_opt(config, "lr", 1e-3, float))}


@hookimpl
def evalgen_train_step(model: VAE, batch: Batch, state: TrainState) -> Mapping[str, Any]:
    opt = state.optimizers["model"]
    losses = model.loss(batch.x, batch.y)
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), _opt(state.config, "clip", 100.0, float))
    opt.step()
    return {name: value.detach() for name, value in losses.items()}


@hookimpl
def evalgen_sample(model: VAE, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    return model.sample(num_samples, generator)


@hookimpl
def evalgen_log_prob(model: VAE, x: torch.Tensor, num_importance_samples: int) -> torch.Tensor:
    return model.log_prob(x, num_importance_samples)
