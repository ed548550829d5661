"""Outlier scores beyond raw likelihood: each formula against hand arithmetic, the compressor
against Pillow's own output, the perturbation against its rate, and the metric's record against
scikit-learn on scores computed here by hand."""

from __future__ import annotations

import io
import math
import struct
import zlib

import numpy as np
import pytest
import scipy.stats
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from evalgen import DataKind, Likelihood, MetricInputs, OutlierScore
from evalgen.errors import EvalgenError
from evalgen.harness.public_data import load_dataset
from evalgen.hookspecs import hookimpl
from evalgen.metrics.outlier_detection import outlier_detection
from evalgen.metrics.outlier_scores import (
    BUILTIN_SCORES,
    ScoreContext,
    ScoredSet,
    complexity_score,
    likelihood_ratio_score,
    likelihood_score,
    perturb,
    png_bits,
    typicality_score,
)
from evalgen.plugins import load_plugins

LOG_P = torch.tensor([-10.0, -20.0, -35.0], dtype=torch.float64)
BG_LOG_P = torch.tensor([-12.0, -15.0, -35.0], dtype=torch.float64)


def test_likelihood_typicality_and_ratio_are_the_published_formulas():
    examples = ScoredSet(torch.zeros(3, 1, 2, 2), LOG_P, BG_LOG_P)
    context = ScoreContext(num_dims=4, levels=256, typical_nll=22.0)
    assert likelihood_score(examples, context).tolist() == [2.5, 5.0, 8.75]
    # |NLL - Ĥ| / D = |10 - 22| / 4, |20 - 22| / 4, |35 - 22| / 4
    assert typicality_score(examples, context).tolist() == [3.0, 0.5, 3.25]
    # (log p_bg - log p) / D = (-12 + 10) / 4, (-15 + 20) / 4, 0
    assert likelihood_ratio_score(examples, context).tolist() == [-0.5, 1.25, 0.0]


def test_scores_say_what_they_lack():
    context = ScoreContext(num_dims=4, levels=256)
    with pytest.raises(EvalgenError, match="Ĥ"):
        typicality_score(ScoredSet(torch.zeros(3, 4), LOG_P), context)
    with pytest.raises(EvalgenError, match="background"):
        likelihood_ratio_score(ScoredSet(torch.zeros(3, 4), LOG_P), context)
    with pytest.raises(EvalgenError, match="log p"):
        likelihood_score(ScoredSet(torch.zeros(3, 4)), context)
    with pytest.raises(EvalgenError, match="does not provide"):
        OutlierScore("x", "AUROC x", "x", "x", frozenset({"gradients"}), likelihood_score)


def _pillow_file_size(array: np.ndarray, tmp_path, mode: str | None = None) -> int:
    path = tmp_path / "image.png"
    picture = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    picture.save(path, compress_level=9)
    return path.stat().st_size


def _png_header(data: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) of a PNG's IHDR chunk, read by hand."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]
    return width, height, depth, colour


def test_png_bits_is_eight_times_pillows_file_size(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(3, 1, 28, 28)).astype(np.float32)
    grey[0] = 0  # a blank image compresses far better than noise
    bits = png_bits(torch.from_numpy(grey), 256)
    for i in range(3):
        assert bits[i] == 8 * _pillow_file_size(grey[i, 0].astype(np.uint8), tmp_path)
    assert bits[0] < bits[1] / 10
    binary = rng.integers(0, 2, size=(2, 1, 28, 28)).astype(np.float32)
    bits = png_bits(torch.from_numpy(binary), 2)
    for i in range(2):
        assert bits[i] == 8 * _pillow_file_size((binary[i, 0] * 255).astype(np.uint8), tmp_path, mode="1")
    colour = rng.integers(0, 256, size=(1, 3, 5, 7)).astype(np.float32)
    assert png_bits(torch.from_numpy(colour), 256)[0] == 8 * _pillow_file_size(
        np.ascontiguousarray(colour[0].transpose(1, 2, 0)).astype(np.uint8), tmp_path)


def test_png_bits_writes_binary_images_at_one_bit_per_value(tmp_path):
    from evalgen.metrics import outlier_scores

    buffer = io.BytesIO()
    Image.fromarray(np.eye(28, dtype=bool)).save(buffer, format="PNG", compress_level=outlier_scores.PNG_COMPRESS_LEVEL)
    assert _png_header(buffer.getvalue()) == (28, 28, 1, 0)  # 1-bit greyscale, as png_bits writes it
    assert png_bits(torch.eye(28).reshape(1, 1, 28, 28), 2)[0] == 8 * len(buffer.getvalue())


@pytest.mark.parametrize("x, levels", [(torch.full((1, 1, 2, 2), 0.5), 256), (torch.full((1, 1, 2, 2), 2.0), 2),
                                       (torch.zeros(1, 2, 2, 2), 256), (torch.zeros(1, 4), 256),
                                       (torch.zeros(1, 1, 2, 2), 1000)])
def test_png_bits_rejects_what_it_cannot_compress(x, levels):
    with pytest.raises(EvalgenError):
        png_bits(x, levels)


def test_complexity_is_discrete_nll_bits_less_png_bits():
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, size=(3, 1, 4, 4)).astype(np.float32))
    lengths = png_bits(x, 256)
    # A density of dequantized values: -log p(y) + D log L is the discrete NLL (here D = 16).
    context = ScoreContext(num_dims=16, levels=256, offset_nats=16 * math.log(256))
    got = complexity_score(ScoredSet(x, LOG_P), context)
    for i in range(3):
        nll_bits = (-float(LOG_P[i]) + 16 * math.log(256)) / math.log(2)
        assert math.isclose(float(got[i]), (nll_bits - float(lengths[i])) / 16, rel_tol=1e-12)


def test_perturb_replaces_values_at_its_rate_uniformly_and_deterministically():
    levels, rate = 4, 0.2
    x = torch.zeros(400, 1, 10, 10)
    y = perturb(x, levels, rate, torch.Generator().manual_seed(0))
    assert torch.equal(y, perturb(x, levels, rate, torch.Generator().manual_seed(0)))
    assert not torch.equal(y, perturb(x, levels, rate, torch.Generator().manual_seed(1)))
    changed = int((y != 0).sum())
    # A value changes when it is replaced (rate) by a different one (1 - 1/levels): binomial.
    assert scipy.stats.binomtest(changed, x.numel(), rate * (1 - 1 / levels)).pvalue > 1e-3
    counts = np.bincount(y[y != 0].long().numpy(), minlength=levels)[1:]
    assert scipy.stats.chisquare(counts).pvalue > 1e-3  # the replacements are uniform
    assert torch.equal(perturb(x, levels, 0.0, torch.Generator()), x)
    with pytest.raises(EvalgenError, match="mutation rate"):
        perturb(x, levels, 1.5, torch.Generator())


# --- the metric's record, against scores computed here --------------------------------------


class _PixelCategorical:
    """Independent categoricals per pixel, fitted by counting (add-one): log p(x) in closed form."""

    def __init__(self, x: torch.Tensor, levels: int) -> None:
        flat = x.flatten(1).long()
        counts = torch.stack([(flat == v).sum(0) for v in range(levels)], dim=1).double() + 1
        self.log_theta = (counts / counts.sum(1, keepdim=True)).log()  # (D, levels)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1).long()
        return self.log_theta[torch.arange(flat.shape[1]), flat].sum(1)  # (N,)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _inputs(dataset, log_prob, background_log_prob=None, background=None) -> MetricInputs:
    budget = load_plugins().budgets.get("smoke")
    n = budget.outlier_examples
    test_log_prob = log_prob(dataset.test.x[:n]) if log_prob else None
    return MetricInputs(
        dataset=dataset, info=dataset.info(), likelihood=Likelihood(), samples=None, test_log_prob=None,
        outlier_score=(lambda x: -log_prob(x) / 64) if log_prob else (lambda x: x.flatten(1).mean(1)),
        test_outlier_scores=(-test_log_prob / 64) if log_prob else dataset.test.x[:n].flatten(1).mean(1),
        outlier_score_label="-log p(x) / D" if log_prob else "the family's own",
        load_dataset=load_dataset, budget=budget, seed=0, device=torch.device("cpu"),
        outlier_log_prob=log_prob, test_outlier_log_prob=test_log_prob, outlier_score_is_likelihood=bool(log_prob),
        background_log_prob=background_log_prob, background=background)


def test_every_score_is_recorded_per_set_as_sklearn_ranks_the_hand_computed_scores(digits):
    model = _PixelCategorical(digits.train.x, 17)
    background = _PixelCategorical(perturb(digits.train.x, 17, 0.2, torch.Generator().manual_seed(0)), 17)
    section = outlier_detection(_inputs(digits, model, background, {"mutation_rate": 0.2}))
    n = section["sets"][section["headline"]]["num_in"]
    inside = digits.test.x[:n]
    typical = float(-model(digits.valid.x[:n]).mean())
    assert math.isclose(section["typical_nll"]["nats"], typical, rel_tol=1e-12)
    by_hand = {
        "likelihood": lambda x: -model(x) / 64,
        "typicality": lambda x: (-model(x) - typical).abs() / 64,
        "likelihood_ratio": lambda x: (background(x) - model(x)) / 64,
        "complexity": lambda x: (-model(x) / math.log(2) - png_bits(x, 17)) / 64,
    }
    assert set(section["scores"]) == set(by_hand) == {score.name for score in BUILTIN_SCORES}
    synthetic = _synthetic_sets(section)
    for name, score in by_hand.items():
        recorded = section["scores"][name]
        assert recorded["label"] and recorded["summary"]
        for set_name, x in synthetic.items():
            s_in, s_out = score(inside).numpy(), score(x).numpy()
            expected = roc_auc_score(np.r_[np.zeros(len(s_in)), np.ones(len(s_out))], np.r_[s_in, s_out])
            assert math.isclose(recorded["sets"][set_name]["auroc"], expected, abs_tol=1e-12), (name, set_name)
    assert section["sets"] == section["scores"]["likelihood"]["sets"]  # the headline, computed once
    assert section["background"] == {"mutation_rate": 0.2}


def _synthetic_sets(section) -> dict[str, torch.Tensor]:
    from evalgen.metrics.outlier_detection import OUTLIER_SEED
    from evalgen.metrics.outliers import synthetic_outliers

    n = section["sets"][section["headline"]]["num_out"]
    sets = synthetic_outliers((1, 8, 8), 17, n, torch.Generator().manual_seed(OUTLIER_SEED))
    assert set(sets) == set(section["sets"])
    return sets


def test_scores_a_model_cannot_have_are_skipped_with_the_reason(digits):
    model = _PixelCategorical(digits.train.x, 17)
    section = outlier_detection(_inputs(digits, model, None, {"skipped": "the budget trains nothing"}))
    assert section["scores"]["likelihood_ratio"] == {
        "skipped": "needs a background model: the budget trains nothing"}
    assert "sets" in section["scores"]["typicality"] and "sets" in section["scores"]["complexity"]
    implicit = outlier_detection(_inputs(digits, None))
    assert all("log p(x)" in implicit["scores"][score.name]["skipped"] for score in BUILTIN_SCORES)
    assert "typical_nll" not in implicit and set(implicit["sets"]) == set(section["sets"])
    toy = load_dataset("eight-gaussians")
    reason = _skip_reason_of("complexity", toy)
    assert reason and "images" in reason


def _skip_reason_of(name: str, dataset) -> str | None:
    from evalgen.metrics.outlier_detection import _skip_reason

    score = next(score for score in BUILTIN_SCORES if score.name == name)
    inputs = _inputs(dataset, lambda x: -x.flatten(1).square().sum(1))
    return _skip_reason(score, inputs)


class _DuplicateScore:
    @hookimpl
    def evalgen_register_outlier_scores(self, register):
        register(OutlierScore("typicality", "AUROC mine", "mine", "mine", frozenset({"log_prob"}), likelihood_score))


def test_a_score_name_registered_twice_is_reported_not_fatal():
    plugins = load_plugins(extra=[("dupscore", _DuplicateScore())])
    failures = {failure.name: failure for failure in plugins.failures}
    assert "dupscore" in failures and "typicality" in str(failures["dupscore"])
    assert plugins.outlier_scores.get("typicality") is next(s for s in BUILTIN_SCORES if s.name == "typicality")
    assert DataKind  # the public names plugin authors use are importable from evalgen
