"""The README's main job: `evalgen run --plugin flows` on digits at the quick budget (step-bound)."""

import json
import math

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from reference_metrics import frechet_distance, inception_score

from evalgen import load_dataset
from evalgen.cli import main
from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint
from evalgen.harness.evaluation import draw_samples
from evalgen.harness.resolved import resolve_run
from evalgen.harness.spec import RunSpec
from evalgen.metrics.extractors import EMBEDDING, LOGITS, ensure_extractor, extract_features, to_uint8
from evalgen.plugins import load_plugins


def _records(out):
    records = [json.loads(path.read_text()) for path in (out / "records").glob("*.json")]
    return {record["spec"]["model"]: record for record in records}


def _redrawn_features(out, record, dataset, extractor):
    """The extractor's features of a run's samples, redrawn from its checkpoint with the run's
    sampling seed (as the harness draws them), and of the dataset's test set."""
    saved = read_checkpoint(checkpoint_path(out, record["key"]))
    run = resolve_run(RunSpec(**saved["spec"]), load_plugins(), dataset)
    model = run.hooks.build(run.info, run.options)
    model.load_state_dict(saved["state_dict"])
    device = torch.device(record["provenance"]["device"])  # where the run drew its samples
    samples, _ = draw_samples(run.hooks, model.to(device), run.info, run.budget.num_samples, run.spec.seed, device)
    weights = ensure_extractor(extractor)  # the one the run trained into the tests' cache
    return [{k: v.numpy() for k, v in extract_features(to_uint8(x, dataset.levels), weights).items()}
            for x in (samples, dataset.test.x)]


def _check_against_records(table, records, num_dims, levels):
    """Each row shows its record's numbers; bits/dim = nats / (D ln 2); every model beats the uniform
    model's D ln L nats by 10 %; uniform noise is told from the data (AUROC > 0.9; a flipped score
    gives < 0.1)."""
    for model, record in records.items():
        nll, quality, outliers = (record["metrics"][name] for name in ("test_nll", "sample_quality", "outliers"))
        assert nll["bits_per_dim"] == pytest.approx(nll["nats"] / (num_dims * math.log(2)), rel=1e-12)
        assert nll["nats"] < 0.9 * num_dims * math.log(levels), model
        assert outliers["sets"]["uniform-noise"]["auroc"] > 0.9, model
        drawn = quality["draws"]["metrics"]  # tables show the mean over the sample draws
        shown = {"nll_nats_mean": nll["nats"], "inception_score_mean": drawn["inception_score_mean"]["mean"],
                 "fid_mean": drawn["fid"]["mean"], "auroc_mean": outliers["sets"][outliers["headline"]]["auroc"]}
        if "elbo" in nll:
            shown["elbo_nats_mean"] = nll["elbo"]["nats"]
        for column, value in shown.items():
            assert table.loc[model, column] == pytest.approx(value, rel=1e-6), (model, column)


@pytest.mark.slow
@pytest.mark.long  # 40-60 s (a background model doubles its training): CI runs it after the suite (.ci/run)
def test_every_flow_beats_the_independent_pixel_baseline_on_digits(tmp_path, install_plugin):
    """The README's command, with `quick` made step-bound (500 steps, `toy_plugins.QuickSteps`)
    so that a loaded machine cannot cut training short and the suite stays fast. References: the
    independent-pixel baseline's bits/dim, which every flow beats, and `_check_against_records`."""
    install_plugin("quicksteps", "toy_plugins:quick_steps")
    result = CliRunner().invoke(main, ["run", "--plugin", "flows", "--budget", "quick-steps", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "table.csv").set_index("model")
    baseline = table.loc["categorical", "bits_per_dim_mean"]
    for flow in ("planar", "realnvp", "maf"):
        # a density on dequantized digits bounds their discrete likelihood (quick-steps: K = 1 draw)
        assert table.loc[flow, "likelihood"] == "lower bound (uniform dequantization bound, one noise draw per example)"
        assert table.loc[flow, "bits_per_dim_mean"] < baseline, table
    assert (tmp_path / "table.md").read_text().count("flows:") == 3
    records = _records(tmp_path)
    _check_against_records(table, records, 64, 17)
    # Every trained flow tells the synthetic outlier sets from digits (at step 500 a constant image
    # is the hardest: AUROC 0.968 to 0.995; the noise sets are at 0.999 or above).
    for flow in ("planar", "realnvp", "maf"):
        outliers = records[flow]["metrics"]["outliers"]
        assert outliers["score"] == ("-log p(x) / D (lower bound: uniform dequantization bound, one noise draw "
                                     "per example)")
        for name, least in (("uniform-noise", 0.99), ("salt-and-pepper", 0.99), ("smooth-noise", 0.99),
                            ("constant", 0.95)):
            assert outliers["sets"][name]["auroc"] >= least, (flow, name, outliers["sets"][name])


def _vae_table(tmp_path, *args):
    result = CliRunner().invoke(main, ["run", "--plugin", "vae", "--budget", "smoke", *args,
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return result.output, pd.read_csv(tmp_path / "table.csv").set_index("model")


def test_vae_on_digits_fills_the_bound_sample_quality_and_outlier_columns(tmp_path):
    """References: `_check_against_records` (bits/dim, 0.9 of the uniform model's 64 ln 17 nats, AUROC > 0.9
    against uniform noise, the table shows the records); -ELBO is the looser bound (Burda et al. 2016:
    the K = 10 bound is tighter than K = 1) by more than 0.1 nats; the VAE's samples, redrawn from its
    checkpoint with the run's sampling seed, give the recorded IS (numpy, Salimans et al. over
    torch-fidelity's 10 shuffled splits) and FID (scipy sqrtm, against the test set) on the digits
    classifier's features."""
    output, table = _vae_table(tmp_path)
    assert set(table.index) == {"categorical", "vae", "vae-conv", "iwae", "cvae"}
    vaes = table.drop(index="categorical")
    assert (vaes["likelihood"] == "lower bound (IWAE, K=10)").all()
    records = _records(tmp_path)
    _check_against_records(table, records, 64, 17)
    assert (vaes["elbo_nats_mean"] > vaes["nll_nats_mean"] + 0.1).all()  # -ELBO: the looser bound
    generated, real = _redrawn_features(tmp_path, records["vae"], load_dataset("digits"), "digits-classifier")
    quality = records["vae"]["metrics"]["sample_quality"]
    assert quality["inception_score_mean"] == pytest.approx(inception_score(generated[LOGITS]), rel=1e-9)
    assert quality["fid"] == pytest.approx(frechet_distance(generated[EMBEDDING], real[EMBEDDING]), rel=1e-6)
    header = next(line for line in output.splitlines() if "test NLL (bits/dim)" in line)
    for label in ("-ELBO (nats)", "IS ↑ [digits-classifier]", "FID ↓ [digits-classifier]", "AUROC ↑"):
        assert label in header
    assert "≤ " in output


@pytest.mark.parametrize("dataset", ["mnist", "binarized-mnist"])
def test_vae_on_mnist_and_binarized_mnist(tmp_path, data_copy, dataset, monkeypatch, mnist_weights):
    """References: `_check_against_records` (bits/dim, 0.9 of the uniform model's 784 ln L nats, AUROC
    > 0.9 against uniform noise, the table shows the records); the VAE's samples, redrawn from its
    checkpoint with the run's sampling seed, give the recorded IS (numpy, Salimans et al. over
    torch-fidelity's 10 shuffled splits) and FID (scipy sqrtm, against the test set) on the MNIST
    classifier's features."""
    # --data-dir, not EVALGEN_DATA_DIR: binarized-mnist's extractor trains on mnist, read from there too
    _, table = _vae_table(tmp_path, "--model", "vae", "--dataset", dataset, "--data-dir", str(data_copy))
    row = table.loc["vae"]
    assert row["likelihood"] == "lower bound (IWAE, K=10)"
    assert row["fid_label"] == row["inception_score_label"] == "mnist-classifier"
    records = _records(tmp_path)
    _check_against_records(table, records, 784, 256 if dataset == "mnist" else 2)
    monkeypatch.setenv("EVALGEN_DATA_DIR", str(data_copy))
    generated, real = _redrawn_features(tmp_path, records["vae"], load_dataset(dataset), "mnist-classifier")
    quality = records["vae"]["metrics"]["sample_quality"]
    assert quality["inception_score_mean"] == pytest.approx(inception_score(generated[LOGITS]), rel=1e-9)
    assert quality["fid"] == pytest.approx(frechet_distance(generated[EMBEDDING], real[EMBEDDING]), rel=1e-6)
