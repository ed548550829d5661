"""The `ebm` family through the harness and the CLI: labels, AIS details, the default dataset."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import toy_plugins
from click.testing import CliRunner

from evalgen.cli import main
from evalgen.datasets.base import LoadContext
from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint
from evalgen.harness.runner import RunContext, run_sweep
from evalgen.harness.spec import RunSpec
from evalgen.options import resolved_options
from evalgen.plugins import load_plugins
from evalgen_ebm import hooks

FAST = ("-o", "ais_steps=500", "-o", "burn_in=100")


def test_default_run_is_on_binarized_digits_and_fills_nll_estimates_is_fid_and_auroc(tmp_path, install_plugin):
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    result = CliRunner().invoke(main, ["run", "--plugin", "ebm", "--budget", "unit", *FAST,
                                       "--importance-samples", "20", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "binarized-digits" in result.output
    table = pd.read_csv(tmp_path / "table.csv").set_index("model")
    assert set(table.index) == {"categorical", "rbm", "rbm-pcd", "dbm"}  # fvbm: 64 dims > 20, left out
    assert table.loc["rbm", "likelihood"] == "estimate (AIS, T=500, M=20)"
    assert table.loc["dbm", "likelihood"] == "lower bound (mean-field bound, log Z by AIS, T=500, M=20)"
    for column in ("bits_per_dim_mean", "inception_score_mean", "fid_mean", "auroc_mean"):
        assert table[column].notna().all(), column
    shown = (tmp_path / "table.md").read_text()
    assert "≈ " in shown and "free energy F(v) / D" in shown


def test_ais_on_tiny_digits_agrees_with_the_exact_partition_function(tmp_path):
    """On 4x4 binarized digits the RBM (16 hidden units) and the fully visible machine can be
    enumerated: the RBM's AIS-based NLL matches its exact NLL, and fvbm is exact."""
    plugins = load_plugins(extra=[("unit-budget", toy_plugins.UnitBudget())])
    ctx = RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path / "data", False))
    specs = [RunSpec("ebm", "rbm-pcd", "tiny-binarized-digits", "unit", 0, {"ais_steps": 2000}, 100),
             RunSpec("ebm", "fvbm", "tiny-binarized-digits", "unit", 0)]
    result = run_sweep(specs, ctx, report=lambda line: None)
    assert not result.failures
    rbm, fvbm = result.records
    assert fvbm.metrics["test_nll"]["kind"] == "exact"
    assert "skipped" in rbm.metrics["sample_quality"]  # no classifier for 4x4 images
    details = rbm.metrics["test_nll"]["details"]
    assert set(details["runs"]) == {"base rate", "uniform"} and "warning" not in details
    blob = read_checkpoint(checkpoint_path(tmp_path, rbm.key))
    model = hooks.evalgen_build_model(model_name="rbm-pcd", dataset=ctx.dataset("tiny-binarized-digits").info(),
                                      config=resolved_options(hooks.evalgen_family(), "rbm-pcd", {"ais_steps": 2000}))
    model.load_state_dict(blob["state_dict"])
    exact = model.net.exact_log_z()
    assert details["log_z"] == pytest.approx(exact, abs=0.05)


def test_a_model_that_cannot_enumerate_the_data_is_refused_up_front_when_named(tmp_path):
    result = CliRunner().invoke(main, ["run", "--plugin", "ebm", "--model", "fvbm", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "Error: ebm:fvbm cannot be trained on dataset 'binarized-digits': it handles at most 20 dimensions, not 64")
