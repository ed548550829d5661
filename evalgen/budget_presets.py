"""The built-in budget presets, registered through the ``evalgen_register_budgets`` hook like a
plugin's (see `evalgen budgets`)."""

from __future__ import annotations

from collections.abc import Callable

from evalgen.budgets import Budget
from evalgen.markers import hookimpl

__all__ = ["PRESETS", "evalgen_register_budgets"]

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
def evalgen_register_budgets(register: Callable[[Budget], None]) -> None:
    for preset in PRESETS:
        register(preset)
