"""How boards rank rows, on hand-made records with known numbers: the reference is the
definition in `evalgen.leaderboard.board` (1 + the rows significantly better in the column's
direction; single-seed rows by value, so equal values share the lowest rank; '#' follows the
headline metric), checked number by number."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from evalgen.leaderboard.board import build_boards
from evalgen.leaderboard.collect import Found
from evalgen.leaderboard.formats import leaderboard_csv, rank_note
from evalgen.records import read_record
from evalgen.runspec import RunSpec
from evalgen.table_columns import builtin_columns
from evalgen.tables import format_cell

BASE_RECORD = Path(__file__).resolve().parents[1] / (
    "leaderboards/cpu-quick/runs/digits/records/baselines--categorical--digits--quick--seed0.json")


def _found(model: str, nats: float | None, fid: float | None, inception: float | None, seed: int = 0) -> Found:
    base = read_record(BASE_RECORD)
    spec = RunSpec("p", model, "digits", "quick", seed)
    metrics = {"sampling": base.metrics["sampling"]}
    if nats is not None:
        metrics["test_nll"] = {"nats": nats, "bits_per_dim": nats / (64 * math.log(2)), "kind": "exact"}
    if fid is not None:
        metrics["sample_quality"] = {"fid": fid, "inception_score_mean": inception, "extractor": "digits-classifier"}
    record = dataclasses.replace(base, spec=spec, key=spec.key, metrics=metrics)
    return Found(Path(f"/runs/records/{spec.key}.json"), record)


def _ranks(board, column: str) -> dict[str, int | None]:
    index = [c.name for c in board.columns].index(column)
    return {row.model: row.cells[index].rank for row in board.rows}


def test_each_column_ranks_in_its_own_direction_and_ties_share_the_lowest_rank():
    found = [_found("a", 90.0, 5.0, 7.0), _found("b", 80.0, 5.0, 9.0), _found("c", 85.0, 5.0, 8.0),
             _found("d", 95.0, 4.0, 6.0)]
    (board,) = build_boards(found, builtin_columns())
    assert _ranks(board, "nll_nats") == {"b": 1, "c": 2, "a": 3, "d": 4}  # lower is better
    assert _ranks(board, "inception_score") == {"b": 1, "c": 2, "a": 3, "d": 4}  # higher is better
    assert _ranks(board, "fid") == {"d": 1, "a": 2, "b": 2, "c": 2}  # a three-way tie shares 2
    assert [row.model for row in board.rows] == ["b", "c", "a", "d"]  # '#' is the test NLL's rank
    assert [row.rank for row in board.rows] == [1, 2, 3, 4]
    assert rank_note(board) == "#: overall rank, by test NLL (bits/dim) ↓."


def test_without_a_likelihood_the_board_ranks_by_fid_and_without_either_it_says_so():
    (by_fid,) = build_boards([_found("a", None, 6.0, 7.0), _found("b", None, 3.0, 6.0)], builtin_columns())
    assert [(row.model, row.rank) for row in by_fid.rows] == [("b", 1), ("a", 2)]
    assert rank_note(by_fid) == "#: overall rank, by FID ↓."
    (unranked,) = build_boards([_found("a", None, None, None), _found("b", None, None, None)], builtin_columns())
    assert unranked.headline is None and [row.rank for row in unranked.rows] == [None, None]
    assert rank_note(unranked) == "#: no row has a test NLL or an FID to rank by."


def test_a_missing_number_is_an_empty_cell():
    assert format_cell(None, None, 0, 3) == "" and format_cell(float("nan"), None, 0, 3) == ""
    assert format_cell(1.23456, None, 1, 2) == "1.23"
    assert format_cell(1.23456, 0.01, 3, 2) == "1.23 ± 0.01 (n=3)"


def test_with_seeds_rows_the_noise_cannot_order_tie_and_far_apart_ones_are_ordered():
    """Three seeds per row: 'a' and 'b' have equal means (tied), 'c' is far above both (ordered
    after them, 1 + two rows significantly better); the CSV's seed interval is scipy's t interval."""
    nats = {"a": [90.1, 89.9, 90.0], "b": [90.3, 89.7, 90.0], "c": [99.0, 99.2, 98.8]}
    found = [_found(model, value, None, None, seed) for model, values in nats.items()
             for seed, value in enumerate(values)]
    (board,) = build_boards(found, builtin_columns())
    assert _ranks(board, "nll_nats") == {"a": 1, "b": 1, "c": 3}
    assert sorted(row.rank for row in board.rows) == [1, 1, 3]
    rows = list(csv.DictReader(io.StringIO(leaderboard_csv([board], builtin_columns()))))
    for row in rows:
        values = nats[row["model"]]
        low, high = scipy.stats.t.interval(0.95, 2, loc=np.mean(values), scale=scipy.stats.sem(values))
        assert float(row["nll_nats_ci_low"]) == pytest.approx(low, rel=1e-12)
        assert float(row["nll_nats_ci_high"]) == pytest.approx(high, rel=1e-12)


def _with_fid_draws(found: Found, values: list[float]) -> Found:
    """``found`` with R sample draws of FID, their interval as `draws_interval` states it."""
    from evalgen.metrics.uncertainty import draws_interval

    section = dict(found.record.metrics["sample_quality"])
    section["draws"] = {"metrics": {"fid": {"mean": float(np.mean(values)), "values": values,
                                            "interval": draws_interval(values, "R draws").to_dict()}}}
    record = dataclasses.replace(found.record, metrics={**found.record.metrics, "sample_quality": section})
    return dataclasses.replace(found, record=record)


def test_single_seed_rows_are_tested_with_their_own_draws_interval():
    """One seed each, five sample draws: 'a' and 'b' overlap (tied; by value alone 'a' would be
    first), 'c' is far worse (ordered); the cell shows the draws' mean and scipy's t interval, and
    a row whose record has no draws keeps its value, no interval, ordered by value."""
    draws = {"a": [5.0, 5.4, 4.8, 5.2, 5.1], "b": [5.1, 5.5, 4.9, 5.3, 5.2], "c": [9.0, 9.2, 8.9, 9.1, 9.3]}
    found = [_with_fid_draws(_found(model, None, values[0], 7.0), values) for model, values in draws.items()]
    (board,) = build_boards([*found, _found("plain", None, 20.0, 7.0)], builtin_columns())
    assert _ranks(board, "fid") == {"a": 1, "b": 1, "c": 3, "plain": 4}
    index = [c.name for c in board.columns].index("fid")
    cells = {row.model: row.cells[index].text for row in board.rows}
    values = draws["a"]
    low, high = scipy.stats.t.interval(0.95, 4, loc=np.mean(values), scale=scipy.stats.sem(values))
    assert cells["a"].startswith(f"{np.mean(values):.2f} [{low:.2f}, {high:.2f}]")
    assert cells["plain"].startswith("20.00") and "[" not in cells["plain"].split(" [digits")[0]
    infinity = [c.name for c in board.columns].index("fid_infinity")
    assert all(row.cells[infinity].text.startswith("—") for row in board.rows)  # no record has FID∞


@pytest.mark.parametrize("interval", [
    "not a mapping", ["low", "high"], {"low": 1.0}, {"low": 6.0, "high": 4.0, "standard_error": 0.1, "dof": 4},
    {"low": "4", "high": 6.0, "standard_error": 0.1, "dof": 4}, {"low": 4.0, "high": 6.0, "standard_error": -1.0},
    {"low": 4.0, "high": 6.0, "standard_error": 0.1, "dof": 0}, {"low": True, "high": 6.0, "standard_error": 0.1},
    {"low": 4.0, "high": 1e400, "standard_error": 0.1},
])
def test_a_malformed_interval_in_a_record_is_no_interval_never_a_wrong_one(interval):
    """A record is untrusted: an interval of the wrong shape, type, order or sign (or an infinity)
    is left out, the row shows its value alone and is ordered by value, and nothing crashes."""
    found = _found("a", None, 5.0, 7.0)
    section = {**found.record.metrics["sample_quality"], "draws": {"metrics": {"fid": {"mean": 5.0,
                                                                                       "interval": interval}}}}
    record = dataclasses.replace(found.record, metrics={**found.record.metrics, "sample_quality": section})
    (board,) = build_boards([dataclasses.replace(found, record=record), _found("b", None, 5.5, 7.0)],
                            builtin_columns())
    index = [c.name for c in board.columns].index("fid")
    cells = {row.model: row.cells[index] for row in board.rows}
    assert cells["a"].text.startswith("5.00") and "[" not in cells["a"].text.removesuffix(" [digits-classifier]")
    assert (cells["a"].rank, cells["b"].rank) == (1, 2)
