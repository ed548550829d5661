"""Domain feature extractors: accuracy, determinism, caching, the torch-fidelity contract."""

from __future__ import annotations

import json

import pytest
import torch
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from evalgen.datasets.digits import load_digits
from evalgen.errors import EvalgenError
from evalgen.metrics import extractors
from evalgen.metrics.extractors import (
    DOMAIN_EXTRACTORS,
    EMBEDDING,
    LOGITS,
    DomainFeatureExtractor,
    ensure_extractor,
    extract_features,
    to_uint8,
)


def test_to_uint8_spreads_levels_over_0_255():
    assert to_uint8(torch.tensor([0.0, 8.0, 16.0]), 17).tolist() == [0, 128, 255]  # 127.5: half to even
    assert to_uint8(torch.tensor([0.0, 1.0]), 2).tolist() == [0, 255]
    x = torch.arange(256, dtype=torch.float32)
    assert torch.equal(to_uint8(x, 256), x.to(torch.uint8))
    assert to_uint8(torch.tensor([-3.0, 300.0]), 256).tolist() == [0, 255]
    with pytest.raises(EvalgenError):
        to_uint8(x, 1)


def test_digits_classifier_is_accurate_deterministic_and_cached(tmp_path):
    digits = load_digits()
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    first = ensure_extractor("digits-classifier", dataset=digits, cache_dir=tmp_path / "a")
    assert torch.equal(torch.rand(3), expected_draw)  # training leaves the caller's RNG alone
    second = ensure_extractor("digits-classifier", dataset=digits, cache_dir=tmp_path / "b")
    assert first.trained_now and second.trained_now
    assert first.sha256 == second.sha256  # same seed, same recipe: same bytes
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.test_accuracy >= 0.95, first
    print(f"digits-classifier: test accuracy {first.test_accuracy:.4f}, trained in {first.train_seconds:.1f} s")

    again = ensure_extractor("digits-classifier", dataset=digits, cache_dir=tmp_path / "a")
    assert not again.trained_now and again.sha256 == first.sha256 and again.path == first.path
    meta = json.loads(first.path.with_suffix(".json").read_text())
    assert meta["sha256"] == first.sha256 and meta["dataset_checksum"] == digits.checksum

    first.path.write_bytes(b"truncated")  # a corrupt entry is trained again, to the same bytes
    with pytest.warns(UserWarning, match="failed its check"):  # said in one line naming the file
        repaired = ensure_extractor("digits-classifier", dataset=digits, cache_dir=tmp_path / "a")
    assert repaired.trained_now and repaired.sha256 == first.sha256

    other_seed = ensure_extractor("digits-classifier", dataset=digits, cache_dir=tmp_path / "a", seed=1)
    assert other_seed.trained_now and other_seed.key != first.key and other_seed.sha256 != first.sha256


@pytest.mark.slow
def test_mnist_classifier_accuracy(mnist_weights):
    print(f"mnist-classifier: test accuracy {mnist_weights.test_accuracy:.4f}, "
          f"trained in {mnist_weights.train_seconds:.1f} s")
    assert mnist_weights.test_accuracy >= 0.99


@pytest.mark.long  # 100 s of training under the suite's load: CI runs it after the suite (.ci/run)
def test_fashion_mnist_classifier_accuracy(fashion_weights):
    print(f"fashion-mnist-classifier: test accuracy {fashion_weights.test_accuracy:.4f}, "
          f"trained in {fashion_weights.train_seconds:.1f} s")
    assert fashion_weights.test_accuracy >= 0.90


def test_registered_with_torch_fidelity_and_idempotent(monkeypatch):
    for name in DOMAIN_EXTRACTORS:
        assert FEATURE_EXTRACTORS_REGISTRY[name] is DomainFeatureExtractor
    extractors.register_with_torch_fidelity()  # again: no error
    foreign = type("Foreign", (DomainFeatureExtractor,), {})
    monkeypatch.setitem(FEATURE_EXTRACTORS_REGISTRY, "digits-classifier", foreign)
    with pytest.raises(EvalgenError, match="different feature extractor"):
        extractors.register_with_torch_fidelity()


def test_feature_extractor_contract():
    digits = load_digits()
    weights = ensure_extractor("digits-classifier", dataset=digits)  # the session cache
    images = to_uint8(digits.test.x, digits.levels)
    ext = DomainFeatureExtractor("digits-classifier", [EMBEDDING, LOGITS], feature_extractor_weights_path=weights.path)
    embedding, logits = ext(images[:10])
    assert embedding.shape == (10, 128) and logits.shape == (10, 10) and embedding.dtype == torch.float64
    grey3 = ext(images[:10].expand(-1, 3, -1, -1))  # grey repeated to RGB gives the same features
    assert torch.equal(grey3[0], embedding) and torch.equal(grey3[1], logits)
    accuracy = (ext(images)[1].argmax(1) == digits.test.y).double().mean().item()
    assert accuracy == pytest.approx(weights.test_accuracy)

    small = extract_features(images, weights, batch_size=7)  # features do not depend on the batch size
    large = extract_features(images, weights, batch_size=1000)
    for key in (LOGITS, EMBEDDING):
        torch.testing.assert_close(small[key], large[key], rtol=1e-12, atol=1e-12)

    with pytest.raises(ValueError, match="does not hold"):
        DomainFeatureExtractor("mnist-classifier", [LOGITS], feature_extractor_weights_path=weights.path)
    with pytest.raises(ValueError, match="needs feature_extractor_weights_path"):
        DomainFeatureExtractor("digits-classifier", [LOGITS])
    with pytest.raises(ValueError, match=r"takes uint8 images .B, C, 8, 8."):
        ext(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_unknown_extractor_is_one_line_error():
    with pytest.raises(EvalgenError, match="unknown domain feature extractor 'mnist-clasifier'") as info:
        ensure_extractor("mnist-clasifier")
    assert "\n" not in str(info.value)
