"""Run a planned sweep on its executor and say where every run stands.

Runs are the unit of work: each is one spec that writes one record, so a sweep resumes by
running what has no record, and two drivers on one folder share the work through the runs'
locks. Every executor ends in the same `SweepResult` (the records read back from disk).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evalgen.errors import EvalgenError
from evalgen.harness.runner import RunContext, SweepResult, resolve_device, reusable_record, run_sweep
from evalgen.plugins import Plugins
from evalgen.records import find_record
from evalgen.runspec import RunSpec
from evalgen.sweeps import slurm, state
from evalgen.sweeps.execution import Execution
from evalgen.sweeps.local import run_local_jobs
from evalgen.sweeps.progress import Progress

__all__ = ["RunStatus", "SweepTarget", "execute_sweep", "sweep_status"]

#: How often a driver waiting on SLURM looks at the records and the queue (s).
SLURM_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class SweepTarget:
    """Where a sweep's runs read data from and write to, and on which device."""

    out_dir: Path
    device: str
    data_dir: Path | None
    rerun: bool = False
    save_samples: bool = False  #: also write samples/<key>.npz
    trace: str = "light"  #: ``--trace``: off, light or full (`evalgen.harness.tracing`)


@dataclass(frozen=True)
class RunStatus:
    """One run's place in a sweep: done, running, pending, failed or not started."""

    spec: RunSpec
    status: str
    detail: str = ""
    log_tail: tuple[str, ...] = ()


def _load_context(target: SweepTarget):
    from evalgen.datasets.files import load_context_from_env

    return load_context_from_env(target.data_dir)


def _records(specs: Sequence[RunSpec], target: SweepTarget, result: SweepResult) -> SweepResult:
    failed = {spec.key for spec, _ in result.failures}
    for spec in specs:
        if spec.key not in failed and (record := find_record(target.out_dir, spec.key)) is not None:
            result.records.append(record)
    return result


def execute_sweep(specs: Sequence[RunSpec], target: SweepTarget, execution: Execution, plugins: Plugins,
                  report: Callable[[str], None]) -> SweepResult:
    """Run every spec on ``execution``'s executor; the finished records and the failures."""
    if execution.executor == "local" and execution.jobs == 1:
        ctx = RunContext(plugins=plugins, out_dir=target.out_dir, device=resolve_device(target.device),
                         load_context=_load_context(target), rerun=target.rerun, save_samples=target.save_samples,
                         trace=target.trace)
        return run_sweep(specs, ctx, report=report)
    resolve_device(target.device)  # a bad --device fails here, not in every job
    progress = Progress(len(specs), report)
    todo = []
    for spec in specs:
        if not target.rerun and reusable_record(spec, target.out_dir, report) is not None:
            progress.finished(f"reusing {spec.key} (finished earlier; --rerun to train again)", was_running=False)
        else:
            todo.append(spec)
    result = SweepResult()
    if execution.executor == "local":
        outcome = run_local_jobs(todo, target, execution, report, progress)
        result.failures.extend(outcome.failures)
    elif todo:
        result.failures.extend(_run_on_slurm(todo, target, execution, progress))
    return _records(specs, target, result)


def _run_on_slurm(specs: Sequence[RunSpec], target: SweepTarget, execution: Execution,
                  progress: Progress) -> list[tuple[RunSpec, str]]:
    queued = {s.key for s in sweep_status(specs, target.out_dir) if s.status in ("running", "pending")}
    fresh = [spec for spec in specs if spec.key not in queued]
    for spec in specs:
        if spec.key in queued:
            progress.say(f"{spec.key} is already queued as SLURM job {state.read_job(target.out_dir, spec.key).job_id}")
    ids = slurm.submit_array(fresh, target, execution.slurm)
    if ids:
        progress.say(f"submitted {len(ids)} run(s) as SLURM job array {ids[0].split('_')[0]}")
    if execution.detach:
        progress.report(f"detached; follow the sweep with --status (records go to {target.out_dir})")
        return []
    return _wait(specs, target, progress)


def _wait(specs: Sequence[RunSpec], target: SweepTarget, progress: Progress) -> list[tuple[RunSpec, str]]:
    """Follow the submitted runs until each has a record or its job ended without one."""
    open_keys, failures, seen_running = {s.key: s for s in specs}, [], set()
    while open_keys:
        time.sleep(SLURM_POLL_SECONDS)
        for status in sweep_status(list(open_keys.values()), target.out_dir):
            key = status.spec.key
            if status.status == "running" and key not in seen_running:
                seen_running.add(key)
                progress.started(key, status.detail)
            elif status.status == "done":
                progress.finished(f"done {key}", was_running=key in seen_running)
                del open_keys[key]
            elif status.status == "failed":
                progress.failure(key, status.detail, was_running=key in seen_running)
                failures.append((status.spec, status.detail))
                del open_keys[key]
    return failures


def sweep_status(specs: Sequence[RunSpec], out_dir: Path) -> list[RunStatus]:
    """Where each run stands, from its record, its SLURM job (if any) and its own state file."""
    jobs = {spec.key: state.read_job(out_dir, spec.key) for spec in specs}
    queue = slurm.job_statuses([job.job_id for job in jobs.values() if job is not None]) if any(jobs.values()) else {}
    return [_status(spec, out_dir, jobs[spec.key], queue) for spec in specs]


def _status(spec: RunSpec, out_dir: Path, job: state.JobRef | None,
            queue: dict[str, slurm.JobStatus]) -> RunStatus:
    try:
        if find_record(out_dir, spec.key) is not None:
            return RunStatus(spec, "done")
    except EvalgenError as exc:
        return RunStatus(spec, "failed", f"its record is unusable: {exc}")
    run_state = state.read_state(out_dir, spec.key)
    if job is not None:
        log = tuple(state.failure_log(out_dir, spec.key, run_state, job))
        return _slurm_status(spec, job, queue.get(job.job_id), run_state, log)
    if run_state is None:
        return RunStatus(spec, "not started")
    if run_state.state == "failed":
        log = tuple(state.failure_log(out_dir, spec.key, run_state, None))
        return RunStatus(spec, "failed", run_state.message, log)
    alive = run_state.process_alive_here()
    if alive is False:
        return RunStatus(spec, "failed", f"its process ({run_state.pid} on {run_state.host}) ended without a record",
                         tuple(state.failure_log(out_dir, spec.key, run_state, None)))
    return RunStatus(spec, "running", f"pid {run_state.pid} on {run_state.host}")


def _slurm_status(spec: RunSpec, job: state.JobRef, queued: slurm.JobStatus | None,
                  run_state: state.RunState | None, log: tuple[str, ...]) -> RunStatus:
    if queued is not None and queued.active:
        if queued.state == "RUNNING" and run_state is not None:
            return RunStatus(spec, "running", f"SLURM job {job.job_id} on {run_state.host}")
        if queued.state == "RUNNING":
            return RunStatus(spec, "running", f"SLURM job {job.job_id}")
        return RunStatus(spec, "pending", f"SLURM job {job.job_id}: {queued.state} ({queued.reason or 'no reason'})")
    if run_state is not None and run_state.state == "failed":
        return RunStatus(spec, "failed", f"{run_state.message} (SLURM job {job.job_id})", log)
    if queued is None:
        return RunStatus(spec, "failed", f"SLURM job {job.job_id} ended without a record and SLURM no longer "
                                         f"knows it; rerun the sweep to run it again", log)
    reason = f", reason {queued.reason}" if queued.reason and queued.reason != "None" else ""
    return RunStatus(spec, "failed", f"SLURM job {job.job_id} ended {queued.state}{reason} without a record; "
                                     f"rerun the sweep to run it again", log)
