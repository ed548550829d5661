"""The models the harness sees: one `EnergyModel` per variant, holding the network, its options,
the training step and the cached partition-function estimate."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from evalgen import TrainState

from . import ais
from .fvbm import FVBM
from .rbm import RBM

#: AIS chains of one estimate are seeded with this (and M), so an estimate is reproducible.
AIS_SEED = 4_242


def layer_sizes(dims: int) -> tuple[int, int, int]:
    """(RBM hidden, DBM hidden1, DBM hidden2): the 500-unit RBM of S&M 2008 for MNIST-sized data;
    smaller for 8x8 digits and the 16-dimensional tiny digits."""
    if dims > 256:
        return 500, 500, 500
    return (100, 100, 50) if dims > 16 else (16, 16, 8)


class EnergyModel(nn.Module):
    """Common ground: flattening, the training data's base rate (for AIS), the log Z cache.

    ``config`` holds the model's options as declared in `evalgen_ebm.hooks` (resolved by evalgen,
    defaults included; see `evalgen.options.resolved_options` to build one outside a run)."""

    def __init__(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.dims = math.prod(shape)
        self.config = dict(config)
        self.register_buffer("seen_sum", torch.zeros(self.dims, dtype=torch.float64))
        self.register_buffer("seen_count", torch.zeros((), dtype=torch.float64))
        self._log_z: tuple[tuple, dict[str, ais.LogZEstimate]] | None = None
        self.last_estimate: ais.LogZEstimate | None = None
        self.last_runs: dict[str, ais.LogZEstimate] = {}

    def flat(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"expected x of shape (N, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        return x.reshape(x.shape[0], self.dims)

    def observe(self, v: torch.Tensor) -> None:
        """Count the training data seen, for the AIS base-rate model."""
        self.seen_sum += v.detach().double().sum(0)
        self.seen_count += v.shape[0]

    def base_rate_logits(self) -> torch.Tensor:
        """Logits of the smoothed per-dimension mean of all training data seen (S&M 2008)."""
        return torch.logit((self.seen_sum + 0.5) / (self.seen_count + 1)).float()

    def optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        return torch.optim.SGD(self.parameters(), lr=float(c["lr"]), momentum=float(c["momentum"]),
                               weight_decay=float(c["weight_decay"]))

    def log_z_estimate(self, network: nn.Module, chains: int) -> ais.LogZEstimate:
        """The AIS estimate of log Z with ``chains`` chains per start, computed once per parameter
        state: the larger of two runs, one from the training data's base rate (Salakhutdinov &
        Murray 2008) and one from the uniform distribution.

        Each run's log Z-hat is a stochastic lower bound (it exceeds log Z by b with probability at
        most e^-b), so their maximum exceeds it by b with probability at most 2e^-b. Two starts
        because a run misses modes its chains never reach: a CD-1 RBM on binarized MNIST had a
        noise mode 28 nats above the rest that the base-rate run missed by 13-36 nats, while the
        uniform run was within 0.06."""
        steps = int(self.config["ais_steps"])
        key = (chains, steps, tuple(p._version for p in self.parameters()), float(self.seen_count))
        if self._log_z is None or self._log_z[0] != key:
            runs = {}
            for start, bias in (("base rate", self.base_rate_logits()), ("uniform", torch.zeros(self.dims))):
                network.base_bias.copy_(bias)
                generator = torch.Generator(device=self.seen_sum.device).manual_seed(AIS_SEED + chains)
                runs[start] = network.ais_log_z(chains, steps, generator)
            network.base_bias.copy_(self.base_rate_logits())
            self._log_z = (key, runs)
        runs = self._log_z[1]
        self.last_runs = runs
        self.last_estimate = max(runs.values(), key=lambda e: e.log_z)
        return self.last_estimate

    def likelihood_details(self) -> dict[str, Any] | None:
        if self.last_estimate is None:
            return None
        runs = self.last_runs
        details: dict[str, Any] = {
            "log_z": self.last_estimate.log_z,
            # shifts every test example's log p at once: the harness adds it to the test set's error
            "log_z_standard_error": self.last_estimate.log_z_standard_error,
            "estimator": "AIS (Salakhutdinov & Murray 2008): the larger log Z of two runs, from the data's "
                         "base rate and from the uniform distribution, each with M chains; lower/upper: log of "
                         "the mean weight -/+ 3 standard errors",
            "runs": {start: estimate.to_dict() for start, estimate in runs.items()},
        }
        gap = abs(runs["base rate"].log_z - runs["uniform"].log_z)
        if gap > 1.0 or self.last_estimate.degenerate:
            details["warning"] = (
                f"the two AIS runs disagree by {gap:.2f} nats, or the kept one rests on few chains "
                f"({self.last_estimate.effective_chains:.1f} effective of {self.last_estimate.chains}): the lower "
                "run missed probability mass and the kept (larger) one may have too, in which case log Z is "
                "underestimated and the NLL too low")
        return details

    def outlier_score(self, x: torch.Tensor) -> torch.Tensor | None:
        return None

    def unflat(self, v: torch.Tensor) -> torch.Tensor:
        return v.reshape(v.shape[0], *self.shape).float()


class RBMModel(EnergyModel):
    """An RBM trained with CD-k (``persistent`` False) or PCD (True)."""

    def __init__(self, shape: tuple[int, ...], config: Mapping[str, Any], persistent: bool) -> None:
        super().__init__(shape, config)
        self.persistent = persistent
        self.net = RBM(self.dims, int(self.config["hidden"] or layer_sizes(self.dims)[0]))

    def train_step(self, x: torch.Tensor, state: TrainState) -> dict[str, Any]:
        v = self.flat(x)
        self.observe(v)
        if self.persistent:
            start = state.scratch.get("chains")
            if start is None or start.shape != v.shape:
                start = self.net.base_samples(v.shape[0], state.generator)
            k = 1
        else:
            start, k = v, int(self.config["cd_k"])
        loss, v_neg = self.net.cd_loss(v, start, k, state.generator)
        opt = state.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), float("inf"))
        opt.step()
        if self.persistent:
            state.scratch["chains"] = v_neg
        return {"loss/free_energy_gap": loss.detach(), "free_energy/data": self.net.free_energy(v).mean().detach(),
                "grad_norm/rbm": norm.detach()}

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        self.net.base_bias.copy_(self.base_rate_logits())
        c = self.config
        chains = None if c["sample_chains"] is None else int(c["sample_chains"])
        return self.unflat(self.net.sample(n, generator, int(c["burn_in"]), int(c["thin"]), chains))

    def log_prob(self, x: torch.Tensor, chains: int) -> torch.Tensor:
        estimate = self.log_z_estimate(self.net, chains)
        return -self.net.free_energy(self.flat(x)).double() - estimate.log_z

    def outlier_score(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.free_energy(self.flat(x)) / self.dims


class FVBMModel(EnergyModel):
    """The fully visible Boltzmann machine trained on its exact likelihood."""

    def __init__(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        super().__init__(shape, config)
        self.net = FVBM(self.dims)

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=float(self.config["lr"]))

    def train_step(self, x: torch.Tensor, state: TrainState) -> dict[str, Any]:
        nll = -self.net.log_prob(self.flat(x)).mean()
        opt = state.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        nll.backward()
        opt.step()
        return {"loss/nll": nll.detach()}

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.unflat(self.net.sample(n, generator))

    def log_prob(self, x: torch.Tensor, chains: int) -> torch.Tensor:
        return self.net.log_prob(self.flat(x))

    def likelihood_details(self) -> dict[str, Any] | None:
        with torch.no_grad():
            log_z = float(self.net.log_z())
        return {"log_z": log_z, "estimator": f"exact: sum over all 2^{self.dims} states"}


def build(model_name: str, shape: tuple[int, ...], config: Mapping[str, Any]) -> EnergyModel:
    if model_name in ("rbm", "rbm-pcd"):
        return RBMModel(shape, config, persistent=model_name == "rbm-pcd")
    if model_name == "fvbm":
        return FVBMModel(shape, config)
    if model_name == "dbm":
        from .dbm_model import DBMModel

        return DBMModel(shape, config)
    raise ValueError(f"unknown ebm model {model_name!r}; choose from dbm, fvbm, rbm, rbm-pcd")
