"""Outlier scores: what a likelihood model's outlier detection ranks examples by.

The raw score, ``-log p(x) / D``, fails in a known way: a model trained on Fashion-MNIST gives
MNIST *higher* likelihood than its own test data (Nalisnick et al., ICLR 2019). The built-in
scores are the raw one and three published fixes, each a function of what the harness already
has (higher = more outlying; every one is registered like a plugin's, `evalgen_register_outlier_scores`):

* ``likelihood``: ``-log p(x) / D`` in nats per dimension.
* ``typicality`` (Nalisnick, Matsukawa, Teh & Lakshminarayanan 2019, "Detecting
  out-of-distribution inputs to deep generative models using typicality", the test at batch
  size M = 1): ``|-log p(x) - Ĥ| / D``, Ĥ the mean NLL of held-out training data (the first
  ``budget.outlier_examples`` of the validation split) under the same model. It assumes the
  in-distribution NLL concentrates around its mean (the typical set); an outlier *too likely*
  is flagged as well as one too unlikely. It fails when outliers' NLL falls inside the spread
  of the data's own.
* ``complexity`` (Serrà et al., ICLR 2020, "Input complexity and out-of-distribution detection
  with likelihood-based generative models"): ``S(x) = (-log2 p(x) - L(x)) / D`` in bits per
  dimension, L(x) the length in bits of x as a PNG (`png_bits`: Pillow, compression level 9, the
  dataset's stored levels) and -log2 p(x) the *discrete* NLL in bits (for densities on
  dequantized values, ``-log p(y) + D log L``). It assumes a generic compressor's length
  measures the part of the likelihood that any model of images would give; it fails when the
  compressor is poor for the data (or the outliers differ in content the compressor also sees).
* ``likelihood_ratio`` (Ren et al., NeurIPS 2019, "Likelihood ratios for out-of-distribution
  detection"): ``(log p_bg(x) - log p(x)) / D``, i.e. minus the log-likelihood ratio, p_bg a
  *background* model of the same family and budget trained on training data whose values are
  each replaced, with probability `BACKGROUND_MUTATION_RATE`, by one uniform over the levels. It
  assumes the background model learns only population statistics (smoothness, the number of
  dark pixels) that the perturbation destroys less than the semantics; it fails when the
  background model learns as much as the model does (too weak a perturbation) or too little.

Models whose log_prob is a bound or an estimate use it in place of log p; the labels say so.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from evalgen.errors import EvalgenError

__all__ = ["BACKGROUND_MUTATION_RATE", "BUILTIN_SCORES", "COMPRESSOR", "SCORE_NEEDS", "OutlierScore",
           "ScoreContext", "ScoredSet", "complexity_score", "likelihood_ratio_score", "likelihood_score",
           "perturb", "png_bits", "typicality_score"]

#: The probability with which each value of the background model's training (and validation)
#: data is replaced by a uniform one (Ren et al. 2019 tuned it in [0.1, 0.3] on images).
BACKGROUND_MUTATION_RATE = 0.2
#: The lossless compressor of the complexity score, as its label names it.
COMPRESSOR = "PNG (Pillow, compress_level=9)"
PNG_COMPRESS_LEVEL = 9

#: What a score can ask for in ``OutlierScore.needs``:
#:
#: * ``log_prob``: the model's log p(x) of every example (a likelihood model);
#: * ``background``: a background model's log p_bg(x) (trained by the harness, `perturb`);
#: * ``images``: examples are images of 1 or 3 channels with integer levels (for a compressor).
SCORE_NEEDS = frozenset({"log_prob", "background", "images"})


@dataclass(frozen=True)
class ScoredSet:
    """What a score may use about one set of examples (in- or out-of-distribution).

    Attributes:
        x: (N, *shape) the examples in the dataset's stored values, on the CPU.
        log_prob: (N,) float64 the model's log p(x) in nats (its bound or estimate, in the
            model's representation: a density of dequantized values for dequantizing models), or None.
        background_log_prob: (N,) float64 the background model's, the same way, or None.
    """

    x: torch.Tensor
    log_prob: torch.Tensor | None = None
    background_log_prob: torch.Tensor | None = None


@dataclass(frozen=True)
class ScoreContext:
    """What a score may use about the model and the data.

    Attributes:
        num_dims: D, dimensions of one example.
        levels: the number of stored levels (256 for MNIST, 2 for binary data), or None.
        offset_nats: what turns -log p(x) into the discrete NLL: D log L for a density of
            dequantized values, else 0.
        typical_nll: Ĥ, the mean -log p of held-out training data (nats, as ``log_prob``), or None.
    """

    num_dims: int
    levels: int | None
    offset_nats: float = 0.0
    typical_nll: float | None = None


@dataclass(frozen=True)
class OutlierScore:
    """A registered outlier score.

    Attributes:
        name: key of its results in the record (``outliers.scores.<name>``) and of its column
            (``auroc_<name>``; the built-in ``likelihood`` is the headline ``auroc``).
        title: the column's title.
        label: the formula, as tables name it ("|-log p(x) - Ĥ| / D").
        summary: one line: the paper and what it assumes.
        needs: subset of `SCORE_NEEDS`; a score whose needs the model or data lacks is recorded
            as skipped, with the reason.
        compute: (`ScoredSet`, `ScoreContext`) -> (N,) float64 scores, higher = more outlying.
    """

    name: str
    title: str
    label: str
    summary: str
    needs: frozenset[str]
    compute: Callable[[ScoredSet, ScoreContext], torch.Tensor]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.needs) - SCORE_NEEDS)
        if unknown:
            raise EvalgenError(f"outlier score '{self.name}' needs {', '.join(unknown)}, which evalgen does not "
                               f"provide (it provides {', '.join(sorted(SCORE_NEEDS))})")


def _log_prob(examples: ScoredSet) -> torch.Tensor:
    if examples.log_prob is None:
        raise EvalgenError("this outlier score needs the model's log p(x)")
    return examples.log_prob.double()


def likelihood_score(examples: ScoredSet, context: ScoreContext) -> torch.Tensor:
    """-log p(x) / D, (N,) nats per dimension."""
    return -_log_prob(examples) / context.num_dims


def typicality_score(examples: ScoredSet, context: ScoreContext) -> torch.Tensor:
    """|-log p(x) - Ĥ| / D, (N,) nats per dimension (Nalisnick et al. 2019 at M = 1)."""
    if context.typical_nll is None:
        raise EvalgenError("the typicality score needs Ĥ, the held-out data's mean NLL")
    return (-_log_prob(examples) - context.typical_nll).abs() / context.num_dims


def likelihood_ratio_score(examples: ScoredSet, context: ScoreContext) -> torch.Tensor:
    """(log p_bg(x) - log p(x)) / D, (N,): minus Ren et al.'s log-likelihood ratio, per dimension.
    The representation's offset is the same for both models and cancels."""
    if examples.background_log_prob is None:
        raise EvalgenError("the likelihood-ratio score needs a background model's log p(x)")
    return (examples.background_log_prob.double() - _log_prob(examples)) / context.num_dims


def png_bits(x: torch.Tensor, levels: int) -> torch.Tensor:
    """L(x): (N, C, H, W) stored values -> (N,) float64, 8 x the bytes of each image as a PNG.

    Pillow writes each image at the dataset's levels: 1 bit per value for binary data (mode
    "1"), else 8 bits (mode "L" for one channel, "RGB" for three; levels <= 256), with
    ``compress_level=9``. The file's fixed overhead (signature, header, end: the same for every
    image of one shape) is included, as Serrà et al. count whole compressed files.
    """
    from PIL import Image

    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise EvalgenError(f"the compressor takes images of 1 or 3 channels, got shape {tuple(x.shape[1:])}")
    if not 2 <= levels <= 256:
        raise EvalgenError(f"the compressor takes 2 to 256 levels, got {levels}")
    values = x.detach().cpu().numpy()
    if not np.array_equal(values, np.round(values)) or values.min(initial=0) < 0 or values.max(initial=0) >= levels:
        raise EvalgenError(f"the compressor takes integer stored values in [0, {levels - 1}]")
    values = values.astype(np.uint8)
    lengths = np.empty(len(values), dtype=np.float64)
    for i, image in enumerate(values):
        if levels == 2:
            picture = Image.fromarray(image[0].astype(bool))
        elif image.shape[0] == 1:
            picture = Image.fromarray(image[0])  # uint8 (H, W): mode "L"
        else:
            picture = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))  # (H, W, 3): "RGB"
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        lengths[i] = 8 * buffer.tell()
    return torch.from_numpy(lengths)


def complexity_score(examples: ScoredSet, context: ScoreContext) -> torch.Tensor:
    """S(x) = (-log2 p(x) - L(x)) / D, (N,) bits per dimension (Serrà et al. 2020), with the
    discrete NLL (``offset_nats`` added) and L the PNG length (`png_bits`)."""
    if context.levels is None:
        raise EvalgenError("the complexity score needs data with integer levels")
    nll_bits = (-_log_prob(examples) + context.offset_nats) / math.log(2)
    return (nll_bits - png_bits(examples.x, context.levels)) / context.num_dims


def perturb(x: torch.Tensor, levels: int, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Ren et al.'s perturbation: each value of ``x`` (stored values) replaced, independently with
    probability ``rate``, by one drawn uniformly from {0, ..., levels - 1} (it may draw the same
    value). (N, *shape) -> (N, *shape), the same dtype; ``generator`` on the CPU."""
    if not 0.0 <= rate <= 1.0:
        raise EvalgenError(f"the mutation rate must be in [0, 1], got {rate}")
    replace = torch.rand(x.shape, generator=generator) < rate
    uniform = torch.randint(0, levels, x.shape, generator=generator).to(x.dtype)
    return torch.where(replace, uniform, x)


BUILTIN_SCORES: tuple[OutlierScore, ...] = (
    OutlierScore("likelihood", "AUROC", "-log p(x) / D",
                 "raw likelihood: fails when outliers are simpler than the data (Nalisnick et al. 2019)",
                 frozenset({"log_prob"}), likelihood_score),
    OutlierScore("typicality", "AUROC typicality", "|-log p(x) - Ĥ| / D",
                 "typicality (Nalisnick, Matsukawa, Teh & Lakshminarayanan 2019): distance of the NLL from the "
                 "held-out data's mean", frozenset({"log_prob"}), typicality_score),
    OutlierScore("complexity", "AUROC complexity", f"(-log2 p(x) - L(x)) / D, L = {COMPRESSOR} bits",
                 "input complexity (Serrà et al. 2020): the NLL less a lossless compressor's length",
                 frozenset({"log_prob", "images"}), complexity_score),
    OutlierScore("likelihood_ratio", "AUROC likelihood ratio", "(log p_bg(x) - log p(x)) / D",
                 f"likelihood ratio (Ren et al. 2019) to a background model trained on data with "
                 f"{BACKGROUND_MUTATION_RATE:.0%} of values replaced by uniform ones",
                 frozenset({"log_prob", "background"}), likelihood_ratio_score),
)
