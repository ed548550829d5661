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

__all__ = ["Bernoulli", "Categorical", "DiscretizedLogistic", "LogisticMixture", "discretized_logistic_log_prob"]


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
        return discretized_logistic_log_prob(mean, log_scale, x, self.levels)

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
        # Components first, each a contiguous (..., D) slab: one copy, after which every op is a
        # vectorized elementwise pass (a reduction over a trailing dimension of size M is not).
        logits, mean, log_scale = params.unflatten(-1, (3, self.components)).movedim((-2, -1), (0, 1)).contiguous()
        log_scale = log_scale.clamp(min=DiscretizedLogistic.MIN_LOG_SCALE)
        per_component = discretized_logistic_log_prob(mean, log_scale, x, self.levels)  # (M, ..., D)
        # (logits may be a view of params: `contiguous` copies only when the layout changes)
        joint = logits + per_component if _needs_graph(params) else per_component.add_(logits)
        return (_log_sum_exp_first(joint) - _log_sum_exp_first(logits)).sum(-1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        log_weights, component_params = self._parts(params)
        flat = log_weights.exp().reshape(-1, self.components)
        choice = torch.multinomial(flat, 1, generator=generator).reshape(*log_weights.shape[:-1], 1, 1)
        chosen = component_params.gather(-2, choice.expand(*choice.shape[:-1], 2)).squeeze(-2)
        return self.single.sample(chosen, generator)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        log_weights, component_params = self._parts(params)
        return (log_weights.exp() * self.single.mean(component_params)).sum(-1)


def _needs_graph(*tensors: torch.Tensor) -> bool:
    """Whether autograd records ops on these tensors: then no intermediate may be overwritten."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _log1p_exp_neg_abs(v: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(-|v|)), in [0, log 2], with the vectorized exp and log (``log1p`` is a scalar
    loop on CPU, ~7x slower); the absolute error is below float32's epsilon."""
    return torch.log(1.0 + torch.exp(-v.abs()))


def _log_one_minus_exp_neg(w: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(-w)) for w > 0, as log(2t / (1 + t)) with t = tanh(w / 2), which is exact
    (e^-w = (1 - t) / (1 + t)) and keeps full relative precision as w -> 0, where 1 - exp(-w)
    cancels; tanh is vectorized on CPU, ``expm1`` is not."""
    t = torch.tanh(0.5 * w)
    return torch.log(2.0 * t / (1.0 + t))


def _log_sum_exp_first(a: torch.Tensor) -> torch.Tensor:
    """log sum exp over dimension 0 (a few components), max-shifted; one allocation of a's size."""
    peak = a.amax(0)
    return (a - peak).exp_().sum(0).log_().add_(peak)


def discretized_logistic_log_prob(mean: torch.Tensor, log_scale: torch.Tensor, x: torch.Tensor,
                                  levels: int) -> torch.Tensor:
    """log P(x) of a logistic(mean, exp(log_scale)) discretized onto ``levels`` levels, per element.

    ``mean`` and ``log_scale`` broadcast with ``x`` (integer levels as floats). With
    u = (c_x + 1/(L-1) - mean) / s the standardized upper edge of x's bin, l = u - w the lower
    edge and w = 2 / ((L-1) s) the bin width:

    * lowest level: log sigmoid(u);  highest level: log(1 - sigmoid(l));
    * in between: log(sigmoid(u) - sigmoid(l)) = log sigmoid(u) + log(1 - sigmoid(l)) + log(1 - e^-w),
      since sigmoid(u) - sigmoid(l) = sigmoid(u) (1 - sigmoid(l)) (1 - e^(l-u)). Each term is
      computed without cancellation, so no small-probability approximation is needed.

    Without a graph to record (evaluation) the same formulas run in place, ~1.4x faster: on CPU
    these passes are bound by allocating and touching memory, not by arithmetic.
    """
    half_bin = 1.0 / (levels - 1)
    upper_edge = x * (2.0 * half_bin) - (1.0 - half_bin)  # c_x + half a bin, broadcast below
    if _needs_graph(mean, log_scale):
        inv_scale = torch.exp(-log_scale)
        upper = (upper_edge - mean) * inv_scale
        width = (2.0 * half_bin) * inv_scale
        lower = upper - width
        log_cdf_upper = upper.clamp(max=0) - _log1p_exp_neg_abs(upper)  # log sigmoid(u)
        log_sf_lower = -lower.clamp(min=0) - _log1p_exp_neg_abs(lower)  # log(1 - sigmoid(l))
        middle = log_cdf_upper + log_sf_lower + _log_one_minus_exp_neg(width)
    else:
        width = log_scale.neg().exp_()  # 1/s for now
        upper = (upper_edge - mean).mul_(width)
        width.mul_(2.0 * half_bin)
        lower = upper - width
        log_cdf_upper = upper.clamp(max=0).sub_(_log1p_exp_neg_abs_(upper))
        log_sf_lower = lower.clamp(min=0).add_(_log1p_exp_neg_abs_(lower)).neg_()
        middle = _log_one_minus_exp_neg(width).add_(log_cdf_upper).add_(log_sf_lower)
    return torch.where(x <= 0, log_cdf_upper, torch.where(x >= levels - 1, log_sf_lower, middle))


def _log1p_exp_neg_abs_(v: torch.Tensor) -> torch.Tensor:
    """`_log1p_exp_neg_abs` in a new tensor, without intermediate allocations."""
    return v.abs().neg_().exp_().add_(1.0).log_()
