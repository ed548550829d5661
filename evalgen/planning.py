"""Turn command-line choices into the list of runs, rejecting unknown names up front."""

from __future__ import annotations

from typing import Any

from evalgen.errors import EvalgenError, unknown_name
from evalgen.options import declared_options, resolve_for_models
from evalgen.plugins import Plugins
from evalgen.runspec import RunSpec
from evalgen.types import FamilyInfo, ModelSpec

BASELINE_FAMILY = "baselines"
#: The dataset of ``evalgen run`` when neither ``--dataset`` nor the family names one.
DEFAULT_DATASET = "digits"


def default_dataset(plugins: Plugins, plugin: str) -> str:
    """The dataset ``evalgen run --plugin <plugin>`` uses without ``--dataset``: the family's
    ``default_dataset``, else `DEFAULT_DATASET`. A name that is not registered is an error with a
    "did you mean" hint, like a mistyped ``--dataset``."""
    name = plugins.family(plugin).default_dataset or DEFAULT_DATASET
    if name not in plugins.datasets:
        error = unknown_name("dataset", name, plugins.datasets.names())
        raise EvalgenError(f"default dataset of plugin '{plugin}' (FamilyInfo.default_dataset): {error}; "
                           f"pass --dataset to choose one")
    return name


def canonical_options(family: FamilyInfo, chosen: list[ModelSpec], config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each chosen model's options as its runs' `RunSpec.config`: checked against what it declares
    (an unknown key, a wrong type or range fails here, before anything loads) and holding only the
    values that differ from its defaults (see `evalgen.options.resolve_for_models`)."""
    declared = {m.name: declared_options(family, m) for m in chosen}
    return {name: canonical for name, (canonical, _) in resolve_for_models(family.name, declared, config).items()}


def plan_specs(plugins: Plugins, plugin: str, models: list[str], dataset: str | None, budget: str,
               seeds: int, config: dict[str, Any], baseline: bool,
               importance_samples: int | None = None) -> list[RunSpec]:
    """Every (model, seed) run the command asks for, plus the baseline reference if wanted.

    Names and plugin options are checked before any data is loaded, so a typo fails in a second.
    ``dataset`` None means the family's default (`default_dataset`). Models that need labels are
    left out on unlabelled datasets unless named. ``importance_samples`` applies to the models whose
    likelihood is importance-sampled. Each run's ``config`` holds the options that differ from its
    model's defaults (`canonical_options`).
    """
    family = plugins.family(plugin)
    if dataset is None:
        dataset = default_dataset(plugins, plugin)
    data_spec = plugins.datasets.get(dataset)
    plugins.budgets.get(budget)
    if models:
        chosen = [family.model(m) for m in models]
        for spec in chosen:  # whether the data has labels is known once loaded: checked then
            problem = spec.unfit_reason(data_spec.kind, data_spec.num_dims, None)
            if problem is not None:
                raise EvalgenError(f"{plugin}:{spec.name} cannot be trained on dataset '{dataset}': {problem}")
    else:
        chosen = [m for m in family.models
                  if m.unfit_reason(data_spec.kind, data_spec.num_dims, data_spec.labelled) is None]
        if not chosen:
            raise EvalgenError(f"no model of plugin '{plugin}' supports {data_spec.kind.value} data "
                               f"(dataset '{dataset}')")
    if importance_samples is not None and importance_samples < 1:
        raise EvalgenError(f"--importance-samples must be at least 1, got {importance_samples}")
    options = canonical_options(family, chosen, config)
    runs = [RunSpec(plugin, m.name, dataset, budget, seed, dict(options[m.name]),
                    importance_samples if m.likelihood.sample_count is not None else None)
            for m in chosen for seed in range(seeds)]
    if baseline and plugin != BASELINE_FAMILY and BASELINE_FAMILY in plugins.families:
        floor = next((m for m in plugins.families[BASELINE_FAMILY].models
                      if data_spec.kind in m.data_kinds), None)
        if floor is not None:
            runs = [RunSpec(BASELINE_FAMILY, floor.name, dataset, budget, seed)
                    for seed in range(seeds)] + runs
    return runs
