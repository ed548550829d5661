"""evalgen's `autoregressive` family: NADE (Larochelle & Murray 2011), MADE (Germain et al. 2015)
and the gated PixelCNN (van den Oord et al. 2016), all exact mass functions over the data's
levels, sampled one dimension at a time with as little recomputation as each architecture allows.

The hook implementations live in `evalgen_autoregressive.hooks` and are re-exported here, the
module the ``autoregressive`` entry point names.
"""

from .hooks import (
    evalgen_build_model,
    evalgen_configure_optimizers,
    evalgen_family,
    evalgen_log_prob,
    evalgen_sample,
    evalgen_train_step,
)

__all__ = [
    "evalgen_build_model",
    "evalgen_configure_optimizers",
    "evalgen_family",
    "evalgen_log_prob",
    "evalgen_sample",
    "evalgen_train_step",
]
