"""``--executor slurm``: the runs of a sweep as one SLURM job array, submitted through submitit.

Each array task runs one spec (`evalgen.sweeps.worker.SlurmRun`) and writes its record on the
shared filesystem, atomically and under the run's lock. The queue is read with ``squeue`` and
``scontrol`` (not ``sacct``: clusters without accounting storage have no sacct), and a run is
done only when its record exists.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalgen.errors import EvalgenError
from evalgen.runspec import RunSpec
from evalgen.sweeps import state
from evalgen.sweeps.execution import SlurmOptions
from evalgen.sweeps.worker import RunTask, SlurmRun

__all__ = ["ACTIVE_STATES", "JobStatus", "job_statuses", "submit_array"]

#: SLURM states of a task that may still write its record.
ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
                           "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING"})
_QUERY_TIMEOUT = 30


@dataclass(frozen=True)
class JobStatus:
    """What SLURM says of one array task: its state and reason (e.g. CANCELLED, None)."""

    state: str
    reason: str = ""
    exit_code: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def _slurm_command(args: list[str]) -> str:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=_QUERY_TIMEOUT)
    except FileNotFoundError:
        raise EvalgenError(f"'{args[0]}' was not found: the SLURM client commands must be on PATH "
                           f"(or use --executor local)") from None
    except subprocess.TimeoutExpired:
        raise EvalgenError(f"'{' '.join(args[:2])}' did not answer in {_QUERY_TIMEOUT} s: is slurmctld up?") from None
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise EvalgenError(f"'{' '.join(args[:2])}' failed: {message}")
    return result.stdout


def _executor(folder: Path, options: SlurmOptions):
    import submitit

    executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=options.max_requeues,
                                      python=shlex.quote(sys.executable))
    executor.update_parameters(
        job_name="evalgen", partition=options.partition, time=options.time_minutes,
        cpus_per_task=options.cpus_per_job, gpus_per_node=options.gpus_per_job or None,
        mem=None if options.mem_gb is None else f"{options.mem_gb}GB",
        array_parallelism=options.array_parallelism or 1_000_000,
        additional_parameters=dict(options.sbatch) or None,
        # the run's torch threads are the CPUs SLURM gave it
        setup=[f"export OMP_NUM_THREADS={options.cpus_per_job} MKL_NUM_THREADS={options.cpus_per_job}"])
    return executor


def _submission_error(exc: Exception) -> EvalgenError:
    """sbatch's own complaint (an unknown partition, a limit) as one line."""
    text = " ".join(str(exc).split())
    match = re.search(r"sbatch: error: (.*?)(?:\s*sbatch: error:|$)", text)
    return EvalgenError(f"sbatch refused the sweep: {match[1] if match else text[-300:]}")


def submit_array(specs: Sequence[RunSpec], target: Any, options: SlurmOptions) -> list[str]:
    """Submit one array task per spec into ``target`` (a `SweepTarget`); record each task's job
    id under ``<out>/.sweep/jobs``. Returns the job ids ("<array>_<task>")."""
    out_dir, data_dir = target.out_dir, target.data_dir
    if not specs:
        return []
    folder = state.slurm_folder(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [RunTask(spec, str(out_dir.resolve()), target.device,
                     None if data_dir is None else str(data_dir.resolve()), "slurm", options.cpus_per_job,
                     target.rerun, None, target.save_samples, target.trace).to_json() for spec in specs]
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's stderr: it is in the error
            jobs = _executor(folder, options).map_array(SlurmRun(), tasks)
    except FileNotFoundError:
        raise EvalgenError("'sbatch' was not found: the SLURM client commands must be on PATH "
                           "(or use --executor local)") from None
    except (FailedJobError, FailedSubmissionError, subprocess.CalledProcessError) as exc:  # sbatch said no
        raise _submission_error(exc) from None
    now = state.RunState.now("running").at
    for spec, job in zip(specs, jobs):
        state.write_job(out_dir, spec.key, state.JobRef(str(job.job_id), now))
    return [str(job.job_id) for job in jobs]


def _parse_fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def job_statuses(job_ids: Sequence[str]) -> dict[str, JobStatus]:
    """SLURM's view of array tasks "<array>_<task>": the queue (squeue) for live ones, then
    slurmctld's memory of ended ones (scontrol, kept for MinJobAge); absent: forgotten."""
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not arrays:
        return {}
    found: dict[str, JobStatus] = {}
    for array in arrays:
        try:
            shown = _slurm_command(["scontrol", "show", "job", "-o", array])
        except EvalgenError as exc:
            if "Invalid job id" in str(exc):
                continue
            raise
        for line in shown.splitlines():
            fields = _parse_fields(line)
            status = JobStatus(fields.get("JobState", "UNKNOWN"), fields.get("Reason", ""), fields.get("ExitCode", ""))
            if "ArrayJobId" in fields and "ArrayTaskId" in fields:
                for task in _task_ids(fields["ArrayTaskId"]):
                    found[f"{fields['ArrayJobId']}_{task}"] = status
            elif "JobId" in fields:  # submitit submits a sweep of one run as a plain job
                found[fields["JobId"]] = status
    return {job_id: found[job_id] for job_id in job_ids if job_id in found}


def _task_ids(text: str) -> list[str]:
    """"3" or a pending range "2-5%2" / "0,2-3" as task ids."""
    ids = []
    for part in text.split("%")[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            ids.extend(str(i) for i in range(int(low), int(high or low) + 1))
    return ids
