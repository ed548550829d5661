"""Records whose training traces (`training.traces`) or dynamics (`metrics.dynamics`) were edited.

A forged trace would draw a false curve on the leaderboard, and a forged dynamics section would
hide a generator's hops behind a "0" in the "mode hops" column. Reading such a record gives one
line naming the file, `evalgen leaderboard` stops with that line and writes nothing, and the
unedited records read back as they were written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_dynamics import ModeFamily, _context, _hopper
from test_leaderboard import shared_runs
from toy_plugins import assert_one_line_error

from evalgen.cli import main
from evalgen.errors import EvalgenError
from evalgen.harness.runner import run_one
from evalgen.records import read_record
from evalgen.runspec import RunSpec

GAN = "gan--gan--digits--unit--seed0.json"  # traced under the digits classifier, in make_runs


@pytest.fixture(scope="module")
def hopper_record(tmp_path_factory) -> Path:
    """The record of a toy generator that moves to the next mode every 100 steps (4 hops)."""
    out = tmp_path_factory.mktemp("hopper")
    record, _ = run_one(RunSpec("hopper", "toy", "eight-gaussians", "hop", 0),
                        _context(out, ("hopper", ModeFamily("hopper", _hopper))))
    assert record.metrics["dynamics"]["hopping"]["hops"] == 4
    (path,) = (out / "records").glob("*.json")
    return path


@pytest.fixture(scope="module")
def gan_record(tmp_path_factory) -> Path:
    return shared_runs(tmp_path_factory) / "machine-b" / "records" / GAN


def _points(record: dict) -> list[dict]:
    return record["training"]["traces"]["points"]


def _hide_the_hops(record):
    record["metrics"]["dynamics"]["hopping"].update(steps=[], hops=0)


def _hide_one_hop(record):
    record["metrics"]["dynamics"]["hopping"]["hops"] = 3


def _uncollapse(record):
    record["metrics"]["dynamics"]["collapse"].update(at_step=None, collapsed=False)


def _hold_more_modes(record):
    record["metrics"]["dynamics"]["held"] = [8] * len(record["metrics"]["dynamics"]["held"])


def _spread_the_counts(record):
    """Counts that no longer hop (but the dynamics section still says they do)."""
    for point in _points(record):
        point["counts"] = [sum(point["counts"]) // 8] * 8  # 256 samples, 32 a mode
        point["modes_covered"] = 8


def _more_samples_than_drawn(record):
    _points(record)[-1]["counts"][0] += record["training"]["traces"]["num_samples"]


def _covered_without_counts(record):
    _points(record)[-1]["modes_covered"] = 8


def _quality_without_counts(record):
    _points(record)[-1]["high_quality"] = 0.5


def _modes_change_number(record):
    _points(record)[-1]["counts"].append(0)


def _out_of_order(record):
    points = _points(record)
    points[1], points[2] = points[2], points[1]


def _past_the_run(record):
    _points(record)[-1]["step"] = record["training"]["steps"] + 1


def _fid_without_classifier(record):
    _points(record)[-1]["fid"] = 1.0


def _dynamics_without_traces(record):
    del record["training"]["traces"]


def _skipped_with_points(record):
    record["training"]["traces"]["skipped"] = "nothing to trace"


def _string_hops(record):
    record["metrics"]["dynamics"]["hopping"]["hops"] = "<b>0</b>"


def _negative_count(record):
    _points(record)[-1]["counts"][0] = -1


def _fraction_past_one(record):
    _points(record)[-1]["high_quality"] = 1.5


def _warning_not_text(record):
    record["training"]["traces"]["warnings"] = [{"path": "../../etc/passwd"}]


MIXTURE_EDITS = [_hide_the_hops, _hide_one_hop, _uncollapse, _hold_more_modes, _spread_the_counts,
                 _more_samples_than_drawn, _covered_without_counts, _quality_without_counts, _modes_change_number,
                 _out_of_order, _past_the_run, _fid_without_classifier, _dynamics_without_traces,
                 _skipped_with_points, _string_hops, _negative_count, _fraction_past_one, _warning_not_text]


def _negative_fid(record):
    _points(record)[-1]["fid"] = -3.0


def _fewer_classified_than_drawn(record):
    counts = _points(record)[-1]["counts"]
    counts[counts.index(max(counts))] -= 1


def _fid_nan(record):
    _points(record)[-1]["fid"] = float("nan")


CLASSIFIER_EDITS = [_negative_fid, _fewer_classified_than_drawn, _fid_nan]


def _edited(source: Path, folder: Path, change: Callable[[dict], None]) -> Path:
    record = json.loads(source.read_text())
    change(record)
    path = folder / "records" / source.name
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))  # NaN as Python's json writes it
    return path


def _refused(path: Path) -> str:
    with pytest.raises(EvalgenError) as caught:
        read_record(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message, message
    return message


def test_the_unedited_records_read_back_as_written(hopper_record, gan_record):
    for path in (hopper_record, gan_record):
        record = read_record(path)
        again = json.loads(json.dumps(record.to_dict()))["training"]["traces"]
        assert again == json.loads(path.read_text())["training"]["traces"]


@pytest.mark.parametrize("change", MIXTURE_EDITS, ids=lambda change: change.__name__.strip("_"))
def test_an_edited_mixture_trace_or_its_dynamics_is_refused(hopper_record, tmp_path, change):
    print(_refused(_edited(hopper_record, tmp_path, change)).replace(str(tmp_path), "..."))


@pytest.mark.parametrize("change", CLASSIFIER_EDITS, ids=lambda change: change.__name__.strip("_"))
def test_an_edited_classifier_trace_is_refused(gan_record, tmp_path, change):
    print(_refused(_edited(gan_record, tmp_path, change)).replace(str(tmp_path), "..."))


def test_the_leaderboard_stops_on_a_forged_hop_count_and_writes_nothing(gan_record, hopper_record, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(gan_record.parent.parent, runs / "machine-b", ignore=shutil.ignore_patterns("checkpoints"))
    forged = _edited(hopper_record, runs / "machine-h", _hide_the_hops)
    result = CliRunner().invoke(main, ["leaderboard", str(runs), "--out", str(tmp_path / "out")])
    assert_one_line_error(result, forged.name, "hopping")
    assert not (tmp_path / "out").exists()
