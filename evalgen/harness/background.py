"""The background model of the likelihood-ratio outlier score (Ren et al., NeurIPS 2019).

A model of the same family, variant, options and budget as the run's, trained by the harness on
a perturbed copy of the training data (`perturbed_dataset`: every stored value of the train and
validation splits replaced, with probability `BACKGROUND_MUTATION_RATE`, by one uniform over the
levels; the test split is never used to train or select it). It is seeded from the run's seed
(`background_seed`), so the same run seed gives the same background model on any machine, and
its training is recorded in the run's ``outliers.background`` section. Its checkpoint is saved
beside the run's (``checkpoints/<key>.background.pt``) so `evalgen eval` scores it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evalgen.datasets.base import Dataset, Split
from evalgen.harness.checkpoints import CHECKPOINTS_DIR
from evalgen.harness.resolved import ResolvedRun
from evalgen.harness.training import TrainOutcome, build_and_train
from evalgen.metrics.outlier_scores import BACKGROUND_MUTATION_RATE, OutlierScore, perturb
from evalgen.types import DataKind, DatasetInfo

__all__ = ["Background", "background_checkpoint_path", "background_reason", "background_seed",
           "perturbed_dataset", "train_background"]

IMAGE_KINDS = (DataKind.BINARY, DataKind.DISCRETE)


def background_seed(seed: int) -> int:
    """The background model's seed (its build, its batches, its perturbation) from the run's."""
    return int.from_bytes(hashlib.sha256(f"{seed}/background".encode()).digest()[:6], "little")


def background_checkpoint_path(out_dir: Path, key: str) -> Path:
    return out_dir / CHECKPOINTS_DIR / f"{key}.background.pt"


def perturbed_dataset(dataset: Dataset, rate: float, seed: int) -> Dataset:
    """``dataset`` with its train and validation values perturbed (`perturb`), from one CPU
    generator seeded with ``seed`` (train first); the test split and labels unchanged."""
    generator = torch.Generator().manual_seed(seed)
    train = Split(perturb(dataset.train.x, dataset.levels, rate, generator), dataset.train.y)
    valid = Split(perturb(dataset.valid.x, dataset.levels, rate, generator), dataset.valid.y)
    return dataclasses.replace(dataset, train=train, valid=valid,
                               checksum=f"{dataset.checksum}/perturbed/{rate}/{seed}")


def background_reason(run: ResolvedRun, scores: Iterable[OutlierScore]) -> str | None:
    """None if ``run`` gets a background model, else why not (for the record)."""
    if not any("background" in score.needs for score in scores):
        return "no registered outlier score needs one"
    if not run.hooks.has_likelihood:
        return "the model has no likelihood"
    if run.info.kind not in IMAGE_KINDS or len(run.info.shape) != 3 or run.info.levels is None:
        return "outlier sets are scored for images only"
    if not run.budget.trains:
        return f"a background model is trained under the run's budget, and '{run.budget.name}' trains nothing"
    return None


@dataclass
class Background:
    """A background model and what the record says about it."""

    model: nn.Module | None
    summary: dict[str, Any]
    #: wall-clock seconds of its training: machine-dependent, so in the record's ``evaluation``
    #: seconds, not in the outliers section (whose numbers are the same on every machine)
    seconds: float = 0.0

    @classmethod
    def skipped(cls, reason: str) -> Background:
        return cls(None, {"skipped": reason})

    def inputs(self, run: ResolvedRun, info: DatasetInfo, device: torch.device) -> dict[str, Any]:
        """The `MetricInputs` fields of the background: its log p, scored as the run's outlier sets."""
        from evalgen.harness.evaluation import outlier_log_prob

        log_prob = None if self.model is None else outlier_log_prob(run.hooks, self.model, info, device)
        return {"background_log_prob": log_prob, "background": self.summary}


def _summary(run: ResolvedRun, seed: int, outcome: TrainOutcome) -> dict[str, Any]:
    levels = run.info.levels
    return {
        "mutation_rate": BACKGROUND_MUTATION_RATE, "seed": seed,
        "perturbation": f"train and validation values each replaced with probability {BACKGROUND_MUTATION_RATE} "
                        f"by one uniform over the {levels} levels (Ren et al. 2019); no weight decay added",
        "model": run.label, "budget": run.budget.name,
        "training": {"steps": outcome.steps, "flops": outcome.flops,
                     "stopped_by": outcome.stopped_by, "best_step": outcome.best_step,
                     "best_valid_nll_nats": outcome.best_valid_nll,
                     "valid_nll_of": "the perturbed validation split"},
    }


def train_background(run: ResolvedRun, device: torch.device, scores: Iterable[OutlierScore]) -> Background:
    """Train ``run``'s background model (module docstring), or say why there is none."""
    reason = background_reason(run, scores)
    if reason is not None:
        return Background.skipped(reason)
    seed = background_seed(run.spec.seed)
    perturbed = perturbed_dataset(run.dataset, BACKGROUND_MUTATION_RATE, seed)
    model, _, outcome = build_and_train(run, perturbed, seed, device, f"{run.label} (background)")
    if outcome.diverged_at_step is not None:
        return Background.skipped(f"the background model diverged at step {outcome.diverged_at_step}: "
                                  f"{outcome.divergence}")
    return Background(model, _summary(run, seed, outcome), outcome.seconds)
