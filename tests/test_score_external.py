"""`evalgen score` on MNIST's own test images (issue 19): as a .npy file and as a folder of PNGs
they score the FID that an independent computation gives on the same images (the MNIST
classifier's features, numpy and scipy's sqrtm), and both formats give identical records."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from reference_metrics import frechet_distance
from toy_plugins import assert_one_line_error

from evalgen.cli import main
from evalgen.metrics.extractors import EMBEDDING, extract_features

pytestmark = pytest.mark.slow
#: The first 2,000 test images: the sample count of the quick budget, scored against all 10,000.
COUNT = 2_000


def _score(*args: str) -> CliRunner:
    result = CliRunner().invoke(main, ["score", *args])
    assert result.exit_code == 0, result.output
    return result


def _record(out, name: str) -> dict:
    return json.loads((out / "records" / f"samples--{name}--mnist--quick--seed0.json").read_text())


@pytest.fixture(scope="module")
def mnist_test_images(mnist):
    return mnist.test.x[:COUNT].numpy().astype(np.uint8)  # (N, 1, 28, 28), MNIST's levels are 0..255


def test_mnist_test_images_score_the_reference_fid_from_npy_and_from_pngs(tmp_path, mnist, mnist_weights,
                                                                          mnist_test_images, data_copy):
    npy = tmp_path / "mnist-test.npy"
    np.save(npy, mnist_test_images)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(mnist_test_images):
        Image.fromarray(image[0]).save(folder / f"{i:05d}.png")
    out = tmp_path / "out"
    common = ["--dataset", "mnist", "--out", str(out), "--data-dir", str(data_copy), "--device", "cpu"]
    _score(str(npy), "--name", "from-npy", *common)
    _score(str(folder), "--name", "from-pngs", *common)
    from_npy, from_pngs = _record(out, "from-npy"), _record(out, "from-pngs")

    # Reference: the same images through the MNIST classifier's embedding, FID by numpy/scipy
    generated = extract_features(mnist.test.x[:COUNT].to(torch.uint8), mnist_weights)
    reference = extract_features(mnist.test.x.to(torch.uint8), mnist_weights)
    expected = frechet_distance(generated[EMBEDDING].numpy(), reference[EMBEDDING].numpy())
    assert from_npy["metrics"]["sample_quality"]["fid"] == pytest.approx(expected, rel=1e-6)

    for metric in ("sample_quality", "mode_coverage"):  # identical from both formats (but the cache flag)
        first, second = (dict(r["metrics"][metric]) for r in (from_npy, from_pngs))
        first.pop("reference_cached", None), second.pop("reference_cached", None)
        assert first == second, metric
    assert from_npy["origin"]["samples"] == {"name": "from-npy", "file": "mnist-test.npy", "count": COUNT,
                                             "sha256": hashlib.sha256(npy.read_bytes()).hexdigest()}
    assert from_pngs["origin"]["samples"]["file"] == "pngs/"
    assert from_npy["model"]["likelihood"] == "none (samples only)" and from_npy["model"]["parameters"] is None
    assert "skipped" in from_npy["metrics"]["test_nll"] and "skipped" in from_npy["metrics"]["outliers"]


def test_fewer_samples_than_the_feature_dimension_needs_are_one_line(tmp_path, mnist_weights,
                                                                     mnist_test_images, data_copy):
    few = tmp_path / "few.npy"
    np.save(few, mnist_test_images[:100])
    result = CliRunner().invoke(main, ["score", str(few), "--dataset", "mnist", "--out", str(tmp_path / "out"),
                                       "--data-dir", str(data_copy)])
    assert_one_line_error(result, "100 samples are fewer than 129",
                          "full-rank covariance of the 128-dimensional features of mnist-classifier")
