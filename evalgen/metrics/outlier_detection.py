"""The ``outliers`` metric: every outlier set scored by the family's score and by every
registered outlier score (`evalgen.metrics.outlier_scores`), side by side.

Record layout (``metrics.outliers``):

* ``score``, ``sets``: the headline score (the family's own, or ``-log p(x) / D``) and its
  AUROC, AUPR and FPR@95%TPR with bootstrap intervals per set, as in every earlier record;
* ``headline``: the set the tables show (the dataset's OOD partner when there is one);
* ``scores``: registered score name -> ``{"label", "summary", "sets": {set -> results}}``, or
  ``{"skipped": reason}`` where the model or data lacks what the score needs;
* ``typical_nll``: Ĥ of the typicality score and how it was obtained;
* ``background``: the background model of the likelihood-ratio score (its perturbation and
  its training), or ``{"skipped": reason}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from evalgen.errors import DataUnavailableError
from evalgen.metrics.outlier_scores import OutlierScore, ScoreContext, ScoredSet
from evalgen.metrics.registry import MetricInputs
from evalgen.types import Representation

__all__ = ["OUTLIER_SEED", "outlier_detection", "score_label"]

#: Seed of the synthetic outliers, the same for every model (and of the bootstrap intervals).
OUTLIER_SEED = 7_919


def _detection(in_scores: torch.Tensor, out_scores: torch.Tensor) -> dict[str, Any]:
    from evalgen.metrics.outliers import auroc_standard_error_bound, detection_intervals, detection_metrics

    result = detection_metrics(in_scores, out_scores)
    result.update(num_in=len(in_scores), num_out=len(out_scores),
                  auroc_se_bound=auroc_standard_error_bound(len(in_scores), len(out_scores)))
    # Seeded with the outliers' seed: the same scores give the same intervals in every record.
    intervals = detection_intervals(in_scores, out_scores, seed=OUTLIER_SEED)
    result["intervals"] = {name: interval.to_dict() for name, interval in intervals.items()}
    return result


def _outlier_sets(inputs: MetricInputs, n: int) -> tuple[dict[str, torch.Tensor | str], str]:
    """Set name -> (n, *shape) stored values (or why it is skipped), and the headline set."""
    from evalgen.metrics.outliers import OOD_PAIRS, synthetic_outliers

    generator = torch.Generator().manual_seed(OUTLIER_SEED)
    sets: dict[str, torch.Tensor | str] = dict(synthetic_outliers(inputs.info.shape, inputs.info.levels, n, generator))
    headline = next(iter(sets))
    for other in OOD_PAIRS.get(inputs.dataset.name, []):
        try:
            sets[other] = inputs.load_dataset(other).test.x[:n]
        except DataUnavailableError as exc:
            sets[other] = str(exc)
            continue
        headline = other if headline == next(iter(sets)) else headline
    return sets, headline


def score_label(score: OutlierScore, likelihood_note: str) -> str:
    """The score's formula, naming the bound or estimate standing in for log p where there is one."""
    return score.label if not likelihood_note else f"{score.label} ({likelihood_note})"


def _skip_reason(score: OutlierScore, inputs: MetricInputs) -> str | None:
    if "log_prob" in score.needs and inputs.outlier_log_prob is None:
        return "needs the model's log p(x): this model has none (its outlier score is the family's own)"
    if "background" in score.needs and inputs.background_log_prob is None:
        reason = (inputs.background or {}).get("skipped", "no background model was trained")
        return f"needs a background model: {reason}"
    if "images" in score.needs:
        shape, levels = inputs.info.shape, inputs.info.levels
        if len(shape) != 3 or shape[0] not in (1, 3) or levels is None or not 2 <= levels <= 256:
            return f"needs images of 1 or 3 channels with 2 to 256 levels, not shape {shape} with levels {levels}"
    return None


class _Scorer:
    """Each set's log p (and background log p) computed once, every applicable score from them."""

    def __init__(self, inputs: MetricInputs, scores: list[OutlierScore], n: int) -> None:
        self.inputs, self.scores = inputs, scores
        self.needs = set().union(*(score.needs for score in scores)) if scores else set()
        info = inputs.info
        offset = info.num_dims * math.log(info.levels) if info.representation is Representation.DEQUANTIZED else 0.0
        typical = None
        if inputs.outlier_log_prob is not None and scores:
            typical = float(-inputs.outlier_log_prob(inputs.dataset.valid.x[:n]).mean())
        self.context = ScoreContext(info.num_dims, info.levels, offset, typical)
        self.num_valid = min(n, len(inputs.dataset.valid))

    def examples(self, x: torch.Tensor, log_prob: torch.Tensor | None = None) -> ScoredSet:
        inputs = self.inputs
        if log_prob is None and "log_prob" in self.needs and inputs.outlier_log_prob is not None:
            log_prob = inputs.outlier_log_prob(x)
        background = None
        if "background" in self.needs and inputs.background_log_prob is not None:
            background = inputs.background_log_prob(x)
        return ScoredSet(x, log_prob, background)

    def scored(self, examples: ScoredSet) -> dict[str, torch.Tensor]:
        return {score.name: score.compute(examples, self.context).double() for score in self.scores}


def outlier_detection(inputs: MetricInputs) -> dict[str, Any]:
    """The ``outliers`` metric's section (module docstring): every set, every score."""
    in_scores = inputs.test_outlier_scores  # the first budget.outlier_examples test examples
    n = len(in_scores)
    sets, headline = _outlier_sets(inputs, n)
    registered = list(inputs.outlier_scores)
    reasons = {score.name: _skip_reason(score, inputs) for score in registered}
    applicable = [score for score in registered if reasons[score.name] is None]
    scorer = _Scorer(inputs, applicable, n)
    inside = scorer.scored(scorer.examples(inputs.dataset.test.x[:n], inputs.test_outlier_log_prob))
    default = _default_score(inputs, applicable)
    headline_sets: dict[str, Any] = {}
    per_score: dict[str, dict[str, Any]] = {score.name: {} for score in applicable}
    for name, x in sets.items():
        if isinstance(x, str):
            headline_sets[name] = {"skipped": x}
            for results in per_score.values():
                results[name] = {"skipped": x}
            continue
        outside = scorer.scored(scorer.examples(x))
        for score_name, results in per_score.items():
            results[name] = _detection(inside[score_name], outside[score_name])
        headline_sets[name] = per_score[default][name] if default else _detection(in_scores, inputs.outlier_score(x))
    return {"score": inputs.outlier_score_label, "in_distribution": f"{inputs.dataset.name} test ({n} examples)",
            "headline": headline, "sets": headline_sets,
            "scores": _scores_section(registered, reasons, per_score, inputs.outlier_log_prob_note),
            **_context_sections(inputs, scorer)}


def _default_score(inputs: MetricInputs, applicable: list[OutlierScore]) -> str | None:
    """The registered score that *is* the headline score (-log p(x) / D when the family has no
    score of its own), so it is computed once; None: the family's own score."""
    if inputs.outlier_score_is_likelihood and any(score.name == "likelihood" for score in applicable):
        return "likelihood"
    return None


def _scores_section(registered: list[OutlierScore], reasons: Mapping[str, str | None],
                    per_score: Mapping[str, dict[str, Any]], note: str) -> dict[str, Any]:
    section: dict[str, Any] = {}
    for score in registered:
        reason = reasons[score.name]
        section[score.name] = {"skipped": reason} if reason else {
            "label": score_label(score, note), "summary": score.summary, "sets": per_score[score.name]}
    return section


def _context_sections(inputs: MetricInputs, scorer: _Scorer) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if scorer.context.typical_nll is not None:
        extra["typical_nll"] = {"nats": scorer.context.typical_nll, "examples": scorer.num_valid,
                                "units": "nats per example of the model's representation, as log p",
                                "estimator": f"mean -log p(x) of the first {scorer.num_valid} validation examples, "
                                             f"scored as the outlier sets are"}
    if inputs.background is not None:
        extra["background"] = dict(inputs.background)
    return extra
