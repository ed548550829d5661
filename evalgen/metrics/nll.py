"""Negative log-likelihood in nats/example and bits/dim, with the dequantization offset.

Conventions (Theis et al. 2016; Dinh et al. 2017; Papamakarios et al. 2017):

* ``levels`` representation: the model gives a mass function P(x) on the integer levels, so
  NLL = -log P(x) exactly (or its bound/estimate) and bits/dim = NLL / (D ln 2).
* ``dequantized`` representation: the model gives a density p on y = (x + u) / L in [0, 1)^D
  with u ~ U[0, 1)^D. The discrete model it induces, P(x) = integral of p over the cube of x,
  satisfies log P(x) >= E_u[log p(y)] - D log L, so the reported
  NLL = -log p(y) + D log L is a stochastic upper bound on the discrete NLL, comparable with
  the ``levels`` numbers. With K noise draws u_1..u_K per example the importance-weighted bound
  -log (1/K) sum_k p((x + u_k) / L) + D log L is tighter, and reaches -log P(x) as K grows
  (Ho et al. 2019, Flow++, Sec. 3.1): the harness reports it, with K = ``budget.dequantization_samples``
  and u_1 the one fixed-seed draw of earlier records (`summarize_dequantization`).
* ``continuous`` data: NLL = -log p(x) in nats; bits/dim is not defined for densities on R^D
  (it depends on the unit of x), so none is reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from evalgen.types import Likelihood, LikelihoodKind, Representation

#: How the harness dequantizes the test set (`evalgen.harness.data`), as the records say it.
DEQUANTIZATION_NOISE = ("uniform, u ~ U[0, 1)^D per example: draw 1 from a fixed seed (the one draw of records "
                        "before K draws), draws 2..K from seeds derived from it; reported values include "
                        "D*log(levels)")


def dequantization_offset_nats(num_dims: int, levels: int) -> float:
    """D log L: the nats that turn a density on [0,1)^D into a mass on L^D cells."""
    return num_dims * math.log(levels)


def nll_nats(log_prob: torch.Tensor, representation: Representation, num_dims: int,
             levels: int | None) -> torch.Tensor:
    """Per-example NLL in nats of the data's own discrete values (or the density, if continuous).

    log_prob: (N,) what the model's ``log_prob`` returned. Returns (N,) float64.
    """
    nll = -log_prob.double()
    if representation is Representation.DEQUANTIZED:
        if levels is None:
            raise ValueError("dequantized data needs its number of levels")
        nll = nll + dequantization_offset_nats(num_dims, levels)
    return nll


def bits_per_dim(nll: float, num_dims: int) -> float:
    """nats/example -> bits/dim."""
    return nll / (num_dims * math.log(2))


def dequantization_estimator(num_draws: int) -> str:
    """The estimator text of the uniform dequantization bound with ``num_draws`` noise draws."""
    if num_draws == 1:
        return "uniform dequantization bound, one noise draw per example"
    return f"uniform dequantization bound, importance-weighted over K={int(num_draws)} noise draws"


def discrete_likelihood(likelihood: Likelihood, representation: Representation | None,
                        num_draws: int) -> Likelihood:
    """What ``likelihood`` (of a model's log_prob) is of the data's own discrete likelihood.

    On dequantized data an exact density p(y) gives a stochastic lower bound on log P(x) (Theis,
    van den Oord & Bethge 2016), so "exact" becomes "lower bound (uniform dequantization bound,
    K=...)"; a bound or estimate stays one, the dequantization named beside its estimator. Other
    representations, and no likelihood, are returned as they are. Fill in sample counts first
    (`Likelihood.with_samples`): the result takes none."""
    if representation is not Representation.DEQUANTIZED or likelihood.kind is LikelihoodKind.NONE:
        return likelihood
    if likelihood.kind is LikelihoodKind.EXACT:
        return Likelihood(LikelihoodKind.LOWER_BOUND, dequantization_estimator(num_draws))
    return Likelihood(likelihood.kind, f"{likelihood.estimator}; {dequantization_estimator(num_draws)}")


def importance_weighted_log_prob(draws: torch.Tensor) -> torch.Tensor:
    """(N, K) log p((x_i + u_ik) / L) -> (N,) float64 log (1/K) sum_k p((x_i + u_ik) / L), in nats
    (a logsumexp over K); for K = 1 the one draw itself, bit for bit."""
    draws = draws.double()
    if draws.shape[1] == 1:
        return draws[:, 0].clone()
    return torch.logsumexp(draws, 1) - math.log(draws.shape[1])


def _mean_and_sem(values: torch.Tensor) -> tuple[float, float]:
    """Mean of (N,) values and its standard error (0 for N = 1)."""
    sem = float(values.std(unbiased=True) / math.sqrt(values.numel())) if values.numel() > 1 else 0.0
    return float(values.mean()), sem


def summarize_dequantization(draws: torch.Tensor, num_dims: int, levels: int) -> dict[str, Any]:
    """The ``dequantization`` section of a test NLL on dequantized data, nats/example throughout.

    draws: (N, K) log p((x_i + u_ik) / L) of N test examples under K noise draws, draw 1 first.
    The noise error is the noise's share of the single-draw mean's standard error,
    sqrt(mean_i var_k log p(...) / N): how far another fixed seed would move it (None for K = 1)."""
    draws = draws.double()
    n, k = draws.shape
    single, single_sem = _mean_and_sem(nll_nats(draws[:, 0], Representation.DEQUANTIZED, num_dims, levels))
    weighted = float(nll_nats(importance_weighted_log_prob(draws), Representation.DEQUANTIZED, num_dims,
                              levels).mean())  # as summarize_nll's headline, to the last bit
    noise = float(torch.sqrt(draws.var(1, unbiased=True).mean() / n)) if k > 1 else None
    return {
        "noise": DEQUANTIZATION_NOISE,
        "draws": k,
        "single_draw": {
            "nats": single, "nats_sem": single_sem, "bits_per_dim": bits_per_dim(single, num_dims),
            "what": "-log p((x + u_1) / L) + D log L, one noise draw per example: a stochastic upper bound on "
                    "the discrete NLL (Theis et al. 2016), the value records before K draws report"},
        "importance_weighted": {
            "nats": weighted, "bits_per_dim": bits_per_dim(weighted, num_dims),
            "what": f"-log (1/K) sum_k p((x + u_k) / L) + D log L over K={k} noise draws (Ho et al. 2019): "
                    "a tighter upper bound on the discrete NLL, the headline nats"},
        "single_draw_noise_error": {
            "nats": noise,
            "what": "Monte-Carlo error of the single-draw mean from the noise alone: sqrt(mean_i var_k "
                    "log p((x_i + u_ik) / L) / N_test), nats; null for K = 1"},
    }


@dataclass(frozen=True)
class NLLResult:
    """Test NLL of one model, with what it is and how it was computed."""

    nats: float
    nats_sem: float
    bits_per_dim: float | None
    kind: str
    estimator: str
    representation: str
    num_examples: int
    num_dims: int
    levels: int | None
    #: None but on dequantized data: how the noise was drawn (``noise``, the text records before
    #: K draws held here), K, the single-draw and importance-weighted bounds (`summarize_dequantization`)
    dequantization: dict[str, Any] | None

    def to_dict(self) -> dict:
        return asdict(self)


def summarize_nll(log_prob: torch.Tensor, representation: Representation, num_dims: int,
                  levels: int | None, likelihood: Likelihood) -> NLLResult:
    """Mean test NLL with its standard error, labelled with its kind and estimator.

    log_prob: (N,) what the model's ``log_prob`` returned; on dequantized data it may be (N, K),
    K noise draws per example (draw 1 first), and the NLL is the importance-weighted bound over them
    (an (N,) tensor is one draw, K = 1)."""
    dequantization = None
    if representation is Representation.DEQUANTIZED:
        draws = log_prob if log_prob.dim() == 2 else log_prob.reshape(-1, 1)
        if levels is None:
            raise ValueError("dequantized data needs its number of levels")
        dequantization = summarize_dequantization(draws, num_dims, levels)
        log_prob = importance_weighted_log_prob(draws)
    nll = nll_nats(log_prob, representation, num_dims, levels)
    mean, sem = _mean_and_sem(nll)
    discrete = representation is not Representation.CONTINUOUS
    return NLLResult(
        nats=mean,
        nats_sem=sem,
        bits_per_dim=bits_per_dim(mean, num_dims) if discrete else None,
        kind=likelihood.kind.value,
        estimator=likelihood.estimator,
        representation=representation.value,
        num_examples=int(nll.numel()),
        num_dims=num_dims,
        levels=levels,
        dequantization=dequantization,
    )


def log_z_standard_error(details: Mapping[str, Any] | None) -> float | None:
    """The standard error of the log Z estimate (nats) a family's ``evalgen_likelihood_details``
    reports as ``log_z_standard_error``, or None when it reports none (or no finite number >= 0)."""
    found = None if details is None else details.get("log_z_standard_error")
    if isinstance(found, bool) or not isinstance(found, (int, float)) or not math.isfinite(found) or found < 0:
        return None
    return float(found)


def nll_uncertainty(result: NLLResult, log_z_standard_error: float | None) -> dict[str, Any]:
    """What a test NLL's uncertainty adds to its section: the per-run ``intervals`` of ``nats`` and
    (discrete data) ``bits_per_dim``, normal, from the test-set standard error ``nats_sem``.

    A log Z estimate (AIS) shifts every example's log p by the same amount, so its standard error
    does not shrink with the test set: given one (nats), it is reported as ``log_z_standard_error``
    and the interval uses ``nats_se_combined`` = sqrt(nats_sem^2 + log_z_standard_error^2)."""
    from evalgen.metrics.uncertainty import normal_interval

    added: dict[str, Any] = {}
    error, method = result.nats_sem, f"normal: standard error over the {result.num_examples} test examples"
    if log_z_standard_error is not None:
        error = math.hypot(result.nats_sem, log_z_standard_error)
        added.update(log_z_standard_error=log_z_standard_error, nats_se_combined=error)
        method += " and of the AIS log Z (delta method), in quadrature"
    intervals = {"nats": normal_interval(result.nats, error, method).to_dict()}
    if result.bits_per_dim is not None:
        intervals["bits_per_dim"] = normal_interval(result.bits_per_dim, bits_per_dim(error, result.num_dims),
                                                    method).to_dict()
    added["intervals"] = intervals
    return added
