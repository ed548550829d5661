"""evalgen's `vae` family: VAE (MLP and convolutional), IWAE and a conditional VAE, whose
likelihoods are IWAE lower bounds computed with `evalgen.importance_weighted_bound`.

The hook implementations live in `evalgen_vae.hooks` and are re-exported here, the module the
``vae`` entry point names.
"""

from .hooks import (
    evalgen_build_model,
    evalgen_configure_optimizers,
    evalgen_family,
    evalgen_log_prob,
    evalgen_sample,
    evalgen_train_step,
)
from .likelihoods import Bernoulli, Categorical, DiscretizedLogistic
from .vae import VAE

__all__ = [
    "VAE",
    "Bernoulli",
    "Categorical",
    "DiscretizedLogistic",
    "evalgen_build_model",
    "evalgen_configure_optimizers",
    "evalgen_family",
    "evalgen_log_prob",
    "evalgen_sample",
    "evalgen_train_step",
]
