"""Sample-quality metrics through torch-fidelity, checked against independent computations."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial
import scipy.stats
import torch
from reference_metrics import unbiased_mmd2_poly

from evalgen.datasets.base import LoadContext
from evalgen.datasets.digits import load_digits
from evalgen.datasets.files import user_cache_dir
from evalgen.errors import EvalgenError
from evalgen.metrics import extractors, fidelity, inception
from evalgen.metrics.extractors import EMBEDDING, ensure_extractor, extract_features
from evalgen.metrics.fidelity import frechet_distance, reference_key, sample_quality
from evalgen.plugins import load_plugins

N_REF = 3000  # one reference size for the MNIST tests, so they share one cache entry


def _context(data_copy):
    return LoadContext(data_copy, allow_download=False)


def _independent_uint8(x: torch.Tensor, levels: int) -> torch.Tensor:
    return torch.from_numpy(np.rint(x.numpy().astype(np.float64) * 255 / (levels - 1)).astype(np.uint8))


def _scipy_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    f1, f2 = f1.astype(np.float64), f2.astype(np.float64)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root.real))


def _knn_precision_recall(gen: np.ndarray, ref: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al. (2019) in float64 with scipy: a sample is covered when it lies within the
    distance from some point of the other set to that point's k-th nearest neighbour (self excluded)."""
    def radii(f):
        return np.sort(scipy.spatial.distance.cdist(f, f), axis=1)[:, k]
    d = scipy.spatial.distance.cdist(gen.astype(np.float64), ref.astype(np.float64))
    precision = (d <= radii(ref.astype(np.float64))[None, :]).any(axis=1).mean()
    recall = (d.T <= radii(gen.astype(np.float64))[None, :]).any(axis=1).mean()
    return float(precision), float(recall)


def _fresh_cache(tmp_path, name):
    """An empty metrics cache that still holds the session's trained extractors."""
    root = tmp_path / name
    shutil.copytree(user_cache_dir() / "extractors", root / "extractors")
    return root


def test_fid_matches_scipy_on_the_same_features(mnist, mnist_weights):
    samples = mnist.train.x[:2000]
    result = sample_quality(samples, mnist, num_reference=N_REF)
    f1 = extract_features(_independent_uint8(samples, 256), mnist_weights)[EMBEDDING].numpy()
    f2 = extract_features(_independent_uint8(mnist.test.x[:N_REF], 256), mnist_weights)[EMBEDDING].numpy()
    expected = _scipy_fid(f1, f2)
    print(f"FID mnist train[:2000] vs test[:{N_REF}]: {result.fid:.6f} (scipy {expected:.6f}, "
          f"torch-fidelity {result.fid_torch_fidelity:.6f}); IS {result.inception_score_mean:.3f}; "
          f"KID {result.kid_mean:.5f}; P/R {result.precision:.3f}/{result.recall:.3f}")
    assert result.fid == pytest.approx(expected, rel=1e-6)
    assert result.fid_torch_fidelity == pytest.approx(expected, rel=1e-6)
    assert result.fid_sqrt_method == "sqrtm" and result.warnings == ()
    assert result.extractor == "mnist-classifier" and result.extractor_weights_sha256 == mnist_weights.sha256
    assert result.extractor_test_accuracy == mnist_weights.test_accuracy
    assert (result.num_generated, result.num_reference, result.reference_split) == (2000, N_REF, "test")
    assert set(result.to_dict()) >= {"inception_score_mean", "inception_score_std", "fid", "kid_mean", "kid_std",
                                     "precision", "recall", "extractor_weights_sha256", "warnings"}


def test_repeated_draws_and_fid_infinity_match_scipy_on_each_draw(mnist, mnist_weights):
    """Three draws (disjoint slices of the training set): every draw's FID is scipy's on its own
    features, the draws' interval is scipy's t interval of those, and FID∞ is scipy's line through
    each draw's FIDs on its first n = N/5 ... N samples, averaged over draws."""
    slices = [mnist.train.x[i * 1000:(i + 1) * 1000] for i in range(3)]
    result = sample_quality(slices[0], mnist, num_reference=N_REF, more_draws=slices[1:], draw_seeds=(5, 6, 7))
    f2 = extract_features(_independent_uint8(mnist.test.x[:N_REF], 256), mnist_weights)[EMBEDDING].numpy()
    features = [extract_features(_independent_uint8(x, 256), mnist_weights)[EMBEDDING].numpy() for x in slices]
    counts = (200, 400, 600, 800, 1000)
    per_draw = [[_scipy_fid(f[:n], f2) for n in counts] for f in features]
    fids = [d[-1] for d in per_draw]
    drawn = result.draws["metrics"]["fid"]
    assert result.draws["count"] == 3 and result.draws["seeds"] == [5, 6, 7]
    assert drawn["values"] == pytest.approx(fids, rel=1e-6) and drawn["values"][0] == result.fid
    low, high = scipy.stats.t.interval(0.95, 2, loc=np.mean(fids), scale=scipy.stats.sem(fids))
    assert (drawn["interval"]["low"], drawn["interval"]["high"]) == pytest.approx((low, high), rel=1e-5)
    intercepts = [scipy.stats.linregress(1 / np.array(counts), d).intercept for d in per_draw]
    infinity = result.fid_infinity
    assert infinity["counts"] == list(counts)
    assert infinity["intercepts"] == pytest.approx(intercepts, rel=1e-4)
    assert infinity["value"] == pytest.approx(np.mean(intercepts), rel=1e-4)
    assert infinity["values"] == pytest.approx(np.mean(per_draw, axis=0), rel=1e-6)
    print(f"FID over 3 draws of 1000: {drawn['mean']:.3f} [{low:.3f}, {high:.3f}]; FID∞ {infinity['value']:.3f}")
    assert result.inception_score_infinity["value"] > 0 and set(result.spreads) == {"inception_score_std", "kid_std"}


def test_precision_recall_compares_equal_numbers_and_matches_scipy(mnist, mnist_weights):
    samples = mnist.train.x[:1500]
    result = sample_quality(samples, mnist, num_reference=N_REF)
    gen_idx, ref_idx = fidelity.prc_subsets(1500, N_REF)
    assert result.precision_recall_samples == len(gen_idx) == len(ref_idx) == 1500
    assert len(set(ref_idx.tolist())) == 1500 and int(ref_idx.max()) < N_REF
    f1 = extract_features(_independent_uint8(samples, 256), mnist_weights)[EMBEDDING].numpy()
    f2 = extract_features(_independent_uint8(mnist.test.x[:N_REF], 256), mnist_weights)[EMBEDDING].numpy()
    expected = _knn_precision_recall(f1[gen_idx.numpy()], f2[ref_idx.numpy()])
    print(f"P/R mnist train[:1500] vs a random 1500 of test[:{N_REF}]: {result.precision:.4f}/{result.recall:.4f} "
          f"(scipy {expected[0]:.4f}/{expected[1]:.4f})")
    # float32 vs float64 distances may flip a sample lying exactly on a ball's boundary (1/1500 each)
    assert (result.precision, result.recall) == pytest.approx(expected, abs=2 / 1500)


def test_fid_orders_self_train_and_other_dataset(mnist, fashion, mnist_weights):
    same = sample_quality(mnist.test.x[:N_REF], mnist, num_reference=N_REF)
    train = sample_quality(mnist.train.x[:N_REF], mnist, num_reference=N_REF)
    other = sample_quality(fashion.test.x[:N_REF], mnist, num_reference=N_REF)
    print(f"FID vs mnist test: itself {same.fid:.3g}, mnist train {train.fid:.3f}, fashion {other.fid:.3f}")
    assert abs(same.fid) < 1e-6 and same.precision == same.recall == 1.0
    assert 0 < train.fid < 10
    assert other.fid > 20 * train.fid
    assert other.kid_mean > 10 * train.kid_mean and other.recall < train.recall


def test_inception_score_of_real_digits_and_of_noise(mnist, mnist_weights):
    real = sample_quality(mnist.test.x, mnist, num_reference=N_REF)
    noise = sample_quality(torch.randint(0, 256, (N_REF, 1, 28, 28), generator=torch.Generator().manual_seed(0))
                           .float(), mnist, num_reference=N_REF)
    print(f"IS mnist test {real.inception_score_mean:.3f} +- {real.inception_score_std:.3f}, "
          f"noise {noise.inception_score_mean:.3f}; FID noise {noise.fid:.1f}")
    assert real.inception_score_mean >= 9.5
    assert noise.inception_score_mean < 2
    assert noise.fid > 10 * real.fid


def test_metrics_do_not_depend_on_batch_size(tmp_path, mnist, mnist_weights):
    samples = mnist.train.x[:1000]
    small = sample_quality(samples, mnist, num_reference=1000, batch_size=37, cache_dir=_fresh_cache(tmp_path, "a"))
    large = sample_quality(samples, mnist, num_reference=1000, batch_size=500, cache_dir=_fresh_cache(tmp_path, "b"))
    assert not small.reference_cached and not large.reference_cached
    assert small.fid == pytest.approx(large.fid, rel=1e-6)
    for field in ("inception_score_mean", "kid_mean", "precision", "recall"):
        assert getattr(small, field) == pytest.approx(getattr(large, field), rel=1e-6, abs=1e-9), field


def test_binarized_mnist_is_scored_with_the_mnist_classifier(data_copy, mnist_weights, monkeypatch):
    monkeypatch.setenv("EVALGEN_DATA_DIR", str(data_copy))  # the MNIST classifier's key needs the MNIST files
    binarized = load_plugins().datasets.get("binarized-mnist").load(_context(data_copy))
    result = sample_quality(binarized.train.x[:1000], binarized, num_reference=1000)
    assert result.extractor == "mnist-classifier" and result.extractor_weights_sha256 == mnist_weights.sha256
    # Reference: the FID of the same images through the MNIST classifier's features, with scipy
    f1 = extract_features(_independent_uint8(binarized.train.x[:1000], 2), mnist_weights)[EMBEDDING].numpy()
    f2 = extract_features(_independent_uint8(binarized.test.x[:1000], 2), mnist_weights)[EMBEDDING].numpy()
    assert result.fid == pytest.approx(_scipy_fid(f1, f2), rel=1e-6)
    assert result.inception_score_mean > 5


class _CountImages:
    """Counts the images that go through the domain extractor's forward."""

    def __init__(self, monkeypatch):
        self.count = 0
        forward = extractors.DomainFeatureExtractor.forward

        def counting(ext, x):
            self.count += int(x.shape[0])
            return forward(ext, x)

        monkeypatch.setattr(extractors.DomainFeatureExtractor, "forward", counting)


def test_reference_features_are_cached_under_a_full_key(tmp_path, monkeypatch):
    digits = load_digits()
    root = tmp_path / "cache"
    ensure_extractor("digits-classifier", dataset=digits, cache_dir=root)
    spy = _CountImages(monkeypatch)
    first = sample_quality(digits.train.x[:300], digits, num_reference=200, cache_dir=root)
    assert (spy.count, first.reference_cached) == (300 + 200, False)
    spy.count = 0
    second = sample_quality(digits.train.x[300:600], digits, num_reference=200, cache_dir=root)
    assert (spy.count, second.reference_cached) == (300, True)  # no reference features extracted
    assert second.reference_key == first.reference_key
    spy.count = 0
    third = sample_quality(digits.train.x[300:600], digits, num_reference=250, cache_dir=root)
    assert (spy.count, third.reference_cached) == (300 + 250, False)  # another key ingredient: a miss
    assert not list((root / "fidelity").glob("evalgen-samples-*"))  # per-run sample features are removed


def test_reference_key_covers_every_ingredient(monkeypatch):
    digits = load_digits()
    args = dict(dataset=digits, split="test", num_reference=100, extractor_name="digits-classifier",
                weights_sha256="a" * 64, channels=1, layers={"fid": "embedding"})
    base = reference_key(**args)
    variants = [dict(dataset=dataclasses.replace(digits, checksum="0" * 64)), dict(split="valid"),
                dict(num_reference=101), dict(extractor_name="inception-v3-compat"), dict(weights_sha256="b" * 64),
                dict(channels=3), dict(layers={"fid": "logits"})]
    keys = {reference_key(**{**args, **change}) for change in variants}
    monkeypatch.setattr(fidelity, "METRIC_VERSION", fidelity.METRIC_VERSION + 1)
    keys.add(reference_key(**args))
    assert base not in keys and len(keys) == len(variants) + 1


def test_few_samples_warn_about_the_feature_dimension():
    digits = load_digits()
    with pytest.warns(UserWarning, match="feature dimension 128"):
        result = sample_quality(digits.train.x[:50], digits)
    assert any("50 generated samples < feature dimension 128" in w for w in result.warnings)
    # Reference: computed anyway, and still the Fréchet distance of the features (scipy)
    weights = ensure_extractor("digits-classifier", dataset=digits)
    f1 = extract_features(_independent_uint8(digits.train.x[:50], digits.levels), weights)[EMBEDDING].numpy()
    f2 = extract_features(_independent_uint8(digits.test.x, digits.levels), weights)[EMBEDDING].numpy()
    assert result.fid == pytest.approx(_scipy_fid(f1, f2), rel=1e-4)


def test_bad_inputs_are_one_line_errors():
    digits = load_digits()
    for call, match in [(lambda: sample_quality(digits.train.x[:, :, :4], digits), "samples must be"),
                        (lambda: sample_quality(digits.train.x[:2], digits), "at least"),
                        (lambda: sample_quality(digits.train.x * float("nan"), digits), "NaN"),
                        (lambda: sample_quality(digits.train.x, digits, reference_split="dev"), "split"),
                        (lambda: sample_quality(digits.train.x, digits, num_reference=10**6), "num_reference"),
                        (lambda: sample_quality(digits.train.x, digits, extractor="vgg"), "unknown feature")]:
        with pytest.raises(EvalgenError, match=match) as info:
            call()
        assert "\n" not in str(info.value)


def test_frechet_distance_falls_back_when_sqrtm_fails(monkeypatch):
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(500, 6)), rng.normal(size=(400, 6)) * 2 + 1
    value, method = frechet_distance(f1, f2)
    assert method == "sqrtm" and value == pytest.approx(_scipy_fid(f1, f2), rel=1e-10)
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda a: np.full_like(a, np.nan))
    fallback, method = frechet_distance(f1, f2)
    assert method == "eigh" and fallback == pytest.approx(value, rel=1e-10)
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda a: np.eye(len(a)) * 1j)  # "went complex"
    assert frechet_distance(f1, f2)[1] == "eigh"


def _trace_root_by_eigenvalues(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((S1 S2)^{1/2}) as the sum of the roots of S1 S2's eigenvalues (real and >= 0 up to
    rounding; those of a singular product below 1e-9 of the largest are its zeros)."""
    eig = np.linalg.eigvals(s1 @ s2).real
    return float(np.sqrt(eig[eig > 1e-9 * eig.max()]).sum())


def test_fewer_samples_than_dimensions_use_the_exact_singular_value_trace():
    """Reference: with n < D both covariances are singular; tr((S1 S2)^1/2) from numpy's eigenvalues
    of S1 S2 (as torch-fidelity computes it), and FID of a set with itself is 0."""
    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(40, 64)), rng.normal(0.5, 1.5, size=(30, 64))
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    expected = (((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2)
                - 2 * _trace_root_by_eigenvalues(s1, s2))
    value, method = frechet_distance(f1, f2)
    assert method == "svd" and value == pytest.approx(expected, rel=1e-9)
    same, method = frechet_distance(f1, f1)
    assert method == "svd" and abs(same) < 1e-12 * np.trace(s1)
    many = rng.normal(size=(65, 64))  # one more sample than dimensions: the square root again
    assert frechet_distance(many, many + 1)[1] == "sqrtm"


def _random_inception_weights(path, monkeypatch):
    """A weights file with Inception-v3's architecture (random, variance-preserving init)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    with monkeypatch.context() as m:
        m.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
            for module in model.modules():
                if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(model.state_dict(), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_inception_from_local_weights_on_cpu(tmp_path, monkeypatch):
    path = tmp_path / inception.INCEPTION_FILENAME
    sha = _random_inception_weights(path, monkeypatch)
    monkeypatch.setenv(inception.INCEPTION_WEIGHTS_ENV, str(path))
    with pytest.raises(EvalgenError, match="SHA-256"):  # not the official file
        inception.resolve_inception_weights()
    monkeypatch.setattr(inception, "INCEPTION_SHA256", sha)
    digits = load_digits()
    with pytest.warns(UserWarning, match="feature dimension 2048"):
        result = sample_quality(digits.train.x[:16], digits, extractor="inception-v3-compat", num_reference=16,
                                batch_size=16)
    print(f"random-weight Inception: IS {result.inception_score_mean:.4f}, FID {result.fid:.4f}")
    assert result.extractor == "inception-v3-compat" and result.extractor_weights_sha256 == sha
    assert result.feature_dim == 2048 and result.extractor_test_accuracy is None and result.fid_sqrt_method == "svd"
    # Reference: the same 16 images as samples and as reference have identical features, so FID
    # vanishes (up to rounding; 16 < 2048 samples take the singular-value trace) and precision and recall are
    # 1; against the test split it does not. (KID's unbiased estimate of a set against itself is
    # not 0: its cross term keeps the diagonal; the KID test above checks its formula.)
    with pytest.warns(UserWarning, match="feature dimension 2048"):
        same = sample_quality(digits.train.x[:16], digits, extractor="inception-v3-compat", num_reference=16,
                              batch_size=16, reference_split="train")
    assert abs(same.fid) < 1e-3 * result.fid
    assert same.precision == same.recall == 1.0


def test_kid_on_subsets_matches_torch_fidelity_and_a_float64_reference():
    """References: torch-fidelity 0.4's own KID (float32, the same subsets drawn from the same seed)
    and, per subset, `reference_metrics.unbiased_mmd2_poly` in float64 on those subsets."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    from evalgen.metrics.kid import kernel_inception_distance, subset_indices

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(700, 24)), rng.normal(0.2, 1.1, size=(500, 24))
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    mean, std = kernel_inception_distance(x32, y32, subsets=20, subset_size=300, seed=2020)
    theirs = kid_features_to_metric(torch.from_numpy(x32), torch.from_numpy(y32), kid_subsets=20,
                                    kid_subset_size=300, kid_kernel="poly", kid_kernel_poly_degree=3,
                                    kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1, rng_seed=2020,
                                    verbose=False)
    assert mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    assert std == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-3)
    expected = [unbiased_mmd2_poly(x32[i].astype(np.float64), y32[j].astype(np.float64))
                for i, j in subset_indices(700, 500, 20, 300, 2020)]
    assert mean == pytest.approx(np.mean(expected), rel=1e-12) and std == pytest.approx(np.std(expected), rel=1e-9)


def test_kid_is_the_unbiased_polynomial_mmd_on_fixed_features():
    """Reference: `reference_metrics.unbiased_mmd2_poly` (Bińkowski et al. 2018). With as many
    generated as reference features, each of KID's subsets is the whole of both sets, so evalgen's
    KID must equal the estimate exactly."""
    rng = np.random.default_rng(0)
    m, d = 300, 16
    x, y = rng.normal(size=(m, d)), rng.normal(0.3, 1.2, size=(m, d))
    features = {name: {"f": torch.tensor(v, dtype=torch.float32)} for name, v in (("x", x), ("y", y))}
    metrics = fidelity._torch_fidelity_metrics(features["x"], features["y"], {"isc": "f", "fid": "f", "kid": "f"},
                                               fidelity.torch_fidelity_settings(m, m))
    expected = unbiased_mmd2_poly(x.astype(np.float32), y.astype(np.float32))
    assert metrics["kernel_inception_distance_mean"] == pytest.approx(expected, rel=1e-4)
    assert metrics["kernel_inception_distance_std"] == pytest.approx(0.0, abs=1e-6 * abs(expected))
    assert metrics["frechet_inception_distance"] == pytest.approx(frechet_distance(x, y)[0], rel=1e-3)


def test_inception_offline_without_weights_says_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.delenv(inception.INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(EvalgenError) as info:
        sample_quality(load_digits().train.x[:32], load_digits(), extractor="inception-v3-compat")
    message = str(info.value)
    assert "\n" not in message
    assert inception.INCEPTION_WEIGHTS_ENV in message and inception.INCEPTION_FILENAME in message
    assert str(inception.default_inception_path()) in message
    monkeypatch.setenv(inception.INCEPTION_WEIGHTS_ENV, str(tmp_path / "nowhere.pth"))
    with pytest.raises(EvalgenError, match=r"not found at .*nowhere.pth"):
        inception.resolve_inception_weights()
