"""The `autoregressive` family through the CLI: exact NLL, sample quality, AUROC and samples/s;
the acceptance runs on (binarized) MNIST are marked ``long``: NADE and MADE at ``quick``,
PixelCNN at ``standard`` (on 2 CPU cores ``quick`` buys it ~33 steps, too few to beat the
per-pixel baseline's 1.69 bits/dim; ``standard`` on one shared core reached 1.50)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from evalgen.cli import main


def _run(tmp_path, *args):
    result = CliRunner().invoke(main, ["run", "--plugin", "autoregressive", *args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return pd.read_csv(tmp_path / "table.csv").set_index("model")


def test_default_run_on_digits_fills_exact_nll_is_fid_auroc_and_samples_per_second(tmp_path, install_plugin):
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    table = _run(tmp_path, "--budget", "unit")
    assert set(table.index) == {"categorical", "nade", "made", "pixelcnn"}
    assert (table["dataset"] == "digits").all() and (table["likelihood"] == "exact").all()
    for column in ("bits_per_dim_mean", "inception_score_mean", "fid_mean", "auroc_mean", "samples_per_second_mean"):
        assert table[column].notna().all(), column
    record = json.loads(next((tmp_path / "records").glob("autoregressive--nade--*.json")).read_text())
    assert record["metrics"]["sampling"]["samples_per_second"] > 0


@pytest.mark.long
@pytest.mark.parametrize("model,dataset,budget", [("nade", "binarized-mnist", "quick"),
                                                  ("made", "binarized-mnist", "quick"),
                                                  ("pixelcnn", "mnist", "standard")])
def test_budget_beats_the_independent_pixel_baseline(tmp_path, data_copy, monkeypatch, model, dataset, budget):
    monkeypatch.setenv("EVALGEN_DATA_DIR", str(data_copy))
    table = _run(tmp_path, "--model", model, "--dataset", dataset, "--budget", budget)
    print(f"\n{model} on {dataset}, {budget}: {table.loc[model, 'nll_nats_mean']:.2f} nats "
          f"({table.loc[model, 'bits_per_dim_mean']:.4f} bits/dim) in {table.loc[model, 'steps_mean']:.0f} steps; "
          f"baseline {table.loc['categorical', 'nll_nats_mean']:.2f} nats; "
          f"{table.loc[model, 'samples_per_second_mean']:.1f} samples/s")
    assert table.loc[model, "nll_nats_mean"] < table.loc["categorical", "nll_nats_mean"]
