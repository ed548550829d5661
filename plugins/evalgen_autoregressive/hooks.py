"""The `autoregressive` family's hook implementations: NADE, MADE and the gated PixelCNN."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from evalgen import Batch, DataKind, DatasetInfo, FamilyInfo, ModelSpec, Option, TrainState, hookimpl

DISCRETE = frozenset({DataKind.BINARY, DataKind.DISCRETE})

#: The options (``-o key=value``) every model takes, and each model's own.
FAMILY_OPTIONS = (
    Option("lr", float, 1e-3, "Adam's learning rate", minimum=0.0),
    Option("clip", float, 100.0, "gradient-norm clipping threshold", minimum=0.0),
)
HIDDEN = Option("hidden", int, None, "hidden units; default by data size: 500 for D > 256, else 100", minimum=1)
PIXELCNN_OPTIONS = (
    Option("channels", int, 32, "channels of each stack", minimum=1),
    Option("layers", int, 5, "gated layers", minimum=1),
    Option("output", str, "categorical", "the per-pixel distribution", choices=("categorical", "logistic_mixture")),
    Option("mixtures", int, 5, "components of the logistic mixture (output=logistic_mixture)", minimum=1),
    Option("gated", bool, True, "vertical and horizontal gated stacks (false: masked 3x3 convolutions)"),
)

MODELS = (
    ModelSpec("nade", "NADE: shared-weight sigmoid MLP, raster order, O(DH) likelihood and sampling; "
                      "Bernoulli or categorical conditionals", DISCRETE,
              reference="Larochelle & Murray 2011, The Neural Autoregressive Distribution Estimator",
              options=(HIDDEN,)),
    ModelSpec("made", "MADE: masked MLP; -o num_masks=K trains order-agnostically over K masks and "
                      "evaluates their exact ensemble", DISCRETE,
              reference="Germain, Gregor, Murray & Larochelle 2015, MADE",
              options=(HIDDEN, Option("depth", int, 1, "hidden layers", minimum=1),
                       Option("num_masks", int, 1, "orderings trained over; the likelihood is their exact ensemble",
                              minimum=1))),
    ModelSpec("pixelcnn", "gated PixelCNN (vertical and horizontal stacks, no blind spot), categorical "
                          "or discretized-logistic-mixture output", DISCRETE,
              reference="van den Oord et al. 2016, Conditional Image Generation with PixelCNN Decoders",
              options=PIXELCNN_OPTIONS),
)


def default_hidden(num_dims: int) -> int:
    """500 hidden units for MNIST-sized data (Larochelle & Murray 2011; Germain et al. 2015),
    fewer for the 8x8 digits, whose ~1,300 training images a 500-unit net overfits in seconds."""
    return 500 if num_dims > 256 else 100


@hookimpl
def evalgen_family() -> FamilyInfo:
    return FamilyInfo(name="autoregressive", summary="autoregressive models with exact likelihoods: NADE, "
                                                     "MADE, gated PixelCNN", models=MODELS, version="0.1.0",
                      options=FAMILY_OPTIONS)


@hookimpl
def evalgen_build_model(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
    if dataset.levels is None:
        raise ValueError("autoregressive models here are mass functions over levels; continuous data is not supported")
    if model_name == "nade":
        from .nade import NADE

        return NADE(dataset.shape, dataset.levels, config["hidden"] or default_hidden(math.prod(dataset.shape)))
    if model_name == "made":
        from .made import MADE

        return MADE(dataset.shape, dataset.levels, config["hidden"] or default_hidden(math.prod(dataset.shape)),
                    depth=config["depth"], num_masks=config["num_masks"])
    if model_name == "pixelcnn":
        from .pixelcnn import PixelCNN

        if len(dataset.shape) != 3:
            raise ValueError(f"pixelcnn needs images (C, H, W), got shape {dataset.shape}")
        return PixelCNN(dataset.shape, dataset.levels, channels=config["channels"], layers=config["layers"],
                        output=config["output"], mixtures=config["mixtures"], gated=config["gated"])
    raise ValueError(f"unknown autoregressive model {model_name!r}; choose from made, nade, pixelcnn")


@hookimpl
def evalgen_configure_optimizers(model: nn.Module, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    return {"model": torch.optim.Adam(model.parameters(), lr=config["lr"])}


@hookimpl
def evalgen_train_step(model: nn.Module, batch: Batch, state: TrainState) -> Mapping[str, Any]:
    opt = state.optimizers["model"]
    loss = model.loss(batch.x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), state.config["clip"])
    opt.step()
    return {"loss/nll": loss.detach(), "grad_norm/model": norm.detach()}


@hookimpl
def evalgen_sample(model: nn.Module, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    return model.sample(num_samples, generator)


@hookimpl
def evalgen_log_prob(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.log_prob(x)
