"""Standardized training budgets: named presets and the clock that enforces them."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from evalgen.markers import hookimpl


@dataclass(frozen=True)
class Budget:
    """A named training budget. Training stops at whichever limit comes first.

    Evaluation (validation passes, test metrics) is not charged to ``max_seconds``.

    Attributes:
        name: preset name (``--budget``).
        summary: one line for ``evalgen budgets``.
        max_seconds: wall-clock seconds of training steps.
        max_steps: optimizer steps.
        max_examples: training examples seen (steps x batch size), or None for no limit.
        batch_size: training batch size, the same for every model.
        eval_every: validation cadence in steps; the best validation checkpoint is kept.
        patience: stop after this many validations without improvement (likelihood models).
        num_samples: samples drawn per model for sample-based metrics.
        target: "cpu" or "gpu": the hardware the preset is sized for.
        importance_samples: samples per test example for likelihoods that are importance-sampled
            bounds or estimates (IWAE's K, AIS chains); exact likelihoods ignore it.
        valid_importance_samples: the same for the validation passes that pick the best
            checkpoint (fewer: they run every ``eval_every`` steps).
    """

    name: str
    summary: str
    max_seconds: float
    max_steps: int
    max_examples: int | None
    batch_size: int
    eval_every: int
    patience: int
    num_samples: int
    target: str = "cpu"
    importance_samples: int = 1
    valid_importance_samples: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: tuple[Budget, ...] = (
    Budget("smoke", "seconds per model, for tests", max_seconds=10, max_steps=100,
           max_examples=None, batch_size=64, eval_every=50, patience=5, num_samples=256,
           importance_samples=10, valid_importance_samples=1),
    Budget("quick", "about a minute per model on 2 CPU cores (the default)", max_seconds=60,
           max_steps=20_000, max_examples=None, batch_size=128, eval_every=100, patience=8,
           num_samples=2_000, importance_samples=100, valid_importance_samples=5),
    Budget("standard", "10 GPU-minutes per model", max_seconds=600, max_steps=200_000,
           max_examples=None, batch_size=256, eval_every=500, patience=20, num_samples=10_000,
           target="gpu", importance_samples=5_000, valid_importance_samples=50),
    Budget("full", "one GPU-hour per model", max_seconds=3_600, max_steps=2_000_000,
           max_examples=None, batch_size=256, eval_every=1_000, patience=40, num_samples=50_000,
           target="gpu", importance_samples=5_000, valid_importance_samples=100),
)


@hookimpl
def evalgen_register_budgets(register) -> None:
    for preset in PRESETS:
        register(preset)


class TrainingClock:
    """Counts training time, steps and examples; paused while the harness evaluates."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.seconds = 0.0
        self.steps = 0
        self.examples = 0
        self._started: float | None = None

    def start(self) -> None:
        self._started = time.perf_counter()

    def pause(self) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None

    def tick(self, batch_size: int) -> None:
        self.steps += 1
        self.examples += batch_size

    def elapsed(self) -> float:
        running = 0.0 if self._started is None else time.perf_counter() - self._started
        return self.seconds + running

    def exhausted(self) -> str | None:
        """The limit that has been reached ("seconds", "steps", "examples"), or None."""
        b = self.budget
        if self.steps >= b.max_steps:
            return "steps"
        if b.max_examples is not None and self.examples >= b.max_examples:
            return "examples"
        if self.elapsed() >= b.max_seconds:
            return "seconds"
        return None
