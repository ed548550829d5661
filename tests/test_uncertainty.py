"""The uncertainty mathematics (issue 20) against independent references: scipy's t quantiles,
the closed-form Fréchet distance of Gaussians in simulation, the closed-form AUROC of two
Gaussians in simulation, and hand-made seeds for the rank rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from evalgen.budget_presets import PRESETS
from evalgen.metrics.draws import at_infinity, inception_score, sample_counts, summarize_infinity
from evalgen.metrics.uncertainty import (
    _welch_p,
    auroc_interval,
    draws_interval,
    extrapolate_to_infinity,
    holm_reject,
    seed_interval,
    significance_ranks,
)


def test_seed_interval_is_scipys_student_t_interval():
    values = [91.2, 90.7, 91.9, float("nan"), 91.4]
    interval = seed_interval(values)
    clean = np.array([91.2, 90.7, 91.9, 91.4])
    low, high = scipy.stats.t.interval(0.95, len(clean) - 1, loc=clean.mean(), scale=scipy.stats.sem(clean))
    assert interval.n == 4 and interval.mean == pytest.approx(clean.mean())
    assert interval.std == pytest.approx(clean.std(ddof=1))
    assert interval.low == pytest.approx(low, rel=1e-12) and interval.high == pytest.approx(high, rel=1e-12)
    single = seed_interval([3.0])
    assert (single.mean, single.std, single.n, single.low, single.high) == (3.0, None, 1, None, None)
    assert seed_interval([]).n == 0


def _gaussian_fd(mu: np.ndarray, var_1: np.ndarray, var_2: np.ndarray) -> float:
    """Closed form between N(0, diag(var_1)) and N(mu, diag(var_2)): |mu|^2 + sum (sqrt v1 - sqrt v2)^2."""
    return float(mu @ mu + ((np.sqrt(var_1) - np.sqrt(var_2)) ** 2).sum())


def test_fid_infinity_removes_most_of_the_sample_size_bias_and_the_draws_intervals_are_measured():
    """At the quick budget's N and R, on the records' own arithmetic (`evalgen.metrics.draws`):
    200 repetitions of R independent draws of N generated features N(0, I) against one fixed
    reference set N(mu, diag(v)) (50,000 features, the fixed test split of a real evaluation),
    D = 16. The mean FID_N is biased by the finite N, the mean FID∞ by at most half as much (vs
    the closed-form distance). The coverage of the two stated intervals (R draws, Student t) is
    measured and printed: FID's of its expected value at N (from 4,000 further draws), FID∞'s of
    the true distance; and the fit's own standard error's, for comparison."""
    rng = np.random.default_rng(0)
    quick = next(b for b in PRESETS if b.name == "quick")
    n, draws_per_run, dim = quick.num_samples, quick.sample_draws, 16
    counts = sample_counts(n)
    mu, var = np.full(dim, 0.1), np.linspace(0.5, 2.0, dim)
    truth = _gaussian_fd(mu, np.ones(dim), var)
    reference = mu + rng.normal(size=(50_000, dim)) * np.sqrt(var)
    fid_of = _fid_against(reference)
    expected_at_n = float(np.mean([fid_of(rng.normal(size=(n, dim))) for _ in range(4_000)]))
    at_n, intercepts, covered_n, covered_infinity, covered_fit = [], [], 0, 0, 0
    for _ in range(200):
        samples = [rng.normal(size=(n, dim)) for _ in range(draws_per_run)]
        fits = [at_infinity(lambda k, x=x: fid_of(x[:k]), counts) for x in samples]
        fid_n = draws_interval([f["values"][-1] for f in fits], "draws")
        infinity = summarize_infinity(fits, counts)
        at_n.append(fid_n.value)
        intercepts.append(infinity["value"])
        covered_n += fid_n.low <= expected_at_n <= fid_n.high
        covered_infinity += infinity["interval"]["low"] <= truth <= infinity["interval"]["high"]
        covered_fit += abs(fits[0]["value"] - truth) <= 1.96 * fits[0]["fit_standard_error"]
    bias_n, bias_infinity = np.mean(at_n) - truth, np.mean(intercepts) - truth
    print(f"N={n}, R={draws_per_run}, FD {truth:.4f}: bias of FID_N {bias_n:+.5f}, of FID∞ {bias_infinity:+.5f} "
          f"(Monte-Carlo error {np.std(intercepts) / math.sqrt(200):.5f}); the R-draw interval of FID covers "
          f"E[FID_N] in {covered_n / 200:.1%}, of FID∞ covers the truth in {covered_infinity / 200:.1%}; one "
          f"draw's fit ± 1.96 SE covers it in {covered_fit / 200:.1%}")
    assert bias_n > 0 and abs(bias_infinity) <= 0.5 * bias_n
    assert 0.90 <= covered_n / 200 <= 0.99  # calibrated, as a t interval over independent draws should be


def _fid_against(reference: np.ndarray):
    """FID of features against a fixed reference, its statistics computed once (as the cache does)."""
    ref_mean, ref_cov = reference.mean(axis=0), np.cov(reference, rowvar=False)

    def fid(features: np.ndarray) -> float:
        mean, cov = features.mean(axis=0), np.cov(features, rowvar=False)
        root = scipy.linalg.sqrtm(cov @ ref_cov).real
        return float(((mean - ref_mean) ** 2).sum() + np.trace(cov + ref_cov - 2 * root))

    return fid


def test_the_inception_score_without_splits_is_torch_fidelitys_with_one_split():
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric

    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3.0, size=(500, 10))
    ours = inception_score(logits)
    theirs = isc_featuresdict_to_metric({"logits": torch.from_numpy(logits)}, "logits", isc_splits=1,
                                        samples_shuffle=False, verbose=False)["inception_score_mean"]
    assert ours == pytest.approx(theirs, rel=1e-5)
    assert inception_score(np.zeros((7, 10))) == pytest.approx(1.0)  # p(y|x) = p(y): no information
    assert inception_score(np.eye(10)[np.arange(100) % 10] * 50) == pytest.approx(10.0, rel=1e-6)  # sure, even
    assert sample_counts(2000) == (400, 800, 1200, 1600, 2000) and sample_counts(256) == (51, 102, 154, 205, 256)


def test_extrapolation_recovers_an_exact_line_and_refuses_too_few_counts():
    counts = [400, 800, 1200, 1600, 2000]
    fit = extrapolate_to_infinity(counts, [3.0 + 500.0 / n for n in counts])
    assert fit.value == pytest.approx(3.0, rel=1e-12) and fit.slope == pytest.approx(500.0, rel=1e-12)
    assert fit.standard_error == pytest.approx(0.0, abs=1e-9) and fit.counts == tuple(counts)
    with pytest.raises(ValueError, match="three or more"):
        extrapolate_to_infinity([100, 100, 200], [1.0, 1.0, 2.0])


def test_the_auroc_interval_covers_the_closed_form_auroc_at_its_level():
    """Scores N(0, 1) (in-distribution) and N(d, 1) (outliers) have AUROC Φ(d/√2); over 200
    repetitions of 150 + 150 scores the 95 % bootstrap interval covers it in 92-98 % of them."""
    rng = np.random.default_rng(1)
    shift = 1.0
    truth = float(scipy.stats.norm.cdf(shift / math.sqrt(2)))
    covered = 0
    for repetition in range(200):
        low, high = auroc_interval(rng.normal(size=150), rng.normal(shift, 1, size=150), seed=repetition,
                                   resamples=500)
        covered += low <= truth <= high
    print(f"AUROC {truth:.4f}: the 95 % interval covers it in {covered / 200:.1%} of 200 repetitions")
    assert 0.92 <= covered / 200 <= 0.98


def test_holm_steps_down_until_the_first_kept_hypothesis():
    # sorted: 0.01 <= 0.05/3 rejected; 0.03 > 0.05/2 kept, and so is everything after it
    assert holm_reject([0.01, 0.04, 0.03]) == [True, False, False]
    assert holm_reject([0.001, 0.02, 0.04]) == [True, True, True]  # 0.001 <= 0.0167, 0.02 <= 0.025, 0.04 <= 0.05


def test_ranks_tie_what_the_noise_cannot_order():
    equal = {"a": [2.158, 2.162, 2.154], "b": [2.157, 2.163, 2.155], "c": [2.160, 2.150, 2.166]}
    assert significance_ranks(equal, higher_is_better=False) == {"a": 1, "b": 1, "c": 1}
    apart = {"worst": [3.0, 3.1, 2.9], "best": [1.0, 1.1, 0.9], "middle": [2.0, 2.1, 1.9]}
    assert significance_ranks(apart, higher_is_better=False) == {"worst": 3, "best": 1, "middle": 2}
    assert significance_ranks(apart, higher_is_better=True) == {"worst": 1, "best": 3, "middle": 2}
    one_seed = {**apart, "single": [1.5]}  # one value: no test; ordered by value against every row
    assert significance_ranks(one_seed, higher_is_better=False) == {"worst": 4, "best": 1, "middle": 3, "single": 2}
    no_spread = {"a": [1.0, 1.0], "b": [1.0, 1.0], "c": [2.0, 2.0]}  # zero std: equal ties, unequal differ
    assert significance_ranks(no_spread, higher_is_better=True) == {"a": 2, "b": 2, "c": 1}


def test_ranks_from_stats_are_welchs_test_on_the_seeds():
    """Reference: scipy's Welch test on the raw seeds; the rank rule's p-value is the same one."""
    a, b = [2.158, 2.162, 2.154], [2.150, 2.149, 2.151]
    raw = scipy.stats.ttest_ind(a, b, equal_var=False)
    stats = [(np.mean(v), np.std(v, ddof=1), len(v)) for v in (a, b)]
    assert _welch_p(*stats) == (pytest.approx(raw.statistic, rel=1e-12), pytest.approx(raw.pvalue, rel=1e-9))
