"""Annealed importance sampling (Neal 2001) as Salakhutdinov & Murray (2008) use it for RBMs:
the schedule of inverse temperatures and the estimate of log Z from the chains' log weights.

A model runs its own chains (the transitions depend on its structure) and hands the log
importance weights (M,) to `estimate_log_z`; everything here is model-independent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

#: Salakhutdinov & Murray (2008), Sec. 4.2: 500 betas uniform in [0, 0.5], 4,000 in [0.5, 0.9] and
#: 10,000 in [0.9, 1.0] -- 14,500 intermediate distributions.
SM2008_SEGMENTS = ((0.5, 500), (0.9, 4_000), (1.0, 10_000))
DEFAULT_STEPS = sum(n for _, n in SM2008_SEGMENTS)
#: The spread reported with an estimate: log of (mean weight +- 3 standard errors), as S&M.
SPREAD_SIGMAS = 3.0
#: An estimate resting on fewer than this fraction of its chains is flagged as degenerate.
DEGENERATE_FRACTION = 0.1


def schedule(steps: int = DEFAULT_STEPS, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Inverse temperatures 0 = beta_0 < beta_1 < ... < beta_steps = 1, (steps + 1,).

    ``steps`` = 14,500 gives exactly the S&M schedule; other lengths scale its three segments
    in proportion (at least one beta per segment)."""
    if steps < len(SM2008_SEGMENTS):
        raise ValueError(f"an AIS schedule needs at least {len(SM2008_SEGMENTS)} steps, got {steps}")
    counts = [max(1, round(n * steps / DEFAULT_STEPS)) for _, n in SM2008_SEGMENTS]
    counts[-1] += steps - sum(counts)
    parts, start = [torch.zeros(1, dtype=dtype)], 0.0
    for (end, _), n in zip(SM2008_SEGMENTS, counts):
        parts.append(torch.linspace(start, end, n + 1, dtype=dtype)[1:])
        start = end
    return torch.cat(parts)


@dataclass(frozen=True)
class LogZEstimate:
    """log Z = log Z_base + log mean(w) over M chains, with log(mean(w) -+ 3 SE) around it.

    ``lower`` is -inf when 3 standard errors exceed the mean (the spread is then uninformative).
    """

    log_z: float
    lower: float
    upper: float
    log_z_base: float
    chains: int
    steps: int
    log_weight_std: float  #: std of the chains' log weights: large values mean a poor schedule
    #: (sum w)^2 / sum w^2: how many chains the estimate effectively rests on. Far below
    #: ``chains`` means the weights are degenerate and log Z is probably underestimated.
    effective_chains: float = 0.0
    #: The standard error of log Z-hat (nats) by the delta method, std(w) / (sqrt(M) mean(w))
    #: (`log_mean_standard_error`); None with one chain. It says nothing of the bias of a
    #: degenerate estimate (chains that never reach a mode): see ``effective_chains``.
    log_z_standard_error: float | None = None

    @property
    def degenerate(self) -> bool:
        return self.effective_chains < DEGENERATE_FRACTION * self.chains

    def to_dict(self) -> dict:
        d = asdict(self)
        if not math.isfinite(d["lower"]):
            d["lower"] = None  # records are strict JSON
        d["degenerate"] = self.degenerate
        return d


def log_mean_standard_error(log_weights: torch.Tensor) -> float | None:
    """The delta-method standard error of log mean(w) from M log weights (M,), in nats:
    std(w) / (sqrt(M) mean(w)), the unbiased std, None for M < 2.

    Computed in log space: with r = exp(log w - log mean w), the weights relative to their mean
    (r <= M, so nothing overflows, and the mean's own scale cancels), it is std(r) / sqrt(M)."""
    log_w = log_weights.detach().double().flatten().cpu()
    m = log_w.numel()
    if m < 2:
        return None
    log_mean = torch.logsumexp(log_w, 0) - math.log(m)
    relative = torch.exp(log_w - log_mean)
    return float(relative.std(unbiased=True)) / math.sqrt(m)


def estimate_log_z(log_weights: torch.Tensor, log_z_base: float, steps: int) -> LogZEstimate:
    """Combine the chains' log importance weights (M,) with the base model's exact log Z."""
    log_w = log_weights.detach().double().flatten().cpu()
    m = log_w.numel()
    shift = float(log_w.max())
    w = torch.exp(log_w - shift)
    mean = float(w.mean())
    se = float(w.std(unbiased=True)) / math.sqrt(m) if m > 1 else 0.0
    log_mean = math.log(mean) + shift
    lower = math.log(mean - SPREAD_SIGMAS * se) + shift if mean > SPREAD_SIGMAS * se else -math.inf
    upper = math.log(mean + SPREAD_SIGMAS * se) + shift
    std = float(log_w.std(unbiased=True)) if m > 1 else 0.0
    effective = float(w.sum() ** 2 / (w**2).sum())
    return LogZEstimate(log_z_base + log_mean, log_z_base + lower, log_z_base + upper, log_z_base, m, steps, std,
                        effective, log_mean_standard_error(log_w))


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x) for every x (torch's softplus is linear beyond a threshold)."""
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


@dataclass(frozen=True)
class IncrementScratch:
    """Buffers for `softplus_increment` in a loop over same-shaped inputs (fewer allocations)."""

    t: torch.Tensor
    y: torch.Tensor
    u: torch.Tensor
    log_u: torch.Tensor
    exact: torch.Tensor  #: bool

    @classmethod
    def like(cls, x: torch.Tensor) -> IncrementScratch:
        return cls(*(torch.empty_like(x) for _ in range(4)), torch.empty_like(x, dtype=torch.bool))


def softplus_increment(a: torch.Tensor, delta: torch.Tensor, scratch: IncrementScratch | None = None,
                       known_small: bool = False) -> torch.Tensor:
    """softplus(a + delta) - softplus(a) = log(1 + sigmoid(a) (e^delta - 1)), without the
    cancellation of subtracting two softplus values: an AIS step moves beta by ~1e-4, so the
    increment is tiny next to either term and this form keeps its relative precision in float32.
    For |delta| > 1 (coarse schedules) it is the plain difference, in float64.

    e^d - 1 = 2t / (1 - t) with t = tanh(d / 2), and log(1 + y) = log(u) y / (u - 1) with
    u = 1 + y (Goldberg 1991): both exact in exact arithmetic and accurate in float, with the
    vectorized tanh and log (``expm1`` and ``log1p`` are scalar loops on CPU, ~4x slower).

    ``scratch`` (buffers shaped like ``a``) makes it allocation-free, with the same values; the
    result then lives in ``scratch.y``. ``known_small`` skips the |delta| > 1 test when the caller
    has bounded |delta| <= 1 already."""
    if not known_small and bool((delta.abs() > 1).any()):
        a, delta = a.double(), delta.double()
        return _softplus(a + delta) - _softplus(a)
    if scratch is None:
        scratch = IncrementScratch.like(a)
    t, y, u, log_u = scratch.t, scratch.y, scratch.u, scratch.log_u
    torch.mul(delta, 0.5, out=t).tanh_()
    torch.sigmoid(a, out=y).mul_(t).mul_(2.0).div_(t.neg_().add_(1.0))  # 1 - t as -t + 1: the same float
    torch.add(y, 1.0, out=u)
    torch.eq(u, 1.0, out=scratch.exact)
    torch.log(u, out=log_u).mul_(y).div_(u.sub_(1.0))
    return torch.where(scratch.exact, y, log_u, out=y)
