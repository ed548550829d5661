"""Per-row images: the sample grid of the lowest seed that has one (the run's own PNG, copied) and
validation NLL against wall-clock training time, one line per seed.

Plots are byte-for-byte reproducible for a given matplotlib: matplotlib's default style (not the
user's matplotlibrc), a fixed size and dpi, and no software/date metadata in the PNG.
"""

from __future__ import annotations

import io
import textwrap

import matplotlib.style
from matplotlib.figure import Figure

from evalgen.leaderboard.board import Row
from evalgen.tables import likelihood_kind

FIGSIZE = (4.0, 3.0)
DPI = 100
TITLE_WIDTH = 60  # characters per line
#: History rows are [step, wall-clock seconds, train loss, validation NLL in nats].
SECONDS, VALID_NLL = 1, 3


def sample_grid(row: Row) -> bytes | None:
    """The PNG bytes of the lowest finished seed's sample grid, or None if no run has one."""
    for found in row.found:  # in seed order
        grid = found.record["samples_grid"]
        if found.record["status"] == "ok" and grid and (found.run_dir / grid).is_file():
            return (found.run_dir / grid).read_bytes()
    return None


def _curves(row: Row) -> list[tuple[int, list[float], list[float]]]:
    curves = []
    for found in row.found:
        points = [(h[SECONDS], h[VALID_NLL]) for h in found.record["training"]["history"] if h[VALID_NLL] is not None]
        if points:
            curves.append((found.record["spec"]["seed"], [p[0] for p in points], [p[1] for p in points]))
    return curves


def learning_curve(row: Row, title: str) -> bytes | None:
    """A PNG of validation NLL (nats) against training seconds, or None without validation NLLs
    (implicit models, runs that diverged before the first validation)."""
    curves = _curves(row)
    if not curves:
        return None
    what = {"bound": ", upper bound", "estimate": ", estimate"}.get(likelihood_kind(row.likelihood), "")
    with matplotlib.style.context("default"):
        figure = Figure(figsize=FIGSIZE, dpi=DPI)
        axes = figure.add_subplot()
        for seed, seconds, nll in curves:
            axes.plot(seconds, nll, marker=".", markersize=3, linewidth=1, label=f"seed {seed}")
        axes.set_xlabel("training time (s)")
        axes.set_ylabel(f"validation NLL (nats{what})")
        axes.set_title(textwrap.fill(title, TITLE_WIDTH), fontsize=8)
        axes.legend(fontsize=7)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
