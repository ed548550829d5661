"""Training dynamics: mode collapse and mode hopping, measured from mode histograms traced
over training (`evalgen.harness.tracing`).

A trace point holds a histogram (K,) of a fixed-size sample over the dataset's modes: the
high-quality samples per mixture centre on the 2-D mixtures, the samples per class under the
domain classifier on images. From the sequence of histograms:

* A mode is *held* at a point when it receives at least `HELD_SHARE` of a uniform share of the
  point's assigned samples (``count >= HELD_SHARE * total / K``): a collapsed generator's stray
  samples do not make a mode held, as they would under the "at least one sample" coverage of
  the final `mode_coverage`.
* **Collapse**: the run ends holding at most ``floor(COLLAPSE_FRACTION * K)`` modes (at least
  1); it is reported at the first step of the final stretch of points that all hold that few.
  A run that spreads out before the end is not collapsed, however it started.
* **Hopping** (the GAN generator that "keeps oscillating over a few modes"): between two
  consecutive points, the total-variation distance between their normalized histograms is at
  least `HOP_THRESHOLD` while both hold at most ``HOP_MAX_HELD_FRACTION * K`` modes: the few
  modes it covers are replaced by others. Reported at the later point's step.
* **False alarms**: for each consecutive pair, the probability that two multinomial samples of
  the pair's sizes from *one* distribution (their pooled histogram: no hopping) reach the
  threshold, by `NULL_DRAWS` seeded simulations; the record gives their mean, the false-alarm
  rate of the test on this run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "COLLAPSE_FRACTION",
    "HELD_SHARE",
    "HOP_MAX_HELD_FRACTION",
    "HOP_THRESHOLD",
    "NULL_DRAWS",
    "TracePoint",
    "Traces",
    "collapse_step",
    "dynamics_summary",
    "held_modes",
    "hop_steps",
    "null_false_alarm_rate",
    "total_variation",
    "trace_problem",
]

#: A mode is held with at least this fraction of a uniform share of the assigned samples.
HELD_SHARE = 0.1
#: Collapsed: holding at most this fraction of the modes at the end.
COLLAPSE_FRACTION = 0.25
#: Hopping: consecutive histograms this far apart in total variation ...
HOP_THRESHOLD = 0.5
#: ... while both hold at most this fraction of the modes.
HOP_MAX_HELD_FRACTION = 0.5
#: Simulations per consecutive pair of the false-alarm rate, and their seed.
NULL_DRAWS = 200
NULL_SEED = 4_242
#: A Fréchet distance is >= 0; this much below is rounding, more is a forged or corrupt number.
FID_ROUNDING = 1e-6


@dataclass(frozen=True)
class TracePoint:
    """One traced point of training (`evalgen.harness.tracing`): at ``step`` (``flops`` counted
    so far), FID and KID of the fixed-seed sample against the validation reference (None
    without a classifier), the modes covered (>= 1 sample), the high-quality fraction (2-D
    mixtures; None on images) and the per-mode histogram ``counts`` (K,)."""

    step: int
    flops: int | None
    fid: float | None
    kid: float | None
    modes_covered: int
    high_quality: float | None
    counts: tuple[int, ...]


@dataclass(frozen=True)
class Traces:
    """Sample quality and mode coverage traced over training (``--trace``): ``level``, the
    ``num_samples`` drawn at the points ``cadence`` says (at most ``max_points``; None: every
    validation point) with seed ``sample_seed``, what
    ``counts`` count (``counts_of``), the classifier and reference of FID/KID, the wall-clock
    ``seconds`` tracing took, the points; ``skipped`` says why a run has no points;
    ``selected_by`` how an implicit model's kept parameters were chosen (None: the last);
    ``warnings`` the cache problems found (and repaired) loading the classifier, a line each."""

    level: str
    num_samples: int
    cadence: str
    max_points: int | None
    sample_seed: int
    counts_of: str
    extractor: str | None
    reference: str | None
    seconds: float
    points: tuple[TracePoint, ...]
    skipped: str | None = None
    selected_by: str | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Traces:
        """The typed traces of a record's (validated) ``training.traces``."""
        def known(kind: type, section: dict[str, Any]) -> dict[str, Any]:
            return {f.name: section[f.name] for f in fields(kind) if f.name in section}

        points = tuple(TracePoint(**{**known(TracePoint, p), "counts": tuple(p["counts"])}) for p in data["points"])
        return cls(**{**known(cls, data), "points": points, "warnings": tuple(data.get("warnings", ()))})


def total_variation(p: Sequence[float], q: Sequence[float]) -> float | None:
    """TV distance (1/2 the L1 distance) of two histograms (K,) after normalizing each; None if
    either is empty."""
    a, b = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if a.sum() <= 0 or b.sum() <= 0:
        return None
    return float(0.5 * np.abs(a / a.sum() - b / b.sum()).sum())


def held_modes(counts: Sequence[int]) -> int:
    """How many modes of one histogram (K,) are held (module docstring)."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return 0
    return int(np.sum(c >= HELD_SHARE * total / len(c)))


def _limit(fraction: float, num_modes: int) -> int:
    return max(1, math.floor(fraction * num_modes))


def collapse_step(steps: Sequence[int], histograms: Sequence[Sequence[int]]) -> int | None:
    """The first step of the final stretch holding at most ``COLLAPSE_FRACTION`` of the modes,
    or None when the last point holds more."""
    if not histograms:
        return None
    limit = _limit(COLLAPSE_FRACTION, len(histograms[0]))
    start = None
    for step, counts in zip(steps, histograms):
        if held_modes(counts) <= limit:
            start = step if start is None else start
        else:
            start = None
    return start


def hop_steps(steps: Sequence[int], histograms: Sequence[Sequence[int]]) -> tuple[list[int], list[float | None]]:
    """The steps at which the generator hopped (module docstring), and the TV distance of each
    consecutive pair (None where a histogram is empty)."""
    fired: list[int] = []
    distances: list[float | None] = []
    for i in range(1, len(histograms)):
        before, after = histograms[i - 1], histograms[i]
        tv = total_variation(before, after)
        distances.append(tv)
        few = _limit(HOP_MAX_HELD_FRACTION, len(after))
        if tv is not None and tv >= HOP_THRESHOLD and held_modes(before) <= few and held_modes(after) <= few:
            fired.append(int(steps[i]))
    return fired, distances


def null_false_alarm_rate(histograms: Sequence[Sequence[int]], threshold: float = HOP_THRESHOLD,
                          draws: int = NULL_DRAWS, seed: int = NULL_SEED) -> float | None:
    """Mean over consecutive pairs of P(TV >= threshold) when both are drawn from their pooled
    histogram (module docstring); None with fewer than two non-empty points."""
    rng = np.random.default_rng(seed)
    rates = []
    for before, after in itertools.pairwise(histograms):
        a, b = np.asarray(before, dtype=np.int64), np.asarray(after, dtype=np.int64)
        if a.sum() == 0 or b.sum() == 0:
            continue
        pooled = (a + b) / (a + b).sum()
        x = rng.multinomial(int(a.sum()), pooled, size=draws) / a.sum()
        y = rng.multinomial(int(b.sum()), pooled, size=draws) / b.sum()
        rates.append(float(np.mean(0.5 * np.abs(x - y).sum(axis=1) >= threshold)))
    return float(np.mean(rates)) if rates else None


def dynamics_summary(steps: Sequence[int], histograms: Sequence[Sequence[int]]) -> dict[str, Any]:
    """What a record says about a run's dynamics: modes held over time, collapse and hopping."""
    fired, distances = hop_steps(steps, histograms)
    num_modes = len(histograms[0]) if histograms else 0
    collapsed_at = collapse_step(steps, histograms)
    return {
        "num_modes": num_modes,
        "held": [held_modes(h) for h in histograms],
        "collapse": {"at_step": collapsed_at, "collapsed": collapsed_at is not None,
                     "rule": f"holding at most {COLLAPSE_FRACTION:.0%} of the {num_modes} modes "
                             f"(at most {_limit(COLLAPSE_FRACTION, num_modes) if num_modes else 0}) at the end; "
                             f"a mode is held with >= {HELD_SHARE:g} x a uniform share of the samples"},
        "hopping": {"steps": fired, "hops": len(fired), "total_variation": distances,
                    "threshold": HOP_THRESHOLD, "max_held_fraction": HOP_MAX_HELD_FRACTION,
                    "false_alarm_rate": null_false_alarm_rate(histograms),
                    "false_alarm_rate_of": f"TV >= {HOP_THRESHOLD} between two multinomial samples of each "
                                           f"consecutive pair's sizes from its pooled histogram, {NULL_DRAWS} "
                                           f"simulations per pair, mean over pairs"},
    }


def _point_problem(point: TracePoint, traces: Traces, training_steps: int) -> str | None:
    counted = sum(point.counts)
    problems = [
        (counted > traces.num_samples, f"counts {counted} samples of the {traces.num_samples} drawn"),
        (traces.extractor is not None and counted != traces.num_samples,
         f"counts {counted} samples under the classifier, not the {traces.num_samples} drawn"),
        (point.modes_covered != sum(1 for c in point.counts if c >= 1), "gives modes covered its counts do not"),
        (point.high_quality is not None and abs(point.high_quality * traces.num_samples - counted) > 0.5,
         "gives a high-quality fraction its counts do not"),
        (traces.extractor is None and (point.fid is not None or point.kid is not None),
         "has an FID or KID without a classifier"),
        (point.fid is not None and point.fid < -FID_ROUNDING, "has a negative FID"),
        (point.step > training_steps, f"is past the run's {training_steps} steps"),
    ]
    return next((f"its trace point at step {point.step} {what}" for wrong, what in problems if wrong), None)


def _mismatch(recorded: Any, expected: Any, name: str) -> str | None:
    """The first field of ``expected`` that ``recorded`` (untrusted JSON) does not hold."""
    if isinstance(expected, dict):
        if not isinstance(recorded, dict):
            return name
        return next((m for key, value in expected.items()
                     if (m := _mismatch(recorded.get(key), value, f"{name}.{key}")) is not None), None)
    return None if recorded == expected and type(recorded) is type(expected) else name


def trace_problem(traces: Traces, training_steps: int, dynamics: dict[str, Any] | None) -> str | None:
    """Why ``traces`` (a record's, untrusted) cannot be what a run of ``training_steps`` steps
    traced, or why its ``dynamics`` metric section (None: absent or skipped) was not computed
    from them; None when everything agrees. Only the deterministic fields are recomputed (not
    the simulated false-alarm rate)."""
    points = traces.points
    if traces.skipped is not None and points:
        return "its traces say they were skipped but have points"
    if len({len(p.counts) for p in points}) > 1:
        return "its trace points count different numbers of modes"
    steps = [p.step for p in points]
    flops = [p.flops for p in points if p.flops is not None]
    if steps != sorted(steps) or flops != sorted(flops):
        return "its trace points are not in training order"
    problem = next((m for p in points if (m := _point_problem(p, traces, training_steps)) is not None), None)
    if problem is not None or dynamics is None:
        return problem
    histograms = [p.counts for p in points]
    fired, _ = hop_steps(steps, histograms)
    at_step = collapse_step(steps, histograms)
    expected = {"num_modes": len(histograms[0]) if histograms else 0, "held": [held_modes(h) for h in histograms],
                "steps": steps, "hopping": {"steps": fired, "hops": len(fired)},
                "collapse": {"at_step": at_step, "collapsed": at_step is not None}}
    field = _mismatch(dynamics, expected, "dynamics")
    return None if field is None else f"its {field} is not what its traces give"
