"""What each run of a sweep is doing, as small files under ``<out>/.sweep``: the run's state
(written by the process that runs it: running, failed) and its SLURM job (written at submission).

A finished record in ``records/`` is the only proof that a run is done; these files only say
what happened to the others. They are read back as untrusted input: bounded JSON of a fixed
shape, a name that is not a run key is ignored, and a file evalgen cannot parse is treated as
absent (the run is then retried, never skipped).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import socket
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from evalgen.errors import EvalgenError
from evalgen.provenance import slurm_job_id
from evalgen.storage import atomic_write_bytes, read_json

__all__ = ["SWEEP_DIR", "JobRef", "RunState", "clear_state", "failure_log", "log_path", "new_attempt", "read_job",
           "read_state", "slurm_folder", "slurm_log", "tail", "write_job", "write_state"]

SWEEP_DIR = ".sweep"
_KEY = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_MAX_STATE_BYTES = 64 * 1024
#: The tail of a failed run's log that `--status` shows.
TAIL_LINES = 5


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _checked_key(key: str) -> str:
    if not _KEY.match(key):  # keys are made by RunSpec.key: a foreign name never becomes a path
        raise EvalgenError(f"'{key}' is not a run key")
    return key


@dataclass(frozen=True)
class RunState:
    """The last thing the process running a run said about it."""

    state: str  #: "running" or "failed"
    host: str
    pid: int
    at: str  #: UTC, ISO 8601
    message: str = ""  #: why it failed
    job_id: str | None = None  #: SLURM job id (array job id_task id) when under SLURM
    attempt: str | None = None  #: a local job's attempt (names its log files: `log_path`)

    @classmethod
    def now(cls, state: str, message: str = "", attempt: str | None = None) -> RunState:
        return cls(state, socket.gethostname(), os.getpid(), _now(), message, slurm_job_id(), attempt)

    def process_alive_here(self) -> bool | None:
        """Whether the process is alive, when it ran on this host; None for another host."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass(frozen=True)
class JobRef:
    """The SLURM job a run was submitted as ("<array job>_<task>")."""

    job_id: str
    submitted_at: str


def _path(out_dir: Path, folder: str, key: str) -> Path:
    return out_dir / SWEEP_DIR / folder / f"{_checked_key(key)}.json"


_ATTEMPT = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_JOB_ID = re.compile(r"^[0-9]{1,12}(_[0-9]{1,9})?$")


def new_attempt() -> str:
    """A name for one local attempt at a run, unique across drivers sharing the folder."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def log_path(out_dir: Path, key: str, attempt: str, suffix: str = ".log") -> Path:
    """Where a local attempt's stderr (``.log``) and stdout (``.out``) go: derived from names
    checked here, never a path read from a file."""
    if not _ATTEMPT.match(attempt):
        raise EvalgenError(f"'{attempt}' is not an attempt name")
    return out_dir / SWEEP_DIR / "logs" / f"{_checked_key(key)}.{attempt}{suffix}"


def slurm_folder(out_dir: Path) -> Path:
    """submitit's folder: the jobs' pickles and logs."""
    return out_dir / SWEEP_DIR / "slurm"


def slurm_log(out_dir: Path, job_id: str) -> Path:
    """A SLURM array task's stderr as submitit names it (<array>_<task>_<step task>_log.err)."""
    if not _JOB_ID.match(job_id):
        raise EvalgenError(f"'{job_id}' is not a SLURM job id")
    return slurm_folder(out_dir) / f"{job_id}_0_log.err"


def failure_log(out_dir: Path, key: str, run_state: RunState | None, job: JobRef | None) -> list[str]:
    """The last lines of the log of a run's latest attempt, for `--status`."""
    if job is not None:
        return tail(slurm_log(out_dir, job.job_id))
    if run_state is not None and run_state.attempt is not None and _ATTEMPT.match(run_state.attempt):
        return tail(log_path(out_dir, key, run_state.attempt))
    return []


def write_state(out_dir: Path, key: str, state: RunState) -> None:
    atomic_write_bytes(_path(out_dir, "state", key), json.dumps(asdict(state)).encode())


def write_job(out_dir: Path, key: str, job: JobRef) -> None:
    atomic_write_bytes(_path(out_dir, "jobs", key), json.dumps(asdict(job)).encode())


def _read(path: Path, cls: type) -> Any:
    if not path.is_file() or path.is_symlink():
        return None
    try:
        data = read_json(path, "sweep state file", max_bytes=_MAX_STATE_BYTES)
    except EvalgenError:
        return None
    names = {f.name: f.type for f in fields(cls)}
    if not isinstance(data, dict) or set(data) != set(names):
        return None
    if not all(isinstance(v, (str, int)) or v is None for v in data.values()):
        return None
    try:
        return cls(**data)
    except TypeError:
        return None


def read_state(out_dir: Path, key: str) -> RunState | None:
    state = _read(_path(out_dir, "state", key), RunState)
    if state is None or state.state not in ("running", "failed") or not isinstance(state.pid, int):
        return None
    if state.attempt is not None and not _ATTEMPT.match(str(state.attempt)):
        return None
    return state


def read_job(out_dir: Path, key: str) -> JobRef | None:
    job = _read(_path(out_dir, "jobs", key), JobRef)
    if job is None or not _JOB_ID.match(str(job.job_id)):
        return None
    return job


def clear_state(out_dir: Path, key: str) -> None:
    """Forget what a run's earlier attempt said (its record now speaks for it)."""
    path = _path(out_dir, "state", key)
    if path.is_file() and not path.is_symlink():
        path.unlink(missing_ok=True)


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a log file, or [] when it cannot be read."""
    try:
        if path.is_symlink() or not path.is_file():
            return []
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 16_384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]
