"""Run records -> comparison tables (pandas), printed and written as Markdown and CSV.

The number columns are those the metrics declare (`evalgen.table_columns`); this module
aggregates seeds and writes cells, for `table.md` here and for the leaderboard's boards.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evalgen.metrics.columns import REFERENCE_ROW
from evalgen.metrics.uncertainty import SeedInterval, seed_interval
from evalgen.record_types import EXTERNAL_SAMPLES, Origin, RunRecord
from evalgen.runspec import RunSpec
from evalgen.storage import atomic_write_bytes
from evalgen.table_columns import COST_COLUMNS, STEPS, TRAIN_FLOPS, TRAIN_SECONDS, TableColumn, builtin_columns
from evalgen.terminal import fit_to_width
from evalgen.types import LikelihoodKind

__all__ = ["CUT_SHORT", "GROUP_COLUMNS", "MISSING", "NLL_MARKERS", "NOT_AVAILABLE", "PARAMETERS_NONE",
           "RUN_PARTS", "SAMPLES_ONLY_NLL", "Cells", "column_cells", "comparison", "display_frame", "format_cell",
           "model_label", "records_frame", "summary_frame", "variant_label", "write_tables"]

#: A row of a table: seeds of the same (dataset, budget, plugin, model, variant) are aggregated.
GROUP_COLUMNS = ["dataset", "budget", "plugin", "model", "variant"]
#: What the NLL cells of models without a likelihood say.
NOT_AVAILABLE = "n/a (implicit model)"
#: ... and those of external samples (`evalgen score`): no model at all.
SAMPLES_ONLY_NLL = "n/a (samples only)"
#: The parameter cell of a row with no model.
PARAMETERS_NONE = "—"
#: The cells of a row whose every seed the clock cap stopped before its budget.
CUT_SHORT = "cut short by the clock"
#: The cell of a number a row's metric section lacks (an older record: FID∞ before it existed).
MISSING = "—"
#: The per-run interval's parts in a frame (``<name>_run_low``, ...): its bounds, the standard
#: error and the n that Welch's test takes for it (`evalgen.metrics.columns.MetricColumn.interval_of`).
RUN_PARTS = ("low", "high", "se", "n")
#: What an NLL cell is prefixed with, per likelihood kind: an NLL from a lower bound on log p is
#: an upper bound on the NLL.
NLL_MARKERS = {LikelihoodKind.EXACT: "", LikelihoodKind.LOWER_BOUND: "≤ ", LikelihoodKind.ESTIMATE: "≈ ",
               LikelihoodKind.NONE: ""}


def variant_label(spec: RunSpec, origin: Origin | None = None) -> str:
    """What sets a run apart from the model's defaults: the plugin options it was given that differ
    from their defaults (planning keeps only those), an importance-sample override, and where the
    numbers come from unless trained (`Origin.variant`), e.g. "hidden=64, lr=0.001, K=1000",
    "evaluated again: K=1000", "external samples"; "" for the defaults."""
    parts = [f"{key}={value}" for key, value in sorted(spec.config.items())]
    if spec.importance_samples is not None:
        parts.append(f"K={spec.importance_samples}")
    if origin is not None and origin.variant:
        parts.append(origin.variant)
    return ", ".join(parts)


def model_label(plugin: str, model: str, variant: str = "") -> str:
    """'vae:iwae', or 'vae:iwae [K=1000]' for a variant."""
    return f"{plugin}:{model}" + (f" [{variant}]" if variant else "")


def _flatten(record: RunRecord, columns: Sequence[TableColumn]) -> dict[str, Any]:
    spec = record.spec
    row: dict[str, Any] = {
        "dataset": spec.dataset, "budget": spec.budget, "plugin": spec.plugin, "model": spec.model,
        "variant": variant_label(spec, record.origin), "origin": record.origin.kind, "seed": spec.seed,
        "status": record.status,
        "diverged_at_step": record.training.diverged_at_step, "likelihood": record.model.likelihood,
        "likelihood_kind": record.model.likelihood_kind.value, "parameters": record.model.parameters,
        "device": record.provenance.device_name, "cut_short": record.training.cut_short,
        "budget_fraction": record.training.budget_fraction,
    }
    for column in columns:
        row[column.name], row[f"{column.name}_label"], row[f"{column.name}_of"] = column.read(record)
        row[f"{column.name}_ref"] = column.reference(record)
        interval = column.run_interval(record) if row[column.name] is not None else None
        for part, number in zip(RUN_PARTS, interval or (None,) * len(RUN_PARTS)):
            row[f"{column.name}_run_{part}"] = number
        if record.training.cut_short and column not in COST_COLUMNS:  # not comparable: never averaged or ranked
            row[column.name] = row[f"{column.name}_of"] = None
    return row


def records_frame(records: Iterable[RunRecord], columns: Sequence[TableColumn]) -> pd.DataFrame:
    """One row per record: its identity, and the number, label and total of every column."""
    return pd.DataFrame([_flatten(r, columns) for r in records])


def _over_seeds(values: pd.Series) -> SeedInterval:
    return seed_interval(pd.to_numeric(values, errors="coerce").dropna().tolist())


def _first(values: pd.Series) -> Any:
    present = values.dropna()
    return present.iloc[0] if not present.empty else None


def _diverged(group: pd.DataFrame) -> str:
    diverged = group[group["status"] == "diverged"]
    return ", ".join(f"seed {s}@step {int(d)}" for s, d in zip(diverged["seed"], diverged["diverged_at_step"]))


def _cut_short(group: pd.DataFrame) -> str:
    """"seed 1 at 43% of the budget, ...": the seeds the clock cap stopped (their numbers are left out)."""
    cut = group[group["cut_short"].astype(bool)]
    return ", ".join(f"seed {seed} at {fraction:.0%} of the budget"
                     for seed, fraction in zip(cut["seed"], cut["budget_fraction"]))


def summary_frame(frame: pd.DataFrame, columns: Sequence[TableColumn]) -> pd.DataFrame:
    """Seeds aggregated per (dataset, budget, plugin, model, variant): the mean, std, n and 95 %
    Student-t interval of the mean of every column's number (``<name>_mean``, ``_std``, ``_n``,
    ``_ci_low``, ``_ci_high``; std and interval empty for one seed), its first label
    (``_label``), the mean of its total (``_of``), the data's own number (``_ref``) and, for a
    row of one seed, that run's own interval where its record has one (``_run_low``,
    ``_run_high``, ``_run_se``, ``_run_n``; empty otherwise: never made up)."""
    rows = []
    for keys, group in frame.groupby(GROUP_COLUMNS, sort=False):
        row: dict[str, Any] = dict(zip(GROUP_COLUMNS, keys))
        row.update(likelihood=group["likelihood"].iloc[0], likelihood_kind=group["likelihood_kind"].iloc[0],
                   seeds=len(group), diverged=_diverged(group), cut_short=_cut_short(group),
                   all_cut_short=bool(group["cut_short"].astype(bool).all()),
                   parameters=_parameters(group["parameters"].iloc[0]), device=group["device"].iloc[0],
                   origin=group["origin"].iloc[0])
        for column in columns:
            name = column.name
            seeds = _over_seeds(group[name])
            row[f"{name}_mean"], row[f"{name}_std"], row[f"{name}_n"] = seeds.mean, seeds.std, seeds.n
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = seeds.low, seeds.high
            row[f"{name}_label"] = _first(group[f"{name}_label"])
            row[f"{name}_of"] = _over_seeds(group[f"{name}_of"]).mean
            row[f"{name}_ref"] = _first(group[f"{name}_ref"])
            row.update(_run_interval(group, name) if seeds.n == 1 else dict.fromkeys(_run_names(name)))
        rows.append(row)
    return pd.DataFrame(rows)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _run_names(name: str) -> list[str]:
    return [f"{name}_run_{part}" for part in RUN_PARTS]


def _run_interval(group: pd.DataFrame, name: str) -> dict[str, Any]:
    """The per-run interval of a row's one seed with the number (empty where it has none)."""
    has = group[pd.to_numeric(group[name], errors="coerce").notna()]
    found = has.iloc[0] if len(has) == 1 else None
    return {key: (None if found is None or pd.isna(found[key]) else found[key]) for key in _run_names(name)}


def _parameters(value: Any) -> int | None:
    """The parameter count, None where there is no model (external samples)."""
    return None if value is None or pd.isna(value) else int(value)


def format_cell(mean: float | None, std: float | None, n: int, digits: int) -> str:
    """'1.234' for one seed, '1.234 ± 0.010 (n=3)' over several, '' for none."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    text = f"{mean:.{digits}f}"
    if n > 1:
        text += f" ± {std:.{digits}f} (n={n})"
    return text


@dataclass(frozen=True)
class Cells:
    """A column as shown: its header and one text and one sort value (None: none) per row."""

    header: str
    texts: list[str]
    values: list[float | None]


def _number_text(row: pd.Series, column: TableColumn) -> str:
    spec, name = column.spec, column.name
    mean, std, n = row[f"{name}_mean"], row[f"{name}_std"], row[f"{name}_n"]
    if mean is None or pd.isna(mean):
        return ""
    mean, std = mean * spec.scale, None if std is None or pd.isna(std) else std * spec.scale
    total = row[f"{name}_of"]
    if spec.formatter is not None:
        return spec.formatter(mean) + (f" (n={n})" if n > 1 else "")
    if total is not None and not pd.isna(total):  # "7/8", or "7.7 ± 0.6 (n=3) /8" over seeds
        digits = 0 if n == 1 and float(mean).is_integer() else spec.digits
        return f"{format_cell(mean, std, n, digits)}{'' if n == 1 else ' '}/{total:.0f}"
    return spec.prefix + format_cell(mean, std, n, spec.digits) + _run_text(row, column)


def _run_text(row: pd.Series, column: TableColumn) -> str:
    """" [low, high]": the one seed's own 95 % interval, where its record has one."""
    low, high = row.get(f"{column.name}_run_low"), row.get(f"{column.name}_run_high")
    if row[f"{column.name}_n"] != 1 or low is None or high is None or pd.isna(low) or pd.isna(high):
        return ""
    digits, scale = column.spec.digits, column.spec.scale
    return f" [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def _cell_text(row: pd.Series, column: TableColumn) -> str:
    text = _number_text(row, column)
    if not text and row["all_cut_short"] and column not in COST_COLUMNS:
        return CUT_SHORT
    if not text and _present(row[f"{column.name}_label"]):
        return MISSING  # the metric ran (it labelled the row) but its record has no such number
    if not column.spec.likelihood:
        return text
    kind = LikelihoodKind(row["likelihood_kind"])
    if kind is LikelihoodKind.NONE:
        return SAMPLES_ONLY_NLL if row["origin"] == EXTERNAL_SAMPLES else NOT_AVAILABLE
    return NLL_MARKERS[kind] + text if text else text


def column_cells(summary: pd.DataFrame, column: TableColumn) -> Cells | None:
    """The column's cells for every row of a `summary_frame`; None when it is not shown (no row
    has its number, unless the column is shown ``always``). A label that every row shares goes
    into the header; otherwise each cell says its own."""
    rows = [row for _, row in summary.iterrows()]
    texts = [_cell_text(row, column) for row in rows]
    values = [None if pd.isna(row[f"{column.name}_mean"]) else float(row[f"{column.name}_mean"]) for row in rows]
    if not any(v is not None for v in values) and not (column.spec.always and any(texts)):
        return None
    header = column.header
    labels = [row[f"{column.name}_label"] for row in rows]
    shared = {label for label, value in zip(labels, values) if value is not None}
    if len(shared) == 1 and None not in shared:
        header += f" [{shared.pop()}]"
    elif shared - {None}:
        texts = [f"{text} [{label}]" if value is not None and label is not None else text
                 for text, label, value in zip(texts, labels, values)]
    return Cells(header, texts, values)


def _reference_rows(summary: pd.DataFrame, columns: Sequence[TableColumn],
                    headers: dict[str, str]) -> list[dict[str, Any]]:
    """Per (dataset, budget), the row of the data's own numbers, where the records carry them."""
    rows = []
    for (dataset, budget), group in summary.groupby(["dataset", "budget"], sort=False):
        cells = {headers[c.name]: format_cell(_first(group[f"{c.name}_ref"]), None, 1, c.spec.digits)
                 for c in columns if c.name in headers and _first(group[f"{c.name}_ref"]) is not None}
        if cells:
            rows.append({"dataset": dataset, "budget": budget, "model": REFERENCE_ROW, "likelihood": "exact", **cells})
    return rows


def _cost_text(summary: pd.DataFrame, column: TableColumn) -> list[str]:
    return [_number_text(row, column) for _, row in summary.iterrows()]


def display_frame(summary: pd.DataFrame, columns: Sequence[TableColumn]) -> pd.DataFrame:
    """Human-readable table: one column per shown number, values as 'mean ± std (n)'; first, for
    data whose density is known, a reference row with the data's own numbers."""
    shown_cells = {column.name: cells for column in columns if (cells := column_cells(summary, column)) is not None}
    shown = pd.DataFrame({
        "dataset": summary["dataset"],
        "budget": summary["budget"],
        "model": [model_label(p, m, v) for p, m, v in zip(summary["plugin"], summary["model"], summary["variant"])],
        "likelihood": summary["likelihood"],
        **{cells.header: cells.texts for cells in shown_cells.values()},
        "params": [PARAMETERS_NONE if p is None or pd.isna(p) else int(p) for p in summary["parameters"]],
        "train compute": _cost_text(summary, TRAIN_FLOPS),
        "train s": _cost_text(summary, TRAIN_SECONDS),
        "steps": _cost_text(summary, STEPS),
        "seeds": summary["seeds"],
        "diverged": summary["diverged"],
        "cut short by the clock": summary["cut_short"],
    })
    for status in ("diverged", "cut short by the clock"):
        if not shown[status].astype(bool).any():
            shown = shown.drop(columns=status)
    reference = _reference_rows(summary, columns, {name: cells.header for name, cells in shown_cells.items()})
    if reference:
        shown = pd.concat([pd.DataFrame(reference, columns=shown.columns), shown.astype(object)],
                          ignore_index=True).fillna("")
    return shown


def comparison(records: Iterable[RunRecord],
               columns: Sequence[TableColumn] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `summary_frame` (numbers) and the `display_frame` (cells) of ``records``, with the
    metrics' ``columns`` (`evalgen.table_columns.metric_columns`; None: the built-in metrics')."""
    columns = builtin_columns() if columns is None else tuple(columns)
    every = (*columns, *COST_COLUMNS)
    summary = summary_frame(records_frame(records, every), every)
    return summary, display_frame(summary, columns)


def write_tables(records: list[RunRecord], out_dir: Path, columns: Sequence[TableColumn] | None = None,
                 stem: str = "table", width: int | None = None) -> tuple[str, list[Path]]:
    """Write ``stem``.md (display) and ``stem``.csv (numbers) of ``records`` (see `comparison`);
    return the terminal text (fitted to ``width`` columns, `evalgen.terminal.fit_to_width`;
    None: every column) and the paths."""
    summary, shown = comparison(records, columns)
    md_path, csv_path = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    atomic_write_bytes(md_path, (shown.to_markdown(index=False) + "\n").encode())
    atomic_write_bytes(csv_path, summary.to_csv(index=False).encode())
    return fit_to_width(shown, width), [md_path, csv_path]
