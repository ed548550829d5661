"""``--jobs N``: N runs at once on this machine, each in a fresh process (so CUDA and RNG state
never leak between runs), with the machine's processors divided among them and, with several
GPUs, one GPU per job (``CUDA_VISIBLE_DEVICES``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalgen.errors import EvalgenError
from evalgen.runspec import RunSpec
from evalgen.sweeps import state
from evalgen.sweeps.execution import Execution
from evalgen.sweeps.progress import Progress
from evalgen.sweeps.worker import EXIT_FAILED, RunTask

__all__ = ["LocalOutcome", "run_local_jobs"]

#: How often the pool looks for finished jobs (s).
POLL_SECONDS = 0.2


@dataclass
class LocalOutcome:
    done: list[RunSpec] = field(default_factory=list)
    failures: list[tuple[RunSpec, str]] = field(default_factory=list)


@dataclass
class _Job:
    spec: RunSpec
    process: subprocess.Popen
    gpu: int | None
    attempt: str


def _gpu_count(device: str) -> int:
    """GPUs to hand out one per job: none unless the runs go to CUDA on a multi-GPU machine."""
    if device not in ("auto", "cuda"):
        return 0  # "cpu", or a GPU the user named ("cuda:1"): every job uses it as given
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _failure_reason(job: _Job, out_dir: Path) -> str:
    code = job.process.returncode
    where = state.log_path(out_dir, job.spec.key, job.attempt)
    lines = state.tail(where, 1)
    last = lines[-1] if lines else ""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"the job was killed by {name} (no record was written; rerun to train it)"
    if code == EXIT_FAILED and last.startswith("failed: "):
        return last[len("failed: "):]
    return f"the job exited with status {code}: {last or 'no output'} (log: {where})"


def _start(spec: RunSpec, task: RunTask, gpu: int | None, out_dir: Path) -> _Job:
    env = {**os.environ, "OMP_NUM_THREADS": str(task.threads), "MKL_NUM_THREADS": str(task.threads)}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    log = state.log_path(out_dir, spec.key, task.attempt)
    log.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)  # new files, never a planted link
    with open(os.open(log, flags, 0o644), "wb") as stderr, \
            open(os.open(log.with_suffix(".out"), flags, 0o644), "wb") as stdout:
        process = subprocess.Popen([sys.executable, "-m", "evalgen.sweeps.worker", task.to_json()],
                                   stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env)
    return _Job(spec, process, gpu, task.attempt)


def _stop_all(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.process.poll() is None:
            job.process.terminate()
    for job in jobs:
        try:
            job.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            job.process.kill()
            job.process.wait()


def run_local_jobs(specs: Sequence[RunSpec], target: Any, execution: Execution, report: Callable[[str], None],
                   progress: Progress) -> LocalOutcome:
    """Run ``specs`` ``execution.jobs`` at a time into ``target`` (a `SweepTarget`); a failing
    run is reported and the others go on. Interrupted (Ctrl-C), the running jobs are stopped:
    they leave no record."""
    out_dir, device = target.out_dir, target.device
    gpus = _gpu_count(device)
    threads = execution.threads_per_job()
    free_gpus = list(range(gpus))
    pending, running, outcome = list(specs), [], LocalOutcome()
    try:
        while pending or running:
            while pending and len(running) < execution.jobs:
                spec = pending.pop(0)
                gpu = free_gpus.pop(0) if free_gpus else None
                task = RunTask(spec, str(out_dir), "cuda" if gpu is not None else device,
                               None if target.data_dir is None else str(target.data_dir),
                               f"local ({execution.jobs} jobs)", threads, target.rerun, state.new_attempt(),
                               target.save_samples, target.trace)
                running.append(_start(spec, task, gpu, out_dir))
                progress.started(spec.key, f"GPU {gpu}" if gpu is not None else f"{threads} threads")
            time.sleep(POLL_SECONDS)
            for job in [j for j in running if j.process.poll() is not None]:
                running.remove(job)
                if job.gpu is not None:
                    free_gpus.append(job.gpu)
                _finish(job, out_dir, outcome, progress)
    except BaseException:
        _stop_all(running)
        raise
    return outcome


def _finish(job: _Job, out_dir: Path, outcome: LocalOutcome, progress: Progress) -> None:
    if job.process.returncode == 0:
        lines = state.tail(state.log_path(out_dir, job.spec.key, job.attempt, ".out"), 1)
        outcome.done.append(job.spec)
        progress.finished(lines[-1] if lines else f"done {job.spec.key}")
        return
    reason = _failure_reason(job, out_dir)
    if job.process.returncode != EXIT_FAILED:  # the worker could not say it failed: say it for it
        try:
            state.write_state(out_dir, job.spec.key, state.RunState("failed", *_here(), reason, None, job.attempt))
        except EvalgenError:
            pass
    outcome.failures.append((job.spec, reason))
    progress.failure(job.spec.key, reason)


def _here() -> tuple[str, int, str]:
    now = state.RunState.now("failed")
    return now.host, now.pid, now.at
