"""Dataset value types: what a loader returns and what the registry holds."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from evalgen.types import DataKind, DatasetInfo, Representation


@dataclass(frozen=True)
class Split:
    """One split: ``x`` float32 (N, *shape) in stored values (integers for binary/discrete data),
    ``y`` int64 (N,) class labels or None."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True, eq=False)
class ModeSet:
    """The mixture components for mode-coverage metrics: isotropic Gaussians with a common std.

    Attributes:
        centers: float64 (K, D) the component means.
        std: the common standard deviation (> 0).
        weights: float64 (K,) the mixing weights (positive, summing to 1); default uniform.

    The arrays are copied and made read-only; equality is identity (arrays have no truth value).
    """

    centers: np.ndarray
    std: float
    weights: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        centers = np.array(self.centers, dtype=np.float64)
        k = len(centers)
        weights = np.full(k, 1.0 / k) if self.weights is None else np.array(self.weights, dtype=np.float64)
        if centers.ndim != 2 or k == 0 or weights.shape != (k,):
            raise ValueError(f"centers must be (K, D) and weights (K,), got {centers.shape} and {weights.shape}")
        if not (self.std > 0 and np.all(weights > 0) and abs(weights.sum() - 1) < 1e-9):
            raise ValueError(f"need std > 0 and positive weights summing to 1, got std={self.std}, weights={weights}")
        centers.setflags(write=False)
        weights.setflags(write=False)
        object.__setattr__(self, "centers", centers)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "std", float(self.std))


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset with fixed train / validation / test splits.

    Attributes:
        name, kind, levels, num_classes: as in `DatasetInfo`.
        train, valid, test: the splits; ``x`` holds stored values (see `Split`).
        checksum: SHA-256 over everything that determines the splits (files or arrays + split
            rule), recorded with every result.
        true_log_prob: for synthetic continuous data with a closed-form density: x (N, *shape)
            -> log p(x) in nats (N,). None otherwise.
        source: one line saying where the data comes from.
        feature_extractor: name of the default feature extractor for sample-quality metrics.
        modes: the mixture components for mode-coverage metrics (synthetic Gaussian mixtures),
            else None.
    """

    name: str
    kind: DataKind
    levels: int | None
    num_classes: int | None
    train: Split
    valid: Split
    test: Split
    checksum: str
    source: str = ""
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None
    feature_extractor: str | None = None
    modes: ModeSet | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def info(self, representation: Representation | None = None) -> DatasetInfo:
        if representation is None:
            representation = (
                Representation.CONTINUOUS if self.kind is DataKind.CONTINUOUS else Representation.LEVELS
            )
        return DatasetInfo(
            name=self.name,
            kind=self.kind,
            shape=self.shape,
            levels=self.levels,
            num_classes=self.num_classes,
            representation=representation,
            num_train=len(self.train),
            label_counts=self._label_counts(),
        )

    def _label_counts(self) -> tuple[int, ...] | None:
        if self.train.y is None or not self.num_classes:
            return None
        return tuple(int(c) for c in torch.bincount(self.train.y.long(), minlength=self.num_classes))


@dataclass(frozen=True)
class LoadContext:
    """What a loader is given: where files live and whether it may download them."""

    data_dir: Path
    allow_download: bool


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry. ``load`` is only called when the dataset is used, so listing is cheap.

    Attributes:
        name: registry name (``--dataset``).
        kind: the data kind of the loaded dataset.
        summary: one line for ``evalgen datasets``.
        load: builds the `Dataset`; raises `DataUnavailableError` with the fix when files are
            missing and cannot be downloaded.
        needs_files: True if the data comes from files under the data directory.
        labelled: the loaded dataset has class labels (models that need labels are only picked
            for labelled datasets).
        shape: the shape of one example if known without loading (models with a ``max_dims``
            smaller than its size are then left out when runs are planned), else None.
    """

    name: str
    kind: DataKind
    summary: str
    load: Callable[[LoadContext], Dataset]
    needs_files: bool = False
    labelled: bool = False
    shape: tuple[int, ...] | None = None

    @property
    def num_dims(self) -> int | None:
        return None if self.shape is None else math.prod(self.shape)


def tensor_checksum(*tensors: torch.Tensor | None, salt: str = "") -> str:
    """SHA-256 over the bytes of the given tensors (None entries count as absent) and a salt."""
    digest = hashlib.sha256(salt.encode())
    for t in tensors:
        if t is not None:
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
