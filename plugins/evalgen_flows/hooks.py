"""The `flows` family's hook implementations."""

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
    ModelSpec,
    Option,
    Representation,
    TrainState,
    hookimpl,
)

from .coupling import RealNVP
from .layers import DEFAULT_ALPHA, Flow
from .maf import MAF
from .planar import PlanarFlow

ALL_KINDS = frozenset(DataKind)

#: Adam's learning rate per model (the option ``lr``'s default).
DEFAULT_LR = {"planar": 2e-3, "realnvp": 5e-4, "maf": 5e-4}

#: The options every flow takes (``-o key=value``).
FAMILY_OPTIONS = (
    Option("alpha", float, DEFAULT_ALPHA, "logit margin for dequantized data, in (0, 0.5): "
           "x -> logit(alpha + (1 - 2 alpha) x)", minimum=0.0, maximum=0.5),
    Option("weight_decay", float, 0.0, "Adam's weight decay", minimum=0.0),
    Option("clip", float, 100.0, "gradient-norm clipping threshold; 0 = no clipping", minimum=0.0),
)


def _lr(model_name: str) -> Option:
    return Option("lr", float, DEFAULT_LR[model_name], "Adam's learning rate", minimum=0.0)


MODELS = (
    ModelSpec("planar", "planar flow: stacked rank-1 tanh layers, numerically inverted for sampling",
              ALL_KINDS, Likelihood(), dequantize=True,
              reference="Rezende & Mohamed 2015, Variational Inference with Normalizing Flows",
              options=(Option("layers", int, None, "planar layers; default by data size: 32 for D <= 16, else 64",
                              minimum=1), _lr("planar"))),
    ModelSpec("realnvp", "RealNVP: affine coupling layers with alternating masks",
              ALL_KINDS, Likelihood(), dequantize=True,
              reference="Dinh, Sohl-Dickstein & Bengio 2017, Density estimation using Real NVP",
              options=(Option("layers", int, None, "coupling layers; default by data size: 8 for D <= 256, else 6",
                              minimum=1),
                       Option("hidden", int, 128, "hidden units of each coupling network", minimum=1),
                       _lr("realnvp"))),
    ModelSpec("maf", "masked autoregressive flow: stacked MADE layers with order reversal",
              ALL_KINDS, Likelihood(), dequantize=True,
              reference="Papamakarios, Pavlakou & Murray 2017, Masked Autoregressive Flow",
              options=(Option("layers", int, 5, "MADE layers", minimum=1),
                       Option("hidden", int, None, "hidden units of each MADE; default by data size: 256 for "
                                                   "16 < D <= 256, else 128", minimum=1),
                       _lr("maf"))),
)


def default_sizes(model_name: str, dim: int) -> tuple[int, int]:
    """(layers, hidden) for D = ``dim``: 2-D toys (D <= 16), small images such as digits
    (D <= 256, where ~1,300 training images make larger nets overfit within a few hundred
    steps) and MNIST-sized images (a training step at batch 128 stays around 10-30 ms on 2 CPU
    cores). ``hidden`` is unused by planar flows."""
    if model_name == "planar":
        return (32 if dim <= 16 else 64), 0
    if model_name == "realnvp":
        return (8, 128) if dim <= 256 else (6, 128)
    if dim <= 16:
        return 5, 128
    return (5, 256) if dim <= 256 else (5, 128)


@hookimpl
def evalgen_family() -> FamilyInfo:
    return FamilyInfo(name="flows", summary="normalizing flows with exact likelihoods: planar, RealNVP, MAF",
                      models=MODELS, version="0.1.0", options=FAMILY_OPTIONS)


@hookimpl
def evalgen_build_model(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
    if dataset.representation is Representation.LEVELS:
        raise ValueError("flows model dequantized or continuous data, not integer levels")
    dequantized = dataset.representation is Representation.DEQUANTIZED
    shape = tuple(dataset.shape)
    if model_name not in DEFAULT_LR:
        raise ValueError(f"unknown flows model {model_name!r}; choose from {sorted(DEFAULT_LR)}")
    layers_d, hidden_d = default_sizes(model_name, dataset.num_dims)
    layers = config["layers"] or layers_d
    alpha = config["alpha"]
    if model_name == "planar":
        model: Flow = PlanarFlow(shape, layers=layers, dequantized=dequantized, alpha=alpha)
    else:
        hidden = config["hidden"] or hidden_d
        cls = RealNVP if model_name == "realnvp" else MAF
        model = cls(shape, layers=layers, hidden=hidden, dequantized=dequantized, alpha=alpha)
    model.flow_name = model_name
    return model


@hookimpl
def evalgen_configure_optimizers(model: nn.Module, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    return {"model": torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])}


@hookimpl
def evalgen_train_step(model: nn.Module, batch: Batch, state: TrainState) -> Mapping[str, Any]:
    opt = state.optimizers["model"]
    clip = state.config["clip"]
    loss = -model.log_prob(batch.x).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return {"nll": loss.detach()}


@hookimpl
def evalgen_sample(model: nn.Module, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    return model.sample(num_samples, generator).float()


@hookimpl
def evalgen_log_prob(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.log_prob(x)
