"""The deep Boltzmann machine with two hidden layers of binary units (Salakhutdinov & Hinton 2009).

Shapes: ``v`` is (N, D) flattened binary data (0./1. floats), ``h1`` (N, H1), ``h2`` (N, H2);
energies, log-probabilities and bounds are (N,) nats.

Energy E(v, h1, h2) = -b.v - c1.h1 - c2.h2 - v'W1 h1 - h1'W2 h2. Given h1, v and h2 are
independent, so summing them out is analytic:

    log sum_{v,h2} exp(-E) = c1.h1 + sum_i softplus(b + W1 h1)_i + sum_k softplus(c2 + h1 W2)_k.

This gives log Z exactly by enumerating h1 (H1 <= 20) and AIS on the h1-marginal (Salakhutdinov &
Murray 2008 for RBMs, Salakhutdinov & Hinton 2009 Sec. 4 and Salakhutdinov & Larochelle 2010 for
DBMs). A test vector's log p(v) is bounded below by the mean-field variational bound (S&H 2009
Sec. 3) when log Z is exact; with an AIS estimate of log Z the "bound" is itself an estimate, and
as E[log Z_AIS] <= log Z (Jensen) it tends to err upwards.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import ais

#: exact_log_z / exact_log_prob enumerate the 2^H1 first-layer states: at most this many units.
MAX_ENUMERATED_HIDDEN = 20
#: Elements one chunk of an enumeration may hold (float64: 32 MB).
CHUNK_ELEMENTS = 1 << 22
#: The smoothed base rate is clamped to [EPS, 1 - EPS] before the logit.
BASE_RATE_EPS = 1e-6

Params = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]  # W1, W2, b, c1, c2


def _softplus(x: Tensor) -> Tensor:
    """log(1 + e^x), accurate for every x (torch's softplus is linear beyond its threshold)."""
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


def _bernoulli(p: Tensor, generator: torch.Generator | None) -> Tensor:
    """Binary samples (as floats) with success probabilities p, from ``generator``."""
    return (torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) < p).to(p.dtype)


def _bernoulli_into(p: Tensor, uniform: Tensor, generator: torch.Generator | None, out: Tensor) -> Tensor:
    """`_bernoulli` (the same draws from ``generator``) written into ``out``, with ``uniform`` as
    scratch of p's shape: no allocation, for loops that sample the same shapes many times."""
    uniform.uniform_(generator=generator)
    return torch.lt(uniform, p, out=out)


def _binary_states(start: int, stop: int, n: int, device: torch.device) -> Tensor:
    """The binary codes start..stop-1 of n bits, (stop - start, n) float64."""
    codes = torch.arange(start, stop, device=device)
    return ((codes[:, None] >> torch.arange(n, device=device)) & 1).double()


def _energy(p: Params, v: Tensor, h1: Tensor, h2: Tensor) -> Tensor:
    w1, w2, b, c1, c2 = p
    return -(v @ b) - h1 @ c1 - h2 @ c2 - ((v @ w1) * h1).sum(1) - ((h1 @ w2) * h2).sum(1)


class DBM(nn.Module):
    """A two-hidden-layer Bernoulli DBM, v (D) - h1 (H1) - h2 (H2).

    Parameters W1 (D, H1), W2 (H1, H2) ~ N(0, 0.01^2) and zero biases b (D), c1 (H1), c2 (H2);
    the buffer ``base_bias`` (D) is the AIS base-rate model's visible bias (`fit_base_rate`).
    """

    def __init__(self, num_visible: int, hidden1: int, hidden2: int) -> None:
        super().__init__()
        if min(num_visible, hidden1, hidden2) < 1:
            raise ValueError(f"every layer needs >= 1 unit, got ({num_visible}, {hidden1}, {hidden2})")
        self.num_visible, self.hidden1, self.hidden2 = int(num_visible), int(hidden1), int(hidden2)
        self.W1 = nn.Parameter(0.01 * torch.randn(num_visible, hidden1))
        self.W2 = nn.Parameter(0.01 * torch.randn(hidden1, hidden2))
        self.b = nn.Parameter(torch.zeros(num_visible))
        self.c1 = nn.Parameter(torch.zeros(hidden1))
        self.c2 = nn.Parameter(torch.zeros(hidden2))
        self.register_buffer("base_bias", torch.zeros(num_visible))

    # -- helpers ---------------------------------------------------------------------------
    def _params(self, dtype: torch.dtype | None = None) -> Params:
        ps = (self.W1, self.W2, self.b, self.c1, self.c2)
        return ps if dtype is None else tuple(p.detach().to(dtype) for p in ps)  # type: ignore[return-value]

    def _check(self, x: Tensor, width: int, name: str, binary: bool = True) -> Tensor:
        """x as (N, width) in the parameters' dtype; binary, or in [0, 1] when ``binary`` is False."""
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != width:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected {name} of shape (N, {width}), got {shape}")
        x = x.to(self.W1.dtype)
        ok = ((x == 0) | (x == 1)).all() if binary else ((x >= 0) & (x <= 1)).all()
        if not ok:
            raise ValueError(f"{name} must be {'binary (0 or 1)' if binary else 'in [0, 1]'}")
        return x

    def _check_generator(self, generator: torch.Generator | None) -> None:
        if generator is not None and generator.device.type != self.W1.device.type:
            raise ValueError(f"the generator is on {generator.device}, the model on {self.W1.device}")

    def _h1_terms(self, h1: Tensor, p: Params) -> tuple[Tensor, Tensor, Tensor]:
        """For h1 (N, H1): c1.h1 (N,), the visible pre-activations b + W1 h1 (N, D) and the
        second-layer ones c2 + h1 W2 (N, H2)."""
        w1, w2, b, c1, c2 = p
        return h1 @ c1, b + h1 @ w1.T, c2 + h1 @ w2

    @staticmethod
    def _log_h1(terms: tuple[Tensor, Tensor, Tensor], beta: float, base: Tensor) -> Tensor:
        """log sum_{v,h2} exp((1 - beta) base.v - beta E), (N,), from `_h1_terms`."""
        lin, pre_v, pre_h2 = terms
        return beta * lin + _softplus((1 - beta) * base + beta * pre_v).sum(1) + _softplus(beta * pre_h2).sum(1)

    def _sweep(self, v: Tensor, h2: Tensor, p: Params, generator: torch.Generator | None):
        """One block-Gibbs sweep at beta = 1: h1 | v, h2; then v | h1 and h2 | h1."""
        w1, w2, b, c1, c2 = p
        h1 = _bernoulli(torch.sigmoid(c1 + v @ w1 + h2 @ w2.T), generator)
        v = _bernoulli(torch.sigmoid(b + h1 @ w1.T), generator)
        return v, h1, _bernoulli(torch.sigmoid(c2 + h1 @ w2), generator)

    # -- the model -------------------------------------------------------------------------
    @torch.no_grad()
    def fit_base_rate(self, train_v: Tensor) -> None:
        """Set ``base_bias`` to the logit of the smoothed per-pixel mean (sum + 0.5) / (N + 1) of
        the training data (N, D), clamped away from 0 and 1 (Salakhutdinov & Murray 2008)."""
        train_v = self._check(train_v, self.num_visible, "train_v")
        mean = (train_v.double().sum(0) + 0.5) / (train_v.shape[0] + 1)
        self.base_bias.copy_(torch.logit(mean.clamp(BASE_RATE_EPS, 1 - BASE_RATE_EPS)))

    def energy(self, v: Tensor, h1: Tensor, h2: Tensor) -> Tensor:
        """E(v, h1, h2), (N,); states in [0, 1] (mean-field means are allowed), differentiable."""
        v = self._check(v, self.num_visible, "v", binary=False)
        h1 = self._check(h1, self.hidden1, "h1", binary=False)
        h2 = self._check(h2, self.hidden2, "h2", binary=False)
        if not v.shape[0] == h1.shape[0] == h2.shape[0]:
            raise ValueError(f"v, h1, h2 need the same N, got {v.shape[0]}, {h1.shape[0]}, {h2.shape[0]}")
        return _energy(self._params(), v, h1, h2)

    @torch.no_grad()
    def mean_field(self, v: Tensor, steps: int = 10) -> tuple[Tensor, Tensor]:
        """Fully factorized q(h1) q(h2) for each v (N, D): the means (mu1 (N, H1), mu2 (N, H2)),
        detached. Initialized by S&H 2009's bottom-up pass with doubled weights,
        mu1 = sigmoid(c1 + 2 v W1), mu2 = sigmoid(c2 + mu1 W2), then ``steps`` rounds of the
        fixed-point updates mu1 = sigmoid(c1 + v W1 + W2 mu2), mu2 = sigmoid(c2 + mu1 W2), in
        that order: block coordinate ascent, so the bound never decreases."""
        v = self._check(v, self.num_visible, "v")
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        w1, w2, _, c1, c2 = self._params()
        bottom_up = v @ w1
        mu1 = torch.sigmoid(c1 + 2 * bottom_up)
        mu2 = torch.sigmoid(c2 + mu1 @ w2)
        for _ in range(steps):
            mu1 = torch.sigmoid(c1 + bottom_up + mu2 @ w2.T)
            mu2 = torch.sigmoid(c2 + mu1 @ w2)
        return mu1, mu2

    @torch.no_grad()
    def variational_bound(self, v: Tensor, log_z: float, mf_steps: int = 10) -> Tensor:
        """E_q[-E(v, h)] + H(q) - log_z, (N,) float64, with q from `mean_field`: a lower bound on
        log p(v) when ``log_z`` is the exact log partition function (S&H 2009, Sec. 3)."""
        mu1, mu2 = self.mean_field(v, mf_steps)
        v = v.to(torch.float64)
        mu1, mu2 = mu1.double(), mu2.double()
        # E_q[E] = E(v, mu1, mu2): E is linear in each layer and q factorizes across them.
        neg_energy = -_energy(self._params(torch.float64), v, mu1, mu2)
        entropy = -sum((torch.xlogy(m, m) + torch.xlogy(1 - m, 1 - m)).sum(1) for m in (mu1, mu2))
        return neg_energy + entropy - float(log_z)

    @torch.no_grad()
    def log_unnormalized_h1(self, h1: Tensor, beta: float = 1.0) -> Tensor:
        """log sum_{v,h2} exp((1 - beta) base_bias.v - beta E(v, h1, h2)), (N,) float64, for binary
        h1 (N, H1): the h1-marginal of the annealed model p_beta that AIS moves along."""
        h1 = self._check(h1, self.hidden1, "h1").double()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        return self._log_h1(self._h1_terms(h1, self._params(torch.float64)), float(beta), self.base_bias.double())

    def _chunks(self, per_state: int):
        """Enumerate h1 in chunks: (2^H1 states, chunk) after checking H1 is small enough."""
        if self.hidden1 > MAX_ENUMERATED_HIDDEN:
            raise ValueError(f"exact computation enumerates 2^hidden1 states: hidden1 = {self.hidden1} > "
                             f"{MAX_ENUMERATED_HIDDEN}; use ais_log_z")
        chunk = max(1, CHUNK_ELEMENTS // per_state)
        for start in range(0, 2 ** self.hidden1, chunk):
            yield _binary_states(start, min(start + chunk, 2 ** self.hidden1), self.hidden1, self.W1.device)

    @torch.no_grad()
    def exact_log_z(self) -> float:
        """log Z by enumerating h1 (hidden1 <= 20) with v and h2 summed out analytically."""
        p, base = self._params(torch.float64), self.base_bias.double()
        parts = [self._log_h1(self._h1_terms(h1, p), 1.0, base)
                 for h1 in self._chunks(self.num_visible + self.hidden2 + 1)]
        return float(torch.logsumexp(torch.cat(parts), 0))

    @torch.no_grad()
    def exact_log_prob(self, v: Tensor) -> Tensor:
        """log p(v), (N,) float64, by enumerating h1 (hidden1 <= 20), analytic in h2."""
        v = self._check(v, self.num_visible, "v").double()
        w1, w2, b, c1, c2 = self._params(torch.float64)
        vb, vw = v @ b, v @ w1
        parts = []
        for h1 in self._chunks(v.shape[0] + self.num_visible + self.hidden2 + 1):
            per_h1 = h1 @ c1 + _softplus(c2 + h1 @ w2).sum(1)  # (S,)
            parts.append(torch.logsumexp(vb[:, None] + vw @ h1.T + per_h1, dim=1))
        return torch.logsumexp(torch.stack(parts, 1), 1) - self.exact_log_z()

    # -- AIS, sampling and training --------------------------------------------------------
    @torch.no_grad()
    def ais_log_z(self, num_chains: int, steps: int, generator: torch.Generator) -> ais.LogZEstimate:
        """AIS estimate of log Z (Salakhutdinov & Murray 2008; S&H 2009 Sec. 4) along
        p_beta ∝ exp((1 - beta) base_bias.v - beta E), from the base-rate model (beta = 0: v
        independent Bernoulli(sigmoid(base_bias)), h1 and h2 uniform) to the DBM (beta = 1),
        with ``ais.schedule(steps)``. The weights use the h1-marginal (v and h2 summed out); each
        transition is one Gibbs sweep at beta_k (v, h2 | h1, then h1 | v, h2). ``num_chains``
        chains run in parallel on the model's device with randomness from ``generator`` (on that
        device). Each weight increment is a sum of `ais.softplus_increment` terms (no cancellation),
        accumulated in float64."""
        if num_chains < 1:
            raise ValueError(f"num_chains must be >= 1, got {num_chains}")
        self._check_generator(generator)
        betas = ais.schedule(steps).tolist()
        w1, w2, b, c1, c2 = self._params(self.W1.dtype)
        base = self.base_bias.to(w1.dtype)
        # one matmul each way: [v, h2] -> h1 and h1 -> [v, h2] (fewer, larger products)
        up = torch.cat([w1, w2.T])  # (D + H2, H1)
        down_weight = up.T.contiguous()  # (H1, D + H2): a contiguous right operand is the faster GEMM
        down_bias = torch.cat([b - base, c2])  # the beta-scaled part of v's and h2's arguments
        base_part = torch.cat([base, torch.zeros_like(c2)])  # the (1 - beta) part (v only)
        # |down| <= |down_bias| + sum |W| over h1's rows for binary h1: when the step times this
        # bound cannot exceed 1, softplus_increment's |delta| > 1 test is known to be false.
        bound = float((down_bias.double().abs() + up.double().abs().sum(1)).max()) * (1 + 1e-3)
        h1 = _bernoulli(torch.full((num_chains, self.hidden1), 0.5, device=w1.device, dtype=w1.dtype), generator)
        log_w = torch.zeros(num_chains, dtype=torch.float64, device=w1.device)
        # Buffers reused across the 10^4 steps: the loop is bound by passes over memory.
        down, argument, delta = (torch.empty(num_chains, up.shape[0], dtype=w1.dtype, device=w1.device)
                                 for _ in range(3))
        scratch = ais.IncrementScratch.like(down)
        visible_and_top, pre_h1 = torch.empty_like(down), torch.empty_like(h1)
        uniform_outer, uniform_h1 = torch.empty_like(down), torch.empty_like(h1)
        for k in range(1, steps + 1):
            previous, beta = betas[k - 1], betas[k]
            # log p*_beta(h1) = beta c1.h1 + sum softplus(base_part + beta (down - base_part))
            torch.addmm(down_bias, h1, down_weight, out=down)  # (b - base + W1 h1, c2 + h1 W2)
            torch.mul(down, previous, out=argument).add_(base_part)
            torch.mul(down, beta - previous, out=delta)
            increment = ais.softplus_increment(argument, delta, scratch,
                                               known_small=(beta - previous) * bound <= 1.0).sum(1)
            log_w += increment.double() + (beta - previous) * (h1 @ c1).double()
            if k == steps:
                break
            _bernoulli_into(argument.add_(down, alpha=beta - previous).sigmoid_(), uniform_outer, generator,
                            visible_and_top)
            torch.addmm(c1, visible_and_top, up, out=pre_h1)
            _bernoulli_into(pre_h1.mul_(beta).sigmoid_(), uniform_h1, generator, h1)
        base64 = self.base_bias.double()
        log_z_base = float(_softplus(base64).sum()) + (self.hidden1 + self.hidden2) * math.log(2.0)
        return ais.estimate_log_z(log_w, log_z_base, steps)

    @torch.no_grad()
    def init_chains(self, num: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        """``num`` fantasy particles (v (num, D), h1 (num, H1), h2 (num, H2)) from the base-rate
        model: v ~ Bernoulli(sigmoid(base_bias)), h1 and h2 uniform."""
        self._check_generator(generator)
        like = dict(device=self.W1.device, dtype=self.W1.dtype)
        v = _bernoulli(torch.sigmoid(self.base_bias.to(**like)).expand(num, -1), generator)
        h1 = _bernoulli(torch.full((num, self.hidden1), 0.5, **like), generator)
        return v, h1, _bernoulli(torch.full((num, self.hidden2), 0.5, **like), generator)

    @torch.no_grad()
    def gibbs_sample(self, num_samples: int, generator: torch.Generator | None, burn_in: int = 1000,
                     start: Tensor | None = None) -> Tensor:
        """Binary visible states (num_samples, D) after ``burn_in`` block-Gibbs sweeps (h1 | v, h2;
        then v | h1 and h2 | h1) of independent chains started at ``start`` (num_samples, D) with
        uniform h2, or by default at `init_chains`."""
        self._check_generator(generator)
        if burn_in < 0:
            raise ValueError(f"burn_in must be >= 0, got {burn_in}")
        if start is None:
            v, _, h2 = self.init_chains(num_samples, generator)
        else:
            v = self._check(start, self.num_visible, "start")
            if v.shape[0] != num_samples:
                raise ValueError(f"start has {v.shape[0]} rows, num_samples is {num_samples}")
            h2 = _bernoulli(torch.full((num_samples, self.hidden2), 0.5, device=v.device, dtype=v.dtype), generator)
        # `_sweep` with one product each way: h1 | (v, h2), then (v, h2) | h1 drawn together
        w1, w2, b, c1, c2 = self._params(self.W1.dtype)
        up, down_bias = torch.cat([w1, w2.T]), torch.cat([b, c2])  # (D + H2, H1), (D + H2,)
        down_weight = up.T.contiguous()
        outer = torch.cat([v, h2], 1)
        h1 = torch.empty(num_samples, self.hidden1, dtype=outer.dtype, device=outer.device)
        pre_h1, pre_outer = torch.empty_like(h1), torch.empty_like(outer)
        uniform_h1, uniform_outer = torch.empty_like(h1), torch.empty_like(outer)
        for _ in range(burn_in):
            _bernoulli_into(torch.addmm(c1, outer, up, out=pre_h1).sigmoid_(), uniform_h1, generator, h1)
            _bernoulli_into(torch.addmm(down_bias, h1, down_weight, out=pre_outer).sigmoid_(), uniform_outer,
                            generator, outer)
        return outer[:, :self.num_visible].contiguous()

    def pcd_loss(self, v_data: Tensor, chains: tuple[Tensor, Tensor, Tensor], generator: torch.Generator | None,
                 mf_steps: int = 10, gibbs_steps: int = 1) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        """One step of S&H 2009's Algorithm 1: mean-field positive phase, persistent chains
        (v, h1, h2) advanced by ``gibbs_steps`` Gibbs sweeps for the negative phase.

        Returns (surrogate loss, new chains). The surrogate mean E(v_data, mu1, mu2) - mean
        E(v_neg, h1_neg, h2_neg) has every state detached, so its gradient is (negative-phase
        statistics) - (positive-phase statistics), e.g. d/dW1 = mean v_neg'h1_neg - mean v'mu1:
        minus S&H's likelihood gradient. Its value is not a likelihood."""
        self._check_generator(generator)
        if gibbs_steps < 1:
            raise ValueError(f"gibbs_steps must be >= 1, got {gibbs_steps}")
        v_data = self._check(v_data, self.num_visible, "v_data")
        v, h1, h2 = (self._check(x, n, name) for x, n, name in
                     zip(chains, (self.num_visible, self.hidden1, self.hidden2), ("chain v", "chain h1", "chain h2")))
        mu1, mu2 = self.mean_field(v_data, mf_steps)
        with torch.no_grad():
            p = self._params(self.W1.dtype)
            for _ in range(gibbs_steps):
                v, h1, h2 = self._sweep(v, h2, p, generator)
        p = self._params()
        loss = _energy(p, v_data, mu1, mu2).mean() - _energy(p, v, h1, h2).mean()
        return loss, (v, h1, h2)
