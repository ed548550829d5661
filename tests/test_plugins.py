"""Plugin loading: entry points, isolation of broken plugins, registries, hook docs."""

import inspect

import pytest
import toy_plugins

from evalgen import FamilyInfo, ModelSpec, hookimpl, hookspecs
from evalgen.budget_presets import PRESETS
from evalgen.datasets.base import DatasetSpec
from evalgen.errors import EvalgenError
from evalgen.plugins import load_plugins
from evalgen.registry import Registry
from evalgen.types import DataKind


def test_builtin_families_load_through_entry_points():
    plugins = load_plugins()
    assert {"baselines", "flows"} <= set(plugins.families)
    assert not plugins.failures
    assert {b.name for b in PRESETS} <= set(plugins.budgets.names())
    assert "digits" in plugins.datasets


def test_every_hook_is_documented_with_when_arguments_and_return():
    specs = [f for name, f in vars(hookspecs).items() if name.startswith("evalgen_")]
    assert len(specs) >= 9
    for spec in specs:
        doc = inspect.getdoc(spec) or ""
        assert "Called" in doc or "called" in doc, spec.__name__
        assert ":return:" in doc, spec.__name__
        for arg in inspect.signature(spec).parameters:
            assert f":param {arg}:" in doc, f"{spec.__name__} does not document {arg}"


def test_a_family_name_declared_twice_is_reported_not_fatal():
    clone = toy_plugins.ToyFamily("flows")
    plugins = load_plugins(extra=[("clone", clone)])
    assert plugins.families["flows"].summary != "toy family flows"
    assert any(f.name == "clone" and "already declared" in f.error for f in plugins.failures)


def test_a_plugin_with_an_unknown_hook_is_reported():
    class Typo:
        @hookimpl
        def evalgen_sampel(self, model, num_samples, generator):
            pass

    plugins = load_plugins(extra=[("typo", Typo())])
    assert any(f.name == "typo" and "evalgen_sampel" in f.error for f in plugins.failures)
    assert "typo" not in {p.name for p in plugins.loaded}


def test_a_plugin_whose_family_hook_raises_is_reported():
    class Raises:
        @hookimpl
        def evalgen_family(self):
            raise RuntimeError("boom")

    plugins = load_plugins(extra=[("raises", Raises())])
    assert any(f.name == "raises" and "boom" in f.error for f in plugins.failures)
    assert {"baselines", "flows"} <= set(plugins.families)


def test_duplicate_dataset_names_are_rejected_with_both_owners():
    class Again:
        @hookimpl
        def evalgen_register_datasets(self, register):
            register(DatasetSpec("digits", DataKind.DISCRETE, "again", load=lambda ctx: None))

    plugins = load_plugins(extra=[("again", Again())])
    (failure,) = [f for f in plugins.failures if f.name == "again"]
    assert "dataset 'digits' registered twice" in failure.error and "evalgen.datasets.builtin" in failure.error


def test_registry_suggests_close_names():
    registry = Registry("budget")
    for preset in PRESETS:
        registry.register(preset)
    with pytest.raises(EvalgenError, match="did you mean 'quick'"):
        registry.get("quik")
    with pytest.raises(EvalgenError, match="registered twice"):
        registry.register(PRESETS[0])


class _NoSampler:
    """A family that forgot evalgen_sample (and, having a likelihood, must also give log_prob)."""

    @hookimpl
    def evalgen_family(self):
        return FamilyInfo("nosampler", "forgot a hook", (ModelSpec("m", "model"),))

    @hookimpl
    def evalgen_build_model(self, model_name, dataset, config):
        raise AssertionError("never reached")

    @hookimpl
    def evalgen_train_step(self, model, batch, state):
        raise AssertionError("never reached")


def test_a_family_missing_a_required_hook_fails_at_load_naming_it():
    plugins = load_plugins(extra=[("nosampler", _NoSampler())])
    (failure,) = [f for f in plugins.failures if f.name == "nosampler"]
    assert "does not implement evalgen_sample, evalgen_log_prob" in failure.error
    assert "nosampler" not in plugins.families and "flows" in plugins.families
    with pytest.raises(EvalgenError, match=r"installed but failed to load: .*does not implement evalgen_sample"):
        plugins.family("nosampler")
