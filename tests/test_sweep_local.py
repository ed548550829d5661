"""Sweeps on this machine: ``--jobs`` runs in fresh processes give the records a sequential run
gives; a killed job leaves no record and the rerun completes it; two sweeps on one folder train
each run once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalgen.plugins import load_plugins
from evalgen.sweeps.driver import sweep_status
from evalgen.sweeps.sweepfile import plan_sweep, read_sweep_file
from evalgen.testing.reproducibility import without_timings

pytestmark = pytest.mark.slow

#: Two of the cheapest smoke runs, of two families (no baseline row: the categorical baseline is
#: one of the two); the SLURM tests run them as a job array.
SWEEP = """
budgets = ["smoke"]
seeds = 1
baseline = false
device = "cpu"

[[runs]]
plugin = "baselines"
models = ["categorical"]
datasets = ["digits"]

[[runs]]
plugin = "flows"
models = ["maf"]
datasets = ["digits"]
"""


def sweep_file(folder: Path, text: str = SWEEP) -> Path:
    path = folder / "sweep.toml"
    path.write_text(text)
    return path


def evalgen(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalgen", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))}


@pytest.mark.long  # 40-60 s (a background model doubles its training): CI runs it after the suite (.ci/run)
def test_two_sweeps_with_jobs_at_once_train_each_run_once_and_give_the_sequential_records(tmp_path):
    path = sweep_file(tmp_path)
    sequential = evalgen("sweep", str(path), "--out", str(tmp_path / "sequential"))
    assert sequential.returncode == 0, sequential.stderr
    out = tmp_path / "parallel"
    command = [sys.executable, "-m", "evalgen", "sweep", str(path), "--out", str(out), "--jobs", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first, second = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                     for _ in range(2))
    outputs = [p.communicate(timeout=300)[1] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert all("[2/2 done, 0 running, 0 failed, 0 pending" in text for text in outputs), outputs
    trained = sum("] done " in line for text in outputs for line in text.splitlines())
    assert trained == 2, outputs  # each run once; the other sweep reused its record
    one, two = records(tmp_path / "sequential"), records(out)
    assert len(one) == 2 and one.keys() == two.keys()
    for key in one:
        assert without_timings(one[key]) == without_timings(two[key]), key
        assert one[key]["provenance"]["executor"] == "local"
        assert two[key]["provenance"]["executor"] == "local (2 jobs)"
        assert two[key]["provenance"]["host"]
    assert (out / "table.md").is_file()  # the table is written as after `evalgen run`


def _wait_for_running_worker(out: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (out / ".sweep" / "state").glob("*.json") if (out / ".sweep" / "state").is_dir() else []:
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if state["state"] == "running":
                return {"key": path.stem, **state}
        time.sleep(0.1)
    raise AssertionError("no job started")


@pytest.mark.long  # 40-60 s (a background model doubles its training): CI runs it after the suite (.ci/run)
def test_a_killed_job_leaves_no_record_and_the_rerun_completes_it(tmp_path):
    path = sweep_file(tmp_path)
    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-m", "evalgen", "sweep", str(path), "--out", str(out), "--jobs", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    victim = _wait_for_running_worker(out)
    os.kill(victim["pid"], signal.SIGKILL)
    _, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 1
    assert f"failed {victim['key']}: the job was killed by SIGKILL" in stderr
    assert "Traceback" not in stderr
    assert victim["key"] not in records(out)  # no partial record
    assert len(records(out)) == 1  # the other run finished and was kept
    statuses = {s.spec.key: s for s in sweep_status(plan_sweep(read_sweep_file(path), load_plugins()), out)}
    assert statuses[victim["key"]].status == "failed"
    assert "killed by SIGKILL" in statuses[victim["key"]].detail
    rerun = evalgen("sweep", str(path), "--out", str(out), "--jobs", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert "reusing" in rerun.stderr and len(records(out)) == 2
