"""The comparison table as printed: the columns a reader needs first, within the terminal's width.

`table.md` and `table.csv` always hold every column; the terminal gets as many as fit, dropping
the least needed first (`DROP_ORDER`), and says which were left out. Output that is not a
terminal (a pipe, a log file, a test) gets the whole table, unless ``COLUMNS`` asks for a width.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap

import pandas as pd

__all__ = ["DROP_ORDER", "MIN_WIDTH", "fit_to_width", "output_width"]

#: Narrower than this is not a terminal anyone reads a table on (COLUMNS=0, say): fit this.
MIN_WIDTH = 40

#: Column headers (or their start) in the order they are dropped when the table is too wide:
#: what is said elsewhere or matters least goes first; the model and its NLL never go.
#: `OTHER_COLUMNS` stands for the columns of metrics not named here (a plugin's).
OTHER_COLUMNS = "<other metrics>"
DROP_ORDER = ("likelihood", "dataset", "budget", "steps", "KID", "HQ %", "mode KL", "-ELBO", "params",
              OTHER_COLUMNS, "diverged", "seeds", "train s", "IS", "modes", "test NLL (nats)", "AUROC", "FID")
#: Never dropped.
KEPT = ("model", "test NLL (bits/dim)")


def _dropped_by(prefix: str, columns: list[str]) -> list[str]:
    if prefix != OTHER_COLUMNS:
        return [c for c in columns if c.startswith(prefix)]
    named = [p for p in (*DROP_ORDER, *KEPT) if p != OTHER_COLUMNS]
    return [c for c in columns if not any(c.startswith(p) for p in named)]


def output_width() -> int | None:
    """The width to fit: ``COLUMNS`` when set, the terminal's when stdout is one, else None (all)."""
    if os.environ.get("COLUMNS", "").strip().isdigit():
        return max(int(os.environ["COLUMNS"]), MIN_WIDTH)
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size().columns, MIN_WIDTH)
    return None


def _widest_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _heading(shown: pd.DataFrame, dropped: list[str]) -> list[str]:
    """What the dropped dataset and budget columns said, when every row shares it."""
    lines = []
    for column in ("dataset", "budget"):
        if column in dropped and shown[column].nunique() == 1:
            lines.append(f"{column}: {shown[column].iloc[0]}")
    return ["; ".join(lines)] if lines else []


_LABEL = re.compile(r"^(?P<title>.+?) \[(?P<label>.+)\]$")


def _short_headers(shown: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Headers without their "[measured with]" labels, and the labels as "title: label" lines."""
    renamed, labels = {}, []
    for column in shown.columns:
        match = _LABEL.match(column)
        if match:
            renamed[column] = match["title"]
            labels.append(f"{match['title'].rstrip(' ↑↓')}: {match['label']}")
    return shown.rename(columns=renamed), labels


def fit_to_width(shown: pd.DataFrame, width: int | None) -> str:
    """``shown`` (a `tables.display_frame`) as text no wider than ``width`` where dropping columns
    in `DROP_ORDER` can make it so; None: every column."""
    text = shown.to_string(index=False)
    if width is None or _widest_line(text) <= width:
        return text
    kept, labels = _short_headers(shown)
    dropped: list[str] = []
    for prefix in ("", *DROP_ORDER):
        for column in (_dropped_by(prefix, list(kept.columns)) if prefix else []):
            kept = kept.drop(columns=column)
            dropped.append(column)
        text = kept.to_string(index=False)
        if _widest_line(text) <= width:
            break
    shown_labels = [line for line in labels if any(line.startswith(c.rstrip(" ↑↓")) for c in kept.columns)]
    notes = [*_heading(shown, dropped), *(["measured with: " + "; ".join(shown_labels)] if shown_labels else [])]
    after = [f"not shown (to fit {width} columns): {', '.join(dropped)}; every column is in table.md"
             ] if dropped else []
    wrap = [textwrap.fill(line, width, subsequent_indent="  ") for line in (*notes, *after)]
    return "\n".join([*wrap[:len(notes)], text, *wrap[len(notes):]])
