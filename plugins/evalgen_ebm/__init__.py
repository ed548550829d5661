"""evalgen's `ebm` family: energy-based models over binary data -- the restricted Boltzmann
machine trained with CD-k or persistent CD, the deep Boltzmann machine and the fully visible
Boltzmann machine. RBM likelihoods are estimates (-F(v) - log Z with log Z by annealed importance
sampling, Salakhutdinov & Murray 2008), the DBM's an estimate of the mean-field lower bound (its
log Z by AIS, which errs low), the fully visible machine's exact (2^D states enumerated).

The hook implementations live in `evalgen_ebm.hooks` and are re-exported here, the module the
``ebm`` entry point names.
"""

from .hooks import (
    evalgen_build_model,
    evalgen_configure_optimizers,
    evalgen_describe_likelihood,
    evalgen_family,
    evalgen_likelihood_details,
    evalgen_log_prob,
    evalgen_outlier_score,
    evalgen_sample,
    evalgen_train_step,
)

__all__ = [
    "evalgen_build_model",
    "evalgen_configure_optimizers",
    "evalgen_describe_likelihood",
    "evalgen_family",
    "evalgen_likelihood_details",
    "evalgen_log_prob",
    "evalgen_outlier_score",
    "evalgen_sample",
    "evalgen_train_step",
]
