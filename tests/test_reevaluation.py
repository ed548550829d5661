"""`evalgen eval` (issue 19): a finished run's checkpoint evaluated again reproduces the original
record's metrics exactly with the original settings; with more importance samples a VAE's bound
is tighter and labelled so; a leaderboard shows trained, scored and re-evaluated rows, each
labelled; and every checkpoint or record that does not fit is one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import private_environment
from toy_plugins import assert_one_line_error

from evalgen.cli import main
from evalgen.testing.reproducibility import without_timings

pytestmark = pytest.mark.slow
KEY = "vae--vae--digits--smoke--seed0"


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _record(out, key: str) -> dict:
    return json.loads((out / "records" / f"{key}.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A VAE trained at smoke on digits (its record and checkpoint), shared by the module's tests."""
    out = tmp_path_factory.mktemp("vae")
    with pytest.MonkeyPatch.context() as patch:
        private_environment(patch, tmp_path_factory)
        _invoke("run", "--plugin", "vae", "--model", "vae", "--dataset", "digits", "--budget", "smoke",
                "--no-baseline", "--device", "cpu", "--save-samples", "--out", str(out))
    return out


@pytest.fixture
def runs(trained, tmp_path):
    """A private copy of the trained run's folder."""
    return shutil.copytree(trained, tmp_path / "runs")


def _metrics_without_cache_flags(record: dict) -> dict:
    metrics = without_timings(record["metrics"])
    metrics["sample_quality"].pop("reference_cached", None)  # the original run filled the cache
    return metrics


def test_the_original_settings_reproduce_the_original_metrics_exactly(runs):
    output = _invoke("eval", KEY, "--runs", str(runs), "--device", "cpu")
    assert "done vae:vae (evaluated again) on digits seed 0" in output
    original, again = _record(runs, KEY), _record(runs, f"{KEY}--eval")
    assert _metrics_without_cache_flags(again) == _metrics_without_cache_flags(original)
    assert again["training"] == original["training"] and again["spec"] == original["spec"]
    assert again["origin"]["kind"] == "re-evaluated" and again["origin"]["reevaluation"]["of"] == KEY


def test_more_importance_samples_give_a_tighter_bound_labelled_with_k(runs):
    _invoke("eval", KEY, "--runs", str(runs), "--importance-samples", "100", "--metric", "test_nll")
    _invoke("eval", KEY, "--runs", str(runs), "--importance-samples", "1000", "--metric", "test_nll")
    at_100, at_1000 = (_record(runs, f"{KEY}--eval-K{k}-m{_hash('test_nll')}") for k in (100, 1000))
    assert at_1000["model"]["likelihood"] == "lower bound (IWAE, K=1000)"
    assert at_1000["metrics"]["test_nll"]["nats"] < at_100["metrics"]["test_nll"]["nats"]  # a tighter bound
    assert at_1000["metrics"]["sample_quality"] == {"skipped": "not asked for (evalgen eval --metric chose others)"}
    assert at_1000["origin"]["reevaluation"]["importance_samples"] == 1000


def _hash(*metrics: str) -> str:
    import hashlib

    return hashlib.sha256(" ".join(sorted(metrics)).encode()).hexdigest()[:8]


def test_a_leaderboard_shows_trained_scored_and_reevaluated_rows_each_labelled(runs, tmp_path):
    _invoke("eval", KEY, "--runs", str(runs), "--importance-samples", "100")
    _invoke("score", str(runs / "samples" / f"{KEY}.npz"), "--dataset", "digits", "--name", "vae-samples",
            "--budget", "smoke", "--out", str(runs))
    _invoke("leaderboard", str(runs), "--out", str(tmp_path / "board"))
    lines = (tmp_path / "board" / "leaderboard.md").read_text().splitlines()
    rows = {cells[1]: cells for cells in (line.split(" | ") for line in lines if line.startswith("| "))
            if len(cells) > 3}
    assert {"vae:vae", "vae:vae [evaluated again: K=100]", "samples:vae-samples [external samples]"} <= set(rows)
    assert rows["samples:vae-samples [external samples]"][2] == "n/a (samples only)"
    assert rows["vae:vae [evaluated again: K=100]"][2].startswith("≤ ")
    protocol = (tmp_path / "board" / "protocol.md").read_text()
    assert f"{KEY}--eval-K100" in protocol and "re-evaluated" in protocol and "external samples" in protocol
    assert f"evalgen eval {KEY} --importance-samples 100" in protocol


def test_a_budget_of_no_training_is_labelled_in_the_record_and_the_board(tmp_path):
    out = tmp_path / "runs"
    _invoke("run", "--plugin", "vae", "--model", "vae", "--dataset", "digits", "--budget", "none",
            "--no-baseline", "--device", "cpu", "--out", str(out))
    record = _record(out, "vae--vae--digits--none--seed0")
    assert record["origin"]["kind"] == record["training"]["stopped_by"] == "no training"
    assert record["training"]["steps"] == 0 and record["training"]["flops"] == 0
    _invoke("leaderboard", str(out), "--out", str(tmp_path / "board"))
    assert "vae:vae [no training]" in (tmp_path / "board" / "leaderboard.md").read_text()


def _replace_checkpoint(runs, blob) -> None:
    torch.save(blob, runs / "checkpoints" / f"{KEY}.pt")


def _checkpoint(runs) -> dict:
    return torch.load(runs / "checkpoints" / f"{KEY}.pt", weights_only=True)


class _Shell:
    def __reduce__(self):
        return (print, ("this ran",))


#: case -> (what spoils the run folder, the record to evaluate, more arguments, the error's fragments)
BAD = {
    "missing checkpoint": (lambda runs: (runs / "checkpoints" / f"{KEY}.pt").unlink(), KEY, [],
                           ["no checkpoint", f"{KEY}.pt"]),
    "another run's checkpoint": (lambda runs: _replace_checkpoint(runs, {**_checkpoint(runs), "spec": {
        **_checkpoint(runs)["spec"], "seed": 1}}), KEY, [], ["is the checkpoint of another run than"]),
    "a checkpoint that runs code": (lambda runs: _replace_checkpoint(runs, {"state_dict": {}, "spec": _Shell()}),
                                    KEY, [], ["is not a checkpoint evalgen can load safely"]),
    "weights that do not fit": (lambda runs: _replace_checkpoint(runs, {**_checkpoint(runs), "state_dict": {
        name: torch.zeros(3) for name in _checkpoint(runs)["state_dict"]}}), KEY, [],
        ["does not fit the model its spec builds"]),
    "unknown key": (lambda runs: None, "vae--vae--digits--smoke--seed7", [],
                    ["no record vae--vae--digits--smoke--seed7"]),
    "unknown metric": (lambda runs: None, KEY, ["--metric", "fid"], ["unknown metric 'fid'", "sample_quality"]),
    "K for an exact likelihood": (lambda runs: _run_flow(runs), "flows--maf--digits--smoke--seed0",
                                  ["--importance-samples", "10"], ["takes no importance samples"]),
    "an external samples record": (lambda runs: _score_zeros(runs), "samples--s--digits--smoke--seed0", [],
                                   ["holds external samples: there is no model to evaluate again"]),
    "a record whose origin was edited": (lambda runs: _edit_origin(runs), f"{KEY}--eval", [],
                                         ["its key", "is not the key of its spec"]),
    "a record asking for a huge number of draws": (lambda runs: _edit_budget(runs, sample_draws=10**9), KEY, [],
                                                   ["sample_draws=1000000000", "more than budget 'smoke' takes"]),
}


def _edit_budget(runs, **fields) -> None:
    path = runs / "records" / f"{KEY}.json"
    record = json.loads(path.read_text())
    record["training"]["budget"].update(fields)
    path.write_text(json.dumps(record))


def _run_flow(runs) -> None:
    _invoke("run", "--plugin", "flows", "--model", "maf", "--dataset", "digits", "--budget", "smoke",
            "--no-baseline", "--out", str(runs))


def _score_zeros(runs) -> None:
    np.save(runs / "s.npy", np.zeros((300, 1, 8, 8), np.uint8))
    _invoke("score", str(runs / "s.npy"), "--dataset", "digits", "--budget", "smoke", "--out", str(runs))


def _edit_origin(runs) -> None:
    _invoke("eval", KEY, "--runs", str(runs), "--metric", "test_nll")
    again = runs / "records" / f"{KEY}--eval-m{_hash('test_nll')}.json"
    record = json.loads(again.read_text())
    record["origin"]["reevaluation"]["metrics"] = None  # now claims to be every metric, re-evaluated
    (runs / "records" / f"{KEY}--eval.json").write_text(json.dumps(record))
    again.unlink()


@pytest.mark.parametrize("case", sorted(BAD))
def test_what_does_not_fit_is_one_line(runs, case, capfd):
    spoil, key, extra, fragments = BAD[case]
    spoil(runs)
    result = CliRunner().invoke(main, ["eval", key, "--runs", str(runs), *extra])
    assert_one_line_error(result, *fragments)
    assert "this ran" not in capfd.readouterr().out
