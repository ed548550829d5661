"""Evaluation cost: seconds of each part of evaluating every bundled model at a budget.

Evaluation does not depend on how long a model trained, so each model trains only ``--steps``
steps (step-bound; its evaluation settings stay those of ``--budget``: samples, importance
samples K, outlier set size), then is evaluated exactly as `evalgen run` evaluates it
(`evalgen.harness.evaluation.evaluate`). Prints one line per model with the seconds of sampling,
test NLL, each metric, and the total, and the verdict against ``--limit`` seconds per model.
It always exits 0: it is a benchmark, not a test. Needs ``EVALGEN_DATA_DIR`` for MNIST.

    EVALGEN_DATA_DIR=../shared/data python benchmarks/eval_cost.py [--dataset mnist] [--budget quick]
        [--steps 20] [--limit 180] [--model plugin:model ...]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import torch

from evalgen.datasets.files import load_context_from_env
from evalgen.harness.evaluation import evaluate
from evalgen.harness.resolved import resolve_run
from evalgen.harness.training import build_and_train
from evalgen.plugins import load_plugins
from evalgen.runspec import RunSpec

BINARY_TWIN = {"mnist": "binarized-mnist", "digits": "binarized-digits"}


def _fitting_dataset(plugins, spec_model, name: str):
    """``name``, or its binarized twin for models of binary data only; None if neither fits."""
    for candidate in (name, BINARY_TWIN.get(name)):
        if candidate is None:
            continue
        dataset = plugins.datasets.get(candidate).load(load_context_from_env())
        dims = dataset.info(spec_model.representation_for(dataset.kind)).num_dims
        if spec_model.unfit_reason(dataset.kind, dims, bool(dataset.num_classes)) is None:
            return dataset
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--limit", type=float, default=180.0)
    parser.add_argument("--model", action="append", help="plugin:model (repeatable; default all bundled)")
    args = parser.parse_args(argv)
    plugins = load_plugins()
    device = torch.device("cpu")
    wanted = args.model or [f"{p}:{m.name}" for p in sorted(plugins.families) for m in plugins.families[p].models]
    over = []
    for label in wanted:
        plugin, _, model = label.partition(":")
        dataset = _fitting_dataset(plugins, plugins.family(plugin).model(model), args.dataset)
        if dataset is None:
            print(f"{label:24} fits neither {args.dataset} nor its binarized twin; left out", flush=True)
            continue
        spec = RunSpec(plugin=plugin, model=model, dataset=dataset.name, budget=args.budget, seed=0)
        run = resolve_run(spec, plugins, dataset)
        run = replace(run, budget=replace(run.budget, max_flops=None, max_steps=args.steps, eval_every=args.steps))
        trained, data, _ = build_and_train(run, run.dataset, run.spec.seed, device, run.label)
        _, _, seconds = evaluate(run, trained, data, device, plugins.metrics, lambda name: plugins.datasets.get(
            name).load(load_context_from_env()))
        total = sum(seconds.values())
        parts = ", ".join(f"{part} {value:.1f}" for part, value in seconds.items())
        print(f"{label:24} {dataset.name:16} total {total:6.1f} s: {parts}", flush=True)
        if total > args.limit:
            over.append(label)
    print("PASS" if not over else "OVER " + ", ".join(over), f"(every evaluation within {args.limit:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
