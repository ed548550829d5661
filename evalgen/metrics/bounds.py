"""Importance-sampling likelihood bounds: the one way evalgen computes them.

Every latent-variable family (VAEs and the like) reports its test likelihood with
`importance_weighted_bound`, so that bounds of different plugins are computed — and labelled —
identically. The bound is that of Burda, Grosse & Salakhutdinov (2016), "Importance weighted
autoencoders", ICLR 2016:

    L_K(x) = E_{z_1..z_K ~ q(.|x)} [ log (1/K) sum_k p(x, z_k) / q(z_k | x) ]  <=  log p(x),

with L_1 the ELBO, L_K non-decreasing in K and L_K -> log p(x) as K -> infinity when q covers
the posterior. One evaluation with K fresh samples is an unbiased estimate of L_K (and, by
Jensen, its expectation is a lower bound on log p(x)); the harness reports it as a lower bound
labelled with `iwae_label`, e.g. ``Likelihood(LikelihoodKind.LOWER_BOUND, iwae_label(5000))``.

Usage in a plugin's ``log_prob`` hook::

    def log_weights(x, k):                     # x: (N, *shape) -> (k, N)
        z = encoder.sample(x, k)               # (k, N, latent)
        return prior.log_prob(z) + decoder.log_prob(x, z) - encoder.log_prob(z, x)

    with torch.no_grad():
        log_px = importance_weighted_bound(log_weights, x, num_samples=5000, chunk_size=100)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from evalgen.errors import EvalgenError
from evalgen.types import Likelihood, LikelihoodKind

LogWeightsFn = Callable[[torch.Tensor, int], torch.Tensor]


def _log_sum_exp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` with the max along ``dim`` subtracted first (see `log_mean_exp`)."""
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all -inf (or +inf) slices: shift by 0
    return (torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True)) + m).squeeze(dim)


def log_mean_exp(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``log(mean(exp(x), dim))``, computed stably.

    The maximum along ``dim`` is subtracted before exponentiating, so large values (1e4) do not
    overflow; a slice that is entirely ``-inf`` gives ``-inf`` (not NaN); a ``+inf`` entry gives
    ``+inf`` and NaN propagates. Shape: ``x`` with ``dim`` removed.
    """
    n = x.shape[dim]
    if n == 0:
        raise EvalgenError("log_mean_exp of an empty dimension is undefined")
    return _log_sum_exp(x, dim) - math.log(n)


def _check_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise EvalgenError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def importance_weighted_bound(log_weights_fn: LogWeightsFn, x: torch.Tensor, num_samples: int,
                              chunk_size: int | None = None) -> torch.Tensor:
    """The IWAE bound ``log (1/K) sum_k p(x, z_k) / q(z_k|x)``, ``z_k ~ q(.|x)``, per example.

    Args:
        log_weights_fn: ``(x, k) -> (k, N)`` log importance weights
            ``log p(x, z) - log q(z|x)`` for ``k`` fresh samples ``z ~ q(.|x)`` per example.
            It is called with ``k <= chunk_size`` several times until ``num_samples`` samples
            have been drawn in total; each call must draw new samples.
        x: (N, *shape) a batch of examples, passed to ``log_weights_fn`` unchanged.
        num_samples: K, the number of importance samples per example (K = 1 is the ELBO).
        chunk_size: at most this many samples per call (default: all K in one call). Memory is
            that of one chunk: the chunks are combined with a running, max-shifted
            log-sum-exp in float64.

    Returns:
        (N,) the bound in nats per example, in the dtype of the log weights.

    Gradients flow through the result; for evaluation call it under ``torch.no_grad()`` so that
    no chunk's graph is kept.
    """
    k_total = _check_positive_int(num_samples, "num_samples (K)")
    chunk = k_total if chunk_size is None else _check_positive_int(chunk_size, "chunk_size")
    n = int(x.shape[0])
    total: torch.Tensor | None = None  # (N,) float64: log sum_k exp(w_k) over the chunks so far
    out_dtype = None
    done = 0
    while done < k_total:
        k = min(chunk, k_total - done)
        w = log_weights_fn(x, k)
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != (k, n):
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise EvalgenError(f"log_weights_fn(x, {k}) must return a ({k}, {n}) tensor, got {got}")
        out_dtype = w.dtype if w.is_floating_point() else torch.get_default_dtype()
        # log-sum-exp of the chunk, shifted by its max (so -inf columns stay -inf, not NaN) ...
        chunk_lse = _log_sum_exp(w.double(), dim=0)
        # ... folded into the running total the same way: logaddexp is max-shifted too.
        total = chunk_lse if total is None else torch.logaddexp(total, chunk_lse)
        done += k
    bound = total - math.log(k_total)
    return bound.to(out_dtype)


def iwae_label(num_samples: int) -> str:
    """The estimator label of an IWAE bound with K samples: ``"IWAE, K=5000"``."""
    return f"IWAE, K={_check_positive_int(num_samples, 'num_samples (K)')}"


IWAE_ESTIMATOR = "IWAE"


def iwae_likelihood(num_samples: int | None = None) -> Likelihood:
    """An IWAE lower bound, for a ``ModelSpec``.

    Without ``num_samples`` (the usual case) the harness chooses K — the budget's
    ``importance_samples`` or the run's override — passes it to ``evalgen_log_prob`` as
    ``num_importance_samples`` and labels the result "lower bound (IWAE, K=...)". With
    ``num_samples`` the plugin fixes K itself and the label says so.
    """
    if num_samples is None:
        return Likelihood(LikelihoodKind.LOWER_BOUND, IWAE_ESTIMATOR, sample_count="K")
    return Likelihood(LikelihoodKind.LOWER_BOUND, iwae_label(num_samples))


@dataclass(frozen=True)
class BoundEstimate:
    """A bound per example with how it was computed.

    Attributes:
        values: (N,) the bound in nats per example.
        num_samples: K.
    """

    values: torch.Tensor
    num_samples: int

    @property
    def label(self) -> str:
        return iwae_label(self.num_samples)

    @property
    def likelihood(self) -> Likelihood:
        return iwae_likelihood(self.num_samples)
