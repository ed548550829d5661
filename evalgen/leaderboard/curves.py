"""Per-row training curves: validation NLL against training time (likelihood models) and, where
the records have traces (`evalgen.harness.tracing`), FID and modes covered against training
compute, for every family, implicit models included; one line per seed.

Byte-for-byte reproducible for a given matplotlib, as `plots`: the default style, a size that
depends only on the number of panels, a fixed dpi, no metadata; record text through `_plain`.
"""

from __future__ import annotations

import io
import textwrap

import matplotlib.style
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from evalgen.leaderboard.board import Row
from evalgen.leaderboard.plots import CURVE_KINDS, DPI, FIGSIZE, TITLE_WIDTH, _plain

__all__ = ["NO_TRACES", "has_traces", "training_curves"]

#: What a row whose records have no trace points says, in place of the traced panels.
NO_TRACES = "no traces in its records"

Line = tuple[int, list[float], list[float]]


def has_traces(row: Row) -> bool:
    return any(f.record.training.traces is not None and f.record.training.traces.points for f in row.found)


def _nll_lines(row: Row) -> list[Line]:
    lines = []
    for found in row.found:
        points = [(h.seconds, h.valid_nll) for h in found.record.training.history if h.valid_nll is not None]
        if points:
            lines.append((found.record.spec.seed, [p[0] for p in points], [p[1] for p in points]))
    return lines


def _trace_lines(row: Row, field: str) -> list[Line]:
    lines = []
    for found in row.found:
        traces = found.record.training.traces
        points = [p for p in (traces.points if traces is not None else ()) if getattr(p, field) is not None]
        if points and all(p.flops is not None for p in points):
            lines.append((found.record.spec.seed, [p.flops / 1e9 for p in points], [getattr(p, field) for p in points]))
    return lines


def _draw(axes: Axes, lines: list[Line], xlabel: str, ylabel: str) -> None:
    for seed, x, y in lines:
        axes.plot(x, y, marker=".", markersize=3, linewidth=1, label=f"seed {seed}")
    axes.set_xlabel(xlabel, fontsize=8)
    axes.set_ylabel(ylabel, fontsize=8)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=6)
    axes.grid(alpha=0.3)


def training_curves(row: Row, title: str) -> bytes | None:
    """A PNG of the row's curves (module docstring), or None when it has none at all."""
    what = CURVE_KINDS.get(row.likelihood_kind, "")
    panels = [(lines, xlabel, ylabel) for lines, xlabel, ylabel in (
        (_nll_lines(row), "training time (s)", f"validation NLL (nats{what})"),
        (_trace_lines(row, "fid"), "training compute (GFLOP)", "traced FID (validation reference)"),
        (_trace_lines(row, "modes_covered"), "training compute (GFLOP)", "modes covered (traced)"),
    ) if lines]
    if not panels:
        return None
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(FIGSIZE[0] * len(panels), FIGSIZE[1]), dpi=DPI)
        for i, (lines, xlabel, ylabel) in enumerate(panels):
            _draw(figure.add_subplot(1, len(panels), i + 1), lines, xlabel, ylabel)
        figure.suptitle(textwrap.fill(_plain(title), TITLE_WIDTH * len(panels)), fontsize=8)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
