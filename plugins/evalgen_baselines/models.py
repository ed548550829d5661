"""The independent-dimension models as torch modules."""

from __future__ import annotations

import math

import torch
from torch import nn


def _check_shape(x: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"expected x of shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}")


class FactorizedCategorical(nn.Module):
    """p(x) = prod_d Cat(x_d; softmax(logits_d)) over integer values 0..levels-1.

    Args:
        shape: per-example shape.
        levels: number of values per dimension (2 gives a Bernoulli per dimension).
    """

    def __init__(self, shape: tuple[int, ...], levels: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.levels = levels
        self.logits = nn.Parameter(torch.zeros(math.prod(self.shape), levels))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, *shape) integer values as float -> (N,) log-pmf in nats."""
        _check_shape(x, self.shape)
        index = x.reshape(x.shape[0], -1).long().clamp_(0, self.levels - 1)
        log_p = torch.log_softmax(self.logits, dim=-1)  # (D, L)
        return _gather(log_p, index)

    def sample(self, num_samples: int, generator: torch.Generator) -> torch.Tensor:
        """-> (num_samples, *shape) float32 integer values."""
        probs = torch.softmax(self.logits, dim=-1)
        draws = torch.multinomial(probs, num_samples, replacement=True, generator=generator)  # (D, N)
        return draws.t().reshape(num_samples, *self.shape).float()


def _gather(log_p: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log_p: (D, L), index: (N, D) -> (N,) sum_d log_p[d, index[n, d]]. `torch.gather`, not
    advanced indexing: the latter's backward (an accumulating index_put, sorted on CPU) took 3x as
    long per training step."""
    return torch.gather(log_p, 1, index.t()).sum(dim=0)


class FactorizedGaussian(nn.Module):
    """p(x) = prod_d N(x_d; mean_d, exp(log_std_d)^2).

    Args:
        shape: per-example shape.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.mean = nn.Parameter(torch.zeros(self.shape))
        self.log_std = nn.Parameter(torch.zeros(self.shape))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, *shape) reals -> (N,) log-density in nats."""
        _check_shape(x, self.shape)
        z = (x - self.mean) * torch.exp(-self.log_std)
        log_p = -0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)
        return log_p.reshape(x.shape[0], -1).sum(dim=1)

    def sample(self, num_samples: int, generator: torch.Generator) -> torch.Tensor:
        """-> (num_samples, *shape) float32."""
        noise = torch.randn((num_samples, *self.shape), generator=generator, device=self.mean.device)
        return self.mean + noise * torch.exp(self.log_std)
