"""Tables built from what metrics declare: the data-density reference row against an independent
computation of the truth, and the rules that keep declared columns unambiguous."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import toy_plugins
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from evalgen.datasets.base import LoadContext
from evalgen.datasets.toys import EIGHT_GAUSSIANS_CENTERS, EIGHT_GAUSSIANS_STD
from evalgen.errors import EvalgenError
from evalgen.harness.runner import RunContext, run_sweep
from evalgen.metrics.builtin import BUILTIN_METRICS
from evalgen.metrics.columns import REFERENCE_ROW, MetricColumn
from evalgen.metrics.registry import MetricSpec
from evalgen.plugins import load_plugins
from evalgen.runspec import RunSpec
from evalgen.table_columns import metric_columns
from evalgen.tables import comparison, write_tables
from evalgen.types import DataKind


def _eight_gaussians_test_nll(test: np.ndarray) -> float:
    """-mean log p of the test set under the mixture, with scipy (not evalgen's density code)."""
    cov = EIGHT_GAUSSIANS_STD**2 * np.eye(2)
    per_mode = np.stack([multivariate_normal(mean, cov).logpdf(test) for mean in EIGHT_GAUSSIANS_CENTERS])
    return float(-(logsumexp(per_mode, axis=0) - np.log(len(EIGHT_GAUSSIANS_CENTERS))).mean())


@pytest.fixture(scope="module")
def toy_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy-table")
    plugins = load_plugins(extra=[("unit", toy_plugins.UnitBudget())])
    ctx = RunContext(plugins, out, torch.device("cpu"), LoadContext(out / "data", False))
    result = run_sweep([RunSpec("baselines", "gaussian", "eight-gaussians", "unit", s) for s in range(2)], ctx,
                       report=lambda line: None)
    assert not result.failures
    return ctx, result.records


def test_a_toy_density_shows_the_true_test_nll_as_a_reference_row(toy_records, tmp_path):
    ctx, records = toy_records
    truth = _eight_gaussians_test_nll(ctx.dataset("eight-gaussians").test.x.double().numpy())
    assert records[0].metrics["test_nll"]["data_density"]["nats"] == pytest.approx(truth, rel=1e-9)
    _, shown = comparison(records)
    reference = shown[shown["model"] == REFERENCE_ROW]
    assert len(reference) == 1 and shown["model"].iloc[0] == REFERENCE_ROW  # first, one per dataset
    assert reference["test NLL (nats) ↓"].iloc[0] == f"{truth:.2f}"
    model = shown[shown["model"] == "baselines:gaussian"]["test NLL (nats) ↓"].iloc[0]
    assert float(model.split(" ")[0]) > truth  # a Gaussian is worse than the truth it is scored against
    write_tables(records, tmp_path)
    assert f"| {REFERENCE_ROW} " in (tmp_path / "table.md").read_text()


def _metric(name: str, columns=(), higher_is_better=None) -> MetricSpec:
    return MetricSpec(name, "a metric", needs=frozenset({"samples"}), data_kinds=frozenset(DataKind),
                      higher_is_better=higher_is_better or {"value": True}, compute=lambda inputs: {}, columns=columns)


def test_a_column_name_two_metrics_claim_is_refused_naming_both():
    clash = _metric("other-fid", (MetricColumn("fid", "FID again", "value"),))
    with pytest.raises(EvalgenError, match="metric 'other-fid' declares a column 'fid', which 'sample_quality'"):
        metric_columns([*BUILTIN_METRICS, clash])


def test_a_column_cannot_take_the_name_of_a_cost_column():
    with pytest.raises(EvalgenError, match="'evalgen' already shows"):
        metric_columns([_metric("timer", (MetricColumn("train_seconds", "s", "value"),))])


def test_column_names_must_be_safe_for_csv_and_html():
    with pytest.raises(ValueError, match="lower-case letters"):
        MetricColumn("FID<script>", "FID", "fid")


def test_undeclared_columns_come_from_higher_is_better_with_its_direction():
    (column,) = metric_columns([_metric("mean-gap", higher_is_better={"max_mean_gap": False})])
    assert (column.name, column.header, column.better) == ("mean_gap_max_mean_gap", "max_mean_gap ↓", "lower")


def test_a_declared_column_reads_a_dotted_path_and_takes_its_direction_from_the_metric():
    (column,) = metric_columns([_metric("deep", (MetricColumn("deep_value", "deep", "a.b", digits=1),),
                                        {"a.b": True})])
    assert column.better == "higher" and column.spec.number({"a": {"b": 2}}) == 2.0
    assert column.spec.number({"a": 3}) is None and column.spec.number({"a": {"b": True}}) is None
