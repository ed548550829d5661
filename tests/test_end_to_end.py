"""The README's main job: `evalgen run --plugin flows` on digits at the quick budget (step-bound)."""

import pandas as pd
import pytest
from click.testing import CliRunner

from evalgen.cli import main


@pytest.mark.slow
def test_every_flow_beats_the_independent_pixel_baseline_on_digits(tmp_path, install_plugin):
    """The README's command, with `quick` made step-bound (1,000 steps, `toy_plugins.QuickSteps`)
    so that a loaded machine cannot cut training short and the suite stays fast."""
    install_plugin("quicksteps", "toy_plugins:quick_steps")
    result = CliRunner().invoke(main, ["run", "--plugin", "flows", "--budget", "quick-steps", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "table.csv").set_index("model")
    baseline = table.loc["categorical", "bits_per_dim_mean"]
    for flow in ("planar", "realnvp", "maf"):
        assert table.loc[flow, "likelihood"] == "exact"
        assert table.loc[flow, "bits_per_dim_mean"] < baseline, table
    assert (tmp_path / "table.md").read_text().count("flows:") == 3


def _vae_table(tmp_path, *args):
    result = CliRunner().invoke(main, ["run", "--plugin", "vae", "--budget", "smoke", *args,
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return result.output, pd.read_csv(tmp_path / "table.csv").set_index("model")


def test_vae_on_digits_fills_the_bound_sample_quality_and_outlier_columns(tmp_path):
    output, table = _vae_table(tmp_path)
    assert set(table.index) == {"categorical", "vae", "vae-conv", "iwae", "cvae"}
    vaes = table.drop(index="categorical")
    assert (vaes["likelihood"] == "lower bound (IWAE, K=10)").all()
    for column in ("bits_per_dim_mean", "elbo_nats_mean", "inception_score_mean", "fid_mean", "auroc_mean"):
        assert vaes[column].notna().all(), column
    assert (vaes["elbo_nats_mean"] > vaes["nll_nats_mean"] - 1.0).all()  # -ELBO: the looser bound
    header = next(line for line in output.splitlines() if "test NLL (bits/dim)" in line)
    for label in ("-ELBO (nats)", "IS ↑ [digits-classifier]", "FID ↓ [digits-classifier]", "AUROC ↑"):
        assert label in header
    assert "≤ " in output


@pytest.mark.parametrize("dataset", ["mnist", "binarized-mnist"])
def test_vae_on_mnist_and_binarized_mnist(tmp_path, data_copy, dataset):
    # --data-dir, not EVALGEN_DATA_DIR: binarized-mnist's extractor trains on mnist, read from there too
    _, table = _vae_table(tmp_path, "--model", "vae", "--dataset", dataset, "--data-dir", str(data_copy))
    row = table.loc["vae"]
    assert row["likelihood"] == "lower bound (IWAE, K=10)"
    for column in ("bits_per_dim_mean", "inception_score_mean", "fid_mean", "auroc_mean"):
        assert pd.notna(row[column]), column
    assert row["fid_label"] == row["inception_score_label"] == "mnist-classifier"
