"""After training: samples, test log_prob, then every registered metric that applies."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from evalgen.budgets import Budget
from evalgen.datasets.base import Dataset
from evalgen.harness.contract import BoundModel
from evalgen.harness.data import EVAL_NOISE_SEED, ModelData, to_representation, to_stored_values
from evalgen.harness.training import EVAL_BATCH_SIZE
from evalgen.metrics.bounds import IWAE_ESTIMATOR
from evalgen.metrics.outliers import outlier_score_default
from evalgen.metrics.registry import MetricInputs, MetricSpec
from evalgen.registry import Registry
from evalgen.types import DatasetInfo, Likelihood, LikelihoodKind

SAMPLE_BATCH_SIZE = 1_000
#: Offset between the training stream and the sampling stream of the same seed.
SAMPLE_SEED_OFFSET = 1_000_003
DEFAULT_OUTLIER_SCORE = "-log p(x) / D"


def default_score_label(likelihood: Likelihood) -> str:
    """"-log p(x) / D", naming the bound or estimate that stands in for log p(x) when there is one."""
    if likelihood.kind is LikelihoodKind.EXACT:
        return DEFAULT_OUTLIER_SCORE
    return f"{DEFAULT_OUTLIER_SCORE} ({likelihood.kind.value}: {likelihood.estimator})"


@torch.no_grad()
def test_log_prob(bound: BoundModel, model: nn.Module, data: ModelData,
                  num_importance_samples: int | None = None) -> torch.Tensor:
    """(N_test,) log_prob of the test set, computed in batches, with the test-set sample count
    (``bound.importance_samples``) unless another is given."""
    model.eval()
    k = bound.importance_samples if num_importance_samples is None else num_importance_samples
    chunks = [bound.log_prob(model, data.test_x[i:i + EVAL_BATCH_SIZE], k).detach().double().cpu()
              for i in range(0, data.test_x.shape[0], EVAL_BATCH_SIZE)]
    return torch.cat(chunks)


def reports_elbo(bound: BoundModel) -> bool:
    """IWAE bounds with a harness-set K: K = 1 is the ELBO, reported beside the bound."""
    likelihood = bound.declared
    return likelihood.estimator == IWAE_ESTIMATOR and likelihood.sample_count is not None


@torch.no_grad()
def draw_samples(bound: BoundModel, model: nn.Module, info: DatasetInfo, num_samples: int,
                 seed: int, device: torch.device) -> tuple[torch.Tensor, float]:
    """``num_samples`` samples in the dataset's stored values, on the CPU, and the seconds taken."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed + SAMPLE_SEED_OFFSET)
    chunks = []
    started = time.perf_counter()
    for start in range(0, num_samples, SAMPLE_BATCH_SIZE):
        n = min(SAMPLE_BATCH_SIZE, num_samples - start)
        chunks.append(bound.sample(model, n, generator, info).float())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    samples = to_stored_values(torch.cat(chunks).cpu(), info.representation, info.levels)
    return samples, seconds


def outlier_scorer(bound: BoundModel, model: nn.Module, info: DatasetInfo,
                   device: torch.device) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, str]:
    """A function from stored values to outlier scores, and its label; (None, reason) if none."""
    has_likelihood = bound.has_likelihood
    label = bound.spec.outlier_score or default_score_label(bound.likelihood)
    if bound.spec.outlier_score is None and not has_likelihood:
        return None, "no likelihood and no outlier score"

    @torch.no_grad()
    def score(stored: torch.Tensor) -> torch.Tensor:
        model.eval()
        noise = torch.Generator(device=device).manual_seed(EVAL_NOISE_SEED)
        out = []
        for chunk in stored.split(EVAL_BATCH_SIZE):
            x = to_representation(chunk.to(device), info.representation, info.levels, noise)
            s = bound.outlier_score(model, x) if bound.spec.outlier_score else None
            if s is None:
                s = outlier_score_default(bound.log_prob(model, x, bound.importance_samples), info.num_dims)
            out.append(s.double().cpu())
        return torch.cat(out)

    return score, label


def evaluate(bound: BoundModel, model: nn.Module, data: ModelData, dataset: Dataset,
             info: DatasetInfo, budget: Budget, seed: int, device: torch.device,
             metrics: Registry[MetricSpec],
             load_dataset: Callable[[str], Dataset]) -> tuple[dict[str, Any], torch.Tensor]:
    """Metrics of a trained model (skipped ones say why), and its samples in stored values."""
    has_likelihood = bound.has_likelihood
    samples, seconds = draw_samples(bound, model, info, budget.num_samples, seed, device)
    results: dict[str, Any] = {"sampling": {
        "num_samples": budget.num_samples,
        "seconds": seconds,
        "samples_per_second": budget.num_samples / seconds if seconds > 0 else None,
    }}
    scorer, score_label = outlier_scorer(bound, model, info, device)
    log_p = test_log_prob(bound, model, data) if has_likelihood else None
    details = bound.likelihood_details(model) if has_likelihood else None
    elbo = test_log_prob(bound, model, data, 1) if has_likelihood and reports_elbo(bound) else None
    if scorer is None:
        test_scores = None
    elif bound.spec.outlier_score is None:  # the default score: reuse the test log p
        test_scores = outlier_score_default(log_p, info.num_dims)
    else:
        test_scores = scorer(dataset.test.x)
    inputs = MetricInputs(
        dataset=dataset, info=info, likelihood=bound.likelihood, samples=samples,
        test_log_prob=log_p, test_elbo=elbo, likelihood_details=details, outlier_score=scorer,
        test_outlier_scores=test_scores,
        outlier_score_label=score_label, load_dataset=load_dataset,
        budget=budget, seed=seed, device=device,
    )
    for metric in metrics:
        reason = metric.skip_reason(inputs)
        results[metric.name] = {"skipped": reason} if reason else metric.compute(inputs)
    return results, samples
