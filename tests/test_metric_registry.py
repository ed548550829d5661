"""The metric registry: what applies is computed, what does not says why."""

import torch
import toy_plugins

from evalgen import MetricSpec, hookimpl
from evalgen.datasets.base import LoadContext
from evalgen.harness.runner import RunContext, run_one
from evalgen.harness.spec import RunSpec
from evalgen.plugins import load_plugins
from evalgen.types import DataKind


class MeanPixel:
    """A third-party metric: the mean pixel value of the samples."""

    @hookimpl
    def evalgen_register_metrics(self, register):
        register(MetricSpec("mean_pixel", "mean sample value", needs=frozenset({"samples"}),
                            data_kinds=frozenset({DataKind.DISCRETE}), higher_is_better={"value": True},
                            compute=lambda inputs: {"value": float(inputs.samples.mean())}))


def context(tmp_path, *extra):
    plugins = load_plugins(extra=[("unit", toy_plugins.UnitBudget()), *extra])
    return RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path, False))


def test_builtin_metrics_are_registered_and_duplicates_rejected():
    plugins = load_plugins(extra=[("again", MeanPixel()), ("again2", MeanPixel())])
    assert {"test_nll", "sample_quality", "outliers", "mean_pixel"} <= set(plugins.metrics.names())
    assert any("metric 'mean_pixel' registered twice" in f.error for f in plugins.failures)


def test_a_third_party_metric_is_computed_and_inapplicable_ones_say_why(tmp_path):
    ctx = context(tmp_path, ("meanpixel", MeanPixel()))
    record, samples = run_one(RunSpec("flows", "realnvp", "eight-gaussians", "unit", 0), ctx)
    metrics = record.metrics
    assert "not defined for continuous data" in metrics["mean_pixel"]["skipped"]
    assert "not defined for continuous data" in metrics["outliers"]["skipped"]
    assert metrics["test_nll"]["kind"] == "exact" and metrics["test_nll"]["bits_per_dim"] is None
    record, samples = run_one(RunSpec("baselines", "categorical", "digits", "unit", 0), ctx)
    assert record.metrics["mean_pixel"]["value"] == float(samples.mean())
