"""Plugin loading: entry points, isolation of broken plugins, family lookup, registries."""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from evalgen import hookspecs
from evalgen.budgets import Budget
from evalgen.datasets.base import DatasetSpec
from evalgen.errors import EvalgenError, unknown_name
from evalgen.metrics.outlier_scores import OutlierScore
from evalgen.metrics.registry import MetricSpec
from evalgen.registry import Registry, check_name
from evalgen.types import FamilyInfo, LikelihoodKind

ENTRY_POINT_GROUP = "evalgen"
#: Comma-separated entry-point names to load; unset loads all, "" loads none.
PLUGINS_ENV = "EVALGEN_PLUGINS"
FAMILY_HOOKS = (
    "evalgen_build_model",
    "evalgen_configure_optimizers",
    "evalgen_train_step",
    "evalgen_sample",
    "evalgen_log_prob",
    "evalgen_outlier_score",
    "evalgen_describe_likelihood",
    "evalgen_likelihood_details",
    "evalgen_weights_sha256",
)
#: Family names no plugin may declare: ``samples`` names the rows of external samples
#: (`evalgen.record_types.EXTERNAL_PLUGIN`).
RESERVED_FAMILIES = ("samples",)


#: What every family implements; ``evalgen_log_prob`` too when any of its models has a likelihood.
REQUIRED_HOOKS = ("evalgen_build_model", "evalgen_train_step", "evalgen_sample")


def required_hooks(family: FamilyInfo) -> list[str]:
    """The hooks ``family`` must implement, given its models' likelihoods."""
    needed = list(REQUIRED_HOOKS)
    if any(spec.likelihood.kind is not LikelihoodKind.NONE for spec in family.models):
        needed.append("evalgen_log_prob")
    return needed


def _missing_hooks(pm: pluggy.PluginManager, obj: object, family: FamilyInfo) -> list[str]:
    implemented = {caller.name for caller in pm.get_hookcallers(obj) or []}
    return [hook for hook in required_hooks(family) if hook not in implemented]


def _builtin_modules() -> list[ModuleType]:
    from evalgen import budget_presets
    from evalgen.datasets import builtin as builtin_datasets
    from evalgen.metrics import builtin as builtin_metrics

    return [budget_presets, builtin_datasets, builtin_metrics]


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or registered, and why."""

    name: str
    error: str


@dataclass(frozen=True)
class LoadedPlugin:
    name: str
    version: str
    family: FamilyInfo | None


class FamilyHooks:
    """The hook callers of one family: its own implementations plus every wrapper."""

    def __init__(self, pm: pluggy.PluginManager, family: FamilyInfo, others: list[object]) -> None:
        self.family = family
        for name in FAMILY_HOOKS:
            caller = pm.subset_hook_caller(name, remove_plugins=others)
            setattr(self, name.removeprefix("evalgen_"), caller)

    build_model: Callable[..., Any]
    configure_optimizers: Callable[..., Any]
    train_step: Callable[..., Any]
    sample: Callable[..., Any]
    log_prob: Callable[..., Any]
    outlier_score: Callable[..., Any]
    describe_likelihood: Callable[..., Any]
    likelihood_details: Callable[..., Any]
    weights_sha256: Callable[..., Any]


@dataclass
class Plugins:
    """Everything that plugins contributed, ready to use."""

    pm: pluggy.PluginManager
    loaded: list[LoadedPlugin] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    families: dict[str, FamilyInfo] = field(default_factory=dict)
    datasets: Registry[DatasetSpec] = field(default_factory=lambda: Registry("dataset"))
    budgets: Registry[Budget] = field(default_factory=lambda: Registry("budget"))
    metrics: Registry[MetricSpec] = field(default_factory=lambda: Registry("metric"))
    outlier_scores: Registry[OutlierScore] = field(default_factory=lambda: Registry("outlier score"))
    _family_plugins: dict[str, object] = field(default_factory=dict)
    _hooks: dict[str, FamilyHooks] = field(default_factory=dict)

    def family(self, name: str) -> FamilyInfo:
        if name not in self.families:
            broken = [f for f in self.failures if f.name == name]
            if broken:
                raise EvalgenError(f"plugin '{name}' is installed but failed to load: {broken[0].error}")
            raise unknown_name("plugin", name, self.families)
        return self.families[name]

    def hooks(self, family_name: str) -> FamilyHooks:
        """Hook callers that reach only ``family_name``'s implementations (plus wrappers)."""
        if family_name not in self._hooks:
            family = self.family(family_name)
            others = [p for n, p in self._family_plugins.items() if n != family_name]
            self._hooks[family_name] = FamilyHooks(self.pm, family, others)
        return self._hooks[family_name]

    def plugin_version(self, family_name: str) -> str:
        for plugin in self.loaded:
            if plugin.family is not None and plugin.family.name == family_name:
                return plugin.version
        return ""


def _requested_names() -> set[str] | None:
    raw = os.environ.get(PLUGINS_ENV)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _distribution_version(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else ""


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    return [
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if caller.spec is None
    ]


def _register(plugins: Plugins, name: str, obj: object, version: str) -> None:
    pm = plugins.pm
    try:
        pm.register(obj, name=name)
    except Exception as exc:  # pluggy validation errors, duplicate names
        plugins.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))
        return
    unknown = _unknown_hooks(pm, obj)
    family = None
    try:
        if unknown:
            raise EvalgenError(f"implements unknown hook(s) {', '.join(unknown)}")
        family = _declared_family(pm, obj)
        if family is not None and family.name in RESERVED_FAMILIES:
            raise EvalgenError(f"declares family '{family.name}', a name evalgen reserves (for external samples)")
        if family is not None and family.name in plugins.families:
            raise EvalgenError(f"declares family '{family.name}', already declared by another plugin")
        missing = [] if family is None else _missing_hooks(pm, obj, family)
        if missing:  # found now, with its name, rather than as "returned None" in the middle of a run
            raise EvalgenError(f"family '{family.name}' does not implement {', '.join(missing)} "
                               f"(see docs/plugins.md for each hook)")
    except Exception as exc:
        pm.unregister(obj)
        plugins.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))
        return
    if family is not None:
        plugins.families[family.name] = family
        plugins._family_plugins[family.name] = obj
    plugins.loaded.append(LoadedPlugin(name, version, family))


def _declared_family(pm: pluggy.PluginManager, obj: object) -> FamilyInfo | None:
    for impl in pm.hook.evalgen_family.get_hookimpls():
        if impl.plugin is obj:
            info = impl.function()
            if not isinstance(info, FamilyInfo):
                raise EvalgenError(f"evalgen_family returned {type(info).__name__}, expected FamilyInfo")
            check_name("family", info.name)
            for spec in info.models:
                check_name(f"model of family '{info.name}'", spec.name)
            return info
    return None


def _collect_registrations(plugins: Plugins) -> None:
    hooks = plugins.pm.hook
    for hook, registry in ((hooks.evalgen_register_budgets, plugins.budgets),
                           (hooks.evalgen_register_datasets, plugins.datasets),
                           (hooks.evalgen_register_metrics, plugins.metrics),
                           (hooks.evalgen_register_outlier_scores, plugins.outlier_scores)):
        for impl in hook.get_hookimpls():  # registration order: built-ins first
            owner = impl.plugin_name
            try:
                impl.function(register=functools.partial(registry.register, owner=owner))
            except Exception as exc:
                plugins.failures.append(PluginFailure(owner, f"{type(exc).__name__}: {exc}"))
    _add_score_columns(plugins)


def _add_score_columns(plugins: Plugins) -> None:
    """Give each outlier score a plugin registered an AUROC column of the outliers metric (the
    built-in scores' columns are declared with it)."""
    from evalgen.metrics.builtin import BUILTIN_METRICS, score_column
    from evalgen.metrics.outlier_scores import BUILTIN_SCORES

    builtin = {score.name for score in BUILTIN_SCORES}
    extra = tuple(score_column(score) for score in plugins.outlier_scores if score.name not in builtin)
    outliers = next(metric for metric in BUILTIN_METRICS if metric.name == "outliers")
    if extra and "outliers" in plugins.metrics and plugins.metrics.get("outliers") is outliers:
        higher = {**outliers.higher_is_better, **{column.field: True for column in extra}}
        plugins.metrics.replace(dataclasses.replace(outliers, columns=outliers.columns + extra,
                                                    higher_is_better=higher))


def load_plugins(extra: list[tuple[str, object]] | None = None) -> Plugins:
    """Build a plugin manager with the built-ins, the entry points and ``extra`` (name, plugin).

    A plugin that fails to import, to validate or to declare its family is recorded in
    ``failures`` and skipped; the others load normally.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm)
    for module in _builtin_modules():
        pm.register(module, name=module.__name__)
    wanted = _requested_names()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            obj = ep.load()
        except Exception as exc:
            plugins.failures.append(PluginFailure(ep.name, f"import failed: {type(exc).__name__}: {exc}"))
            continue
        _register(plugins, ep.name, obj, _distribution_version(ep))
    for name, obj in extra or []:
        _register(plugins, name, obj, "")
    _collect_registrations(plugins)
    return plugins
