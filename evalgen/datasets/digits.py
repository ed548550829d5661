"""scikit-learn's 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits").

1797 images of 8x8 pixels with values 0..16 (17 levels), 10 classes; ships with scikit-learn,
so nothing is downloaded.

Split rule (fixed; recorded in the checksum): stratified by class. For each class c (in order
0..9) with n_c examples, its indices (in file order) are permuted with
``numpy.random.default_rng([DIGITS_SEED, c]).permutation``; the first ``round(0.7 n_c)`` go to
train, the next ``round(0.1 n_c)`` to valid, the rest to test. Each split is then sorted back
into file order. This gives train/valid/test = 1258/179/360.
"""

from __future__ import annotations

import numpy as np
import torch

from evalgen.datasets.base import Dataset, DatasetSpec, LoadContext, Split, tensor_checksum
from evalgen.types import DataKind

DIGITS_SEED = 20_240_917
TRAIN_FRACTION = 0.7
VALID_FRACTION = 0.1
SPLIT_RULE = (f"digits: stratified by class, rng=numpy.default_rng([{DIGITS_SEED}, class]).permutation, "
              f"train=round({TRAIN_FRACTION}*n_c), valid=round({VALID_FRACTION}*n_c), test=rest, file order; v1")


def split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / valid / test indices into ``labels`` following the split rule above."""
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.random.default_rng([DIGITS_SEED, int(c)]).permutation(idx.size)]
        n_train = round(TRAIN_FRACTION * idx.size)
        n_valid = round(VALID_FRACTION * idx.size)
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train:n_train + n_valid])
        parts[2].append(idx[n_train + n_valid:])
    train, valid, test = (np.sort(np.concatenate(p)) for p in parts)
    return train, valid, test


def load_digits(ctx: LoadContext | None = None) -> Dataset:
    """Load the digits dataset (``ctx`` is unused: the data ships with scikit-learn)."""
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = np.asarray(bunch.images, dtype=np.float32).reshape(-1, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    x = torch.from_numpy(images)
    y = torch.from_numpy(labels)
    splits = [Split(x[i].clone(), y[i].clone()) for i in map(torch.from_numpy, split_indices(labels))]
    train, valid, test = splits
    return Dataset(
        name="digits",
        kind=DataKind.DISCRETE,
        levels=17,
        num_classes=10,
        train=train,
        valid=valid,
        test=test,
        checksum=tensor_checksum(train.x, train.y, valid.x, valid.y, test.x, test.y, salt=SPLIT_RULE),
        source="scikit-learn load_digits: UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak 1998), "
               "8x8, 0..16",
        feature_extractor="digits-classifier",
    )


def dataset_specs() -> list[DatasetSpec]:
    return [DatasetSpec("digits", DataKind.DISCRETE,
                        "scikit-learn 8x8 digits, 17 grey levels, 10 classes, 1797 images (70/10/20 split)",
                        load_digits, labelled=True)]
