"""`ResolvedRun`: one `RunSpec` resolved once, the object training and evaluation are handed.

`resolve_run` looks up the family, the model variant and the budget, checks that the model fits
the loaded dataset (`ModelSpec.unfit_reason`, the rule planning and the kit apply too), resolves
the plugin options (defaults filled in) and binds the family's checked hooks; nothing after it
resolves ``spec.plugin`` again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from evalgen.budgets import Budget
from evalgen.datasets.base import Dataset
from evalgen.errors import EvalgenError
from evalgen.harness.contract import CheckedHooks
from evalgen.options import declared_options, resolve_options
from evalgen.plugins import Plugins
from evalgen.runspec import RunSpec
from evalgen.types import DatasetInfo, FamilyInfo, ModelSpec, Representation

__all__ = ["ResolvedRun", "resolve_run"]


@dataclass(frozen=True)
class ResolvedRun:
    """Everything one run is about, resolved.

    Attributes:
        spec: what was asked for (the record's identity).
        family, model: the family and the model variant, as declared.
        budget: the budget's definition.
        dataset: the loaded dataset (stored values, every split).
        info: the dataset as this model sees it (its representation).
        hooks: the family's hooks for this model, every call checked; its likelihood has been
            described under ``options`` (`CheckedHooks.describe_likelihood`).
        options: every option the hooks get (declared ones with defaults filled in).
        recorded_options: what the record keeps of them: None when the model declares none.
    """

    spec: RunSpec
    family: FamilyInfo
    model: ModelSpec
    budget: Budget
    dataset: Dataset
    info: DatasetInfo
    hooks: CheckedHooks
    options: dict[str, Any]
    recorded_options: dict[str, Any] | None

    @property
    def label(self) -> str:
        return f"{self.spec.plugin}:{self.spec.model}"

    @property
    def representation(self) -> Representation:
        return self.info.representation


def resolve_run(spec: RunSpec, plugins: Plugins, dataset: Dataset) -> ResolvedRun:
    """Resolve ``spec`` against the loaded ``plugins`` and its loaded ``dataset``; a model that
    does not fit the dataset is one EvalgenError saying why."""
    family = plugins.family(spec.plugin)
    model = family.model(spec.model)
    budget = plugins.budgets.get(spec.budget)
    problem = model.unfit_reason(dataset.kind, math.prod(dataset.shape), bool(dataset.num_classes))
    if problem is not None:
        raise EvalgenError(f"{spec.plugin}:{spec.model} cannot be trained on dataset '{spec.dataset}': {problem}")
    declared = declared_options(family, model)
    _, options = resolve_options(f"{spec.plugin}:{spec.model}", declared, spec.config)
    info = dataset.info(model.representation_for(dataset.kind))
    test_k = budget.importance_samples if spec.importance_samples is None else spec.importance_samples
    hooks = CheckedHooks(plugins.hooks(spec.plugin), model, importance_samples=test_k,
                         valid_importance_samples=min(budget.valid_importance_samples, test_k),
                         representation=info.representation, dequantization_samples=budget.dequantization_samples)
    hooks.describe_likelihood(info, options)
    return ResolvedRun(spec, family, model, budget, dataset, info, hooks, options,
                       None if declared is None else options)
