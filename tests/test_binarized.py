"""The binary counterparts of digits, and a family's default dataset.

``binarized-digits`` and ``tiny-binarized-digits`` are checked against independent references:
scikit-learn's arrays at the digits split indices, the Bernoulli expectation x/16 of every
pixel (per-pixel means within their standard errors, and a chi-square over all pixels), and
torch's ``avg_pool2d`` for the 4x4 version.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import toy_plugins
from scipy import stats

from evalgen import DataKind, FamilyInfo, ModelSpec, hookimpl
from evalgen.datasets import base, builtin, digits
from evalgen.datasets.base import LoadContext
from evalgen.errors import EvalgenError
from evalgen.planning import default_dataset, plan_specs
from evalgen.plugins import load_plugins

SPLITS = ("train", "valid", "test")
NO_FILES = LoadContext(data_dir=Path("/nonexistent"), allow_download=False)


@functools.cache
def load(name: str):
    """Through the registry, as the harness loads it."""
    return {s.name: s for s in builtin.builtin_specs()}[name].load(NO_FILES)


def pixel_z_scores(binary: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z-scores of the per-pixel means of ``binary`` (N, ...) against the Bernoulli expectation:
    E[mean] = mean(p), Var[mean] = sum p(1-p) / N^2 (independent draws given p); and the
    expected number of ones' variance sum p(1-p) per pixel (where a normal approximation is fair)."""
    n = len(p)
    variance = (p * (1 - p)).sum(0)
    z = (binary.double().mean(0) - p.mean(0)) * n / variance.sqrt()
    return z, variance


def check_bernoulli(binary: torch.Tensor, p: torch.Tensor) -> None:
    z, variance = pixel_z_scores(binary, p)
    certain = variance == 0  # p is 0 (or 1) for every example: the draw is certain
    assert torch.equal(binary.double().mean(0)[certain], p.mean(0)[certain])
    normal = variance >= 5
    assert normal.sum() >= 10
    assert z[normal].abs().max() < 4, z[normal]
    # All uncertain pixels together: sum z^2 ~ chi-square (pixels are drawn independently).
    zz = z[~certain]
    pvalue = stats.chi2.sf(float((zz ** 2).sum()), df=zz.numel())
    assert pvalue > 1e-3, f"per-pixel means disagree with the Bernoulli expectation (chi-square p={pvalue:.2g})"


# --- binarized-digits -------------------------------------------------------------------------


def test_binarized_digits_values_shape_labels_and_splits():
    ds, ref = load("binarized-digits"), load("digits")
    assert (ds.name, ds.kind, ds.levels, ds.num_classes, ds.shape) == (
        "binarized-digits", DataKind.BINARY, 2, 10, (1, 8, 8))
    assert ds.feature_extractor == "digits-classifier" and ds.true_log_prob is None and ds.modes is None
    assert "Bernoulli(x/16)" in ds.source and str(digits.BINARIZE_SEED) in ds.source
    assert [len(s) for s in (ds.train, ds.valid, ds.test)] == [1258, 179, 360]
    for split in SPLITS:
        b, d = getattr(ds, split), getattr(ref, split)
        assert b.x.dtype == torch.float32 and b.x.shape == d.x.shape
        assert bool(((b.x == 0) | (b.x == 1)).all())
        assert torch.equal(b.y, d.y)
        # The certain cases pixel by pixel: level 0 never inks, level 16 always does.
        assert bool((b.x[d.x == 0] == 0).all()) and bool((b.x[d.x == 16] == 1).all())
    info = ds.info()
    assert info.num_dims == 64 and info.label_counts == ref.info().label_counts


@pytest.mark.parametrize("split", SPLITS)
def test_binarized_digits_pixel_means_match_the_bernoulli_expectation(split):
    check_bernoulli(getattr(load("binarized-digits"), split).x, getattr(load("digits"), split).x.double() / 16)


def test_binarized_digits_follow_the_documented_rule():
    from sklearn.datasets import load_digits

    ref = load_digits()
    ds = load("binarized-digits")
    for s, (split, idx) in enumerate(zip(SPLITS, digits.split_indices(ref.target))):
        x = ref.images[idx].reshape(-1, 1, 8, 8).astype(np.float64)
        want = np.random.default_rng([digits.BINARIZE_SEED, s]).random(x.shape) < x / 16
        assert np.array_equal(getattr(ds, split).x.numpy(), want.astype(np.float32))


def test_binary_datasets_are_deterministic_with_their_own_checksums():
    for name, loader in (("binarized-digits", digits.load_binarized_digits),
                         ("tiny-binarized-digits", digits.load_tiny_binarized_digits)):
        a, b = load(name), loader()
        for sa, sb in zip((a.train, a.valid, a.test), (b.train, b.valid, b.test)):
            assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y)
        assert a.checksum == b.checksum
    sums = {name: load(name).checksum for name in ("digits", "binarized-digits", "tiny-binarized-digits")}
    assert len(set(sums.values())) == 3
    b = load("binarized-digits")
    assert sums["binarized-digits"] == base.tensor_checksum(
        b.train.x, b.train.y, b.valid.x, b.valid.y, b.test.x, b.test.y, salt=digits.BINARIZE_RULE)
    assert "< x / 16" in digits.BINARIZE_RULE and "< m / 16" in digits.TINY_BINARIZE_RULE
    assert digits.SPLIT_RULE in digits.BINARIZE_RULE and digits.SPLIT_RULE in digits.TINY_BINARIZE_RULE
    # Pinned: these identify the data behind every recorded result; changing them must be deliberate.
    assert sums["binarized-digits"] == "307b398fb4f96d2942366e275223ace6ab42063dc8ea5e56f4bc517ad0244b7c"
    assert sums["tiny-binarized-digits"] == "2cdf48ed23fdd1f2518e893ad8385c55708982db21d6447b0b106a68f2686f6c"


# --- tiny-binarized-digits --------------------------------------------------------------------


def test_tiny_binarized_digits_shape_state_space_and_labels():
    ds, ref = load("tiny-binarized-digits"), load("digits")
    assert (ds.kind, ds.levels, ds.num_classes, ds.shape) == (DataKind.BINARY, 2, 10, (1, 4, 4))
    assert ds.feature_extractor is None and "4x4" in ds.source and str(digits.TINY_BINARIZE_SEED) in ds.source
    info = ds.info()
    assert info.num_dims == 16 and ds.levels ** info.num_dims == 2 ** 16 == 65_536
    for split in SPLITS:
        t, d = getattr(ds, split), getattr(ref, split)
        assert t.x.dtype == torch.float32 and t.x.shape == (len(d), 1, 4, 4)
        assert bool(((t.x == 0) | (t.x == 1)).all()) and torch.equal(t.y, d.y)
    # Every training image is one of the 2^16 states: its index is in range and most states are unseen.
    codes = (ds.train.x.reshape(len(ds.train), 16).long() * (2 ** torch.arange(16))).sum(1)
    assert int(codes.min()) >= 0 and int(codes.max()) < 2 ** 16 and len(codes.unique()) < 1258


@pytest.mark.parametrize("split", SPLITS)
def test_tiny_binarized_digits_pooled_means_match(split):
    d = getattr(load("digits"), split).x.double()
    p = F.avg_pool2d(d, kernel_size=2) / 16  # independent reference for the 2x2 pooling
    assert np.allclose(digits.pool2x2(d.numpy()), F.avg_pool2d(d, 2).numpy())
    t = getattr(load("tiny-binarized-digits"), split).x
    check_bernoulli(t, p)
    assert bool((t[p == 0] == 0).all()) and bool((t[p == 1] == 1).all())


# --- the domain classifier on binarized digits ------------------------------------------------


def test_digits_classifier_reads_binarized_digits(evalgen_cache):
    """Sample quality maps 2-level values to uint8 0/255 and feeds them to the classifier trained
    on the 17-level digits; it must still recognise most binarized test digits."""
    from evalgen.metrics.extractors import classifier_accuracy, ensure_extractor, to_uint8

    ds = load("binarized-digits")
    assert set(to_uint8(ds.test.x, ds.levels).unique().tolist()) == {0, 255}
    weights = ensure_extractor(ds.feature_extractor, dataset=ds, cache_dir=evalgen_cache)
    assert weights.dataset == "digits"  # trained on the 17-level digits, not on the binarized copy
    blob = torch.load(weights.path, weights_only=True)
    assert classifier_accuracy(blob, ds) > 0.75  # ~0.84; the 17-level test set gives ~0.97


# --- a family's default dataset ---------------------------------------------------------------


class DefaultDataFamily(toy_plugins.ToyFamily):
    """A family of binary-only models that names its default dataset (the toy family's hooks)."""

    def __init__(self, name: str, default: str | None):
        super().__init__(name)
        self.default = default

    @hookimpl
    def evalgen_family(self):
        spec = ModelSpec("toy", "binary toy", data_kinds=frozenset({DataKind.BINARY}))
        return FamilyInfo(self.name, "binary-only toy family", (spec,), default_dataset=self.default)


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("fakebin", DefaultDataFamily("fakebin", "binarized-digits")),
                               ("fakebad", DefaultDataFamily("fakebad", "binarised-digits"))])


def test_family_default_dataset_is_planned_when_no_dataset_is_given(plugins):
    assert FamilyInfo("x", "y", ()).default_dataset is None
    assert default_dataset(plugins, "fakebin") == "binarized-digits"
    assert default_dataset(plugins, "baselines") == "digits"  # no default declared
    specs = plan_specs(plugins, "fakebin", [], None, "smoke", 2, {}, baseline=True)
    assert {s.dataset for s in specs} == {"binarized-digits"}
    assert [(s.plugin, s.model, s.seed) for s in specs] == [
        ("baselines", "categorical", 0), ("baselines", "categorical", 1), ("fakebin", "toy", 0), ("fakebin", "toy", 1)]
    assert {s.dataset for s in plan_specs(plugins, "baselines", [], None, "smoke", 1, {}, True)} == {"digits"}


def test_an_explicit_dataset_wins_over_the_family_default(plugins):
    specs = plan_specs(plugins, "fakebin", [], "tiny-binarized-digits", "smoke", 1, {}, baseline=False)
    assert [s.dataset for s in specs] == ["tiny-binarized-digits"]
    # Even when the family's default is broken: it is not consulted.
    specs = plan_specs(plugins, "fakebad", [], "binarized-digits", "smoke", 1, {}, baseline=False)
    assert [s.dataset for s in specs] == ["binarized-digits"]
    with pytest.raises(EvalgenError, match="no model of plugin 'fakebin' supports discrete data"):
        plan_specs(plugins, "fakebin", [], "digits", "smoke", 1, {}, baseline=False)


def test_an_unknown_default_dataset_is_a_one_line_error(plugins):
    for call in (lambda: default_dataset(plugins, "fakebad"),
                 lambda: plan_specs(plugins, "fakebad", [], None, "smoke", 1, {}, baseline=False)):
        with pytest.raises(EvalgenError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg
        for fragment in ("plugin 'fakebad'", "unknown dataset 'binarised-digits'",
                         "did you mean 'binarized-digits'", "--dataset"):
            assert fragment in msg, msg
    with pytest.raises(EvalgenError, match="unknown plugin 'fakebni'"):  # the plugin is checked first
        default_dataset(plugins, "fakebni")
