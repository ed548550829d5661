"""The masked autoencoder for distribution estimation (Germain, Gregor, Murray & Larochelle 2015).

Shapes: ``x`` is (N, *shape) integer levels 0..L-1 stored as floats, flattened in raster order to
(N, D). A MADE is an MLP from the D inputs through ``depth`` ReLU layers of ``hidden`` units to
D x P outputs (P = 1 Bernoulli logit when L = 2, P = L categorical logits otherwise), whose
weights are masked so that output d sees only the inputs before d in an ordering. The network
input is x itself for binary data and x / (L - 1), in [0, 1], for L > 2.

Masks (the paper's section 4, with 0-based degrees): an ordering gives input d the degree
m0(d) = its position in the ordering, 0..D-1; the units of hidden layer l get degrees m_l(k) in
[min m_{l-1}, D - 2]; a hidden weight k <- j is kept when m_l(k) >= m_{l-1}(j), and output d's
weights from the last hidden layer when m0(d) > m_L(k). The P logits of one dimension share that
dimension's mask.

With ``num_masks`` = 1 the ordering is the natural (raster) one and the hidden degrees are spread
evenly and deterministically, m_l(k) = k mod (D - 1). With ``num_masks`` = K > 1 (order- and
connectivity-agnostic training), K (ordering, degrees) pairs are drawn once from a generator
seeded with ``seed``; ``loss`` uses one of them, chosen at random per call, and ``log_prob`` is the
exact log-likelihood of the ensemble, log (1/K) sum_k p_k(x): a uniform mixture of K normalized
autoregressive models is itself a normalized model. The masks and orderings are buffers, so they
travel with the state dict.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import LevelsModel, conditional_log_prob, draw, uniforms


def _degrees(low: int, dims: int, hidden: int, generator: torch.Generator | None) -> torch.Tensor:
    """Hidden degrees (hidden,) in [low, D - 2]: evenly spread without a generator, uniform with one.
    For D = 1 every degree is 0 and no hidden unit reaches the output (its logits are the bias)."""
    high = max(dims - 2, low)
    if generator is None:
        return low + torch.arange(hidden) % (high - low + 1)
    return torch.randint(low, high + 1, (hidden,), generator=generator)


def build_masks(dims: int, hidden: int, depth: int, generator: torch.Generator | None):
    """One (ordering, connectivity) draw: the ordering (D,) (``order[i]`` = the dimension generated
    at step i), the hidden masks [(H, D), (H, H), ...] and the output mask (D, H), all bool.
    Without a generator: the natural order and evenly spread degrees."""
    if generator is None:
        order = torch.arange(dims)
    else:
        order = torch.randperm(dims, generator=generator)
    degree = torch.empty(dims, dtype=torch.long)
    degree[order] = torch.arange(dims)  # m0(d): the position of dimension d in the ordering
    previous, masks = degree, []
    for _ in range(depth):
        current = _degrees(int(previous.min()), dims, hidden, generator)
        masks.append(current[:, None] >= previous[None, :])
        previous = current
    return order, masks, degree[:, None] > previous[None, :]


class MADE(LevelsModel):
    """MADE over D = prod(shape) dimensions with ``levels`` values each.

    Args:
        shape: the shape of one example, e.g. (C, H, W) or (D,).
        levels: L, values per dimension (2: Bernoulli outputs, more: categorical).
        hidden: units per hidden layer.
        depth: number of hidden (ReLU) layers, >= 1.
        num_masks: K, the (ordering, connectivity) pairs trained and ensembled; 1: the natural
            order with fixed, evenly spread connectivity.
        seed: seeds the generator the K > 1 masks are drawn from (stored in the ``seed`` buffer).
    """

    def __init__(self, shape: tuple[int, ...], levels: int, hidden: int, depth: int = 1,
                 num_masks: int = 1, seed: int = 0) -> None:
        super().__init__(shape, levels)
        if levels < 2:
            raise ValueError(f"MADE needs at least 2 levels, got {levels}")
        if hidden < 1 or depth < 1 or num_masks < 1:
            raise ValueError(f"hidden, depth and num_masks must be >= 1, got {hidden}, {depth}, {num_masks}")
        self.hidden, self.depth, self.num_masks = int(hidden), int(depth), int(num_masks)
        d, p = self.num_dims, self.params_per_dim
        self.layers = nn.ModuleList(nn.Linear(d if i == 0 else hidden, hidden) for i in range(depth))
        self.out_weight = nn.Parameter(torch.randn(d, p, hidden) / math.sqrt(hidden))
        self.out_bias = nn.Parameter(torch.zeros(d, p))

        generator = None if num_masks == 1 else torch.Generator().manual_seed(int(seed))
        draws = [build_masks(d, hidden, depth, generator) for _ in range(num_masks)]
        self.register_buffer("seed", torch.tensor(int(seed)))
        self.register_buffer("orders", torch.stack([order for order, _, _ in draws]))  # (K, D)
        for i in range(depth):  # (K, H, D) then (K, H, H)
            self.register_buffer(f"mask_{i}", torch.stack([masks[i] for _, masks, _ in draws]))
        self.register_buffer("mask_out", torch.stack([out for _, _, out in draws]))  # (K, D, H)

    @property
    def order(self) -> torch.Tensor:
        """The first mask's generation order (D,), the only one when ``num_masks`` = 1; all of them
        are ``orders`` (K, D)."""
        return self.orders[0]

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.shape or x.dim() != len(self.shape) + 1:
            raise ValueError(f"expected x of shape (N, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        return x

    def _check_mask(self, mask: int) -> int:
        if not 0 <= mask < self.num_masks:
            raise ValueError(f"mask index {mask} out of range for num_masks = {self.num_masks}")
        return int(mask)

    def _hidden(self, x_flat: torch.Tensor, mask: int) -> torch.Tensor:
        """The last hidden layer (N, H) under mask ``mask``."""
        weight_dtype = self.out_weight.dtype
        h = x_flat.to(weight_dtype)
        if self.levels > 2:
            h = h / (self.levels - 1)
        for i, layer in enumerate(self.layers):
            keep = getattr(self, f"mask_{i}")[mask].to(weight_dtype)
            h = F.relu(F.linear(h, layer.weight * keep, layer.bias))
        return h

    def _out_weight(self, mask: int) -> torch.Tensor:
        return self.out_weight * self.mask_out[mask].to(self.out_weight.dtype).unsqueeze(1)  # (D, P, H)

    def _logits(self, x_flat: torch.Tensor, mask: int) -> torch.Tensor:
        return torch.einsum("nh,dph->ndp", self._hidden(x_flat, mask), self._out_weight(mask)) + self.out_bias

    def logits(self, x: torch.Tensor, mask: int = 0) -> torch.Tensor:
        """Outputs (N, D, P) for ``x`` (N, *shape) under mask ``mask``: row d depends only on the
        dimensions before d in ``orders[mask]``."""
        return self._logits(self._check(x).flatten(1), self._check_mask(mask))

    def log_prob_mask(self, x: torch.Tensor, mask: int) -> torch.Tensor:
        """Exact log p_k(x) (N,) of the single autoregressive model under mask k = ``mask``."""
        x_flat = self._check(x).flatten(1)
        return conditional_log_prob(self._logits(x_flat, self._check_mask(mask)), x_flat).sum(-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) (N,) in nats: log (1/K) sum_k p_k(x) over the K masks (K network passes)."""
        self._check(x)
        if self.num_masks == 1:
            return self.log_prob_mask(x, 0)
        per_mask = torch.stack([self.log_prob_mask(x, k) for k in range(self.num_masks)])  # (K, N)
        return torch.logsumexp(per_mask, dim=0) - math.log(self.num_masks)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The training loss: mean NLL in nats under one mask drawn uniformly per call, from
        ``generator`` when given, else from torch's global (CPU) random number generator."""
        self._check(x)
        mask = 0
        if self.num_masks > 1:
            device = generator.device if generator is not None else "cpu"
            mask = int(torch.randint(self.num_masks, (1,), generator=generator, device=device))
        return -self.log_prob_mask(x, mask).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n exact draws (n, *shape) float32 levels from the ensemble, on the module's device.

        Each sample picks a mask uniformly, then its dimensions are drawn one at a time in that
        mask's order: D network passes per mask used, inherent to MADE, each pass batched over
        the samples sharing the mask. All randomness (n mask choices, n x D uniforms) comes from
        ``generator``, drawn up front.
        """
        device = self.out_weight.device
        if self.num_masks == 1:
            choice = torch.zeros(n, dtype=torch.long, device=device)
        else:
            choice = torch.randint(self.num_masks, (n,), generator=generator, device=generator.device).to(device)
        u = uniforms((n, self.num_dims), generator, device)
        x = torch.zeros(n, self.num_dims, device=device)
        for k in range(self.num_masks):
            rows = (choice == k).nonzero().squeeze(-1)
            if rows.numel() > 0:
                x[rows] = self._sample_under_mask(k, u[rows])
        return x.reshape(n, *self.shape)

    def _sample_under_mask(self, mask: int, u: torch.Tensor) -> torch.Tensor:
        """(m, D) draws under mask ``mask`` from the uniforms ``u`` (m, D), one dimension at a time.

        The first layer's pre-activation is updated as each dimension is drawn (a rank-1 update,
        O(m H)) rather than recomputed from x (O(m D H)): dimensions not yet drawn are 0 in x, so
        ``b + W x`` is the running sum of the drawn dimensions' columns. The masked weights are
        built once per mask, not once per dimension."""
        dtype = self.out_weight.dtype
        scale = 1.0 / (self.levels - 1) if self.levels > 2 else 1.0
        weights = [layer.weight * getattr(self, f"mask_{i}")[mask].to(dtype) for i, layer in enumerate(self.layers)]
        first_columns = (weights[0] * scale).t().contiguous()  # (D, H): input d's column, scaled
        out_weight = self._out_weight(mask)  # (D, P, H)
        x = torch.zeros(u.shape, device=u.device, dtype=dtype)
        pre = self.layers[0].bias.expand(u.shape[0], -1).clone()  # (m, H): b + W x, x = 0
        for d in self.orders[mask].tolist():
            h = F.relu(pre)
            for layer, weight in zip(self.layers[1:], weights[1:]):
                h = F.relu(F.linear(h, weight, layer.bias))
            x[:, d] = draw(h @ out_weight[d].T + self.out_bias[d], u[:, d])
            pre.addr_(x[:, d], first_columns[d])
        return x
