"""The `ebm` family through the harness and the CLI: labels, AIS details, the default dataset."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.special
import torch
import toy_plugins
from click.testing import CliRunner
from reference_metrics import frechet_distance, inception_score
from sklearn.metrics import roc_auc_score

from evalgen import load_dataset
from evalgen.cli import main
from evalgen.datasets.base import LoadContext
from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint
from evalgen.harness.evaluation import draw_samples
from evalgen.harness.resolved import resolve_run
from evalgen.harness.runner import RunContext, run_sweep
from evalgen.harness.spec import RunSpec
from evalgen.metrics.builtin import OUTLIER_SEED
from evalgen.metrics.extractors import EMBEDDING, LOGITS, ensure_extractor, extract_features, to_uint8
from evalgen.metrics.outliers import synthetic_outliers
from evalgen.options import resolved_options
from evalgen.plugins import load_plugins
from evalgen_ebm import hooks

FAST = ("-o", "ais_steps=500", "-o", "burn_in=100")


def free_energy(state, v):
    """An RBM's F(v) = -b.v - sum_j softplus(c_j + (vW)_j) in numpy, from its checkpoint's state_dict."""
    W, b, c = (state[f"net.{name}"].double().numpy() for name in ("W", "b", "c"))
    v = v.reshape(len(v), -1).double().numpy()
    return -(v @ b) - np.logaddexp(0, v @ W + c).sum(axis=1)


def all_states(dims):
    """Every binary vector of length ``dims``, (2^dims, dims)."""
    return torch.from_numpy((np.arange(2 ** dims)[:, None] >> np.arange(dims) & 1).astype(np.float64))


def exact_log_z(state):
    """An RBM's log Z = log sum_v exp(-F(v)) over all 2^D visible states (numpy; D = 16 for tiny digits)."""
    return float(scipy.special.logsumexp(-free_energy(state, all_states(state["net.b"].numel()))))


def fvbm_log_prob(state, x):
    """A fully visible Boltzmann machine's exact log p(x) = -E(x) - log Z, E(x) = -x.Wx/2 - b.x with W
    the symmetric zero-diagonal couplings of its upper triangle, Z summed over all 2^D states (numpy)."""
    upper = np.triu(state["net.weight"].double().numpy(), k=1)
    W, b = upper + upper.T, state["net.bias"].double().numpy()

    def neg_energy(v):
        v = v.reshape(len(v), -1).double().numpy()
        return 0.5 * ((v @ W) * v).sum(axis=1) + v @ b

    return neg_energy(x) - scipy.special.logsumexp(neg_energy(all_states(len(b))))


def test_default_run_is_on_binarized_digits_and_fills_nll_estimates_is_fid_and_auroc(tmp_path, install_plugin):
    """References: every record's bits/dim is its nats / (64 ln 2), below the uniform model's 1 bit per
    pixel, its uniform-noise AUROC above 0.9 (a flipped score gives < 0.1), and the table shows the
    records' numbers. For the RBM, from its checkpoint in numpy: the test NLL is mean F(v) + the
    recorded AIS log Z, the AUROC is sklearn's on its score F(v)/D, and samples redrawn with the run's
    sampling seed give the recorded IS (Salimans et al. over torch-fidelity's 10 shuffled splits) and
    FID (scipy sqrtm, against the test set) on the digits classifier's features."""
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    result = CliRunner().invoke(main, ["run", "--plugin", "ebm", "--budget", "unit", *FAST,
                                       "--importance-samples", "20", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "binarized-digits" in result.output
    table = pd.read_csv(tmp_path / "table.csv").set_index("model")
    assert set(table.index) == {"categorical", "rbm", "rbm-pcd", "dbm"}  # fvbm: 64 dims > 20, left out
    assert table.loc["rbm", "likelihood"] == "estimate (AIS, T=500, M=20)"
    assert table.loc["dbm", "likelihood"] == (
        "estimate (estimate of a lower bound: mean-field ELBO, log Z by AIS, T=500, M=20)")
    shown = (tmp_path / "table.md").read_text()
    assert "≈ " in shown and "free energy F(v) / D" in shown
    records = [json.loads(path.read_text()) for path in (tmp_path / "records").glob("*.json")]
    records = {record["spec"]["model"]: record for record in records}
    assert set(records) == set(table.index)
    for model, record in records.items():
        nll, quality, outliers = (record["metrics"][name] for name in ("test_nll", "sample_quality", "outliers"))
        assert nll["bits_per_dim"] == pytest.approx(nll["nats"] / (64 * math.log(2)), rel=1e-12)
        assert nll["bits_per_dim"] < 0.9, model
        assert outliers["sets"]["uniform-noise"]["auroc"] > 0.9, model
        drawn = quality["draws"]["metrics"]  # tables show the mean over the sample draws
        columns = {"bits_per_dim_mean": nll["bits_per_dim"],
                   "inception_score_mean": drawn["inception_score_mean"]["mean"],
                   "fid_mean": drawn["fid"]["mean"], "auroc_mean": outliers["sets"][outliers["headline"]]["auroc"]}
        for column, value in columns.items():
            assert table.loc[model, column] == pytest.approx(value, rel=1e-6), (model, column)

    rbm = records["rbm"]["metrics"]
    saved = read_checkpoint(checkpoint_path(tmp_path, records["rbm"]["key"]))
    state = saved["state_dict"]
    dataset = load_dataset("binarized-digits")
    f_test = free_energy(state, dataset.test.x)
    assert rbm["test_nll"]["nats"] == pytest.approx(f_test.mean() + rbm["test_nll"]["details"]["log_z"], rel=1e-6)
    # log Z-hat shifts every test example at once: its error joins the test set's, in quadrature
    nll, log_z_se = rbm["test_nll"], rbm["test_nll"]["details"]["log_z_standard_error"]
    assert nll["log_z_standard_error"] == log_z_se > 0
    assert nll["nats_se_combined"] == pytest.approx(math.hypot(nll["nats_sem"], log_z_se), rel=1e-12)
    assert nll["intervals"]["nats"]["standard_error"] == nll["nats_se_combined"]
    noise = synthetic_outliers(dataset.shape, 2, len(dataset.test), torch.Generator().manual_seed(OUTLIER_SEED),
                               kinds=("uniform-noise",))["uniform-noise"]
    labels = np.r_[np.zeros(len(f_test)), np.ones(len(noise))]
    auroc = roc_auc_score(labels, np.r_[f_test, free_energy(state, noise)] / 64)
    assert rbm["outliers"]["sets"]["uniform-noise"]["auroc"] == pytest.approx(auroc, abs=1e-4)

    run = resolve_run(RunSpec(**saved["spec"]), load_plugins(), dataset)
    model = run.hooks.build(run.info, run.options)
    model.load_state_dict(state)
    device = torch.device(records["rbm"]["provenance"]["device"])  # where the run drew its samples
    samples, _ = draw_samples(run.hooks, model.to(device), run.info, run.budget.num_samples, run.spec.seed, device)
    weights = ensure_extractor("digits-classifier")  # the one the run trained into the tests' cache
    generated, real = (extract_features(to_uint8(x, 2), weights) for x in (samples, dataset.test.x))
    quality = rbm["sample_quality"]
    assert quality["inception_score_mean"] == pytest.approx(inception_score(generated[LOGITS].numpy()), rel=1e-9)
    fid = frechet_distance(generated[EMBEDDING].numpy(), real[EMBEDDING].numpy())
    assert quality["fid"] == pytest.approx(fid, rel=1e-6)


def test_ais_on_tiny_digits_agrees_with_the_exact_partition_function(tmp_path):
    """On 4x4 binarized digits the RBM (16 hidden units) and the fully visible machine can be
    enumerated: the RBM's AIS-based NLL matches its exact NLL, and fvbm is exact. References: log Z
    summed over the 2^16 visible states (numpy, from the checkpoint) and over the 2^16 hidden states
    (the plugin's `exact_log_z`) agree; the recorded AIS log Z is within 0.05 nats of it, and the
    recorded NLL within 0.05 nats of the exact -mean log p(test) = mean F(v) + log Z; fvbm's recorded
    NLL is its exact -mean log p(test), enumerated in numpy from its checkpoint."""
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
    assert exact == pytest.approx(exact_log_z(blob["state_dict"]), abs=1e-6)
    assert details["log_z"] == pytest.approx(exact, abs=0.05)
    test_x = ctx.dataset("tiny-binarized-digits").test.x
    exact_nll = free_energy(blob["state_dict"], test_x).mean() + exact
    assert rbm.metrics["test_nll"]["nats"] == pytest.approx(exact_nll, abs=0.05)
    fvbm_state = read_checkpoint(checkpoint_path(tmp_path, fvbm.key))["state_dict"]
    assert fvbm.metrics["test_nll"]["nats"] == pytest.approx(-fvbm_log_prob(fvbm_state, test_x).mean(), rel=1e-6)


def test_a_model_that_cannot_enumerate_the_data_is_refused_up_front_when_named(tmp_path):
    result = CliRunner().invoke(main, ["run", "--plugin", "ebm", "--model", "fvbm", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "Error: ebm:fvbm cannot be trained on dataset 'binarized-digits': it handles at most 20 dimensions, not 64")
