"""Sample-quality metrics (IS, FID, KID, precision/recall) from torch-fidelity's building blocks.

`sample_quality` is the one place evalgen computes them. Samples stay in memory: stored values
become uint8 images (`to_uint8`, the same for the reference split), wrapped in a
``torch.utils.data.Dataset``; torch-fidelity's feature loop (``get_featuresdict_from_dataset``)
runs the extractor over each input once, and its metric functions (``isc_featuresdict_to_metric``,
``fid_featuresdict_to_statistics`` + ``fid_statistics_to_metric``) compute IS and FID with the
settings ``calculate_metrics`` would use (`torch_fidelity_settings`: shuffled IS splits), so the
numbers are the ones it gives. KID is torch-fidelity's estimator on the same subsets (drawn from
``rng_seed``) computed in float64 by `evalgen.metrics.kid`.

torch-fidelity's ``calculate_metrics`` is not used: with ``cache=True`` it unpickles its cache files
with ``weights_only=False``, so a planted file there would run code during an evaluation. No file
is handed to anything that unpickles it: the extractor is built by evalgen (`_feature_extractor`: Inception-v3
from a state_dict loaded with ``weights_only=True`` after its SHA-256 check, see
`evalgen.metrics.inception`; a domain classifier from its checked file), nothing per run is
written to disk, and `remove_legacy_sample_features` deletes what older versions left in
``<cache_dir>/fidelity``.

Precision/recall (Kynkäänniemi et al. 2019) compares k-NN balls of EQUAL numbers of real and
generated feature vectors: a larger reference set has smaller balls and biases precision against
recall. So it is computed by torch-fidelity's ``prc_features_to_metric`` on the features the pass
above already made: the generated ones against a fixed random subset (seed ``rng_seed``) of the
reference features of the same size (`prc_subsets`). No image is read twice.

Reference features are cached by evalgen under ``<cache_dir>/features`` as ``.npy`` arrays with a
SHA-256 sidecar (`evalgen.metrics.cache`), one per layer the reference needs, named after
`reference_key`, a hash of everything that determines them (dataset name, split, checksum,
extractor name and weights SHA-256, preprocessing, number of reference samples, feature layers,
`METRIC_VERSION`), so a stale entry is never found and a second evaluation against the same
reference extracts no reference features. An entry is checked (hash, then shape, dtype,
finiteness) before use; one that fails is rebuilt, and a one-line warning names it.

FID: torch-fidelity 0.4 does not use a matrix square root; it takes the real part of
``sum(sqrt(eigvals(sigma1 @ sigma2)))`` with the means in the features' dtype (float32 for
Inception). evalgen reports its own float64 value from the same features, via
``scipy.linalg.sqrtm`` with a symmetric eigendecomposition as fallback when sqrtm fails, goes
complex or is inaccurate, and from the singular values of the centred features' cross product when
a set has fewer samples than dimensions (`evalgen.metrics.frechet`); torch-fidelity's number is kept alongside
(``fid_torch_fidelity``) and a disagreement is a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.metric_fid import fid_featuresdict_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_featuresdict_to_metric
from torch_fidelity.utils import get_featuresdict_from_dataset

from evalgen.datasets.base import Dataset
from evalgen.datasets.files import user_cache_dir
from evalgen.errors import EvalgenError, unknown_name
from evalgen.metrics import draws, extractors, kid
from evalgen.metrics.cache import BadCacheEntry, cache_folder, read_array, remove_legacy_sample_features, write_array
from evalgen.metrics.extractors import DOMAIN_EXTRACTORS, PREPROCESSING, ensure_extractor, to_uint8
from evalgen.metrics.fidelity_math import (
    DEFAULT_BATCH_SIZE,
    DEFAULTS,
    MIN_SAMPLES,
    SPLITS,
    SPREADS,
    fid_notes,
    frechet_distance,
    prc_subsets,
    precision_and_recall,
    torch_fidelity_settings,
)
from evalgen.metrics.inception import INCEPTION_EXTRACTOR, INCEPTION_LAYERS, build_inception, resolve_inception_weights

__all__ = [
    "DEFAULTS",
    "DEFAULT_BATCH_SIZE",
    "MIN_SAMPLES",
    "FidelityResult",
    "ImageSet",
    "feature_dimension",
    "frechet_distance",
    "prc_subsets",
    "reference_key",
    "sample_quality",
    "torch_fidelity_settings",
]

#: Bump when anything about how reference features are made or stored changes: older entries go stale.
#: 2: evalgen's own .npy + SHA-256 sidecar under <cache>/features instead of torch-fidelity's .pt files.
METRIC_VERSION = 2
#: Folders under the cache root: evalgen's reference features; torch-fidelity's, only cleaned up.
FEATURES_DIR = "features"
LEGACY_FIDELITY_DIR = "fidelity"


@dataclass(frozen=True)
class FidelityResult:
    """Sample-quality metrics of one set of samples against one reference split."""

    inception_score_mean: float
    inception_score_std: float
    fid: float
    kid_mean: float
    kid_std: float
    precision: float | None  #: None when not asked for
    recall: float | None
    precision_recall_samples: int | None  #: generated = reference count in the k-NN comparison
    extractor: str
    extractor_weights_sha256: str
    extractor_test_accuracy: float | None  #: domain classifiers only
    num_generated: int
    num_reference: int
    reference_split: str
    feature_dim: int
    fid_torch_fidelity: float
    fid_sqrt_method: str  #: "sqrtm", "eigh" (its fallback) or "svd" (fewer samples than dimensions)
    reference_key: str
    reference_cached: bool  #: reference features came from the cache
    warnings: tuple[str, ...] = ()
    #: every metric over the R draws (`evalgen.metrics.draws.summarize_draws`)
    draws: dict[str, Any] | None = None
    #: FID∞ and IS∞ (`evalgen.metrics.draws.summarize_infinity`); None below three sample counts
    fid_infinity: dict[str, Any] | None = None
    inception_score_infinity: dict[str, Any] | None = None
    #: what the within-draw spreads are (they are not the evaluation noise: see ``draws``)
    spreads: dict[str, str] = field(default_factory=lambda: dict(SPREADS))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


class ImageSet(torch.utils.data.Dataset):
    """uint8 images (N, C, H, W) for torch-fidelity's feature loop; grey is repeated to ``channels``."""

    def __init__(self, images: torch.Tensor, channels: int):
        self.images, self.channels = images, channels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.images[i]
        return x.expand(self.channels, *x.shape[1:]) if x.shape[0] != self.channels else x


@dataclass(frozen=True)
class _Extractor:
    name: str
    path: Path
    sha256: str
    channels: int
    layers: dict[str, str]
    test_accuracy: float | None


def _resolve_extractor(name: str, dataset: Dataset, cache_dir: Path, inception_weights: Path | None,
                       notes: list[str], load_dataset: Callable[[str], Dataset] | None = None) -> _Extractor:
    """The checked weights file of extractor ``name``; cache repairs on the way go to ``notes``."""
    if name == INCEPTION_EXTRACTOR:
        path, sha = resolve_inception_weights(inception_weights)
        return _Extractor(name, path, sha, 3, dict(INCEPTION_LAYERS), None)
    if name in DOMAIN_EXTRACTORS:
        w = ensure_extractor(name, dataset=dataset, cache_dir=cache_dir, warn=False, load_dataset=load_dataset)
        notes.extend(w.notes)
        cls = extractors.DomainFeatureExtractor
        layers = {m: cls.get_default_feature_layer_for_metric(m) for m in ("isc", "fid", "kid", "prc")}
        return _Extractor(name, w.path, w.sha256, 1, layers, w.test_accuracy)
    raise unknown_name("feature extractor", name, [INCEPTION_EXTRACTOR, *DOMAIN_EXTRACTORS])


def _feature_extractor(ext: _Extractor, features: list[str], device: torch.device) -> FeatureExtractorBase:
    """The extractor module, built by evalgen from the checked file (never unpickled unsafely),
    set up as torch-fidelity's ``create_feature_extractor`` does (no grad, eval, on ``device``)."""
    if ext.name == INCEPTION_EXTRACTOR:
        module = build_inception(features, ext.path, ext.sha256)
    else:
        module = extractors.DomainFeatureExtractor(ext.name, features, feature_extractor_weights_path=ext.path,
                                                   expected_sha256=ext.sha256)
    return module.requires_grad_(False).eval().to(device)


def feature_dimension(dataset: Dataset, *, extractor: str | None = None, cache_dir: Path | None = None,
                      inception_weights: Path | None = None,
                      load_dataset: Callable[[str], Dataset] | None = None) -> tuple[str, int]:
    """The extractor's name (``extractor``, default the dataset's) and the dimension D of its FID
    features: a full-rank covariance, and so a meaningful FID, needs at least D + 1 samples. An
    unknown or unavailable extractor is one EvalgenError."""
    name = extractor or dataset.feature_extractor
    if name is None:
        raise EvalgenError(f"dataset '{dataset.name}' has no default feature extractor; choose one with --extractor")
    root = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    ext = _resolve_extractor(name, dataset, root, inception_weights, [], load_dataset)
    cpu = torch.device("cpu")
    module = _feature_extractor(ext, [ext.layers["fid"]], cpu)
    blank = ImageSet(torch.zeros(1, *dataset.shape, dtype=torch.uint8), ext.channels)
    return ext.name, int(_extract(module, blank, 1, cpu)[ext.layers["fid"]].shape[1])


def reference_key(dataset: Dataset, split: str, num_reference: int, extractor_name: str, weights_sha256: str,
                  channels: int, layers: dict[str, str]) -> str:
    """The cache name of a reference split's features: readable prefix + SHA-256 of every ingredient."""
    text = json.dumps({"metric_version": METRIC_VERSION, "dataset": dataset.name, "split": split,
                       "checksum": dataset.checksum, "levels": dataset.levels, "extractor": extractor_name,
                       "weights_sha256": weights_sha256, "preprocessing": f"{PREPROCESSING}; channels={channels}",
                       "num_reference": num_reference, "layers": layers}, sort_keys=True)
    return f"evalgen-ref-{dataset.name}-{split}-{num_reference}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _check_samples(samples: torch.Tensor, dataset: Dataset) -> list[str]:
    if dataset.levels is None or len(dataset.shape) != 3:
        raise EvalgenError(f"sample-quality metrics need image data with levels; '{dataset.name}' is not")
    if not torch.is_tensor(samples) or tuple(samples.shape[1:]) != dataset.shape:
        got = tuple(samples.shape) if torch.is_tensor(samples) else type(samples).__name__
        raise EvalgenError(f"samples must be a tensor (N, {', '.join(map(str, dataset.shape))}) for "
                           f"'{dataset.name}', got {got}")
    if len(samples) < MIN_SAMPLES:
        raise EvalgenError(f"sample-quality metrics need at least {MIN_SAMPLES} samples, got {len(samples)}")
    if not bool(torch.isfinite(samples).all()):
        raise EvalgenError("samples contain NaN or infinite values")
    low, high = float(samples.min()), float(samples.max())
    if low < 0 or high > dataset.levels - 1:
        return [f"samples range over [{low:g}, {high:g}], outside 0..{dataset.levels - 1}: clipped"]
    return []


def _extract(extractor: FeatureExtractorBase, images: ImageSet, batch_size: int,
             device: torch.device) -> dict[str, torch.Tensor]:
    """Features per layer the extractor provides, (N, D_layer) on the CPU, by torch-fidelity's loop."""
    cuda = device.type == "cuda"
    with torch.cuda.device(device) if cuda else contextlib.nullcontext():  # its loop moves batches by .cuda()
        return get_featuresdict_from_dataset(images, extractor, int(batch_size), cuda, save_cpu_ram=True,
                                             verbose=False)


def _reference_paths(folder: Path, ref_name: str, ext: _Extractor) -> dict[str, Path]:
    """The cache file of each layer the reference set is needed for (FID and KID; PRC uses FID's)."""
    return {layer: folder / f"{ref_name}-{ext.name}-{layer}.npy"
            for layer in sorted({ext.layers["fid"], ext.layers["kid"]})}


def _cached_reference(paths: dict[str, Path], like: dict[str, torch.Tensor], num_reference: int,
                      notes: list[str]) -> dict[str, torch.Tensor] | None:
    """Every layer's cached reference features (num_reference, D) with the generated ones' D and
    dtype, or None when one is missing or fails its checks (each failure is a line in ``notes``)."""
    found: dict[str, torch.Tensor] = {}
    for layer, path in paths.items():
        try:
            array = read_array(path, (num_reference, like[layer].shape[1]), like[layer].numpy().dtype)
        except BadCacheEntry as exc:
            notes.append(f"cache entry {path} failed its check ({exc}): rebuilt it")
            continue
        if array is not None:
            found[layer] = torch.from_numpy(array)
    return found if len(found) == len(paths) else None


def _reference_features(extractor: FeatureExtractorBase, images: ImageSet, paths: dict[str, Path],
                        like: dict[str, torch.Tensor], batch_size: int, device: torch.device,
                        notes: list[str]) -> tuple[dict[str, torch.Tensor], bool]:
    """Reference features per layer of ``paths`` (N_ref, D), and whether they came from the cache."""
    cached = _cached_reference(paths, like, len(images), notes)
    if cached is not None:
        return cached, True
    fresh = _extract(extractor, images, batch_size, device)
    for layer, path in paths.items():
        write_array(path, fresh[layer].numpy())
    return {layer: fresh[layer] for layer in paths}, False


def _torch_fidelity_metrics(generated: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
                            layers: dict[str, str], settings: dict) -> dict[str, float]:
    """IS of the generated features and FID against the reference ones as torch-fidelity computes
    them, KID by its estimator in float64 (`evalgen.metrics.kid`)."""
    metrics = dict(isc_featuresdict_to_metric(generated, layers["isc"], **settings))
    stats = [fid_featuresdict_to_statistics(f, layers["fid"]) for f in (generated, reference)]
    metrics.update(fid_statistics_to_metric(*stats, verbose=False))
    mean, std = kid.kernel_inception_distance(
        generated[layers["kid"]].numpy(), reference[layers["kid"]].numpy(), subsets=settings["kid_subsets"],
        subset_size=settings["kid_subset_size"], seed=settings["rng_seed"],
        degree=settings["kid_kernel_poly_degree"], coef0=settings["kid_kernel_poly_coef0"])
    metrics.update(kernel_inception_distance_mean=mean, kernel_inception_distance_std=std)
    return metrics


def _clean_cache(root: Path) -> Path:
    """The reference-features folder, ready; what older versions and killed processes left is removed."""
    remove_legacy_sample_features(root / LEGACY_FIDELITY_DIR)
    return cache_folder(root, FEATURES_DIR)


def _reference_split(dataset: Dataset, split: str, num_reference: int | None) -> tuple[Any, int]:
    """The reference split and how many of its first examples are compared with."""
    if split not in SPLITS:
        raise EvalgenError(f"unknown reference split '{split}' (known: {', '.join(SPLITS)})")
    reference = getattr(dataset, split)
    n_ref = len(reference) if num_reference is None else int(num_reference)
    if not MIN_SAMPLES <= n_ref <= len(reference):
        raise EvalgenError(f"num_reference must be between {MIN_SAMPLES} and {len(reference)} "
                           f"(the size of the {split} split), got {n_ref}")
    return reference, n_ref


def _generated_features(module: FeatureExtractorBase, samples: torch.Tensor, dataset: Dataset, ext: _Extractor,
                        batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    images = ImageSet(to_uint8(samples.clamp(0, dataset.levels - 1), dataset.levels), ext.channels)
    return _extract(module, images, batch_size, device)


def _one_draw(generated: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], ext: _Extractor,
              settings: dict, precision_recall: bool) -> dict[str, Any]:
    """Every metric of one draw's features: IS, FID (float64 and torch-fidelity's), KID, precision
    and recall, and the FID∞/IS∞ fits on its first n samples (`evalgen.metrics.draws`)."""
    layers = {m: ext.layers[m] for m in ("isc", "fid", "kid")}
    metrics = _torch_fidelity_metrics(generated, ref, layers, settings)
    f1, f2 = generated[ext.layers["fid"]], ref[ext.layers["fid"]]
    fid, method = frechet_distance(f1.numpy(), f2.numpy())
    precision, recall, prc_count = precision_and_recall(f1, f2) if precision_recall else (None, None, None)
    counts = draws.sample_counts(len(f1))
    logits = generated[ext.layers["isc"]].numpy()
    enough = len(counts) >= 3
    return {"inception_score_mean": float(metrics["inception_score_mean"]),
            "inception_score_std": float(metrics["inception_score_std"]), "fid": fid, "fid_sqrt_method": method,
            "fid_torch_fidelity": float(metrics["frechet_inception_distance"]),
            "kid_mean": float(metrics["kernel_inception_distance_mean"]),
            "kid_std": float(metrics["kernel_inception_distance_std"]),
            "precision": precision, "recall": recall, "precision_recall_samples": prc_count, "counts": counts,
            "fid_fit": draws.at_infinity(lambda n: frechet_distance(f1[:n].numpy(), f2.numpy())[0], counts)
            if enough else None,
            "is_fit": draws.at_infinity(lambda n: draws.inception_score(logits[:n]), counts) if enough else None}


#: The metrics whose spread over the draws is reported (`FidelityResult.draws`).
DRAWN_METRICS = ("inception_score_mean", "fid", "kid_mean", "precision", "recall")


def _over_draws(results: list[dict[str, Any]], num_samples: int, seeds: Sequence[int]) -> dict[str, Any]:
    """The ``draws``, ``fid_infinity`` and ``inception_score_infinity`` parts of a result."""
    per_draw = [{name: r[name] for name in DRAWN_METRICS} for r in results]
    out: dict[str, Any] = {"draws": draws.summarize_draws(per_draw, num_samples, seeds)}
    if results[0]["fid_fit"] is not None:
        counts = results[0]["counts"]
        out["fid_infinity"] = draws.summarize_infinity([r["fid_fit"] for r in results], counts)
        out["inception_score_infinity"] = draws.summarize_infinity([r["is_fit"] for r in results], counts)
    return out


def sample_quality(samples: torch.Tensor, dataset: Dataset, *, extractor: str | None = None,
                   reference_split: str = DEFAULTS["reference_split"], num_reference: int | None = None,
                   cache_dir: Path | None = None, device: torch.device | str = "cpu",
                   batch_size: int = DEFAULT_BATCH_SIZE, inception_weights: Path | None = None,
                   precision_recall: bool = True, load_dataset: Callable[[str], Dataset] | None = None,
                   more_draws: Sequence[torch.Tensor] = (), draw_seeds: Sequence[int] = ()) -> FidelityResult:
    """IS, FID, KID and precision/recall of ``samples`` against a split of ``dataset``.

    samples: float (N, *dataset.shape) in the dataset's stored values (integers 0..levels-1).
    extractor: feature extractor name; default ``dataset.feature_extractor``.
    num_reference: the first that many examples of the split (default: all of it).
    cache_dir: evalgen's cache root (default `user_cache_dir()`): extractors and reference features.
    inception_weights: local Inception-v3 weights (see `evalgen.metrics.inception`).
    precision_recall: also compute precision/recall (Kynkäänniemi et al. 2019) on equal numbers of
        generated and reference features (`prc_subsets`).
    load_dataset: name -> Dataset, for a domain extractor that trains on another dataset
        (binarized-mnist's on mnist); default: the built-in dataset from the environment.
    more_draws: further independent draws (each (N, *dataset.shape), the same N) of the same
        model: with them the result's ``draws`` carries every metric's spread over all draws
        (``samples`` is the first); FID∞ and IS∞ are fitted on each draw.
    draw_seeds: the sample seed of each draw (``samples`` first), for the record.

    The top-level numbers (``fid``, ``inception_score_mean``, ...) are those of ``samples``.
    """
    notes = _check_samples(samples, dataset)
    for extra in more_draws:
        if tuple(extra.shape) != tuple(samples.shape):
            raise EvalgenError(f"every draw must have the first's shape {tuple(samples.shape)}, "
                               f"got {tuple(extra.shape)}")
        notes += [n for n in _check_samples(extra, dataset) if n not in notes]
    name = extractor or dataset.feature_extractor
    if name is None:
        raise EvalgenError(f"dataset '{dataset.name}' has no default feature extractor; pass extractor=")
    reference, n_ref = _reference_split(dataset, reference_split, num_reference)
    root = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    features_dir = _clean_cache(root)
    ext = _resolve_extractor(name, dataset, root, inception_weights, notes, load_dataset)
    ref_name = reference_key(dataset, reference_split, n_ref, ext.name, ext.sha256, ext.channels, ext.layers)
    layers = {m: ext.layers[m] for m in ("isc", "fid", "kid")}

    n = len(samples)
    device = torch.device(device)
    try:
        module = _feature_extractor(ext, sorted(set(layers.values())), device)
        generated = [_generated_features(module, s, dataset, ext, batch_size, device) for s in (samples, *more_draws)]
        real = ImageSet(to_uint8(reference.x[:n_ref], dataset.levels), ext.channels)
        ref, reference_cached = _reference_features(module, real, _reference_paths(features_dir, ref_name, ext),
                                                    generated[0], batch_size, device, notes)
        settings = torch_fidelity_settings(n, n_ref)
        results = [_one_draw(g, ref, ext, settings, precision_recall) for g in generated]
    except ValueError as exc:  # torch-fidelity reports bad arguments and inputs as ValueError
        raise EvalgenError(f"torch-fidelity: {exc}") from None
    first = results[0]
    f1, f2 = generated[0][ext.layers["fid"]].numpy(), ref[ext.layers["fid"]].numpy()
    notes += fid_notes(f1, f2, first["fid"], first["fid_torch_fidelity"], first["fid_sqrt_method"], ext.name)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    seeds = list(draw_seeds) if len(draw_seeds) == len(results) else list(range(len(results)))
    return FidelityResult(
        inception_score_mean=first["inception_score_mean"], inception_score_std=first["inception_score_std"],
        fid=first["fid"], kid_mean=first["kid_mean"], kid_std=first["kid_std"],
        precision=first["precision"], recall=first["recall"],
        precision_recall_samples=first["precision_recall_samples"],
        extractor=ext.name, extractor_weights_sha256=ext.sha256, extractor_test_accuracy=ext.test_accuracy,
        num_generated=n, num_reference=n_ref, reference_split=reference_split, feature_dim=int(f1.shape[1]),
        fid_torch_fidelity=first["fid_torch_fidelity"], fid_sqrt_method=first["fid_sqrt_method"],
        reference_key=ref_name, reference_cached=reference_cached, warnings=tuple(notes),
        **_over_draws(results, n, seeds))
