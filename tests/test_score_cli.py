"""`evalgen score` refuses every bad input with one line naming the problem, and writes no
record for it (issue 19); scored samples are a labelled leaderboard row."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from toy_plugins import assert_one_line_error

from evalgen.cli import main
from evalgen.plugins import load_plugins

SHAPE = (1, 8, 8)  # digits: 8x8 images of 17 levels


def _digits_like(n: int = 300, top: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, top + 1, size=(n, *SHAPE)).astype(np.uint8)


def _write(tmp_path, name: str, array: np.ndarray):
    path = tmp_path / name
    np.save(path, array)
    return path


def _bad_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _undecodable_folder(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return folder


CASES = {
    "wrong shape": (lambda t: _write(t, "s.npy", np.zeros((300, 8, 9), np.uint8)), [],
                    ["shape (300, 8, 9) does not fit dataset 'digits'"]),
    "channel count": (lambda t: _write(t, "s.npy", np.zeros((300, 3, 8, 8), np.uint8)), [],
                      ["3 channel(s); dataset 'digits' has 1"]),
    "out of range": (lambda t: _write(t, "s.npy", _digits_like(top=20)), [], ["values out of range (0..20)"]),
    "NaN": (lambda t: _write(t, "s.npy", np.where(_digits_like() > 15, np.nan, 1.0)), [], ["are NaN"]),
    "too few": (lambda t: _write(t, "s.npy", _digits_like(10)), [], ["10 samples are fewer than",
                                                                     "full-rank covariance"]),
    "non-image file": (_bad_folder, [], ["'notes.txt' is not a PNG or JPEG image file"]),
    "undecodable image": (_undecodable_folder, [], ["'0.png' cannot be decoded as an image"]),
    "unknown dataset": (lambda t: _write(t, "s.npy", _digits_like()), ["--dataset", "digitz"],
                        ["unknown dataset 'digitz'", "did you mean 'digits'"]),
    "unknown extractor": (lambda t: _write(t, "s.npy", _digits_like()), ["--extractor", "incepton"],
                          ["unknown feature extractor 'incepton'"]),
    "bad name": (lambda t: _write(t, "s.npy", _digits_like()), ["--name", "../up"],
                 ["samples name '../up' is not allowed"]),
    "unknown budget": (lambda t: _write(t, "s.npy", _digits_like()), ["--budget", "quik"],
                       ["unknown budget 'quik'", "did you mean 'quick'"]),
    "float01 out of range": (lambda t: _write(t, "s.npy", _digits_like().astype(np.float32)), ["--float01"],
                             ["--float01 takes values in [0, 1]"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_samples_are_one_line_and_write_no_record(tmp_path, case):
    make, extra, fragments = CASES[case]
    path = make(tmp_path)
    args = ["score", str(path), *(["--dataset", "digits"] if "--dataset" not in extra else []), *extra,
            "--out", str(tmp_path / "out"), "--device", "cpu"]
    assert_one_line_error(CliRunner().invoke(main, args), *fragments)
    assert not list((tmp_path / "out").glob("records/*.json"))


def test_the_name_samples_is_reserved_for_external_samples():
    assert "samples" not in load_plugins().families


def test_scored_samples_are_a_labelled_row_without_nll(tmp_path):
    samples = _write(tmp_path, "my gan.npy", _digits_like())
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["score", str(samples), "--dataset", "digits", "--budget", "smoke",
                                       "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "done samples:my-gan (external samples) on digits seed 0: 300 samples from my gan.npy, FID" in result.output
    record = json.loads((out / "records" / "samples--my-gan--digits--smoke--seed0.json").read_text())
    assert record["training"]["steps"] == 0 and record["metrics"]["sampling"]["num_samples"] == 300
    result = CliRunner().invoke(main, ["leaderboard", str(out), "--out", str(tmp_path / "board")])
    assert result.exit_code == 0, result.output
    row = next(line for line in (tmp_path / "board" / "leaderboard.md").read_text().splitlines()
               if "samples:my-gan" in line)
    assert "[external samples]" in row and "n/a (samples only)" in row and "| — |" in row
