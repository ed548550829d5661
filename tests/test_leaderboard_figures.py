"""Each board's interval figures (`evalgen.leaderboard.figures`), on hand-made records with known
numbers: the interval of every row (over seeds: scipy's t interval; one seed: the run's own, or
none, never an invented one), which rows go to the trade-off plot's FID-only strip, valid and
reproducible PNGs of the documented size, safe names, and hostile text shown as text."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from PIL import Image

from evalgen.leaderboard.board import Board, Column, build_boards, capabilities
from evalgen.leaderboard.build import leaderboard_files
from evalgen.leaderboard.collect import Found
from evalgen.leaderboard.figures import (
    INTERVALS,
    NONE,
    RUN,
    SEEDS,
    TRADEOFF,
    BoardFigure,
    board_figures,
    column_points,
    dot_plot,
    dot_plot_size,
    figure_kind,
    interval,
    nll_vs_fid,
    tradeoff_points,
)
from evalgen.leaderboard.html import leaderboard_html
from evalgen.leaderboard.plots import DPI
from evalgen.leaderboard.publish import asset_path, is_generated_name
from evalgen.records import read_record, write_record
from evalgen.runspec import RunSpec
from evalgen.table_columns import builtin_columns
from evalgen.types import LikelihoodKind

BASE_RECORD = Path(__file__).resolve().parents[1] / (
    "leaderboards/cpu-quick/runs/digits/records/baselines--categorical--digits--quick--seed0.json")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Broken mathtext (matplotlib raises on it unless ``$`` is escaped) and markup.
HOSTILE = r"$\frac{x$ <script>alert(1)</script>"
FID = {"a": [4.0, 5.0, 6.5], "b": [8.0], "c": [3.0], "g": [12.0, 14.0], "h": [20.0]}
NATS = {"a": [80.0, 81.0, 82.5], "b": [70.0], "c": [90.0]}
KINDS = {"a": LikelihoodKind.EXACT, "b": LikelihoodKind.LOWER_BOUND, "c": LikelihoodKind.ESTIMATE,
         "g": LikelihoodKind.NONE, "h": LikelihoodKind.NONE}


def _found(model: str, seed: int, kind: LikelihoodKind, nats: float | None, fid: float | None) -> Found:
    """A copy of a committed record as ``p:<model>``, seed ``seed``, with these numbers only."""
    base = read_record(BASE_RECORD)
    spec = RunSpec("p", model, "digits", "quick", seed)
    metrics = {"sampling": base.metrics["sampling"]}
    if nats is not None:
        metrics["test_nll"] = {"nats": nats, "bits_per_dim": nats / (64 * math.log(2)), "kind": kind.value}
    if fid is not None:
        metrics["sample_quality"] = {"fid": fid, "inception_score_mean": 2.0, "extractor": "digits-classifier"}
    model_section = dataclasses.replace(base.model, likelihood_kind=kind,
                                        likelihood="implicit" if kind is LikelihoodKind.NONE else kind.value)
    training = dataclasses.replace(base.training, history=())  # no learning curves: cheaper builds
    record = dataclasses.replace(base, spec=spec, key=spec.key, metrics=metrics, model=model_section,
                                 training=training, samples_grid=None)
    return Found(Path(f"/runs/records/{spec.key}.json"), record)


def _all_found() -> list[Found]:
    return [_found(model, seed, KINDS[model], NATS.get(model, [None] * len(fids))[seed], fid)
            for model, fids in FID.items() for seed, fid in enumerate(fids)]


@pytest.fixture(scope="module")
def board() -> Board:
    (board,) = build_boards(_all_found(), builtin_columns())
    return board


@pytest.fixture(scope="module")
def figures(board) -> list[BoardFigure]:
    return board_figures(board, builtin_columns())


def _t_interval(values: list[float]) -> tuple[float, float]:
    low, high = scipy.stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy.stats.sem(values))
    return float(low), float(high)


def _png_size(payload: bytes) -> tuple[int, int]:
    assert payload.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(payload), formats=["PNG"]) as image:
        image.verify()
        return image.size


def test_the_interval_is_over_seeds_the_runs_own_or_none():
    low, high = _t_interval([4.0, 5.0, 6.5])
    seeds = {"fid_mean": 5.1666, "fid_n": 3, "fid_ci_low": low, "fid_ci_high": high}
    assert interval(seeds, "fid").kind == SEEDS
    point = interval(seeds, "fid", scale=100.0)
    assert (point.value, point.low, point.high) == pytest.approx((516.66, 100 * low, 100 * high))
    one = {"fid_mean": 8.0, "fid_n": 1, "fid_ci_low": float("nan"), "fid_ci_high": float("nan")}
    run = interval({**one, "fid_run_low": 7.0, "fid_run_high": 9.5}, "fid")
    assert (run.value, run.low, run.high, run.kind) == (8.0, 7.0, 9.5, RUN)
    run = interval({**one, "fid_run_low": 9.5, "fid_run_high": 7.0}, "fid")  # reversed bounds are sorted
    assert (run.value, run.low, run.high, run.kind) == (8.0, 7.0, 9.5, RUN)
    for missing in (one, {**one, "fid_run_low": float("nan"), "fid_run_high": 9.0},
                    {**one, "fid_run_low": None, "fid_run_high": 9.0}, {**one, "fid_run_low": math.inf,
                                                                         "fid_run_high": 9.0}):
        assert interval(missing, "fid") == interval({"fid_mean": 8.0, "fid_n": 1}, "fid")
        assert (interval(missing, "fid").low, interval(missing, "fid").kind) == (None, NONE)
    # two seeds never borrow a run's interval: without their own, no bar
    assert interval({"fid_mean": 8.0, "fid_n": 2, "fid_run_low": 7.0, "fid_run_high": 9.0}, "fid").kind == NONE
    for no_value in ({}, {"fid_mean": float("nan"), "fid_n": 0}, {"fid_mean": math.inf, "fid_n": 1},
                     {"fid_mean": "x", "fid_n": 1}):
        assert interval(no_value, "fid") is None


def test_board_points_follow_the_rows_and_match_scipy(board):
    points = {row.model: point for row, point in column_points(board, "fid")}
    assert [row.model for row, _ in column_points(board, "fid")] == [row.model for row in board.rows]
    for model, values in FID.items():
        point = points[model]
        assert point.value == pytest.approx(np.mean(values))
        if len(values) > 1:
            assert point.kind == SEEDS and (point.low, point.high) == pytest.approx(_t_interval(values), rel=1e-12)
        else:  # one seed, and these records carry no interval of their own: no bar
            assert (point.kind, point.low, point.high) == (NONE, None, None)
    assert {row.model for row, _ in column_points(board, "nll_nats")} == {"a", "b", "c"}


def test_a_single_seed_with_its_runs_interval_gets_that_bar(board):
    rows = tuple(dataclasses.replace(row, summary={**row.summary, "fid_run_low": 7.0, "fid_run_high": 9.5})
                 if row.model == "b" else row for row in board.rows)
    with_run = dataclasses.replace(board, rows=rows)
    points = {row.model: point for row, point in column_points(with_run, "fid")}
    assert (points["b"].low, points["b"].high, points["b"].kind) == (7.0, 9.5, RUN)
    assert points["c"].kind == NONE and points["a"].kind == SEEDS
    assert dot_plot(with_run, _column(board, "fid")) != dot_plot(board, _column(board, "fid"))


def _column(board: Board, name: str) -> Column:
    return next(column for column in board.columns if column.name == name)


def test_implicit_models_go_to_the_fid_only_strip(board):
    tradeoff = tradeoff_points(board)
    assert tradeoff.nll.name == "bits_per_dim" and tradeoff.fid.name == "fid"
    assert {row.model for row, _, _ in tradeoff.both} == {"a", "b", "c"}
    assert [row.model for row, _ in tradeoff.fid_only] == [r.model for r in board.rows if r.model in ("g", "h")]
    assert tradeoff.without_fid == 0
    kinds = {row.model: row.likelihood_kind for row, _, _ in tradeoff.both}
    assert kinds == {"a": LikelihoodKind.EXACT, "b": LikelihoodKind.LOWER_BOUND, "c": LikelihoodKind.ESTIMATE}
    nll = {row.model: y for row, y, _ in tradeoff.both}
    bits = [n / (64 * math.log(2)) for n in NATS["a"]]
    assert (nll["a"].low, nll["a"].high) == pytest.approx(_t_interval(bits), rel=1e-12)
    (implicit,) = build_boards([f for f in _all_found() if f.record.spec.model in ("g", "h")], builtin_columns())
    assert tradeoff_points(implicit) is None and nll_vs_fid(implicit) is None  # nothing to trade off


def test_figures_are_named_per_board_and_column_with_safe_names(board, figures):
    paths = [figure.path for figure in figures]
    assert "assets/digits--quick--dots--fid.png" in paths and "assets/digits--quick--dots--bits_per_dim.png" in paths
    assert paths[-1] == "assets/digits--quick--nll-vs-fid.png" and figures[-1].section == TRADEOFF
    ranked = [c.name for c in board.columns if c.better is not None]
    plotted = [name for name in ranked if name != "fid_infinity"]  # no record has FID∞: a column, no plot
    assert paths[:-1] == [f"assets/digits--quick--dots--{name}.png" for name in plotted]
    assert {figure.section for figure in figures[:-1]} == {INTERVALS}
    odd = figure_kind("FID/../<x> $y")
    assert odd.startswith("dots--fid-x-y-") and is_generated_name(asset_path("digits--quick", odd))
    assert figure_kind("fid") == "dots--fid" and figure_kind("A") != figure_kind("a")


def test_pngs_are_valid_of_the_documented_size_and_reproducible(board, figures):
    fid = _column(board, "fid")
    payload = dot_plot(board, fid)
    width, height = dot_plot_size(len(board.rows), 2)  # legend: over seeds, and without an interval
    assert _png_size(payload) == (round(width * DPI), round(height * DPI))
    assert dot_plot(board, fid) == payload
    (again,) = build_boards(_all_found(), builtin_columns())
    assert [f.payload for f in board_figures(again, builtin_columns())] == [f.payload for f in figures]
    for figure in figures:
        assert _png_size(figure.payload)[0] > 0


def test_hostile_names_render_as_text_in_pngs_and_html(board):
    rows = tuple(dataclasses.replace(row, model=HOSTILE) if row.model in ("a", "g") else row for row in board.rows)
    columns = tuple(dataclasses.replace(c, header=HOSTILE + " ↓") if c.name == "fid" else c for c in board.columns)
    hostile = dataclasses.replace(board, rows=rows, columns=columns)
    figures = board_figures(hostile, builtin_columns())  # mathtext would raise on an unescaped '$'
    assert len(figures) == len(board_figures(board, builtin_columns()))
    assert all(figure.payload.startswith(PNG_MAGIC) for figure in figures)
    page = leaderboard_html([hostile], capabilities(_all_found()), {}, 9, {hostile.slug: figures})
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page
    assert page.count("<script") == 1  # evalgen's own
    for figure in figures:
        assert f'<img src="{figure.path}"' in page


def test_the_page_shows_each_boards_figures_after_its_table(tmp_path):
    runs = tmp_path / "runs"
    for found in _all_found():
        write_record(runs, found.record)
    files = leaderboard_files(runs, tmp_path, report=lambda line: None)
    page = files["index.html"].decode()
    assert page.index("<h3>Intervals</h3>") > page.index("</table>")
    assert page.index("<h3>Likelihood against sample quality</h3>") > page.index("<h3>Intervals</h3>")
    for name in ("dots--fid", "dots--bits_per_dim", "nll-vs-fid"):
        path = f"assets/digits--quick--{name}.png"
        assert f'<img src="{path}" alt="' in page and files[path].startswith(PNG_MAGIC)
