"""The clock that enforces a budget during training."""

from __future__ import annotations

import time

from evalgen.budgets import Budget

__all__ = ["TrainingClock"]


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
