"""Domain feature extractors: small CNN classifiers evalgen trains itself, deterministically.

Digit-like data is scored with a classifier trained on its own labels, not Inception-v3. An
extractor is fixed by a `Recipe` and a seed: training runs on the CPU from that seed (own
generators; the caller's RNG is untouched), so the same inputs give the same weights file byte for
byte on the same machine and thread count (CPU kernels and thread count can change the last bits;
the file's SHA-256, reported with every result, says which weights were used). Files are cached in
``user_cache_dir()/extractors/`` under a key of all that determines them: extractor, training
dataset name and checksum, recipe, `RECIPE_VERSION`, seed, preprocessing. Beside each file, a
JSON holds its SHA-256; a cached file is hashed and loaded (``weights_only=True``) from the same
bytes, and one that fails a check (hash, format, architecture) is trained again, with a one-line
note (`ExtractorWeights.notes`).

Preprocessing (`to_uint8`) is the metrics' own: stored values 0..levels-1 -> uint8
round(x*255/(levels-1)); the classifier sees uint8/255 in training and when extracting features.
`DomainFeatureExtractor` is the torch-fidelity side: it gets uint8 (B, C, H, W) batches and the
cached file as ``feature_extractor_weights_path``, runs in float64 (features independent of the
batch size) and provides ``logits`` (IS) and ``embedding`` (FID/KID/PRC): the penultimate layer
before its ReLU (no dead units: full-rank covariance), standardized with the training set's mean
and std per unit (O(1) features, the scale KID's polynomial kernel expects, as Inception's pool3).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from evalgen.datasets.base import Dataset
from evalgen.datasets.files import load_context_from_env, user_cache_dir
from evalgen.errors import EvalgenError
from evalgen.metrics.cache import BadCacheEntry, cache_folder, read_checked_bytes, read_sidecar_json
from evalgen.metrics.classifier_net import DomainClassifier
from evalgen.storage import atomic_write_bytes

#: Bump when the architecture or the training loop changes: every cached extractor becomes stale.
RECIPE_VERSION = 1
DEFAULT_SEED = 0
PREPROCESSING = "uint8=round_half_even(x*255/(levels-1)); classifier input=uint8/255"
LOGITS, EMBEDDING = "logits", "embedding"
FILE_FORMAT = "evalgen-domain-classifier"
EXTRACTORS_DIR = "extractors"
#: Largest classifier file evalgen reads (the MNIST one is about 2 MB), and most classes it accepts.
MAX_WEIGHTS_BYTES = 64 * 2**20
MAX_CLASSES = 10_000
_META_FIELDS = ("extractor", "dataset_checksum", "recipe_version", "seed", "sha256", "test_accuracy",
                "train_seconds")


@dataclass(frozen=True)
class Recipe:
    """Architecture and training of one classifier: conv 5x5/2 (c1) - BN - ReLU - conv 3x3/2 (c2)
    - BN - ReLU - linear (hidden; the embedding) - ReLU - linear (classes); Adam with a one-cycle
    learning rate, cross-entropy, no augmentation."""

    epochs: int
    batch_size: int = 128
    lr: float = 3e-3
    c1: int = 32
    c2: int = 64
    hidden: int = 128


@dataclass(frozen=True)
class ExtractorSpec:
    name: str
    train_dataset: str  #: whose training labels it learns (binarized-mnist uses the MNIST one)
    recipe: Recipe


DOMAIN_EXTRACTORS: dict[str, ExtractorSpec] = {
    s.name: s for s in (
        ExtractorSpec("digits-classifier", "digits", Recipe(epochs=20)),
        ExtractorSpec("mnist-classifier", "mnist", Recipe(epochs=3)),
        ExtractorSpec("fashion-mnist-classifier", "fashion-mnist", Recipe(epochs=5)),
    )
}


def to_uint8(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Stored values 0..levels-1 -> uint8 0..255: round(x*255/(levels-1)), half to even, clamped."""
    if levels < 2:
        raise EvalgenError(f"cannot map {levels} level(s) to 8-bit images; need at least 2")
    scaled = torch.round(x.detach().to("cpu", torch.float64) * (255.0 / (levels - 1)))
    return scaled.clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class ExtractorWeights:
    """A trained extractor on disk: what to pass to torch-fidelity and what to report."""

    name: str
    path: Path
    sha256: str
    test_accuracy: float
    train_seconds: float
    dataset: str
    dataset_checksum: str
    seed: int
    key: str
    trained_now: bool
    notes: tuple[str, ...] = ()  #: one line per cache problem found (and repaired) on the way

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def extractor_key(spec: ExtractorSpec, dataset_checksum: str, seed: int) -> str:
    """SHA-256 (first 20 hex digits) over everything that determines the trained weights."""
    text = json.dumps({"extractor": spec.name, "dataset": spec.train_dataset, "checksum": dataset_checksum,
                       "recipe": asdict(spec.recipe), "recipe_version": RECIPE_VERSION, "seed": seed,
                       "preprocessing": PREPROCESSING}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def classifier_config(spec: ExtractorSpec, dataset: Dataset) -> dict[str, int]:
    """The `DomainClassifier` arguments of ``spec`` trained on ``dataset``."""
    r = spec.recipe
    return {"size": dataset.shape[-1], "channels": dataset.shape[0], "num_classes": dataset.num_classes,
            "c1": r.c1, "c2": r.c2, "hidden": r.hidden}


def train_classifier(spec: ExtractorSpec, dataset: Dataset, seed: int = DEFAULT_SEED) -> tuple[dict, float]:
    """Train on ``dataset.train`` on the CPU; returns (the file's content, test accuracy)."""
    if dataset.train.y is None or dataset.num_classes is None or dataset.levels is None:
        raise EvalgenError(f"extractor '{spec.name}' needs a labelled image dataset; '{dataset.name}' is not")
    r = spec.recipe
    config = classifier_config(spec, dataset)
    x = to_uint8(dataset.train.x, dataset.levels).float().div_(255)
    y = dataset.train.y
    n = len(y)
    steps_per_epoch = (n + r.batch_size - 1) // r.batch_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainClassifier(**config)
        shuffle = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=r.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.lr, total_steps=r.epochs * steps_per_epoch)
        model.train()
        for _ in range(r.epochs):
            perm = torch.randperm(n, generator=shuffle)
            for start in range(0, n, r.batch_size):
                idx = perm[start:start + r.batch_size]
                loss = F.cross_entropy(model(x[idx])[0], y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    model.standardize(x)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    blob = {"format": FILE_FORMAT, "extractor": spec.name, "recipe_version": RECIPE_VERSION,
            "config": config, "state_dict": state}
    return blob, classifier_accuracy(blob, dataset)


def load_classifier_file(payload: bytes, name: str) -> dict:
    """The dict a classifier file (``torch.save`` bytes) holds, loaded with ``weights_only=True``.

    Raises ValueError when it is not the file of extractor ``name``.
    """
    blob = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FILE_FORMAT or blob.get("extractor") != name:
        raise ValueError(f"does not hold the weights of '{name}'")
    return blob


def build_classifier(blob: dict, dtype: torch.dtype = torch.float64) -> DomainClassifier:
    with torch.random.fork_rng(devices=[]):  # the throw-away init must not consume the caller's RNG
        model = DomainClassifier(**blob["config"])
    model.load_state_dict(blob["state_dict"])
    return model.to(dtype).eval().requires_grad_(False)


@torch.no_grad()
def classifier_accuracy(blob: dict, dataset: Dataset, split: str = "test") -> float:
    """Accuracy on a split, through the same uint8 preprocessing and float64 forward as features."""
    data = getattr(dataset, split)
    model = build_classifier(blob)
    correct = 0
    for start in range(0, len(data), 1000):
        xb = to_uint8(data.x[start:start + 1000], dataset.levels).double().div_(255)
        correct += int((model(xb)[0].argmax(1) == data.y[start:start + 1000]).sum())
    return correct / len(data)


def _load_training_dataset(spec: ExtractorSpec, load_dataset: Callable[[str], Dataset] | None) -> Dataset:
    """The extractor's training data: from the run's loader (so ``--data-dir`` reaches it), else
    the built-in dataset of that name from the environment's data folder. (Metrics never load
    the plugins: every extractor trains on a built-in dataset.)"""
    if load_dataset is not None:
        return load_dataset(spec.train_dataset)
    from evalgen.datasets.builtin import builtin_specs

    (found,) = [s for s in builtin_specs() if s.name == spec.train_dataset]
    return found.load(load_context_from_env())


def _check_architecture(config: object, spec: ExtractorSpec, dataset: Dataset) -> None:
    """ValueError unless ``config`` is the recipe's architecture for ``dataset``'s images. The number of
    classes is the file's own (the key does not fix it), within bounds."""
    expected = classifier_config(spec, dataset)
    if not isinstance(config, dict) or set(config) != set(expected):
        raise ValueError("not a classifier configuration")
    if any(config[k] != expected[k] for k in expected if k != "num_classes"):
        raise ValueError("another architecture")
    if type(config["num_classes"]) is not int or not 1 <= config["num_classes"] <= MAX_CLASSES:
        raise ValueError("an impossible number of classes")


def _check_cached(spec: ExtractorSpec, dataset: Dataset, seed: int, path: Path, meta_path: Path) -> dict:
    """The metadata of a cached extractor whose file passes every check, else `BadCacheEntry`.

    The file is hashed and loaded (``weights_only=True``) from the same bytes; its architecture
    must be the one ``spec`` gives on ``dataset`` (`_check_architecture`), so a planted file
    cannot make evalgen allocate anything else.
    """
    meta = read_sidecar_json(meta_path)
    if not isinstance(meta, dict) or any(field not in meta for field in _META_FIELDS):
        raise BadCacheEntry(f"its metadata {meta_path.name} is not in evalgen's format")
    described = (meta["extractor"], meta["dataset_checksum"], meta["recipe_version"], meta["seed"])
    if described != (spec.name, dataset.checksum, RECIPE_VERSION, seed):
        raise BadCacheEntry(f"its metadata {meta_path.name} describes another extractor")
    if not isinstance(meta["sha256"], str) or not all(
            type(meta[f]) in (int, float) and math.isfinite(meta[f]) for f in ("test_accuracy", "train_seconds")):
        raise BadCacheEntry(f"its metadata {meta_path.name} is not in evalgen's format")
    payload = read_checked_bytes(path, meta["sha256"], MAX_WEIGHTS_BYTES)
    try:
        blob = load_classifier_file(payload, spec.name)
        _check_architecture(blob.get("config"), spec, dataset)
        build_classifier(blob)
    except Exception as exc:  # noqa: BLE001 - an untrusted file fails to load in many ways; each means: retrain
        raise BadCacheEntry(f"it does not load as '{spec.name}' ({type(exc).__name__})") from None
    return meta


def _train_and_cache(spec: ExtractorSpec, dataset: Dataset, seed: int, path: Path,
                     meta_path: Path) -> tuple[str, float, float]:
    """Train, then write the file and its metadata (in that order, each atomically); returns
    (SHA-256, test accuracy, seconds)."""
    start = time.perf_counter()
    blob, accuracy = train_classifier(spec, dataset, seed)
    seconds = time.perf_counter() - start
    buffer = io.BytesIO()  # in memory: the bytes do not depend on the file name
    torch.save(blob, buffer)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(path, data)
    meta = {"extractor": spec.name, "dataset": spec.train_dataset, "dataset_checksum": dataset.checksum,
            "recipe": asdict(spec.recipe), "recipe_version": RECIPE_VERSION, "seed": seed, "sha256": sha,
            "test_accuracy": accuracy, "train_seconds": seconds, "torch": torch.__version__}
    atomic_write_bytes(meta_path, json.dumps(meta, indent=2).encode())
    return sha, accuracy, seconds


def ensure_extractor(name: str, *, dataset: Dataset | None = None, cache_dir: Path | None = None,
                     seed: int = DEFAULT_SEED, load_dataset: Callable[[str], Dataset] | None = None,
                     warn: bool = True) -> ExtractorWeights:
    """The trained weights of domain extractor ``name``: from the cache, else trained and cached.

    dataset: the extractor's training dataset if already loaded (used only when its name is the
        extractor's training dataset); otherwise it is loaded by ``load_dataset`` (name ->
        Dataset: the run's loader, so that ``--data-dir`` reaches it), or else, as the built-in
        dataset of that name, from the environment's data folder (`load_context_from_env`).
    cache_dir: evalgen's cache root (default `user_cache_dir()`); files go to ``<it>/extractors``.
    warn: also `warnings.warn` the result's ``notes`` (a cached entry that failed its checks and
        was trained again); callers that report the notes themselves pass False.
    """
    spec = DOMAIN_EXTRACTORS.get(name)
    if spec is None:
        known = ", ".join(sorted(DOMAIN_EXTRACTORS))
        raise EvalgenError(f"unknown domain feature extractor '{name}' (known: {known})")
    if dataset is None or dataset.name != spec.train_dataset:
        dataset = _load_training_dataset(spec, load_dataset)
    key = extractor_key(spec, dataset.checksum, seed)
    folder = cache_folder(Path(cache_dir) if cache_dir is not None else user_cache_dir(), EXTRACTORS_DIR)
    path, meta_path = folder / f"{name}-{key}.pt", folder / f"{name}-{key}.json"
    notes: tuple[str, ...] = ()
    if os.path.lexists(path) or os.path.lexists(meta_path):
        try:
            meta = _check_cached(spec, dataset, seed, path, meta_path)
            return ExtractorWeights(name, path, meta["sha256"], float(meta["test_accuracy"]),
                                    float(meta["train_seconds"]), spec.train_dataset, dataset.checksum, seed, key,
                                    trained_now=False)
        except BadCacheEntry as exc:
            notes = (f"domain extractor {path} failed its check ({exc}): trained it again",)
    sha, accuracy, seconds = _train_and_cache(spec, dataset, seed, path, meta_path)
    for note in notes if warn else ():
        warnings.warn(note, stacklevel=2)
    return ExtractorWeights(name, path, sha, accuracy, seconds, spec.train_dataset, dataset.checksum, seed, key,
                            trained_now=True, notes=notes)


class DomainFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor for evalgen's domain classifiers (see the module doc)."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, expected_sha256=None, **kwargs):
        """expected_sha256: when given (evalgen always gives it), the file's bytes are read once,
        checked against it and loaded from memory, so what is loaded is what was checked."""
        super().__init__(name, features_list)
        path = feature_extractor_weights_path
        if path is None:
            raise ValueError(f"feature extractor '{name}' needs feature_extractor_weights_path "
                             f"(see evalgen.metrics.extractors.ensure_extractor)")
        if expected_sha256 is None:
            payload = Path(path).read_bytes()
        else:
            try:
                payload = read_checked_bytes(Path(path), expected_sha256, MAX_WEIGHTS_BYTES)
            except BadCacheEntry as exc:
                raise EvalgenError(f"domain extractor {path} changed after it was checked ({exc}); "
                                   f"run again to rebuild it") from None
        try:
            blob = load_classifier_file(payload, name)
        except ValueError as exc:
            raise ValueError(f"{path} {exc}") from None
        self.size = int(blob["config"]["size"])
        self.model = build_classifier(blob)

    @staticmethod
    def get_provided_features_list():
        return LOGITS, EMBEDDING

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": LOGITS, "fid": EMBEDDING, "kid": EMBEDDING, "prc": EMBEDDING}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 28, 28, dtype=torch.uint8)

    def forward(self, x):
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4 and x.shape[2:] == (self.size,) * 2):
            raise ValueError(f"'{self.name}' takes uint8 images (B, C, {self.size}, {self.size}), "
                             f"got {getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
        x = x.to(torch.float64).mean(dim=1, keepdim=True)  # grey (repeated to any channels) back to one
        logits, embedding = self.model(x / 255)
        out = {LOGITS: logits, EMBEDDING: embedding}
        return tuple(out[f] for f in self.features_list)


@torch.no_grad()
def extract_features(images: torch.Tensor, weights: ExtractorWeights, batch_size: int = 500) -> dict[str, torch.Tensor]:
    """Features of uint8 images (N, C, H, W) straight from the extractor (no torch-fidelity loop)."""
    extractor = DomainFeatureExtractor(weights.name, [LOGITS, EMBEDDING], feature_extractor_weights_path=weights.path,
                                       expected_sha256=weights.sha256)
    parts = [extractor(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return {LOGITS: torch.cat([p[0] for p in parts]), EMBEDDING: torch.cat([p[1] for p in parts])}


def register_with_torch_fidelity() -> None:
    """Register every domain extractor with torch-fidelity; safe to call again (and on reload)."""
    for name in DOMAIN_EXTRACTORS:
        existing = FEATURE_EXTRACTORS_REGISTRY.get(name)
        if existing is None:
            register_feature_extractor(name, DomainFeatureExtractor)
        elif (existing.__module__, existing.__qualname__) == (__name__, DomainFeatureExtractor.__qualname__):
            FEATURE_EXTRACTORS_REGISTRY[name] = DomainFeatureExtractor  # ours, maybe from before a reload
        else:
            raise EvalgenError(f"torch-fidelity already has a different feature extractor named '{name}'")

register_with_torch_fidelity()
