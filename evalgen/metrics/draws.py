"""Evaluation noise of the sample-based metrics, and their values at infinitely many samples.

* `summarize_draws`: R independent draws of N samples from the same model (different sample
  seeds) give R values of every metric; their mean, std and Student-t interval of the mean
  (`evalgen.metrics.uncertainty.draws_interval`) are the run's evaluation noise, as clean-fid
  reports repeated evaluations. IS's std over splits and KID's over subsets measure something
  else (the spread within one draw) and keep their own names.
* `sample_counts` / `at_infinity`: FID∞ and IS∞ as Chong & Forsyth (2020): the metric on the
  first n of a draw's N samples (i.i.d., so a random subset) for five n from N/5 to N, a line in
  1/n, its intercept. Each draw gives one intercept; the interval of FID∞ is the spread of the R
  intercepts (the fit's own standard error is kept, labelled, but it is not an interval: see
  `evalgen.metrics.uncertainty.Extrapolation`).
* `inception_score`: exp E_x KL(p(y|x) || p(y)) of one set of logits, without splits (the IS
  that IS∞ extrapolates).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from evalgen.metrics.uncertainty import draws_interval, extrapolate_to_infinity, seed_interval

__all__ = ["DRAWS_METHOD", "INFINITY_METHOD", "NUM_COUNTS", "at_infinity", "inception_score", "sample_counts",
           "summarize_draws"]

#: Sample counts of the FID∞/IS∞ fit: N/5, 2N/5, ..., N.
NUM_COUNTS = 5
DRAWS_METHOD = ("Student-t 95 % interval of the mean over {r} independent draws of {n} samples "
                "(sample seeds {seeds}; the same model)")
INFINITY_METHOD = ("Chong & Forsyth 2020: the metric on the first n of each draw's samples, n = {counts}, "
                   "a least-squares line in 1/n, its intercept; the value is the mean intercept over the "
                   "draws and the interval their Student-t 95 % interval")


def sample_counts(num_samples: int, num_counts: int = NUM_COUNTS) -> tuple[int, ...]:
    """``num_counts`` evenly spaced sample counts from N/num_counts to N (rounded), e.g. 2,000 ->
    (400, 800, 1200, 1600, 2000); fewer (distinct) where N is tiny."""
    counts = sorted({max(1, round(num_samples * (i + 1) / num_counts)) for i in range(num_counts)})
    return tuple(int(c) for c in counts)


def inception_score(logits: np.ndarray) -> float:
    """exp(mean_x KL(softmax(logits_x) || mean_x softmax(logits_x))) of (N, classes) logits, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    log_marginal = np.log(p.mean(axis=0))
    return float(np.exp((p * (log_p - log_marginal)).sum(axis=1).mean()))


def at_infinity(metric_at: Callable[[int], float], counts: Sequence[int]) -> dict[str, Any]:
    """One draw's fit: the metric at each count (``metric_at(n)``: on the first n samples), the
    intercept of the line in 1/n, its slope and the fit's standard error."""
    values = [float(metric_at(n)) for n in counts]
    fit = extrapolate_to_infinity(counts, values)
    return {"value": fit.value, "slope": fit.slope, "fit_standard_error": fit.standard_error, "values": values}


def _interval_or_none(values: Sequence[float], method: str) -> dict[str, Any] | None:
    interval = draws_interval(values, method)
    return None if interval is None else interval.to_dict()


def summarize_draws(per_draw: Sequence[Mapping[str, float | None]], num_samples: int,
                    seeds: Sequence[int]) -> dict[str, Any]:
    """The record's ``draws`` section: for every metric of the draws (a key of each mapping),
    its R values and, with R >= 2, its interval (`RunInterval.to_dict`: value = the mean)."""
    method = DRAWS_METHOD.format(r=len(per_draw), n=num_samples, seeds=", ".join(map(str, seeds)))
    summary: dict[str, Any] = {"count": len(per_draw), "num_samples": num_samples, "seeds": list(seeds),
                               "method": method, "metrics": {}}
    for name in per_draw[0]:
        values = [d[name] for d in per_draw]
        if any(v is None for v in values):
            continue
        summary["metrics"][name] = {"values": [float(v) for v in values],
                                    "mean": seed_interval(values).mean,
                                    "interval": _interval_or_none(values, method)}
    return summary


def summarize_infinity(fits: Sequence[Mapping[str, Any]], counts: Sequence[int]) -> dict[str, Any]:
    """FID∞ (or IS∞) over the draws: the mean intercept, its interval over the draws, the mean
    value at each count (the points of the fit) and the first draw's fit standard error."""
    intercepts = [f["value"] for f in fits]
    method = INFINITY_METHOD.format(counts=", ".join(map(str, counts)))
    points = np.mean([f["values"] for f in fits], axis=0)
    return {"value": float(np.mean(intercepts)), "intercepts": intercepts, "counts": list(counts),
            "values": [float(v) for v in points], "slope": float(np.mean([f["slope"] for f in fits])),
            "fit_standard_error": fits[0]["fit_standard_error"],
            "fit_standard_error_note": "the regression's own error, not an interval (it ignores the draw's noise)",
            "interval": _interval_or_none(intercepts, method), "method": method}
