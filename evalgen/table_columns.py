"""The number columns of tables and leaderboards, built from what metrics declare.

Every registered metric contributes its `MetricColumn`s (`evalgen.metrics.columns`); the harness
adds its own cost columns (training seconds, steps, samples per second). A `TableColumn` knows
where its number is in a `RunRecord`, its direction, and how its cells read; `evalgen.tables` and
`evalgen.leaderboard` both render these, so a column is declared once and shown everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evalgen.budgets import format_flops
from evalgen.errors import EvalgenError
from evalgen.metrics.columns import MetricColumn
from evalgen.metrics.registry import MetricSpec
from evalgen.record_types import EXTERNAL_SAMPLES, RunRecord

__all__ = ["COST_COLUMNS", "SAMPLES_PER_SECOND", "STEPS", "TRAIN_FLOPS", "TRAIN_SECONDS", "TableColumn",
           "builtin_columns", "metric_columns"]

ARROWS = {"lower": " ↓", "higher": " ↑"}


@dataclass(frozen=True)
class TableColumn:
    """A declared column, with where it reads from and its direction.

    Attributes:
        spec: the declaration (title, field, digits, label ...).
        better: "lower", "higher", or None (shown, not ranked).
        section: record -> the mapping the column's ``field`` is read from (a metric's section),
            or None when the record has no such section (or the metric was skipped).
        metric: the name of the metric that declares it ("" for the harness's own columns).
    """

    spec: MetricColumn
    better: str | None
    section: Callable[[RunRecord], Mapping[str, Any] | None]
    metric: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def header(self) -> str:
        return self.spec.title + ARROWS.get(self.better or "", "")

    def read(self, record: RunRecord) -> tuple[float | None, str | None, float | None]:
        """(number, label, total) of one record; Nones where it has none."""
        section = self.section(record)
        if section is None:
            return None, None, None
        return self.spec.number(section), self.spec.label_text(section), self.spec.total(section)

    def run_interval(self, record: RunRecord) -> tuple[float, float, float, int] | None:
        """(low, high, standard error, n) of the record's per-run interval (`MetricColumn.interval_of`)."""
        section = self.section(record)
        return None if section is None else self.spec.interval_of(section)

    def reference(self, record: RunRecord) -> float | None:
        """The data's own number for this column, where the record carries one."""
        section = self.section(record)
        return None if section is None else self.spec.reference_number(section)


def _metric_section(name: str) -> Callable[[RunRecord], Mapping[str, Any] | None]:
    return lambda record: record.metric(name)


def metric_columns(metrics: Iterable[MetricSpec]) -> tuple[TableColumn, ...]:
    """Every column the metrics declare, in registration order; a name used twice is an error."""
    columns: list[TableColumn] = []
    owners: dict[str, str] = {name: "evalgen" for name in (c.name for c in COST_COLUMNS)}
    for metric in metrics:
        for spec in metric.table_columns():
            if spec.name in owners:
                raise EvalgenError(f"metric '{metric.name}' declares a column '{spec.name}', which "
                                   f"'{owners[spec.name]}' already shows; rename the column")
            owners[spec.name] = metric.name
            columns.append(TableColumn(spec, metric.better(spec), _metric_section(metric.name), metric.name))
    return tuple(columns)


def builtin_columns() -> tuple[TableColumn, ...]:
    """The columns of the built-in metrics: for readers that load no plugins."""
    from evalgen.metrics.builtin import BUILTIN_METRICS

    return metric_columns(BUILTIN_METRICS)


def _training(record: RunRecord) -> Mapping[str, Any] | None:
    if record.origin.kind == EXTERNAL_SAMPLES:  # no training, not "0 s of it"
        return None
    training = record.training
    return {"seconds": training.seconds, "steps": training.steps, "flops": training.flops}


def _sampling(record: RunRecord) -> Mapping[str, Any] | None:
    sampling = record.sampling
    return None if sampling is None else {"samples_per_second": sampling.samples_per_second}


TRAIN_SECONDS = TableColumn(MetricColumn("train_seconds", "train s", "seconds", digits=1), None, _training)
STEPS = TableColumn(MetricColumn("steps", "steps", "steps", digits=0), None, _training)
TRAIN_FLOPS = TableColumn(MetricColumn("train_flops", "train compute", "flops", formatter=format_flops), None,
                          _training)
SAMPLES_PER_SECOND = TableColumn(MetricColumn("samples_per_second", "samples/s", "samples_per_second", digits=0),
                                 "higher", _sampling)
#: The harness's own columns: what a result cost.
COST_COLUMNS = (TRAIN_FLOPS, TRAIN_SECONDS, STEPS, SAMPLES_PER_SECOND)
