"""Mode coverage: a mode-collapse diagnostic that needs only samples (any model family).

Two settings, one result (`mode_coverage`):

* **2-D Gaussian mixtures** (``Dataset.modes``: centres, a common isotropic std sigma, weights),
  as in VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018): each sample is assigned to
  its nearest centre (Euclidean; ties go to the lower index) and is *high quality* when that
  distance is <= `HIGH_QUALITY_SIGMAS` sigma. ``counts[k]`` is the number of high-quality samples
  assigned to mode k. ``high_quality`` = (high-quality samples) / N; non-finite samples are never
  high quality. ``p`` = the mixture weights.
* **Labelled image datasets**: the samples are classified by the dataset's domain classifier
  (``Dataset.feature_extractor``, one of `extractors.DOMAIN_EXTRACTORS`; argmax of its logits,
  the same uint8 preprocessing as the sample-quality metrics). ``counts[k]`` is the number of
  samples predicted as class k; ``high_quality`` is None. ``p`` = the class frequencies of the
  labels of the `REFERENCE_SPLIT` split.

In both, a mode is *covered* when ``counts[k] >= MIN_COUNT`` (1: at least one sample, the
VEEGAN/PacGAN convention), and ``mode_kl`` = KL(q || p) in nats with q = counts / counts.sum()
(0 log 0 = 0): the "reverse" KL of Metz et al. (2017) and PacGAN, finite when modes are missing.
With no high-quality sample at all, ``mode_kl`` is None and no mode is covered. When p is zero
where q is not (a class absent from the reference split) the KL is infinite: ``mode_kl`` is then
None and ``note`` says why (records are strict JSON).

Layers, as in torch-fidelity: pure math (`assign_to_modes`, `coverage_from_counts`), the
classifier step (`classify`), one entry point (`mode_coverage`) and the registry's check
(`skip_reason`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from evalgen.datasets.base import Dataset, ModeSet
from evalgen.errors import DataUnavailableError, EvalgenError

if TYPE_CHECKING:  # extractors imports torch-fidelity: loaded only when a classifier is needed
    from evalgen.metrics.extractors import ExtractorWeights

#: A sample is high quality when its nearest centre is within this many stds (VEEGAN, PacGAN).
HIGH_QUALITY_SIGMAS = 3
#: A mode is covered when at least this many (high-quality) samples are assigned to it.
MIN_COUNT = 1
#: The split whose class frequencies are the reference distribution of image datasets.
REFERENCE_SPLIT = "test"
#: Samples per chunk of the distance computation (bounds memory at CHUNK x K x D float64).
CHUNK = 8192


def _float64(a: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A float64 CPU tensor of ``a`` (numpy arrays are copied: they may be read-only)."""
    if torch.is_tensor(a):
        return a.detach().to("cpu", torch.float64)
    return torch.from_numpy(np.array(a, dtype=np.float64))


def assign_to_modes(samples: torch.Tensor | np.ndarray, centers: torch.Tensor | np.ndarray, std: float,
                    sigmas: float = HIGH_QUALITY_SIGMAS) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of each sample and whether it is within ``sigmas * std`` of it.

    samples: (N, D) points; centers: (K, D). Computed in float64 on the CPU.
    Returns (index int64 (N,), high_quality bool (N,)); index is -1 for non-finite samples.
    """
    x, c = _float64(samples), _float64(centers)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1] or len(c) == 0:
        raise EvalgenError(f"samples (N, D) and centres (K, D) must agree, got {tuple(x.shape)} and {tuple(c.shape)}")
    index = torch.empty(len(x), dtype=torch.int64)
    distance = torch.empty(len(x), dtype=torch.float64)
    for start in range(0, len(x), CHUNK):
        part = x[start:start + CHUNK]
        d2 = ((part[:, None, :] - c[None]) ** 2).sum(-1)  # exact differences, no |a|^2 - 2ab + |b|^2
        best = d2.min(dim=1)  # first minimum: ties go to the lower index
        index[start:start + CHUNK], distance[start:start + CHUNK] = best.indices, best.values.sqrt()
    finite = torch.isfinite(x).all(dim=1)
    index[~finite] = -1
    return index, finite & (distance <= sigmas * std)


def kl_divergence(q: np.ndarray, p: np.ndarray) -> float:
    """KL(q || p) in nats of two distributions (K,), with 0 log 0 = 0 (inf where p = 0 < q)."""
    q, p = np.asarray(q, dtype=np.float64), np.asarray(p, dtype=np.float64)
    support = q > 0
    if np.any(p[support] <= 0):
        return math.inf
    return float(np.sum(q[support] * (np.log(q[support]) - np.log(p[support]))))


def coverage_from_counts(counts: np.ndarray | torch.Tensor, reference_probs: np.ndarray,
                         min_count: int = MIN_COUNT) -> dict[str, Any]:
    """Modes covered and KL(q || p) from per-mode counts (K,) and reference probabilities p (K,).

    Returns {"modes_covered", "num_modes", "mode_kl" (None if counts are all zero), "counts"}.
    """
    counts = np.asarray(counts, dtype=np.int64)
    p = np.asarray(reference_probs, dtype=np.float64)
    if counts.ndim != 1 or counts.shape != p.shape:
        raise EvalgenError(f"counts and reference probabilities must both be (K,), got {counts.shape} and {p.shape}")
    total = int(counts.sum())
    return {
        "modes_covered": int(np.sum(counts >= min_count)) if total else 0,
        "num_modes": len(counts),
        "mode_kl": kl_divergence(counts / total, p) if total else None,
        "counts": [int(c) for c in counts],
    }


def _mixture_coverage(samples: torch.Tensor, modes: ModeSet) -> dict[str, Any]:
    index, high_quality = assign_to_modes(samples, modes.centers, modes.std)
    counts = torch.bincount(index[high_quality], minlength=len(modes.centers))
    radius = HIGH_QUALITY_SIGMAS * modes.std
    return {**coverage_from_counts(counts, modes.weights), "high_quality": float(high_quality.double().mean()),
            "reference": "mixture weights",
            "assignment": f"nearest of {len(modes.centers)} mixture centres, high quality within "
                          f"{HIGH_QUALITY_SIGMAS} sigma = {radius:g}"}


def _labelled_images_reason(dataset: Dataset) -> str | None:
    from evalgen.metrics.extractors import DOMAIN_EXTRACTORS

    reference = getattr(dataset, REFERENCE_SPLIT)
    if not dataset.num_classes or reference.y is None:
        return f"dataset '{dataset.name}' has neither mixture modes nor class labels"
    if dataset.levels is None or len(dataset.shape) != 3:
        return f"dataset '{dataset.name}' is labelled but not images; classes need a domain classifier"
    if dataset.feature_extractor is None:
        return f"dataset '{dataset.name}' names no feature extractor to classify samples with"
    if dataset.feature_extractor not in DOMAIN_EXTRACTORS:
        return (f"the feature extractor of '{dataset.name}' ({dataset.feature_extractor}) is not a domain "
                f"classifier (known: {', '.join(sorted(DOMAIN_EXTRACTORS))})")
    return None


def classifier_classes(weights: ExtractorWeights) -> int:
    """The number of classes of a domain classifier, read from exactly the bytes whose SHA-256
    `ensure_extractor` checked (a file swapped since is refused, not loaded)."""
    from evalgen.metrics.cache import BadCacheEntry, read_checked_bytes
    from evalgen.metrics.extractors import MAX_WEIGHTS_BYTES, load_classifier_file

    try:
        payload = read_checked_bytes(weights.path, weights.sha256, MAX_WEIGHTS_BYTES)
    except BadCacheEntry as exc:
        raise EvalgenError(f"domain extractor {weights.path} changed after it was checked ({exc}); "
                           f"run again to rebuild it") from None
    return int(load_classifier_file(payload, weights.name)["config"]["num_classes"])


def skip_reason(dataset: Dataset, cache_dir: Path | None = None,
                load_dataset: Callable[[str], Dataset] | None = None) -> str | None:
    """None when `mode_coverage` applies to ``dataset``, else why not (trains the domain
    classifier if it is not cached, to read its number of classes)."""
    if dataset.modes is not None:
        return None
    reason = _labelled_images_reason(dataset)
    if reason is not None:
        return reason
    from evalgen.metrics.extractors import ensure_extractor

    try:
        weights = ensure_extractor(dataset.feature_extractor, dataset=dataset, cache_dir=cache_dir,
                                   load_dataset=load_dataset)
    except DataUnavailableError as exc:
        return f"domain classifier '{dataset.feature_extractor}' unavailable: {exc}"
    classes = classifier_classes(weights)
    if classes != dataset.num_classes:
        return (f"domain classifier '{weights.name}' has {classes} classes, dataset '{dataset.name}' "
                f"has {dataset.num_classes}")
    return None


@torch.no_grad()
def classify(samples: torch.Tensor, dataset: Dataset, *, cache_dir: Path | None = None,
             load_dataset: Callable[[str], Dataset] | None = None) -> tuple[torch.Tensor, str]:
    """Predicted classes (N,) int64 of image samples float (N, C, H, W) in stored values
    (0..levels-1; clipped) under the dataset's domain classifier, and a line naming the weights."""
    from evalgen.metrics.extractors import LOGITS, ensure_extractor, extract_features, to_uint8

    if not torch.is_tensor(samples) or tuple(samples.shape[1:]) != dataset.shape:
        got = tuple(samples.shape) if torch.is_tensor(samples) else type(samples).__name__
        raise EvalgenError(f"samples must be a tensor (N, {', '.join(map(str, dataset.shape))}), got {got}")
    if not bool(torch.isfinite(samples).all()):
        raise EvalgenError("samples contain NaN or infinite values")
    weights = ensure_extractor(dataset.feature_extractor, dataset=dataset, cache_dir=cache_dir,
                               load_dataset=load_dataset)
    images = to_uint8(samples.clamp(0, dataset.levels - 1), dataset.levels)
    logits = extract_features(images, weights)[LOGITS]
    return logits.argmax(dim=1), f"argmax of {weights.name} (weights sha256 {weights.sha256})"


def _image_coverage(samples: torch.Tensor, dataset: Dataset, cache_dir: Path | None,
                    load_dataset: Callable[[str], Dataset] | None) -> dict[str, Any]:
    reason = skip_reason(dataset, cache_dir, load_dataset)
    if reason is not None:
        raise EvalgenError(f"mode coverage does not apply: {reason}")
    predicted, assignment = classify(samples, dataset, cache_dir=cache_dir, load_dataset=load_dataset)
    reference = getattr(dataset, REFERENCE_SPLIT).y.long()
    p = torch.bincount(reference, minlength=dataset.num_classes).double() / len(reference)
    counts = torch.bincount(predicted, minlength=dataset.num_classes)
    return {**coverage_from_counts(counts, p.numpy()), "high_quality": None,
            "reference": f"class frequencies of the {REFERENCE_SPLIT} split", "assignment": assignment}


def mode_coverage(samples: torch.Tensor, dataset: Dataset, *, cache_dir: Path | None = None,
                  load_dataset: Callable[[str], Dataset] | None = None) -> dict[str, Any]:
    """Mode coverage of ``samples`` (N, *dataset.shape) in stored values (see the module doc).

    cache_dir: evalgen's cache root for the domain classifier (default `user_cache_dir()`).
    load_dataset: name -> Dataset, for a classifier that trains on another dataset (see
        `evalgen.metrics.extractors.ensure_extractor`).
    Returns a JSON-serializable dict: modes_covered, num_modes, high_quality, mode_kl, counts,
    reference, assignment, min_count, num_samples (and note, when mode_kl is infinite).
    """
    if len(samples) == 0:
        raise EvalgenError("mode coverage needs at least one sample")
    if dataset.modes is not None:
        result = _mixture_coverage(samples, dataset.modes)
    else:
        result = _image_coverage(samples, dataset, cache_dir, load_dataset)
    result.update(min_count=MIN_COUNT, num_samples=len(samples))
    if result["mode_kl"] is not None and not math.isfinite(result["mode_kl"]):
        result["mode_kl"] = None
        result["note"] = f"KL(q || p) is infinite: samples fall on modes that have zero {result['reference']}"
    return result
