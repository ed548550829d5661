"""Which checks apply to which model, and running them: `check_plugin` and `plugin_checks`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalgen.errors import EvalgenError, unknown_name
from evalgen.options import declared_options, resolve_for_models
from evalgen.plugins import Plugins, load_plugins, required_hooks
from evalgen.testing import checks, density
from evalgen.testing.known import WHERE, known_reason, validate_known_failures
from evalgen.testing.report import CheckFailed, CheckReport, CheckResult, CheckSkipped
from evalgen.testing.settings import DEFAULTS, CheckSettings
from evalgen.testing.subject import Subject, describe_error
from evalgen.types import DataKind, Likelihood, LikelihoodKind, ModelSpec


@dataclass(frozen=True)
class CheckSpec:
    """One check and when it applies: to every model, only to models with a likelihood, or only
    when the family implements an optional hook."""

    name: str
    function: Callable[[Subject], str]
    summary: str
    needs_likelihood: bool = False
    optional_hook: str | None = None


#: Every per-model check, in the order they run. ``family`` (plugin-wide) runs first.
CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("build", checks.check_build, "builds a torch module reproducibly from the seed; optimizers "
              "cover every trainable parameter; describe_likelihood agrees with the ModelSpec"),
    CheckSpec("sample", checks.check_sample, "float32 samples of the right shape, range, levels and device, "
              "before and after training"),
    CheckSpec("determinism", checks.check_determinism, "same generator seed -> identical samples whatever "
              "the global RNG; another seed -> other samples; the global RNGs are not touched"),
    CheckSpec("log_prob", checks.check_log_prob, "finite (N,) log_prob, also at the edges of the support; "
              "exact models score each example independently of its batch", needs_likelihood=True),
    CheckSpec("normalization", density.check_normalization, "exp(log_prob) sums (levels) or integrates "
              "(densities, on a grid) to 1 for exact models, at most 1 for bounds, about 1 for estimates",
              needs_likelihood=True),
    CheckSpec("agreement", density.check_agreement, "the samples follow exp(log_prob) (total variation, "
              "bootstrap threshold; loose for bounds and estimates)", needs_likelihood=True),
    CheckSpec("checkpoint", checks.check_checkpoint, "a state_dict reloaded (weights_only) into a fresh "
              "build gives identical samples, log_prob and outlier scores"),
    CheckSpec("training", checks.check_training, "a few steps give finite losses, change every trainable "
              "parameter and raise the log_prob of the training data (implicit models: every optimizer "
              "changes its parameters)"),
    CheckSpec("one_step", checks.check_one_step, "one train_step is one update per optimizer on the given "
              "batch, leaves the batch alone, and is fast next to the smallest budget"),
    CheckSpec("side_effects", checks.check_side_effects, "hooks leave torch's global settings, the model's "
              "mode and (outside training) its parameters as they were"),
    CheckSpec("outlier_score", checks.check_outlier_score, "finite (N,) outlier scores",
              optional_hook="evalgen_outlier_score"),
    CheckSpec("likelihood_details", checks.check_likelihood_details, "after log_prob, None or a dict of "
              "JSON values with finite numbers, as the run record stores it", needs_likelihood=True,
              optional_hook="evalgen_likelihood_details"),
)
CHECK_NAMES: tuple[str, ...] = ("family", *(c.name for c in CHECKS))


class Check:
    """One check, ready to run: call it in a test (``check()``), or ``run()`` it for a result.

    ``check()`` raises AssertionError with the failure's message, ``pytest.skip`` when the
    check cannot run and ``pytest.xfail`` when it fails as the family declared
    (``known``: the reason from ``FamilyInfo.known_failures``). ``str(check)``
    ("family:model:data:check") is a good pytest id.
    """

    def __init__(self, plugin: str, model: str, data: str, name: str, run: Callable[[], str],
                 known: str | None = None) -> None:
        self.plugin, self.model, self.data, self.name = plugin, model, data, name
        self.known = known
        self._run = run

    def run(self) -> CheckResult:
        start = time.perf_counter()
        try:
            message, status = self._run(), "passed"
        except CheckFailed as exc:
            message, status = str(exc), "failed"
        except CheckSkipped as exc:
            message, status = str(exc), "skipped"
        except Exception as exc:  # a plugin's error is a failed check, never a crash
            message, status = describe_error(exc), "failed"
        if self.known is not None and status == "failed":
            message, status = f"known failure ({self.known}): {message}", "xfailed"
        elif self.known is not None and status == "passed":
            message, status = (f"declared a known failure in {WHERE} ({self.known}) but it passes now: "
                               f"remove the declaration ({message})"), "failed"
        return CheckResult(self.name, self.model, status, message or "", time.perf_counter() - start, self.data)

    def __call__(self) -> None:
        result = self.run()
        if result.status == "failed":
            raise AssertionError(f"{self}: {result.message}")
        if result.status in ("skipped", "xfailed"):
            import pytest  # only when used from pytest: evalgen does not depend on it

            (pytest.skip if result.status == "skipped" else pytest.xfail)(f"{self}: {result.message}")

    def __str__(self) -> str:
        return ":".join(part for part in (self.plugin, self.model, self.data, self.name) if part)

    def __repr__(self) -> str:
        return f"Check({self})"


@dataclass
class _Session:
    plugins: Plugins
    family: str
    settings: CheckSettings
    config: Mapping[str, Any]
    subjects: dict[tuple[str, DataKind], Subject] = field(default_factory=dict)
    #: per model: the options its hooks get (``config`` resolved against what it declares)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def min_budget(self) -> tuple[str, float] | None:
        budgets = list(self.plugins.budgets)
        if not budgets:
            return None
        smallest = min(budgets, key=lambda b: b.clock_cap_seconds)
        return smallest.name, float(smallest.clock_cap_seconds)

    def subject(self, spec: ModelSpec, kind: DataKind) -> Subject:
        key = (spec.name, kind)
        if key not in self.subjects:
            self.subjects[key] = Subject(self.plugins.hooks(self.family), spec, kind, self.settings,
                                         self.options.get(spec.name, self.config), self.min_budget())
        return self.subjects[key]

    def implements(self, hook: str) -> bool:
        caller = getattr(self.plugins.hooks(self.family), hook.removeprefix("evalgen_"))
        return any(not (impl.hookwrapper or getattr(impl, "wrapper", False)) for impl in caller.get_hookimpls())


def _resolve(plugins: Plugins, plugin: str) -> str | None:
    """The family name of ``plugin`` (a family or an entry-point name); None if it failed to load."""
    if plugin in plugins.families:
        return plugin
    for loaded in plugins.loaded:
        if loaded.name == plugin:
            if loaded.family is None:
                raise EvalgenError(f"plugin '{plugin}' is not a model family (it wraps hooks or registers "
                                   "datasets, budgets or metrics): there are no models to check")
            return loaded.family.name
    if any(f.name == plugin for f in plugins.failures):
        return None
    known = set(plugins.families) | {p.name for p in plugins.loaded if p.family is not None}
    raise unknown_name("plugin", plugin, known)


def _check_family(session: _Session) -> str:
    family = session.plugins.families[session.family]
    problems = []
    names = [m.name for m in family.models]
    if not names:
        problems.append("FamilyInfo.models is empty: declare at least one ModelSpec")
    if len(set(names)) != len(names):
        problems.append(f"model names repeat ({', '.join(sorted({n for n in names if names.count(n) > 1}))}): "
                        "make them unique within the family")
    for spec in family.models:
        if not spec.name or any(c.isspace() or c in ":/" for c in spec.name):
            problems.append(f"model name {spec.name!r} must be non-empty, without spaces, ':' or '/'")
        if not spec.data_kinds or not all(isinstance(k, DataKind) for k in spec.data_kinds):
            problems.append(f"model '{spec.name}': data_kinds must be a non-empty set of evalgen.DataKind")
        lik = spec.likelihood
        if not isinstance(lik, Likelihood) or not isinstance(lik.kind, LikelihoodKind):
            problems.append(f"model '{spec.name}': likelihood must be an evalgen.Likelihood with a LikelihoodKind")
        elif lik.sample_count is not None and lik.kind not in (LikelihoodKind.LOWER_BOUND, LikelihoodKind.ESTIMATE):
            problems.append(f"model '{spec.name}': sample_count is for importance-sampled bounds and estimates, "
                            f"not for a likelihood of kind '{lik.kind.value}'")
    if family.default_dataset is not None and family.default_dataset not in session.plugins.datasets:
        problems.append(str(unknown_name("dataset", family.default_dataset, session.plugins.datasets.names()))
                        + " (FamilyInfo.default_dataset)")
    missing = [hook for hook in required_hooks(family) if not session.implements(hook)]
    if missing:
        problems.append(f"the family does not implement {', '.join(missing)}: see evalgen/hookspecs.py")
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"{len(names)} model(s): {', '.join(names)}"


def _run_one(session: _Session, spec: ModelSpec, kind: DataKind, check: CheckSpec) -> Callable[[], str]:
    def run() -> str:
        subject = session.subject(spec, kind)
        problem = spec.unfit_reason(kind, math.prod(subject.data.shape), subject.data.y is not None)
        if problem is not None:  # the rule the harness applies: the check data does not fit the model
            raise CheckSkipped(f"the check data does not fit the model: {problem}")
        return check.function(subject)

    return run


def plugin_checks(plugin: str, models: Sequence[str] | None = None, *, checks: Sequence[str] | None = None,
                  settings: CheckSettings | None = None, config: Mapping[str, Any] | None = None) -> list[Check]:
    """Every conformance check of an installed plugin, one `Check` per (model, data kind, check).

    Checks are chosen by what each model declares: one set per data kind in ``data_kinds``; the
    likelihood checks (log_prob, normalization, agreement) only for models with a likelihood;
    outlier_score only when the family implements it. ``checks`` keeps only the named ones (see
    `CHECK_NAMES`), ``config`` is given to the hooks as plugin options (as ``-o key=value``):
    checked against what each model declares and resolved, defaults included, as in a run.
    A check the family declares in ``FamilyInfo.known_failures`` is expected to fail
    (``pytest.xfail``; "xfailed" in a report), and fails if it passes.

    Use in a plugin's own tests::

        @pytest.mark.parametrize("check", plugin_checks("myfamily"), ids=str)
        def test_conformance(check):
            check()

    :raises EvalgenError: unknown plugin or model name (with a "did you mean"), unknown check,
        a plugin option no model takes or of the wrong type or range,
        or a key of ``FamilyInfo.known_failures`` that names no check, model or data kind.
    """
    settings = settings or DEFAULTS
    wanted = set(CHECK_NAMES if checks is None else checks)
    unknown = sorted(wanted - set(CHECK_NAMES))
    if unknown:
        raise unknown_name("check", unknown[0], CHECK_NAMES)
    plugins = load_plugins()
    family_name = _resolve(plugins, plugin)
    if family_name is None:
        error = next(f.error for f in plugins.failures if f.name == plugin)

        def load() -> str:
            raise CheckFailed(f"the plugin failed to load: {error}")

        return [Check(plugin, "", "", "load", load)]
    session = _Session(plugins, family_name, settings, dict(config or {}))
    family = plugins.families[family_name]
    known = validate_known_failures(family, CHECK_NAMES)
    specs = list(family.models) if not models else [family.model(m) for m in models]
    declared = {spec.name: declared_options(family, spec) for spec in specs}
    session.options = {name: resolved for name, (_, resolved) in
                       resolve_for_models(family_name, declared, session.config).items()}
    found: list[Check] = []
    if "family" in wanted:
        reason = known_reason(known, "", "", "family")
        found.append(Check(family_name, "", "", "family", lambda: _check_family(session), reason))
    for spec in specs:
        has_likelihood = spec.likelihood.kind is not LikelihoodKind.NONE
        for kind in (k for k in DataKind if k in spec.data_kinds):
            for check in CHECKS:
                if check.name not in wanted or (check.needs_likelihood and not has_likelihood):
                    continue
                if check.optional_hook is not None and not session.implements(check.optional_hook):
                    continue
                run = _run_one(session, spec, kind, check)
                reason = known_reason(known, spec.name, kind.value, check.name)
                found.append(Check(family_name, spec.name, kind.value, check.name, run, reason))
    return found


def check_plugin(plugin: str, models: Sequence[str] | None = None, *, checks: Sequence[str] | None = None,
                 settings: CheckSettings | None = None, config: Mapping[str, Any] | None = None,
                 on_result: Callable[[CheckResult], None] | None = None) -> CheckReport:
    """Run every conformance check of an installed plugin (see `plugin_checks`) and collect the
    results; ``on_result`` sees each as it finishes. A plugin's exception is a failed check."""
    found = plugin_checks(plugin, models, checks=checks, settings=settings, config=config)
    report = CheckReport(found[0].plugin if found else plugin)
    for check in found:
        result = check.run()
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    return report
