"""Harness overhead: the same flow, the same steps, through evalgen's harness and a plain loop.

Trains one model of the ``flows`` plugin for ``--steps`` optimizer steps twice per round, in
one process:

* (A) **harness**: built through the plugin hooks exactly as ``evalgen.harness.runner.run_one``
  does, trained by ``evalgen.harness.training.train`` under a step-bound budget (no validation
  until the last step; ``train`` always validates once when the budget ends, to keep the best
  checkpoint, and that pass is part of the timed call);
* (B) **plain**: a hand-written PyTorch loop over the same data tensor: a fresh
  ``torch.randperm`` per epoch, the same uniform dequantization ``(x + u) / levels``,
  ``loss = -model.log_prob(x).mean()``, ``zero_grad / backward / clip_grad_norm_ / step`` with
  the optimizer the plugin configures (same class, same settings). No pluggy, no checks.

Both loops start from the same initial parameters (same seed) and draw permutations and noise
from a generator seeded the same way in the same order, so they see the same batches and, on a
deterministic device, end with the same parameters.

After one warm-up round of each, A and B alternate (A B, B A, A B, ...) for ``--repeats``
rounds so machine-speed drift hits both; the script prints every round, the medians, and the
ratio harness / plain. It always exits 0 (it is a benchmark, not a test); the verdict line is
``PASS (<= 2%)`` when the median of the per-pair ratios is at most 1.02, else ``OVER BUDGET``.

The harness counts training FLOPs as it trains (`evalgen.harness.flops`): it counts a few steps
under a dispatch mode (several times a step's cost each) and charges the rest, so the default
``--steps`` is 2,000, the length of a ``quick`` RealNVP run on digits, over which that cost is
spread as in a real run.

    python benchmarks/harness_overhead.py [--model realnvp] [--dataset digits] [--steps 2000]
                                          [--repeats 5] [--batch-size 128] [--threads N]
                                          [--device cpu] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import os
import pstats
import statistics
import sys
import time
from dataclasses import dataclass

import torch

from evalgen.budgets import Budget
from evalgen.datasets.files import load_context_from_env
from evalgen.harness.contract import CheckedHooks
from evalgen.harness.data import ModelData
from evalgen.harness.runner import resolve_device, seed_everything
from evalgen.harness.training import train
from evalgen.options import resolved_options
from evalgen.plugins import load_plugins
from evalgen.types import DatasetInfo, Representation, TrainState

PLUGIN = "flows"
#: The flows plugin's gradient-clipping default (``clip`` option of evalgen_flows.hooks).
FLOWS_CLIP = 100.0
#: Verdict threshold on the median of the per-pair ratios harness / plain.
BUDGET_RATIO = 1.02
#: A run slower than this multiple of its side's median is reported as disturbed.
OUTLIER = 1.5


@dataclass
class Setup:
    """Everything both loops share, built once."""

    bound: CheckedHooks
    info: DatasetInfo
    data: ModelData
    device: torch.device
    config: dict
    seed: int
    steps: int
    batch_size: int
    budget: Budget


@dataclass
class Result:
    seconds: float
    steps: int
    mean_loss: float
    final_params: list[torch.Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_setup(args: argparse.Namespace) -> Setup:
    plugins = load_plugins()
    model_spec = plugins.family(PLUGIN).model(args.model)
    dataset = plugins.datasets.get(args.dataset).load(load_context_from_env())
    representation = model_spec.representation_for(dataset.kind)
    info = dataset.info(representation)
    bound = CheckedHooks(plugins.hooks(PLUGIN), model_spec)
    device = resolve_device(args.device)
    data = ModelData(dataset, representation, device)
    budget = Budget(
        "benchmark", f"{args.steps} steps, no validation until the end",
        max_flops=None, max_steps=args.steps, max_examples=None, clock_cap_seconds=1e9, batch_size=args.batch_size,
        eval_every=args.steps + 1, patience=10**9, num_samples=0,
    )
    config = resolved_options(plugins.family(PLUGIN), args.model)  # as run_one resolves them
    return Setup(bound, info, data, device, config, args.seed, args.steps, args.batch_size, budget)


def _fresh_model(s: Setup) -> tuple[torch.nn.Module, dict[str, torch.optim.Optimizer]]:
    """Model and optimizers exactly as run_one builds them (same seed -> same init)."""
    seed_everything(s.seed)
    model = s.bound.build(s.info, s.config).to(s.device)
    return model, s.bound.optimizers(model, s.config)


def run_harness(s: Setup, profile: cProfile.Profile | None = None) -> Result:
    """(A) evalgen.harness.training.train; only the train() call is timed."""
    model, optimizers = _fresh_model(s)
    state = TrainState(step=0, optimizers=optimizers,
                       generator=torch.Generator(device=s.device).manual_seed(s.seed),
                       device=s.device, dataset=s.info, config=s.config)
    gc.collect()
    _sync(s.device)
    if profile is not None:
        profile.enable()
    start = time.perf_counter()
    outcome = train(s.bound, model, s.data, s.budget, state, label="benchmark")
    _sync(s.device)
    seconds = time.perf_counter() - start
    if profile is not None:
        profile.disable()
    if outcome.diverged_at_step is not None:
        print(f"  warning: the harness run diverged at step {outcome.diverged_at_step}")
    mean_loss = outcome.history[-1][2] if outcome.history else math.nan
    return Result(seconds, outcome.steps, float(mean_loss),
                  [p.detach().clone() for p in model.parameters()])


def run_plain(s: Setup) -> Result:
    """(B) a hand-written PyTorch loop doing what the flows plugin's train step does."""
    model, optimizers = _fresh_model(s)
    configured = optimizers["model"]
    assert len(configured.param_groups) == 1, "the plain loop rebuilds a single-group optimizer"
    opt = type(configured)(model.parameters(), **configured.defaults)  # same class and settings
    del configured, optimizers
    generator = torch.Generator(device=s.device).manual_seed(s.seed)
    train_x = s.data.train_x
    dequantize = s.data.representation is Representation.DEQUANTIZED
    levels = s.data.levels
    n = train_x.shape[0]
    batch_size = min(s.batch_size, n)
    model.train()

    gc.collect()
    _sync(s.device)
    start = time.perf_counter()
    step = 0
    loss_sum = torch.zeros((), device=s.device)
    while step < s.steps:
        order = torch.randperm(n, generator=generator, device=s.device)
        for first in range(0, n - batch_size + 1, batch_size):
            x = train_x[order[first:first + batch_size]]
            if dequantize:
                x = (x + torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)) / levels
            loss = -model.log_prob(x).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), FLOWS_CLIP)  # as the plugin does
            opt.step()
            loss_sum += loss.detach()
            step += 1
            if step == s.steps:
                break
    _sync(s.device)
    seconds = time.perf_counter() - start
    model.eval()
    return Result(seconds, step, float(loss_sum) / step, [p.detach().clone() for p in model.parameters()])


def _max_param_diff(a: Result, b: Result) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a.final_params, b.final_params))


def _profile_report(s: Setup, top: int) -> None:
    profile = cProfile.Profile()
    result = run_harness(s, profile)
    print(f"\ncProfile of one harness train() call ({result.steps} steps, "
          f"{result.seconds:.2f} s under the profiler), top {top} by own time:")
    stats = pstats.Stats(profile, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    print(f"top {top} by cumulative time:")
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="realnvp", choices=["realnvp", "maf", "planar"])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed A/B pairs after the warm-up")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one harness train() call and print the top functions")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be at least 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    s = build_setup(args)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"environment: torch {torch.__version__}, device {s.device}, "
          f"threads {torch.get_num_threads()} (interop {torch.get_num_interop_threads()}), "
          f"{os.cpu_count()} CPUs, load average {load}, python {sys.version.split()[0]}")
    print(f"workload: {PLUGIN}:{args.model} on {args.dataset} ({s.data.train_x.shape[0]} train examples, "
          f"shape {tuple(s.data.train_x.shape[1:])}), {args.steps} steps, batch {args.batch_size}, "
          f"seed {args.seed}, {args.repeats} timed pairs after 1 warm-up pair")

    warm_a, warm_b = run_harness(s), run_plain(s)
    print(f"warm-up: harness {warm_a.seconds:.3f} s, plain {warm_b.seconds:.3f} s (not counted)")

    harness_t: list[float] = []
    plain_t: list[float] = []
    last_a, last_b = warm_a, warm_b
    for i in range(args.repeats):
        if i % 2 == 0:
            last_a = run_harness(s)
            last_b = run_plain(s)
            order = "A B"
        else:
            last_b = run_plain(s)
            last_a = run_harness(s)
            order = "B A"
        harness_t.append(last_a.seconds)
        plain_t.append(last_b.seconds)
        print(f"round {i + 1}/{args.repeats} ({order}): harness {last_a.seconds:.3f} s, "
              f"plain {last_b.seconds:.3f} s, ratio {last_a.seconds / last_b.seconds:.3f}")

    # Sanity: same number of steps, comparable (here: identical batches, so near-equal) losses.
    same_steps = last_a.steps == last_b.steps == args.steps
    print(f"steps: harness {last_a.steps}, plain {last_b.steps} "
          f"({'same' if same_steps else 'DIFFERENT'}; asked for {args.steps})")
    la, lb = last_a.mean_loss, last_b.mean_loss
    comparable = math.isfinite(la) and math.isfinite(lb) and (
        abs(la - lb) <= 1e-3 * max(1.0, abs(la), abs(lb))
        or (la * lb > 0 and 0.1 <= la / lb <= 10.0)
    )
    print(f"mean training loss over the {args.steps} steps: harness {la:.4f}, plain {lb:.4f} "
          f"({'comparable' if comparable else 'NOT comparable'}); "
          f"final parameters differ by at most {_max_param_diff(last_a, last_b):.3g}")

    pair = [a / b for a, b in zip(harness_t, plain_t)]
    med_a, med_b = statistics.median(harness_t), statistics.median(plain_t)
    slow = sum(t > OUTLIER * med for times, med in ((harness_t, med_a), (plain_t, med_b)) for t in times)
    if slow:
        print(f"note: {slow} run(s) took over {OUTLIER:g}x their median: the machine was busy; trust the "
              f"medians, not the means (with other load on the CPUs, --threads 1 is far steadier)")
    med_pair = statistics.median(pair)
    print(f"harness / plain = {med_a / med_b:.3f} (ratio of medians; harness {med_a:.2f} s, "
          f"plain {med_b:.2f} s for {args.steps} steps, {1e3 * med_a / args.steps:.2f} vs "
          f"{1e3 * med_b / args.steps:.2f} ms/step)")
    print(f"per-pair ratios: median {med_pair:.3f}, min {min(pair):.3f}, max {max(pair):.3f} "
          f"(median of {len(pair)} pairs)")
    print(f"fastest runs: harness {min(harness_t):.2f} s, plain {min(plain_t):.2f} s, "
          f"ratio {min(harness_t) / min(plain_t):.3f} (least disturbed by other load)")
    if not (same_steps and comparable):
        print("WARNING: the sanity checks failed (see above); the two loops did not do the same work")
    print(f"verdict: {'PASS (<= 2%)' if med_pair <= BUDGET_RATIO else 'OVER BUDGET'}: harness overhead "
          f"{100 * (med_pair - 1):+.1f}% (median per-pair ratio), budget +{100 * (BUDGET_RATIO - 1):.0f}%")

    if args.profile:
        _profile_report(s, top=25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
