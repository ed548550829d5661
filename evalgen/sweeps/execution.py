"""Where the runs of a sweep execute: in this process, in a pool of fresh processes on this
machine (``--jobs``), or as a SLURM job array (``--executor slurm``), and with what resources.

Defaults live here, once: the sweep file's ``[slurm]`` table and the command-line options
override them, in that order.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evalgen.errors import EvalgenError, unknown_name

__all__ = ["EXECUTORS", "Execution", "SlurmOptions", "available_cpus"]

#: ``local``: this machine (``jobs`` at once); ``slurm``: one array task per run.
EXECUTORS = ("local", "slurm")
_SBATCH_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
#: Options evalgen sets itself (through submitit): naming them in ``sbatch`` would fight it.
_RESERVED_SBATCH = frozenset({"array", "output", "error", "wrap", "job-name", "partition", "time",
                              "cpus-per-task", "gpus-per-node", "mem", "open-mode", "signal"})


def available_cpus() -> int:
    """The processors this process may run on (its affinity mask, e.g. under taskset or SLURM)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _positive(value: Any, what: str, where: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise EvalgenError(f"{where}: '{what}' should be an integer >= {0 if allow_zero else 1}, got {value!r}")
    return value


@dataclass(frozen=True)
class SlurmOptions:
    """The resources of each array task (one run) and of the array as a whole."""

    partition: str | None = None  #: None: the cluster's default partition
    time_minutes: int = 60  #: wall-clock limit of one run; a run past it is requeued (submitit)
    gpus_per_job: int = 0
    cpus_per_job: int = 1  #: also the run's torch threads
    mem_gb: int | None = None  #: None: the partition's default
    array_parallelism: int | None = None  #: tasks running at once; None: no limit
    sbatch: Mapping[str, str] = field(default_factory=dict)  #: more sbatch options, e.g. {"account": "x"}
    max_requeues: int = 3  #: preemptions and timeouts a run survives

    _KEYS = ("partition", "time_minutes", "gpus_per_job", "cpus_per_job", "mem_gb", "array_parallelism",
             "sbatch", "max_requeues")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> SlurmOptions:
        for key in table:
            if key not in cls._KEYS:
                raise EvalgenError(f"{where}: {unknown_name('key', key, cls._KEYS)}")
        sbatch = table.get("sbatch", {})
        if not isinstance(sbatch, dict):
            raise EvalgenError(f"{where}: 'sbatch' should be a table of option = value, got {sbatch!r}")
        return cls(**{k: v for k, v in table.items() if k != "sbatch"},
                   sbatch={str(k): v for k, v in sbatch.items()}).checked(where)

    def checked(self, where: str = "slurm options") -> SlurmOptions:
        """Self, if every value is of the right type and range (a one-line error otherwise)."""
        if self.partition is not None and (not isinstance(self.partition, str) or not self.partition.strip()):
            raise EvalgenError(f"{where}: 'partition' should be a partition name, got {self.partition!r}")
        _positive(self.time_minutes, "time_minutes", where)
        _positive(self.gpus_per_job, "gpus_per_job", where, allow_zero=True)
        _positive(self.cpus_per_job, "cpus_per_job", where)
        _positive(self.max_requeues, "max_requeues", where, allow_zero=True)
        for name in ("mem_gb", "array_parallelism"):
            if getattr(self, name) is not None:
                _positive(getattr(self, name), name, where)
        for key, value in self.sbatch.items():
            if not _SBATCH_NAME.match(key):
                raise EvalgenError(f"{where}: sbatch option '{key}' should be a long option name such as "
                                   f"'account' (without --)")
            if key in _RESERVED_SBATCH:
                raise EvalgenError(f"{where}: sbatch option '{key}' is set by evalgen; use the [slurm] keys "
                                   f"(partition, time_minutes, cpus_per_job, gpus_per_job, mem_gb)")
            if not isinstance(value, (str, int)) or isinstance(value, bool) or "\n" in str(value):
                raise EvalgenError(f"{where}: sbatch option '{key}' should be one line of text or a number, "
                                   f"got {value!r}")
        return self


@dataclass(frozen=True)
class Execution:
    """How a sweep runs: ``executor`` with ``jobs`` at once (local) or ``slurm``'s resources."""

    executor: str = "local"
    jobs: int = 1
    slurm: SlurmOptions = SlurmOptions()
    detach: bool = False  #: slurm: submit and return; `evalgen sweep --status` follows up

    def checked(self) -> Execution:
        if self.executor not in EXECUTORS:
            raise EvalgenError(str(unknown_name("executor", self.executor, EXECUTORS)))
        _positive(self.jobs, "jobs", "the execution options")
        if self.detach and self.executor != "slurm":
            raise EvalgenError("--detach needs --executor slurm (local runs end with the command)")
        self.slurm.checked()
        return self

    def with_overrides(self, **overrides: Any) -> Execution:
        """A copy with the given fields (None values are ignored: not given on the command line);
        SlurmOptions fields are accepted by name too."""
        given = {k: v for k, v in overrides.items() if v is not None}
        slurm_fields = {f.name for f in dataclasses.fields(SlurmOptions)}
        slurm = {k: v for k, v in given.items() if k in slurm_fields}
        if "sbatch" in slurm:
            slurm["sbatch"] = {**self.slurm.sbatch, **slurm["sbatch"]}
        top = {k: v for k, v in given.items() if k not in slurm_fields}
        return dataclasses.replace(self, slurm=dataclasses.replace(self.slurm, **slurm), **top).checked()

    def threads_per_job(self) -> int:
        """Torch threads of each local job: this machine's processors shared among the jobs."""
        return max(1, available_cpus() // self.jobs)
