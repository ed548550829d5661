"""The same run gives the same record whether the feature extractor had to be trained first (a
cold cache draws from the global RNG mid-evaluation) or was cached: each part of the evaluation
seeds the global RNGs itself (`evalgen.harness.evaluation.seed_part`). Found by
benchmarks/load_invariance.py: an IWAE model's outlier AUPR differed between a first and a
second run on one machine."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from evalgen.cli import main
from evalgen.testing.reproducibility import without_timings

pytestmark = pytest.mark.slow


def _record(out, monkeypatch, cache):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    result = CliRunner().invoke(main, ["run", "--plugin", "vae", "--model", "iwae", "--dataset", "digits",
                                       "--budget", "smoke", "--no-baseline", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(next((out / "records").glob("*.json")).read_text())


def test_a_cold_and_a_warm_feature_cache_give_the_same_record(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cold = _record(tmp_path / "cold", monkeypatch, cache)
    warm = _record(tmp_path / "warm", monkeypatch, cache)
    assert cold["metrics"]["outliers"] == warm["metrics"]["outliers"]
    assert without_timings(cold) == without_timings(warm)
