"""Outlier-detection metrics against scikit-learn and brute force; synthetic outlier images."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from evalgen.datasets.builtin import builtin_specs
from evalgen.errors import EvalgenError
from evalgen.metrics.outliers import (
    OOD_PAIRS,
    SYNTHETIC_OUTLIER_KINDS,
    detection_metrics,
    outlier_score_default,
    synthetic_outliers,
)


def brute_force_fpr_at_95_tpr(s_in: np.ndarray, s_out: np.ndarray) -> float:
    """Flag 'outlier' when score >= t; among every t that flags >= 95 % of the outliers, the
    smallest fraction of in-distribution examples flagged."""
    best = 1.0
    for t in np.concatenate([s_in, s_out, [np.inf]]):
        tpr = np.mean(s_out >= t)
        if tpr >= 0.95:
            best = min(best, float(np.mean(s_in >= t)))
    return best


def sklearn_reference(s_in, s_out):
    labels = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    scores = np.r_[s_in, s_out]
    return roc_auc_score(labels, scores), average_precision_score(labels, scores)


def test_hand_made_scores_match_sklearn_and_brute_force():
    s_in = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.55, 0.3])
    s_out = np.array([0.9, 0.4, 0.7, 0.65, 0.3, 0.95, 0.85, 0.6])
    m = detection_metrics(torch.tensor(s_in), torch.tensor(s_out))
    auroc, aupr = sklearn_reference(s_in, s_out)
    assert m["auroc"] == pytest.approx(auroc, abs=1e-12)
    assert m["aupr"] == pytest.approx(aupr, abs=1e-12)
    assert m["fpr_at_95_tpr"] == pytest.approx(brute_force_fpr_at_95_tpr(s_in, s_out), abs=1e-12)
    assert (m["num_in"], m["num_out"]) == (7, 8)
    # Hand count of AUROC: pairs (out > in) + 0.5 ties, over 7 * 8 = 56 pairs.
    wins = sum((o > i) + 0.5 * (o == i) for o in s_out for i in s_in)
    assert m["auroc"] == pytest.approx(wins / 56)


@pytest.mark.parametrize("seed", range(5))
def test_random_scores_with_ties_match_sklearn_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    s_in = rng.integers(0, 30, size=rng.integers(20, 200)).astype(float)  # ties on purpose
    s_out = rng.integers(5, 40, size=rng.integers(20, 200)).astype(float)
    m = detection_metrics(s_in, s_out)
    auroc, aupr = sklearn_reference(s_in, s_out)
    assert m["auroc"] == pytest.approx(auroc, abs=1e-12)
    assert m["aupr"] == pytest.approx(aupr, abs=1e-12)
    assert m["fpr_at_95_tpr"] == pytest.approx(brute_force_fpr_at_95_tpr(s_in, s_out), abs=1e-12)


def test_perfect_chance_and_reversed():
    perfect = detection_metrics(np.arange(100.0), np.arange(100.0) + 1000)
    assert perfect["auroc"] == 1.0 and perfect["aupr"] == 1.0 and perfect["fpr_at_95_tpr"] == 0.0

    reversed_ = detection_metrics(np.arange(100.0) + 1000, np.arange(100.0))
    assert reversed_["auroc"] == 0.0 and reversed_["fpr_at_95_tpr"] == 1.0

    gen = torch.Generator().manual_seed(0)
    same = detection_metrics(torch.randn(20000, generator=gen), torch.randn(20000, generator=gen))
    assert same["auroc"] == pytest.approx(0.5, abs=0.01)
    assert same["aupr"] == pytest.approx(0.5, abs=0.01)
    assert same["fpr_at_95_tpr"] == pytest.approx(0.95, abs=0.01)

    identical = detection_metrics(np.zeros(10), np.zeros(10))  # all tied: chance exactly
    assert identical["auroc"] == 0.5


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_scores_are_rejected_in_one_line(bad):
    for args in (([0.0, bad], [1.0, 2.0]), ([0.0, 1.0], [bad, 2.0])):
        with pytest.raises(EvalgenError) as info:
            detection_metrics(torch.tensor(args[0]), torch.tensor(args[1]))
        assert "\n" not in str(info.value) and "non-finite" in str(info.value)


def test_bad_shapes_are_rejected():
    with pytest.raises(EvalgenError, match="1-D"):
        detection_metrics(np.zeros((2, 2)), np.zeros(3))
    with pytest.raises(EvalgenError, match="empty"):
        detection_metrics(np.zeros(0), np.zeros(3))


def test_default_score_is_nll_per_dim_and_dequantization_offset_cancels():
    log_prob = torch.tensor([-100.0, -200.0, -50.0])
    assert torch.allclose(outlier_score_default(log_prob, 50), torch.tensor([2.0, 4.0, 1.0], dtype=torch.float64))
    gen = torch.Generator().manual_seed(1)
    lp_in, lp_out = -torch.rand(50, generator=gen) * 100, -torch.rand(40, generator=gen) * 120
    d, offset = 64, 64 * math.log(17)
    plain = detection_metrics(outlier_score_default(lp_in, d), outlier_score_default(lp_out, d))
    shifted = detection_metrics(outlier_score_default(lp_in - offset, d), outlier_score_default(lp_out - offset, d))
    for key in ("auroc", "aupr", "fpr_at_95_tpr"):
        assert plain[key] == pytest.approx(shifted[key], abs=1e-12)
    with pytest.raises(EvalgenError):
        outlier_score_default(log_prob, 0)


@pytest.mark.parametrize("shape,levels", [((1, 28, 28), 256), ((1, 8, 8), 17), ((28, 28), 2), ((3, 5, 7), 256)])
def test_synthetic_outliers_are_valid_stored_images(shape, levels):
    num = 64
    out = synthetic_outliers(shape, levels, num, torch.Generator().manual_seed(0))
    assert set(out) == set(SYNTHETIC_OUTLIER_KINDS) >= {"uniform-noise", "constant"}
    for kind, x in out.items():
        assert x.shape == (num, *shape), kind
        assert x.dtype == torch.float32, kind
        assert torch.equal(x, x.round()), kind
        assert x.min() >= 0 and x.max() <= levels - 1, kind
    flat = {k: v.reshape(num, -1) for k, v in out.items()}
    # constant: one level per image, several different levels across images
    assert (flat["constant"] == flat["constant"][:, :1]).all()
    assert flat["constant"][:, 0].unique().numel() > 1
    # salt-and-pepper: only the extreme levels, both present
    assert set(flat["salt-and-pepper"].unique().tolist()) == {0.0, levels - 1.0}
    # uniform noise covers the range (mean near the middle level)
    assert flat["uniform-noise"].mean().item() == pytest.approx((levels - 1) / 2, rel=0.05)
    # smooth noise: neighbouring pixels closer than in uniform noise, images not constant
    def neighbour_gap(x):
        return (x[..., 1:] - x[..., :-1]).abs().mean().item()
    assert neighbour_gap(out["smooth-noise"]) < 0.5 * neighbour_gap(out["uniform-noise"])
    assert (flat["smooth-noise"].std(dim=1) > 0).all()


def test_synthetic_outliers_are_deterministic_given_the_generator():
    a = synthetic_outliers((1, 8, 8), 17, 10, torch.Generator().manual_seed(123))
    b = synthetic_outliers((1, 8, 8), 17, 10, torch.Generator().manual_seed(123))
    c = synthetic_outliers((1, 8, 8), 17, 10, torch.Generator().manual_seed(124))
    for kind in SYNTHETIC_OUTLIER_KINDS:
        assert torch.equal(a[kind], b[kind])
        assert not torch.equal(a[kind], c[kind])
    # a kind's images do not depend on which other kinds were asked for
    only = synthetic_outliers((1, 8, 8), 17, 10, torch.Generator().manual_seed(123), kinds=["smooth-noise"])
    assert list(only) == ["smooth-noise"] and torch.equal(only["smooth-noise"], a["smooth-noise"])


def test_synthetic_outliers_reject_bad_arguments():
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(EvalgenError, match="shape"):
        synthetic_outliers((2,), 256, 3, gen)
    with pytest.raises(EvalgenError, match="levels"):
        synthetic_outliers((1, 8, 8), 1, 3, gen)
    with pytest.raises(EvalgenError, match="unknown synthetic outlier kind"):
        synthetic_outliers((1, 8, 8), 17, 3, gen, kinds=["inverted"])


def test_ood_pairs_name_registered_datasets():
    specs = {spec.name: spec for spec in builtin_specs()}
    names = set(specs)
    assert OOD_PAIRS["fashion-mnist"] == ["mnist"]
    assert OOD_PAIRS["mnist"] == ["fashion-mnist"]
    assert OOD_PAIRS["binarized-mnist"] == ["binarized-fashion-mnist"]
    assert OOD_PAIRS["binarized-fashion-mnist"] == ["binarized-mnist"]
    for in_name, out_names in OOD_PAIRS.items():
        assert in_name in names
        assert set(out_names) <= names and in_name not in out_names
        assert all(specs[o].kind is specs[in_name].kind for o in out_names)  # same values, same model
