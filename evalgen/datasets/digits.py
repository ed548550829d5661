"""scikit-learn's 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits").

1797 images of 8x8 pixels with values 0..16 (17 levels), 10 classes; ships with scikit-learn,
so nothing is downloaded.

Split rule (fixed; recorded in the checksum): stratified by class. For each class c (in order
0..9) with n_c examples, its indices (in file order) are permuted with
``numpy.random.default_rng([DIGITS_SEED, c]).permutation``; the first ``round(0.7 n_c)`` go to
train, the next ``round(0.1 n_c)`` to valid, the rest to test. Each split is then sorted back
into file order. This gives train/valid/test = 1258/179/360.

Binary counterparts (for models of binary data only, e.g. Boltzmann machines; every family is
then compared on the same binary data, and NLLs are of the binary data). Both keep exactly the
digits splits and labels; each value is binarized stochastically ONCE, as Salakhutdinov & Murray
(2008) binarized MNIST, with a fixed draw, so every model sees the same data:

``binarized-digits``
    1 x 8 x 8, x_bin ~ Bernoulli(x / 16): for split s (train=0, valid=1, test=2),
    ``x_bin = numpy.random.default_rng([BINARIZE_SEED, s]).random(x.shape) < x / 16`` (float64,
    the split's images in file order, array shape (N, 1, 8, 8)).
``tiny-binarized-digits``
    1 x 4 x 4 (16 dimensions: 2^16 states, small enough to enumerate exactly): the digits
    average-pooled over non-overlapping 2x2 blocks (m = mean of 4 values in 0..16), then
    ``x_bin = default_rng([TINY_BINARIZE_SEED, s]).random(m.shape) < m / 16``.
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


#: Seeds of the fixed binarization draws (with the split index: train 0, valid 1, test 2).
BINARIZE_SEED = 20_250_612
TINY_BINARIZE_SEED = 20_250_613
BINARIZE_RULE = (f"binarized-digits: {SPLIT_RULE}; per split s (train=0, valid=1, test=2): "
                 f"x = numpy.default_rng([{BINARIZE_SEED}, s]).random((N, 1, 8, 8)) < x / 16 (float64); v1")
TINY_BINARIZE_RULE = (f"tiny-binarized-digits: {SPLIT_RULE}; m = mean of non-overlapping 2x2 blocks -> (N, 1, 4, 4); "
                      f"per split s (train=0, valid=1, test=2): "
                      f"x = numpy.default_rng([{TINY_BINARIZE_SEED}, s]).random((N, 1, 4, 4)) < m / 16 (float64); v1")


def pool2x2(x: np.ndarray) -> np.ndarray:
    """Average of non-overlapping 2x2 blocks: (N, C, H, W) -> (N, C, H/2, W/2), in float64."""
    n, c, h, w = x.shape
    return np.asarray(x, dtype=np.float64).reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def binarize(probabilities: np.ndarray, seed: int, split_index: int) -> np.ndarray:
    """One fixed Bernoulli draw: ``default_rng([seed, split_index]).random(shape) < p`` as float32 0/1."""
    u = np.random.default_rng([seed, split_index]).random(probabilities.shape)
    return (u < probabilities).astype(np.float32)


def _load_binarized(name: str, pooled: bool) -> Dataset:
    seed, rule = (TINY_BINARIZE_SEED, TINY_BINARIZE_RULE) if pooled else (BINARIZE_SEED, BINARIZE_RULE)
    source = load_digits()
    splits = []
    for index, split in enumerate((source.train, source.valid, source.test)):
        levels = split.x.numpy().astype(np.float64)
        p = (pool2x2(levels) if pooled else levels) / 16.0
        splits.append(Split(torch.from_numpy(binarize(p, seed, index)), split.y.clone()))
    train, valid, test = splits
    how = (f"average-pooled 2x2 to 4x4 (m = mean of 4 values), then binarized once, Bernoulli(m/16), "
           f"seed [{seed}, split]") if pooled else f"binarized once, Bernoulli(x/16), seed [{seed}, split]"
    return Dataset(
        name=name,
        kind=DataKind.BINARY,
        levels=2,
        num_classes=10,
        train=train,
        valid=valid,
        test=test,
        checksum=tensor_checksum(train.x, train.y, valid.x, valid.y, test.x, test.y, salt=rule),
        source=f"scikit-learn load_digits (UCI Optical Recognition of Handwritten Digits), digits splits, {how} "
               f"(stochastic binarization as Salakhutdinov & Murray 2008)",
        # The classifier trained on the 17-level digits (binarized-mnist likewise uses MNIST's);
        # none exists for 4x4 images, so sample-quality metrics are skipped there.
        feature_extractor=None if pooled else "digits-classifier",
    )


def load_binarized_digits(ctx: LoadContext | None = None) -> Dataset:
    """``binarized-digits`` (``ctx`` is unused: the data ships with scikit-learn)."""
    return _load_binarized("binarized-digits", pooled=False)


def load_tiny_binarized_digits(ctx: LoadContext | None = None) -> Dataset:
    """``tiny-binarized-digits`` (``ctx`` is unused: the data ships with scikit-learn)."""
    return _load_binarized("tiny-binarized-digits", pooled=True)


def dataset_specs() -> list[DatasetSpec]:
    return [
        DatasetSpec("digits", DataKind.DISCRETE,
                    "scikit-learn 8x8 digits, 17 grey levels, 10 classes, 1797 images (70/10/20 split)",
                    load_digits, labelled=True, shape=(1, 8, 8)),
        DatasetSpec("binarized-digits", DataKind.BINARY,
                    "digits binarized once, Bernoulli(x/16) with a fixed seed: 8x8 {0,1}, 10 classes, digits splits",
                    load_binarized_digits, labelled=True, shape=(1, 8, 8)),
        DatasetSpec("tiny-binarized-digits", DataKind.BINARY,
                    "digits pooled 2x2 to 4x4, binarized once, Bernoulli(mean/16): 16 dims (2^16 states, "
                    "exactly enumerable), 10 classes, digits splits",
                    load_tiny_binarized_digits, labelled=True, shape=(1, 4, 4)),
    ]
