"""After training: samples, test log_prob, then every registered metric that applies."""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from evalgen.budgets import Budget
from evalgen.datasets.base import Dataset
from evalgen.harness.background import Background
from evalgen.harness.contract import EVAL_BATCH_SIZE, CheckedHooks
from evalgen.harness.data import EVAL_NOISE_SEED, ModelData, dequantization_seed, to_representation, to_stored_values
from evalgen.harness.resolved import ResolvedRun
from evalgen.metrics.bounds import IWAE_ESTIMATOR
from evalgen.metrics.dynamics import Traces
from evalgen.metrics.nll import importance_weighted_log_prob
from evalgen.metrics.outlier_scores import BUILTIN_SCORES, OutlierScore
from evalgen.metrics.outliers import outlier_score_default
from evalgen.metrics.registry import MetricInputs, MetricSpec
from evalgen.registry import Registry
from evalgen.types import DatasetInfo, Likelihood, LikelihoodKind, Representation

SAMPLE_BATCH_SIZE = 1_000
#: Offset between the training stream and the sampling stream of the same seed.
SAMPLE_SEED_OFFSET = 1_000_003
DEFAULT_OUTLIER_SCORE = "-log p(x) / D"


def default_score_label(likelihood: Likelihood) -> str:
    """"-log p(x) / D", naming the bound or estimate that stands in for log p(x) when there is one."""
    if likelihood.kind is LikelihoodKind.EXACT:
        return DEFAULT_OUTLIER_SCORE
    return f"{DEFAULT_OUTLIER_SCORE} ({likelihood.kind.value}: {likelihood.estimator})"


def test_log_prob(hooks: CheckedHooks, model: nn.Module, data: ModelData,
                  num_importance_samples: int | None = None) -> torch.Tensor:
    """(N_test,) log_prob of the test set, with the test-set sample count
    (``hooks.importance_samples``) unless another is given."""
    k = hooks.importance_samples if num_importance_samples is None else num_importance_samples
    return hooks.log_prob_in_batches(model, data.test_x, k)


def dequantization_draws(hooks: CheckedHooks, model: nn.Module, data: ModelData, num_draws: int) -> torch.Tensor:
    """(N_test, K) float64 on the CPU: log p((x + u_k) / L) of the test set under K = ``num_draws``
    dequantization noise draws. Draw 1 is ``data.test_x``, the one draw of `test_log_prob` (the
    same numbers, so K = 1 is the single-draw bound bit for bit); draw k > 1 comes from its own
    generator (`dequantization_seed`). One draw of the test set is on the device at a time, scored
    in batches of `EVAL_BATCH_SIZE`: memory is one copy of the test set plus N_test x K float64."""
    columns = [test_log_prob(hooks, model, data)]
    for draw in range(1, num_draws):
        noise = torch.Generator(device=data.device).manual_seed(dequantization_seed(draw))
        x = to_representation(data.test_values.to(data.device), data.representation, data.levels, noise)
        columns.append(hooks.log_prob_in_batches(model, x, hooks.importance_samples))
        del x
    return torch.stack(columns, 1)


def _test_likelihood(hooks: CheckedHooks, model: nn.Module,
                     data: ModelData) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(log p, one draw's log p, the draws) of the test set, each (N_test,) but the draws
    (N_test, K): on dequantized data log p is the importance-weighted bound over K =
    ``hooks.dequantization_samples`` noise draws and the one draw the first of them (what outlier
    scores use: cheap, and as before); elsewhere both are log_prob and the draws None."""
    if not hooks.has_likelihood:
        return None, None, None
    if data.representation is not Representation.DEQUANTIZED:
        log_p = test_log_prob(hooks, model, data)
        return log_p, log_p, None
    draws = dequantization_draws(hooks, model, data, hooks.dequantization_samples)
    return importance_weighted_log_prob(draws), draws[:, 0], draws


def reports_elbo(hooks: CheckedHooks) -> bool:
    """IWAE bounds with a harness-set K: K = 1 is the ELBO, reported beside the bound."""
    likelihood = hooks.declared
    return likelihood.estimator == IWAE_ESTIMATOR and likelihood.sample_count is not None


@torch.no_grad()
def draw_samples(hooks: CheckedHooks, model: nn.Module, info: DatasetInfo, num_samples: int,
                 seed: int, device: torch.device) -> tuple[torch.Tensor, float]:
    """``num_samples`` samples in the dataset's stored values, on the CPU, and the seconds taken."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed + SAMPLE_SEED_OFFSET)
    chunks = []
    started = time.perf_counter()
    for start in range(0, num_samples, SAMPLE_BATCH_SIZE):
        n = min(SAMPLE_BATCH_SIZE, num_samples - start)
        chunks.append(hooks.sample(model, n, generator, info).float())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    samples = to_stored_values(torch.cat(chunks).cpu(), info.representation, info.levels)
    return samples, seconds


def draw_seed(seed: int, draw: int) -> int:
    """The seed `draw_samples` gets for draw ``draw`` (0, 1, ... R - 1) of run seed ``seed``: the
    first is the run's seed (as before repeated draws), the others derived from seed and index
    by SHA-256, so no draw of one run seed is a draw of another."""
    if draw == 0:
        return seed
    digest = hashlib.sha256(f"{seed}/draw/{draw}".encode()).digest()
    return int.from_bytes(digest[:6], "little")


def outlier_importance_samples(hooks: CheckedHooks) -> int:
    """K of the log p(x) behind the default outlier score. An IWAE bound scores every example
    with K decoder passes, and the outlier sets hold as many examples as the test set: they use
    the validation K (the one that already ranks checkpoints), in and out of distribution alike,
    which keeps the score one bound and its label says which. Other models use the test K (for
    AIS it sets only log Z, a constant that cancels in AUROC)."""
    return hooks.valid_importance_samples if reports_elbo(hooks) else hooks.importance_samples


def outlier_log_prob(hooks: CheckedHooks, model: nn.Module, info: DatasetInfo,
                     device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """Stored values (N, *shape) -> (N,) float64 log p(x) on the CPU, as every outlier set is
    scored: K = `outlier_importance_samples`, one dequantization draw from `EVAL_NOISE_SEED`
    (the same noise for every set and every model), in batches of `EVAL_BATCH_SIZE`."""
    k = outlier_importance_samples(hooks)
    return _per_example(lambda x: hooks.log_prob(model, x, k), model, info, device)


def _per_example(score: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, info: DatasetInfo,
                 device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """Stored values (N, *shape) -> (N,) float64 on the CPU: ``score`` of the model's inputs, in
    eval mode, batches of `EVAL_BATCH_SIZE`, one dequantization draw from `EVAL_NOISE_SEED`."""
    @torch.no_grad()
    def scored(stored: torch.Tensor) -> torch.Tensor:
        model.eval()
        noise = torch.Generator(device=device).manual_seed(EVAL_NOISE_SEED)
        out = []
        for chunk in stored.split(EVAL_BATCH_SIZE):
            x = to_representation(chunk.to(device), info.representation, info.levels, noise)
            out.append(score(x).double().cpu())
        return torch.cat(out)

    return scored


def outlier_scorer(hooks: CheckedHooks, model: nn.Module, info: DatasetInfo,
                   device: torch.device) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, str]:
    """A function from stored values to the headline outlier scores (the family's own, or
    -log p(x) / D), and its label; (None, reason) if none."""
    label = hooks.spec.outlier_score or default_score_label(hooks.likelihood_with(outlier_importance_samples(hooks)))
    if hooks.spec.outlier_score is None:
        if not hooks.has_likelihood:
            return None, "no likelihood and no outlier score"
        log_prob = outlier_log_prob(hooks, model, info, device)
        return (lambda stored: outlier_score_default(log_prob(stored), info.num_dims)), label
    return _per_example(lambda x: hooks.outlier_score(model, x), model, info, device), label


def likelihood_note(likelihood: Likelihood) -> str:
    """"" for an exact likelihood, else what stands in for log p ("lower bound: IWAE K=5")."""
    return "" if likelihood.kind is LikelihoodKind.EXACT else f"{likelihood.kind.value}: {likelihood.estimator}"


def _test_outlier_log_prob(run: ResolvedRun, log_prob: Callable[[torch.Tensor], torch.Tensor] | None,
                           one_draw: torch.Tensor | None, elbo: torch.Tensor | None) -> torch.Tensor | None:
    """log p of the first ``budget.outlier_examples`` test examples (the in-distribution side of
    every outlier set) as the sets are scored, reusing the test log p (or the ELBO, K = 1) when
    it was computed so."""
    if log_prob is None:
        return None
    n = run.budget.outlier_examples
    k = outlier_importance_samples(run.hooks)
    same = one_draw if k == run.hooks.importance_samples else elbo if k == 1 else None
    return same[:n].double().cpu() if same is not None else log_prob(run.dataset.test.x[:n])


def _test_scores(run: ResolvedRun, scorer: Callable[[torch.Tensor], torch.Tensor] | None,
                 test_log_prob: torch.Tensor | None) -> torch.Tensor | None:
    """The headline outlier scores of the first ``budget.outlier_examples`` test examples."""
    if scorer is None:
        return None
    if run.model.outlier_score is None and test_log_prob is not None:
        return outlier_score_default(test_log_prob, run.info.num_dims)
    return scorer(run.dataset.test.x[:run.budget.outlier_examples])


def seed_part(seed: int, part: str) -> None:
    """Seed the global RNGs (torch, numpy, random) for one part of the evaluation, from the run's
    seed and the part's name. A hook that draws from them (an IWAE bound draws its noise with
    ``torch.randn``) then gives the same numbers whatever ran before it in this process: a
    feature extractor trained on a cache miss, or another run of a sweep, draws from them too."""
    derived = int.from_bytes(hashlib.sha256(f"{seed}/{part}".encode()).digest()[:8], "little") >> 1
    torch.manual_seed(derived)
    np.random.seed(derived % 2**32)
    random.seed(derived)


class _Parts:
    """Each part of the evaluation: seeded (`seed_part`) and timed in wall-clock seconds (device
    work synchronized)."""

    def __init__(self, device: torch.device, seed: int) -> None:
        self.device, self.seed = device, seed
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        seed_part(self.seed, name)
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def evaluate(run: ResolvedRun, model: nn.Module, data: ModelData, device: torch.device,
             metrics: Registry[MetricSpec], load_dataset: Callable[[str], Dataset],
             only: frozenset[str] | None = None, outlier_scores: Iterable[OutlierScore] = BUILTIN_SCORES,
             background: Background | None = None,
             traces: Traces | None = None) -> tuple[dict[str, Any], torch.Tensor, dict[str, float]]:
    """Metrics of a trained model (skipped ones say why), its samples in stored values, and the
    seconds each part of the evaluation took (sampling, test NLL, then each metric). ``only``:
    the names of the metrics to compute (`evalgen eval --metric`); None: every one.
    ``outlier_scores``: the registered outlier scores; ``background``: the likelihood-ratio
    score's background model (`evalgen.harness.background`), or None when none was considered;
    ``traces``: what training traced (`evalgen.harness.tracing`), or None."""
    hooks, info, budget, seed = run.hooks, run.info, run.budget, run.spec.seed
    timer = _Parts(device, seed)
    with timer.part("sampling"):
        samples, seconds = draw_samples(hooks, model, info, budget.num_samples, seed, device)
    with timer.part("more_draws"):
        more = [draw_samples(hooks, model, info, budget.num_samples, draw_seed(seed, r), device)[0]
                for r in range(1, budget.sample_draws)]
    results: dict[str, Any] = {"sampling": {
        "num_samples": budget.num_samples,
        "seconds": seconds,
        "samples_per_second": budget.num_samples / seconds if seconds > 0 else None,
        "draws": budget.sample_draws,
    }}
    scorer, score_label = outlier_scorer(hooks, model, info, device)
    log_prob = outlier_log_prob(hooks, model, info, device) if hooks.has_likelihood else None
    with timer.part("test_nll"):
        log_p, one_draw, draws = _test_likelihood(hooks, model, data)
        elbo = test_log_prob(hooks, model, data, 1) if hooks.has_likelihood and reports_elbo(hooks) else None
        details = hooks.likelihood_details(model) if hooks.has_likelihood else None
    with timer.part("outliers"):
        outlier_test_log_prob = _test_outlier_log_prob(run, log_prob, one_draw, elbo)
        in_scores = _test_scores(run, scorer, outlier_test_log_prob)
    inputs = MetricInputs(
        dataset=run.dataset, info=info, likelihood=hooks.likelihood, samples=samples, test_log_prob=log_p,
        test_dequantization=draws, test_elbo=elbo, likelihood_details=details, outlier_score=scorer,
        test_outlier_scores=in_scores, outlier_score_label=score_label,
        load_dataset=load_dataset, budget=budget, seed=seed, device=device, plugin=run.spec.plugin,
        model=run.spec.model, more_samples=tuple(more),
        sample_seeds=tuple(draw_seed(seed, r) + SAMPLE_SEED_OFFSET for r in range(budget.sample_draws)),
        outlier_log_prob=log_prob, test_outlier_log_prob=outlier_test_log_prob,
        outlier_log_prob_note=likelihood_note(hooks.likelihood_with(outlier_importance_samples(hooks))),
        outlier_score_is_likelihood=hooks.spec.outlier_score is None, outlier_scores=tuple(outlier_scores),
        **(background.inputs(run, info, device) if background is not None else {}), traces=traces,
    )
    results.update(_metric_results(inputs, metrics, timer, only))
    return results, samples, timer.seconds


#: What a metric left out by ``only`` says.
NOT_ASKED = "not asked for (evalgen eval --metric chose others)"


def _metric_results(inputs: MetricInputs, metrics: Registry[MetricSpec], timer: _Parts,
                    only: frozenset[str] | None = None) -> dict[str, Any]:
    """Every metric that applies to ``inputs`` (and is in ``only``), each seeded and timed; the
    others say why not."""
    results: dict[str, Any] = {}
    for metric in metrics:
        reason = NOT_ASKED if only is not None and metric.name not in only else metric.skip_reason(inputs)
        if reason:
            results[metric.name] = {"skipped": reason}
            continue
        with timer.part(metric.name):
            results[metric.name] = metric.compute(inputs)
    return results


def score_samples(samples: torch.Tensor, dataset: Dataset, metrics: Registry[MetricSpec], budget: Budget,
                  seed: int, device: torch.device, load_dataset: Callable[[str], Dataset],
                  extractor: str | None = None) -> tuple[dict[str, Any], dict[str, float]]:
    """Every sample-based metric of ``samples`` (N, *shape) in ``dataset``'s stored values, from
    any source, computed as `evaluate` computes a trained run's (the same metrics, extractors,
    cached references and per-metric seeds from ``seed``), and the seconds of each. Metrics
    that need a model (its likelihood, its outlier score) are skipped and say so. ``extractor``:
    the sample-quality feature extractor (None: the dataset's)."""
    inputs = MetricInputs(
        dataset=dataset, info=dataset.info(), likelihood=Likelihood(LikelihoodKind.NONE, "none: samples only"),
        samples=samples, test_log_prob=None, outlier_score=None, test_outlier_scores=None,
        outlier_score_label="", load_dataset=load_dataset, budget=budget, seed=seed, device=device,
        extractor=extractor)
    timer = _Parts(device, seed)
    return _metric_results(inputs, metrics, timer), timer.seconds
