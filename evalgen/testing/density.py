"""Normalization of log_prob and its agreement with the samples, on low-dimensional data.

* A mass function over levels (``levels`` representation) is summed over every possible vector
  of a tiny dataset (`CheckSettings.enumeration_shapes_binary` / ``_discrete``).
* A density (``dequantized`` on [0, 1)^D, ``continuous`` on a box around the data and the
  model's samples) is integrated on a grid by the midpoint rule; D must be 1 or 2.

The model is first trained for a few steps on that data, since a bug can vanish at
initialization (a log-determinant of 0 has no sign).

Agreement compares the empirical distribution of the model's samples with exp(log_prob),
normalized over the enumerated vectors or the grid's bins (so it tests the shape, not the
normalizing constant), by total variation. The threshold is calibrated by a parametric
bootstrap: the largest total variation among `CheckSettings.null_draws` multinomial draws of the
same size from exp(log_prob) itself, plus a slack. For enumerated data the per-dimension means
are compared the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from evalgen.errors import EvalgenError
from evalgen.testing.data import CheckData, all_states, state_codes
from evalgen.testing.report import CheckFailed, CheckSkipped
from evalgen.types import LikelihoodKind, Representation


@dataclass
class LowDim:
    """A model trained on low-dimensional data, and log_prob at every enumerated vector or grid
    point (``cell`` is the volume each point stands for: 1 for vectors)."""

    data: CheckData
    model: nn.Module
    enumerated: bool
    points: torch.Tensor
    log_p: torch.Tensor  # float64
    cell: float
    description: str
    box: tuple[torch.Tensor, torch.Tensor] | None = None  # per-axis low, high (quadrature)


def _candidates(subject) -> list[tuple[tuple[int, ...], int | None]]:
    s = subject.settings
    if subject.representation is Representation.LEVELS:
        if subject.data.levels == 2:
            shapes, levels = s.enumeration_shapes_binary, 2
        else:
            shapes, levels = s.enumeration_shapes_discrete, s.enumeration_levels
        return [(shape, levels) for shape in shapes]
    if subject.representation is Representation.DEQUANTIZED:
        return [(s.quadrature_shape_dequantized, subject.data.levels)]
    return [(subject.data.shape, None)] if math.prod(subject.data.shape) <= 2 else []


def make_lowdim(subject) -> LowDim:
    s = subject.settings
    candidates = _candidates(subject)
    errors = []
    for shape, levels in candidates:
        if subject.spec.unfit_reason(subject.kind, math.prod(shape), None) is not None:
            continue
        if levels is not None and subject.representation is Representation.LEVELS and \
                levels ** math.prod(shape) > s.max_enumeration_states:
            errors.append(f"shape {shape}: {levels ** math.prod(shape)} vectors, more than "
                          f"CheckSettings.max_enumeration_states = {s.max_enumeration_states}")
            continue
        data = subject.make_data(shape, levels)
        if data.shape == subject.data.shape and data.levels == subject.data.levels:
            model = subject.resource("trained").model
            break
        try:
            model = subject.build(data, s.seed)
        except EvalgenError as exc:
            errors.append(f"shape {shape}: {exc}")
            continue
        subject.train(model, subject.bound.optimizers(model, subject.config), data, s.lowdim_train_steps)
        break
    else:
        how = "exact enumeration" if subject.representation is Representation.LEVELS else "a quadrature grid"
        why = "; ".join(errors) if errors else "no check shape is small enough"
        raise CheckSkipped(f"the model could not be built for low-dimensional data, which {how} needs ({why})")
    if subject.representation is Representation.LEVELS:
        points = all_states(shape, levels, subject.device)
        desc = f"all {points.shape[0]} vectors of shape {shape} with values 0..{levels - 1}"
        log_p = _log_p(subject, model, points)
        return LowDim(data, model, True, points, log_p, 1.0, desc)
    low, high = _box(subject, data, model)
    points, cell = _grid(low, high, s.quadrature_points, data.shape)
    log_p = _log_p(subject, model, points)
    box = " x ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(low.tolist(), high.tolist()))
    desc = f"a {'x'.join([str(s.quadrature_points)] * low.numel())} grid over {box}"
    return LowDim(data, model, False, points, log_p, cell, desc, (low, high))


def _log_p(subject, model: nn.Module, points: torch.Tensor) -> torch.Tensor:
    """log_prob at every point (float64); for an importance-sampled bound or estimate, the mean
    of `CheckSettings.stochastic_repeats` evaluations: one draw of exp(IWAE bound) is an unbiased
    estimate of p(x) and exceeds it half the time, while the mean of the log is below log p(x)."""
    s = subject.settings
    repeats = s.stochastic_repeats if subject.likelihood.sample_count is not None else 1
    total = sum(subject.log_prob(model, points, reseed=s.seed + 13 + r).double() for r in range(repeats))
    return total / repeats


def _box(subject, data: CheckData, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    d = math.prod(data.shape)
    if data.representation is Representation.DEQUANTIZED:
        return torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
    s = subject.settings
    flat = data.x.reshape(data.x.shape[0], -1).double().cpu()
    low, high = flat.min(0).values, flat.max(0).values
    try:
        samples = subject.sample(model, s.agreement_samples, s.seed + 3, data)
    except Exception:  # only a hint
        samples = None
    if samples is not None:
        q = torch.tensor([s.quadrature_sample_quantile, 1 - s.quadrature_sample_quantile], dtype=torch.float64)
        quantiles = torch.quantile(samples.reshape(samples.shape[0], -1).double().cpu(), q, dim=0)
        low, high = torch.minimum(low, quantiles[0]), torch.maximum(high, quantiles[1])
    width = high - low
    return low - s.quadrature_margin * width, high + s.quadrature_margin * width


def _grid(low: torch.Tensor, high: torch.Tensor, n: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, float]:
    axes = [a + (b - a) * (torch.arange(n, dtype=torch.float64) + 0.5) / n for a, b in zip(low, high)]
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
    return mesh.float().reshape(-1, *shape), float(torch.prod((high - low) / n))


def check_normalization(subject) -> str:
    s = subject.settings
    low: LowDim = subject.resource("lowdim")
    kind, label = subject.likelihood.kind, subject.likelihood.estimator
    log_total = float(torch.logsumexp(low.log_p, 0)) + math.log(low.cell)
    total = math.exp(log_total) if log_total < 700 else math.inf
    verb = "sums" if low.enumerated else "integrates"
    tol = s.enumeration_tolerance if low.enumerated else s.quadrature_tolerance
    seen = f"exp(log_prob) {verb} to {total:.4g} over {low.description}"
    if kind is LikelihoodKind.EXACT:
        if abs(total - 1) <= tol:
            return f"{seen} (exact: 1 +- {tol:g})"
        raise CheckFailed(f"{seen} instead of 1 (exact likelihood, tolerance +-{tol:g}): {_advice(low, subject)}"
                          f"{_boundary_note(subject, low)}")
    if kind is LikelihoodKind.LOWER_BOUND:
        if total <= 1 + tol:
            return f"{seen} (lower bound, {label}: at most 1 + {tol:g})"
        raise CheckFailed(
            f"{seen}, more than 1 + {tol:g}, but log_prob is declared a lower bound ({label}), which cannot "
            f"exceed log p(x): check the sign of the KL or entropy term and average the importance weights "
            f"(log-mean-exp, evalgen.importance_weighted_bound), not sum them; {_advice(low, subject)}")
    if abs(log_total) <= s.estimate_log_tolerance:
        return f"{seen} (estimate, {label}: checked loosely, |log| <= {s.estimate_log_tolerance:.2g} nats)"
    raise CheckFailed(
        f"{seen}: its log, {log_total:.3g} nats, is beyond the +-{s.estimate_log_tolerance:.2g} nats allowed even "
        f"for an estimate ({label}): check the estimate of log Z (its sign, the base distribution's log Z, the "
        f"annealing schedule) and {_advice(low, subject)}")


def _advice(low: LowDim, subject) -> str:
    if low.enumerated:
        return ("every factor or conditional must be normalized over the levels 0..L-1 (log_softmax, not raw "
                "logits), an autoregressive mask must not let a dimension see itself or later ones, and an "
                "energy-based model must subtract log Z")
    advice = ("check the sign of the log-determinant of the Jacobian (log p(x) = log p(z) + log|det dz/dx|) "
              "and for a missing normalizing constant (e.g. -D/2 log(2 pi) of a Gaussian)")
    if low.data.representation is Representation.DEQUANTIZED:
        advice += (", and that the density is of the dequantized values in [0, 1)^D, not of x + u in "
                   "[0, levels)^D (which is off by D log(levels))")
    return advice


def _on_boundary(low: LowDim, samples: torch.Tensor) -> float:
    """The fraction of dequantized samples with a coordinate exactly 0 or 1 (0 for other data)."""
    if low.data.representation is not Representation.DEQUANTIZED:
        return 0.0
    flat = samples.reshape(samples.shape[0], -1)
    return float(((flat <= 0) | (flat >= 1)).any(1).float().mean())


def _boundary_note(subject, low: LowDim) -> str:
    try:
        fraction = _on_boundary(low, subject.resource("lowdim_samples", direct=True))
    except Exception:  # only a hint
        return ""
    if fraction < subject.settings.max_boundary_fraction:
        return ""
    return (f". {fraction:.1%} of the model's samples have a coordinate exactly 0 or 1 (clamped?), a sign that "
            "the transformation maps [0, 1)^D onto a bounded region rather than all of the base space (a logit "
            "with alpha > 0 maps it to [logit(alpha), logit(1 - alpha)]^D), so the base mass outside is missing "
            "from log_prob and piles up on the boundary in the samples")


def check_agreement(subject) -> str:
    s = subject.settings
    low: LowDim = subject.resource("lowdim")
    samples = subject.resource("lowdim_samples")
    boundary = _on_boundary(low, samples)
    if boundary >= s.max_boundary_fraction:
        raise CheckFailed(
            f"{boundary:.1%} of {samples.shape[0]} samples have a coordinate exactly 0 or 1, where a density on "
            f"[0, 1)^D puts no mass (at most {s.max_boundary_fraction:.1%} allowed): evalgen_sample clamps values "
            "that fall outside [0, 1), so the samples do not follow exp(log_prob); map [0, 1)^D onto the whole "
            "base space (e.g. no logit alpha > 0) or sample only inside it")
    approximate = subject.likelihood.kind is not LikelihoodKind.EXACT
    slack = s.agreement_slack_approximate if approximate else s.agreement_slack
    if low.enumerated:
        p = torch.softmax(low.log_p, 0).cpu()
        index = state_codes(samples, low.data.levels).cpu()
        kept, what = index, f"the {p.numel()} vectors"
    else:
        p, index = _binned(low, samples, s.agreement_bins)
        kept, what = index[index >= 0], f"{s.agreement_bins}x{s.agreement_bins} bins of {low.description}"
    if kept.numel() < 0.5 * samples.shape[0]:
        raise CheckFailed(f"only {kept.numel()} of {samples.shape[0]} samples fall in {what}, where log_prob puts "
                          f"its mass: evalgen_sample and evalgen_log_prob describe different distributions")
    n = kept.numel()
    counts = torch.bincount(kept, minlength=p.numel()).double()
    tv = 0.5 * float((counts / n - p).abs().sum())
    generator = torch.Generator().manual_seed(s.seed + 17)
    draws = torch.multinomial(p.float(), n * s.null_draws, replacement=True, generator=generator)
    draws = draws.reshape(s.null_draws, n)
    null_counts = torch.zeros(s.null_draws, p.numel(), dtype=torch.float64)
    null_counts.scatter_add_(1, draws, torch.ones(draws.shape, dtype=torch.float64))
    null_tv = 0.5 * (null_counts / n - p).abs().sum(1)
    limit = float(null_tv.max()) + slack
    loose = (f" (loose: log_prob is a {subject.likelihood.kind.value}, so normalized exp(log_prob) only "
             "approximates the model)") if approximate else ""
    problems = []
    if tv > limit:
        problems.append(f"total variation {tv:.3f} between {n} samples and exp(log_prob) over {what}, above the "
                        f"{limit:.3f} that sampling noise explains{loose}")
    if low.enumerated:
        states = low.points.reshape(low.points.shape[0], -1).double().cpu()
        mean_model = p @ states
        gap = float(((counts / n) @ states - mean_model).abs().max())
        null_gap = ((null_counts / n) @ states - mean_model).abs().max(1).values
        gap_limit = float(null_gap.max()) + slack
        if gap > gap_limit:
            problems.append(f"a dimension's mean differs by {gap:.3f} between samples and exp(log_prob), above "
                            f"the {gap_limit:.3f} that sampling noise explains")
    if problems:
        raise CheckFailed(f"the samples do not follow exp(log_prob): {'; '.join(problems)}: evalgen_sample and "
                          "evalgen_log_prob must describe the same distribution (same parameters, the same "
                          "direction of the transformation, the same ordering of the dimensions, no temperature)")
    return f"total variation {tv:.3f} <= {limit:.3f} over {what} ({n} samples){loose}"


def _binned(low: LowDim, samples: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Model mass per bin (bins^D,) from the grid and each sample's bin (-1 outside the box)."""
    lo, hi = low.box
    d = lo.numel()
    g = round(low.points.shape[0] ** (1 / d))
    if g % bins:
        raise ValueError(f"quadrature_points ({g}) must be a multiple of agreement_bins ({bins})")
    mass = torch.softmax(low.log_p, 0).cpu().reshape([g] * d)
    for axis in range(d):
        mass = mass.unflatten(axis, (bins, g // bins)).sum(axis + 1)
    flat = samples.reshape(samples.shape[0], -1).double().cpu()
    rel = (flat - lo) / (hi - lo)
    inside = ((rel >= 0) & (rel <= 1)).all(1)
    cells = (rel * bins).long().clamp_(0, bins - 1)
    index = torch.zeros(flat.shape[0], dtype=torch.long)
    for axis in range(d):
        index = index * bins + cells[:, axis]
    return mass.reshape(-1), torch.where(inside, index, torch.full_like(index, -1))
