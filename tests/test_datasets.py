"""Datasets: splits, checksums, file handling and the toy densities, against independent references.

File-based tests read the offline copies in ../shared/data (override with EVALGEN_TEST_DATA)
read-only; they are skipped when that folder is missing.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import math
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pluggy
import pytest
import torch
from conftest import data_missing

from evalgen import hookspecs
from evalgen.datasets import base, builtin, default_data_dir, digits, load_context_from_env, mnist, toys, user_cache_dir
from evalgen.datasets.base import DatasetSpec, LoadContext
from evalgen.errors import DataUnavailableError
from evalgen.types import DataKind

SHARED_DATA = Path(os.environ.get("EVALGEN_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

FILE_DATASETS = {
    # name: (folder under the data dir, files, a small file to corrupt)
    "mnist": ("MNIST/raw", mnist.IDX_FILES, "train-labels-idx1-ubyte.gz"),
    "fashion-mnist": ("FashionMNIST/raw", mnist.IDX_FILES, "t10k-labels-idx1-ubyte.gz"),
    "binarized-mnist": ("binarized_mnist", tuple(mnist.BINARIZED_MNIST_SHA256), "binarized_mnist_valid.amat"),
    "binarized-fashion-mnist": ("FashionMNIST/raw", mnist.IDX_FILES, "train-labels-idx1-ubyte.gz"),
}
CLOSED_FORM_TOYS = ["eight-gaussians", "grid-gaussians", "checkerboard", "rings"]


def specs() -> dict[str, DatasetSpec]:
    return {s.name: s for s in builtin.builtin_specs()}


@pytest.fixture(scope="module")
def shared_data() -> Path:
    needed = [SHARED_DATA / folder / name for folder, names, _ in FILE_DATASETS.values() for name in names]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        data_missing(f"offline dataset files not found under {SHARED_DATA} (set EVALGEN_TEST_DATA): {missing[0]} ...")
    return SHARED_DATA


@functools.cache
def _load_shared(name: str):
    return specs()[name].load(LoadContext(data_dir=SHARED_DATA, allow_download=False))


@pytest.fixture(scope="module")
def loaded(shared_data):
    """Load a file-backed dataset from the shared data (once per module), read-only."""
    yield _load_shared
    _load_shared.cache_clear()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def link_or_copy(src_root: Path, dst_root: Path, folder: str, names, copy: str | None = None) -> Path:
    """Mirror ``folder`` of the shared data under ``dst_root``: symlinks, and a real copy of ``copy``."""
    dst = dst_root / folder
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name == copy:
            shutil.copyfile(src_root / folder / name, dst / name)
            (dst / name).chmod(0o644)
        else:
            (dst / name).symlink_to(src_root / folder / name)
    return dst


# --- registry --------------------------------------------------------------------------------


def test_builtin_hook_registers_every_dataset():
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin)
    registered: list[DatasetSpec] = []
    pm.hook.evalgen_register_datasets(register=registered.append)
    names = [s.name for s in registered]
    assert names == ["digits", "binarized-digits", "tiny-binarized-digits", "mnist", "fashion-mnist",
                     "binarized-mnist", "binarized-fashion-mnist", "eight-gaussians", "grid-gaussians", "checkerboard",
                     "rings", "two-moons"]
    for spec in registered:
        assert isinstance(spec, DatasetSpec) and spec.summary and callable(spec.load)
        assert spec.needs_files == (spec.name in FILE_DATASETS)
    kinds = {s.name: s.kind for s in registered}
    binary = ["binarized-mnist", "binarized-fashion-mnist", "binarized-digits", "tiny-binarized-digits"]
    assert all(kinds[name] is DataKind.BINARY for name in binary)
    labelled = {s.name for s in registered if s.labelled}
    assert labelled == {"digits", "binarized-digits", "tiny-binarized-digits", "mnist", "fashion-mnist",
                        "binarized-fashion-mnist"}
    assert kinds["mnist"] is kinds["fashion-mnist"] is kinds["digits"] is DataKind.DISCRETE
    assert all(kinds[t] is DataKind.CONTINUOUS for t in toys.TOYS)


# --- data directory --------------------------------------------------------------------------


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALGEN_DATA_DIR", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("EVALGEN_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "evalgen" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "evalgen"
    assert default_data_dir() == tmp_path / "home" / ".cache" / "evalgen" / "data"


def test_load_context_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALGEN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EVALGEN_OFFLINE", "1")
    assert load_context_from_env() == LoadContext(data_dir=tmp_path, allow_download=False)
    monkeypatch.delenv("EVALGEN_OFFLINE")
    assert load_context_from_env().allow_download is True
    assert load_context_from_env(allow_download=False).allow_download is False


# --- digits ----------------------------------------------------------------------------------


def test_digits_shapes_levels_and_split():
    from sklearn.datasets import load_digits

    ds = specs()["digits"].load(LoadContext(data_dir=Path("/nonexistent"), allow_download=False))
    assert (ds.kind, ds.levels, ds.num_classes, ds.shape) == (DataKind.DISCRETE, 17, 10, (1, 8, 8))
    assert ds.feature_extractor == "digits-classifier" and ds.source and ds.true_log_prob is None
    sizes = [len(ds.train), len(ds.valid), len(ds.test)]
    assert sizes == [1258, 179, 360] and sum(sizes) == 1797
    for split in (ds.train, ds.valid, ds.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.min() == 0 and split.x.max() <= 16 and torch.equal(split.x, split.x.round())
    assert max(s.x.max() for s in (ds.train, ds.valid, ds.test)) == 16

    # Independent reference: scikit-learn's arrays at the documented indices.
    ref = load_digits()
    parts = digits.split_indices(ref.target)
    assert sum(len(p) for p in parts) == 1797
    assert len(np.unique(np.concatenate(parts))) == 1797  # disjoint and covering
    for split, idx in zip((ds.train, ds.valid, ds.test), parts):
        assert np.array_equal(split.x.numpy().reshape(-1, 8, 8), ref.images[idx].astype(np.float32))
        assert np.array_equal(split.y.numpy(), ref.target[idx])
    # No image is shared between splits (by content, not only by index), up to sklearn's duplicates.
    rows = {tuple(r) for r in ds.train.x.reshape(len(ds.train), -1).int().tolist()}
    dup = sum(tuple(r) in rows for r in ds.test.x.reshape(len(ds.test), -1).int().tolist())
    assert dup <= 2
    # Stratified: each class is 70/10/20 up to rounding.
    for c in range(10):
        n = int((ref.target == c).sum())
        assert int((ds.train.y == c).sum()) == round(0.7 * n)
        assert int((ds.valid.y == c).sum()) == round(0.1 * n)


def test_digits_deterministic_and_checksum_stable():
    a = digits.load_digits()
    b = specs()["digits"].load(LoadContext(data_dir=Path("/nonexistent"), allow_download=False))
    for sa, sb in zip((a.train, a.valid, a.test), (b.train, b.valid, b.test)):
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y)
    assert a.checksum == b.checksum
    # Pinned: a change here changes every recorded digits result, so it must be deliberate.
    assert a.checksum == "d064b2ec2715f1901008ca4af8ba12149ac5250b408c2cb6b0bb9500af0cd89c"
    assert a.checksum == base.tensor_checksum(a.train.x, a.train.y, a.valid.x, a.valid.y, a.test.x, a.test.y,
                                              salt=digits.SPLIT_RULE)


# --- toys ------------------------------------------------------------------------------------


def _grid(half: float, h: float) -> tuple[torch.Tensor, float, int]:
    """Midpoints of an h-spaced grid on [-half, half]^2 (float64), the cell area and points per side."""
    n = round(2 * half / h)
    c = -half + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    gx, gy = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1), h * h, n


@functools.cache
def _quadrature(name: str) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    pts, area, n = _grid(6.0, 0.02)
    return pts, toys.TOYS[name].density.log_prob(pts), area, n


@pytest.mark.parametrize("name", CLOSED_FORM_TOYS)
def test_toy_density_integrates_to_one(name):
    _, logp, area, _ = _quadrature(name)
    assert logp.dtype == torch.float64 and not torch.isnan(logp).any()
    total = float(logp.exp().sum() * area)
    assert total == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize("name", CLOSED_FORM_TOYS)
def test_toy_samples_follow_density(name):
    """Bin counts of the training samples vs the quadrature mass per bin (chi-square), and the
    mean log-density of the samples vs the quadrature value of E_p[log p]."""
    from scipy import stats

    ds = toys.load_toy(name)
    _, logp, area, n = _quadrature(name)
    p = (logp.exp() * area).reshape(n, n)
    coarse = 25  # 0.5 x 0.5 bins: 24 x 24 of them
    mass = p.reshape(n // coarse, coarse, n // coarse, coarse).sum((1, 3)).reshape(-1).numpy()
    x = ds.train.x.double().numpy()
    assert (np.abs(x) < 6).all()
    ij = np.floor((x + 6.0) / 0.5).astype(int)
    counts = np.bincount(ij[:, 0] * (n // coarse) + ij[:, 1], minlength=mass.size)
    expected = mass / mass.sum() * len(x)
    big = expected >= 5
    assert counts[expected == 0].sum() == 0  # no sample where the density has no mass
    obs, exp = counts[big], expected[big]
    if expected[~big].sum() > 0:  # pool the sparse bins into one
        obs, exp = np.append(obs, counts[~big].sum()), np.append(exp, expected[~big].sum())
    pvalue = stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue
    assert pvalue > 1e-3, f"{name}: samples disagree with the density (chi-square p={pvalue:.2g})"

    # Mean log-density: E_p[log p] by quadrature vs Monte Carlo over train+test samples.
    finite = torch.isfinite(logp)
    neg_entropy = float((logp[finite].exp() * logp[finite]).sum() * area)
    samples = torch.cat([ds.train.x, ds.test.x])
    lp = ds.true_log_prob(samples)
    assert lp.shape == (len(samples),) and torch.isfinite(lp).all()
    se = float(lp.std() / math.sqrt(len(lp)))
    assert abs(float(lp.mean()) - neg_entropy) < 4 * se + 1e-3


def test_toy_densities_known_values():
    # Checkerboard: 1/32 on black squares (corner (-4,-4) black), zero on white ones and outside.
    lp = toys.CHECKERBOARD.log_prob(torch.tensor([[-3.0, -3.0], [-1.0, -3.0], [1.0, 1.0], [4.5, 0.0], [-2.0, -2.0]]))
    assert lp[0] == pytest.approx(-math.log(32)) and lp[2] == pytest.approx(-math.log(32))
    assert lp[1] == -math.inf and lp[3] == -math.inf and lp[4] == pytest.approx(-math.log(32))
    # Eight Gaussians at a center: log(1/8 * 1/(2 pi s^2)) up to the other components' negligible mass.
    s = toys.EIGHT_GAUSSIANS_STD
    c = torch.tensor(toys.EIGHT_GAUSSIANS_CENTERS[:1])
    assert float(toys.EIGHT_GAUSSIANS.log_prob(c)) == pytest.approx(math.log(1 / 8 / (2 * math.pi * s * s)), abs=1e-6)
    # Rings: radial density at r=2 is 1/4 * N(0; 0, s) (other rings negligible), / (2 pi r).
    s = toys.RINGS_STD
    want = math.log(0.25 / (math.sqrt(2 * math.pi) * s) / (2 * math.pi * 2.0))
    assert float(toys.RINGS.log_prob(torch.tensor([[0.0, 2.0]]))) == pytest.approx(want, abs=1e-6)
    assert float(toys.RINGS.log_prob(torch.zeros(1, 2))) == -math.inf  # p(0) := 0, a null set
    with pytest.raises(ValueError):
        toys.RINGS.log_prob(torch.zeros(3))


def test_toy_mode_constants():
    assert np.allclose(np.linalg.norm(toys.EIGHT_GAUSSIANS_CENTERS, axis=1), toys.EIGHT_GAUSSIANS_RADIUS)
    assert len(np.unique(toys.EIGHT_GAUSSIANS_CENTERS.round(6), axis=0)) == 8
    assert toys.GRID_GAUSSIANS_CENTERS.shape == (25, 2) and 0.1 <= toys.EIGHT_GAUSSIANS_STD <= 0.2
    assert toys.CHECKERBOARD_BLACK_CORNERS.shape == (8, 2) and toys.CHECKERBOARD.area == 32
    # Every mode gets its share of the training samples (what mode-coverage metrics rely on).
    for density, name in [(toys.EIGHT_GAUSSIANS, "eight-gaussians"), (toys.GRID_GAUSSIANS, "grid-gaussians")]:
        x = toys.load_toy(name).train.x.double().numpy()
        nearest = np.argmin(((x[:, None] - density.modes[None]) ** 2).sum(-1), axis=1)
        share = np.bincount(nearest, minlength=len(density.modes)) / len(x)
        assert np.allclose(share, 1 / len(density.modes), atol=0.02)


@pytest.mark.parametrize("name", list(toys.TOYS))
def test_toy_datasets_deterministic(name):
    a = specs()[name].load(LoadContext(data_dir=Path("/nonexistent"), allow_download=False))
    b = toys.load_toy(name)
    assert (a.kind, a.levels, a.num_classes, a.shape) == (DataKind.CONTINUOUS, None, None, (2,))
    assert [len(a.train), len(a.valid), len(a.test)] == [10_000, 2_000, 5_000]
    for sa, sb in zip((a.train, a.valid, a.test), (b.train, b.valid, b.test)):
        assert sa.x.dtype == torch.float32 and sa.y is None and torch.isfinite(sa.x).all()
        assert torch.equal(sa.x, sb.x)
    assert not torch.equal(a.train.x[:2000], a.valid.x)  # splits use different seeds
    salt = f"{name}; {toys.TOYS[name].params}; seed={toys.TOY_SEED}; sizes=(10000, 2000, 5000); v1"
    assert a.checksum == b.checksum == base.tensor_checksum(a.train.x, a.valid.x, a.test.x, salt=salt)
    assert (a.true_log_prob is None) == (name == "two-moons")
    assert a.source


def test_two_moons_lie_on_the_moons():
    x = toys.load_toy("two-moons").train.x.double().numpy()
    # make_moons: upper arc of the unit circle at (0, 0), lower arc of the unit circle at (1, 0.5).
    d_upper = np.abs(np.linalg.norm(x, axis=1) - 1)
    d_lower = np.abs(np.linalg.norm(x - [1.0, 0.5], axis=1) - 1)
    near = np.minimum(d_upper, d_lower)
    assert np.mean(near < 2.5 * toys.TWO_MOONS_NOISE) > 0.95
    assert np.allclose(x.mean(0), [0.5, 0.25], atol=0.05)


# --- MNIST-like files ------------------------------------------------------------------------


def test_embedded_digests_match_torchvision():
    import torchvision.datasets as tvd

    assert dict(tvd.MNIST.resources) == mnist.MNIST_MD5
    assert dict(tvd.FashionMNIST.resources) == mnist.FASHION_MNIST_MD5


def test_embedded_sha256_match_shared_sums(shared_data):
    sums = dict(reversed(line.split()) for line in (shared_data / "SHA256SUMS").read_text().splitlines() if line)
    for name, digest in mnist.BINARIZED_MNIST_SHA256.items():
        assert sums[f"binarized_mnist/{name}"] == digest


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_datasets(loaded, shared_data, tmp_path, name):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    ds = loaded(name)
    assert (ds.kind, ds.levels, ds.num_classes, ds.shape) == (DataKind.DISCRETE, 256, 10, (1, 28, 28))
    assert [len(ds.train), len(ds.valid), len(ds.test)] == [50_000, 10_000, 10_000]
    assert ds.feature_extractor == f"{name}-classifier" and ds.source and ds.true_log_prob is None
    for split in (ds.train, ds.valid, ds.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.min() == 0 and split.x.max() == 255 and torch.equal(split.x, split.x.round())
        assert split.y.min() == 0 and split.y.max() == 9 and len(split.y.unique()) == 10
    info = ds.info()
    assert info.num_train == 50_000 and info.shape == (1, 28, 28)

    # Independent reference: torchvision's parser on decompressed copies (in tmp_path).
    folder = shared_data / FILE_DATASETS[name][0]
    for src in ("t10k-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / src).write_bytes(gzip.decompress((folder / f"{src}.gz").read_bytes()))
    ref_test = read_image_file(str(tmp_path / "t10k-images-idx3-ubyte"))
    assert torch.equal(ds.test.x.reshape(-1, 28, 28), ref_test.float())
    ref_labels = read_label_file(str(tmp_path / "train-labels-idx1-ubyte"))
    assert torch.equal(torch.cat([ds.train.y, ds.valid.y]), ref_labels.long())
    if name == "mnist":
        assert (int(ds.train.y[0]), int(ds.test.y[0])) == (5, 7)  # the well-known first labels


def test_binarized_mnist(loaded, shared_data):
    ds = loaded("binarized-mnist")
    assert (ds.kind, ds.levels, ds.num_classes, ds.shape) == (DataKind.BINARY, 2, None, (1, 28, 28))
    assert [len(ds.train), len(ds.valid), len(ds.test)] == [50_000, 10_000, 10_000]
    assert ds.feature_extractor == "mnist-classifier" and ds.source
    for split in (ds.train, ds.valid, ds.test):
        assert split.x.dtype == torch.float32 and split.y is None
        assert bool(((split.x == 0) | (split.x == 1)).all())  # values in {0, 1}
        assert 0.08 < float(split.x.mean()) < 0.2  # MNIST ink fraction
    # Independent reference: numpy's text parser on the first and last rows of each file.
    for split, name in ((ds.train, "train"), (ds.valid, "valid"), (ds.test, "test")):
        path = shared_data / "binarized_mnist" / f"binarized_mnist_{name}.amat"
        head = np.loadtxt(path, max_rows=50, dtype=np.float32)
        assert np.array_equal(split.x[:50].reshape(50, -1).numpy(), head)
        with open(path, "rb") as fh:
            fh.seek(-2 * 784, os.SEEK_END)
            last = np.array(fh.read().split(), dtype=np.float32)
        assert np.array_equal(split.x[-1].reshape(-1).numpy(), last)


def test_binarized_fashion_mnist_follows_its_rule(loaded, shared_data, tmp_path):
    from torchvision.datasets.mnist import read_image_file

    ds = loaded("binarized-fashion-mnist")
    grey = loaded("fashion-mnist")
    assert (ds.kind, ds.levels, ds.num_classes, ds.shape) == (DataKind.BINARY, 2, 10, (1, 28, 28))
    assert [len(ds.train), len(ds.valid), len(ds.test)] == [50_000, 10_000, 10_000]
    assert ds.feature_extractor == "fashion-mnist-classifier" and "Bernoulli(x/255)" in ds.source
    for split, grey_split in ((ds.train, grey.train), (ds.valid, grey.valid), (ds.test, grey.test)):
        assert split.x.dtype == torch.float32 and bool(((split.x == 0) | (split.x == 1)).all())
        assert torch.equal(split.y, grey_split.y)  # the labels are kept
        # Each pixel is one Bernoulli(x/255) draw: the mean is within 5 standard errors of E[x/255].
        p = grey_split.x.double() / 255
        se = float((p * (1 - p)).sum().sqrt()) / p.numel()
        assert abs(float(split.x.double().mean() - p.mean())) < 5 * se
        assert bool((split.x[grey_split.x == 0] == 0).all()) and bool((split.x[grey_split.x == 255] == 1).all())
    # Independent reference: the documented rule, applied to torchvision's parse of the test images.
    folder = shared_data / "FashionMNIST/raw"
    (tmp_path / "test").write_bytes(gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes()))
    images = read_image_file(str(tmp_path / "test")).numpy().astype(np.float64)
    draw = np.random.default_rng([mnist.FASHION_BINARIZE_SEED, 2]).random((10_000, 1, 28, 28))
    assert np.array_equal(ds.test.x.numpy(), (draw < images[:, None] / 255).astype(np.float32))
    rule_checksum = mnist.files_checksum(mnist.idx_fileset(mnist.FASHION_MNIST, ds.name), mnist.FASHION_BINARIZE_RULE)
    assert ds.checksum == rule_checksum != grey.checksum  # the rule (with its seed) is part of the checksum


def test_amat_parser_general_path():
    rows = np.random.default_rng(0).integers(0, 2, size=(3, 784), dtype=np.uint8)
    text = "\r\n".join("\t".join(map(str, r)) + "  " for r in rows).encode()
    assert np.array_equal(mnist.parse_amat(text), rows)
    with pytest.raises(ValueError):
        mnist.parse_amat(b"0 1 2\n" * 784)


def test_file_checksums(loaded):
    got = {name: loaded(name).checksum for name in FILE_DATASETS}
    assert len(set(got.values())) == len(FILE_DATASETS)
    assert got["mnist"] == mnist.files_checksum(mnist.idx_fileset(mnist.MNIST), mnist.IDX_SPLIT_RULE)
    # Pinned: these identify the data behind every recorded result; changing them must be deliberate.
    assert got == {
        "mnist": "811f79b83845130a2a28fde6a687feb536b8696956e9e7e5a4e93c8b5cc96003",
        "fashion-mnist": "55b2c3702a2ef63d6c09bdfd1859c5247c9f97e9fe1dbd380c070b26bf536838",
        "binarized-mnist": "d097db27fcff58ab2d871792fa1d26cb5311d1a93f9ada0168564ed9140617b3",
        "binarized-fashion-mnist": "1fa7856431ce6e6ebac0e6245e374a0ecfde285a40486ea19e9effdd36094120",
    }


def test_loaders_do_not_write_into_data_dir(loaded, shared_data):
    before = snapshot(shared_data)
    for name in FILE_DATASETS:
        specs()[name].load(LoadContext(data_dir=shared_data, allow_download=False))
    # Downloads allowed but nothing missing: still nothing written.
    specs()["mnist"].load(LoadContext(data_dir=shared_data, allow_download=True))
    assert snapshot(shared_data) == before


@pytest.mark.parametrize("name", list(FILE_DATASETS))
def test_corrupt_file_is_rejected(shared_data, tmp_path, name):
    folder, names, victim = FILE_DATASETS[name]
    dst = link_or_copy(shared_data, tmp_path, folder, names, copy=victim)
    data = bytearray((dst / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (dst / victim).write_bytes(bytes(data))
    before = snapshot(tmp_path)
    with pytest.raises(DataUnavailableError) as err:
        specs()[name].load(LoadContext(data_dir=tmp_path, allow_download=True))
    msg = str(err.value)
    assert "\n" not in msg and str(dst / victim) in msg and "corrupt" in msg and "delete" in msg
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", list(FILE_DATASETS))
def test_missing_files_offline(tmp_path, name):
    folder, names, _ = FILE_DATASETS[name]
    with pytest.raises(DataUnavailableError) as err:
        specs()[name].load(LoadContext(data_dir=tmp_path, allow_download=False))
    msg = str(err.value)
    assert "\n" not in msg and f"'{name}'" in msg
    assert all(n in msg for n in names)
    assert str(tmp_path / folder) in msg and "EVALGEN_DATA_DIR" in msg and "offline" in msg
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_only_missing_files_are_named(shared_data, tmp_path):
    folder, names, _ = FILE_DATASETS["mnist"]
    link_or_copy(shared_data, tmp_path, folder, names[:3])
    with pytest.raises(DataUnavailableError) as err:
        specs()["mnist"].load(LoadContext(data_dir=tmp_path, allow_download=False))
    assert names[3] in str(err.value) and names[0] not in str(err.value)


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A local HTTP server (no internet needed) serving tmp_path/www; yields (root dir, base URL)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_verifies_and_falls_back_to_next_mirror(shared_data, tmp_path, http_root, monkeypatch, loaded):
    www, url = http_root
    folder, names, _ = FILE_DATASETS["mnist"]
    (www / "bad").mkdir()  # a mirror serving a corrupt copy of one file and nothing else
    (www / "bad" / names[1]).write_bytes(b"not the labels")
    (www / "good").mkdir()
    for n in names:
        shutil.copyfile(shared_data / folder / n, www / "good" / n)
    monkeypatch.setattr(mnist, "torchvision_mirrors", lambda cls: (f"{url}/bad/", f"{url}/good/"))
    data_dir = tmp_path / "data"
    ds = specs()["mnist"].load(LoadContext(data_dir=data_dir, allow_download=True))
    assert ds.checksum == loaded("mnist").checksum and torch.equal(ds.test.x, loaded("mnist").test.x)
    assert sorted(p.name for p in (data_dir / folder).iterdir()) == sorted(names)  # no temp files left


def test_download_failure_is_one_line_error(tmp_path, http_root, monkeypatch):
    www, url = http_root
    (www / "binarized_mnist_train.amat").write_bytes(b"0 1\n")  # wrong content
    monkeypatch.setattr(mnist, "BINARIZED_MNIST_URL", f"{url}/")
    data_dir = tmp_path / "data"
    with pytest.raises(DataUnavailableError) as err:
        specs()["binarized-mnist"].load(LoadContext(data_dir=data_dir, allow_download=True))
    msg = str(err.value)
    assert "\n" not in msg and "downloading binarized_mnist_train.amat failed" in msg and "sha256" in msg
    assert "EVALGEN_DATA_DIR" in msg and str(data_dir / "binarized_mnist") in msg
    assert not data_dir.exists()  # a failed download leaves nothing behind, not even folders

    # A mirror that cannot be reached (closed port) fails fast with the URL in the message.
    monkeypatch.setattr(mnist, "BINARIZED_MNIST_URL", "http://127.0.0.1:9/")
    with pytest.raises(DataUnavailableError, match=r"127\.0\.0\.1:9"):
        specs()["binarized-mnist"].load(LoadContext(data_dir=data_dir, allow_download=True))
