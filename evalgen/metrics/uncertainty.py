"""The uncertainty of evalgen's numbers: the mathematics, apart from records and tables.

* `seed_interval`: mean, std, n and the Student-t interval over seeds (scipy's t quantiles).
* `RunInterval`, `draws_interval`, `normal_interval`: the uncertainty of one run's number, as
  records store it: over R independent sample draws (Student t, R - 1 degrees of freedom), or
  from a standard error with a normal quantile (test-set NLL, a bootstrap).
* `extrapolate_to_infinity`: FID∞ (or IS∞) as Chong & Forsyth (2020), "Effectively Unbiased FID
  and Inception Score and where to find them": the metric at several sample counts N, a
  least-squares line in 1/N, and its intercept (the value at N = ∞) with the intercept's
  standard error; the points of the fit are kept.
* `auroc_interval`: a seeded percentile bootstrap of the AUROC (``scipy.stats.bootstrap``,
  in-distribution and outlier scores resampled independently).
* `ranks_from_stats` / `significance_ranks`: a model's rank is 1 + the number of models
  significantly better than it (Welch's t-test per pair of rows with two or more seeds, Holm's
  correction over the column's tested pairs at level ``alpha``), so models the noise cannot
  order share a rank; a single-seed row cannot be tested and is ordered by its value.

Every function is tested against an independent reference (closed forms, scipy, simulation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats

__all__ = ["NORMAL_N", "Extrapolation", "RunInterval", "SeedInterval", "auroc_interval", "draws_interval",
           "extrapolate_to_infinity", "holm_reject", "normal_interval", "ranks_from_stats", "seed_interval",
           "significance_ranks"]

#: The confidence level of every interval evalgen prints, and the test level of its ranks.
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE


@dataclass(frozen=True)
class SeedInterval:
    """Mean, sample std (ddof 1), n and the two-sided Student-t interval of the mean over seeds;
    std and the interval are None with fewer than two finite values."""

    mean: float | None
    std: float | None
    n: int
    low: float | None
    high: float | None


def seed_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> SeedInterval:
    """The interval of the mean of ``values`` (NaN and None ignored): mean ± t_{n-1} · std / √n."""
    clean = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = len(clean)
    if n == 0:
        return SeedInterval(None, None, 0, None, None)
    mean = float(clean.mean())
    if n == 1:
        return SeedInterval(mean, None, 1, None, None)
    std = float(clean.std(ddof=1))
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return SeedInterval(mean, std, n, mean - half, mean + half)


@dataclass(frozen=True)
class RunInterval:
    """The uncertainty of one run's number, stored in its record (``to_dict``).

    ``value`` is the number reported; ``standard_error`` its standard error; ``dof`` the degrees
    of freedom of that error (R - 1 over R draws; None: a normal quantile); ``low``/``high`` the
    two-sided interval at ``confidence``; ``method`` says in words how it was obtained.
    """

    value: float
    standard_error: float
    dof: float | None
    low: float
    high: float
    method: str
    confidence: float = CONFIDENCE

    def to_dict(self) -> dict:
        return {"value": self.value, "standard_error": self.standard_error, "dof": self.dof, "low": self.low,
                "high": self.high, "method": self.method, "confidence": self.confidence}

    def as_stats(self) -> tuple[float, float, int]:
        """(mean, std, n) with std / sqrt(n) = the standard error, for Welch's test against other
        rows (`ranks_from_stats`); a normal quantile is n = 10^6."""
        n = NORMAL_N if self.dof is None else round(self.dof) + 1
        return self.value, self.standard_error * math.sqrt(n), n


#: The sample size that stands for "a normal quantile" when an interval is tested (`RunInterval.as_stats`).
NORMAL_N = 10**6


def draws_interval(values: Sequence[float], method: str, confidence: float = CONFIDENCE) -> RunInterval | None:
    """The Student-t interval of the mean of R >= 2 independent draws' values; None with fewer."""
    seeds = seed_interval(values, confidence)
    if seeds.n < 2 or seeds.std is None:
        return None
    return RunInterval(seeds.mean, seeds.std / math.sqrt(seeds.n), seeds.n - 1, seeds.low, seeds.high, method,
                       confidence)


def normal_interval(value: float, standard_error: float, method: str, confidence: float = CONFIDENCE) -> RunInterval:
    """value ± z · standard_error (z the normal quantile of ``confidence``)."""
    half = float(scipy.stats.norm.ppf(0.5 + confidence / 2)) * standard_error
    return RunInterval(value, standard_error, None, value - half, value + half, method, confidence)


@dataclass(frozen=True)
class Extrapolation:
    """A metric's value at N = ∞ from a straight line in 1/N through (N_i, value_i)."""

    value: float  #: the intercept: the metric at infinitely many samples
    #: the intercept's standard error from the fit's residuals. It measures how far the points
    #: are from a line, not the sampling noise of the draw they share (nested subsets of one
    #: sample): in simulation (tests/test_uncertainty.py) intercept ± 1.96 SE covered the true
    #: distance in only 44.5 % of 200 repetitions, so an interval for FID∞ must come from the
    #: spread of independent draws, never from this number alone.
    standard_error: float
    slope: float  #: the metric's change per unit of 1/N (its bias at N is slope / N)
    counts: tuple[int, ...]  #: the sample counts N_i of the fit
    values: tuple[float, ...]  #: the metric at each N_i


def extrapolate_to_infinity(counts: Sequence[int], values: Sequence[float]) -> Extrapolation:
    """Least squares value_i = value_∞ + slope / N_i (at least three distinct counts)."""
    n = np.asarray(counts, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if len(n) != len(y) or len(np.unique(n)) < 3 or np.any(n <= 0) or not np.all(np.isfinite(y)):
        raise ValueError("extrapolation needs finite values at three or more distinct positive sample counts")
    fit = scipy.stats.linregress(1.0 / n, y)
    return Extrapolation(float(fit.intercept), float(fit.intercept_stderr), float(fit.slope),
                         tuple(int(c) for c in counts), tuple(float(v) for v in values))


def _auroc(in_scores: np.ndarray, out_scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(outlier score > in-distribution score) + ½ P(tie), by ranks (Mann-Whitney U), along ``axis``."""
    n_in, n_out = in_scores.shape[axis], out_scores.shape[axis]
    ranks = scipy.stats.rankdata(np.concatenate([in_scores, out_scores], axis=axis), axis=axis)
    out_ranks = np.take(ranks, np.arange(n_in, n_in + n_out), axis=axis)
    return (out_ranks.sum(axis=axis) - n_out * (n_out + 1) / 2) / (n_in * n_out)


def auroc_interval(in_scores, out_scores, *, seed: int, confidence: float = CONFIDENCE,
                   resamples: int = 1000) -> tuple[float, float]:
    """A percentile-bootstrap interval of the AUROC (outliers positive), seeded; each of the two
    score sets is resampled with replacement on its own, as they are independent samples."""
    x, y = (np.asarray(s, dtype=np.float64).ravel() for s in (in_scores, out_scores))
    result = scipy.stats.bootstrap((x, y), _auroc, vectorized=True, paired=False, n_resamples=resamples,
                                   confidence_level=confidence, method="percentile",
                                   random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def holm_reject(p_values: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise level ``alpha``."""
    order = np.argsort(p_values, kind="stable")
    reject = [False] * len(p_values)
    for step, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - step):
            break
        reject[index] = True
    return reject


def _welch_p(a: tuple[float, float, int], b: tuple[float, float, int]) -> tuple[float, float]:
    """(t, two-sided p) of Welch's test from (mean, std, n) of each; zero spread on both sides is
    a sure difference when the means differ and none when they are equal."""
    (m1, s1, n1), (m2, s2, n2) = a, b
    if s1 == 0 and s2 == 0:
        return (m1 - m2, 0.0 if m1 != m2 else 1.0)
    test = scipy.stats.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=False)
    return float(test.statistic), float(test.pvalue) if math.isfinite(test.pvalue) else 1.0


def ranks_from_stats(stats: Sequence[tuple[float | None, float | None, int]], *, higher_is_better: bool,
                     alpha: float = ALPHA) -> list[int | None]:
    """Rank = 1 + the number of rows significantly better, from each row's (mean, std, n) over
    seeds. Pairs where both rows have two or more seeds are tested (Welch, Holm-corrected over the
    tested pairs at ``alpha``); a pair with a single-seed row cannot be tested and is ordered by
    value. Rows without a mean get None."""
    present = [i for i, (mean, _, _) in enumerate(stats) if mean is not None and math.isfinite(mean)]
    tested, p_values, better = [], [], {i: 0 for i in present}  # row -> rows significantly better
    for k, i in enumerate(present):
        for j in present[k + 1:]:
            (mi, si, ni), (mj, sj, nj) = stats[i], stats[j]
            if ni >= 2 and nj >= 2 and si is not None and sj is not None:
                statistic, p = _welch_p((mi, si, ni), (mj, sj, nj))
                tested.append((i, j, statistic))
                p_values.append(p)
            elif mi != mj:
                better[j if (mi > mj) == higher_is_better else i] += 1
    for (i, j, statistic), rejected in zip(tested, holm_reject(p_values, alpha)):
        if rejected:
            better[j if (statistic > 0) == higher_is_better else i] += 1
    return [1 + better[i] if i in better else None for i in range(len(stats))]


def significance_ranks(samples: Mapping[str, Sequence[float]], *, higher_is_better: bool,
                       alpha: float = ALPHA) -> dict[str, int | None]:
    """`ranks_from_stats` of each model's seeds (NaN and None ignored)."""
    names = list(samples)
    intervals = [seed_interval(samples[name]) for name in names]
    stats = [(iv.mean, iv.std, iv.n) for iv in intervals]
    return dict(zip(names, ranks_from_stats(stats, higher_is_better=higher_is_better, alpha=alpha)))
