"""Mode coverage against independent references: closed forms, scipy, hand-placed points."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import toy_plugins
from scipy import stats
from scipy.spatial.distance import cdist

from evalgen import Budget, Likelihood, LikelihoodKind, MetricInputs, ModeSet
from evalgen.datasets.base import LoadContext
from evalgen.datasets.toys import TOYS, load_toy
from evalgen.harness.runner import RunContext, run_one
from evalgen.harness.spec import RunSpec
from evalgen.metrics.extractors import build_classifier, ensure_extractor, to_uint8
from evalgen.metrics.modes import (
    HIGH_QUALITY_SIGMAS,
    MIN_COUNT,
    assign_to_modes,
    coverage_from_counts,
    kl_divergence,
    mode_coverage,
)
from evalgen.plugins import load_plugins
from evalgen.record_types import RunRecord
from evalgen.records import read_record
from evalgen.tables import comparison, write_tables

#: P(chi-square with 2 dof <= 9): a 2-D isotropic Gaussian sample lies within 3 sigma of its mean.
P_WITHIN_3_SIGMA = stats.chi2.cdf(HIGH_QUALITY_SIGMAS**2, 2)


@pytest.fixture(scope="module")
def eight():
    return load_toy("eight-gaussians")


@pytest.fixture(scope="module")
def digits():
    return load_plugins().datasets.get("digits").load(None)


@pytest.fixture(scope="module")
def digits_weights(digits, evalgen_cache):
    return ensure_extractor("digits-classifier", dataset=digits, cache_dir=evalgen_cache)


def test_constants_and_the_closed_form():
    assert (HIGH_QUALITY_SIGMAS, MIN_COUNT) == (3, 1)
    assert P_WITHIN_3_SIGMA == pytest.approx(1 - math.exp(-4.5), rel=1e-12)


def test_only_the_gaussian_mixtures_carry_modes():
    for name, toy in TOYS.items():
        modes = load_toy(name).modes
        if name in ("eight-gaussians", "grid-gaussians"):
            assert isinstance(modes, ModeSet) and modes.centers.dtype == np.float64
            assert np.array_equal(modes.centers, toy.density.centers) and modes.std == toy.density.std
            assert np.allclose(modes.weights, 1 / len(modes.centers))
            assert not modes.centers.flags.writeable
        else:
            assert modes is None, name


@pytest.mark.parametrize("name", ["eight-gaussians", "grid-gaussians"])
def test_samples_of_the_mixture_itself_cover_every_mode(name):
    density, n = TOYS[name].density, 20_000
    samples = torch.from_numpy(density.sample(n, np.random.default_rng(12345)))
    result = mode_coverage(samples, load_toy(name))
    k = len(density.centers)
    assert (result["modes_covered"], result["num_modes"], result["num_samples"]) == (k, k, n)
    sem = math.sqrt(P_WITHIN_3_SIGMA * (1 - P_WITHIN_3_SIGMA) / n)
    assert abs(result["high_quality"] - P_WITHIN_3_SIGMA) < 4 * sem, result
    assert sum(result["counts"]) == round(result["high_quality"] * n)
    # 2 N KL(q || p) of a multinomial histogram is asymptotically chi-square with K-1 dof (Wilks).
    assert 0 <= result["mode_kl"] < stats.chi2.ppf(1 - 1e-6, k - 1) / (2 * sum(result["counts"]))
    assert result["reference"] == "mixture weights" and result["min_count"] == 1
    json.dumps(result, allow_nan=False)


def test_all_samples_on_one_centre(eight):
    samples = torch.from_numpy(np.repeat(eight.modes.centers[3:4], 100, axis=0))
    result = mode_coverage(samples, eight)
    assert (result["modes_covered"], result["num_modes"], result["high_quality"]) == (1, 8, 1.0)
    q = np.eye(8)[3]
    assert result["mode_kl"] == pytest.approx(stats.entropy(q, eight.modes.weights), rel=1e-12)
    assert result["mode_kl"] == pytest.approx(math.log(8), rel=1e-12)
    assert result["counts"] == [0, 0, 0, 100, 0, 0, 0, 0]
    assert result["assignment"] == "nearest of 8 mixture centres, high quality within 3 sigma = 0.6"


CENTERS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
STD = 0.5  # 3 sigma = 1.5, exactly representable
POINTS = np.array([
    [1.5, 0.0],                        # exactly 3 sigma from mode 0: high quality
    [0.0, -1.5],                       # the same, another direction
    [np.nextafter(1.5, 2.0), 0.0],     # just outside 3 sigma of mode 0
    [10.0, 1.4],                       # mode 1, inside
    [5.0, 0.0],                        # equidistant from modes 0 and 1: the lower index, far
    [4.0, 6.0],                        # nearest is mode 2 (5.66 < 7.21 < 8.49), far
    [0.3, 9.0],                        # mode 2, inside (1.04)
    [np.nan, 0.0],                     # not a point: no mode, never high quality
])


def test_hand_placed_points_pin_the_3_sigma_rule_and_the_nearest_mode():
    index, high_quality = assign_to_modes(POINTS, CENTERS, STD)
    assert index.tolist() == [0, 0, 0, 1, 0, 2, 2, -1]
    assert high_quality.tolist() == [True, True, False, True, False, False, True, False]
    finite = np.isfinite(POINTS).all(1)
    distances = cdist(POINTS[finite], CENTERS)  # scipy as the independent reference
    assert index[finite].tolist() == distances.argmin(1).tolist()
    assert high_quality[finite].tolist() == (distances.min(1) <= 3 * STD).tolist()


def test_hand_placed_points_through_the_entry_point(eight):
    weights = np.array([0.25, 0.25, 0.5])
    dataset = dataclasses.replace(eight, modes=ModeSet(CENTERS, STD, weights))
    result = mode_coverage(torch.from_numpy(POINTS), dataset)
    assert result["counts"] == [2, 1, 1] and result["modes_covered"] == 3 and result["num_modes"] == 3
    assert result["high_quality"] == 4 / 8
    assert result["mode_kl"] == pytest.approx(stats.entropy([2, 1, 1], weights), rel=1e-12)
    without_mode_2 = mode_coverage(torch.from_numpy(np.delete(POINTS, 6, axis=0)), dataset)
    assert without_mode_2["modes_covered"] == 2 and without_mode_2["counts"] == [2, 1, 0]
    far = mode_coverage(torch.full((5, 2), 100.0), dataset)
    assert (far["modes_covered"], far["high_quality"], far["mode_kl"]) == (0, 0.0, None)


def test_kl_and_coverage_of_a_random_histogram_with_zeros():
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 50, size=12)
    counts[[1, 4, 9]] = 0
    p = rng.dirichlet(np.ones(12))
    result = coverage_from_counts(counts, p)
    assert result["mode_kl"] == pytest.approx(stats.entropy(counts, p), rel=1e-12)
    assert result["modes_covered"] == np.count_nonzero(counts) and result["num_modes"] == 12
    assert coverage_from_counts(counts, p, min_count=30)["modes_covered"] == np.sum(counts >= 30)
    assert coverage_from_counts(np.zeros(12, int), p) == {"modes_covered": 0, "num_modes": 12, "mode_kl": None,
                                                        "counts": [0] * 12}
    p_with_zero = np.append(p[:-1] + p[-1] / 11, 0.0)
    counts[-1] = 3
    assert kl_divergence(counts / counts.sum(), p_with_zero) == stats.entropy(counts, p_with_zero) == math.inf


def test_test_images_cover_every_digit(digits, digits_weights, evalgen_cache):
    result = mode_coverage(digits.test.x, digits, cache_dir=evalgen_cache)
    assert (result["modes_covered"], result["num_modes"]) == (10, 10)
    assert result["high_quality"] is None and result["num_samples"] == len(digits.test)
    assert 0 <= result["mode_kl"] < 0.01
    assert result["reference"] == "class frequencies of the test split"
    assert result["assignment"] == f"argmax of digits-classifier (weights sha256 {digits_weights.sha256})"
    json.dumps(result, allow_nan=False)


def test_only_threes_cover_one_digit(digits, digits_weights, evalgen_cache):
    threes = digits.test.x[digits.test.y == 3]
    result = mode_coverage(threes, digits, cache_dir=evalgen_cache)
    # The expected histogram from the classifier's own forward pass (not the torch-fidelity wrapper).
    model = build_classifier(torch.load(digits_weights.path, weights_only=True))
    with torch.no_grad():
        predicted = model(to_uint8(threes, digits.levels).double() / 255)[0].argmax(1)
    counts = np.bincount(predicted.numpy(), minlength=10)
    p = np.bincount(digits.test.y.numpy(), minlength=10) / len(digits.test)
    assert result["counts"] == counts.tolist()
    assert counts[3] >= 0.9 * len(threes)  # the classifier is ~97% accurate
    assert result["modes_covered"] == np.count_nonzero(counts)
    assert result["mode_kl"] == pytest.approx(stats.entropy(counts, p), rel=1e-9)
    if counts[3] == len(threes):
        assert result["modes_covered"] == 1 and result["mode_kl"] == pytest.approx(-math.log(p[3]), rel=1e-9)


def _inputs(dataset, cache_dir) -> MetricInputs:
    budget = Budget("unit", "for tests", max_flops=None, clock_cap_seconds=1,
                    max_steps=1, max_examples=None, batch_size=1,
                    eval_every=1, patience=1, num_samples=10)
    return MetricInputs(dataset=dataset, info=dataset.info(), likelihood=Likelihood(LikelihoodKind.NONE, "none"),
                        samples=dataset.test.x[:10], test_log_prob=None, outlier_score=None,
                        test_outlier_scores=None, outlier_score_label="", load_dataset=load_plugins().datasets.get,
                        budget=budget, seed=0, device=torch.device("cpu"), cache_dir=cache_dir)


def test_registry_applies_to_mixtures_and_labelled_images_and_says_why_not(eight, digits, digits_weights,
                                                                           evalgen_cache):
    spec = load_plugins().metrics.get("mode_coverage")
    assert dict(spec.higher_is_better) == {"modes_covered": True, "high_quality": True, "mode_kl": False}
    reason = spec.skip_reason(_inputs(load_toy("checkerboard"), evalgen_cache))
    assert reason == "dataset 'checkerboard' has neither mixture modes nor class labels"
    assert spec.skip_reason(_inputs(eight, evalgen_cache)) is None
    assert spec.skip_reason(_inputs(digits, evalgen_cache)) is None
    assert spec.compute(_inputs(digits, evalgen_cache))["num_samples"] == 10
    inception = dataclasses.replace(digits, feature_extractor="inception-v3-compat")
    assert "is not a domain classifier" in spec.skip_reason(_inputs(inception, evalgen_cache))
    unlabelled = dataclasses.replace(digits, num_classes=None)
    assert "neither mixture modes nor class labels" in spec.skip_reason(_inputs(unlabelled, evalgen_cache))
    five = dataclasses.replace(digits, num_classes=5)  # same name and checksum: the cached 10-class weights
    assert spec.skip_reason(_inputs(five, evalgen_cache)) == (
        "domain classifier 'digits-classifier' has 10 classes, dataset 'digits' has 5")


def test_every_run_records_mode_coverage(tmp_path):
    plugins = load_plugins(extra=[("unit", toy_plugins.UnitBudget())])
    ctx = RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path, False))
    record, samples = run_one(RunSpec("baselines", "gaussian", "eight-gaussians", "unit", 0), ctx)
    found = record.metrics["mode_coverage"]
    assert found["num_modes"] == 8 and found["num_samples"] == len(samples)
    assert found["counts"] == mode_coverage(samples, load_toy("eight-gaussians"))["counts"]
    summary, _ = comparison([record])
    assert summary.loc[0, "modes_covered_mean"] == found["modes_covered"]


#: A real record, which `_record` turns into the rows these tests need.
BASE_RECORD = Path(__file__).resolve().parents[1] / (
    "leaderboards/cpu-quick/runs/digits/records/baselines--categorical--digits--quick--seed0.json")


def _record(model: str, seed: int, likelihood: str, nats: float | None, coverage: dict | None,
            dataset: str = "eight-gaussians") -> RunRecord:
    metrics = {"mode_coverage": coverage if coverage is not None else {"skipped": "not here"}}
    if nats is not None:
        metrics["test_nll"] = {"nats": nats, "bits_per_dim": None}
    base = read_record(BASE_RECORD)
    plugin, name = model.split(":")
    return dataclasses.replace(
        base, spec=RunSpec(plugin, name, dataset, "smoke", seed), metrics=metrics,
        model=dataclasses.replace(base.model, likelihood=likelihood, likelihood_kind=LikelihoodKind(likelihood),
                                  parameters=10),
        training=dataclasses.replace(base.training, seconds=1.0, steps=100, diverged_at_step=None))


def _coverage(covered: int, high_quality: float | None, kl: float, num_modes: int = 8) -> dict:
    return {"modes_covered": covered, "num_modes": num_modes, "high_quality": high_quality, "mode_kl": kl}


def test_table_shows_modes_quality_and_implicit_models(tmp_path):
    kls = [0.001, 0.2, 0.003]
    records = [_record("flows:realnvp", seed, "exact", 2.0 + seed, _coverage(c, hq, kl))
               for seed, (c, hq, kl) in enumerate(zip([8, 7, 8], [0.98, 0.97, 0.99], kls))]
    records.append(_record("gans:gan", 0, "none", None, _coverage(2, 0.5, 1.2)))
    summary, shown = comparison(records)
    shown = shown.set_index("model")
    assert shown.loc["flows:realnvp", "modes ↑"] == "7.7 ± 0.6 (n=3) /8"
    assert shown.loc["flows:realnvp", "HQ % ↑"] == "98.0 ± 1.0 (n=3)"
    assert shown.loc["flows:realnvp", "mode KL ↓"] == f"{np.mean(kls):.3f} ± {np.std(kls, ddof=1):.3f} (n=3)"
    assert shown.loc["gans:gan", ["modes ↑", "HQ % ↑", "mode KL ↓"]].tolist() == ["2/8", "50.0", "1.200"]
    assert shown.loc["gans:gan", "test NLL (nats) ↓"] == "n/a (implicit model)"
    assert summary.set_index("model").loc["realnvp", "modes_covered_n"] == 3
    text, paths = write_tables(records, tmp_path)
    assert "n/a (implicit model)" in paths[0].read_text() and "modes ↑" in text


def test_mode_columns_only_where_some_row_has_them():
    digits = [_record("vae:vae", 0, "exact", 100.0, _coverage(10, None, 0.004, num_modes=10), dataset="digits")]
    shown = comparison(digits)[1]
    assert shown.loc[0, "modes ↑"] == "10/10" and shown.loc[0, "mode KL ↓"] == "0.004"
    assert "HQ % ↑" not in shown.columns
    skipped = comparison([_record("flows:maf", 0, "exact", 2.0, None)])[1]
    assert not {"modes ↑", "HQ % ↑", "mode KL ↓"} & set(skipped.columns)
