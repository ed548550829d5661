"""Likelihood labels that are true (issue 20): the uniform dequantization bound of a density on
dequantized data, importance-weighted over K noise draws; old records relabelled on reading; the
DBM's estimated bound; the AIS log Z standard error; the per-run intervals of the test NLL."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from evalgen.datasets.base import LoadContext
from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint
from evalgen.harness.contract import CheckedHooks
from evalgen.harness.data import ModelData, dequantization_seed, to_representation
from evalgen.harness.evaluation import DEFAULT_OUTLIER_SCORE, dequantization_draws
from evalgen.harness.evaluation import test_log_prob as evaluate_test_log_prob
from evalgen.harness.runner import RunContext, run_one
from evalgen.harness.spec import RunSpec
from evalgen.metrics.nll import (
    dequantization_estimator,
    discrete_likelihood,
    importance_weighted_log_prob,
    nll_uncertainty,
    summarize_nll,
)
from evalgen.options import resolved_options
from evalgen.plugins import load_plugins
from evalgen.records import _DEFAULT_SCORE, read_record, relabel_likelihood
from evalgen.tables import comparison
from evalgen.types import Likelihood, LikelihoodKind, Representation
from evalgen_ebm import ais
from evalgen_ebm.hooks import dbm_likelihood

ROOT = Path(__file__).resolve().parents[1]
OLD_FLOW = ROOT / "leaderboards/cpu-quick/runs/digits/records/flows--realnvp--digits--quick--seed0.json"
OLD_IWAE = ROOT / "leaderboards/cpu-quick/runs/digits/records/vae--iwae--digits--quick--seed0.json"


# --- (a) the importance-weighted dequantization bound against closed-form cell masses -------------

class TruncatedGaussian:
    """A product density on [0, 1)^D: each coordinate N(mu_d, sigma_d^2) restricted to [0, 1).
    Its mass on the cell [j/L, (j+1)/L) is a difference of normal CDFs (scipy), the reference."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray) -> None:
        self.mu, self.sigma = mu, sigma
        self.log_norm = np.log(scipy.stats.norm.cdf((1 - mu) / sigma) - scipy.stats.norm.cdf(-mu / sigma))

    def log_density(self, y: np.ndarray) -> np.ndarray:
        """(..., D) points in [0, 1)^D -> (...) log p(y)."""
        return (scipy.stats.norm.logpdf(y, self.mu, self.sigma) - self.log_norm).sum(-1)

    def log_mass(self, x: np.ndarray, levels: int) -> np.ndarray:
        """(N, D) integer levels -> (N,) log P(x), the mass of x's cell."""
        cdf = scipy.stats.norm.cdf
        mass = cdf(((x + 1) / levels - self.mu) / self.sigma) - cdf((x / levels - self.mu) / self.sigma)
        return (np.log(mass) - self.log_norm).sum(-1)


def _dequantized_draws(model: TruncatedGaussian, x: np.ndarray, levels: int, k: int,
                       rng: np.random.Generator) -> torch.Tensor:
    """(N, K) log p((x + u_k) / L) for K uniform noise draws per example."""
    u = rng.random((x.shape[0], k, x.shape[1]))
    return torch.from_numpy(model.log_density((x[:, None, :] + u) / levels))


def test_iw_dequantization_bound_lies_between_one_draw_and_the_exact_discrete_nll():
    """Single-draw NLL >= IW NLL (K = 10) >= IW NLL (K = 1000) >= the exact -log P(x) from the cell
    masses (scipy CDFs), and K = 1000 is within 0.01 nats of it; D = 3 dims, L = 4 levels."""
    levels, dims, n = 4, 3, 2_000
    model = TruncatedGaussian(np.array([0.3, 0.6, 0.5]), np.array([0.15, 0.2, 0.3]))
    rng = np.random.default_rng(0)
    x = np.stack([rng.integers(0, levels, n) for _ in range(dims)], 1)
    exact = float(-model.log_mass(x, levels).mean())
    draws = _dequantized_draws(model, x, levels, 1_000, rng)
    nats = {k: summarize_nll(draws[:, :k], Representation.DEQUANTIZED, dims, levels, Likelihood()).nats
            for k in (1, 10, 1_000)}
    assert nats[1] > nats[10] > nats[1_000] >= exact - 1e-3
    assert nats[1_000] - exact < 0.01
    assert nats[1] - exact > 0.05  # the single draw's gap is real: a bound, not the likelihood


def test_one_draw_reproduces_the_single_draw_value_bit_for_bit():
    """K = 1 as (N, 1) is the (N,) single-draw summary, and both are -mean log p + D log L as the
    harness computed it before K draws, to the last bit; the IW of K = 1 is the draw itself."""
    log_p = torch.randn(50, 1, dtype=torch.float64) * 3 - 20
    one = summarize_nll(log_p, Representation.DEQUANTIZED, 8, 17, Likelihood())
    flat = summarize_nll(log_p[:, 0], Representation.DEQUANTIZED, 8, 17, Likelihood())
    before = float((-log_p[:, 0] + 8 * math.log(17)).mean())
    assert one.nats == flat.nats == before == one.dequantization["single_draw"]["nats"]
    assert one.dequantization["importance_weighted"]["nats"] == before
    assert one.dequantization["draws"] == 1 and one.dequantization["single_draw_noise_error"]["nats"] is None
    assert torch.equal(importance_weighted_log_prob(log_p), log_p[:, 0])


def test_the_noise_error_is_the_spread_over_draws():
    """sqrt(mean_i var_k log p / N): numpy's variance over draws, averaged, over N."""
    draws = torch.randn(40, 5, dtype=torch.float64)
    section = summarize_nll(draws, Representation.DEQUANTIZED, 4, 2, Likelihood()).dequantization
    expected = math.sqrt(np.var(draws.numpy(), axis=1, ddof=1).mean() / 40)
    assert section["single_draw_noise_error"]["nats"] == pytest.approx(expected, rel=1e-12)


def test_labels_name_the_bound_and_its_draws():
    exact = discrete_likelihood(Likelihood(), Representation.DEQUANTIZED, 10)
    assert exact == Likelihood(LikelihoodKind.LOWER_BOUND,
                               "uniform dequantization bound, importance-weighted over K=10 noise draws")
    assert discrete_likelihood(Likelihood(), Representation.DEQUANTIZED, 1).estimator == dequantization_estimator(1)
    for representation in (Representation.LEVELS, Representation.CONTINUOUS, None):
        assert discrete_likelihood(Likelihood(), representation, 10) == Likelihood()
    assert dbm_likelihood(500).with_samples(20).label == (
        "estimate (estimate of a lower bound: mean-field ELBO, log Z by AIS, T=500, M=20)")


# --- (b) records written before: relabelled on reading, numbers unchanged ---------------------------

def _copy_record(source: Path, folder: Path, edit=None) -> Path:
    record = json.loads(source.read_text())
    if edit is not None:
        record = edit(record)
    (folder / "records").mkdir(parents=True, exist_ok=True)
    path = folder / "records" / f"{record['key']}.json"
    path.write_text(json.dumps(record))
    return path


def test_an_old_flow_record_reads_back_as_the_single_draw_bound(tmp_path):
    raw = json.loads(OLD_FLOW.read_text())
    assert (raw["model"]["likelihood"], raw["model"]["representation"]) == ("exact", "dequantized")
    record = read_record(_copy_record(OLD_FLOW, tmp_path))
    assert record.model.likelihood_kind is LikelihoodKind.LOWER_BOUND
    assert record.model.likelihood == "lower bound (uniform dequantization bound, one noise draw per example)"
    assert record.training.budget.dequantization_samples == 1
    nll = record.metrics["test_nll"]
    assert (nll["kind"], nll["estimator"]) == ("lower bound", dequantization_estimator(1))
    assert {k: nll[k] for k in ("nats", "nats_sem", "bits_per_dim")} == {
        k: raw["metrics"]["test_nll"][k] for k in ("nats", "nats_sem", "bits_per_dim")}
    assert record.metrics["outliers"]["score"] == (
        "-log p(x) / D (lower bound: uniform dequantization bound, one noise draw per example)")
    assert _DEFAULT_SCORE == DEFAULT_OUTLIER_SCORE
    shown = comparison([record])[1]
    assert shown.loc[0, "test NLL (bits/dim) ↓"].startswith("≤ ")


def _as_old_dbm(record: dict) -> dict:
    """The flow record as a DBM record of the same schema, labelled as evalgen labelled DBMs before."""
    spec = {**record["spec"], "plugin": "ebm", "model": "dbm"}
    old = "mean-field bound, log Z by AIS, T=500, M=20"
    metrics = {**record["metrics"],
               "test_nll": {**record["metrics"]["test_nll"], "kind": "lower bound", "estimator": old},
               "outliers": {**record["metrics"]["outliers"],
                            "score": "-log p(x) / D (lower bound: mean-field bound, log Z by AIS, T=500, M=5)"}}
    model = {**record["model"], "likelihood": f"lower bound ({old})", "representation": "levels"}
    return {**record, "spec": spec, "key": record["key"].replace("flows--realnvp", "ebm--dbm"), "model": model,
            "metrics": metrics}


def test_an_old_dbm_record_reads_back_as_an_estimate(tmp_path):
    record = read_record(_copy_record(OLD_FLOW, tmp_path, _as_old_dbm))
    assert record.model.likelihood_kind is LikelihoodKind.ESTIMATE
    assert record.model.likelihood == "estimate (estimate of a lower bound: mean-field ELBO, log Z by AIS, T=500, M=20)"
    assert record.metrics["test_nll"]["kind"] == "estimate"
    assert record.metrics["outliers"]["score"] == (
        "-log p(x) / D (estimate: estimate of a lower bound: mean-field ELBO, log Z by AIS, T=500, M=5)")
    assert comparison([record])[1].loc[0, "test NLL (bits/dim) ↓"].startswith("≈ ")


def test_true_labels_are_left_alone(tmp_path):
    raw = json.loads(OLD_IWAE.read_text())
    record = read_record(_copy_record(OLD_IWAE, tmp_path))
    assert record.model.likelihood == raw["model"]["likelihood"] == "lower bound (IWAE, K=100)"
    again = {"model": {"likelihood": record.model.likelihood, "likelihood_kind": "lower bound",
                       "representation": "levels"}, "metrics": {}}
    assert relabel_likelihood(again) is again


# --- (c) the AIS log Z standard error by the delta method ---------------------------------------------

def test_log_z_standard_error_matches_a_simulation_and_a_bootstrap():
    """log mean(w) over M = 500 log-normal weights (sigma 1): the delta method's std(w) / (sqrt(M)
    mean(w)) against the spread of log mean(w) over 4,000 independent sets (10 %) and scipy's
    bootstrap of one set (20 %); shifting every log weight by 1000 changes nothing (log space)."""
    rng = np.random.default_rng(1)
    m, sigma = 500, 1.0
    log_w = rng.normal(0.0, sigma, m)
    delta = ais.log_mean_standard_error(torch.from_numpy(log_w))
    w = np.exp(log_w)
    assert delta == pytest.approx(np.std(w, ddof=1) / (math.sqrt(m) * w.mean()), rel=1e-12)
    sets = rng.normal(0.0, sigma, (4_000, m))
    simulated = float(np.std(np.log(np.exp(sets).mean(1)), ddof=1))
    assert delta == pytest.approx(simulated, rel=0.10)
    boot = scipy.stats.bootstrap((log_w,), lambda lw, axis: np.log(np.exp(lw).mean(axis=axis)),
                                 n_resamples=2_000, random_state=2, vectorized=True)
    assert delta == pytest.approx(boot.standard_error, rel=0.20)
    assert ais.log_mean_standard_error(torch.from_numpy(log_w + 1_000.0)) == pytest.approx(delta, rel=1e-9)
    assert ais.log_mean_standard_error(torch.zeros(1)) is None
    estimate = ais.estimate_log_z(torch.from_numpy(log_w), log_z_base=2.0, steps=10)
    assert estimate.log_z_standard_error == delta and estimate.to_dict()["log_z_standard_error"] == delta


def test_log_z_error_joins_the_test_sets_in_quadrature():
    """nats_sem stays the per-example one; the combined error and the interval add log Z's."""
    log_p = torch.linspace(-60.0, -40.0, 100, dtype=torch.float64)
    summary = summarize_nll(log_p, Representation.LEVELS, 64, 2, Likelihood(LikelihoodKind.ESTIMATE, "AIS"))
    added = nll_uncertainty(summary, 0.3)
    assert added["log_z_standard_error"] == 0.3
    assert added["nats_se_combined"] == pytest.approx(math.sqrt(summary.nats_sem**2 + 0.09), rel=1e-12)
    nats, bits = added["intervals"]["nats"], added["intervals"]["bits_per_dim"]
    assert nats["standard_error"] == added["nats_se_combined"] and nats["value"] == summary.nats
    assert nats["high"] - nats["value"] == pytest.approx(1.959964 * added["nats_se_combined"], rel=1e-6)
    assert bits["standard_error"] == pytest.approx(nats["standard_error"] / (64 * math.log(2)), rel=1e-12)
    plain = nll_uncertainty(summary, None)
    assert "log_z_standard_error" not in plain and plain["intervals"]["nats"]["standard_error"] == summary.nats_sem
    continuous = summarize_nll(log_p, Representation.CONTINUOUS, 2, None, Likelihood())
    assert set(nll_uncertainty(continuous, None)["intervals"]) == {"nats"}


# --- (d) the harness on a smoke run of a flow ----------------------------------------------------------

def test_a_smoke_flow_run_records_the_bound_its_draws_and_intervals(tmp_path):
    """A MAF on digits at smoke (K = 2): the record says lower bound; its single draw is the fixed
    seed's noise (the numbers of records before K draws, bit for bit); its headline is the IW bound
    over that draw and draw 2 (noise redrawn here from `dequantization_seed(1)`)."""
    plugins = load_plugins()
    ctx = RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path / "data", False))
    spec = RunSpec("flows", "maf", "digits", "smoke", 0)
    record, _ = run_one(spec, ctx)
    assert record.model.likelihood_kind is LikelihoodKind.LOWER_BOUND
    assert record.model.likelihood == f"lower bound ({dequantization_estimator(2)})"
    assert record.metrics["outliers"]["score"] == f"-log p(x) / D (lower bound: {dequantization_estimator(1)})"
    nll = record.metrics["test_nll"]
    section = nll["dequantization"]
    assert section["draws"] == 2 and section["importance_weighted"]["nats"] == nll["nats"]
    assert section["single_draw"]["nats"] > nll["nats"]
    assert set(nll["intervals"]) == {"nats", "bits_per_dim"}
    assert nll["intervals"]["nats"]["standard_error"] == nll["nats_sem"]

    family = plugins.family("flows")
    dataset = ctx.dataset("digits")
    info = dataset.info(Representation.DEQUANTIZED)
    hooks = CheckedHooks(plugins.hooks("flows"), family.model("maf"))
    model = hooks.build(info, resolved_options(family, "maf"))
    model.load_state_dict(read_checkpoint(checkpoint_path(tmp_path, spec.key))["state_dict"])
    data = ModelData(dataset, info.representation, torch.device("cpu"))
    offset = info.num_dims * math.log(17)
    single = evaluate_test_log_prob(hooks, model, data)  # the one draw, as before K draws
    assert section["single_draw"]["nats"] == float((-single + offset).mean())
    second = to_representation(dataset.test.x, info.representation, 17,
                               torch.Generator().manual_seed(dequantization_seed(1)))
    both = torch.stack([single, hooks.log_prob_in_batches(model, second, 1)], 1)
    assert torch.equal(dequantization_draws(hooks, model, data, 2), both)
    expected = float((-(torch.logsumexp(both, 1) - math.log(2)) + offset).mean())
    assert nll["nats"] == pytest.approx(expected, rel=1e-12)
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
