"""The clock that enforces a budget during training: counted FLOPs, steps, examples, and the
wall-clock cap."""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch

from evalgen.budgets import CLOCK_CAP, Budget
from evalgen.harness.flops import StepFlopCounter

__all__ = ["CLOCK_CAP", "TrainingClock"]


class TrainingClock:
    """Counts training FLOPs, steps, examples and seconds; paused while the harness evaluates."""

    def __init__(self, budget: Budget, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        self.budget = budget
        self.flops = StepFlopCounter(optimizers)
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

    def budget_fraction(self) -> float:
        """How far training got towards the nearest limit of the budget, in [0, 1]."""
        b = self.budget
        used = [self.steps / b.max_steps if b.max_steps else 1.0]
        if b.max_flops:
            used.append(self.flops.total / b.max_flops)
        if b.max_examples:
            used.append(self.examples / b.max_examples)
        return min(1.0, max(used))

    def exhausted(self) -> str | None:
        """The limit reached ("compute", "steps", "examples", `CLOCK_CAP`), or None. The
        budget's own limits come first: a run that reached one is complete whatever the clock."""
        b = self.budget
        if b.max_flops is not None and self.flops.total >= b.max_flops:
            return "compute"
        if self.steps >= b.max_steps:
            return "steps"
        if b.max_examples is not None and self.examples >= b.max_examples:
            return "examples"
        if self.elapsed() >= b.clock_cap_seconds:
            return CLOCK_CAP
        return None
