"""The `dbm` variant as the harness sees it: PCD training with a mean-field positive phase, and
the mean-field lower bound on log p(v) with log Z estimated by AIS (Salakhutdinov & Hinton 2009)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from evalgen import TrainState

from .dbm import DBM
from .models import EnergyModel, layer_sizes


class DBMModel(EnergyModel):
    """A two-hidden-layer DBM; persistent chains live in ``state.scratch`` during training."""

    def __init__(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        super().__init__(shape, config)
        _, h1, h2 = layer_sizes(self.dims)
        self.net = DBM(self.dims, int(self.config["hidden1"] or h1), int(self.config["hidden2"] or h2))

    def train_step(self, x: torch.Tensor, state: TrainState) -> dict[str, Any]:
        v = self.flat(x)
        self.observe(v)
        chains = state.scratch.get("chains")
        if chains is None or chains[0].shape[0] != v.shape[0]:
            chains = self.net.init_chains(v.shape[0], state.generator)
        loss, chains = self.net.pcd_loss(v, chains, state.generator, int(self.config["mf_steps"]),
                                         int(self.config["gibbs_steps"]))
        opt = state.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), float("inf"))
        opt.step()
        state.scratch["chains"] = chains
        return {"loss/energy_gap": loss.detach(), "grad_norm/dbm": norm.detach()}

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        self.net.base_bias.copy_(self.base_rate_logits())
        return self.unflat(self.net.gibbs_sample(n, generator, burn_in=int(self.config["burn_in"])))

    def log_prob(self, x: torch.Tensor, chains: int) -> torch.Tensor:
        estimate = self.log_z_estimate(self.net, chains)
        return self.net.variational_bound(self.flat(x), estimate.log_z, int(self.config["mf_steps"]))
