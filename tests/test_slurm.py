"""Sweeps on a real SLURM cluster: a single node on localhost started and stopped by the
``cluster`` fixture (tests/slurm_cluster.py). Under CI=true these tests must run: a missing
slurm-wlm or munge fails them instead of skipping (`.ci/run` installs both)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import toy_plugins
from conftest import TESTS_DIR
from test_sweep_local import records, sweep_file

from evalgen.testing.local_slurm import missing_daemons, start_cluster
from evalgen.testing.reproducibility import without_timings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = missing_daemons()
    if missing or os.geteuid() != 0:
        reason = (f"SLURM programs missing: {', '.join(missing)} (apt-get install slurm-wlm munge)" if missing
                  else "the test cluster's daemons run as root")
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the SLURM tests", pytrace=False)
        pytest.skip(reason)
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()


def evalgen(cluster, *args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalgen", *args], capture_output=True, text=True, timeout=timeout,
                          env={**cluster.env, "OMP_NUM_THREADS": "1", **(env or {})})


def test_a_sweep_as_a_job_array_gives_the_sequential_records(cluster, tmp_path):
    path = sweep_file(tmp_path)  # two runs, one task each; one at a time: the second waits its turn
    sequential = evalgen(cluster, "sweep", str(path), "--out", str(tmp_path / "sequential"))
    assert sequential.returncode == 0, sequential.stderr
    on_slurm = evalgen(cluster, "sweep", str(path), "--out", str(tmp_path / "slurm"), "--executor", "slurm",
                       "--array-parallelism", "1")
    assert on_slurm.returncode == 0, on_slurm.stderr + cluster.logs()
    assert "submitted 2 run(s) as SLURM job array" in on_slurm.stderr
    assert "1 running, 0 failed, 1 pending" in on_slurm.stderr and "2 running" not in on_slurm.stderr
    one, two = records(tmp_path / "sequential"), records(tmp_path / "slurm")
    assert len(two) == 2 and one.keys() == two.keys()
    for key in one:
        assert without_timings(one[key]) == without_timings(two[key]), key
        provenance = two[key]["provenance"]
        assert provenance["executor"] == "slurm" and provenance["slurm_job_id"].count("_") == 1


def _wait_for(predicate, timeout: float = 120, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def _running_state(out) -> dict | None:
    folder = out / ".sweep" / "state"
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if found.get("state") == "running":
            return found
    return None


def test_a_cancelled_job_is_reported_leaves_no_record_and_the_rerun_completes_it(cluster, tmp_path, install_plugin):
    site = install_plugin("sleepytoy", "toy_plugins:sleepy")  # 100 smoke steps of 0.2 s, while `hold` exists
    hold = tmp_path / "hold"
    hold.touch()
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(TESTS_DIR)]), toy_plugins.HOLD_ENV: str(hold)}
    path = sweep_file(tmp_path, 'budgets = ["smoke"]\nbaseline = false\ndevice = "cpu"\n'
                                '[[runs]]\nplugin = "sleepytoy"\ndatasets = ["digits"]\n')
    out = tmp_path / "out"
    submitted = evalgen(cluster, "sweep", str(path), "--out", str(out), "--executor", "slurm", "--detach", env=env)
    assert submitted.returncode == 0, submitted.stderr
    assert "detached; follow the sweep with --status" in submitted.stderr
    running = _wait_for(lambda: _running_state(out), every=0.2)
    status = evalgen(cluster, "sweep", str(path), "--out", str(out), "--status", env=env).stdout
    assert f"running      sleepytoy--toy--digits--smoke--seed0: SLURM job {running['job_id']} on " in status
    cluster.run("scancel", running["job_id"])
    _wait_for(lambda: "CANCELLED" in cluster.run("scontrol", "show", "job", "-o", running["job_id"]).stdout)
    status = evalgen(cluster, "sweep", str(path), "--out", str(out), "--status", env=env).stdout
    assert f"SLURM job {running['job_id']} ended CANCELLED" in status, status
    assert f"*** JOB {running['job_id']} ON" in status and "CANCELLED AT" in status  # the job's stderr tail
    assert not records(out)  # no partial record
    hold.unlink()  # the rerun's steps need not sleep
    rerun = evalgen(cluster, "sweep", str(path), "--out", str(out), "--executor", "slurm", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "submitted 1 run(s)" in rerun.stderr
    assert list(records(out)) == ["sleepytoy--toy--digits--smoke--seed0"]


def test_bad_submit_options_are_one_line(cluster, tmp_path):
    path = sweep_file(tmp_path)
    result = evalgen(cluster, "sweep", str(path), "--out", str(tmp_path / "out"), "--executor", "slurm",
                     "--partition", "nonexistent")
    assert result.returncode == 1
    assert "sbatch refused the sweep: invalid partition specified: nonexistent" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
