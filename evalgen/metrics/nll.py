"""Negative log-likelihood in nats/example and bits/dim, with the dequantization offset.

Conventions (Theis et al. 2016; Dinh et al. 2017; Papamakarios et al. 2017):

* ``levels`` representation: the model gives a mass function P(x) on the integer levels, so
  NLL = -log P(x) exactly (or its bound/estimate) and bits/dim = NLL / (D ln 2).
* ``dequantized`` representation: the model gives a density p on y = (x + u) / L in [0, 1)^D
  with u ~ U[0, 1)^D. The discrete model it induces, P(x) = integral of p over the cube of x,
  satisfies log P(x) >= E_u[log p(y)] - D log L, so the reported
  NLL = -log p(y) + D log L is an upper bound on the discrete NLL, comparable with the
  ``levels`` numbers. The harness draws u once per test example from a fixed seed.
* ``continuous`` data: NLL = -log p(x) in nats; bits/dim is not defined for densities on R^D
  (it depends on the unit of x), so none is reported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from evalgen.types import Likelihood, Representation


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
    dequantization: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def summarize_nll(log_prob: torch.Tensor, representation: Representation, num_dims: int,
                  levels: int | None, likelihood: Likelihood) -> NLLResult:
    """Mean test NLL with its standard error, labelled with its kind and estimator."""
    nll = nll_nats(log_prob, representation, num_dims, levels)
    mean = float(nll.mean())
    sem = float(nll.std(unbiased=True) / math.sqrt(nll.numel())) if nll.numel() > 1 else 0.0
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
        dequantization=(
            "uniform, one draw per example from a fixed seed; reported value includes D*log(levels)"
            if representation is Representation.DEQUANTIZED else None
        ),
    )
