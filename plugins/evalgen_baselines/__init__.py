"""Independent-pixel baselines: the floor every comparison table needs.

Each model treats the dimensions as independent, so its likelihood is exact and its maximum
likelihood fit is known in closed form (per-dimension frequencies, or mean and variance).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from evalgen import Batch, DataKind, DatasetInfo, FamilyInfo, ModelSpec, Option, TrainState, hookimpl
from evalgen_baselines.models import FactorizedCategorical, FactorizedGaussian

MODELS = (
    ModelSpec(
        "categorical",
        "independent categorical per dimension (Bernoulli for binary data)",
        data_kinds=frozenset({DataKind.BINARY, DataKind.DISCRETE}),
    ),
    ModelSpec(
        "gaussian",
        "independent Gaussian per dimension",
        data_kinds=frozenset({DataKind.CONTINUOUS}),
    ),
)


@hookimpl
def evalgen_family() -> FamilyInfo:
    return FamilyInfo("baselines", "independent-dimension models: the floor of every table", MODELS,
                      options=(Option("lr", float, 0.05, "Adam's learning rate", minimum=0.0),))


@hookimpl
def evalgen_build_model(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
    if model_name == "categorical":
        return FactorizedCategorical(dataset.shape, dataset.levels or 2)
    if model_name == "gaussian":
        return FactorizedGaussian(dataset.shape)
    raise ValueError(f"baselines has no model {model_name!r}")


@hookimpl
def evalgen_configure_optimizers(model: nn.Module, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    return {"model": torch.optim.Adam(model.parameters(), lr=config["lr"])}


@hookimpl
def evalgen_train_step(model: nn.Module, batch: Batch, state: TrainState) -> dict[str, torch.Tensor]:
    optimizer = state.optimizers["model"]
    loss = -model.log_prob(batch.x).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"nll": loss.detach()}


@hookimpl
def evalgen_sample(model: nn.Module, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    return model.sample(num_samples, generator)


@hookimpl
def evalgen_log_prob(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.log_prob(x)
