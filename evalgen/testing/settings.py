"""Every size and tolerance of the conformance checks, in one place.

`DEFAULTS` is what `check_plugin`, `plugin_checks` and ``evalgen check`` use; pass
``settings=dataclasses.replace(DEFAULTS, ...)`` to change one. The sizes keep a whole family's
checks to seconds on two CPU cores; the tolerances are chosen so that a correct model passes
with a wide margin while the usual bugs (a flipped log-determinant, an unnormalized conditional,
a sampler that reads the global RNG) fail by orders of magnitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckSettings:
    """Sizes and tolerances of the conformance checks.

    Check data (synthetic, fixed seed; see `evalgen.testing.data`):
        seed: seeds the data, the model builds (``torch.manual_seed``) and the generators.
        device: where the models run ("cpu", "cuda").
        num_train: training examples of every check dataset.
        num_classes: class labels of the image-like check data (continuous data has none unless
            a model needs labels).
        binary_shape, discrete_shape, continuous_shape: per-example shapes of the main check data.
        discrete_levels: levels of the discrete check data.
        batch_size: training batch size.
        eval_examples: fixed (dequantized once) training examples on which log_prob is compared.

    Sampling and likelihoods:
        num_samples: samples drawn per call by the shape and determinism checks.
        importance_samples: ``num_importance_samples`` passed to log_prob (IWAE's K, AIS chains).
        batch_rtol, batch_atol: an exact log_prob of an example may differ by this much between
            a batch of 64 and a batch of 5 (float32 reductions differ with the batch size).

    Training:
        train_steps: steps of the training checks (on the main check data).
        step_time_fraction: one step (median) may take at most this fraction of the smallest
            registered budget's ``clock_cap_seconds``.

    Checkpoints:
        checkpoint_rtol, checkpoint_atol: log_prob and samples of a model rebuilt from a saved
            state_dict must match the original within these (bitwise in practice).

    Normalization and agreement (low-dimensional data; see `evalgen.testing.density`):
        enumeration_shapes_binary, enumeration_shapes_discrete: shapes tried, in order, for
            summing a mass function over every possible vector; the first the model can be built
            for is used.
        enumeration_levels: levels of the discrete enumeration data (4^4 = 256 vectors).
        max_enumeration_states: the largest number of vectors enumerated.
        quadrature_shape_dequantized: shape of binary/discrete data for dequantized models, whose
            density on [0, 1)^D is integrated on a grid (D must be 1 or 2).
        quadrature_points: grid points per axis (midpoint rule).
        quadrature_margin: the box of a continuous density extends the range of the data and of
            the model's central samples by this fraction of its width on each side.
        quadrature_sample_quantile: samples below this quantile or above 1 minus it do not widen
            the box.
        lowdim_train_steps: training steps before normalization is checked (a log-determinant
            with the wrong sign can be 0 at initialization).
        stochastic_repeats: for likelihoods with a ``sample_count`` (importance-sampled), log_prob
            at each point is the mean of this many evaluations before it is exponentiated.
        enumeration_tolerance: |sum - 1| allowed for an exact mass function.
        quadrature_tolerance: |integral - 1| allowed for an exact density on the grid (mass
            outside the box, grid error); bounds may exceed 1 by the same amounts.
        estimate_log_tolerance: |log(sum)| in nats allowed for an estimate (loose).
        agreement_samples: samples compared with exp(log_prob).
        max_boundary_fraction: the largest fraction of dequantized samples allowed to have a
            coordinate exactly 0 or 1 (a density puts no mass there; clamped samples do).
        agreement_bins: bins per axis for a density (the grid is pooled into these).
        null_draws: multinomial draws from exp(log_prob) giving the sampling-noise threshold.
        agreement_slack: added to the largest of those draws' statistics, for exact likelihoods.
        agreement_slack_approximate: the same for bounds and estimates, whose normalized
            exp(log_prob) only approximates the model's distribution (loose).
    """

    seed: int = 0
    device: str = "cpu"
    num_train: int = 512
    num_classes: int = 4
    binary_shape: tuple[int, ...] = (1, 4, 4)
    discrete_shape: tuple[int, ...] = (1, 4, 4)
    discrete_levels: int = 8
    continuous_shape: tuple[int, ...] = (2,)
    batch_size: int = 64
    eval_examples: int = 256

    num_samples: int = 64
    importance_samples: int = 10
    batch_rtol: float = 1e-4
    batch_atol: float = 1e-3

    train_steps: int = 40
    #: of the smallest budget's clock cap (3 s at smoke's 600 s): a step that loops over the data
    #: takes far longer, while a conv step on a loaded 2-core machine can take most of a second.
    step_time_fraction: float = 0.005

    checkpoint_rtol: float = 1e-5
    checkpoint_atol: float = 1e-5

    enumeration_shapes_binary: tuple[tuple[int, ...], ...] = ((1, 3, 3), (1, 4, 4))
    enumeration_shapes_discrete: tuple[tuple[int, ...], ...] = ((1, 2, 2),)
    enumeration_levels: int = 4
    max_enumeration_states: int = 4_096
    quadrature_shape_dequantized: tuple[int, ...] = (1, 1, 2)
    quadrature_points: int = 128
    quadrature_margin: float = 0.25
    quadrature_sample_quantile: float = 0.001
    lowdim_train_steps: int = 20
    stochastic_repeats: int = 8
    enumeration_tolerance: float = 1e-3
    quadrature_tolerance: float = 0.05
    estimate_log_tolerance: float = math.log(2.0)
    agreement_samples: int = 4_000
    max_boundary_fraction: float = 0.01
    agreement_bins: int = 16
    null_draws: int = 200
    agreement_slack: float = 0.02
    agreement_slack_approximate: float = 0.15


DEFAULTS = CheckSettings()
