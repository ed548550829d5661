"""Pixel distributions over integer levels: proper mass functions over the L values of each pixel,
shared by every family whose likelihood is a product of per-pixel terms (the VAE's decoders
p(x|z), the PixelCNN's autoregressive conditionals p(x_i | x_<i)), so that all their NLLs are in
the same units: nats of the discrete data.

Shapes. Each distribution takes parameters ``params`` of shape (N, D, P) -- P numbers per
dimension (``params_per_dim``) -- and integer levels ``x`` of shape (N, D) stored as floats (values
0 .. L-1), and gives

* ``log_prob(params, x)``: (N,), log P(x) summed over the D dimensions, nats;
* ``sample(params, generator)``: (N, D) float levels, all randomness from ``generator`` (which must
  live on the device of ``params``; None uses the global generator);
* ``mean(params)``: (N, D), the mean pixel value rescaled to [0, 1].

Leading dimensions beyond N broadcast: ``params`` (K, N, D, P) with ``x`` (N, D) gives (K, N).

Level k of a discretized logistic sits at ``c_k = 2k / (L - 1) - 1`` in [-1, 1]; the end levels
own the tails to -inf and +inf, so the L probabilities sum to one exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["Bernoulli", "Categorical", "DiscretizedLogistic", "LogisticMixture"]


class Bernoulli:
    """Binary pixels: ``p(x_i = 1) = sigmoid(logit_i)``; one parameter per dimension."""

    params_per_dim = 1

    def __init__(self, levels: int = 2) -> None:
        if levels != 2:
            raise ValueError(f"a Bernoulli decoder needs binary data (2 levels), got {levels}")
        self.levels = 2

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = params[..., 0]
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        probs = torch.sigmoid(params[..., 0])
        return torch.bernoulli(probs, generator=generator)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params[..., 0])


class Categorical:
    """A free categorical over the L levels of each pixel; L logits per dimension."""

    def __init__(self, levels: int) -> None:
        if levels < 2:
            raise ValueError(f"a categorical decoder needs at least 2 levels, got {levels}")
        self.levels = levels
        self.params_per_dim = levels

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(params, dim=-1)
        index = x.long().unsqueeze(-1).expand(*logp.shape[:-1], 1)
        return logp.gather(-1, index).squeeze(-1).sum(-1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        probs = torch.softmax(params, dim=-1)
        flat = probs.reshape(-1, self.levels)
        draws = torch.multinomial(flat, 1, generator=generator)
        return draws.reshape(probs.shape[:-1]).to(params.dtype)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        values = torch.arange(self.levels, device=params.device, dtype=params.dtype)
        return (torch.softmax(params, dim=-1) * values).sum(-1) / (self.levels - 1)


class DiscretizedLogistic:
    """A logistic density discretized onto the L levels (Salimans et al. 2017, PixelCNN++).

    Level k sits at ``c_k = 2k / (L - 1) - 1`` in [-1, 1] and owns the interval
    ``[c_k - 1/(L-1), c_k + 1/(L-1)]``, the end levels extending to -inf and +inf, so the L
    probabilities sum to one exactly. Two parameters per dimension: the mean and the log scale.
    The log of a difference of sigmoids is computed in closed form,
    ``log(s(a) - s(b)) = a + log(-expm1(b - a)) - softplus(a) - softplus(b)``, which needs no
    small-probability approximation.
    """

    params_per_dim = 2
    MIN_LOG_SCALE = -7.0

    def __init__(self, levels: int) -> None:
        if levels < 2:
            raise ValueError(f"a discretized logistic needs at least 2 levels, got {levels}")
        self.levels = levels

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return params[..., 0], params[..., 1].clamp(min=self.MIN_LOG_SCALE)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob_per_dim(params, x).sum(-1)

    def log_prob_per_dim(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log P(x_i) per dimension, without the sum: (..., D)."""
        mean, log_scale = self._split(params)
        half_bin = 1.0 / (self.levels - 1)
        centre = x * (2.0 * half_bin) - 1.0
        inv_scale = torch.exp(-log_scale)
        upper = (centre + half_bin - mean) * inv_scale
        lower = (centre - half_bin - mean) * inv_scale
        first = F.logsigmoid(upper)  # the lowest level: P(value < c_0 + half_bin)
        last = F.logsigmoid(-lower)  # the highest level: 1 - sigmoid(lower)
        middle = upper + torch.log(-torch.expm1(lower - upper)) - F.softplus(upper) - F.softplus(lower)
        return torch.where(x <= 0, first, torch.where(x >= self.levels - 1, last, middle))

    def sample(self, params: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        mean, log_scale = self._split(params)
        u = torch.rand(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = u.clamp(1e-6, 1 - 1e-6)
        value = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
        return torch.round((value + 1.0) * (self.levels - 1) / 2.0).clamp(0, self.levels - 1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return ((params[..., 0] + 1.0) / 2.0).clamp(0, 1)


class LogisticMixture:
    """A mixture of M discretized logistics per pixel (Salimans et al. 2017): M weights, means
    and log scales per dimension. Sharper than one logistic on near-binary images such as MNIST,
    where a pixel is either background or stroke."""

    def __init__(self, levels: int, components: int = 3) -> None:
        self.levels, self.components = levels, components
        self.params_per_dim = 3 * components
        self.single = DiscretizedLogistic(levels)

    def _parts(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, mean, log_scale = params.unflatten(-1, (3, self.components)).unbind(-2)
        return torch.log_softmax(logits, dim=-1), torch.stack([mean, log_scale], dim=-1)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_weights, component_params = self._parts(params)  # (..., D, M), (..., D, M, 2)
        per_component = self.single.log_prob_per_dim(component_params, x.unsqueeze(-1))
        return torch.logsumexp(log_weights + per_component, dim=-1).sum(-1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        log_weights, component_params = self._parts(params)
        flat = log_weights.exp().reshape(-1, self.components)
        choice = torch.multinomial(flat, 1, generator=generator).reshape(*log_weights.shape[:-1], 1, 1)
        chosen = component_params.gather(-2, choice.expand(*choice.shape[:-1], 2)).squeeze(-2)
        return self.single.sample(chosen, generator)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        log_weights, component_params = self._parts(params)
        return (log_weights.exp() * self.single.mean(component_params)).sum(-1)
