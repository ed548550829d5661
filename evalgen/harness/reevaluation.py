"""`evalgen eval`: a finished run's checkpoint evaluated again, under other evaluation settings.

The checkpoint is untrusted: it is loaded with ``weights_only=True`` (`read_checkpoint`), must be
of the record's run, and must fit the model the record's spec rebuilds. The new record keeps the
original's training block verbatim, adds its own evaluation (its origin names the original's
key, the checkpoint's SHA-256 and the settings that changed) and has its own key (the original's
plus ``--eval...``, `evalgen.record_types.Reevaluation.key_suffix`). Evaluated with the
original's settings, it reproduces the original's metrics exactly: the model is rebuilt after
the same seeding, and every part of the evaluation is seeded by its name
(`evalgen.harness.evaluation.seed_part`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from evalgen.errors import EvalgenError, unknown_name
from evalgen.harness.background import Background, background_checkpoint_path, background_reason, background_seed
from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint
from evalgen.harness.data import ModelData
from evalgen.harness.evaluation import evaluate
from evalgen.harness.resolved import ResolvedRun, resolve_run
from evalgen.harness.runner import RunContext, dataset_section, model_section, save_grid, seed_everything
from evalgen.metrics.outlier_scores import BACKGROUND_MUTATION_RATE
from evalgen.provenance import provenance
from evalgen.record_types import (
    EXTERNAL_SAMPLES,
    REEVALUATED,
    EvaluationSection,
    Origin,
    Provenance,
    Reevaluation,
    RunRecord,
)
from evalgen.records import SCHEMA, read_record, write_record

__all__ = ["EvalSettings", "reevaluate"]


@dataclass(frozen=True)
class EvalSettings:
    """What `evalgen eval` changes; None (or empty) keeps the original's.

    Attributes:
        importance_samples: the test-set K of an importance-sampled likelihood (IWAE's K).
        num_samples: samples drawn for the sample-based metrics.
        metrics: the metrics to compute, by registered name; empty: all of them.
    """

    importance_samples: int | None = None
    num_samples: int | None = None
    metrics: Sequence[str] = ()


def _original(path: Path) -> RunRecord:
    record = read_record(path)
    if record.origin.kind == EXTERNAL_SAMPLES:
        raise EvalgenError(f"{path} holds external samples: there is no model to evaluate again")
    if record.origin.reevaluation is not None:
        raise EvalgenError(f"{path} is itself a re-evaluation of {record.origin.reevaluation.of}; "
                           f"evaluate that record instead")
    if not record.finished:
        raise EvalgenError(f"{path}: the run diverged at step {record.training.diverged_at_step}; "
                           f"there is no trained model to evaluate")
    return record


def _load_weights(model: torch.nn.Module, record: RunRecord, checkpoint: Path) -> str:
    """Load the checkpoint into ``model``; its SHA-256. Anything that does not fit is one line."""
    if checkpoint.is_symlink() or not checkpoint.is_file():
        raise EvalgenError(f"no checkpoint {checkpoint} for {record.key} (evalgen run writes it beside records/)")
    blob = read_checkpoint(checkpoint)
    if blob["spec"] != record.spec.to_dict():
        raise EvalgenError(f"{checkpoint} is the checkpoint of another run than {record.key}; "
                           f"it cannot be evaluated as this one")
    state = blob["state_dict"]
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EvalgenError(f"{checkpoint}: its state_dict holds values that are not tensors")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:200]
        raise EvalgenError(f"{checkpoint} does not fit the model its spec builds: {first}") from None
    return hashlib.sha256(checkpoint.read_bytes()).hexdigest()


def _resolved(record: RunRecord, settings: EvalSettings, ctx: RunContext) -> ResolvedRun:
    run = resolve_run(record.spec, ctx.plugins, ctx.dataset(record.spec.dataset))
    if dataset_section(run.dataset) != record.dataset:
        raise EvalgenError(f"dataset '{record.spec.dataset}' here is not the one {record.key} was trained on "
                           f"(its checksum, sizes or shape differ); evaluate it where that dataset is")
    if settings.importance_samples is not None:
        if run.hooks.declared.sample_count is None:
            raise EvalgenError(f"{run.label}: its likelihood ({run.hooks.likelihood.label}) takes no importance "
                               f"samples; leave out --importance-samples")
        run.hooks.importance_samples = settings.importance_samples  # the test K; validation's was training's
    # The original's sample and dequantization draws (1 for records older than them): its training
    # block, budget included, is this record's, and the original settings give the original numbers.
    # A record is untrusted: more draws than its budget takes here is refused, not run.
    theirs = record.training.budget
    for field in DRAW_FIELDS:
        if getattr(theirs, field) > getattr(run.budget, field):
            raise EvalgenError(f"{record.key}: its budget says {field}={getattr(theirs, field)}, more than budget "
                               f"'{run.budget.name}' takes ({getattr(run.budget, field)}); it is not a record of "
                               f"that budget")
    run.hooks.dequantization_samples = theirs.dequantization_samples
    budget = dataclasses.replace(run.budget, sample_draws=theirs.sample_draws)
    if settings.num_samples is not None:
        budget = dataclasses.replace(budget, num_samples=settings.num_samples)
    return dataclasses.replace(run, budget=budget)


#: The budget's draw counts a re-evaluation takes from the original record.
DRAW_FIELDS = ("sample_draws", "dequantization_samples")


def _chosen_metrics(settings: EvalSettings, ctx: RunContext) -> frozenset[str] | None:
    known = [metric.name for metric in ctx.plugins.metrics]
    for name in settings.metrics:
        if name not in known:
            raise unknown_name("metric", name, known)
    return frozenset(settings.metrics) or None


def _background(run: ResolvedRun, original: RunRecord, path: Path, ctx: RunContext) -> Background:
    """The original run's background model, from its checkpoint beside the run's (checked as the
    run's is), or why there is none."""
    reason = background_reason(run, ctx.plugins.outlier_scores)
    if reason is not None:
        return Background.skipped(reason)
    checkpoint = background_checkpoint_path(path.parent.parent, original.key)
    if not checkpoint.is_file() or checkpoint.is_symlink():
        return Background.skipped(f"no background checkpoint {checkpoint.name} beside {original.key}'s "
                                  f"(records older than the likelihood-ratio score have none)")
    seed = background_seed(original.spec.seed)
    seed_everything(seed)
    model = run.hooks.build(run.info, run.options)
    _load_weights(model, original, checkpoint)
    # What the original record says of its training (it is the same model: the checkpoint is of
    # this run); a record without it gets what is known here.
    recorded = (original.metric("outliers") or {}).get("background")
    summary = dict(recorded) if isinstance(recorded, dict) and "skipped" not in recorded else {
        "mutation_rate": BACKGROUND_MUTATION_RATE, "seed": seed, "model": run.label, "checkpoint": checkpoint.name}
    return Background(model.to(ctx.device).eval(), summary)


def reevaluate(path: Path, settings: EvalSettings, ctx: RunContext) -> RunRecord:
    """Evaluate the run of the record at ``path`` again from its checkpoint (beside its records/
    folder); write the new record (and its sample grid) to ``ctx.out_dir``."""
    original = _original(path)
    only = _chosen_metrics(settings, ctx)
    run = _resolved(original, settings, ctx)
    seed_everything(original.spec.seed)  # as before training: a build that draws gets the same numbers
    model = run.hooks.build(run.info, run.options)
    checkpoint_sha256 = _load_weights(model, original, checkpoint_path(path.parent.parent, original.key))
    model = model.to(ctx.device).eval()
    data = ModelData(run.dataset, run.representation, ctx.device)
    background = _background(run, original, path, ctx)
    metrics, samples, seconds = evaluate(run, model, data, ctx.device, ctx.plugins.metrics, ctx.dataset, only,
                                         outlier_scores=ctx.plugins.outlier_scores, background=background,
                                         traces=original.training.traces)
    origin = Origin(REEVALUATED, reevaluation=Reevaluation(
        of=original.key, checkpoint_sha256=checkpoint_sha256, importance_samples=settings.importance_samples,
        num_samples=settings.num_samples, metrics=tuple(sorted(only)) if only else None))
    key = original.spec.key + origin.key_suffix
    record = RunRecord(
        schema=SCHEMA, key=key, status="ok", spec=original.spec, model=model_section(run, model, ctx.plugins),
        dataset=original.dataset, training=original.training, metrics=metrics,
        samples_grid=save_grid(samples, run.dataset, ctx.out_dir, key),
        provenance=Provenance(**provenance(ctx.device, ctx.executor),
                              weights_sha256=original.provenance.weights_sha256),
        evaluation=EvaluationSection(seconds=seconds), origin=origin)
    write_record(ctx.out_dir, record)
    return record
