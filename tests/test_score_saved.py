"""Samples a run saved (--save-samples) and read back from the file score exactly as the run
scored them: the same IS, FID, KID, precision/recall and mode coverage (issue 19)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from evalgen.cli import main
from evalgen.datasets.base import LoadContext
from evalgen.harness.evaluation import score_samples
from evalgen.harness.samples_file import SampleTarget, read_samples
from evalgen.plugins import load_plugins
from evalgen.testing.reproducibility import without_timings

pytestmark = pytest.mark.slow


def test_saved_samples_score_as_the_run_scored_them(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--plugin", "flows", "--model", "maf", "--dataset", "digits",
                                       "--budget", "smoke", "--no-baseline", "--device", "cpu", "--save-samples",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    key = "flows--maf--digits--smoke--seed0"
    record = json.loads((out / "records" / f"{key}.json").read_text())
    plugins = load_plugins()
    dataset = plugins.datasets.get("digits").load(LoadContext(None, allow_download=False))
    budget = plugins.budgets.get("smoke")
    samples = read_samples(out / "samples" / f"{key}.npz", SampleTarget("digits", dataset.shape, dataset.levels))
    assert len(samples) == budget.num_samples
    metrics, _ = score_samples(samples, dataset, plugins.metrics, budget, 0, torch.device("cpu"),
                               lambda name: plugins.datasets.get(name).load(LoadContext(None, allow_download=False)))
    # all but whether the reference was cached (now it is) and the run's further sample draws: the
    # file holds the first draw, so its numbers are that draw's, and FID∞ its first intercept
    repeated = ("draws", "fid_infinity", "inception_score_infinity")
    scored, ran = metrics["sample_quality"], record["metrics"]["sample_quality"]
    assert without_timings({k: v for k, v in scored.items() if k not in repeated}) == without_timings(
        {k: v for k, v in ran.items() if k not in repeated})
    assert without_timings(metrics["mode_coverage"]) == without_timings(record["metrics"]["mode_coverage"])
    assert ran["draws"]["count"] == budget.sample_draws and scored["draws"]["count"] == 1
    for name, drawn in scored["draws"]["metrics"].items():
        assert drawn["values"] == ran["draws"]["metrics"][name]["values"][:1], name
    assert scored["fid_infinity"]["intercepts"] == ran["fid_infinity"]["intercepts"][:1]
    assert metrics["sample_quality"]["fid"] == record["metrics"]["sample_quality"]["fid"]
    assert "skipped" in metrics["test_nll"] and "skipped" in metrics["outliers"]
