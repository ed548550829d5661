"""The fully visible Boltzmann machine of the seed material, with everything exact.

p(x) = exp(-E(x)) / Z with E(x) = -(1/2) x^T W x - b.x, x in {0,1}^D, W symmetric with a zero
diagonal. For D <= `MAX_DIMS` the 2^D states are enumerated: log Z, log p(x), exact sampling and
the exact maximum-likelihood gradient (the seed's "maximum log-likelihood" objective) all come
from the enumeration, so this model is also the reference the other energy-based models are
tested against.
"""

from __future__ import annotations

import torch
from torch import nn

#: The largest dimension whose 2^D states are enumerated (2^20 states of 20 values).
MAX_DIMS = 20
_CHUNK = 1 << 15


def all_states(dims: int, device: torch.device | None = None) -> torch.Tensor:
    """Every binary vector of length ``dims``, (2^dims, dims) float32, in counting order."""
    codes = torch.arange(2 ** dims, device=device)
    bits = 2 ** torch.arange(dims - 1, -1, -1, device=device)
    return ((codes[:, None] & bits) > 0).float()


class FVBM(nn.Module):
    """A fully visible Boltzmann machine over D <= `MAX_DIMS` binary units; x is (N, D) float."""

    def __init__(self, dims: int, init_std: float = 0.01) -> None:
        super().__init__()
        if dims > MAX_DIMS:
            raise ValueError(f"the fully visible Boltzmann machine enumerates 2^D states; D = {dims} > {MAX_DIMS}")
        self.dims = dims
        self.weight = nn.Parameter(init_std * torch.randn(dims, dims))  # only the upper triangle is used
        self.bias = nn.Parameter(torch.zeros(dims))
        self.register_buffer("states", all_states(dims), persistent=False)

    @property
    def W(self) -> torch.Tensor:
        """The symmetric, zero-diagonal coupling matrix (D, D)."""
        upper = torch.triu(self.weight, diagonal=1)
        return upper + upper.T

    def check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dims:
            raise ValueError(f"expected x of shape (N, {self.dims}), got {tuple(x.shape)}")
        return x

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) (N,) = -(1/2) x^T W x - b.x."""
        x = self.check(x)
        return -0.5 * ((x @ self.W) * x).sum(1) - x @ self.bias

    def log_z(self) -> torch.Tensor:
        """log Z = logsumexp of -E over all 2^D states (differentiable, float64 accumulation)."""
        chunks = [torch.logsumexp(-self.energy(s).double(), 0) for s in self.states.split(_CHUNK)]
        return torch.logsumexp(torch.stack(chunks), 0)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) (N,) in nats."""
        return -self.energy(x).double() - self.log_z()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n exact draws (n, D): a categorical draw over the enumerated states."""
        probs = torch.exp(self.log_prob(self.states)).float()
        index = torch.multinomial(probs, n, replacement=True, generator=generator)
        return self.states[index]
