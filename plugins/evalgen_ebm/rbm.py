"""The Bernoulli-Bernoulli restricted Boltzmann machine: free energy, block Gibbs sampling,
CD-k / PCD training and its partition function (exact for few hidden units, else AIS).

E(v, h) = -b.v - c.h - v^T W h with v in {0,1}^D (flattened data, (N, D) float) and h in
{0,1}^H. Summing out h: log p*(v) = b.v + sum_j softplus(c_j + (vW)_j) = -F(v), the negative
free energy, and log p(v) = -F(v) - log Z.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .ais import LogZEstimate, estimate_log_z, schedule, softplus_increment

#: Above this many hidden units `exact_log_z` refuses (2^H terms).
MAX_EXACT_HIDDEN = 24
_EXACT_CHUNK = 1 << 14


def smoothed_base_rate(train_v: torch.Tensor) -> torch.Tensor:
    """Logits of the per-dimension training means, smoothed as (sum + 0.5) / (N + 1) so that no
    logit is infinite: the base-rate model of Salakhutdinov & Murray (2008)."""
    v = train_v.reshape(train_v.shape[0], -1).double()
    mean = (v.sum(0) + 0.5) / (v.shape[0] + 1)
    return torch.logit(mean).float()


def bernoulli(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    noise = torch.rand(probs.shape, generator=generator, device=probs.device, dtype=probs.dtype)
    return (noise < probs).to(probs.dtype)


class RBM(nn.Module):
    """A Bernoulli-Bernoulli RBM over D visible and H hidden units.

    ``base_bias`` (D,) is the visible bias of the AIS base-rate model (no weights, no hidden
    biases); `fit_base_rate` sets it from the training data.
    """

    def __init__(self, num_visible: int, num_hidden: int, init_std: float = 0.01) -> None:
        super().__init__()
        self.num_visible, self.num_hidden = num_visible, num_hidden
        self.W = nn.Parameter(init_std * torch.randn(num_visible, num_hidden))
        self.b = nn.Parameter(torch.zeros(num_visible))
        self.c = nn.Parameter(torch.zeros(num_hidden))
        self.register_buffer("base_bias", torch.zeros(num_visible))

    # --- densities ----------------------------------------------------------------------------

    def check(self, v: torch.Tensor) -> torch.Tensor:
        if v.dim() != 2 or v.shape[1] != self.num_visible:
            raise ValueError(f"expected v of shape (N, {self.num_visible}), got {tuple(v.shape)}")
        return v

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) (N,) of binary v (N, D): -b.v - sum_j softplus(c_j + (vW)_j)."""
        v = self.check(v)
        return -(v @ self.b) - F.softplus(v @ self.W + self.c).sum(1)

    def annealed_log_unnormalized(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        """log sum_h p*_beta(v, h) (N,) for p_beta(v, h) ~ exp((1 - beta) a.v - beta E(v, h)),
        a = ``base_bias``: the intermediate distributions of AIS (beta = 1 gives -F(v))."""
        visible = v @ ((1 - beta) * self.base_bias + beta * self.b)
        return visible + F.softplus(beta * (v @ self.W + self.c)).sum(1)

    def log_z_base(self) -> float:
        """log Z of the base-rate model (beta = 0), hidden units included: H log 2 + sum softplus(a)."""
        return self.num_hidden * math.log(2) + float(F.softplus(self.base_bias.double()).sum())

    @torch.no_grad()
    def exact_log_z(self) -> float:
        """log Z by summing over the 2^H hidden states (v summed analytically), in float64."""
        if self.num_hidden > MAX_EXACT_HIDDEN:
            raise ValueError(f"exact log Z enumerates 2^H hidden states; H = {self.num_hidden} > {MAX_EXACT_HIDDEN}")
        W, b, c = self.W.double(), self.b.double(), self.c.double()
        bits = 2 ** torch.arange(self.num_hidden, device=W.device)
        parts = []
        for start in range(0, 2 ** self.num_hidden, _EXACT_CHUNK):
            codes = torch.arange(start, min(start + _EXACT_CHUNK, 2 ** self.num_hidden), device=W.device)
            h = ((codes[:, None] & bits) > 0).double()
            parts.append(torch.logsumexp(h @ c + F.softplus(h @ W.T + b).sum(1), 0))
        return float(torch.logsumexp(torch.stack(parts), 0))

    # --- sampling ----------------------------------------------------------------------------

    def gibbs_step(self, v: torch.Tensor, generator: torch.Generator, beta: float = 1.0) -> torch.Tensor:
        """One block Gibbs sweep v -> h -> v' of p_beta (beta = 1: the RBM itself)."""
        h = bernoulli(torch.sigmoid(beta * (v @ self.W + self.c)), generator)
        logits = (1 - beta) * self.base_bias + beta * (h @ self.W.T + self.b)
        return bernoulli(torch.sigmoid(logits), generator)

    def base_samples(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n draws (n, D) from the base-rate model."""
        return bernoulli(torch.sigmoid(self.base_bias).expand(n, -1).contiguous(), generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, burn_in: int, thin: int = 1,
               chains: int | None = None) -> torch.Tensor:
        """n binary samples (n, D) from ``chains`` block Gibbs chains (default n: one sample per
        chain) started from the base-rate model: after ``burn_in`` sweeps every chain gives a
        sample, then one more every ``thin`` sweeps until n are collected."""
        chains = n if chains is None else max(1, min(int(chains), n))
        v = self.base_samples(chains, generator)
        for _ in range(burn_in):
            v = self.gibbs_step(v, generator)
        taken = [v]
        while sum(len(t) for t in taken) < n:
            for _ in range(thin):
                v = self.gibbs_step(v, generator)
            taken.append(v)
        return torch.cat(taken)[:n]

    # --- training ------------------------------------------------------------------------------

    def cd_loss(self, v_data: torch.Tensor, v_start: torch.Tensor, k: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Contrastive divergence: ``k`` Gibbs sweeps from ``v_start`` (the data for CD-k, the
        persistent chains for PCD) give negative samples v-; the surrogate loss
        mean F(v_data) - mean F(v-) has as gradient the CD-k estimate of -d log p / d theta.
        Returns (loss, v-)."""
        with torch.no_grad():
            v_neg = v_start
            for _ in range(k):
                v_neg = self.gibbs_step(v_neg, generator)
        return self.free_energy(v_data).mean() - self.free_energy(v_neg).mean(), v_neg

    # --- the partition function by annealed importance sampling ---------------------------------

    @torch.no_grad()
    def ais_log_z(self, num_chains: int, steps: int, generator: torch.Generator) -> LogZEstimate:
        """AIS estimate of log Z with ``num_chains`` chains over ``steps`` intermediate
        distributions (`ais.schedule`), from the base-rate model (Salakhutdinov & Murray 2008).

        Per step, with pre = vW + c shared by the weight update and the Gibbs sweep:
        log w += log p*_k(v) - log p*_{k-1}(v) (its softplus terms by `ais.softplus_increment`),
        then v ~ T_k(v, .) (a sweep of p_k)."""
        betas = schedule(steps).tolist()
        a, b = self.base_bias, self.b
        v = self.base_samples(num_chains, generator)
        log_w = torch.zeros(num_chains, dtype=torch.float64, device=v.device)
        for previous, beta in itertools.pairwise(betas):
            pre = v @ self.W + self.c
            visible = v @ (b - a)  # log p*_beta = v.a + beta v.(b - a) + sum softplus(beta pre)
            step = (beta - previous) * visible + softplus_increment(previous * pre, (beta - previous) * pre).sum(1)
            log_w += step.double()
            h = bernoulli(torch.sigmoid(beta * pre), generator)
            v = bernoulli(torch.sigmoid((1 - beta) * a + beta * (h @ self.W.T + b)), generator)
        return estimate_log_z(log_w, self.log_z_base(), steps)
