"""Leaderboard tables, one per (dataset, budget), built on `evalgen.tables`' seed aggregation.

Cells read 'mean ± std (n=seeds)'. NLL cells carry the likelihood kind: unmarked is exact, '≤'
an upper bound on the NLL (from a lower bound on log p), '≈' an estimate. Every metric with a
direction (↓ lower is better, ↑ higher is better) ranks the rows that have it: a row's rank is
1 + the number of rows significantly better than it (Welch's t-test over seeds, Holm-corrected
over the column's pairs at 5 %), so rows the noise cannot order share a rank; a single-seed row
is tested with its record's own interval where it has one (R sample draws, a standard error, a
bootstrap), else ordered by value. The overall rank '#' is the rank of
the board's headline metric: test NLL in bits/dim (nats where bits/dim is undefined) when any
row has a likelihood, else FID. Bounds are ranked by their value, so a bounded model's rank is
pessimistic (its true NLL is lower still); estimates by theirs. Rows are ordered by '#', then by
FID rank, then by name; rows without the headline metric (implicit models, diverged runs) come
after those with it.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from evalgen.leaderboard.collect import Found
from evalgen.metrics.uncertainty import ranks_from_stats
from evalgen.planning import BASELINE_FAMILY
from evalgen.record_types import EXTERNAL_SAMPLES, REEVALUATED, RunRecord
from evalgen.runspec import RunSpec
from evalgen.table_columns import SAMPLES_PER_SECOND, TRAIN_FLOPS, TRAIN_SECONDS, TableColumn
from evalgen.tables import (
    GROUP_COLUMNS,
    PARAMETERS_NONE,
    column_cells,
    model_label,
    records_frame,
    summary_frame,
    variant_label,
)
from evalgen.types import LikelihoodKind

__all__ = ["COST", "HEADLINES", "Board", "Capability", "Cell", "Column", "Row", "asset_id", "build_boards",
           "capabilities", "reproduce_command", "row_command"]

#: The cost columns of a board, after the parameters.
COST = (TRAIN_FLOPS, TRAIN_SECONDS, SAMPLES_PER_SECOND)
#: What ranks a board ('#'): the first of these columns that some row has.
HEADLINES = ("bits_per_dim", "nll_nats", "fid")
KIND_WORDS = {LikelihoodKind.EXACT: "exact", LikelihoodKind.LOWER_BOUND: "bounded (≤)",
              LikelihoodKind.ESTIMATE: "estimated (≈)", LikelihoodKind.NONE: "none"}


@dataclass(frozen=True)
class Cell:
    text: str
    value: float | str | None = None  # what the column sorts by; None sorts last
    rank: int | None = None


@dataclass(frozen=True)
class Column:
    name: str  # machine name (CSV prefix, HTML id)
    header: str
    numeric: bool = True
    better: str | None = None  # "lower", "higher" or None: not ranked

    def superscript(self, cell: Cell) -> int | None:
        """The rank shown beside a cell of this column (the '#' column is all ranks already)."""
        return cell.rank if self.name != "rank" and cell.text else None


@dataclass(frozen=True)
class Row:
    """One (plugin, model, variant) of a board, its seeds aggregated."""

    plugin: str
    model: str
    variant: str
    asset_id: str  # the records' key without the seed
    rank: int | None
    cells: tuple[Cell, ...]
    summary: dict[str, Any]  # the `summary_frame` row: the numbers, for CSV
    seeds: tuple[int, ...]
    status: str
    likelihood: str
    likelihood_kind: LikelihoodKind
    command: str
    found: tuple[Found, ...]

    @property
    def label(self) -> str:
        return model_label(self.plugin, self.model, self.variant)


@dataclass(frozen=True)
class Board:
    dataset: str
    budget: str
    headline: str | None  # the header of the column '#' ranks by
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]

    @property
    def slug(self) -> str:
        return f"{self.dataset}--{self.budget}"

    @property
    def title(self) -> str:
        return f"{self.dataset}, budget {self.budget}"


def asset_id(record: RunRecord) -> str:
    """The record's key without its seed: what a row's files are named after."""
    spec = record.spec
    head = f"{spec.plugin}--{spec.model}--{spec.dataset}--{spec.budget}"
    return head + record.key.removeprefix(f"{head}--seed{spec.seed}")


def _option(value: Any) -> str:
    return str(value) if isinstance(value, (str, int, float)) else repr(value)


def reproduce_command(spec: RunSpec, seeds: tuple[int, ...]) -> str:
    """The `evalgen run` that trains these seeds of this row again (seeds 0..max)."""
    words = ["evalgen", "run", "--plugin", spec.plugin, "--model", spec.model, "--dataset", spec.dataset,
             "--budget", spec.budget, "--seeds", str(max(seeds) + 1)]
    for key, value in sorted(spec.config.items()):
        words += ["-o", f"{key}={_option(value)}"]
    if spec.importance_samples is not None:
        words += ["--importance-samples", str(spec.importance_samples)]
    if spec.plugin != BASELINE_FAMILY:
        words.append("--no-baseline")
    return shlex.join(words)


def _score_command(record: RunRecord) -> str:
    """The `evalgen score` that scores these samples again (the file is the submitter's)."""
    spec, samples = record.spec, record.origin.samples
    words = ["evalgen", "score", samples.file if samples is not None else "SAMPLES", "--dataset", spec.dataset,
             "--name", spec.model, "--budget", spec.budget]
    extractor = (record.metric("sample_quality") or {}).get("extractor")
    if isinstance(extractor, str):
        words += ["--extractor", extractor]
    return shlex.join(words + ([] if spec.seed == 0 else ["--seed", str(spec.seed)]))


def _eval_command(record: RunRecord, seeds: tuple[int, ...]) -> str:
    """Train the seeds again, then evaluate each again with the row's settings."""
    again = record.origin.reevaluation
    settings: list[str] = []
    if again is not None and again.importance_samples is not None:
        settings += ["--importance-samples", str(again.importance_samples)]
    if again is not None and again.num_samples is not None:
        settings += ["--num-samples", str(again.num_samples)]
    for name in (again.metrics if again is not None and again.metrics else ()):
        settings += ["--metric", name]
    evals = [shlex.join(["evalgen", "eval", dataclasses.replace(record.spec, seed=seed).key, *settings])
             for seed in seeds]
    return " && ".join([reproduce_command(record.spec, seeds), *evals])


def row_command(record: RunRecord, seeds: tuple[int, ...]) -> str:
    """What produces a row again: `evalgen run`, then `evalgen eval` for a re-evaluation; `evalgen
    score` for external samples."""
    if record.origin.kind == EXTERNAL_SAMPLES:
        return _score_command(record)
    if record.origin.kind == REEVALUATED:
        return _eval_command(record, seeds)
    return reproduce_command(record.spec, seeds)


def _status(found: list[Found]) -> str:
    """"ok", or which seeds diverged and which the clock cut short (their numbers are left out)."""
    diverged = [f.record for f in found if not f.record.finished]
    cut = [f.record for f in found if f.record.training.cut_short]
    parts = []
    if diverged:
        where = ", ".join(f"seed {r.spec.seed} at step {r.training.diverged_at_step}" for r in diverged)
        parts.append(f"{len(diverged)}/{len(found)} diverged ({where})")
    if cut:
        where = ", ".join(f"seed {r.spec.seed} at {r.training.budget_fraction:.0%} of the budget" for r in cut)
        parts.append(f"{len(cut)}/{len(found)} cut short by the clock ({where}; not ranked)")
    return "; ".join(parts) or "ok"


def _number(value: Any) -> float | None:
    value = pd.to_numeric(value, errors="coerce")
    return None if pd.isna(value) else float(value)


def _seed_stats(summary: pd.DataFrame, name: str) -> list[tuple[float | None, float | None, int]]:
    """Each row's (mean, std, n) of column ``name`` over seeds; for a row of one seed whose
    record has a per-run interval, that interval's (value, standard error x sqrt(n), n) instead,
    so it is tested like the others (`evalgen.tables.RUN_PARTS`); None where missing."""
    stats = []
    for _, row in summary.iterrows():
        mean, n = _number(row[f"{name}_mean"]), int(_number(row[f"{name}_n"]) or 0)
        se, run_n = _number(row.get(f"{name}_run_se")), _number(row.get(f"{name}_run_n"))
        if n == 1 and se is not None and run_n is not None and run_n >= 2:
            stats.append((mean, se * math.sqrt(run_n), int(run_n)))
        else:
            stats.append((mean, _number(row[f"{name}_std"]), n))
    return stats


def _ranks(summary: pd.DataFrame, column: TableColumn) -> list[int | None]:
    """1 + the rows significantly better (`evalgen.metrics.uncertainty.ranks_from_stats`)."""
    if column.better is None:
        return [None] * len(summary)
    return ranks_from_stats(_seed_stats(summary, column.name), higher_is_better=column.better == "higher")


def _number_column(summary: pd.DataFrame, column: TableColumn) -> tuple[Column, list[Cell]] | None:
    """The board column and its cells (ranked); None when no row has the number."""
    cells = column_cells(summary, column)
    if cells is None:
        return None
    ranked = [Cell(text, value, rank) for text, value, rank in zip(cells.texts, cells.values, _ranks(summary, column))]
    return Column(column.name, cells.header, better=column.better), ranked


def _headline(summary: pd.DataFrame, columns: Sequence[TableColumn]) -> TableColumn | None:
    by_name = {column.name: column for column in columns}
    return next((by_name[name] for name in HEADLINES if name in by_name and summary[f"{name}_n"].gt(0).any()), None)


def _parameters_cell(parameters: Any) -> Cell:
    if parameters is None or pd.isna(parameters):
        return Cell(PARAMETERS_NONE, None)
    return Cell(f"{int(parameters):,}", int(parameters))


def _row(row: pd.Series, group: list[Found], rank: int | None, quality: list[Cell], cost: list[Cell]) -> Row:
    seeds = tuple(f.record.spec.seed for f in group)
    label = model_label(row["plugin"], row["model"], row["variant"])
    status = _status(group)
    cells = (Cell("" if rank is None else str(rank), rank), Cell(label, label), *quality,
             _parameters_cell(row["parameters"]), *cost,
             Cell(str(len(seeds)), len(seeds)), Cell(status, status))
    return Row(row["plugin"], row["model"], row["variant"], asset_id(group[0].record), rank, cells,
               row.to_dict(), seeds, status, row["likelihood"], LikelihoodKind(row["likelihood_kind"]),
               row_command(group[0].record, seeds), tuple(group))


def _board(dataset: str, budget: str, summary: pd.DataFrame, found: dict[tuple, list[Found]],
           columns: Sequence[TableColumn]) -> Board:
    summary = summary.reset_index(drop=True)
    quality = [c for c in (_number_column(summary, column) for column in columns) if c is not None]
    cost = [c for c in (_number_column(summary, column) for column in COST) if c is not None]
    board_columns = (Column("rank", "#"), Column("model", "model", numeric=False), *(col for col, _ in quality),
                     Column("parameters", "params"), *(col for col, _ in cost),
                     Column("seeds", "seeds"), Column("status", "status", numeric=False))
    headline = _headline(summary, columns)
    ranks = _ranks(summary, headline) if headline else [None] * len(summary)
    by_name = {column.name: column for column in columns}
    fid_ranks = _ranks(summary, by_name["fid"]) if "fid" in by_name else [None] * len(summary)
    ordered = []
    for index, row in summary.iterrows():
        board_row = _row(row, found[tuple(row[c] for c in GROUP_COLUMNS)], ranks[index],
                         [cells[index] for _, cells in quality], [cells[index] for _, cells in cost])
        rank, fid = ranks[index], fid_ranks[index]
        ordered.append(((rank is None, rank or 0, fid is None, fid or 0, board_row.label), board_row))
    rows = tuple(row for _, row in sorted(ordered, key=lambda item: item[0]))
    return Board(dataset, budget, headline.header if headline else None, board_columns, rows)


def _group_key(record: RunRecord) -> tuple:
    spec = record.spec
    return spec.dataset, spec.budget, spec.plugin, spec.model, variant_label(spec, record.origin)


def build_boards(found: list[Found], columns: Sequence[TableColumn]) -> list[Board]:
    """One board per (dataset, budget), sorted by dataset then budget, with the metric ``columns``
    (`evalgen.table_columns.metric_columns`) that some of its rows have."""
    groups: dict[tuple, list[Found]] = {}
    for item in sorted(found, key=lambda f: f.record.key):
        groups.setdefault(_group_key(item.record), []).append(item)
    for group in groups.values():
        group.sort(key=lambda f: f.record.spec.seed)  # keys sort seed10 before seed2
    every = (*columns, *COST)
    summary = summary_frame(records_frame((f.record for group in groups.values() for f in group), every), every)
    return [_board(dataset, budget, part, groups, columns)
            for (dataset, budget), part in sorted(summary.groupby(["dataset", "budget"], sort=False),
                                                  key=lambda item: item[0])]


@dataclass(frozen=True)
class Capability:
    """What one model can do, from its records: the desiderata of a generative model."""

    model: str
    sampling: str
    likelihood: str
    how: str
    outlier_score: str
    datasets: str


def _joined(values: set[str]) -> str:
    return "; ".join(sorted(v for v in values if v)) or "—"


def capabilities(found: list[Found]) -> list[Capability]:
    """One row per plugin:model, sorted."""
    by_model: dict[str, list[RunRecord]] = {}
    for item in found:
        spec = item.record.spec
        by_model.setdefault(model_label(spec.plugin, spec.model), []).append(item.record)
    rows = []
    for name in sorted(by_model):
        records = by_model[name]
        finished = [r for r in records if r.finished]
        sampled = any(r.sampling is not None and r.sampling.num_samples for r in finished)
        scores = {(r.metric("outliers") or {}).get("score") for r in finished}
        rows.append(Capability(name, ("yes" if sampled else "no") if finished else "unknown (no finished run)",
                               _joined({KIND_WORDS[r.model.likelihood_kind] for r in records}),
                               _joined({r.model.likelihood for r in records}), _joined(scores),
                               _joined({r.spec.dataset for r in records})))
    return rows
