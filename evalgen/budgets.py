"""The `Budget` type: how much training a run gets, in units that mean the same on every machine.

The presets are registered by `evalgen.budget_presets`, like any plugin's budgets; the harness
enforces a budget (`evalgen.harness.clock.TrainingClock`) and counts its FLOPs
(`evalgen.harness.flops`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CLOCK_CAP", "NO_TRAINING", "Budget", "format_flops"]

#: ``stopped_by`` of a run the wall-clock safety net ended before its budget.
CLOCK_CAP = "clock cap"
#: ``stopped_by`` of a run under a budget of no training (``--budget none``).
NO_TRAINING = "no training"

_FLOP_PREFIXES = ((1e18, "EFLOP"), (1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP"))


def format_flops(flops: float | None) -> str:
    """``2.5 TFLOP``-style text (3 significant digits); "—" for None."""
    if flops is None:
        return "—"
    for scale, unit in _FLOP_PREFIXES:
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return f"{flops:.3g} FLOP"


@dataclass(frozen=True)
class Budget:
    """A named training budget. Training stops at whichever limit comes first.

    The budget is an amount of training: counted training FLOPs (``max_flops``, counted as
    `evalgen.harness.flops` states), capped by optimizer steps and examples. These limits end a
    run on the same step on every machine, so the same seed gives the same record anywhere. The
    wall clock is only a safety net (``clock_cap_seconds``, generous): a run it stops is marked
    "cut short by the clock" and is not ranked with complete runs.

    Evaluation (validation passes, test metrics) is charged to none of the limits.

    Attributes:
        name: preset name (``--budget``).
        summary: one line for ``evalgen budgets``.
        max_flops: counted training FLOPs (forward, backward and optimizer of every step), or
            None for no compute limit.
        max_steps: optimizer steps (one call of the train step is one step).
        max_examples: training examples seen (steps x batch size), or None for no limit.
        clock_cap_seconds: wall-clock seconds of training steps after which a run is cut short.
        batch_size: training batch size, the same for every model.
        eval_every: validation cadence in steps; the best validation checkpoint is kept.
        patience: stop after this many validations without improvement (likelihood models).
        num_samples: samples drawn per model for sample-based metrics.
        target: "cpu" or "gpu": the hardware the preset is sized for.
        importance_samples: samples per test example for likelihoods that are importance-sampled
            bounds or estimates (IWAE's K, AIS chains); exact likelihoods ignore it.
        valid_importance_samples: the same for the validation passes that pick the best
            checkpoint (fewer: they run every ``eval_every`` steps).
        outlier_examples: examples scored per outlier set, in and out of distribution alike
            (fixed, so that every AUROC has the same bounded standard error, see
            `evalgen.metrics.outliers`); 0 on the budgets of records of schema 1 and 2, which
            scored the whole test set.
        sample_draws: R, the independent draws of ``num_samples`` samples (different sample
            seeds, the same model) whose spread is the evaluation noise of every sample-based
            metric (`evalgen.metrics.fidelity.repeated_draws`); 1 on records older than it.
        dequantization_samples: K, the noise draws u_k per test example of a density on
            dequantized data: its test NLL is the importance-weighted dequantization bound
            -log (1/K) sum_k p((x + u_k) / L) + D log L (`evalgen.metrics.nll`); 1 on older records.
        trace_samples: samples drawn per trace point at ``--trace light`` (`evalgen.harness.tracing`).
        trace_points: at most this many ``--trace light`` points per run, one per 1/trace_points
            of the budget (plus the model as built); independent of the run's length in steps.
    """

    name: str
    summary: str
    max_flops: int | None
    max_steps: int
    max_examples: int | None
    clock_cap_seconds: float
    batch_size: int
    eval_every: int
    patience: int
    num_samples: int
    target: str = "cpu"
    importance_samples: int = 1
    valid_importance_samples: int = 1
    outlier_examples: int = 2_000
    sample_draws: int = 1
    dequantization_samples: int = 1
    trace_samples: int = 256
    trace_points: int = 20
    #: set only on the budget of a record of schema 1 or 2 (read by `evalgen.records.upgrade`):
    #: "seconds-bound (schema 1)", a budget of wall-clock seconds, comparable with nothing else
    legacy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def trains(self) -> bool:
        """False for a budget of no training (``max_steps`` 0): the model is evaluated as built."""
        return self.max_steps > 0

    def units(self) -> str:
        """The limits in words: ``≤ 2 TFLOP, ≤ 20000 steps; clock cap 600 s``."""
        if not self.trains:
            return "no training: the model is evaluated as its plugin builds it"
        if self.legacy is not None:
            return f"{self.legacy}: ≤ {self.clock_cap_seconds:g} s, ≤ {self.max_steps} steps"
        limits = [f"≤ {format_flops(self.max_flops)}"] if self.max_flops is not None else []
        limits.append(f"≤ {self.max_steps} steps")
        if self.max_examples is not None:
            limits.append(f"≤ {self.max_examples} examples")
        return ", ".join(limits) + f"; clock cap {self.clock_cap_seconds:g} s"
