"""Trace overhead: what ``--trace light`` (and ``full``) adds to a run, per family.

Runs each model once with ``--trace off`` and once with the level asked for, side by side in one
process, under one budget (default ``quick``) on one dataset (default ``digits``): the same
command as `evalgen run`, background model and evaluation included. Prints per model the
wall-clock seconds of each run, the seconds added, the seconds tracing itself took (the record's
``training.traces.seconds``), the number of trace points, the ratio traced / untraced, and the
share of the traced run's wall time spent tracing; the verdict holds that share against
``--limit`` (default 1.20: tracing at most 20 % of the run). The share is measured inside the
run, so it holds on a loaded machine; the wall-clock ratio of two separate runs does not.
Training is the same with and without tracing for likelihood models (tested); implicit models
are then selected by the traced FID.
It always exits 0: it is a benchmark, not a test.

    python benchmarks/trace_overhead.py [--budget quick] [--dataset digits] [--level light]
        [--model plugin:model ...] [--limit 1.2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from evalgen.datasets.files import load_context_from_env
from evalgen.harness.runner import RunContext, run_one
from evalgen.plugins import load_plugins
from evalgen.runspec import RunSpec

#: One model per family (the default): the cheapest that fits digits.
DEFAULT_MODELS = ("flows:realnvp", "vae:vae", "gan:gan", "autoregressive:nade", "baselines:categorical",
                  "ebm:rbm")
BINARY_TWIN = {"digits": "binarized-digits", "mnist": "binarized-mnist"}


def _dataset_for(plugins, plugin: str, model: str, name: str) -> str:
    spec = plugins.family(plugin).model(model)
    for candidate in (name, BINARY_TWIN.get(name)):
        if candidate is None:
            continue
        kind = plugins.datasets.get(candidate).kind
        if kind in spec.data_kinds:
            return candidate
    return name


def _timed_run(spec: RunSpec, level: str, plugins, folder: Path) -> tuple[float, object]:
    ctx = RunContext(plugins, folder, torch.device("cpu"), load_context_from_env(), trace=level)
    started = time.perf_counter()
    record, _ = run_one(spec, ctx)
    return time.perf_counter() - started, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--level", default="light", choices=["light", "full"])
    parser.add_argument("--model", action="append", help="plugin:model (repeatable)")
    parser.add_argument("--limit", type=float, default=1.20)
    args = parser.parse_args(argv)
    plugins = load_plugins()
    print(f"{'model':24} {'dataset':18} {'off s':>7} {args.level + ' s':>8} {'added s':>8} {'tracing s':>9} "
          f"{'points':>6} {'ratio':>6} {'share':>6}  verdict", flush=True)
    for label in args.model or DEFAULT_MODELS:
        plugin, _, model = label.partition(":")
        dataset = _dataset_for(plugins, plugin, model, args.dataset)
        spec = RunSpec(plugin, model, dataset, args.budget, 0)
        with tempfile.TemporaryDirectory() as tmp:
            off, _ = _timed_run(spec, "off", plugins, Path(tmp) / "off")
            on, record = _timed_run(spec, args.level, plugins, Path(tmp) / "on")
        traces = record.training.traces
        tracing = traces.seconds if traces is not None else 0.0
        points = len(traces.points) if traces is not None else 0
        ratio, share = on / off, tracing / on
        verdict = "PASS" if share <= args.limit - 1 else "OVER"
        print(f"{label:24} {dataset:18} {off:7.1f} {on:8.1f} {on - off:8.1f} {tracing:9.2f} {points:6d} "
              f"{ratio:6.3f} {share:6.1%}  {verdict} (tracing <= {args.limit - 1:.0%})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
