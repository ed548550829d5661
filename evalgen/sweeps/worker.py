"""One run of a sweep in a process of its own: what a local job (``python -m
evalgen.sweeps.worker TASK_JSON``) and a SLURM array task (through submitit) execute.

The run goes through `evalgen.harness.runner.run_sweep` exactly as ``evalgen run`` runs it (the
per-run lock, the reuse of a finished record, the atomic record write), so a record is the same
whichever executor produced it; only its provenance says which.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evalgen.errors import EvalgenError
from evalgen.runspec import RunSpec
from evalgen.sweeps import state

__all__ = ["EXIT_FAILED", "RunTask", "execute", "main"]

#: Exit status of a worker whose run failed with an EvalgenError (its message is the last line).
EXIT_FAILED = 3


@dataclass(frozen=True)
class RunTask:
    """Everything a fresh process needs to run one spec."""

    spec: RunSpec
    out_dir: str
    device: str
    data_dir: str | None
    executor: str  #: recorded in the record's provenance
    threads: int | None = None  #: torch intra-op threads; None: torch's default
    rerun: bool = False
    attempt: str | None = None  #: a local job's attempt name (its log files)
    save_samples: bool = False  #: also write samples/<key>.npz
    trace: str = "light"  #: ``--trace`` (`evalgen.harness.tracing`)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunTask:
        data = json.loads(text)
        return cls(**{**data, "spec": RunSpec(**data["spec"])})


def execute(task: RunTask) -> str:
    """Run the task's spec (or reuse its finished record); return its one-line summary. Raises
    EvalgenError, after writing the run's "failed" state, when the run fails."""
    import torch

    from evalgen.datasets.files import load_context_from_env
    from evalgen.harness.runner import RunContext, resolve_device, run_sweep
    from evalgen.plugins import load_plugins

    if task.threads is not None:
        torch.set_num_threads(task.threads)
    out_dir = Path(task.out_dir)
    key = task.spec.key
    lines: list[str] = []
    try:
        state.write_state(out_dir, key, state.RunState.now("running", attempt=task.attempt))
        ctx = RunContext(plugins=load_plugins(), out_dir=out_dir, device=resolve_device(task.device),
                         load_context=load_context_from_env(None if task.data_dir is None else Path(task.data_dir)),
                         rerun=task.rerun, executor=task.executor, save_samples=task.save_samples,
                         trace=task.trace)
        result = run_sweep([task.spec], ctx, report=lines.append)
        if result.failures:
            raise EvalgenError(result.failures[0][1])
    except EvalgenError as exc:
        state.write_state(out_dir, key, state.RunState.now("failed", str(exc), task.attempt))
        raise
    state.clear_state(out_dir, key)
    return lines[-1] if lines else f"done {key}"


class SlurmRun:
    """The callable a SLURM array task runs (pickled by submitit). On preemption or timeout
    submitit calls `checkpoint`, which requeues the same task: runs restart from their seed, so
    the record is the one an uninterrupted run writes."""

    def __call__(self, task_json: str) -> str:
        return execute(RunTask.from_json(task_json))

    def checkpoint(self, task_json: str) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, task_json)


def main(argv: list[str] | None = None) -> int:
    """``python -m evalgen.sweeps.worker TASK_JSON``: the summary on stdout; a failure as one
    line on stderr and exit status `EXIT_FAILED`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m evalgen.sweeps.worker TASK_JSON", file=sys.stderr)
        return 2
    try:
        print(execute(RunTask.from_json(argv[0])), flush=True)
    except EvalgenError as exc:
        print(f"failed: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
