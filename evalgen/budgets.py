"""The `Budget` type: how much training a run gets. The presets are registered by
`evalgen.budget_presets`, like any plugin's budgets; the harness enforces a budget
(`evalgen.harness.clock.TrainingClock`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Budget"]



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
