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
    Representation,
    TrainState,
    hookimpl,
)

from .coupling import RealNVP
from .layers import DEFAULT_ALPHA, Flow
from .maf import MAF
from .planar import PlanarFlow

ALL_KINDS = frozenset(DataKind)

MODELS = (
    ModelSpec("planar", "planar flow: stacked rank-1 tanh layers, numerically inverted for sampling",
              ALL_KINDS, Likelihood(), dequantize=True,
              reference="Rezende & Mohamed 2015, Variational Inference with Normalizing Flows"),
    ModelSpec("realnvp", "RealNVP: affine coupling layers with alternating masks",
              ALL_KINDS, Likelihood(), dequantize=True,
              reference="Dinh, Sohl-Dickstein & Bengio 2017, Density estimation using Real NVP"),
    ModelSpec("maf", "masked autoregressive flow: stacked MADE layers with order reversal",
              ALL_KINDS, Likelihood(), dequantize=True,
              reference="Papamakarios, Pavlakou & Murray 2017, Masked Autoregressive Flow"),
)

#: learning rates (config ``lr`` overrides)
DEFAULT_LR = {"planar": 2e-3, "realnvp": 5e-4, "maf": 5e-4}


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
                      models=MODELS, version="0.1.0")


def _opt(config: Mapping[str, Any], key: str, default: Any, cast: type) -> Any:
    value = config.get(key) if config is not None else None
    return default if value is None else cast(value)


@hookimpl
def evalgen_build_model(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
    if dataset.representation is Representation.LEVELS:
        raise ValueError("flows model dequantized or continuous data, not integer levels")
    dequantized = dataset.representation is Representation.DEQUANTIZED
    shape = tuple(dataset.shape)
    if model_name not in DEFAULT_LR:
        raise ValueError(f"unknown flows model {model_name!r}; choose from {sorted(DEFAULT_LR)}")
    layers_d, hidden_d = default_sizes(model_name, dataset.num_dims)
    layers = _opt(config, "layers", layers_d, int)
    alpha = _opt(config, "alpha", DEFAULT_ALPHA, float)
    if model_name == "planar":
        model: Flow = PlanarFlow(shape, layers=layers, dequantized=dequantized, alpha=alpha)
    else:
        hidden = _opt(config, "hidden", hidden_d, int)
        cls = RealNVP if model_name == "realnvp" else MAF
        model = cls(shape, layers=layers, hidden=hidden, dequantized=dequantized, alpha=alpha)
    model.flow_name = model_name
    return model


@hookimpl
def evalgen_configure_optimizers(model: nn.Module, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    lr = _opt(config, "lr", DEFAULT_LR.get(getattr(model, "flow_name", ""), 1e-3), float)
    wd = _opt(config, "weight_decay", 0.0, float)
    return {"model": torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)}


@hookimpl
def evalgen_train_step(model: nn.Module, batch: Batch, state: TrainState) -> Mapping[str, Any]:
    opt = state.optimizers["model"]
    clip = _opt(state.config, "clip", 100.0, float)
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
