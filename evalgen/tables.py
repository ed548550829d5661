"""Run records -> comparison tables (pandas), printed and written as Markdown and CSV."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from evalgen.records import atomic_write_bytes
from evalgen.terminal import fit_to_width

#: A row of a table: seeds of the same (dataset, budget, plugin, model, variant) are aggregated.
GROUP_COLUMNS = ["dataset", "budget", "plugin", "model", "variant"]
NUMBERS = ("bits_per_dim", "nll_nats", "elbo_nats", "inception_score", "fid", "kid", "auroc", "modes_covered",
           "num_modes", "high_quality", "mode_kl", "train_seconds", "steps", "samples_per_second")
#: What the NLL cells of models without a likelihood say.
NOT_AVAILABLE = "n/a (implicit model)"


def variant_label(spec: dict[str, Any]) -> str:
    """What sets a run apart from the model's defaults: plugin options and an importance-sample
    override, e.g. "hidden=64, lr=0.001, K=1000"; "" for the defaults."""
    parts = [f"{key}={value}" for key, value in sorted((spec.get("config") or {}).items())]
    if spec.get("importance_samples") is not None:
        parts.append(f"K={spec['importance_samples']}")
    return ", ".join(parts)


def likelihood_kind(likelihood: str) -> str:
    """'exact', 'bound', 'estimate' or 'none', from a record's ``model.likelihood`` label."""
    if likelihood.startswith("lower bound"):
        return "bound"
    if likelihood.startswith("estimate"):
        return "estimate"
    return "none" if likelihood == "none" else "exact"


#: What an NLL cell is prefixed with, per likelihood kind: an NLL from a lower bound on log p is
#: an upper bound on the NLL.
NLL_MARKERS = {"exact": "", "bound": "≤ ", "estimate": "≈ ", "none": ""}


def _sample_quality(metrics: dict[str, Any]) -> dict[str, Any]:
    found = metrics.get("sample_quality") or {}
    if "skipped" in found:
        found = {}
    return {
        "inception_score": found.get("inception_score_mean"),
        "fid": found.get("fid"),
        "kid": found.get("kid_mean"),
        "extractor": found.get("extractor"),
    }


def _outliers(metrics: dict[str, Any]) -> dict[str, Any]:
    found = metrics.get("outliers") or {}
    headline = found.get("headline")
    result = (found.get("sets") or {}).get(headline) or {}
    label = f"{found['score']} vs {headline}" if "auroc" in result else None
    return {"auroc": result.get("auroc"), "auroc_label": label}


def _mode_coverage(metrics: dict[str, Any]) -> dict[str, Any]:
    found = metrics.get("mode_coverage") or {}
    return {key: found.get(key) for key in ("modes_covered", "num_modes", "high_quality", "mode_kl")}


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    spec, training, metrics = record["spec"], record["training"], record.get("metrics", {})
    nll = metrics.get("test_nll") or {}
    sampling = metrics.get("sampling") or {}
    return {
        **_sample_quality(metrics),
        **_outliers(metrics),
        **_mode_coverage(metrics),
        **{c: spec[c] for c in GROUP_COLUMNS if c != "variant"},
        "variant": variant_label(spec),
        "seed": spec["seed"],
        "status": record["status"],
        "diverged_at_step": training.get("diverged_at_step"),
        "likelihood": record["model"]["likelihood"],
        "nll_nats": nll.get("nats"),
        "bits_per_dim": nll.get("bits_per_dim"),
        "elbo_nats": (nll.get("elbo") or {}).get("nats"),
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
        row["diverged"] = ", ".join(f"seed {s}@step {int(d)}" for s, d in
                                    zip(diverged["seed"], diverged["diverged_at_step"])) or ""
        for label in ("extractor", "auroc_label"):
            row[label] = group[label].dropna().iloc[0] if group[label].notna().any() else None
        for column in NUMBERS:
            mean, std, n = _mean_std_n(group[column])
            row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_n"] = mean, std, n
        row["parameters"] = int(group["parameters"].iloc[0])
        row["device"] = group["device"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


def format_cell(mean: float | None, std: float | None, n: int, digits: int = 3) -> str:
    """'1.234' for one seed, '1.234 ± 0.010 (n=3)' over several, '' for none."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    text = f"{mean:.{digits}f}"
    if n > 1:
        text += f" ± {std:.{digits}f} (n={n})"
    return text


def column_cells(summary: pd.DataFrame, column: str, digits: int = 3) -> list[str]:
    """`format_cell` for every row of a `summary_frame` column (``column`` without the suffixes)."""
    return [format_cell(m, s, n, digits) for m, s, n in zip(summary[f"{column}_mean"], summary[f"{column}_std"],
                                                            summary[f"{column}_n"])]


def _nll_cell(row: pd.Series, column: str, not_available: str) -> str:
    if row["likelihood"] == "none":
        return not_available
    cell = format_cell(row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_n"])
    return NLL_MARKERS[likelihood_kind(row["likelihood"])] + cell if cell else cell


def _elbo_column(summary: pd.DataFrame) -> dict[str, list[str]]:
    """-ELBO in nats (an upper bound on the NLL, like the IWAE bound's), when any row has one."""
    cells = column_cells(summary, "elbo_nats")
    return {"-ELBO (nats) ↓": [f"≤ {c}" if c else "" for c in cells]} if any(cells) else {}


def _labelled(summary: pd.DataFrame, column: str, title: str, label: str,
              digits: int = 3) -> dict[str, list[str]]:
    """A column whose numbers carry a label (extractor, score): in the header when every row
    shares it, else in each cell. Omitted when no row has the number."""
    cells = column_cells(summary, column, digits)
    if not any(cells):
        return {}
    labels = {lab for lab, cell in zip(summary[label], cells) if cell}
    if len(labels) == 1:
        return {f"{title} [{labels.pop()}]": cells}
    return {title: [f"{c} [{lab}]" if c else "" for c, lab in zip(cells, summary[label])]}


def _modes_cell(mean: float | None, std: float | None, n: int, num_modes: float | None) -> str:
    """'8/8' for one seed, '7.7 ± 0.6 (n=3) /8' over several."""
    if not format_cell(mean, std, n):
        return ""
    if n > 1:
        return f"{format_cell(mean, std, n, 1)} /{num_modes:.0f}"
    return f"{mean:.0f}/{num_modes:.0f}"


def _mode_columns(summary: pd.DataFrame) -> dict[str, list[str]]:
    """Modes covered (of how many), high-quality % and mode KL; each only when some row has it."""
    def cells(column: str, scale: float = 1.0, digits: int = 3) -> list[str]:
        return [format_cell(m if m is None else m * scale, s if s is None else s * scale, n, digits)
                for m, s, n in zip(summary[f"{column}_mean"], summary[f"{column}_std"], summary[f"{column}_n"])]

    columns = {
        "modes ↑": [_modes_cell(*args) for args in zip(summary["modes_covered_mean"], summary["modes_covered_std"],
                                                       summary["modes_covered_n"], summary["num_modes_mean"])],
        "HQ % ↑": cells("high_quality", 100.0, 1),
        "mode KL ↓": cells("mode_kl"),
    }
    return {title: column for title, column in columns.items() if any(column)}


def model_label(plugin: str, model: str, variant: str = "") -> str:
    """'vae:iwae', or 'vae:iwae [K=1000]' for a variant."""
    return f"{plugin}:{model}" + (f" [{variant}]" if variant else "")


def display_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Human-readable table: one column per number, values as 'mean ± std (n)'."""
    shown = pd.DataFrame({
        "dataset": summary["dataset"],
        "budget": summary["budget"],
        "model": [model_label(p, m, v) for p, m, v in zip(summary["plugin"], summary["model"], summary["variant"])],
        "test NLL (bits/dim) ↓": summary.apply(_nll_cell, axis=1, args=("bits_per_dim", NOT_AVAILABLE)),
        "test NLL (nats) ↓": summary.apply(_nll_cell, axis=1, args=("nll_nats", NOT_AVAILABLE)),
        "likelihood": summary["likelihood"],
        **_elbo_column(summary),
        **_labelled(summary, "inception_score", "IS ↑", "extractor"),
        **_labelled(summary, "fid", "FID ↓", "extractor"),
        **_labelled(summary, "kid", "KID ↓", "extractor", digits=4),
        **_labelled(summary, "auroc", "AUROC ↑", "auroc_label"),
        **_mode_columns(summary),
        "params": summary["parameters"],
        "train s": column_cells(summary, "train_seconds", 1),
        "steps": column_cells(summary, "steps", 0),
        "seeds": summary["seeds"],
        "diverged": summary["diverged"],
    })
    if not shown["diverged"].astype(bool).any():
        shown = shown.drop(columns="diverged")
    if not (summary["bits_per_dim_n"] > 0).any():  # continuous data, or implicit models only
        shown = shown.drop(columns="test NLL (bits/dim) ↓")
    return shown


def write_tables(records: list[dict[str, Any]], out_dir: Path, stem: str = "table",
                 width: int | None = None) -> tuple[str, list[Path]]:
    """Write ``stem``.md (display) and ``stem``.csv (numbers); return the terminal text (fitted to
    ``width`` columns, `evalgen.terminal.fit_to_width`; None: every column) and the paths."""
    summary = summary_frame(records_frame(records))
    shown = display_frame(summary)
    markdown = shown.to_markdown(index=False)
    md_path, csv_path = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    atomic_write_bytes(md_path, (markdown + "\n").encode())
    atomic_write_bytes(csv_path, summary.to_csv(index=False).encode())
    return fit_to_width(shown, width), [md_path, csv_path]
