"""After training: test NLL and samples, each checked against the hook contracts."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from evalgen.budgets import Budget
from evalgen.harness.contract import BoundModel
from evalgen.harness.data import ModelData, to_stored_values
from evalgen.harness.training import EVAL_BATCH_SIZE
from evalgen.metrics.nll import summarize_nll
from evalgen.types import DatasetInfo, LikelihoodKind

SAMPLE_BATCH_SIZE = 1_000
#: Offset between the training stream and the sampling stream of the same seed.
SAMPLE_SEED_OFFSET = 1_000_003


@torch.no_grad()
def test_log_prob(bound: BoundModel, model: nn.Module, data: ModelData) -> torch.Tensor:
    """(N_test,) log_prob of the test set, computed in batches."""
    model.eval()
    chunks = [bound.log_prob(model, data.test_x[i:i + EVAL_BATCH_SIZE]).detach().double().cpu()
              for i in range(0, data.test_x.shape[0], EVAL_BATCH_SIZE)]
    return torch.cat(chunks)


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


def evaluate(bound: BoundModel, model: nn.Module, data: ModelData, info: DatasetInfo,
             budget: Budget, seed: int, device: torch.device) -> tuple[dict[str, Any], torch.Tensor]:
    """Metrics of a trained model, and its samples (stored values) for sample-based metrics."""
    metrics: dict[str, Any] = {}
    likelihood = bound.spec.likelihood
    if likelihood.kind is not LikelihoodKind.NONE:
        log_p = test_log_prob(bound, model, data)
        metrics["test_nll"] = summarize_nll(
            log_p, info.representation, info.num_dims, info.levels, likelihood
        ).to_dict()
    samples, seconds = draw_samples(bound, model, info, budget.num_samples, seed, device)
    metrics["sampling"] = {
        "num_samples": budget.num_samples,
        "seconds": seconds,
        "samples_per_second": budget.num_samples / seconds if seconds > 0 else None,
    }
    return metrics, samples
