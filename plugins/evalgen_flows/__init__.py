"""evalgen's `flows` family: planar flows, RealNVP and MAF with exact likelihoods.

The hook implementations live in `evalgen_flows.hooks` and are re-exported here, the module the
``flows`` entry point names.
"""

from .coupling import RealNVP
from .hooks import (
    evalgen_build_model,
    evalgen_configure_optimizers,
    evalgen_family,
    evalgen_log_prob,
    evalgen_sample,
    evalgen_train_step,
)
from .layers import Flow
from .maf import MAF
from .planar import PlanarFlow

__all__ = [
    "MAF",
    "Flow",
    "PlanarFlow",
    "RealNVP",
    "evalgen_build_model",
    "evalgen_configure_optimizers",
    "evalgen_family",
    "evalgen_log_prob",
    "evalgen_sample",
    "evalgen_train_step",
]
