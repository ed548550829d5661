"""Decoder distributions p(x|z): over integer pixel levels, proper mass functions, so that a VAE's
NLL is in the same units (nats of the discrete data) as every other family's; for continuous
data a diagonal Gaussian density.

Each distribution takes decoder outputs ``params`` of shape (N, D, P) — P numbers per dimension
(`params_per_dim`) — and integer levels ``x`` of shape (N, D) stored as floats, and gives
``log_prob(params, x)`` of shape (N,) (summed over dimensions) and ``sample(params, generator)``
of shape (N, D). Leading dimensions beyond N broadcast: ``params`` (K, N, D, P) with ``x``
(N, D) gives (K, N).

The distributions over integer levels (`Bernoulli`, `Categorical`, `DiscretizedLogistic`,
`LogisticMixture`) live in the public API, `evalgen.distributions`, shared with the other families
whose likelihood is a product of pixel terms (the PixelCNN); they are re-exported here. The
Gaussian density for continuous data and the decoder registry stay here.
"""

from __future__ import annotations

import math

import torch

from evalgen import Bernoulli, Categorical, DiscretizedLogistic, LogisticMixture

__all__ = [
    "DECODERS",
    "MAX_CATEGORICAL_LEVELS",
    "Bernoulli",
    "Categorical",
    "DiscretizedLogistic",
    "Gaussian",
    "LogisticMixture",
    "default_decoder",
    "make_decoder",
]

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Gaussian:
    """A diagonal Gaussian density for continuous data: mean and log standard deviation."""

    params_per_dim = 2
    MIN_LOG_STD = -7.0

    def __init__(self, levels: int | None = None) -> None:
        if levels is not None:
            raise ValueError("a Gaussian decoder is for continuous data (no levels)")
        self.levels = None

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mean, log_std = params[..., 0], params[..., 1].clamp(min=self.MIN_LOG_STD)
        return (-0.5 * ((x - mean) * torch.exp(-log_std)).square() - log_std - HALF_LOG_2PI).sum(-1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        mean, log_std = params[..., 0], params[..., 1].clamp(min=self.MIN_LOG_STD)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(log_std) * noise

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params[..., 0]


DECODERS = {"bernoulli": Bernoulli, "categorical": Categorical, "logistic": DiscretizedLogistic,
            "logistic-mixture": LogisticMixture, "gaussian": Gaussian}
#: Above this many levels the default decoder is a mixture of 3 discretized logistics (9 numbers
#: per pixel), at or below it the categorical (L numbers per pixel).
MAX_CATEGORICAL_LEVELS = 32


def default_decoder(levels: int | None) -> str:
    """The default p(x|z) for data with ``levels`` values per pixel (None: continuous)."""
    if levels is None:
        return "gaussian"
    if levels == 2:
        return "bernoulli"
    return "categorical" if levels <= MAX_CATEGORICAL_LEVELS else "logistic-mixture"


def make_decoder(name: str, levels: int | None):
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose from {sorted(DECODERS)}")
    return DECODERS[name](levels)
