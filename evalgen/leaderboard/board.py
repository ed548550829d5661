"""Leaderboard tables, one per (dataset, budget), built on `evalgen.tables`' seed aggregation.

Cells read 'mean ± std (n=seeds)'. NLL cells carry the likelihood kind: unmarked is exact, '≤'
an upper bound on the NLL (from a lower bound on log p), '≈' an estimate. Every metric with a
direction (↓ lower is better, ↑ higher is better) ranks the rows that have it (1 = best, ties
share a rank); the overall rank '#' is the rank of the board's headline metric: test NLL in
bits/dim (nats where bits/dim is undefined) when any row has a likelihood, else FID. Bounds are
ranked by their value, so a bounded model's rank is pessimistic. Rows are ordered by '#', then by
FID rank, then by name; rows without the headline metric (implicit models, diverged runs) come
after those with it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import pandas as pd

from evalgen.leaderboard.collect import Found
from evalgen.planning import BASELINE_FAMILY
from evalgen.tables import (
    GROUP_COLUMNS,
    NLL_MARKERS,
    NOT_AVAILABLE,
    format_cell,
    likelihood_kind,
    model_label,
    records_frame,
    summary_frame,
    variant_label,
)


@dataclass(frozen=True)
class Metric:
    """A `summary_frame` number shown as a column."""

    name: str
    title: str
    better: str | None  # "lower", "higher", or None: shown, not ranked
    digits: int
    label: str | None = None  # the summary column naming what it was measured with

    @property
    def header(self) -> str:
        return self.title + {"lower": " ↓", "higher": " ↑"}.get(self.better or "", "")


QUALITY = (
    Metric("bits_per_dim", "test NLL (bits/dim)", "lower", 3),
    Metric("nll_nats", "test NLL (nats)", "lower", 2),
    Metric("inception_score", "IS", "higher", 3, "extractor"),
    Metric("fid", "FID", "lower", 2, "extractor"),
    Metric("kid", "KID", "lower", 4, "extractor"),
    Metric("auroc", "AUROC", "higher", 3, "auroc_label"),
)
COST = (
    Metric("train_seconds", "train s", None, 1),
    Metric("samples_per_second", "samples/s", "higher", 0),
)
METRICS = QUALITY + COST
BY_NAME = {metric.name: metric for metric in METRICS}
NLL_METRICS = ("bits_per_dim", "nll_nats")
HEADLINES = ("bits_per_dim", "nll_nats", "fid")
KIND_WORDS = {"exact": "exact", "bound": "bounded (≤)", "estimate": "estimated (≈)", "none": "none"}


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
    command: str
    found: tuple[Found, ...]

    @property
    def label(self) -> str:
        return model_label(self.plugin, self.model, self.variant)


@dataclass(frozen=True)
class Board:
    dataset: str
    budget: str
    headline: str | None
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]

    @property
    def slug(self) -> str:
        return f"{self.dataset}--{self.budget}"

    @property
    def title(self) -> str:
        return f"{self.dataset}, budget {self.budget}"


def asset_id(record: dict[str, Any]) -> str:
    """The record's key without its seed: what a row's files are named after."""
    spec = record["spec"]
    head = f"{spec['plugin']}--{spec['model']}--{spec['dataset']}--{spec['budget']}"
    return head + record["key"].removeprefix(f"{head}--seed{spec['seed']}")


def _option(value: Any) -> str:
    return str(value) if isinstance(value, (str, int, float)) else repr(value)


def reproduce_command(spec: dict[str, Any], seeds: tuple[int, ...]) -> str:
    """The `evalgen run` that trains these seeds of this row again (seeds 0..max)."""
    words = ["evalgen", "run", "--plugin", spec["plugin"], "--model", spec["model"], "--dataset", spec["dataset"],
             "--budget", spec["budget"], "--seeds", str(max(seeds) + 1)]
    for key, value in sorted(spec["config"].items()):
        words += ["-o", f"{key}={_option(value)}"]
    if spec.get("importance_samples") is not None:
        words += ["--importance-samples", str(spec["importance_samples"])]
    if spec["plugin"] != BASELINE_FAMILY:
        words.append("--no-baseline")
    return shlex.join(words)


def _status(found: list[Found]) -> str:
    diverged = [f.record for f in found if f.record["status"] != "ok"]
    if not diverged:
        return "ok"
    where = ", ".join(f"seed {r['spec']['seed']} at step {r['training']['diverged_at_step']}" for r in diverged)
    return f"{len(diverged)}/{len(found)} diverged ({where})"


def _ranks(summary: pd.DataFrame, metric: Metric) -> list[int | None]:
    means = pd.to_numeric(summary[f"{metric.name}_mean"], errors="coerce")
    if metric.better is None:
        return [None] * len(means)
    ranks = means.rank(method="min", ascending=metric.better == "lower")
    return [None if pd.isna(r) else int(r) for r in ranks]


def _value(mean: Any) -> float | None:
    return None if mean is None or pd.isna(mean) else float(mean)


def _metric_column(summary: pd.DataFrame, metric: Metric) -> tuple[Column, list[Cell]] | None:
    """The column and its cells; None when no row has the metric."""
    ranks = _ranks(summary, metric)
    cells = []
    for (_, row), rank in zip(summary.iterrows(), ranks):
        text = format_cell(row[f"{metric.name}_mean"], row[f"{metric.name}_std"], row[f"{metric.name}_n"],
                           metric.digits)
        if metric.name in NLL_METRICS:
            kind = likelihood_kind(row["likelihood"])
            if kind == "none":
                text = NOT_AVAILABLE
            elif text:
                text = NLL_MARKERS[kind] + text
        cells.append(Cell(text, _value(row[f"{metric.name}_mean"]), rank))
    if not any(cell.text for cell in cells):
        return None
    if metric.name != "nll_nats" and all(cell.value is None for cell in cells):
        return None  # only n/a cells: say so once, in the nats column
    header = metric.header
    if metric.label is not None:
        labels = {row[metric.label] for (_, row), cell in zip(summary.iterrows(), cells) if cell.value is not None}
        if len(labels) == 1:
            header += f" [{labels.pop()}]"
        else:  # measured differently per row: say how in each cell
            cells = [Cell(f"{c.text} [{row[metric.label]}]", c.value, c.rank) if c.value is not None else c
                     for c, (_, row) in zip(cells, summary.iterrows())]
    return Column(metric.name, header), cells


def _headline(summary: pd.DataFrame) -> Metric | None:
    return next((BY_NAME[name] for name in HEADLINES if summary[f"{name}_n"].gt(0).any()), None)


def _row(row: pd.Series, group: list[Found], rank: int | None, quality: list[Cell], cost: list[Cell]) -> Row:
    seeds = tuple(f.record["spec"]["seed"] for f in group)
    label = model_label(row["plugin"], row["model"], row["variant"])
    status = _status(group)
    cells = (Cell("" if rank is None else str(rank), rank), Cell(label, label), *quality,
             Cell(f"{int(row['parameters']):,}", int(row["parameters"])), *cost,
             Cell(str(len(seeds)), len(seeds)), Cell(status, status))
    return Row(row["plugin"], row["model"], row["variant"], asset_id(group[0].record), rank, cells,
               row.to_dict(), seeds, status, row["likelihood"], reproduce_command(group[0].record["spec"], seeds),
               tuple(group))


def _board(dataset: str, budget: str, summary: pd.DataFrame, found: dict[tuple, list[Found]]) -> Board:
    summary = summary.reset_index(drop=True)
    quality = [c for c in (_metric_column(summary, m) for m in QUALITY) if c is not None]
    cost = [c for c in (_metric_column(summary, m) for m in COST) if c is not None]
    columns = (Column("rank", "#"), Column("model", "model", numeric=False), *(col for col, _ in quality),
               Column("parameters", "params"), *(col for col, _ in cost),
               Column("seeds", "seeds"), Column("status", "status", numeric=False))
    headline = _headline(summary)
    ranks = _ranks(summary, headline) if headline else [None] * len(summary)
    fid_ranks = _ranks(summary, BY_NAME["fid"])
    ordered = []
    for index, row in summary.iterrows():
        board_row = _row(row, found[tuple(row[c] for c in GROUP_COLUMNS)], ranks[index],
                         [cells[index] for _, cells in quality], [cells[index] for _, cells in cost])
        rank, fid = ranks[index], fid_ranks[index]
        ordered.append(((rank is None, rank or 0, fid is None, fid or 0, board_row.label), board_row))
    rows = tuple(row for _, row in sorted(ordered, key=lambda item: item[0]))
    return Board(dataset, budget, headline.name if headline else None, columns, rows)


def _group_key(record: dict[str, Any]) -> tuple:
    spec = record["spec"]
    return spec["dataset"], spec["budget"], spec["plugin"], spec["model"], variant_label(spec)


def build_boards(found: list[Found]) -> list[Board]:
    """One board per (dataset, budget), sorted by dataset then budget."""
    groups: dict[tuple, list[Found]] = {}
    for item in sorted(found, key=lambda f: f.record["key"]):
        groups.setdefault(_group_key(item.record), []).append(item)
    for group in groups.values():
        group.sort(key=lambda f: f.record["spec"]["seed"])  # keys sort seed10 before seed2
    summary = summary_frame(records_frame(f.record for group in groups.values() for f in group))
    return [_board(dataset, budget, part, groups)
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
    by_model: dict[str, list[dict[str, Any]]] = {}
    for item in found:
        spec = item.record["spec"]
        by_model.setdefault(model_label(spec["plugin"], spec["model"]), []).append(item.record)
    rows = []
    for name in sorted(by_model):
        records = by_model[name]
        finished = [r for r in records if r["status"] == "ok"]
        sampled = any((r["metrics"].get("sampling") or {}).get("num_samples") for r in finished)
        labels = {r["model"]["likelihood"] for r in records}
        kinds = {KIND_WORDS[likelihood_kind(label)] for label in labels}
        scores = {(r["metrics"].get("outliers") or {}).get("score") for r in finished}
        rows.append(Capability(name, ("yes" if sampled else "no") if finished else "unknown (no finished run)",
                               _joined(kinds), _joined(labels), _joined(scores),
                               _joined({r["spec"]["dataset"] for r in records})))
    return rows
