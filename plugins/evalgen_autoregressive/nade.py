"""The neural autoregressive distribution estimator (Larochelle & Murray 2011), with the
categorical conditionals of Uria et al. 2016 for data with more than two levels.

Shapes: ``x`` is (N, *shape) integer levels 0..L-1 stored as floats; it is flattened in raster
order to (N, D). The model factorizes p(x) = prod_d p(x_d | x_<d) in that fixed raster order,
dimension d's conditional computed from

    h_d = sigmoid(c + W[:, :d] v_:d)          (H,)
    logits_d = V[d] h_d + b[d]                (P,)

with shared weights W (H, D), c (H), per-dimension output weights V (D, P, H), b (D, P); P = 1
(a Bernoulli logit) when L = 2, otherwise P = L (categorical logits over the levels). The network
input v is x itself for binary data and x / (L - 1), in [0, 1], for L > 2.

Every pre-activation c + W[:, :d] v_:d is a prefix sum, so all D conditionals cost O(DH) together:
``logits`` takes one cumulative sum over the dimensions (memory O(N D H)), and ``sample`` keeps the
running pre-activation and adds W[:, d] v_d after drawing dimension d.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import LevelsModel, conditional_log_prob, draw, in_eval_chunks, uniforms


class NADE(LevelsModel):
    """NADE over D = prod(shape) dimensions with ``levels`` values each, raster order.

    Args:
        shape: the shape of one example, e.g. (C, H, W) or (D,).
        levels: L, values per dimension (2: Bernoulli conditionals, more: categorical).
        hidden: H, the hidden units shared by all conditionals.
    """

    def __init__(self, shape: tuple[int, ...], levels: int, hidden: int) -> None:
        super().__init__(shape, levels)
        if levels < 2:
            raise ValueError(f"NADE needs at least 2 levels, got {levels}")
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        self.hidden = int(hidden)
        d = self.num_dims
        p = self.params_per_dim
        self.W = nn.Parameter(torch.randn(hidden, d) / math.sqrt(d))
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(torch.randn(d, p, hidden) / math.sqrt(hidden))
        self.b = nn.Parameter(torch.zeros(d, p))

    @property
    def order(self) -> torch.Tensor:
        """The dimensions in generation order (D,): raster order, ``order[i] = i``."""
        return torch.arange(self.num_dims, device=self.W.device)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.shape or x.dim() != len(self.shape) + 1:
            raise ValueError(f"expected x of shape (N, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        return x

    def _inputs(self, x_flat: torch.Tensor) -> torch.Tensor:
        """Network input v: binary values as they are, x / (L - 1) for L > 2."""
        x_flat = x_flat.to(self.W.dtype)
        return x_flat if self.levels == 2 else x_flat / (self.levels - 1)

    def _logits(self, x_flat: torch.Tensor) -> torch.Tensor:
        # a_d = c + sum_{j < d} W[:, j] v_j: a cumulative sum over the dimensions of the terms
        # shifted by one (inputs and weight columns shifted, cheaper than shifting the sum).
        v_prev = F.pad(self._inputs(x_flat)[:, :-1], (1, 0))  # (N, D): v_{d-1}, 0 for d = 0
        w_prev = F.pad(self.W[:, :-1], (1, 0))  # (H, D): W[:, d-1]
        a = torch.cumsum(v_prev.unsqueeze(-1) * w_prev.T, dim=1) + self.c  # (N, D, H)
        h = torch.sigmoid(a)
        return torch.einsum("ndh,dph->ndp", h, self.V) + self.b

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The conditionals' parameters (N, D, P) for ``x`` (N, *shape); row d depends on x_<d only."""
        return self._logits(self._check(x).flatten(1))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) (N,) in nats, O(DH) per example (in `in_eval_chunks` without a graph)."""
        x_flat = self._check(x).flatten(1)
        return in_eval_chunks(lambda part: conditional_log_prob(self._logits(part), part).sum(-1), x_flat)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss: the mean negative log-likelihood in nats."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n exact draws (n, *shape) float32 levels, on the module's device, one dimension at a
        time in raster order in O(DH) per sample; all randomness (n x D uniforms) from
        ``generator``."""
        device = self.W.device
        u = uniforms((n, self.num_dims), generator, device)
        x = torch.zeros(n, self.num_dims, device=device)
        a = self.c.expand(n, self.hidden).clone()
        scale = 1.0 if self.levels == 2 else 1.0 / (self.levels - 1)
        for d in range(self.num_dims):
            logits_d = torch.sigmoid(a) @ self.V[d].T + self.b[d]  # (n, P)
            x[:, d] = draw(logits_d, u[:, d])
            a += (x[:, d] * scale).to(a.dtype).unsqueeze(-1) * self.W[:, d]
        return x.reshape(n, *self.shape)
