"""`evalgen score`: samples from anywhere, scored as a trained run's samples are, into a record.

The samples (a file or folder read by `evalgen.harness.samples_file`, or an array in memory) get
every sample-based metric that applies to the dataset (IS, FID, KID, precision/recall, mode
coverage) with the same extractors, cached reference features and per-metric seeds as a run
(`evalgen.harness.evaluation.score_samples`), so the numbers compare with the runs of the budget
named. The record is of the reserved plugin ``samples`` (its row reads ``samples:<name>``), has
no model and no likelihood (NLL "n/a (samples only)"), and its origin names the file, its
SHA-256 and the count (`evalgen.record_types.ExternalSamples`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evalgen.datasets.base import Dataset
from evalgen.errors import EvalgenError
from evalgen.harness.evaluation import score_samples
from evalgen.harness.runner import RunContext, dataset_section, save_grid
from evalgen.harness.samples_file import SampleTarget, array_sha256, checked_samples, read_samples, samples_sha256
from evalgen.provenance import provenance
from evalgen.record_types import (
    EXTERNAL_PLUGIN,
    EXTERNAL_SAMPLES,
    EvaluationSection,
    ExternalSamples,
    ModelSection,
    Origin,
    Provenance,
    RunRecord,
    TrainingSection,
)
from evalgen.records import SCHEMA, write_record
from evalgen.registry import check_name
from evalgen.runspec import RunSpec
from evalgen.types import LikelihoodKind

__all__ = ["SAMPLES_ONLY", "ScoreRequest", "score_external"]

#: The likelihood label of external samples.
SAMPLES_ONLY = "none (samples only)"


@dataclass(frozen=True)
class ScoreRequest:
    """What to score: ``samples`` (a path, or an array or tensor in memory) as ``name``, against
    ``dataset``, compared with the runs of ``budget``; ``extractor`` (None: the dataset's), ``key``
    (the array of an .npz), ``float01`` (floats in [0, 1]), ``seed`` (of the metrics' subsets)."""

    samples: Path | np.ndarray | torch.Tensor
    dataset: str
    name: str
    budget: str = "quick"
    extractor: str | None = None
    key: str | None = None
    float01: bool = False
    seed: int = 0


def _min_count(dataset: Dataset, request: ScoreRequest, ctx: RunContext) -> tuple[int, str]:
    """The fewest samples the dataset's metrics can use: D + 1 for a D-dimensional extractor."""
    if dataset.feature_extractor is None and request.extractor is None:
        return 1, ""
    from evalgen.metrics.fidelity import feature_dimension

    name, dim = feature_dimension(dataset, extractor=request.extractor, load_dataset=ctx.dataset)
    return dim + 1, f"a full-rank covariance of the {dim}-dimensional features of {name} needs {dim + 1}"


def _read(request: ScoreRequest, target: SampleTarget) -> tuple[torch.Tensor, str, str]:
    """The checked samples, the file name the record keeps and their SHA-256."""
    if isinstance(request.samples, (np.ndarray, torch.Tensor)):
        return checked_samples(request.samples, target, request.float01), "(in memory)", \
            array_sha256(request.samples)
    path = Path(request.samples)
    samples = read_samples(path, target, key=request.key, float01=request.float01)
    return samples, path.name + ("/" if path.is_dir() else ""), samples_sha256(path)


def _model_section(dataset: Dataset, file: str) -> ModelSection:
    return ModelSection(likelihood=SAMPLES_ONLY, likelihood_kind=LikelihoodKind.NONE, parameters=None,
                        summary=f"samples read from {file}", family_summary="external samples (evalgen score)",
                        reference="", representation=dataset.info().representation.value, plugin_version=None,
                        importance_samples=None, options=None)


def _training_section(ctx: RunContext, budget: str) -> TrainingSection:
    """No training: the budget is the one whose runs the samples are compared with."""
    return TrainingSection(budget=ctx.plugins.budgets.get(budget), seconds=0.0, steps=0, examples=0,
                           stopped_by=EXTERNAL_SAMPLES, best_step=None, best_valid_nll_nats=None,
                           diverged_at_step=None, divergence=None, history=())


def score_external(request: ScoreRequest, ctx: RunContext) -> RunRecord:
    """Score ``request``'s samples; write the record (and a sample grid) to ``ctx.out_dir``."""
    check_name("samples", request.name)
    dataset = ctx.dataset(request.dataset)
    budget = ctx.plugins.budgets.get(request.budget)
    if dataset.feature_extractor is None and request.extractor is None and dataset.modes is None:
        raise EvalgenError(f"dataset '{dataset.name}' has no sample-based metric (no feature extractor, no "
                           f"modes): nothing to score samples with; choose an --extractor")
    min_count, reason = _min_count(dataset, request, ctx)
    target = SampleTarget(dataset.name, tuple(dataset.shape), dataset.levels, min_count, reason)
    samples, file, sha256 = _read(request, target)
    metrics, seconds = score_samples(samples, dataset, ctx.plugins.metrics, budget, request.seed, ctx.device,
                                     ctx.dataset, extractor=request.extractor)
    metrics["sampling"] = {"num_samples": len(samples), "seconds": 0.0, "samples_per_second": None}
    spec = RunSpec(EXTERNAL_PLUGIN, request.name, dataset.name, budget.name, request.seed)
    origin = Origin(EXTERNAL_SAMPLES, samples=ExternalSamples(request.name, file, sha256, len(samples)))
    record = RunRecord(
        schema=SCHEMA, key=spec.key, status="ok", spec=spec, model=_model_section(dataset, file),
        dataset=dataset_section(dataset), training=_training_section(ctx, budget.name), metrics=metrics,
        samples_grid=save_grid(samples, dataset, ctx.out_dir, spec.key),
        provenance=Provenance(**provenance(ctx.device, ctx.executor)), evaluation=EvaluationSection(seconds=seconds),
        origin=origin)
    write_record(ctx.out_dir, record)
    return record
