"""Traces of sample quality and mode coverage over training, for every family.

At validation points (the training clock paused: evaluation time, charged to no budget) a
`Tracer` draws a fixed-size sample with a fixed sampling seed (`TRACE_SEED`, the same at every
point, so the points differ only by the model) and records:

* on the 2-D mixtures: the high-quality samples per mixture centre (as `mode_coverage`), the
  modes covered (at least one such sample) and the high-quality fraction;
* on images with a domain classifier (``Dataset.feature_extractor``): the samples per class
  under the classifier, and FID and KID of its embedding against the first
  `REFERENCE_EXAMPLES` examples of the *validation* split (so a checkpoint chosen by them never
  saw the test split), computed once per run; the classifier is loaded once per run.

``--trace`` sets the cost (`TraceSettings`): ``light`` draws ``budget.trace_samples`` at the
first validation point past each ``1 / budget.trace_points`` of the budget (its FLOPs, steps or
examples, whichever is nearest its limit: the same points on every machine), so a run has at most
``trace_points`` of them however many validations it makes; ``full`` `FULL_SAMPLES_FACTOR` times
as many samples at every validation point; ``off`` nothing. The first point is the model as
built (step 0), the last the end of training. Sampling runs under a forked global RNG and in
eval mode, so tracing does not change
what a likelihood model learns; an implicit model's kept parameters are those of the lowest
traced FID (`Tracer.selects`), stated in the record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from evalgen.budgets import Budget
from evalgen.errors import EvalgenError
from evalgen.harness.contract import CheckedHooks
from evalgen.metrics.dynamics import TracePoint, Traces

if TYPE_CHECKING:
    from evalgen.datasets.base import Dataset
    from evalgen.types import DatasetInfo

__all__ = ["FULL_SAMPLES_FACTOR", "REFERENCE_EXAMPLES", "TRACE_LEVELS", "TRACE_SEED", "TraceSettings", "Tracer"]

TRACE_LEVELS = ("off", "light", "full")
DEFAULT_TRACE = "light"
#: The sampling seed of every trace point.
TRACE_SEED = 31_337
FULL_SAMPLES_FACTOR = 4
#: Validation examples whose classifier features are the traces' FID/KID reference.
REFERENCE_EXAMPLES = 2_000
KID_SUBSETS = 20
BATCH = 500


@dataclass(frozen=True)
class TraceSettings:
    """How much is traced: ``num_samples`` per point, at most ``points`` of them spread over the
    budget (None: at every validation point)."""

    level: str
    num_samples: int
    points: int | None

    @property
    def cadence(self) -> str:
        if self.points is None:
            return "every validation point, and the model as built"
        return (f"the first validation point past each 1/{self.points} of the budget, the last one, "
                f"and the model as built")

    @classmethod
    def of(cls, level: str, budget: Budget) -> TraceSettings | None:
        if level not in TRACE_LEVELS:
            raise EvalgenError(f"unknown trace level '{level}' (known: {', '.join(TRACE_LEVELS)})")
        if level == "off" or not budget.trains:
            return None
        if level == "full":
            return cls(level, FULL_SAMPLES_FACTOR * budget.trace_samples, None)
        return cls(level, budget.trace_samples, budget.trace_points)


class _ClassifierTrace:
    """Class histogram, FID and KID of samples under a domain classifier (loaded once)."""

    def __init__(self, dataset: Dataset, load_dataset: Callable[[str], Dataset] | None) -> None:
        from evalgen.metrics.extractors import EMBEDDING, LOGITS, DomainFeatureExtractor, ensure_extractor, to_uint8

        # the record keeps the cache repairs on the way (`Traces.warnings`), as sample quality's do
        weights = ensure_extractor(dataset.feature_extractor, dataset=dataset, load_dataset=load_dataset, warn=False)
        self.name, self.levels, self.to_uint8, self.notes = weights.name, dataset.levels, to_uint8, weights.notes
        self.extractor = DomainFeatureExtractor(weights.name, [LOGITS, EMBEDDING],
                                                feature_extractor_weights_path=weights.path,
                                                expected_sha256=weights.sha256)
        reference = dataset.valid.x[:REFERENCE_EXAMPLES]
        self.num_reference = len(reference)
        self.reference = self._features(reference)[1].numpy()

    @torch.no_grad()
    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.to_uint8(x, self.levels)
        parts = [self.extractor(images[i:i + BATCH]) for i in range(0, len(images), BATCH)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def point(self, samples: torch.Tensor) -> dict[str, Any]:
        from evalgen.metrics.fidelity_math import DEFAULTS, frechet_distance
        from evalgen.metrics.kid import kernel_inception_distance

        logits, embedding = self._features(samples)
        counts = torch.bincount(logits.argmax(dim=1), minlength=logits.shape[1])
        fid, _ = frechet_distance(embedding.numpy(), self.reference)
        size = min(len(samples), self.num_reference, DEFAULTS["kid_subset_size"])
        kid, _ = kernel_inception_distance(embedding.numpy(), self.reference, subsets=KID_SUBSETS, subset_size=size,
                                           seed=DEFAULTS["rng_seed"])
        return {"counts": counts.tolist(), "fid": fid, "kid": kid, "high_quality": None}


def _mixture_point(samples: torch.Tensor, dataset: Dataset) -> dict[str, Any]:
    from evalgen.metrics.modes import assign_to_modes

    modes = dataset.modes
    index, high_quality = assign_to_modes(samples.reshape(len(samples), -1), modes.centers, modes.std)
    counts = torch.bincount(index[high_quality], minlength=len(modes.centers))
    return {"counts": counts.tolist(), "fid": None, "kid": None, "high_quality": float(high_quality.double().mean())}


def trace_reason(dataset: Dataset) -> str | None:
    """None when ``dataset`` can be traced, else why not."""
    from evalgen.metrics.extractors import DOMAIN_EXTRACTORS

    if dataset.modes is not None:
        return None
    if dataset.levels is None or len(dataset.shape) != 3:
        return f"dataset '{dataset.name}' has neither mixture modes nor images"
    if dataset.feature_extractor not in DOMAIN_EXTRACTORS:
        return f"dataset '{dataset.name}' has no domain classifier to trace samples with"
    return None


class Tracer:
    """Traces one run's model during training (module docstring)."""

    def __init__(self, hooks: CheckedHooks, dataset: Dataset, info: DatasetInfo, settings: TraceSettings,
                 device: torch.device, load_dataset: Callable[[str], Dataset] | None = None) -> None:
        self.hooks, self.dataset, self.info, self.settings, self.device = hooks, dataset, info, settings, device
        self.points: list[TracePoint] = []
        self.seconds = 0.0
        self.slot = 0  # the last 1/trace_points of the budget that has a point
        self.reason = trace_reason(dataset)
        self.classifier = None
        if self.reason is None and dataset.modes is None:
            with torch.random.fork_rng(devices=[]):  # a cold cache trains the classifier: keep the run's RNG
                self.classifier = _ClassifierTrace(dataset, load_dataset)

    @property
    def selects(self) -> bool:
        """Whether the traced FID picks the kept parameters: implicit models, with a classifier."""
        return self.classifier is not None and not self.hooks.has_likelihood

    def due(self, budget_fraction: float, last: bool) -> bool:
        """Whether a validation point, ``budget_fraction`` of the way through the budget, is traced."""
        if self.reason is not None:
            return False
        if self.settings.points is None or last:
            return True
        slot = math.floor(budget_fraction * self.settings.points)
        if slot <= self.slot:
            return False
        self.slot = slot
        return True

    def trace(self, model: nn.Module, step: int, flops: int) -> TracePoint | None:
        """One point: the model's fixed-seed sample, scored (its mode in eval mode, the RNG forked)."""
        if self.reason is not None:
            return None
        from evalgen.harness.evaluation import draw_samples

        started, was_training = time.perf_counter(), model.training
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                samples, _ = draw_samples(self.hooks, model, self.info, self.settings.num_samples, TRACE_SEED,
                                          self.device)
        finally:
            model.train(was_training)
        scored = (self.classifier.point(samples) if self.classifier is not None
                  else _mixture_point(samples, self.dataset))
        counts = scored["counts"]
        point = TracePoint(step=step, flops=flops, fid=_finite(scored["fid"]), kid=_finite(scored["kid"]),
                           modes_covered=int(np.sum(np.asarray(counts) >= 1)), high_quality=scored["high_quality"],
                           counts=tuple(int(c) for c in counts))
        self.points.append(point)
        self.seconds += time.perf_counter() - started
        return point

    def section(self, selected_step: int | None = None) -> Traces:
        """What the record keeps (``training.traces``)."""
        classifier = self.classifier
        source = ("high-quality samples per mixture centre" if classifier is None
                  else f"samples per class under {classifier.name}")
        reference = None if classifier is None else f"{self.dataset.name} valid[:{classifier.num_reference}]"
        return Traces(
            level=self.settings.level, num_samples=self.settings.num_samples,
            cadence=self.settings.cadence, max_points=self.settings.points,
            sample_seed=TRACE_SEED, counts_of=source, extractor=None if classifier is None else classifier.name,
            reference=reference, seconds=self.seconds, points=tuple(self.points), skipped=self.reason,
            warnings=() if classifier is None else classifier.notes,
            selected_by=("lowest traced FID against the validation split" if self.selects and selected_step is not None
                         else None))


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
