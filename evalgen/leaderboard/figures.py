"""Per-board pictures of the numbers with their 95 % intervals: a dot plot per ranked column and
test NLL against FID, the trade-off between likelihood and sample quality.

Each number is an `Interval` read from the row's `summary_frame` entry (`interval`): the mean over
seeds with its Student-t interval (``<name>_ci_low``/``_ci_high``) when two or more seeds have it;
for a single seed, the run's own interval (``<name>_run_low``/``_run_high``) where its record has
one; otherwise no interval, and the dot is drawn without a bar (none is ever made up). Filled
markers and solid bars are intervals over seeds, open markers and dashed bars a run's own.

Implicit models (no NLL) cannot be placed on the NLL axis: the trade-off plot shows them in a strip
below it, on the FID axis alone. Upper bounds on the NLL (≤) and estimates (≈) get their own
marker shapes, as in the tables.

Like `plots`, figures are byte-for-byte reproducible for a given matplotlib: the default style, a
size that depends only on the number of rows, fixed margins (no tight layout: it would cost a draw
per figure, and every build draws one figure per ranked column), a fixed dpi and no metadata.
Record text (model names, labels) goes through `plots._plain`: one line, ``$`` never mathtext.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.style
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from evalgen.leaderboard.board import COST, Board, Column, Row
from evalgen.leaderboard.escape import clean_text
from evalgen.leaderboard.plots import DPI, _plain
from evalgen.leaderboard.publish import asset_path
from evalgen.table_columns import ARROWS, TableColumn
from evalgen.types import LikelihoodKind

__all__ = ["INTERVALS", "NLL_COLUMNS", "NONE", "RUN", "SEEDS", "TRADEOFF", "BoardFigure", "Interval", "Tradeoff",
           "board_figures", "column_points", "dot_plot", "dot_plot_size", "figure_kind", "interval", "nll_vs_fid",
           "tradeoff_points"]

#: Where an interval comes from: over seeds, the run's own (one seed), or none.
SEEDS, RUN, NONE = "seeds", "run", "none"
#: The two sections a board's figures are shown in.
INTERVALS, TRADEOFF = "intervals", "tradeoff"
#: The NLL the trade-off plot uses: bits/dim where the board has it, else nats.
NLL_COLUMNS = ("bits_per_dim", "nll_nats")
FID_COLUMN = "fid"

#: Marker per likelihood kind (NLL columns and the trade-off plot); other columns use a circle.
MARKERS = {LikelihoodKind.EXACT: "o", LikelihoodKind.LOWER_BOUND: "v", LikelihoodKind.ESTIMATE: "D",
           LikelihoodKind.NONE: "s"}
KIND_LEGEND = {LikelihoodKind.EXACT: "exact NLL", LikelihoodKind.LOWER_BOUND: "≤ upper bound on the NLL",
               LikelihoodKind.ESTIMATE: "≈ estimated NLL", LikelihoodKind.NONE: "no NLL (implicit model)"}
INTERVAL_LEGEND = {SEEDS: "filled, solid: 95 % interval over seeds (Student t)",
                   RUN: "open, dashed: 95 % interval of the one run",
                   NONE: "open, no bar: one seed, no interval recorded"}
LINESTYLES = {SEEDS: "-", RUN: "--"}
COLOR = "C0"
MUTED = "0.45"  # markers without an interval

# Layout, in inches: fixed margins instead of a tight layout (see the module docstring).
WIDTH = 5.0
LEFT = 2.0  # room for LABEL_CHARS characters of tick labels at TICK_SIZE
RIGHT = 0.25
TOP = 0.35
AXIS_BOTTOM = 0.5  # tick values and the axis label
LEGEND_LINE = 0.16
ROW_HEIGHT = 0.22
LABEL_CHARS = 34
TICK_SIZE, TEXT_SIZE, SMALL_SIZE = 7, 8, 6
TRADEOFF_WIDTH, TRADEOFF_LEFT, TRADEOFF_AXES = 6.0, 0.8, 3.4
POINT_LABEL_CHARS = 26


@dataclass(frozen=True)
class Interval:
    """One row's number as plotted: its value and 95 % interval (None, None without one), and
    where the interval comes from: `SEEDS`, `RUN` or `NONE`."""

    value: float
    low: float | None
    high: float | None
    kind: str


def _finite(value: Any) -> float | None:
    """``value`` as a float, None if it is missing, not a number, NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy and pandas scalars
        except (TypeError, ValueError):
            return None
    value = float(value)
    return value if math.isfinite(value) else None


def _bounds(summary: Mapping[str, Any], low_key: str, high_key: str, scale: float) -> tuple[float, float] | None:
    low, high = _finite(summary.get(low_key)), _finite(summary.get(high_key))
    if low is None or high is None:
        return None
    low, high = low * scale, high * scale
    return min(low, high), max(low, high)  # a negative scale swaps them


def interval(summary: Mapping[str, Any], name: str, scale: float = 1.0) -> Interval | None:
    """Column ``name`` of one `summary_frame` row, times ``scale`` (as the table shows it); None
    without a finite mean. The interval is over seeds when n >= 2, the run's own for one seed;
    missing or non-finite bounds give `NONE`, never an invented bar."""
    mean = _finite(summary.get(f"{name}_mean"))
    if mean is None:
        return None
    n = _finite(summary.get(f"{name}_n")) or 0
    kind, keys = (SEEDS, ("ci_low", "ci_high")) if n >= 2 else (RUN, ("run_low", "run_high"))
    bounds = _bounds(summary, f"{name}_{keys[0]}", f"{name}_{keys[1]}", scale)
    if bounds is None:
        return Interval(mean * scale, None, None, NONE)
    return Interval(mean * scale, bounds[0], bounds[1], kind)


def column_points(board: Board, name: str, scale: float = 1.0) -> list[tuple[Row, Interval]]:
    """The rows that have column ``name``, in the board's order, each with its `Interval`."""
    points = ((row, interval(row.summary, name, scale)) for row in board.rows)
    return [(row, point) for row, point in points if point is not None]


@dataclass(frozen=True)
class Tradeoff:
    """What the NLL-against-FID plot shows: rows with both numbers, rows with an FID and no NLL
    (the strip), and how many rows with an NLL have no FID (not shown)."""

    nll: Column
    fid: Column
    both: list[tuple[Row, Interval, Interval]]  # (row, NLL, FID)
    fid_only: list[tuple[Row, Interval]]
    without_fid: int


def tradeoff_points(board: Board, scales: Mapping[str, float] | None = None) -> Tradeoff | None:
    """The trade-off plot's points; None unless some row has both an NLL and an FID."""
    scales = scales or {}
    by_name = {column.name: column for column in board.columns}
    nll = next((by_name[name] for name in NLL_COLUMNS if name in by_name), None)
    fid = by_name.get(FID_COLUMN)
    if nll is None or fid is None:
        return None
    both, fid_only, without_fid = [], [], 0
    for row in board.rows:
        y = interval(row.summary, nll.name, scales.get(nll.name, 1.0))
        x = interval(row.summary, fid.name, scales.get(fid.name, 1.0))
        if x is not None and (y is None or row.likelihood_kind is LikelihoodKind.NONE):
            fid_only.append((row, x))
        elif x is not None and y is not None:
            both.append((row, y, x))
        else:
            without_fid += y is not None
    return Tradeoff(nll, fid, both, fid_only, without_fid) if both else None


def _cut(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters (an ellipsis says so)."""
    text = " ".join(clean_text(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _short(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, as matplotlib shows it literally (`plots._plain`)."""
    return _plain(_cut(text, width))


def _axis_words(column: Column) -> str:
    """The header without its arrow, and the direction in words (plain text)."""
    words = column.header
    for arrow in ARROWS.values():
        words = words.replace(arrow, "")
    direction = f", {column.better} is better" if column.better else ""
    return _cut(words, 60) + direction


def _axis_label(column: Column) -> str:
    return _plain(_axis_words(column))


def _save(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


@dataclass
class _Marks:
    """An axes' markers and bars, collected and then drawn as one artist per style: one artist per
    row draws several times slower, and every build draws a figure per ranked column."""

    points: dict[tuple[str, str], tuple[list[float], list[float]]] = field(default_factory=dict)
    bars: dict[tuple[bool, str], tuple[list[float], list[float], list[float]]] = field(default_factory=dict)

    def point(self, x: float, y: float, marker: str, kind: str) -> None:
        """A marker: filled for an interval over seeds, open otherwise (muted without one)."""
        xs, ys = self.points.setdefault((marker, kind), ([], []))
        xs.append(x)
        ys.append(y)

    def bar(self, point: Interval, at: float, horizontal: bool = True) -> None:
        """The interval's bar, solid over seeds and dashed for a run's own; nothing without one."""
        if point.low is None or point.high is None:
            return
        ats, lows, highs = self.bars.setdefault((horizontal, point.kind), ([], [], []))
        ats.append(at)
        lows.append(point.low)
        highs.append(point.high)

    def draw(self, axes: Axes) -> None:
        for (horizontal, kind), (ats, lows, highs) in self.bars.items():
            draw = axes.hlines if horizontal else axes.vlines
            draw(ats, lows, highs, colors=COLOR, linestyles=LINESTYLES[kind], linewidth=1.2, zorder=2)
        for (marker, kind), (xs, ys) in self.points.items():
            axes.plot(xs, ys, marker=marker, linestyle="none", markersize=5, color=MUTED if kind == NONE else COLOR,
                      markerfacecolor=COLOR if kind == SEEDS else "white", zorder=3)


def _handles(kinds: set[str], likelihoods: set[LikelihoodKind]) -> list[Line2D]:
    """Legend entries for the interval kinds drawn, then the likelihood kinds (when not all exact)."""
    handles = [Line2D([], [], color=MUTED if kind == NONE else COLOR, marker="o", markersize=5,
                      markerfacecolor=COLOR if kind == SEEDS else "white", linestyle=LINESTYLES.get(kind, "none"),
                      label=INTERVAL_LEGEND[kind]) for kind in (SEEDS, RUN, NONE) if kind in kinds]
    if likelihoods - {LikelihoodKind.EXACT}:
        handles += [Line2D([], [], color=COLOR, marker=MARKERS[kind], markersize=5, linestyle="none",
                           label=KIND_LEGEND[kind]) for kind in MARKERS if kind in likelihoods]
    return handles


def _legend(figure: Figure, handles: list[Line2D], bottom: float) -> None:
    figure.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.01, bottom), fontsize=SMALL_SIZE,
                  frameon=False, borderaxespad=0.1, handlelength=2.2)


def dot_plot_size(rows: int, legend_lines: int) -> tuple[float, float]:
    """The dot plot's (width, height) in inches: it grows with the rows and the legend only."""
    return WIDTH, TOP + rows * ROW_HEIGHT + 0.15 + AXIS_BOTTOM + legend_lines * LEGEND_LINE + 0.1


def _fractions(figure: Figure, left: float, bottom: float, width: float, height: float) -> list[float]:
    """An axes rectangle given in inches, as figure fractions."""
    w, h = figure.get_size_inches()
    return [left / w, bottom / h, width / w, height / h]


def dot_plot(board: Board, column: Column, scale: float = 1.0, likelihood: bool = False) -> bytes | None:
    """A PNG: one row per model with this column (board order, top down), a dot at its value and a
    bar for its 95 % interval; None when no row has the number. ``likelihood``: marker shapes by
    likelihood kind (an NLL column)."""
    points = column_points(board, column.name, scale)
    if not points:
        return None
    handles = _handles({p.kind for _, p in points}, {r.likelihood_kind for r, _ in points} if likelihood else set())
    width, height = dot_plot_size(len(points), len(handles))
    legend = len(handles) * LEGEND_LINE + 0.1
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(width, height), dpi=DPI)
        plot_height = len(points) * ROW_HEIGHT + 0.15
        axes = figure.add_axes(_fractions(figure, LEFT, legend + AXIS_BOTTOM, width - LEFT - RIGHT, plot_height))
        ys = range(len(points) - 1, -1, -1)
        marks = _Marks()
        for (row, point), y in zip(points, ys):
            marks.bar(point, y)
            marks.point(point.value, y, MARKERS[row.likelihood_kind] if likelihood else "o", point.kind)
        marks.draw(axes)
        axes.set_yticks(list(ys), [_short(row.label, LABEL_CHARS) for row, _ in points], fontsize=TICK_SIZE)
        axes.set_ylim(-0.6, len(points) - 0.4)
        axes.tick_params(axis="x", labelsize=TICK_SIZE)
        axes.set_xlabel(_axis_label(column), fontsize=TEXT_SIZE)
        axes.set_title(_short(board.title, 70), fontsize=TEXT_SIZE)
        axes.grid(axis="x", alpha=0.3)
        _legend(figure, handles, 0.0)
        return _save(figure)


def _joint_kind(nll: Interval, fid: Interval) -> str:
    """How a trade-off point is filled: over seeds only when both of its intervals are."""
    kinds = {nll.kind, fid.kind}
    return SEEDS if kinds == {SEEDS} else NONE if kinds == {NONE} else RUN


def _tradeoff_handles(tradeoff: Tradeoff) -> list[Line2D]:
    kinds = {p.kind for _, y, x in tradeoff.both for p in (y, x)} | {x.kind for _, x in tradeoff.fid_only}
    handles = _handles(kinds, {row.likelihood_kind for row, _, _ in tradeoff.both})
    if tradeoff.fid_only:
        handles.append(Line2D([], [], color=COLOR, marker=MARKERS[LikelihoodKind.NONE], markersize=5,
                              linestyle="none", label=KIND_LEGEND[LikelihoodKind.NONE] + ": the strip below"))
    return handles


def _fid_span(tradeoff: Tradeoff) -> tuple[float, float]:
    """The FID axis's data range (values and bars), to know which labels would run off its right."""
    points = [x for _, _, x in tradeoff.both] + [x for _, x in tradeoff.fid_only]
    ends = [v for p in points for v in (p.value, p.low, p.high) if v is not None]
    return min(ends), max(ends)


def _label_point(axes: Axes, row: Row, x: float, y: float, span: tuple[float, float]) -> None:
    """The model's name beside its point: on the left in the right third of the axis, where it
    would run out of the figure."""
    leftward = x > span[0] + 0.66 * (span[1] - span[0])
    axes.annotate(_short(row.label, POINT_LABEL_CHARS), (x, y), xytext=(-4 if leftward else 4, 3),
                  textcoords="offset points", ha="right" if leftward else "left", fontsize=SMALL_SIZE, color="0.2")


def _strip(axes: Axes, points: list[tuple[Row, Interval]], span: tuple[float, float]) -> None:
    """The implicit models on the FID axis alone, one level each, labelled."""
    marks = _Marks()
    for level, (row, point) in zip(range(len(points) - 1, -1, -1), points):
        marks.bar(point, level)
        marks.point(point.value, level, MARKERS[LikelihoodKind.NONE], point.kind)
        _label_point(axes, row, point.value, level, span)
    marks.draw(axes)
    axes.set_ylim(-0.7, len(points) - 0.3)
    axes.set_yticks([])
    axes.set_ylabel("no NLL", fontsize=SMALL_SIZE)


def nll_vs_fid(board: Board, scales: Mapping[str, float] | None = None) -> bytes | None:
    """A PNG of test NLL against FID, one labelled point per model with both, bars in both
    directions; FID-only (implicit) models in a strip below. None without a row that has both."""
    tradeoff = tradeoff_points(board, scales)
    if tradeoff is None:
        return None
    handles = _tradeoff_handles(tradeoff)
    strip = len(tradeoff.fid_only) * ROW_HEIGHT + 0.2 if tradeoff.fid_only else 0.0
    legend = (len(handles) + bool(tradeoff.without_fid)) * LEGEND_LINE + 0.1
    height = TOP + TRADEOFF_AXES + (strip + 0.1 if strip else 0.0) + AXIS_BOTTOM + legend
    plot_width = TRADEOFF_WIDTH - TRADEOFF_LEFT - RIGHT
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(TRADEOFF_WIDTH, height), dpi=DPI)
        bottom = legend + AXIS_BOTTOM
        low = figure.add_axes(_fractions(figure, TRADEOFF_LEFT, bottom, plot_width, strip)) if strip else None
        main = figure.add_axes(_fractions(figure, TRADEOFF_LEFT, bottom + (strip + 0.1 if strip else 0.0),
                                          plot_width, TRADEOFF_AXES), sharex=low)
        span = _fid_span(tradeoff)
        marks = _Marks()
        for row, y, x in tradeoff.both:
            marks.bar(x, y.value)
            marks.bar(y, x.value, horizontal=False)
            marks.point(x.value, y.value, MARKERS[row.likelihood_kind], _joint_kind(y, x))
            _label_point(main, row, x.value, y.value, span)
        marks.draw(main)
        main.set_ylabel(_axis_label(tradeoff.nll), fontsize=TEXT_SIZE)
        main.set_title(_short(f"{board.title}: likelihood against sample quality", 80), fontsize=TEXT_SIZE)
        bottom_axes = main
        if low is not None:
            _strip(low, tradeoff.fid_only, span)
            main.tick_params(axis="x", labelbottom=False)
            bottom_axes = low
        for axes in (main, low):
            if axes is not None:
                axes.tick_params(labelsize=TICK_SIZE)
                axes.grid(alpha=0.3)
        bottom_axes.set_xlabel(_axis_label(tradeoff.fid), fontsize=TEXT_SIZE)
        _legend(figure, handles, (bool(tradeoff.without_fid) * LEGEND_LINE) / height)
        if tradeoff.without_fid:
            figure.text(0.01, 0.02 / height, f"not shown: {tradeoff.without_fid} row(s) with an NLL and no FID",
                        fontsize=SMALL_SIZE)
        return _save(figure)


@dataclass(frozen=True)
class BoardFigure:
    """A board's picture: where it goes (relative path), the section it is shown in (`INTERVALS`,
    `TRADEOFF`), its alt text (plain text: escape it for the format) and its PNG bytes."""

    path: str
    section: str
    alt: str
    payload: bytes


def _safe_name(name: str) -> str:
    """A column name as a file-name part: [a-z0-9_-] only; a changed name gets a hash of the
    original, so two names that sanitise alike still get different files."""
    safe = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:60].strip("-_")
    if safe == name:
        return safe
    return f"{safe or 'column'}-{hashlib.sha256(name.encode('utf-8', 'replace')).hexdigest()[:12]}"


def figure_kind(column: str | None = None) -> str:
    """The ``kind`` part of a board figure's file name (`publish.asset_path`): ``dots--<column>``,
    or ``nll-vs-fid`` for the trade-off plot (``column`` None)."""
    return "nll-vs-fid" if column is None else f"dots--{_safe_name(column)}"


def board_figures(board: Board, columns: Sequence[TableColumn] = ()) -> list[BoardFigure]:
    """Every figure of a board: a dot plot per ranked column (the table's order), then test NLL
    against FID. ``columns``: the metrics' `TableColumn`s, for each number's display scale and
    whether it is a likelihood (the cost columns are known here)."""
    declared = {column.name: column for column in (*columns, *COST)}
    scales = {name: column.spec.scale for name, column in declared.items()}
    figures = []
    for column in board.columns:
        if column.better is None or not column.numeric:
            continue
        spec = declared.get(column.name)
        payload = dot_plot(board, column, scales.get(column.name, 1.0), bool(spec and spec.spec.likelihood))
        if payload is not None:
            alt = f"{_axis_words(column)}: each model's value on {board.title}, with its 95 % interval"
            figures.append(BoardFigure(asset_path(board.slug, figure_kind(column.name)), INTERVALS, alt, payload))
    payload = nll_vs_fid(board, scales)
    if payload is not None:
        alt = f"test NLL against FID on {board.title}, one labelled point per model, with 95 % intervals"
        figures.append(BoardFigure(asset_path(board.slug, figure_kind()), TRADEOFF, alt, payload))
    return figures
