"""Run one spec end to end, and sweeps of specs that survive each other's failures."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import filelock
import torch

from evalgen.budgets import format_flops
from evalgen.datasets.base import Dataset, LoadContext
from evalgen.errors import EvalgenError
from evalgen.harness.background import background_checkpoint_path, train_background
from evalgen.harness.checkpoints import CHECKPOINTS_DIR, checkpoint_path, save_checkpoint
from evalgen.harness.evaluation import evaluate
from evalgen.harness.grids import SAMPLES_DIR, grid_path, samples_file_path, save_sample_grid, save_samples_file
from evalgen.harness.resolved import ResolvedRun, resolve_run
from evalgen.harness.tracing import DEFAULT_TRACE, Tracer, TraceSettings
from evalgen.harness.training import TrainOutcome, build_and_train, seed_everything  # noqa: F401 - re-exported
from evalgen.plugins import Plugins
from evalgen.provenance import git_commit, provenance
from evalgen.record_types import (
    NO_TRAINING,
    TRAINED,
    DatasetSection,
    EvaluationSection,
    HistoryRow,
    ImportanceSamples,
    ModelSection,
    Origin,
    Provenance,
    RunRecord,
    TrainingSection,
)
from evalgen.records import RECORDS_DIR, SCHEMA, ensure_writable, find_record, record_path, write_record
from evalgen.runspec import RunSpec
from evalgen.storage import remove_stale_temporaries
from evalgen.table_columns import TableColumn, metric_columns
from evalgen.types import LikelihoodKind


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


@dataclass
class RunContext:
    """What every run of a sweep shares."""

    plugins: Plugins
    out_dir: Path
    device: torch.device
    load_context: LoadContext
    rerun: bool = False
    #: Where the run executes, for the record's provenance: "local", "local (N jobs)", "slurm".
    executor: str = "local"
    #: Also write every sample the run scored to ``samples/<key>.npz`` (`save_samples_file`).
    save_samples: bool = False
    #: ``--trace``: off, light or full (`evalgen.harness.tracing`)
    trace: str = DEFAULT_TRACE
    _datasets: dict[str, Dataset] = field(default_factory=dict)

    def dataset(self, name: str) -> Dataset:
        if name not in self._datasets:
            self._datasets[name] = self.plugins.datasets.get(name).load(self.load_context)
        return self._datasets[name]


def _training_section(outcome: TrainOutcome, run: ResolvedRun) -> TrainingSection:
    return TrainingSection(
        budget=run.budget, seconds=outcome.seconds, steps=outcome.steps, examples=outcome.examples,
        stopped_by=outcome.stopped_by, best_step=outcome.best_step, best_valid_nll_nats=outcome.best_valid_nll,
        diverged_at_step=outcome.diverged_at_step, divergence=outcome.divergence,
        history=tuple(HistoryRow(*row) for row in outcome.history), losses=outcome.losses,
        flops=outcome.flops, flop_rate=outcome.flops / outcome.seconds if outcome.seconds > 0 else None,
        flop_counting=outcome.flop_counting, budget_fraction=outcome.budget_fraction, traces=outcome.traces)


def model_section(run: ResolvedRun, model: torch.nn.Module, plugins: Plugins) -> ModelSection:
    hooks = run.hooks
    samples = None if hooks.declared.sample_count is None else ImportanceSamples(
        test=hooks.importance_samples, validation=hooks.valid_importance_samples)
    return ModelSection(
        likelihood=hooks.likelihood.label, likelihood_kind=hooks.likelihood.kind,
        parameters=sum(p.numel() for p in model.parameters()), summary=run.model.summary,
        family_summary=run.family.summary, reference=run.model.reference, representation=run.representation.value,
        plugin_version=plugins.plugin_version(run.spec.plugin), importance_samples=samples,
        options=run.recorded_options)


def dataset_section(dataset: Dataset) -> DatasetSection:
    return DatasetSection(name=dataset.name, kind=dataset.kind.value, shape=tuple(dataset.shape),
                          levels=dataset.levels, checksum=dataset.checksum, source=dataset.source,
                          sizes=(len(dataset.train), len(dataset.valid), len(dataset.test)))


def _tracer(run: ResolvedRun, ctx: RunContext) -> Tracer | None:
    settings = TraceSettings.of(ctx.trace, run.budget)
    if settings is None:
        return None
    return Tracer(run.hooks, run.dataset, run.info, settings, ctx.device, load_dataset=ctx.dataset)


def run_one(spec: RunSpec, ctx: RunContext,
            prebuilt: torch.nn.Module | None = None) -> tuple[RunRecord, torch.Tensor | None]:
    """Train and evaluate one spec; write its checkpoint, then its record. Returns both the
    record and the samples (stored values, CPU) or None if the run diverged. ``prebuilt``: a
    model built (and trained) elsewhere, evaluated as it is (``spec``'s budget trains nothing)."""
    run = resolve_run(spec, ctx.plugins, ctx.dataset(spec.dataset))
    if prebuilt is not None and run.budget.trains:
        raise EvalgenError(f"a model built elsewhere is evaluated as it is: use a budget of no training "
                           f"(none), not '{run.budget.name}'")
    model, data, outcome = build_and_train(run, run.dataset, run.spec.seed, ctx.device, run.label, prebuilt,
                                           tracer=_tracer(run, ctx))
    samples, metrics, seconds, background = None, {}, {}, None
    if outcome.diverged_at_step is None:
        background = train_background(run, ctx.device, ctx.plugins.outlier_scores)
        metrics, samples, seconds = evaluate(run, model, data, ctx.device, ctx.plugins.metrics, ctx.dataset,
                                             outlier_scores=ctx.plugins.outlier_scores, background=background,
                                             traces=outcome.traces)
        if background.model is not None:
            seconds["background_training"] = background.seconds
    record = RunRecord(
        schema=SCHEMA, key=spec.key, status="ok" if outcome.diverged_at_step is None else "diverged", spec=spec,
        model=model_section(run, model, ctx.plugins), dataset=dataset_section(run.dataset),
        training=_training_section(outcome, run), metrics=metrics,
        samples_grid=save_grid(samples, run.dataset, ctx.out_dir, spec.key),
        provenance=Provenance(**provenance(ctx.device, ctx.executor), weights_sha256=run.hooks.weights_sha256(model)),
        evaluation=EvaluationSection(seconds=seconds), origin=Origin(TRAINED if run.budget.trains else NO_TRAINING))
    save_checkpoint(checkpoint_path(ctx.out_dir, spec.key), model, spec.to_dict())
    if background is not None and background.model is not None:
        save_checkpoint(background_checkpoint_path(ctx.out_dir, spec.key), background.model, spec.to_dict())
    if ctx.save_samples and samples is not None:
        save_samples_file(samples, samples_file_path(ctx.out_dir, spec.key))
    write_record(ctx.out_dir, record)
    return record, samples


def save_grid(samples: torch.Tensor | None, dataset: Dataset, out_dir: Path, key: str) -> str | None:
    """The sample grid of an image run, as a path relative to ``out_dir``; None otherwise."""
    if samples is None or len(dataset.shape) != 3 or dataset.levels is None:
        return None
    path = save_sample_grid(samples, dataset.levels, grid_path(out_dir, key))
    return str(path.relative_to(out_dir))


@dataclass
class SweepResult:
    records: list[RunRecord] = field(default_factory=list)
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


def reusable_record(spec: RunSpec, out_dir: Path, report: Callable[[str], None]) -> RunRecord | None:
    """The finished record of ``spec`` in ``out_dir``, if a valid one exists. A record that cannot
    be reused (truncated, of the wrong shape, another run's) is moved aside, said in one line, and
    None is returned: the run is trained again."""
    try:
        return find_record(out_dir, spec.key)
    except EvalgenError as exc:
        path = record_path(out_dir, spec.key)
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


def _run_or_reuse(spec: RunSpec, ctx: RunContext, report: Callable[[str], None],
                  columns: Mapping[str, TableColumn]) -> RunRecord:
    with _spec_lock(spec, ctx, report) as waited:
        existing = None if ctx.rerun and not waited else reusable_record(spec, ctx.out_dir, report)
        if existing is not None:
            report(f"reusing {spec.key} (finished {'by the other run' if waited else 'earlier'}; "
                   f"--rerun to train again)")
            return existing
        record, _ = run_one(spec, ctx)
        report(summary_line(record, columns))
        return record


def run_sweep(specs: Iterable[RunSpec], ctx: RunContext,
              report: Callable[[str], None] = print) -> SweepResult:
    """Run every spec; a spec whose valid record exists is reused unless ``ctx.rerun``.

    A failing spec is reported and skipped; the others still run.
    """
    _prepare_out_dir(ctx.out_dir)
    git_commit()  # read now, while it still names the code this process loaded (it is cached)
    result = SweepResult()
    columns = {column.name: column for column in metric_columns(ctx.plugins.metrics)}
    for spec in specs:
        try:
            result.records.append(_run_or_reuse(spec, ctx, report, columns))
        except EvalgenError as exc:
            if os.environ.get("EVALGEN_DEBUG") == "1":
                raise
            report(f"failed {spec.key}: {exc}")
            result.failures.append((spec, str(exc)))
    return result


#: The columns the one-line summary of a finished run names, after its test NLL.
SUMMARY_COLUMNS = ("fid", "modes_covered")


def summary_line(record: RunRecord, columns: Mapping[str, TableColumn]) -> str:
    """What `evalgen run` (and `score`, `eval`) says when a record is written: its NLL, FID and
    modes where it has them, and what its training was."""
    spec, training = record.spec, record.training
    variant = record.origin.variant
    head = f"done {spec.plugin}:{spec.model}{f' ({variant})' if variant else ''} on {spec.dataset} seed {spec.seed}"
    if not record.finished:
        return f"{head}: diverged at step {training.diverged_at_step}: {training.divergence}"
    samples = record.origin.samples
    parts = [f"{samples.count} samples from {samples.file}" if samples is not None else _nll_text(record, columns)]
    for name in SUMMARY_COLUMNS:
        value, label, total = columns[name].read(record) if name in columns else (None, None, None)
        if value is not None:
            number = f"{value:.0f}/{total:.0f}" if total is not None else f"{value:.{columns[name].spec.digits}f}"
            parts.append(f"{columns[name].spec.title} {number}" + (f" ({label})" if label else ""))
    if samples is None:
        parts.append(f"{training.steps} steps, {format_flops(training.flops)} in {training.seconds:.1f}s "
                     f"({training.stopped_by}" + (f" at {training.budget_fraction:.0%} of the budget: cut short"
                                                  if training.cut_short else "") + ")")
    if record.evaluation is not None:
        parts.append(f"evaluated in {record.evaluation.total_seconds:.1f}s")
    return f"{head}: " + ", ".join(parts)


def _nll_text(record: RunRecord, columns: Mapping[str, TableColumn]) -> str:
    if not record.model.has_likelihood:
        return "test NLL n/a (implicit model)"
    bits, nats = (columns[name].read(record)[0] if name in columns else None for name in ("bits_per_dim", "nll_nats"))
    if nats is None:
        return "test NLL not computed"
    value = f"{bits:.4f} bits/dim" if bits is not None else f"{nats:.4f} nats"
    kind = record.model.likelihood_kind
    return f"test NLL {value} ({'exact' if kind is LikelihoodKind.EXACT else record.model.likelihood})"
