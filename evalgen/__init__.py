"""evalgen: train generative models under a standardized budget and compare them honestly.

This module is the public API for plugin authors; everything else is internal.
"""

from evalgen.budgets import Budget
from evalgen.datasets.base import Dataset, DatasetSpec, LoadContext, ModeSet, Split
from evalgen.distributions import Bernoulli, Categorical, DiscretizedLogistic, LogisticMixture
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
from evalgen.version import __version__

__all__ = [
    "Batch",
    "Bernoulli",
    "Budget",
    "Categorical",
    "DataKind",
    "DataUnavailableError",
    "Dataset",
    "DatasetInfo",
    "DatasetSpec",
    "DiscretizedLogistic",
    "EvalgenError",
    "FamilyInfo",
    "Likelihood",
    "LikelihoodKind",
    "LoadContext",
    "LogisticMixture",
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
