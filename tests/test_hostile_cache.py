"""A hostile or broken cache: planted pickles never run, corrupt entries are rebuilt, leftovers go.

Every test works on a private cache root holding the session's trained digits classifier, on the
built-in ``digits`` dataset (no files needed): 300 generated images against 200 reference ones.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from evalgen import storage
from evalgen.cli import main
from evalgen.datasets.digits import load_digits
from evalgen.errors import EvalgenError
from evalgen.metrics import cache, extractors, fidelity, inception
from evalgen.metrics.extractors import ensure_extractor
from evalgen.metrics.fidelity import frechet_distance, reference_key, sample_quality

N_GEN, N_REF = 300, 200
EXTRACTOR = "digits-classifier"


class Plant:
    """Unpickling it creates ``marker``: proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "a"))


def plant_pickle(path, marker) -> bytes:
    """A plain pickle at ``path`` (what np.load(allow_pickle=True) or pickle.load would run)."""
    payload = pickle.dumps(Plant(marker))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return payload


def plant_torch(path, marker) -> bytes:
    """A torch.save file at ``path`` (what torch.load(weights_only=False) would run)."""
    buffer = io.BytesIO()
    torch.save(Plant(marker), buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture
def root(tmp_path, evalgen_cache, digits):
    """A private cache root that already holds the (session-trained) digits classifier."""
    ensure_extractor(EXTRACTOR, dataset=digits, cache_dir=evalgen_cache)
    target = tmp_path / "cache"
    shutil.copytree(evalgen_cache / "extractors", target / "extractors")
    return target


@pytest.fixture
def no_unsafe_torch_load(monkeypatch):
    """Fail the test on any torch.load that is not weights_only=True (torch-fidelity's included)."""
    original = torch.load

    def guarded(*args, **kwargs):
        assert kwargs.get("weights_only") is True, f"torch.load{args[:1]} without weights_only=True"
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", guarded)


def _quality(digits, root, **kwargs):
    return sample_quality(digits.train.x[:N_GEN], digits, num_reference=N_REF, cache_dir=root, **kwargs)


def _quiet_quality(digits, root):
    with pytest.warns(UserWarning) as caught:
        result = _quality(digits, root)
    return result, [str(w.message) for w in caught]


def _layers():
    cls = extractors.DomainFeatureExtractor
    return {m: cls.get_default_feature_layer_for_metric(m) for m in ("isc", "fid", "kid", "prc")}


def _vouch(path, payload, shape, dtype="<f8"):
    """A sidecar beside ``path`` that vouches for ``payload``: what an attacker who read the code writes."""
    meta = {"format": cache.ARRAY_FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "shape": list(shape),
            "dtype": dtype}
    cache.sidecar_path(path).write_text(json.dumps(meta))


def _reference_file(root, result, layer="embedding"):
    return root / fidelity.FEATURES_DIR / f"{result.reference_key}-{EXTRACTOR}-{layer}.npy"


def _extractor_files(root):
    (weights,) = (root / "extractors").glob(f"{EXTRACTOR}-*.pt")
    return weights, weights.with_suffix(".json")


def _assert_one_line_naming(lines, path):
    assert lines and all("\n" not in line for line in lines), lines
    assert any(str(path) in line for line in lines), (path, lines)


def test_the_planted_files_do_run_code_when_unpickled(tmp_path):
    """The plants are real: the unsafe loaders evalgen avoids would create the marker."""
    marker = tmp_path / "marker"
    plant_pickle(tmp_path / "a.npy", marker)
    with pytest.raises(ValueError, match="pickled"):
        np.load(tmp_path / "a.npy", allow_pickle=False)
    assert not marker.exists()
    np.load(tmp_path / "a.npy", allow_pickle=True)
    assert marker.exists()
    marker.unlink()
    plant_torch(tmp_path / "b.pt", marker)
    torch.load(tmp_path / "b.pt", weights_only=False)
    assert marker.exists()


def test_sample_quality_never_unpickles_a_planted_cache(tmp_path, root, digits, no_unsafe_torch_load):
    clean = _quality(digits, root)
    marker = tmp_path / "marker"
    legacy = root / fidelity.LEGACY_FIDELITY_DIR
    with pytest.MonkeyPatch.context() as m:  # the key evalgen < METRIC_VERSION 2 used, too
        m.setattr(fidelity, "METRIC_VERSION", 1)
        old_key = reference_key(digits, "test", N_REF, EXTRACTOR, clean.extractor_weights_sha256, 1, _layers())
    planted_legacy = []
    for key in (clean.reference_key, old_key, f"evalgen-samples-{'ab' * 16}"):  # torch-fidelity's own names
        for tail in ("features-embedding", "features-logits", "stat-fid-embedding"):
            path = legacy / f"{key}-{EXTRACTOR}-{tail}.pt"
            plant_torch(path, marker)
            planted_legacy.append(path)
    reference = _reference_file(root, clean)  # evalgen's own name, with a sidecar that vouches for the pickle
    _vouch(reference, plant_pickle(reference, marker), (N_REF, 128))
    weights, meta_path = _extractor_files(root)
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(plant_torch(weights, marker)).hexdigest()
    meta_path.write_text(json.dumps(meta))

    result, lines = _quiet_quality(digits, root)
    assert not marker.exists()
    assert result.fid == clean.fid and not result.reference_cached
    assert result.extractor_weights_sha256 == clean.extractor_weights_sha256  # retrained to the same bytes
    _assert_one_line_naming(lines, weights)
    _assert_one_line_naming(lines, _reference_file(root, clean))
    assert list(result.warnings) == lines
    survivors = sorted(p.name for p in legacy.iterdir())  # only evalgen-samples-* leftovers were deleted
    assert survivors == sorted(p.name for p in planted_legacy if not p.name.startswith("evalgen-samples-"))


def test_a_tiny_evalgen_run_never_unpickles_a_planted_cache(tmp_path, root, digits, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    evalgen_root = tmp_path / "xdg" / "evalgen"
    shutil.copytree(root, evalgen_root)
    weights, meta_path = _extractor_files(evalgen_root)
    sha = json.loads(meta_path.read_text())["sha256"]
    key = reference_key(digits, "test", len(digits.test), EXTRACTOR, sha, 1, _layers())
    marker = tmp_path / "marker"
    for tail in ("features-embedding", "features-logits", "stat-fid-embedding"):
        plant_torch(evalgen_root / "fidelity" / f"{key}-{EXTRACTOR}-{tail}.pt", marker)
    reference = evalgen_root / fidelity.FEATURES_DIR / f"{key}-{EXTRACTOR}-embedding.npy"
    _vouch(reference, plant_pickle(reference, marker), (len(digits.test), 128))
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(plant_torch(weights, marker)).hexdigest()
    meta_path.write_text(json.dumps(meta))

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--plugin", "baselines", "--model", "categorical", "--dataset",
                                       "digits", "--budget", "smoke", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not marker.exists()
    (record,) = (out / "records").glob("*.json")
    data = json.loads(record.read_text())
    quality, traces = data["metrics"]["sample_quality"], data["training"]["traces"]
    print(f"evalgen run on a planted cache: FID {quality['fid']:.2f}; warnings {quality['warnings']}; "
          f"trace warnings {traces['warnings']}")
    assert quality["reference_key"] == key  # the plants were where the run looked
    assert quality["reference_cached"] is False
    # the tracer loads the classifier first: it finds the planted weights, trains them again and
    # says so in the traces; sample quality then finds good weights and the planted reference
    _assert_one_line_naming(traces["warnings"], weights)
    _assert_one_line_naming(quality["warnings"], reference)
    assert not any(str(weights) in line for line in quality["warnings"])
    # Reference: the same run from an untouched cache; the repaired one gives the same FID.
    shutil.rmtree(evalgen_root)
    shutil.copytree(root, evalgen_root)
    again = CliRunner().invoke(main, ["run", "--plugin", "baselines", "--model", "categorical", "--dataset",
                                      "digits", "--budget", "smoke", "--out", str(tmp_path / "clean")])
    assert again.exit_code == 0, again.output
    (clean,) = (tmp_path / "clean" / "records").glob("*.json")
    assert quality["fid"] == json.loads(clean.read_text())["metrics"]["sample_quality"]["fid"]


def test_a_truncated_reference_file_is_rebuilt(root, digits):
    clean = _quality(digits, root)
    path = _reference_file(root, clean)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result, lines = _quiet_quality(digits, root)
    print(f"truncated reference features: FID {result.fid:.4f} (clean {clean.fid:.4f}); {lines}")
    assert result.fid == clean.fid and not result.reference_cached
    _assert_one_line_naming(lines, path)
    again = _quality(digits, root)  # the rebuilt entry is used, silently
    assert again.reference_cached and again.warnings == () and again.fid == clean.fid


def test_same_shaped_wrong_reference_values_are_detected(root, digits):
    clean = _quality(digits, root)
    path = _reference_file(root, clean)
    good = np.load(path, allow_pickle=False)
    wrong = np.random.default_rng(0).normal(size=good.shape)  # same shape and dtype; sidecar not updated
    np.save(path, wrong, allow_pickle=False)
    generated = extractors.extract_features(extractors.to_uint8(digits.train.x[:N_GEN], digits.levels),
                                            ensure_extractor(EXTRACTOR, dataset=digits, cache_dir=root))
    silently_wrong = frechet_distance(generated["embedding"].numpy(), wrong)[0]
    result, lines = _quiet_quality(digits, root)
    print(f"wrong reference values: FID {result.fid:.4f} (clean {clean.fid:.4f}; used unchecked they would "
          f"give {silently_wrong:.2f}); {lines}")
    assert silently_wrong > 10 * clean.fid
    assert result.fid == clean.fid and not result.reference_cached
    _assert_one_line_naming(lines, path)
    assert np.array_equal(np.load(path, allow_pickle=False), good)


def _breakages(path, good_meta, marker):
    """(name, how to break the entry at ``path``) pairs; ``good_meta`` is its real sidecar."""
    sidecar = cache.sidecar_path(path)
    shape = tuple(good_meta["shape"])

    def with_meta(**change):
        return lambda: sidecar.write_text(json.dumps({**good_meta, **change}))

    def vouched(make_payload):  # the attacker updates the hash; shape and dtype claims stay right
        def write():
            payload = make_payload()
            path.write_bytes(payload)
            _vouch(path, payload, shape)
        return write

    def npy(array):
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=True)
        return buffer.getvalue()

    def symlinked(target):
        def write():
            copy = target.with_name(target.name + ".elsewhere")
            shutil.copyfile(target, copy)
            target.unlink()
            target.symlink_to(copy)
        return write

    return [
        ("missing sidecar", sidecar.unlink),
        ("sidecar not JSON", lambda: sidecar.write_text("{not json")),
        ("sidecar a list", lambda: sidecar.write_text("[1, 2]")),
        ("sidecar of another format", with_meta(format="torch-fidelity")),
        ("sidecar with a bad hash", with_meta(sha256="0" * 64)),
        ("sidecar of another shape", with_meta(shape=[shape[0], 64])),
        ("sidecar a symlink", symlinked(sidecar)),
        ("missing array", path.unlink),
        ("array a symlink", symlinked(path)),
        ("vouched NaN array", vouched(lambda: npy(np.full(shape, np.nan)))),
        ("vouched float32 array", vouched(lambda: npy(np.zeros(shape, np.float32)))),
        ("vouched object array of plants", vouched(lambda: npy(np.full(shape, Plant(marker), dtype=object)))),
        ("vouched trailing bytes", vouched(lambda: path.read_bytes() + b"\0")),
        ("vouched npz", vouched(lambda: (np.savez(path.with_suffix(".npz"), np.zeros(shape)),
                                         path.with_suffix(".npz").read_bytes())[1])),
    ]


def test_every_broken_sidecar_or_array_is_rebuilt(tmp_path, root, digits):
    clean = _quality(digits, root)
    path = _reference_file(root, clean)
    good_meta = json.loads(cache.sidecar_path(path).read_text())
    marker = tmp_path / "marker"
    for name, corrupt in _breakages(path, good_meta, marker):
        corrupt()
        result, lines = _quiet_quality(digits, root)
        assert result.fid == clean.fid and not result.reference_cached, name
        _assert_one_line_naming(lines, path)
        assert path.is_file() and not path.is_symlink() and not cache.sidecar_path(path).is_symlink(), name
        assert json.loads(cache.sidecar_path(path).read_text()) == good_meta, name
    assert not marker.exists()


def test_a_corrupted_domain_extractor_is_retrained_with_one_line(root, digits):
    clean = _quality(digits, root)
    weights, meta_path = _extractor_files(root)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    result, lines = _quiet_quality(digits, root)
    print(f"corrupted extractor: {lines}")
    _assert_one_line_naming(lines, weights)
    assert result.fid == clean.fid and result.reference_cached  # same weights again: same reference key
    assert result.extractor_weights_sha256 == clean.extractor_weights_sha256
    meta_path.write_text("[]")
    result, lines = _quiet_quality(digits, root)
    _assert_one_line_naming(lines, weights)
    assert result.fid == clean.fid
    meta_path.unlink()
    assert ensure_extractor(EXTRACTOR, dataset=digits, cache_dir=root, warn=False).notes  # missing metadata
    blob = torch.load(weights, weights_only=True)  # a vouched-for file of a huge architecture
    blob["config"] = {**blob["config"], "hidden": 2**20}
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    weights.write_bytes(buffer.getvalue())
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}))
    rebuilt = ensure_extractor(EXTRACTOR, dataset=digits, cache_dir=root, warn=False)
    assert rebuilt.trained_now and "does not load" in rebuilt.notes[0]

    checked = ensure_extractor(EXTRACTOR, dataset=digits, cache_dir=root)  # changed after the check:
    weights.write_bytes(bytes(data))
    with pytest.raises(EvalgenError, match="changed after it was checked") as info:
        extractors.extract_features(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), checked)
    assert "\n" not in str(info.value)


def test_inception_weights_are_loaded_as_tensors_only(tmp_path, monkeypatch, no_unsafe_torch_load):
    marker = tmp_path / "marker"
    path = tmp_path / inception.INCEPTION_FILENAME
    sha = hashlib.sha256(plant_torch(path, marker)).hexdigest()
    monkeypatch.setattr(inception, "INCEPTION_SHA256", sha)  # even a file with the expected hash
    monkeypatch.setenv(inception.INCEPTION_WEIGHTS_ENV, str(path))
    digits = load_digits()
    with pytest.raises(EvalgenError, match="not a plain state_dict") as info:
        sample_quality(digits.train.x[:32], digits, extractor="inception-v3-compat", cache_dir=tmp_path / "c")
    assert "\n" not in str(info.value) and not marker.exists()


def test_inception_is_built_from_the_checked_tensors(tmp_path, no_unsafe_torch_load):
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    with pytest.MonkeyPatch.context() as m:  # a random-weight network of the real architecture
        m.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None)
        state = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict()
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    module = inception.build_inception(["2048", "logits_unbiased"], path, sha)
    assert isinstance(module, tfi.FeatureExtractorInceptionV3)
    assert tfi.load_state_dict_from_url is torch.hub.load_state_dict_from_url  # put back after the build
    for name, value in module.state_dict().items():
        assert torch.equal(value, state[name]), name
    with pytest.raises(EvalgenError, match="SHA-256"):
        inception.build_inception(["2048"], path, "0" * 64)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_are_removed_and_nothing_else(tmp_path, root, digits):
    legacy = root / fidelity.LEGACY_FIDELITY_DIR
    legacy.mkdir()
    uid = "0123456789abcdef" * 2
    leftovers = [legacy / f"evalgen-samples-{uid}-{EXTRACTOR}-features-{t}.pt"
                 for t in ("embedding", "logits")] + [legacy / f"evalgen-samples-{uid}-{EXTRACTOR}-stat-fid-x.pt"]
    outside = tmp_path / "precious.pt"
    outside.write_bytes(b"keep")
    keep = [legacy / "evalgen-ref-digits-test-200-abc-digits-classifier-features-embedding.pt",
            legacy / "tmpx8h2k3", legacy / "evalgen-samples-notes.txt", legacy / "mine.pt"]
    for path in leftovers + keep:
        path.write_bytes(b"x" * 1000)
    (legacy / f"evalgen-samples-{uid}-folder.pt").mkdir()
    (legacy / f"evalgen-samples-{'f' * 32}-link.pt").symlink_to(outside)
    dead = _dead_pid()
    stale = [root / folder / f".x.npy.evalgen-{storage._HOST}-{dead}-{'0' * 16}.tmp"
             for folder in (fidelity.FEATURES_DIR, "extractors")]
    live = root / "extractors" / f".x.pt.evalgen-{storage._HOST}-{os.getpid()}-{'1' * 16}.tmp"
    for path in [*stale, live]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")

    _quality(digits, root)
    assert not any(p.exists() for p in leftovers + stale)
    assert all(p.exists() for p in keep) and live.exists() and outside.read_bytes() == b"keep"
    assert (legacy / f"evalgen-samples-{uid}-folder.pt").is_dir()
    assert (legacy / f"evalgen-samples-{'f' * 32}-link.pt").is_symlink()


def _snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_nothing_per_run_is_written_to_the_cache(root, digits):
    first = _quality(digits, root)
    before = _snapshot(root)
    second = sample_quality(digits.train.x[N_GEN:2 * N_GEN], digits, num_reference=N_REF, cache_dir=root)
    assert second.reference_cached and first.reference_key == second.reference_key
    assert _snapshot(root) == before
    assert sorted(p.name for p in (root / fidelity.FEATURES_DIR).iterdir()) == [
        _reference_file(root, first).name, cache.sidecar_path(_reference_file(root, first)).name]
