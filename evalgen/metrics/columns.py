"""What a metric shows: the columns it contributes to `table.md` and every leaderboard format.

A metric declares its columns once, in its `MetricSpec` (``columns``); `evalgen.tables` and
`evalgen.leaderboard` build theirs from those declarations, so a plugin's metric appears
everywhere the built-in ones do. The direction of a column (↓/↑, and how the leaderboard ranks
it) is the metric's ``higher_is_better`` entry for the column's ``field``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from evalgen.metrics.uncertainty import NORMAL_N

__all__ = ["REFERENCE_ROW", "MetricColumn", "read_field"]

#: The model name of the row that shows the data's own numbers (`MetricColumn.reference`).
REFERENCE_ROW = "data density (exact)"

#: What a column's machine name may be: it becomes CSV headers and HTML ids.
COLUMN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class MetricColumn:
    """One number a metric shows per row (mean ± std over seeds).

    Attributes:
        name: machine name, unique over every registered metric (``<name>_mean`` in CSV files,
            HTML ids): lower-case letters, digits and ``_``.
        title: the header, e.g. ``"FID"``; the direction's arrow is added.
        field: where the number is in the metric's section: a key, or a dotted path such as
            ``"elbo.nats"``; also the key of its direction in ``MetricSpec.higher_is_better``.
        digits: decimals shown.
        label: dotted path of the text saying what the number was measured with (e.g.
            ``"extractor"``): in the header when every row shares it, else in each cell.
        scale: shown value = value x scale (100 for a percentage).
        prefix: put before every number, e.g. ``"≤ "`` for a bound.
        out_of: dotted path of a total the number is shown out of, e.g. modes "7/8".
        likelihood: the number is the model's likelihood: cells carry its kind (≤ bound,
            ≈ estimate) and models without one show "n/a (implicit model)".
        always: shown even when no row has a number (its n/a cells say why).
        reference: dotted path of the same number for the data itself, where the metric can know
            it (a toy dataset's true test NLL, from its closed-form density): tables show it in a
            reference row, `REFERENCE_ROW`, so a model's gap to the truth is visible.
        value: section -> number, for numbers not at a fixed path (overrides ``field``).
        describe: section -> label text, for labels not at a fixed path (overrides ``label``).
        formatter: number -> text, for numbers not shown with fixed decimals (training FLOPs as
            "12.3 GFLOP"); a mean over seeds is shown as its text and "(n=3)".
        interval: dotted path of the number's per-run uncertainty, a
            `evalgen.metrics.uncertainty.RunInterval` as its ``to_dict`` (R sample draws, a
            standard error over test examples, a bootstrap): shown, and used to rank, where a row
            has one seed.
        run_interval: section -> that dict, for intervals not at a fixed path (overrides ``interval``).
    """

    name: str
    title: str
    field: str
    digits: int = 3
    label: str | None = None
    scale: float = 1.0
    prefix: str = ""
    out_of: str | None = None
    likelihood: bool = False
    always: bool = False
    reference: str | None = None
    value: Callable[[Mapping[str, Any]], Any] | None = None
    describe: Callable[[Mapping[str, Any]], str | None] | None = None
    formatter: Callable[[float], str] | None = None
    interval: str | None = None
    run_interval: Callable[[Mapping[str, Any]], Any] | None = None

    def __post_init__(self) -> None:
        if not COLUMN_NAME.match(self.name):
            raise ValueError(f"column name '{self.name}' must be lower-case letters, digits and '_'")

    def number(self, section: Mapping[str, Any]) -> float | None:
        return _number(self.value(section) if self.value is not None else read_field(section, self.field))

    def label_text(self, section: Mapping[str, Any]) -> str | None:
        if self.describe is not None:
            return self.describe(section)
        found = read_field(section, self.label) if self.label else None
        return None if found is None else str(found)

    def total(self, section: Mapping[str, Any]) -> float | None:
        return _number(read_field(section, self.out_of)) if self.out_of else None

    def interval_of(self, section: Mapping[str, Any]) -> tuple[float, float, float, int] | None:
        """(low, high, standard error, degrees of freedom + 1) of the per-run interval, or None;
        a normal quantile's degrees of freedom read as `NORMAL_N` - 1. Anything malformed
        (a record is untrusted) is None, never a wrong interval."""
        found = self.run_interval(section) if self.run_interval is not None else (
            read_field(section, self.interval) if self.interval else None)
        if not isinstance(found, Mapping):
            return None
        low, high, error = (_number(found.get(k)) for k in ("low", "high", "standard_error"))
        dof = found.get("dof")
        n = NORMAL_N if dof is None else (_number(dof) or 0) + 1
        if None in (low, high, error) or not (low <= high and error >= 0 and n >= 2):
            return None
        return low, high, error, int(n)

    def reference_number(self, section: Mapping[str, Any]) -> float | None:
        return _number(read_field(section, self.reference)) if self.reference else None


def _number(found: Any) -> float | None:
    """A finite number, or None (NaN and infinities from a record are not numbers to show)."""
    if not isinstance(found, (int, float)) or isinstance(found, bool) or not math.isfinite(found):
        return None
    return float(found)


def read_field(section: Mapping[str, Any], path: str) -> Any:
    """``section["a"]["b"]`` for ``"a.b"``; None where any part is missing or not a mapping."""
    found: Any = section
    for part in path.split("."):
        if not isinstance(found, Mapping):
            return None
        found = found.get(part)
    return found
