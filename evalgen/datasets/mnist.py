"""MNIST, Fashion-MNIST and statically binarized MNIST, read from files in the data directory.

Layout under the data directory (the one ``torchvision.datasets`` uses under its ``root``)::

    MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    binarized_mnist/binarized_mnist_{train,valid,test}.amat

``binarized-fashion-mnist`` is made from the Fashion-MNIST files: each grey level is binarized once,
Bernoulli(x/255), with a fixed seed per split (as ``binarized-digits``), so every model sees the
same draw and the rule is part of the checksum. It is binarized MNIST's outlier partner.

The ``.gz`` files are decompressed in memory (nothing is extracted next to them, unlike
``torchvision.datasets.MNIST``), and every file is checked against the digest embedded below
each time it is read: MD5 for the idx files (the sums torchvision uses), SHA-256 for the
``.amat`` files (the sums published with TensorFlow Datasets).

Splits:
    mnist, fashion-mnist: train = the first 50 000 of the official 60 000 training images,
        valid = the last 10 000 of them, test = the official 10 000 test images.
    binarized-mnist: the published 50 000 / 10 000 / 10 000 files, in file order.
    binarized-fashion-mnist: the fashion-mnist splits.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from evalgen.datasets.base import Dataset, DatasetSpec, LoadContext, Split
from evalgen.datasets.digits import binarize
from evalgen.datasets.files import FileSet, RemoteFile, ensure_files, mirror_urls, read_verified
from evalgen.errors import DataUnavailableError
from evalgen.types import DataKind

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

#: MD5 digests, identical to ``torchvision.datasets.{MNIST,FashionMNIST}.resources``.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

BINARIZED_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
#: SHA-256 digests of the Larochelle & Murray files (as published with TensorFlow Datasets).
BINARIZED_MNIST_SHA256 = {
    "binarized_mnist_train.amat": "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
    "binarized_mnist_valid.amat": "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
    "binarized_mnist_test.amat": "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
}
BINARIZED_MNIST_ROWS = {"train": 50_000, "valid": 10_000, "test": 10_000}

NUM_TRAIN = 50_000  #: first 50 000 official training images
NUM_VALID = 10_000  #: last 10 000 official training images
IDX_SPLIT_RULE = "train=official_train[:50000] valid=official_train[50000:60000] test=official_test; v1"
BINARIZED_SPLIT_RULE = "train/valid/test = binarized_mnist_{train,valid,test}.amat in file order; v1"
#: Seed of binarized-fashion-mnist's fixed draw (with the split index: train 0, valid 1, test 2).
FASHION_BINARIZE_SEED = 20_261_204
FASHION_BINARIZE_RULE = (f"binarized-fashion-mnist: {IDX_SPLIT_RULE}; per split s (train=0, valid=1, test=2): "
                         f"x = numpy.default_rng([{FASHION_BINARIZE_SEED}, s]).random((N, 1, 28, 28)) "
                         f"< x / 255 (float64); v1")


@dataclass(frozen=True)
class _IdxDataset:
    name: str
    folder: str  # under the data directory
    torchvision_class: str  # where the download mirrors come from
    md5: dict[str, str]
    source: str
    feature_extractor: str
    summary: str


MNIST = _IdxDataset(
    "mnist", "MNIST/raw", "MNIST", MNIST_MD5,
    "MNIST handwritten digits (LeCun, Bottou, Bengio & Haffner 1998), yann.lecun.com/exdb/mnist",
    "mnist-classifier", "MNIST digits, 28x28 grey levels 0..255, 10 classes, 50k/10k/10k",
)
FASHION_MNIST = _IdxDataset(
    "fashion-mnist", "FashionMNIST/raw", "FashionMNIST", FASHION_MNIST_MD5,
    "Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747), github.com/zalandoresearch/fashion-mnist",
    "fashion-mnist-classifier", "Fashion-MNIST clothing, 28x28 grey levels 0..255, 10 classes, 50k/10k/10k",
)


def torchvision_mirrors(class_name: str) -> tuple[str, ...]:
    """The download mirrors ``torchvision.datasets.<class_name>`` uses (imported lazily)."""
    import torchvision.datasets

    return tuple(getattr(torchvision.datasets, class_name).mirrors)


def idx_fileset(spec: _IdxDataset, dataset: str | None = None) -> FileSet:
    """``spec``'s files, named in messages as ``dataset`` (default ``spec.name``)."""
    return FileSet(
        dataset or spec.name, spec.folder,
        tuple(RemoteFile(name, "md5", spec.md5[name]) for name in IDX_FILES),
        urls=lambda name: mirror_urls(torchvision_mirrors(spec.torchvision_class), name),
    )


def binarized_fileset() -> FileSet:
    return FileSet(
        "binarized-mnist", "binarized_mnist",
        tuple(RemoteFile(name, "sha256", digest) for name, digest in BINARIZED_MNIST_SHA256.items()),
        urls=lambda name: (BINARIZED_MNIST_URL + name,),
    )


def files_checksum(fileset: FileSet, rule: str) -> str:
    """SHA-256 over the files' digests and the split rule: what determines a file-backed dataset."""
    text = "\n".join([f"dataset {fileset.dataset}", *fileset.checksum_lines(), f"split {rule}"])
    return hashlib.sha256(text.encode()).hexdigest()


def parse_idx(data: bytes) -> np.ndarray:
    """Parse an (uncompressed) idx file of unsigned bytes: big-endian header, then the values."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError("not an idx file of unsigned bytes")
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    values = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(dims)):
        raise ValueError(f"idx file holds {values.size} values, header says {dims}")
    return values.reshape(dims)


def parse_amat(data: bytes, dims: int = 784) -> np.ndarray:
    """Parse a .amat file of 0/1 values, one example per line, into uint8 (N, dims).

    Fast path for the published layout ("d d ... d\\n", single characters separated by single
    spaces), general path for any whitespace; both avoid text tokenization.
    """
    raw = np.frombuffer(data, np.uint8)
    width = 2 * dims
    if raw.size % width == 0:
        rows = raw.reshape(-1, width)
        digits = rows[:, 0::2]
        if ((rows[:, 1:-1:2] == 32).all() and (rows[:, -1] == 10).all()
                and ((digits == 48) | (digits == 49)).all()):
            return digits - 48
    is_digit = (raw >= 48) & (raw <= 57)
    if (is_digit[1:] & is_digit[:-1]).any():
        raise ValueError("values with more than one digit")
    if not np.isin(raw[~is_digit], np.frombuffer(b" \t\r\n", np.uint8)).all():
        raise ValueError("characters other than digits and whitespace")
    values = raw[is_digit] - 48
    if values.size % dims or (values > 1).any():
        raise ValueError(f"expected rows of {dims} values in {{0, 1}}")
    return values.reshape(-1, dims)


def _as_images(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(values.astype(np.float32)).reshape(-1, 1, 28, 28)


def _bad_file(dataset: str, path: object, exc: Exception) -> DataUnavailableError:
    return DataUnavailableError(
        f"dataset '{dataset}': cannot parse {path} ({exc}); delete it or replace it with the official file"
    )


def load_idx_dataset(spec: _IdxDataset, ctx: LoadContext, fileset: FileSet | None = None) -> Dataset:
    fileset = fileset or idx_fileset(spec)
    folder = ensure_files(fileset, ctx)
    arrays = {}
    for name in IDX_FILES:
        data = read_verified(fileset, ctx, name)
        try:
            arrays[name] = parse_idx(gzip.decompress(data))
        except (OSError, ValueError, EOFError) as exc:
            raise _bad_file(spec.name, folder / name, exc) from None
    train_x = _as_images(arrays["train-images-idx3-ubyte.gz"])
    train_y = torch.from_numpy(arrays["train-labels-idx1-ubyte.gz"].astype(np.int64))
    test_x = _as_images(arrays["t10k-images-idx3-ubyte.gz"])
    test_y = torch.from_numpy(arrays["t10k-labels-idx1-ubyte.gz"].astype(np.int64))
    end = NUM_TRAIN + NUM_VALID
    return Dataset(
        name=spec.name,
        kind=DataKind.DISCRETE,
        levels=256,
        num_classes=10,
        train=Split(train_x[:NUM_TRAIN], train_y[:NUM_TRAIN]),
        valid=Split(train_x[NUM_TRAIN:end], train_y[NUM_TRAIN:end]),
        test=Split(test_x, test_y),
        checksum=files_checksum(fileset, IDX_SPLIT_RULE),
        source=spec.source,
        feature_extractor=spec.feature_extractor,
    )


def load_binarized_fashion_mnist(ctx: LoadContext) -> Dataset:
    """Fashion-MNIST's splits, each binarized once with a fixed draw (``FASHION_BINARIZE_RULE``)."""
    fileset = idx_fileset(FASHION_MNIST, "binarized-fashion-mnist")
    grey = load_idx_dataset(FASHION_MNIST, ctx, fileset)
    splits = [Split(torch.from_numpy(binarize(split.x.numpy().astype(np.float64) / 255.0,
                                              FASHION_BINARIZE_SEED, index)), split.y)
              for index, split in enumerate((grey.train, grey.valid, grey.test))]
    return Dataset(
        name="binarized-fashion-mnist",
        kind=DataKind.BINARY,
        levels=2,
        num_classes=10,
        train=splits[0],
        valid=splits[1],
        test=splits[2],
        checksum=files_checksum(fileset, FASHION_BINARIZE_RULE),
        source=f"{FASHION_MNIST.source}, binarized once, Bernoulli(x/255), seed [{FASHION_BINARIZE_SEED}, split] "
               f"(stochastic binarization as Salakhutdinov & Murray 2008)",
        # The classifier trained on the 256 grey levels, as binarized-mnist uses MNIST's.
        feature_extractor=FASHION_MNIST.feature_extractor,
    )


def load_binarized_mnist(ctx: LoadContext) -> Dataset:
    fileset = binarized_fileset()
    folder = ensure_files(fileset, ctx)
    splits = {}
    for split, rows in BINARIZED_MNIST_ROWS.items():
        name = f"binarized_mnist_{split}.amat"
        data = read_verified(fileset, ctx, name)
        try:
            values = parse_amat(data)
        except ValueError as exc:
            raise _bad_file("binarized-mnist", folder / name, exc) from None
        del data
        if values.shape[0] != rows:
            raise _bad_file("binarized-mnist", folder / name, ValueError(f"{values.shape[0]} rows, not {rows}"))
        splits[split] = Split(_as_images(values), None)
    return Dataset(
        name="binarized-mnist",
        kind=DataKind.BINARY,
        levels=2,
        num_classes=None,
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        checksum=files_checksum(fileset, BINARIZED_SPLIT_RULE),
        source="statically binarized MNIST (Larochelle & Murray 2011, AISTATS), "
               "www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist",
        feature_extractor="mnist-classifier",
    )


def dataset_specs() -> list[DatasetSpec]:
    return [
        DatasetSpec(MNIST.name, DataKind.DISCRETE, MNIST.summary,
                    lambda ctx: load_idx_dataset(MNIST, ctx), needs_files=True, labelled=True,
                    shape=(1, 28, 28)),
        DatasetSpec(FASHION_MNIST.name, DataKind.DISCRETE, FASHION_MNIST.summary,
                    lambda ctx: load_idx_dataset(FASHION_MNIST, ctx), needs_files=True, labelled=True,
                    shape=(1, 28, 28)),
        DatasetSpec("binarized-mnist", DataKind.BINARY,
                    "statically binarized MNIST (Larochelle & Murray), 28x28 {0,1}, no labels, 50k/10k/10k",
                    load_binarized_mnist, needs_files=True, shape=(1, 28, 28)),
        DatasetSpec("binarized-fashion-mnist", DataKind.BINARY,
                    "Fashion-MNIST binarized once, Bernoulli(x/255) with a fixed seed: 28x28 {0,1}, 10 classes, "
                    "50k/10k/10k", load_binarized_fashion_mnist, needs_files=True, labelled=True,
                    shape=(1, 28, 28)),
    ]
