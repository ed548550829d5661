"""FLOP coverage: does the count see the real work of every bundled model?

For each bundled model on a digits dataset it fits (``digits``; ``binarized-digits`` for models
of binary data only), trains 50 + ``--steps`` steps at the ``quick`` budget's batch size through
`evalgen.harness.training.train` (the harness's own loop, FLOP counting included), times the
last ``--steps`` (the counter has counted its few steps by then; validation is not timed) and
prints:

* PyTorch's own count per step (matrix products, convolutions, attention only),
* evalgen's count per step (`evalgen.harness.flops`: PyTorch's plus 1 FLOP per element of
  elementwise ops, reductions, scans, softmaxes, losses, norms and random draws),
* the training seconds per step and the counted FLOP/s = counted FLOPs / training seconds.

If the count covers the work, every model's counted FLOP/s is of the same order: the verdict
line says ``PASS`` when each is within ``--spread`` (5x) of the median. A model whose work the
count missed would show a FLOP/s far below the others (it would get far more steps for the same
budget). Validation passes are not timed (the harness pauses its clock for them). It always
exits 0: it is a benchmark, not a test.

A model outside the band is measured again at ``--batch-scale`` (16) times the batch, and the
marginal rate between the two (extra FLOPs / extra seconds) is printed: the fixed cost per op
(dispatch, autograd), which FLOPs do not measure, cancels in it, so a marginal rate within the
band says the count covers the work and the model is overhead-bound at the budget's batch.

    python benchmarks/flop_coverage.py [--steps 200] [--threads 2] [--spread 5] [--batch-scale 16]
        [--model NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, replace

import torch

from evalgen.datasets.files import load_context_from_env
from evalgen.harness.flops import count_flops
from evalgen.harness.resolved import resolve_run
from evalgen.harness.training import build_and_train
from evalgen.plugins import load_plugins
from evalgen.runspec import RunSpec

DATASETS = ("digits", "binarized-digits")
#: Steps before the timed ones: the FLOP counter counts its few steps in them (slow, see
#: evalgen.harness.flops), so the rate measured after them is the steady rate of a quick run.
WARM_UP = 50


@dataclass
class Row:
    label: str
    dataset: str
    torch_flops: float
    counted_flops: float
    seconds_per_step: float

    @property
    def flop_rate(self) -> float:
        return self.counted_flops / self.seconds_per_step


def _torch_only_flops(run, device: torch.device) -> float:
    """FLOPs of one training step as PyTorch alone counts them (a fresh model, step 1)."""
    from evalgen.harness.data import ModelData
    from evalgen.harness.runner import seed_everything
    from evalgen.types import TrainState
    seed_everything(run.spec.seed)
    model = run.hooks.build(run.info, run.options).to(device)
    state = TrainState(step=0, optimizers=run.hooks.optimizers(model, run.options),
                       generator=torch.Generator(device=device).manual_seed(0), device=device,
                       dataset=run.info, config=run.options)
    data = ModelData(run.dataset, run.representation, device)
    batch = next(data.batches(run.budget.batch_size, state.generator))
    with count_flops(torch_formulas_only=True) as mode:
        run.hooks.train_step(model, batch, state)
    return float(mode.get_total_flops())


def measure(plugins, plugin: str, model: str, steps: int, device: torch.device,
            batch_scale: int = 1) -> Row | None:
    family = plugins.family(plugin)
    spec_model = family.model(model)
    for name in DATASETS:
        dataset = plugins.datasets.get(name).load(load_context_from_env())
        if spec_model.unfit_reason(dataset.kind, dataset.info(spec_model.representation_for(dataset.kind)).num_dims,
                                   bool(dataset.num_classes)) is None:
            break
    else:
        return None
    spec = RunSpec(plugin=plugin, model=model, dataset=name, budget="quick", seed=0)
    run = resolve_run(spec, plugins, dataset)
    budget = replace(run.budget, max_flops=None, max_steps=WARM_UP + steps, clock_cap_seconds=1e9,
                     eval_every=WARM_UP, patience=10**9, batch_size=run.budget.batch_size * batch_scale)
    run = replace(run, budget=budget)
    _, _, outcome = build_and_train(run, run.dataset, run.spec.seed, device, run.label)
    warm, end = outcome.history[0], outcome.history[-1]  # [step, seconds, loss, valid NLL, flops]
    return Row(f"{plugin}:{model}", name, _torch_only_flops(run, device), (end[4] - warm[4]) / (end[0] - warm[0]),
               (end[1] - warm[1]) / (end[0] - warm[0]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--spread", type=float, default=5.0)
    parser.add_argument("--batch-scale", type=int, default=16,
                        help="re-measure models outside the band at this many times the batch (1: don't)")
    parser.add_argument("--model", action="append", help="plugin:model (repeatable; default all bundled)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    plugins = load_plugins()
    device = torch.device("cpu")
    wanted = args.model or [f"{p}:{m.name}" for p in sorted(plugins.families) for m in plugins.families[p].models]
    rows = []
    print(f"{'model':24} {'data':17} {'torch FLOP/step':>15} {'counted/step':>13} {'ms/step':>8} {'GFLOP/s':>8}")
    for label in wanted:
        plugin, _, model = label.partition(":")
        row = measure(plugins, plugin, model, args.steps, device)
        if row is None:
            print(f"{label:24} fits no digits dataset; left out")
            continue
        rows.append(row)
        print(f"{row.label:24} {row.dataset:17} {row.torch_flops:15.3e} {row.counted_flops:13.3e} "
              f"{row.seconds_per_step * 1e3:8.2f} {row.flop_rate / 1e9:8.3f}", flush=True)
    median = statistics.median(row.flop_rate for row in rows)
    outside = [row for row in rows if not median / args.spread <= row.flop_rate <= median * args.spread]
    print(f"\nmedian counted FLOP/s {median / 1e9:.3f} GFLOP/s; range "
          f"{min(r.flop_rate for r in rows) / median:.2f}x to "
          f"{max(r.flop_rate for r in rows) / median:.2f}x the median")
    verdict = "PASS" if not outside else "OUTSIDE " + ", ".join(row.label for row in outside)
    print(f"{verdict} (every model within {args.spread:g}x of the median)")
    if outside and args.batch_scale > 1:
        _scaled(plugins, outside, median, args, device)
    return 0


def _scaled(plugins, outside: list[Row], median: float, args: argparse.Namespace, device: torch.device) -> None:
    """Tell missed work from per-op overhead. Time per step = a fixed cost per op (dispatch,
    autograd, optimizer bookkeeping; FLOPs do not measure it) + the arithmetic; at a larger batch
    only the arithmetic grows, so the *marginal* rate (extra FLOPs / extra seconds between the two
    batch sizes) is the rate of the work itself. If the count covers the work, that rate is of
    the others' order; work the count missed would keep it as far below."""
    print(f"\nmarginal rate between 1x and {args.batch_scale}x the batch (diagnosis; the budget's batch is 1x):")
    for row in outside:
        plugin, _, model = row.label.partition(":")
        big = measure(plugins, plugin, model, max(20, args.steps // args.batch_scale), device, args.batch_scale)
        rate = (big.counted_flops - row.counted_flops) / max(big.seconds_per_step - row.seconds_per_step, 1e-9)
        within = median / args.spread <= rate <= median * args.spread
        why = ("the gap is per-op overhead" if within else "above the band" if rate > median * args.spread
               else "below the band: missed work, or slow memory-bound kernels")
        print(f"{big.label:24} {big.counted_flops:10.3e} FLOP/step {big.seconds_per_step * 1e3:8.2f} ms/step; "
              f"marginal {rate / 1e9:7.3f} GFLOP/s = {rate / median:.2f}x the median: {why}", flush=True)



if __name__ == "__main__":
    sys.exit(main())
