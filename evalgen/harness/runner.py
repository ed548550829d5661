"""Run one spec end to end, and sweeps of specs that survive each other's failures."""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import torch

from evalgen.datasets.base import Dataset, LoadContext
from evalgen.errors import EvalgenError
from evalgen.harness.checkpoints import CHECKPOINTS_DIR, checkpoint_path, save_checkpoint
from evalgen.harness.contract import BoundModel
from evalgen.harness.data import ModelData
from evalgen.harness.evaluation import evaluate
from evalgen.harness.grids import SAMPLES_DIR, grid_path, save_sample_grid
from evalgen.harness.training import TrainOutcome, train
from evalgen.plugins import Plugins
from evalgen.provenance import git_commit, provenance
from evalgen.records import RECORDS_DIR, SCHEMA, ensure_writable, find_record, record_path, write_record
from evalgen.runspec import RunSpec
from evalgen.storage import remove_stale_temporaries
from evalgen.types import TrainState


def resolve_device(requested: str) -> torch.device:
    """"auto" picks CUDA when present; "cpu", "cuda", "cuda:1" are taken as given. Other device
    types (meta, mps, xla, ...) are refused: the harness, its metrics and the bundled families
    are built and tested for CPU and CUDA only."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise EvalgenError(f"unknown device '{requested}'; use auto, cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise EvalgenError(f"device '{requested}' is not supported (evalgen runs on CPU and CUDA); "
                           f"use auto, cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvalgenError("--device cuda was asked for, but no CUDA GPU is available; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise EvalgenError(f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                           f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}")
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


#: The folders of ``--out`` a sweep writes into.
OUTPUT_FOLDERS = (RECORDS_DIR, CHECKPOINTS_DIR, SAMPLES_DIR)
#: Per-spec lock files (see `_spec_lock`), hidden from readers of records/.
LOCKS_DIR = ".locks"


def _prepare_out_dir(out_dir: Path) -> None:
    """Fail now if results could not be saved; remove what killed runs left half-written."""
    ensure_writable(out_dir, (*OUTPUT_FOLDERS, LOCKS_DIR))
    for folder in (out_dir, *(out_dir / name for name in OUTPUT_FOLDERS)):
        remove_stale_temporaries(folder)


def _reusable(spec: RunSpec, ctx: RunContext, report: Callable[[str], None]) -> dict[str, Any] | None:
    """The finished record of ``spec``, if a valid one exists. A record that cannot be reused
    (truncated, of the wrong shape, another run's) is moved aside, said in one line, and retrained."""
    try:
        return find_record(ctx.out_dir, spec.key)
    except EvalgenError as exc:
        path = record_path(ctx.out_dir, spec.key)
        aside = path.with_name(path.name + ".invalid")
        try:
            os.replace(path, aside)
        except OSError as move:
            raise EvalgenError(f"{exc}; and it cannot be moved aside ({move.strerror}): "
                               f"delete it to run {spec.key} again") from None
        report(f"ignoring {path}: {exc} (moved to {aside.name}; training {spec.key} again)")
        return None


@contextlib.contextmanager
def _spec_lock(spec: RunSpec, ctx: RunContext, report: Callable[[str], None]) -> Iterator[bool]:
    """Hold the lock of ``spec`` in ``--out``: two `evalgen run`s on one folder never train the
    same spec at once; the second waits and then reuses the first one's record. Yields whether
    it had to wait."""
    path = ctx.out_dir / LOCKS_DIR / f"{spec.key}.lock"
    if path.is_symlink():  # a lock file is opened for writing: never through a planted link
        raise EvalgenError(f"{path} is a symbolic link; delete it (evalgen makes its own lock files there)")
    lock = filelock.FileLock(path)
    try:
        lock.acquire(timeout=0)
        waited = False
    except filelock.Timeout:
        report(f"waiting for {spec.key}: another evalgen run on {ctx.out_dir} is training it")
        lock.acquire()
        waited = True
    try:
        yield waited
    finally:
        lock.release()


def _run_or_reuse(spec: RunSpec, ctx: RunContext, report: Callable[[str], None]) -> dict[str, Any]:
    with _spec_lock(spec, ctx, report) as waited:
        existing = None if ctx.rerun and not waited else _reusable(spec, ctx, report)
        if existing is not None:
            report(f"reusing {spec.key} (finished {'by the other run' if waited else 'earlier'}; "
                   f"--rerun to train again)")
            return existing
        record, _ = run_one(spec, ctx)
        report(_one_line(record))
        return record


def run_sweep(specs: Iterable[RunSpec], ctx: RunContext,
              report: Callable[[str], None] = print) -> SweepResult:
    """Run every spec; a spec whose valid record exists is reused unless ``ctx.rerun``.

    A failing spec is reported and skipped; the others still run.
    """
    _prepare_out_dir(ctx.out_dir)
    git_commit()  # read now, while it still names the code this process loaded (it is cached)
    result = SweepResult()
    for spec in specs:
        try:
            result.records.append(_run_or_reuse(spec, ctx, report))
        except EvalgenError as exc:
            if os.environ.get("EVALGEN_DEBUG") == "1":
                raise
            report(f"failed {spec.key}: {exc}")
            result.failures.append((spec, str(exc)))
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
