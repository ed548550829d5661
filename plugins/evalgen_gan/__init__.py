"""evalgen's `gan` family: the GAN of Goodfellow et al. (2014) with the non-saturating generator
loss, the Wasserstein GAN with weight clipping (Arjovsky et al. 2017) and with a gradient
penalty (Gulrajani et al. 2017). Implicit models: no ``log_prob``; evaluated by sample quality,
mode coverage and, as outlier score, the negated discriminator/critic output.

The hook implementations live in `evalgen_gan.hooks` and are re-exported here, the module the
``gan`` entry point names.
"""

from .gan import GAN, Settings
from .hooks import (
    PAPER_DEFAULTS,
    evalgen_build_model,
    evalgen_configure_optimizers,
    evalgen_family,
    evalgen_outlier_score,
    evalgen_sample,
    evalgen_train_step,
)

__all__ = [
    "GAN",
    "PAPER_DEFAULTS",
    "Settings",
    "evalgen_build_model",
    "evalgen_configure_optimizers",
    "evalgen_family",
    "evalgen_outlier_score",
    "evalgen_sample",
    "evalgen_train_step",
]
