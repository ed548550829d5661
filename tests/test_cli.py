"""The command line: bad input gives one line and a non-zero exit, and never harms results."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import torch
from click.testing import CliRunner
from reference_metrics import frechet_distance, inception_score, unbiased_mmd2_poly
from sklearn.metrics import roc_auc_score
from toy_plugins import assert_one_line_error

from evalgen import load_dataset
from evalgen.budget_presets import PRESETS
from evalgen.cli import main
from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint
from evalgen.harness.evaluation import SAMPLE_SEED_OFFSET
from evalgen.metrics.builtin import OUTLIER_SEED
from evalgen.metrics.extractors import EMBEDDING, LOGITS, ensure_extractor, extract_features, to_uint8
from evalgen.metrics.outliers import synthetic_outliers

TESTS_DIR = Path(__file__).resolve().parent


def invoke(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def unit_budget(install_plugin):
    """Install the step-bound test budget through an entry point."""
    return install_plugin("unitbudget", "toy_plugins:unit_budget")


@pytest.fixture
def finished_run(tmp_path, unit_budget):
    """An output folder that already holds one finished record, and that record's bytes."""
    out = tmp_path / "out"
    result = invoke("run", "--plugin", "baselines", "--budget", "unit", "--out", str(out))
    assert result.exit_code == 0, result.output
    (record,) = (out / "records").glob("*.json")
    return out, record, record.read_bytes()


@pytest.mark.parametrize("args,fragments", [
    (["--plugin", "flwos"], ["unknown plugin 'flwos'", "did you mean 'flows'"]),
    (["--plugin", "flows", "--dataset", "mnits"], ["unknown dataset 'mnits'", "did you mean 'mnist'"]),
    (["--plugin", "flows", "--budget", "quik"], ["unknown budget 'quik'", "did you mean 'quick'"]),
    (["--plugin", "flows", "--model", "plnar"], ["did you mean 'planar'"]),
    (["--plugin", "baselines", "--model", "gaussian"], ["cannot be trained on dataset", "not discrete"]),
    (["--plugin", "flows", "--device", "cuda:0"] if not os.environ.get("CUDA_VISIBLE_DEVICES") else
     ["--plugin", "flows", "--device", "tpu"], ["device"]),
])
def test_unknown_names_get_one_line_and_a_suggestion(args, fragments, finished_run):
    out, record, before = finished_run
    result = invoke("run", *args, "--out", str(out))
    assert_one_line_error(result, *fragments)
    assert record.read_bytes() == before


@pytest.mark.parametrize("plugin,fragment", [
    ("badsample", "evalgen_sample should return a tensor of shape (256, 1, 8, 8), got (256, 1, 7, 8)"),
    ("nanlogprob", "evalgen_log_prob returned NaN or inf"),
])
def test_plugins_that_break_the_contract_fail_clearly_and_keep_earlier_records(
        plugin, fragment, finished_run, install_plugin):
    target = {"badsample": "bad_sample", "nanlogprob": "nan_log_prob"}.get(plugin, plugin)
    install_plugin(plugin, f"toy_plugins:{target}")
    out, record, before = finished_run
    result = invoke("run", "--plugin", plugin, "--budget", "unit", "--out", str(out))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert_one_line_error(result, "1 run(s) failed", fragment)
    assert record.read_bytes() == before
    assert sorted(p.name for p in (out / "records").iterdir()) == [record.name]


def test_a_plugin_that_raises_on_import_is_listed_and_does_not_stop_the_others(tmp_path, install_plugin):
    install_plugin("broken", "broken_plugin", module_source="raise ImportError('missing dependency foo')\n")
    listing = invoke("plugins")
    assert listing.exit_code == 0
    assert "broken: FAILED TO LOAD: import failed: ImportError: missing dependency foo" in listing.output
    assert "flows" in listing.output
    result = invoke("run", "--plugin", "broken", "--out", str(tmp_path))
    assert_one_line_error(result, "plugin 'broken' is installed but failed to load")


def test_evalgen_plugins_env_restricts_what_loads(monkeypatch):
    monkeypatch.setenv("EVALGEN_PLUGINS", "baselines")
    listing = invoke("plugins")
    assert "baselines" in listing.output and "flows" not in listing.output
    assert_one_line_error(invoke("run", "--plugin", "flows"), "unknown plugin 'flows'")


def test_unwritable_output_directory(tmp_path, unit_budget):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("run", "--plugin", "baselines", "--budget", "unit", "--out", str(blocker / "out"))
    assert_one_line_error(result, "cannot write results to", "choose another --out")


def test_mnist_offline_from_the_data_dir(tmp_path, data_copy, monkeypatch, mnist_weights):
    """References: the baseline's test NLL is -mean log p of the data dir's MNIST test set under its
    checkpoint's logits (numpy); bits/dim = nats / (784 ln 2), between 0 (a discrete NLL, offset D ln 256
    included) and 0.9 of the uniform model's 8 bits/dim."""
    monkeypatch.setenv("EVALGEN_DATA_DIR", str(data_copy))
    out = tmp_path / "out"
    result = invoke("run", "--plugin", "flows", "--model", "realnvp", "--dataset", "mnist",
                    "--budget", "smoke", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "flows:realnvp" in result.output and "baselines:categorical" in result.output
    key = "baselines--categorical--mnist--smoke--seed0"
    test_x = load_dataset("mnist").test.x
    baseline = load_record(out, key)["metrics"]["test_nll"]
    assert baseline["nats"] == pytest.approx(-factorized_log_prob(factorized_logits(out, key), test_x).mean(), rel=1e-6)
    for nll in (baseline, load_record(out, "flows--realnvp--mnist--smoke--seed0")["metrics"]["test_nll"]):
        assert nll["bits_per_dim"] == pytest.approx(nll["nats"] / (784 * math.log(2)), rel=1e-12)
        assert 0 < nll["bits_per_dim"] < 0.9 * 8


def test_mnist_with_an_empty_data_dir_says_what_to_put_where(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("EVALGEN_DATA_DIR", str(empty))
    result = invoke("run", "--plugin", "flows", "--dataset", "mnist", "--budget", "smoke",
                    "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "train-images-idx3-ubyte.gz", str(empty))


def test_debug_env_reraises(monkeypatch):
    monkeypatch.setenv("EVALGEN_DEBUG", "1")
    result = invoke("run", "--plugin", "flwos")
    assert result.exit_code != 0 and result.exception is not None
    assert type(result.exception).__name__ == "EvalgenError"


@pytest.mark.long  # 40-60 s (a background model doubles its training): CI runs it after the suite (.ci/run)
def test_a_run_killed_midway_leaves_no_partial_record_and_rerunning_completes(tmp_path, install_plugin):
    site = install_plugin("slowtoy", "toy_plugins:slow")
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TESTS_DIR)])}
    command = [sys.executable, "-m", "evalgen", "run", "--plugin", "slowtoy", "--budget", "unit",
               "--seeds", "2", "--no-baseline", "--out", str(out)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = out / "records" / "slowtoy--toy--digits--unit--seed0.json"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first.exists(), proc.communicate()[0].decode()
    time.sleep(1.0)  # seed 1 is training now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [p.name for p in (out / "records").iterdir()] == [first.name]
    saved = first.read_bytes()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "reusing slowtoy--toy--digits--unit--seed0" in done.stderr
    assert first.read_bytes() == saved
    assert len(list((out / "records").glob("*.json"))) == 2


# --- binary data and a family's default dataset ------------------------------------------------

DEFAULT_FAMILY_SOURCE = """
import dataclasses

from evalgen import hookimpl
from toy_plugins import ToyFamily


class DefaultFamily(ToyFamily):
    def __init__(self, name, default):
        super().__init__(name)
        self.default = default

    @hookimpl
    def evalgen_family(self):
        return dataclasses.replace(ToyFamily.evalgen_family(self), default_dataset=self.default)


tiny = DefaultFamily("tinydefault", "tiny-binarized-digits")
typo = DefaultFamily("typodefault", "tiny-binarised-digits")
"""


@pytest.fixture
def default_families(install_plugin, unit_budget):
    install_plugin("tinydefault", "default_family:tiny", module_source=DEFAULT_FAMILY_SOURCE)
    install_plugin("typodefault", "default_family:typo")


def load_record(out, key):
    import json

    return json.loads((out / "records" / f"{key}.json").read_text())


# --- independent references: numpy/scipy/sklearn on a run's checkpoint, not the harness's code ---

def factorized_logits(out, key):
    """The (D, L) logits of an independent-categorical checkpoint (the baseline and the toy family)."""
    return read_checkpoint(checkpoint_path(out, key))["state_dict"]["logits"].double().numpy()


QUICK_OUTLIER_EXAMPLES = next(b for b in PRESETS if b.name == "quick").outlier_examples


def factorized_log_prob(logits, x):
    """log p(x) = sum_d log softmax(logits_d)[x_d], in numpy: (N,) nats."""
    log_p = scipy.special.log_softmax(logits, axis=1)
    index = x.reshape(len(x), -1).long().numpy()
    return log_p[np.arange(log_p.shape[0]), index].sum(axis=1)


def uniform_noise_auroc(log_prob, dataset):
    """sklearn's AUROC of the score -log p(x)/D, the first ``quick.outlier_examples`` of the
    dataset's test set (label 0) against as many of the harness's uniform-noise outliers (label 1:
    the same seeded set, `synthetic_outliers`)."""
    test = dataset.test.x[:QUICK_OUTLIER_EXAMPLES]
    generator = torch.Generator().manual_seed(OUTLIER_SEED)
    noise = synthetic_outliers(dataset.shape, dataset.levels, len(test), generator)["uniform-noise"]
    scores = -np.concatenate([log_prob(test), log_prob(noise)])
    return roc_auc_score(np.r_[np.zeros(len(test)), np.ones(len(noise))], scores)


def digits_features(stored, levels):
    """The digits classifier's logits and embedding of stored values, straight from the extractor."""
    weights = ensure_extractor("digits-classifier")  # the one the run trained into the tests' cache
    return {k: v.numpy() for k, v in extract_features(to_uint8(stored, levels), weights).items()}


def test_help_and_listing_name_the_binary_datasets():
    help_text = " ".join(invoke("run", "--help").output.split())
    assert "default: the family's default dataset, else digits" in help_text
    listing = invoke("datasets").output
    for name in ("binarized-digits", "tiny-binarized-digits"):
        line = next(line for line in listing.splitlines() if line.startswith(name + " "))
        assert "binary" in line and line.endswith("[built in]")


def test_a_family_default_dataset_is_used_when_dataset_is_omitted(tmp_path, default_families):
    """References for the toy model's numbers: -mean log p(test) and the uniform-noise AUROC recomputed
    with numpy/sklearn from its checkpoint's logits; bits/dim = nats / (16 ln 2); the uniform model's
    16 ln 2 nats, which 100 steps of fitting the pixel frequencies beat."""
    out = tmp_path / "out"
    result = invoke("run", "--plugin", "tinydefault", "--budget", "unit", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "dataset: tiny-binarized-digits (the default of plugin 'tinydefault'" in result.output
    assert sorted(p.name for p in (out / "records").iterdir()) == [  # the baseline row on the same data
        "baselines--categorical--tiny-binarized-digits--unit--seed0.json",
        "tinydefault--toy--tiny-binarized-digits--unit--seed0.json"]
    record = load_record(out, "tinydefault--toy--tiny-binarized-digits--unit--seed0")
    assert record["dataset"]["shape"] == [1, 4, 4] and record["dataset"]["levels"] == 2
    metrics = record["metrics"]
    nll = metrics["test_nll"]
    dataset = load_dataset("tiny-binarized-digits")
    logits = factorized_logits(out, "tinydefault--toy--tiny-binarized-digits--unit--seed0")
    assert nll["num_dims"] == 16 and nll["num_examples"] == len(dataset.test)
    assert nll["nats"] == pytest.approx(-factorized_log_prob(logits, dataset.test.x).mean(), rel=1e-6)
    assert nll["bits_per_dim"] == pytest.approx(nll["nats"] / (16 * math.log(2)), rel=1e-12)
    assert nll["nats"] < 16 * math.log(2) - 1.0  # beats the uniform model by more than a nat
    # No classifier for 4x4 images: sample quality and mode coverage say why they were skipped.
    assert metrics["sample_quality"] == {"skipped": "dataset 'tiny-binarized-digits' names no feature extractor"}
    assert "tiny-binarized-digits" in metrics["mode_coverage"]["skipped"]
    auroc = metrics["outliers"]["sets"]["uniform-noise"]["auroc"]
    assert auroc == pytest.approx(uniform_noise_auroc(lambda x: factorized_log_prob(logits, x), dataset), abs=1e-4)


def test_an_explicit_dataset_wins_and_an_unknown_default_is_one_line(tmp_path, default_families):
    out = tmp_path / "out"
    result = invoke("run", "--plugin", "typodefault", "--budget", "unit", "--out", str(out))
    assert_one_line_error(result, "plugin 'typodefault'", "unknown dataset 'tiny-binarised-digits'",
                          "did you mean 'tiny-binarized-digits'", "--dataset")
    assert not out.exists()
    result = invoke("run", "--plugin", "typodefault", "--dataset", "tiny-binarized-digits", "--budget", "unit",
                    "--no-baseline", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "the default of plugin" not in result.output
    records = [p.name for p in (out / "records").iterdir()]
    assert records == ["typodefault--toy--tiny-binarized-digits--unit--seed0.json"]


def test_baselines_on_binarized_digits_fill_nll_sample_quality_and_auroc(tmp_path):
    """References, all from the run's checkpoint outside the harness: the test NLL is -mean log p(test)
    of its logits (numpy); the samples, redrawn from it with the run's sampling seed, give the recorded
    IS (numpy, Salimans et al. over torch-fidelity's 10 shuffled splits), FID (scipy sqrtm) and KID
    (the unbiased polynomial-kernel MMD^2 of all pairs, within 4 standard errors of the mean over the
    subsets) on the digits classifier's features of them and of the test set; the uniform-noise AUROC
    is sklearn's on -log p(x)/D, and exceeds 0.9 (a sign flip gives below 0.1)."""
    out = tmp_path / "out"
    result = invoke("run", "--plugin", "baselines", "--dataset", "binarized-digits", "--budget", "smoke",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "binarized-digits" in result.output and "FID" in result.output and "AUROC" in result.output
    record = load_record(out, "baselines--categorical--binarized-digits--smoke--seed0")
    assert record["status"] == "ok"
    assert record["dataset"]["kind"] == "binary" and record["dataset"]["sizes"] == [1258, 179, 360]
    m = record["metrics"]
    nll = m["test_nll"]
    assert (nll["kind"], nll["levels"], nll["num_dims"]) == ("exact", 2, 64)
    dataset = load_dataset("binarized-digits")
    logits = factorized_logits(out, "baselines--categorical--binarized-digits--smoke--seed0")
    assert nll["nats"] == pytest.approx(-factorized_log_prob(logits, dataset.test.x).mean(), rel=1e-6)
    assert nll["bits_per_dim"] == pytest.approx(nll["nats"] / (64 * math.log(2)), rel=1e-12)
    assert 0 < nll["bits_per_dim"] < 1  # a Bernoulli model: at most 1 bit per binary pixel

    quality = m["sample_quality"]
    assert quality["extractor"] == "digits-classifier"
    n = m["sampling"]["num_samples"]
    assert quality["num_generated"] == n == 256 and quality["num_reference"] == len(dataset.test)
    device = torch.device(record["provenance"]["device"])  # the baseline's sampler, redrawn from the seed
    probs = torch.softmax(torch.from_numpy(logits).float(), dim=1).to(device)
    generator = torch.Generator(device=device).manual_seed(0 + SAMPLE_SEED_OFFSET)
    draws = torch.multinomial(probs, n, replacement=True, generator=generator)
    samples = draws.t().reshape(n, 1, 8, 8).float().cpu()
    generated, real = digits_features(samples, 2), digits_features(dataset.test.x, 2)
    assert quality["inception_score_mean"] == pytest.approx(inception_score(generated[LOGITS]), rel=1e-9)
    assert quality["fid"] == pytest.approx(frechet_distance(generated[EMBEDDING], real[EMBEDDING]), rel=1e-6)
    kid = unbiased_mmd2_poly(generated[EMBEDDING], real[EMBEDDING])
    assert abs(quality["kid_mean"] - kid) <= 4 * quality["kid_std"] / 10 + 1e-9  # 100 subsets

    auroc = m["outliers"]["sets"]["uniform-noise"]["auroc"]
    assert auroc == pytest.approx(uniform_noise_auroc(lambda x: factorized_log_prob(logits, x), dataset), abs=1e-4)
    assert auroc > 0.9
    assert m["mode_coverage"]["num_modes"] == 10


@pytest.mark.parametrize("columns", ["80", "120", "0", "-5", "nonsense", "99999999999"])
def test_the_printed_table_fits_the_terminal_and_table_md_keeps_every_column(tmp_path, unit_budget, columns):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--plugin", "baselines", "--budget", "unit", "--out", str(out)],
                                env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    if columns in ("-5", "nonsense", "99999999999"):  # not a width, or wider than any table: every column
        assert "not shown" not in result.stdout and "likelihood" in result.stdout
        return
    if columns != "0":  # at 40 (the least fitted) the model and its NLL alone may be wider: they stay
        assert max(len(line) for line in lines) <= int(columns), result.stdout
    assert any(line.startswith("baselines:categorical") and "2." in line for line in lines)  # model and bits/dim
    assert "test NLL (bits/dim)" in result.stdout and "not shown (to fit" in result.stdout
    assert "likelihood" in (out / "table.md").read_text().splitlines()[0]


def test_output_that_is_not_a_terminal_gets_every_column(tmp_path, unit_budget):
    result = invoke("run", "--plugin", "baselines", "--budget", "unit", "--out", str(tmp_path / "out"))
    header = next(line for line in result.stdout.splitlines() if "test NLL (bits/dim)" in line)
    assert "likelihood" in header and "FID ↓ [digits-classifier]" in header and "not shown" not in result.stdout
