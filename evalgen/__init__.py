"""evalgen: train generative models under a standardized budget and compare them honestly.

This module is the public API for plugin authors; everything else is internal.
"""

from evalgen.budgets import Budget
from evalgen.datasets.base import Dataset, DatasetSpec, LoadContext, ModeSet, Split
from evalgen.distributions import Bernoulli, Categorical, DiscretizedLogistic, LogisticMixture
from evalgen.errors import DataUnavailableError, EvalgenError, PluginContractError, TrainingDiverged
from evalgen.harness.public_data import load_dataset, split_inputs
from evalgen.hookspecs import hookimpl
from evalgen.metrics.bounds import importance_weighted_bound, iwae_likelihood, log_mean_exp
from evalgen.metrics.columns import MetricColumn
from evalgen.metrics.outlier_scores import OutlierScore, ScoreContext, ScoredSet
from evalgen.metrics.registry import NEEDS, MetricInputs, MetricSpec
from evalgen.types import (
    Batch,
    DataKind,
    DatasetInfo,
    FamilyInfo,
    Likelihood,
    LikelihoodKind,
    ModelSpec,
    Option,
    Representation,
    TrainState,
)
from evalgen.version import __version__

__all__ = [
    "NEEDS",
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
    "MetricColumn",
    "MetricInputs",
    "MetricSpec",
    "ModeSet",
    "ModelSpec",
    "Option",
    "OutlierScore",
    "PluginContractError",
    "Representation",
    "Results",
    "ScoreContext",
    "ScoredSet",
    "Split",
    "TrainState",
    "TrainingDiverged",
    "__version__",
    "evaluate",
    "hookimpl",
    "importance_weighted_bound",
    "iwae_likelihood",
    "load_dataset",
    "log_mean_exp",
    "run",
    "score",
    "split_inputs",
]

#: The notebook API (`evalgen.api`), imported on first use: it loads the harness, the sweeps and
#: the plugins, which themselves import this module.
_API = ("Results", "evaluate", "run", "score")


def __getattr__(name: str):
    if name in _API:
        from evalgen import api

        return getattr(api, name)
    raise AttributeError(f"module 'evalgen' has no attribute {name!r}")
