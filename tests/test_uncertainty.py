"""The uncertainty mathematics (issue 20) against independent references: scipy's t quantiles,
the closed-form Fréchet distance of Gaussians in simulation, the closed-form AUROC of two
Gaussians in simulation, and hand-made seeds for the rank rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from evalgen.metrics.fidelity import frechet_distance
from evalgen.metrics.uncertainty import (
    _welch_p,
    auroc_interval,
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


def test_fid_infinity_removes_most_of_the_sample_size_bias():
    """200 repetitions: generated features N(0, I) at N = 200..1000 (nested, as Chong & Forsyth
    draw them), reference features N(mu, diag(v)) (20,000 per repetition); the mean FID at N = 1000
    is biased by the finite N, the mean FID∞ by at most half as much. The coverage of the true
    value by FID∞ ± 1.96 standard errors is measured and printed."""
    rng = np.random.default_rng(0)
    dim, counts = 16, (200, 400, 600, 800, 1000)
    mu, var = np.full(dim, 0.1), np.linspace(0.5, 2.0, dim)
    truth = _gaussian_fd(mu, np.ones(dim), var)
    at_n, at_infinity, covered = [], [], 0
    for _ in range(200):
        reference = mu + rng.normal(size=(20_000, dim)) * np.sqrt(var)
        generated = rng.normal(size=(counts[-1], dim))
        fids = [frechet_distance(generated[:n], reference)[0] for n in counts]
        fit = extrapolate_to_infinity(counts, fids)
        at_n.append(fids[-1])
        at_infinity.append(fit.value)
        covered += abs(fit.value - truth) <= 1.96 * fit.standard_error
    bias_n, bias_infinity = np.mean(at_n) - truth, np.mean(at_infinity) - truth
    print(f"FD {truth:.4f}: bias of FID_1000 {bias_n:+.4f}, of FID∞ {bias_infinity:+.4f} "
          f"(Monte-Carlo error {np.std(at_infinity) / math.sqrt(200):.4f}); FID∞ ± 1.96 SE covers the "
          f"truth in {covered / 200:.1%}")
    assert bias_n > 0 and abs(bias_infinity) <= 0.5 * bias_n


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
