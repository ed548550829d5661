"""Where a number came from: versions, commit, hardware."""

from __future__ import annotations

import datetime as dt
import functools
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import torch

from evalgen.version import __version__


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the evalgen checkout in use (with "-dirty" if modified), or None."""
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def slurm_job_id() -> str | None:
    """This process's SLURM job: "<array job>_<task>" for an array task, else the job id; None
    outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def provenance(device: torch.device, executor: str = "local") -> dict[str, Any]:
    """The facts every run record carries about the software and hardware, and where it ran."""
    return {
        "evalgen_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda if device.type == "cuda" else None,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": device.type,
        "device_name": device_name(device),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "executor": executor,
        "host": socket.gethostname(),
        "slurm_job_id": slurm_job_id(),
    }
