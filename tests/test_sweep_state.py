"""The sweep's state files are untrusted input: a planted or garbled file is ignored (the run is
then retried, never skipped) and no name read from one becomes a path or a command argument."""

from __future__ import annotations

import json
import os

import pytest

from evalgen.errors import EvalgenError
from evalgen.sweeps import slurm, state

KEY = "flows--maf--digits--smoke--seed0"


def _plant(out, folder, data, name=KEY):
    path = out / state.SWEEP_DIR / folder / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_a_state_round_trips(tmp_path):
    written = state.RunState.now("failed", "out of memory", attempt="123-abcd")
    state.write_state(tmp_path, KEY, written)
    assert state.read_state(tmp_path, KEY) == written
    state.write_job(tmp_path, KEY, state.JobRef("17_3", "2026-01-01T00:00:00+00:00"))
    assert state.read_job(tmp_path, KEY).job_id == "17_3"


@pytest.mark.parametrize("data", [
    "not json", "[]", {"state": "done"},
    {"state": "running", "host": "h", "pid": 1, "at": "t", "message": "", "job_id": None, "attempt": "../../etc"},
    {"state": "exploded", "host": "h", "pid": 1, "at": "t", "message": "", "job_id": None, "attempt": None},
    {"state": "running", "host": "h", "pid": "1", "at": "t", "message": "", "job_id": None, "attempt": None,
     "extra": 1},
])
def test_garbled_state_files_are_ignored(tmp_path, data):
    _plant(tmp_path, "state", data)
    assert state.read_state(tmp_path, KEY) is None


@pytest.mark.parametrize("job_id", ["1; scancel -u root", "../x", "", "12_3_4"])
def test_a_job_id_that_is_not_one_is_ignored(tmp_path, job_id):
    _plant(tmp_path, "jobs", {"job_id": job_id, "submitted_at": "t"})
    assert state.read_job(tmp_path, KEY) is None


def test_a_planted_link_is_not_followed(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("password\n")
    link = tmp_path / state.SWEEP_DIR / "state" / f"{KEY}.json"
    link.parent.mkdir(parents=True)
    os.symlink(secret, link)
    assert state.read_state(tmp_path, KEY) is None
    log = state.slurm_log(tmp_path, "5_1")
    log.parent.mkdir(parents=True)
    os.symlink(secret, log)
    assert state.tail(log) == []


def test_names_are_checked_before_they_become_paths(tmp_path):
    for bad in ("../escape", "a/b", ""):
        with pytest.raises(EvalgenError):
            state.log_path(tmp_path, bad, "1-ab")
        with pytest.raises(EvalgenError):
            state.log_path(tmp_path, KEY, bad)
    with pytest.raises(EvalgenError):
        state.slurm_log(tmp_path, "1/../../x")


def test_scontrol_lines_become_task_states():
    parse = slurm._task_ids
    assert parse("3") == ["3"] and parse("2-4%2") == ["2", "3", "4"] and parse("0,2-3") == ["0", "2", "3"]
    fields = slurm._parse_fields("JobId=9 ArrayJobId=8 ArrayTaskId=1 JobState=CANCELLED Reason=None ExitCode=0:15")
    assert fields["JobState"] == "CANCELLED" and fields["ArrayTaskId"] == "1"


class _FinishedProcess:
    """Stands in for a worker process that has already exited with status 0."""

    def __init__(self, argv, stdout, stderr, stdin, env):
        self.argv, self.env, self.returncode = argv, env, 0
        stdout.write(b"done\n")

    def poll(self):
        return self.returncode


def test_local_jobs_get_one_gpu_each_and_a_share_of_the_cores(tmp_path, monkeypatch):
    """With several GPUs each job sees one (CUDA_VISIBLE_DEVICES) and runs on "cuda"; the cores
    are divided among the jobs (OMP_NUM_THREADS and the task's torch threads)."""
    from evalgen.runspec import RunSpec
    from evalgen.sweeps import local
    from evalgen.sweeps.driver import SweepTarget
    from evalgen.sweeps.execution import Execution
    from evalgen.sweeps.progress import Progress
    from evalgen.sweeps.worker import RunTask

    started = []
    monkeypatch.setattr(local, "_gpu_count", lambda device: 2)
    monkeypatch.setattr(local.subprocess, "Popen", lambda *a, **k: started.append(_FinishedProcess(*a, **k))
                        or started[-1])
    monkeypatch.setattr("evalgen.sweeps.execution.available_cpus", lambda: 8)
    specs = [RunSpec("flows", "maf", "digits", "smoke", seed) for seed in range(3)]
    execution = Execution(jobs=2)
    target = SweepTarget(tmp_path, "auto", None)
    outcome = local.run_local_jobs(specs, target, execution, print, Progress(3, print))
    assert [s.seed for s in outcome.done] == [0, 1, 2] and not outcome.failures
    assert {p.env["CUDA_VISIBLE_DEVICES"] for p in started[:2]} == {"0", "1"}
    assert all(p.env["OMP_NUM_THREADS"] == "4" for p in started)
    tasks = [RunTask.from_json(p.argv[-1]) for p in started]
    assert all(t.device == "cuda" and t.threads == 4 and t.executor == "local (2 jobs)" for t in tasks)
