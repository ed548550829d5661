"""Run one spec end to end, and sweeps of specs that survive each other's failures."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evalgen.datasets.base import Dataset, LoadContext
from evalgen.errors import EvalgenError
from evalgen.harness.checkpoints import checkpoint_path, save_checkpoint
from evalgen.harness.contract import BoundModel
from evalgen.harness.data import ModelData
from evalgen.harness.evaluation import evaluate
from evalgen.harness.grids import grid_path, save_sample_grid
from evalgen.harness.spec import RunSpec
from evalgen.harness.training import TrainOutcome, train
from evalgen.plugins import Plugins
from evalgen.provenance import git_commit, provenance
from evalgen.records import SCHEMA, ensure_writable, find_record, write_record
from evalgen.types import TrainState

def resolve_device(requested: str) -> torch.device:
    """"auto" picks CUDA when present; "cpu", "cuda", "cuda:1" are taken as given."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise EvalgenError(f"unknown device '{requested}'; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvalgenError("--device cuda was asked for, but no CUDA GPU is available; use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class RunContext:
    """What every run of a sweep shares."""

    plugins: Plugins
    out_dir: Path
    device: torch.device
    load_context: LoadContext
    rerun: bool = False
    _datasets: dict[str, Dataset] = field(default_factory=dict)

    def dataset(self, name: str) -> Dataset:
        if name not in self._datasets:
            self._datasets[name] = self.plugins.datasets.get(name).load(self.load_context)
        return self._datasets[name]


def _training_summary(outcome: TrainOutcome, budget_dict: dict[str, Any]) -> dict[str, Any]:
    return {
        "budget": budget_dict,
        "seconds": outcome.seconds,
        "steps": outcome.steps,
        "examples": outcome.examples,
        "stopped_by": outcome.stopped_by,
        "best_step": outcome.best_step,
        "best_valid_nll_nats": outcome.best_valid_nll,
        "diverged_at_step": outcome.diverged_at_step,
        "divergence": outcome.divergence,
        "history": outcome.history,
        "losses": outcome.losses,
    }


def run_one(spec: RunSpec, ctx: RunContext) -> tuple[dict[str, Any], torch.Tensor | None]:
    """Train and evaluate one spec; write its checkpoint, then its record. Returns both the
    record and the samples (stored values, CPU) or None if the run diverged."""
    plugins = ctx.plugins
    family = plugins.family(spec.plugin)
    model_spec = family.model(spec.model)
    budget = plugins.budgets.get(spec.budget)
    dataset = ctx.dataset(spec.dataset)
    if dataset.kind not in model_spec.data_kinds:
        kinds = ", ".join(sorted(k.value for k in model_spec.data_kinds))
        raise EvalgenError(f"{spec.plugin}:{spec.model} supports {kinds} data, "
                           f"but dataset '{spec.dataset}' is {dataset.kind.value}")
    if model_spec.max_dims is not None and math.prod(dataset.shape) > model_spec.max_dims:
        raise EvalgenError(f"{spec.plugin}:{spec.model} handles at most {model_spec.max_dims} dimensions; "
                           f"dataset '{spec.dataset}' has {math.prod(dataset.shape)}")
    if model_spec.needs_labels and not dataset.num_classes:
        raise EvalgenError(f"{spec.plugin}:{spec.model} trains on class labels, "
                           f"but dataset '{spec.dataset}' has none")
    representation = model_spec.representation_for(dataset.kind)
    info = dataset.info(representation)
    test_k = budget.importance_samples if spec.importance_samples is None else spec.importance_samples
    bound = BoundModel(plugins.hooks(spec.plugin), model_spec, importance_samples=test_k,
                       valid_importance_samples=min(budget.valid_importance_samples, test_k))

    bound.describe_likelihood(info, spec.config)
    seed_everything(spec.seed)
    model = bound.build(info, spec.config).to(ctx.device)
    state = TrainState(step=0, optimizers=bound.optimizers(model, spec.config),
                       generator=torch.Generator(device=ctx.device).manual_seed(spec.seed),
                       device=ctx.device, dataset=info, config=spec.config)
    data = ModelData(dataset, representation, ctx.device)
    outcome = train(bound, model, data, budget, state, label=f"{spec.plugin}:{spec.model}")

    samples = None
    metrics: dict[str, Any] = {}
    if outcome.diverged_at_step is None:
        metrics, samples = evaluate(bound, model, data, dataset, info, budget, spec.seed, ctx.device,
                                    plugins.metrics, ctx.dataset)
    record = {
        "schema": SCHEMA,
        "key": spec.key,
        "spec": spec.to_dict(),
        "status": "ok" if outcome.diverged_at_step is None else "diverged",
        "model": {
            "family_summary": family.summary,
            "summary": model_spec.summary,
            "reference": model_spec.reference,
            "likelihood": bound.likelihood.label,
            "importance_samples": _importance_samples(bound),
            "representation": representation.value,
            "parameters": sum(p.numel() for p in model.parameters()),
            "plugin_version": plugins.plugin_version(spec.plugin),
        },
        "dataset": {"name": dataset.name, "kind": dataset.kind.value, "shape": list(dataset.shape),
                    "levels": dataset.levels, "checksum": dataset.checksum, "source": dataset.source,
                    "sizes": [len(dataset.train), len(dataset.valid), len(dataset.test)]},
        "training": _training_summary(outcome, budget.to_dict()),
        "metrics": metrics,
        "samples_grid": _save_grid(samples, dataset, ctx.out_dir, spec.key),
        "provenance": provenance(ctx.device),
    }
    save_checkpoint(checkpoint_path(ctx.out_dir, spec.key), model, spec.to_dict())
    write_record(ctx.out_dir, record)
    return record, samples


def _save_grid(samples: torch.Tensor | None, dataset: Dataset, out_dir: Path, key: str) -> str | None:
    """The sample grid of an image run, as a path relative to ``out_dir``; None otherwise."""
    if samples is None or len(dataset.shape) != 3 or dataset.levels is None:
        return None
    path = save_sample_grid(samples, dataset.levels, grid_path(out_dir, key))
    return str(path.relative_to(out_dir))


def _importance_samples(bound: BoundModel) -> dict[str, int] | None:
    if bound.declared.sample_count is None:
        return None
    return {"test": bound.importance_samples, "validation": bound.valid_importance_samples}


@dataclass
class SweepResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[RunSpec, str]] = field(default_factory=list)


def run_sweep(specs: Iterable[RunSpec], ctx: RunContext,
              report: Callable[[str], None] = print) -> SweepResult:
    """Run every spec; a spec whose record exists is reused unless ``ctx.rerun``.

    A failing spec is reported and skipped; the others still run.
    """
    ensure_writable(ctx.out_dir)
    git_commit()  # read now, while it still names the code this process loaded (it is cached)
    result = SweepResult()
    for spec in specs:
        existing = None if ctx.rerun else find_record(ctx.out_dir, spec.key)
        if existing is not None:
            report(f"reusing {spec.key} (finished earlier; --rerun to train again)")
            result.records.append(existing)
            continue
        try:
            record, _ = run_one(spec, ctx)
        except EvalgenError as exc:
            if os.environ.get("EVALGEN_DEBUG") == "1":
                raise
            report(f"failed {spec.key}: {exc}")
            result.failures.append((spec, str(exc)))
            continue
        result.records.append(record)
        report(_one_line(record))
    return result


def _one_line(record: dict[str, Any]) -> str:
    spec, training, metrics = record["spec"], record["training"], record["metrics"]
    head = f"done {spec['plugin']}:{spec['model']} on {spec['dataset']} seed {spec['seed']}"
    if record["status"] == "diverged":
        return f"{head}: diverged at step {training['diverged_at_step']}: {training['divergence']}"
    parts = [_nll_text(metrics.get("test_nll"), record["model"]["likelihood"])]
    quality = metrics.get("sample_quality") or {}
    if "fid" in quality:
        parts.append(f"FID {quality['fid']:.2f} ({quality['extractor']})")
    modes = metrics.get("mode_coverage") or {}
    if "modes_covered" in modes:
        parts.append(f"{modes['modes_covered']}/{modes['num_modes']} modes")
    parts.append(f"{training['steps']} steps in {training['seconds']:.1f}s ({training['stopped_by']})")
    return f"{head}: " + ", ".join(parts)


def _nll_text(nll: dict[str, Any] | None, likelihood: str) -> str:
    if likelihood == "none":
        return "test NLL n/a (implicit model)"
    if not nll or "nats" not in nll:
        return "test NLL not computed"
    value = f"{nll['bits_per_dim']:.4f} bits/dim" if nll["bits_per_dim"] is not None else f"{nll['nats']:.4f} nats"
    kind = nll["kind"] if nll["kind"] == "exact" else f"{nll['kind']}: {nll['estimator']}"
    return f"test NLL {value} ({kind})"
