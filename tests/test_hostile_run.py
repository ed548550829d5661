"""`evalgen run` against hostile or broken inputs: reused records, names, the output folder, the
data folder, devices, two runs at once, a full disk, and what a killed run left behind.

Each finding of the hardening review is reproduced here and shows the fixed behaviour: one
`Error:` line (or one reported line while the sweep goes on) that names the file and the fix,
nothing written outside ``--out``, no finished result lost.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import filelock
import pandas
import pytest
import toy_plugins
from click.testing import CliRunner
from toy_plugins import assert_one_line_error

from evalgen.cli import main
from evalgen.errors import EvalgenError
from evalgen.plugins import load_plugins
from evalgen.records import read_record
from evalgen.registry import Registry

TESTS_DIR = Path(__file__).resolve().parent
KEY = "baselines--categorical--digits--unit--seed{}"


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders), to compare before and after."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


@pytest.fixture
def unit_budget(install_plugin):
    return install_plugin("unitbudget", "toy_plugins:unit_budget")


@pytest.fixture(scope="module")
def pristine_two_seeds(tmp_path_factory):
    """Two finished baseline records, made once per module; tests work on copies."""
    import torch

    from evalgen.datasets.base import LoadContext
    from evalgen.harness.runner import RunContext, run_sweep
    from evalgen.harness.spec import RunSpec

    out = tmp_path_factory.mktemp("pristine") / "out"
    plugins = load_plugins(extra=[("unit", toy_plugins.UnitBudget())])
    ctx = RunContext(plugins, out, torch.device("cpu"), LoadContext(out / "nodata", False))
    specs = [RunSpec("baselines", "categorical", "digits", "unit", seed) for seed in range(2)]
    assert not run_sweep(specs, ctx, report=lambda line: None).failures
    return out


@pytest.fixture
def two_seeds(tmp_path, unit_budget, pristine_two_seeds):
    """An output folder with two finished baseline records (a private copy)."""
    out = tmp_path / "out"
    shutil.copytree(pristine_two_seeds, out)
    return out


def _record(out: Path, seed: int) -> Path:
    return out / "records" / f"{KEY.format(seed)}.json"


def _edited(path: Path, edit) -> bytes:
    record = json.loads(path.read_text())
    edit(record)
    return json.dumps(record).encode()


CORRUPTIONS = {
    "truncated": lambda out: _record(out, 0).read_bytes()[:200],
    "not json": lambda out: b"\x00\xff garbage",
    "wrong shape": lambda out: json.dumps({"schema": "evalgen.run-record/1", "key": KEY.format(0)}).encode(),
    "another run's record": lambda out: _record(out, 1).read_bytes(),
    "NaN": lambda out: _record(out, 0).read_bytes().replace(b'"nats": ', b'"nats": NaN, "x": ', 1),
    "-Infinity bits/dim": lambda out: _edited(_record(out, 0), lambda r: r["metrics"]["test_nll"].update(
        bits_per_dim="-Infinity")).replace(b'"-Infinity"', b"-Infinity"),
    "overflowing number": lambda out: _edited(_record(out, 0), lambda r: r["metrics"]["test_nll"].update(
        nats=1.5)).replace(b"1.5", b"1e999"),
    "edited bits/dim": lambda out: _edited(_record(out, 0), lambda r: r["metrics"]["test_nll"].update(
        bits_per_dim=0.001)),
    "key edited": lambda out: _edited(_record(out, 0), lambda r: r.update(key=KEY.format(7))),
    "spec edited": lambda out: _edited(_record(out, 0), lambda r: r["spec"].update(model="gaussian")),
    "path in a name": lambda out: _edited(_record(out, 0), lambda r: r["spec"].update(plugin="../../x")),
    "duplicate key": lambda out: _record(out, 0).read_bytes().replace(b'{', b'{"status": "ok", ', 1),
    "deep nesting": lambda out: b"[" * 100_000 + b"]" * 100_000,
    "a link to another file": lambda out: None,  # see the test
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_bad_record_is_reported_moved_aside_and_retrained_while_the_sweep_goes_on(two_seeds, corruption):
    out = two_seeds
    bad = CORRUPTIONS[corruption](out)
    if bad is None:  # a record that is a link to a file elsewhere (here: a valid record)
        elsewhere = out.parent / "elsewhere.json"
        elsewhere.write_bytes(_record(out, 0).read_bytes())
        _record(out, 0).unlink()
        _record(out, 0).symlink_to(elsewhere)
        bad = elsewhere.read_bytes()
    else:
        _record(out, 0).write_bytes(bad)
    seed1 = _record(out, 1).read_bytes()
    seeds = 3 if corruption == "truncated" else 2  # once is enough to show later specs still train
    result = invoke("run", "--plugin", "baselines", "--budget", "unit", "--seeds", str(seeds), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("ignoring")]
    assert str(_record(out, 0)) in line and "training" in line and "moved to" in line
    assert (out / "records" / f"{KEY.format(0)}.json.invalid").read_bytes() == bad  # kept, not deleted
    assert read_record(_record(out, 0)).key == KEY.format(0)  # retrained
    assert _record(out, 1).read_bytes() == seed1  # reused untouched
    assert f"reusing {KEY.format(1)}" in result.output
    if seeds == 3:
        assert read_record(_record(out, 2)).spec.seed == 2  # the rest of the sweep went on


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_records_with_non_finite_numbers_are_refused_naming_the_file(two_seeds, text):
    path = _record(two_seeds, 0)
    record = json.loads(path.read_text())
    record["metrics"]["test_nll"]["nats"] = 12345.5
    path.write_text(json.dumps(record).replace("12345.5", text))
    with pytest.raises(EvalgenError, match="not valid JSON") as error:
        read_record(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_renamed_record_is_refused(two_seeds):
    target = two_seeds / "records" / f"{KEY.format(5)}.json"
    target.write_bytes(_record(two_seeds, 0).read_bytes())
    with pytest.raises(EvalgenError, match="file name does not match"):
        read_record(target)


def test_files_get_the_mode_of_the_umask(tmp_path, unit_budget):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert invoke("run", "--plugin", "baselines", "--budget", "unit", "--out", str(out)).exit_code == 0
        board = tmp_path / "board"
        assert invoke("leaderboard", str(out), "--out", str(board)).exit_code == 0
        os.umask(0o027)
        assert invoke("run", "--plugin", "baselines", "--budget", "unit", "--out", str(out), "--rerun").exit_code == 0
    finally:
        os.umask(old)
    files = [p for p in (*out.rglob("*"), *board.rglob("*")) if p.is_file() and ".locks" not in p.parts]
    assert {p.relative_to(tmp_path).parts[0] for p in files} == {"out", "board"}
    modes = {str(p.relative_to(tmp_path)): p.stat().st_mode & 0o777 for p in files}
    rewritten = {"out/table.md", "out/table.csv", f"out/records/{KEY.format(0)}.json",
                 f"out/checkpoints/{KEY.format(0)}.pt", f"out/checkpoints/{KEY.format(0)}.background.pt",
                 f"out/samples/{KEY.format(0)}.png"}
    assert {name for name in rewritten if modes[name] == 0o640} == rewritten, modes
    assert all(mode == 0o644 for name, mode in modes.items() if name not in rewritten), modes


def test_names_that_could_reach_a_path_are_refused_by_the_registries():
    registry = Registry("dataset")
    for name in ("../x", "a/b", "..", ".hidden", "a--b", "a b", "<script>", "x\n", "", "é", "a" * 65):
        with pytest.raises(EvalgenError, match="not allowed"):
            registry.register(toy_plugins.Budget(name, "", None, 1, None, 1, 1, 1, 1, 1))
    registry.register(toy_plugins.Budget("wgan-gp.v2_a", "", None, 1, None, 1, 1, 1, 1, 1))


def test_a_family_with_an_unsafe_name_is_reported_and_the_others_load():
    evil = toy_plugins.ToyFamily("../../evil")
    plugins = load_plugins(extra=[("evil", evil), ("good", toy_plugins.good)])
    (failure,) = [f for f in plugins.failures if f.name == "evil"]
    assert "not allowed" in failure.error
    assert "toygood" in plugins.families and "../../evil" not in plugins.families


@pytest.mark.parametrize("device,fragment", [
    ("meta", "device 'meta' is not supported"),
    ("mps", "device 'mps' is not supported"),
    ("xla", "not supported"),
    ("nonsense", "unknown device 'nonsense'"),
    ("cuda:7", "cuda"),
])
def test_unsupported_devices_get_one_line(tmp_path, device, fragment):
    result = invoke("run", "--plugin", "baselines", "--device", device, "--out", str(tmp_path / "out"))
    assert_one_line_error(result, fragment, "use ")
    assert not (tmp_path / "out").exists()


def test_an_empty_out_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("run", "--plugin", "baselines", "--out", ""), "--out is empty")
    assert_one_line_error(invoke("run", "--plugin", "baselines", "--data-dir", " "), "--data-dir is empty")
    assert list(tmp_path.iterdir()) == []


def test_an_unsearchable_data_folder_is_one_line(tmp_path, monkeypatch, data_copy):
    """chmod 000 MNIST/raw: as root permissions are not enforced, so the OS error is injected."""
    raw = data_copy / "MNIST" / "raw"
    real_is_file = pathlib.Path.is_file

    def is_file(self):
        if self.parent == raw:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(pathlib.Path, "is_file", is_file)
    monkeypatch.setenv("EVALGEN_DATA_DIR", str(data_copy))
    result = invoke("run", "--plugin", "flows", "--dataset", "mnist", "--budget", "smoke",
                    "--out", str(tmp_path / "out"))
    assert_one_line_error(result, f"cannot look into {raw}", "Permission denied", "make it readable")


def _refuse(monkeypatch, name: str, error: int, where: str) -> None:
    """Make ``os.<name>`` fail with ``error`` for paths containing ``where`` (or for every call
    when the function takes a file descriptor): a read-only folder or a full disk, as root."""
    real = getattr(os, name)

    def refused(target, *args, **kwargs):
        if isinstance(target, int) or where in str(target):
            raise OSError(error, os.strerror(error), None if isinstance(target, int) else str(target))
        return real(target, *args, **kwargs)

    monkeypatch.setattr(os, name, refused)


def test_a_read_only_checkpoints_folder_is_one_line_before_training(tmp_path, unit_budget, monkeypatch):
    out = tmp_path / "out"
    _refuse(monkeypatch, "open", errno.EACCES, str(out / "checkpoints"))
    result = invoke("run", "--plugin", "baselines", "--budget", "unit", "--out", str(out))
    assert_one_line_error(result, f"cannot write results to {out / 'checkpoints'}", "Permission denied",
                          "make it writable or choose another --out")
    assert not list((out / "records").iterdir())


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, unit_budget, monkeypatch):
    out = tmp_path / "out"
    _refuse(monkeypatch, "fsync", errno.ENOSPC, "")
    result = invoke("run", "--plugin", "baselines", "--budget", "unit", "--out", str(out))
    assert_one_line_error(result, "No space left on device", "free some space")
    assert [p for p in out.rglob("*") if p.is_file() and ".locks" not in p.parts] == []


def test_a_checkpoint_folder_that_is_a_symlink_is_refused(tmp_path, unit_budget):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "checkpoints").symlink_to(elsewhere)
    result = invoke("run", "--plugin", "baselines", "--budget", "unit", "--out", str(out))
    assert_one_line_error(result, f"{out / 'checkpoints'} is a symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_temporaries_of_killed_runs_are_removed_and_nothing_else(tmp_path, unit_budget):
    out = tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    planted = {}
    for folder in ("", "records", "checkpoints", "samples"):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for who, pid in (("dead", dead.pid), ("live", os.getpid())):
            path = out / folder / f".x.json.evalgen-{host}-{pid}-0123456789abcdef.tmp"
            path.write_bytes(b"half")
            planted[path] = who
        user = out / folder / ".notes.tmp"
        user.write_bytes(b"mine")
        planted[user] = "user"
    result = invoke("run", "--plugin", "baselines", "--budget", "unit", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert {p for p, who in planted.items() if not p.exists()} == {p for p, who in planted.items() if who == "dead"}


def test_a_spec_locked_by_another_run_is_waited_for(tmp_path, unit_budget):
    from evalgen.harness.runner import LOCKS_DIR

    out = tmp_path / "out"
    lock = filelock.FileLock(out / LOCKS_DIR / f"{KEY.format(0)}.lock")
    lock.acquire()
    lines: list[str] = []
    result = {}

    def run():
        result["cli"] = CliRunner().invoke(main, ["run", "--plugin", "baselines", "--budget", "unit",
                                                  "--out", str(out)])

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not (out / "records").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    assert thread.is_alive() and not _record(out, 0).exists()  # waiting, not training
    lock.release()
    thread.join(120)
    lines = result["cli"].output.splitlines()
    assert result["cli"].exit_code == 0, result["cli"].output
    assert any(line.startswith(f"waiting for {KEY.format(0)}: another evalgen run") for line in lines)
    assert _record(out, 0).exists()


def test_a_planted_lock_link_is_refused_and_its_target_untouched(two_seeds, tmp_path):
    from evalgen.harness.runner import LOCKS_DIR

    target = tmp_path / "precious"
    target.write_text("keep me")
    lock = two_seeds / LOCKS_DIR / f"{KEY.format(0)}.lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(target)
    result = invoke("run", "--plugin", "baselines", "--budget", "unit", "--seeds", "2", "--out", str(two_seeds))
    assert_one_line_error(result, f"{lock} is a symbolic link", "delete it")
    assert f"reusing {KEY.format(1)}" in result.output  # the rest of the sweep went on
    assert target.read_text() == "keep me"


@pytest.mark.long  # 40-60 s (a background model doubles its training): CI runs it after the suite (.ci/run)
def test_two_runs_on_one_out_train_each_spec_once(tmp_path, install_plugin):
    site = install_plugin("slowtoy", "toy_plugins:slow")
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TESTS_DIR)]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "evalgen", "run", "--plugin", "slowtoy", "--budget", "unit",
               "--seeds", "2", "--no-baseline", "--out", str(out)]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    logs = "\n".join(err for _, err in outputs)
    done = [line for line in logs.splitlines() if line.startswith("done slowtoy:toy")]
    assert len(done) == 2, logs  # each seed trained by exactly one of the two runs
    assert logs.count("reusing slowtoy--toy") == 2, logs  # ... and reused by the other
    (row,) = pandas.read_csv(out / "table.csv").itertuples()
    assert (row.model, row.seeds) == ("toy", 2)  # the table of the command that ended last: both seeds


class _Planted:
    """A pickle that would create ``marker`` when unpickled by an unsafe loader."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("content", ["planted pickle", "truncated", "garbage", "not a dict"])
def test_a_hostile_checkpoint_is_refused_in_one_line_and_runs_no_code(two_seeds, tmp_path, content):
    import pickle

    import torch

    from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint

    path = checkpoint_path(two_seeds, KEY.format(0))
    marker = tmp_path / "pwned"
    payloads = {"planted pickle": pickle.dumps({"state_dict": _Planted(marker), "spec": {}}, protocol=2),
                "truncated": path.read_bytes()[:100], "garbage": b"\x00" * 64}
    if content == "not a dict":
        torch.save([1, 2], path)
    else:
        path.write_bytes(payloads[content])
    with pytest.raises(EvalgenError) as error:
        read_checkpoint(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert not marker.exists()


def test_leaderboard_out_that_cannot_be_written_is_one_line(two_seeds, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_one_line_error(invoke("leaderboard", str(two_seeds), "--out", str(blocker / "board")),
                          str(blocker / "board"), "not a folder")
    assert_one_line_error(invoke("leaderboard", str(two_seeds), "--out", ""), "--out is empty")
    assert_one_line_error(invoke("leaderboard", "", "--out", str(tmp_path / "b")), "is empty")
    _refuse(monkeypatch, "open", errno.EROFS, str(tmp_path / "ro"))
    assert_one_line_error(invoke("leaderboard", str(two_seeds), "--out", str(tmp_path / "ro")),
                          f"cannot write {tmp_path / 'ro'}", "Read-only file system", "make it writable")
    assert blocker.read_text() == "not a folder"


def test_warnings_are_one_line_at_the_terminal():
    """A rebuilt cache entry or an unreliable FID is said in one line, not message + source line."""
    import warnings

    from evalgen import cli

    lines = []
    runner = CliRunner()
    with warnings.catch_warnings():
        result = runner.invoke(main, ["plugins"])
        assert result.exit_code == 0
        assert warnings.showwarning is cli._one_line_warning
        original_echo = cli.click.echo
        cli.click.echo = lambda text, err=False: lines.append(text)
        try:
            warnings.warn("cache entry /x failed its check\n(detail): rebuilt it", UserWarning, stacklevel=1)
        finally:
            cli.click.echo = original_echo
    assert lines == ["warning: cache entry /x failed its check (detail): rebuilt it"]
