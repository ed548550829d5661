"""Run records -> comparison tables (pandas), printed and written as Markdown and CSV."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from evalgen.records import atomic_write_bytes

GROUP_COLUMNS = ["dataset", "budget", "plugin", "model"]


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    spec, training, metrics = record["spec"], record["training"], record.get("metrics", {})
    nll = metrics.get("test_nll") or {}
    sampling = metrics.get("sampling") or {}
    return {
        **{c: spec[c] for c in GROUP_COLUMNS},
        "seed": spec["seed"],
        "status": record["status"],
        "diverged_at_step": training.get("diverged_at_step"),
        "likelihood": record["model"]["likelihood"],
        "nll_nats": nll.get("nats"),
        "bits_per_dim": nll.get("bits_per_dim"),
        "parameters": record["model"]["parameters"],
        "train_seconds": training["seconds"],
        "steps": training["steps"],
        "samples_per_second": sampling.get("samples_per_second"),
        "device": record["provenance"]["device_name"],
    }


def records_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per record, the numbers as plain columns."""
    return pd.DataFrame([_flatten(r) for r in records])


def _mean_std_n(values: pd.Series) -> tuple[float | None, float | None, int]:
    clean = values.dropna()
    if clean.empty:
        return None, None, 0
    std = float(clean.std(ddof=1)) if len(clean) > 1 else None
    return float(clean.mean()), std, len(clean)


def summary_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Seeds aggregated per (dataset, budget, plugin, model): mean, std and n of each number."""
    rows = []
    for keys, group in frame.groupby(GROUP_COLUMNS, sort=False):
        row: dict[str, Any] = dict(zip(GROUP_COLUMNS, keys))
        row["likelihood"] = group["likelihood"].iloc[0]
        row["seeds"] = len(group)
        diverged = group[group["status"] == "diverged"]
        row["diverged"] = ", ".join(f"seed {s}@step {d}" for s, d in
                                    zip(diverged["seed"], diverged["diverged_at_step"])) or ""
        for column in ("bits_per_dim", "nll_nats", "train_seconds", "steps", "samples_per_second"):
            mean, std, n = _mean_std_n(group[column])
            row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_n"] = mean, std, n
        row["parameters"] = int(group["parameters"].iloc[0])
        row["device"] = group["device"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(mean: float | None, std: float | None, n: int, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    text = f"{mean:.{digits}f}"
    if n > 1:
        text += f" ± {std:.{digits}f} (n={n})"
    return text


def _nll_cell(row: pd.Series, column: str, not_available: str) -> str:
    if row["likelihood"] == "none":
        return not_available
    cell = _cell(row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_n"])
    if cell and row["likelihood"].startswith("lower bound"):
        return f"≤ {cell}"  # an NLL from a lower bound on log p is an upper bound on the NLL
    if cell and row["likelihood"].startswith("estimate"):
        return f"≈ {cell}"
    return cell


def display_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Human-readable table: one column per number, values as 'mean ± std (n)'."""
    shown = pd.DataFrame({
        "dataset": summary["dataset"],
        "budget": summary["budget"],
        "model": summary["plugin"] + ":" + summary["model"],
        "test NLL (bits/dim) ↓": summary.apply(_nll_cell, axis=1, args=("bits_per_dim", "n/a")),
        "test NLL (nats) ↓": summary.apply(_nll_cell, axis=1, args=("nll_nats", "n/a")),
        "likelihood": summary["likelihood"],
        "params": summary["parameters"],
        "train s": [_cell(m, s, n, 1) for m, s, n in zip(summary["train_seconds_mean"],
                                                         summary["train_seconds_std"],
                                                         summary["train_seconds_n"])],
        "steps": [_cell(m, s, n, 0) for m, s, n in zip(summary["steps_mean"], summary["steps_std"],
                                                       summary["steps_n"])],
        "seeds": summary["seeds"],
        "diverged": summary["diverged"],
    })
    if not shown["diverged"].astype(bool).any():
        shown = shown.drop(columns="diverged")
    if not shown["test NLL (bits/dim) ↓"].astype(bool).any():
        shown = shown.drop(columns="test NLL (bits/dim) ↓")
    return shown


def write_tables(records: list[dict[str, Any]], out_dir: Path, stem: str = "table") -> tuple[str, list[Path]]:
    """Write ``stem``.md (display) and ``stem``.csv (numbers); return the terminal text and paths."""
    summary = summary_frame(records_frame(records))
    shown = display_frame(summary)
    markdown = shown.to_markdown(index=False)
    md_path, csv_path = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    atomic_write_bytes(md_path, (markdown + "\n").encode())
    atomic_write_bytes(csv_path, summary.to_csv(index=False).encode())
    return shown.to_string(index=False), [md_path, csv_path]
