"""What of a run record must be the same on any machine: everything but wall-clock numbers and
provenance. Used to compare the same command idle and loaded (`tests/test_budgets.py`,
`benchmarks/load_invariance.py`) and, in general, records of one spec from two places."""

from __future__ import annotations

from typing import Any

__all__ = ["TIMING_FIELDS", "without_timings"]

#: Wall-clock numbers, and whether a reference's features came from the cache (the first run fills it).
TIMING_FIELDS = ("seconds", "flop_rate", "samples_per_second", "reference_cached")


def without_timings(value: Any) -> Any:
    """A record's JSON (dicts and lists) without `TIMING_FIELDS`, ``provenance``, the evaluation's
    seconds per part (``evaluation``) and the seconds column of training history rows
    ([step, seconds, loss, valid NLL, flops])."""
    if isinstance(value, dict):
        if "history" in value:
            value = {**value, "history": [[row[0], *row[2:]] for row in value["history"]]}
        return {k: without_timings(v) for k, v in value.items()
                if k not in (*TIMING_FIELDS, "provenance", "evaluation")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value
