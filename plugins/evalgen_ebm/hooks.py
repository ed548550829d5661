"""The `ebm` family's hook implementations: RBM (CD-k, PCD), DBM and the fully visible BM."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from evalgen import (
    Batch,
    DataKind,
    DatasetInfo,
    FamilyInfo,
    Likelihood,
    LikelihoodKind,
    ModelSpec,
    Option,
    TrainState,
    hookimpl,
)

from . import ais
from .fvbm import MAX_DIMS
from .models import EnergyModel, build

BINARY = frozenset({DataKind.BINARY})
SMOLENSKY = "Smolensky 1986; Hinton 2002 (CD); Salakhutdinov & Murray 2008 (AIS)"
FREE_ENERGY_SCORE = "free energy F(v) / D"


def ais_likelihood(steps: int = ais.DEFAULT_STEPS) -> Likelihood:
    """An AIS estimate of log Z over ``steps`` temperatures; the harness adds M, the chains."""
    return Likelihood(LikelihoodKind.ESTIMATE, f"AIS, T={steps}", sample_count="M")


def dbm_likelihood(steps: int = ais.DEFAULT_STEPS) -> Likelihood:
    """The mean-field bound with log Z by AIS: a bound only with the true log Z. AIS's log Z-hat
    is stochastic and too low in expectation (Jensen), which raises the "bound" and flatters the
    NLL: the number is an estimate of the bound. The harness adds M, the chains."""
    return Likelihood(LikelihoodKind.ESTIMATE, f"estimate of a lower bound: mean-field ELBO, log Z by AIS, T={steps}",
                      sample_count="M")


#: The options (``-o key=value``) of the models trained by SGD with sampled negative phases and
#: scored by AIS (rbm, rbm-pcd, dbm): SGD as Hinton's practical guide (2010); AIS schedule as
#: Salakhutdinov & Murray 2008 (14,500 temperatures). Layer sizes by data size: `models.layer_sizes`.
SAMPLED_OPTIONS = (
    Option("lr", float, 0.05, "SGD learning rate", minimum=0.0),
    Option("momentum", float, 0.5, "SGD momentum", minimum=0.0, maximum=1.0),
    Option("weight_decay", float, 2e-4, "SGD weight decay", minimum=0.0),
    Option("ais_steps", int, ais.DEFAULT_STEPS, "intermediate distributions (temperatures) of AIS", minimum=1),
    Option("burn_in", int, 1000, "Gibbs sweeps before a sample is taken", minimum=0),
)
RBM_OPTIONS = (
    Option("hidden", int, None, "hidden units; default by data size: 500 for D > 256, 100 for D > 16, else 16",
           minimum=1),
    *SAMPLED_OPTIONS,
    Option("sample_chains", int, None, "Gibbs chains samples are drawn from; default: one chain per sample",
           minimum=1),
    Option("thin", int, 10, "Gibbs sweeps between two samples of one chain", minimum=1),
)

MODELS = (
    ModelSpec("rbm", "Bernoulli RBM trained with CD-k (k = 1; -o cd_k=25 for CD-25); log Z by AIS",
              BINARY, ais_likelihood(), reference=SMOLENSKY, outlier_score=FREE_ENERGY_SCORE,
              validation_nll=False,
              options=(Option("cd_k", int, 1, "Gibbs sweeps per contrastive-divergence step (CD-k)", minimum=1),
                       *RBM_OPTIONS)),
    ModelSpec("rbm-pcd", "Bernoulli RBM trained with persistent CD (one Gibbs sweep per step); log Z by AIS",
              BINARY, ais_likelihood(), reference="Tieleman 2008, Training RBMs using approximations to the "
                                                 "likelihood gradient", outlier_score=FREE_ENERGY_SCORE,
              validation_nll=False, options=RBM_OPTIONS),
    ModelSpec("dbm", "deep Boltzmann machine, two hidden layers: PCD with a mean-field positive phase; "
                     "an estimate of the mean-field lower bound on log p(v) (log Z by AIS)",
              BINARY, dbm_likelihood(), reference="Salakhutdinov & Hinton 2009, Deep Boltzmann Machines",
              validation_nll=False,
              options=(Option("hidden1", int, None, "units of the first hidden layer; default by data size: 500 "
                                                    "for D > 256, 100 for D > 16, else 16", minimum=1),
                       Option("hidden2", int, None, "units of the second hidden layer; default by data size: 500 "
                                                    "for D > 256, 50 for D > 16, else 8", minimum=1),
                       *SAMPLED_OPTIONS,
                       Option("mf_steps", int, 10, "mean-field iterations (training and the bound)", minimum=1),
                       Option("gibbs_steps", int, 1, "Gibbs sweeps of the persistent chains per step", minimum=1))),
    ModelSpec("fvbm", f"fully visible Boltzmann machine, exact log Z by enumerating 2^D states (D <= {MAX_DIMS})",
              BINARY, Likelihood(), reference="Ackley, Hinton & Sejnowski 1985", max_dims=MAX_DIMS,
              options=(Option("lr", float, 0.05, "Adam's learning rate (on the exact likelihood)", minimum=0.0),)),
)


@hookimpl
def evalgen_family() -> FamilyInfo:
    return FamilyInfo(name="ebm", summary="energy-based models: RBM (CD, PCD), DBM and the fully visible "
                                          "Boltzmann machine; likelihoods by AIS or enumeration",
                      models=MODELS, version="0.1.0", default_dataset="binarized-digits")


@hookimpl
def evalgen_describe_likelihood(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> Likelihood | None:
    make = {"rbm": ais_likelihood, "rbm-pcd": ais_likelihood, "dbm": dbm_likelihood}.get(model_name)
    return None if make is None else make(config["ais_steps"])


@hookimpl
def evalgen_build_model(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
    if dataset.kind is not DataKind.BINARY:
        raise ValueError(f"ebm models are Bernoulli: binary data only, got {dataset.kind.value} data; "
                         "use a binarized dataset (binarized-digits, binarized-mnist)")
    return build(model_name, dataset.shape, config)


@hookimpl
def evalgen_configure_optimizers(model: EnergyModel, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    return {"model": model.optimizer()}


@hookimpl
def evalgen_train_step(model: EnergyModel, batch: Batch, state: TrainState) -> Mapping[str, Any]:
    return model.train_step(batch.x, state)


@hookimpl
def evalgen_sample(model: EnergyModel, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    return model.sample(num_samples, generator)


@hookimpl
def evalgen_log_prob(model: EnergyModel, x: torch.Tensor, num_importance_samples: int) -> torch.Tensor:
    return model.log_prob(x, num_importance_samples)


@hookimpl
def evalgen_likelihood_details(model: EnergyModel) -> Mapping[str, Any] | None:
    return model.likelihood_details()


@hookimpl
def evalgen_outlier_score(model: EnergyModel, x: torch.Tensor) -> torch.Tensor | None:
    return model.outlier_score(x)
