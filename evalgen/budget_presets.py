"""The built-in budget presets, registered through the ``evalgen_register_budgets`` hook like a
plugin's (see `evalgen budgets`).

Each is an amount of training: counted training FLOPs (`evalgen.harness.flops`), capped by
steps; the clock cap is a generous safety net, not part of the budget. The FLOP budgets were
sized on measured rates (`benchmarks/flop_coverage.py`): on 2 idle CPU cores the bundled models
train at 7 to 60 GFLOP/s on digits at the ``quick`` batch size, so ``quick``'s 1 TFLOP is 15 s
to 2 minutes of training per model (less where early stopping ends it), the same training on
any machine. The GPU presets assume a few TFLOP/s achieved by models of this size.
"""

from __future__ import annotations

from collections.abc import Callable

from evalgen.budgets import Budget
from evalgen.markers import hookimpl

__all__ = ["PRESETS", "evalgen_register_budgets"]

GIGA, TERA, PETA = 10**9, 10**12, 10**15

PRESETS: tuple[Budget, ...] = (
    Budget("smoke", "100 steps or 100 GFLOP, seconds per model: for tests", max_flops=100 * GIGA, max_steps=100,
           max_examples=None, clock_cap_seconds=600, batch_size=64, eval_every=50, patience=5, num_samples=256,
           importance_samples=10, valid_importance_samples=1, outlier_examples=256, sample_draws=2,
           dequantization_samples=2, trace_samples=128),
    Budget("quick", "1 TFLOP per model: about a minute each on 2 CPU cores (the default)", max_flops=TERA,
           max_steps=20_000, max_examples=None, clock_cap_seconds=1_800, batch_size=128, eval_every=100,
           patience=8, num_samples=2_000, importance_samples=100, valid_importance_samples=5,
           outlier_examples=2_000, sample_draws=5, dequantization_samples=10, trace_samples=500),
    Budget("standard", "1 PFLOP per model: about 10 GPU-minutes", max_flops=PETA, max_steps=200_000,
           max_examples=None, clock_cap_seconds=7_200, batch_size=256, eval_every=500, patience=20,
           num_samples=10_000, target="gpu", importance_samples=5_000, valid_importance_samples=50,
           outlier_examples=10_000, sample_draws=5, dequantization_samples=100, trace_samples=2_000, trace_points=40),
    Budget("full", "6 PFLOP per model: about one GPU-hour", max_flops=6 * PETA, max_steps=2_000_000,
           max_examples=None, clock_cap_seconds=28_800, batch_size=256, eval_every=1_000, patience=40,
           num_samples=50_000, target="gpu", importance_samples=5_000, valid_importance_samples=100,
           outlier_examples=10_000, sample_draws=5, dequantization_samples=100, trace_samples=2_000, trace_points=40),
    # Pretrained models: no step is taken; evaluated as at quick (samples, K, outlier sets).
    Budget("none", "no training: a pretrained model, evaluated as at quick", max_flops=0, max_steps=0,
           max_examples=None, clock_cap_seconds=1_800, batch_size=128, eval_every=100, patience=8,
           num_samples=2_000, importance_samples=100, valid_importance_samples=5, outlier_examples=2_000,
           sample_draws=5, dequantization_samples=10),
)


@hookimpl
def evalgen_register_budgets(register: Callable[[Budget], None]) -> None:
    for preset in PRESETS:
        register(preset)
