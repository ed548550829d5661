"""evalgen: train generative models under a standardized budget and compare them honestly.

This module is the public API for plugin authors; everything else is internal.
"""

from evalgen.budgets import Budget
from evalgen.datasets.base import Dataset, DatasetSpec, LoadContext, ModeSet, Split
from evalgen.errors import DataUnavailableError, EvalgenError, PluginContractError, TrainingDiverged
from evalgen.hookspecs import hookimpl
from evalgen.metrics.bounds import importance_weighted_bound, iwae_likelihood, log_mean_exp
from evalgen.metrics.registry import MetricInputs, MetricSpec
from evalgen.types import (
    Batch,
    DataKind,
    DatasetInfo,
    FamilyInfo,
    Likelihood,
    LikelihoodKind,
    ModelSpec,
    Representation,
    TrainState,
)

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "Budget",
    "DataKind",
    "DataUnavailableError",
    "Dataset",
    "DatasetInfo",
    "DatasetSpec",
    "EvalgenError",
    "FamilyInfo",
    "Likelihood",
    "LikelihoodKind",
    "LoadContext",
    "MetricInputs",
    "MetricSpec",
    "ModeSet",
    "ModelSpec",
    "PluginContractError",
    "Representation",
    "Split",
    "TrainState",
    "TrainingDiverged",
    "__version__",
    "hookimpl",
    "importance_weighted_bound",
    "iwae_likelihood",
    "log_mean_exp",
]
