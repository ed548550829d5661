"""Outlier (out-of-distribution) detection with a generative model's likelihood.

A model trained on an in-distribution dataset scores every test example; a higher score means
"more likely an outlier". The default score is the negative log-likelihood per dimension,
``-log p(x) / D`` (`outlier_score_default`). `detection_metrics` then treats detection as binary
classification with the **outliers as the positive class** (label 1) and the in-distribution
test examples as the negative class (label 0):

* ``auroc`` — area under the ROC curve: the probability that a random outlier scores higher than
  a random in-distribution example (ties count one half). 1.0 = perfect separation, 0.5 =
  chance, and values **below 0.5 mean the model ranks the outliers as more likely than its own
  data** — not a small success but the failure mode this metric exists to expose.
* ``aupr`` — average precision (area under the precision-recall curve) with outliers positive.
  Its chance level is the fraction of outliers, ``num_out / (num_in + num_out)``, not 0.5.
* ``fpr_at_95_tpr`` — the fraction of in-distribution examples flagged as outliers at the
  threshold that flags 95 % of the outliers (the smallest such fraction over all thresholds).
  0.0 = perfect, 0.95 = chance, 1.0 = worst.

The failure mode to watch: Nalisnick, Matsukawa, Teh, Gorur & Lakshminarayanan (2019), "Do deep
generative models know what they don't know?", ICLR 2019, showed that flows, VAEs and
autoregressive models trained on Fashion-MNIST (or CIFAR-10) assign *higher* likelihood to MNIST
(or SVHN) than to their own test data, i.e. AUROC well below 0.5. Simple, smooth or constant
images are the classic culprits, which is why `synthetic_outliers` includes constant and smooth
images alongside noise. A likelihood that separates noise from data says little; the
dataset-pairs in `OOD_PAIRS` are the harder test.

`detection_intervals` gives each of the three a seeded percentile-bootstrap interval (the two
score sets resampled independently; the statistics vectorized over the resamples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.stats
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from evalgen.errors import EvalgenError
from evalgen.metrics.uncertainty import CONFIDENCE, RunInterval, _auroc

__all__ = ["INTERVAL_METRICS", "OOD_PAIRS", "SYNTHETIC_OUTLIER_KINDS", "TPR_LEVEL", "auroc_standard_error_bound",
           "detection_intervals", "detection_metrics", "outlier_score_default", "synthetic_outliers"]

#: In-distribution dataset name -> out-of-distribution dataset names to score against it.
#: Names are those of evalgen's dataset registry (``evalgen datasets``). Pairs share the image
#: shape and number of grey levels, so the same model can score both.
OOD_PAIRS: dict[str, list[str]] = {
    "fashion-mnist": ["mnist"],  # the pair of Nalisnick et al. (2019): the known failure case
    "mnist": ["fashion-mnist"],
    # The same pair, binarized: Fashion-MNIST binarized once with a fixed seed.
    "binarized-mnist": ["binarized-fashion-mnist"],
    "binarized-fashion-mnist": ["binarized-mnist"],
}

#: The kinds `synthetic_outliers` produces, in the order their seeds are drawn.
SYNTHETIC_OUTLIER_KINDS: tuple[str, ...] = ("uniform-noise", "constant", "salt-and-pepper", "smooth-noise")

#: Target fraction of outliers detected for ``fpr_at_95_tpr``.
TPR_LEVEL = 0.95


def _as_scores(values, what: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise EvalgenError(f"{what} must be a 1-D tensor or array of numbers") from None
    if array.ndim != 1:
        raise EvalgenError(f"{what} must be 1-D (one score per example), got shape {tuple(array.shape)}")
    if array.size == 0:
        raise EvalgenError(f"{what} is empty; outlier detection needs at least one example of each")
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise EvalgenError(
            f"{what} has {bad} non-finite (NaN or inf) score(s) of {array.size}; "
            "check the model's log_prob on those examples"
        )
    return array


def detection_metrics(in_scores, out_scores) -> dict:
    """AUROC, AUPR and FPR@95%TPR of telling outliers from in-distribution examples.

    Args:
        in_scores: (N_in,) scores of in-distribution (test) examples; tensor or array.
        out_scores: (N_out,) scores of outliers. Higher score = more likely an outlier.

    Returns:
        ``{"auroc", "aupr", "fpr_at_95_tpr"}`` as floats (outliers are the positive class; see
        the module docstring) and ``{"num_in", "num_out"}`` as ints.

    Raises:
        EvalgenError: if either input is not 1-D, is empty, or holds NaN or inf.
    """
    s_in = _as_scores(in_scores, "in-distribution scores")
    s_out = _as_scores(out_scores, "outlier scores")
    labels = np.concatenate([np.zeros(s_in.size, dtype=np.int64), np.ones(s_out.size, dtype=np.int64)])
    scores = np.concatenate([s_in, s_out])
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    # tpr is non-decreasing along the curve and so is fpr: the first point that detects 95 % of
    # the outliers has the smallest false-positive rate among all such thresholds.
    index = int(np.searchsorted(tpr, TPR_LEVEL, side="left"))
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "aupr": float(average_precision_score(labels, scores)),
        "fpr_at_95_tpr": float(fpr[index]),
        "num_in": int(s_in.size),
        "num_out": int(s_out.size),
    }


#: The metrics `detection_intervals` bootstraps, in the order `_detection_statistics` stacks them.
INTERVAL_METRICS: tuple[str, ...] = ("auroc", "aupr", "fpr_at_95_tpr")

#: Scores per bootstrap batch (resamples x scores): bounds the statistics' arrays to ~32 MiB each
#: (10,000 + 10,000 scores take 209 resamples a batch; 2,000 + 2,000 take all 1,000 in one).
_BATCH_SCORES = 2**22


def _last_axis(in_scores: np.ndarray, out_scores: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Both score arrays with ``axis`` moved last and their leading (resample) axes broadcast."""
    x, y = np.moveaxis(in_scores, axis, -1), np.moveaxis(out_scores, axis, -1)
    lead = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    return np.broadcast_to(x, lead + x.shape[-1:]), np.broadcast_to(y, lead + y.shape[-1:])


def _average_precision(in_scores: np.ndarray, out_scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Average precision with outliers positive, as sklearn's ``average_precision_score``.

    (..., N_in) and (..., N_out) -> (...). AP = sum over distinct thresholds t of
    (R(t) - R(t_next higher)) P(t), flagging ``score >= t``. Each outlier raises the recall by
    1 / N_out at its own score, so AP = mean over outliers j of P(y_j) = #out >= y_j / #all >= y_j;
    tied scores are one threshold, so both counts run from the start of y_j's tie group.
    """
    x, y = _last_axis(in_scores, out_scores, axis)
    n_in, n_out = x.shape[-1], y.shape[-1]
    n = n_in + n_out
    scores = np.concatenate([x, y], axis=-1)
    order = np.argsort(scores, axis=-1)  # ascending; the order within a tie group does not matter
    ranked = np.take_along_axis(scores, order, axis=-1)
    is_out = order >= n_in
    starts = np.empty(ranked.shape, dtype=bool)
    starts[..., 0] = True
    np.not_equal(ranked[..., 1:], ranked[..., :-1], out=starts[..., 1:])
    # Each position's group start, the last start at or before it (a running max); #all >= y_j is n - it.
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0), axis=-1)
    outliers_below = np.cumsum(is_out, axis=-1) - is_out  # outliers at earlier positions
    hits = n_out - np.take_along_axis(outliers_below, first, axis=-1)
    return np.where(is_out, hits / (n - first), 0.0).sum(axis=-1) / n_out


def _fpr_at_tpr(in_scores: np.ndarray, out_scores: np.ndarray, axis: int = -1,
                level: float = TPR_LEVEL) -> np.ndarray:
    """FPR at the highest threshold whose TPR >= ``level``, as `detection_metrics` reads roc_curve.

    (..., N_in) and (..., N_out) -> (...). Flagging ``score >= t``, the TPR reaches ``level`` first
    at t = the k-th largest outlier score, k the fewest outliers with k / N_out >= level (computed
    in floats as roc_curve's tps / tps[-1], so the comparison at exactly 95 % agrees); the FPR only
    falls as t rises, so that threshold gives the smallest FPR. Ties: every score equal to t is flagged.
    """
    x, y = _last_axis(in_scores, out_scores, axis)
    n_out = y.shape[-1]
    need = int(np.searchsorted(np.arange(n_out + 1) / n_out, level, side="left"))
    threshold = np.partition(y, n_out - need, axis=-1)[..., n_out - need]
    return (x >= threshold[..., None]).sum(axis=-1) / x.shape[-1]


def _detection_statistics(in_scores: np.ndarray, out_scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """(..., N_in), (..., N_out) -> (3, ...): AUROC, AUPR, FPR@95%TPR (`INTERVAL_METRICS`' order)."""
    return np.stack([_auroc(in_scores, out_scores, axis=axis), _average_precision(in_scores, out_scores, axis),
                     _fpr_at_tpr(in_scores, out_scores, axis)])


def detection_intervals(in_scores, out_scores, *, seed: int, confidence: float = CONFIDENCE,
                        resamples: int = 1000) -> dict[str, RunInterval]:
    """Percentile-bootstrap intervals of AUROC, AUPR and FPR@95%TPR, seeded.

    Args:
        in_scores: (N_in,) in-distribution scores; out_scores: (N_out,) outlier scores (as
            `detection_metrics`). The two are independent samples, so each is resampled with
            replacement on its own (``paired=False``); all three metrics share the resamples.
        seed: the bootstrap's seed; the same seed and scores give the same intervals.

    Returns:
        `INTERVAL_METRICS` name -> `RunInterval`: ``value`` from `detection_metrics`,
        ``standard_error`` the bootstrap distribution's std, ``dof`` None. Empty when either set
        has fewer than two scores (a bootstrap needs two). With one batch (N_in + N_out <= 4,194
        at 1,000 resamples) the AUROC interval is `auroc_interval`'s with the same seed.
    """
    s_in = _as_scores(in_scores, "in-distribution scores")
    s_out = _as_scores(out_scores, "outlier scores")
    if min(s_in.size, s_out.size) < 2:
        return {}
    point = detection_metrics(s_in, s_out)
    result = scipy.stats.bootstrap((s_in, s_out), _detection_statistics, vectorized=True, paired=False,
                                   n_resamples=resamples, batch=max(1, _BATCH_SCORES // (s_in.size + s_out.size)),
                                   confidence_level=confidence, method="percentile",
                                   random_state=np.random.default_rng(seed))
    method = f"percentile bootstrap of in- and out-of-distribution scores, {resamples} resamples, seed {seed}"
    low, high = result.confidence_interval
    return {name: RunInterval(float(point[name]), float(result.standard_error[i]), None, float(low[i]),
                              float(high[i]), method, confidence)
            for i, name in enumerate(INTERVAL_METRICS)}


def auroc_standard_error_bound(num_in: int, num_out: int) -> float:
    """The largest standard error any AUROC can have from ``num_in`` inliers and ``num_out``
    outliers: 1 / (2 sqrt(min(m, n))), from Var(AUROC) <= A (1 - A) / min(m, n) (Birnbaum & Klose
    1957; the bound is reached at A = 1/2). 2,000 examples a side bound it by 0.0112."""
    return 0.5 / math.sqrt(min(num_in, num_out))


def outlier_score_default(log_prob: torch.Tensor, num_dims: int) -> torch.Tensor:
    """The default outlier score: ``-log p(x) / D`` in nats per dimension, (N,) float64.

    Args:
        log_prob: (N,) what the model's ``log_prob`` returned, in nats per example.
        num_dims: D, the number of dimensions of one example.

    For a model on dequantized values the discrete NLL is ``-log p(y) + D log L``; the offset
    adds the same constant ``log L`` to every score, so it cancels in AUROC, AUPR and
    FPR@95%TPR (they depend only on how the scores are ordered) and need not be added here —
    as long as in-distribution and outlier scores come from the same model and representation.
    """
    if num_dims < 1:
        raise EvalgenError(f"num_dims must be a positive integer, got {num_dims}")
    return -log_prob.detach().double() / num_dims


def _child_generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def _smooth_noise(shape: tuple[int, ...], levels: int, num: int, gen: torch.Generator,
                  device: torch.device) -> torch.Tensor:
    """Low-frequency noise: N(0,1) on a grid 4x coarser than the image, bilinearly upsampled,
    standardized per image and mapped through the normal CDF to levels."""
    *channels, height, width = shape
    c = math.prod(channels)
    coarse = torch.randn((num, c, max(1, math.ceil(height / 4)), max(1, math.ceil(width / 4))),
                         generator=gen, device=device)
    fine = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    flat = fine.reshape(num, -1)
    if flat.shape[1] > 1:
        std = flat.std(dim=1, keepdim=True)
        flat = (flat - flat.mean(dim=1, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))
    uniform = 0.5 * (1 + torch.erf(flat / math.sqrt(2)))
    values = torch.clamp(torch.floor(uniform * levels), 0, levels - 1)
    return values.reshape((num, *shape))


def _outlier_arguments(shape: Sequence[int], levels: int, num: int,
                       kinds: Sequence[str] | None) -> tuple[tuple[int, ...], int, int, tuple[str, ...]]:
    """`synthetic_outliers`' arguments checked (one-line errors) and normalized."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise EvalgenError(f"synthetic outliers are images: shape must be (C, H, W) or (H, W), got {shape}")
    if int(levels) != levels or levels < 2:
        raise EvalgenError(f"levels must be an integer >= 2, got {levels}")
    if int(num) != num or num < 0:
        raise EvalgenError(f"num must be a non-negative integer, got {num}")
    wanted = tuple(SYNTHETIC_OUTLIER_KINDS if kinds is None else kinds)
    unknown = [k for k in wanted if k not in SYNTHETIC_OUTLIER_KINDS]
    if unknown:
        raise EvalgenError(
            f"unknown synthetic outlier kind '{unknown[0]}' (known: {', '.join(SYNTHETIC_OUTLIER_KINDS)})")
    return shape, int(levels), int(num), wanted


def synthetic_outliers(shape: Sequence[int], levels: int, num: int, generator: torch.Generator,
                       kinds: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Synthetic outlier images in STORED values: float32 integers in {0, ..., levels-1}.

    Args:
        shape: shape of one image, ``(C, H, W)`` or ``(H, W)`` (the last two are spatial).
        levels: number of grey levels (2 for binary data, 256 for MNIST).
        num: number of images per kind.
        generator: the source of randomness; the same seeded generator gives the same images.
            Tensors are created on its device.
        kinds: which kinds to return (default all, `SYNTHETIC_OUTLIER_KINDS`). Each kind gets its
            own seed drawn from ``generator`` in a fixed order, so a kind's images do not depend
            on which other kinds were asked for.

    Returns:
        kind -> (num, *shape) float32 tensor. The kinds:

        * ``uniform-noise``: every pixel independently uniform over the levels.
        * ``constant``: every image a single level, drawn uniformly per image (all-black,
          all-white and everything between) — the smoothest possible images, which likelihood
          models often rate as highly likely.
        * ``salt-and-pepper``: every pixel independently the lowest or the highest level with
          probability 1/2 each (maximal-contrast noise; for binary data it is the same
          distribution as ``uniform-noise``).
        * ``smooth-noise``: low-frequency noise — independent N(0, 1) values on a grid four times
          coarser than the image, bilinearly upsampled, standardized per image and mapped through
          the normal CDF onto the levels (blobs spanning the full range; locally smooth, so it
          probes whether a model rewards smoothness rather than content).
    """
    shape, levels, num, wanted = _outlier_arguments(shape, levels, num, kinds)
    device = generator.device
    seeds = torch.randint(0, 2**62, (len(SYNTHETIC_OUTLIER_KINDS),), generator=generator, device=device).tolist()
    seed_of = dict(zip(SYNTHETIC_OUTLIER_KINDS, seeds))
    size = (num, *shape)
    out: dict[str, torch.Tensor] = {}
    for kind in wanted:
        gen = _child_generator(seed_of[kind], device)
        if kind == "uniform-noise":
            values = torch.randint(0, levels, size, generator=gen, device=device)
        elif kind == "constant":
            per_image = torch.randint(0, levels, (num,), generator=gen, device=device)
            values = per_image.reshape((num,) + (1,) * len(shape)).expand(size)
        elif kind == "salt-and-pepper":
            values = torch.randint(0, 2, size, generator=gen, device=device) * (levels - 1)
        else:  # smooth-noise
            values = _smooth_noise(shape, levels, num, gen, device)
        out[kind] = values.to(torch.float32).contiguous()
    return out
