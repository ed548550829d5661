"""The `autoregressive` family through the CLI: exact NLL, sample quality, AUROC and samples/s;
the acceptance runs on (binarized) MNIST are marked ``long``: NADE and MADE at ``quick``,
PixelCNN at ``standard`` (on 2 CPU cores ``quick`` buys it ~33 steps, too few to beat the
per-pixel baseline's 1.69 bits/dim; ``standard`` on one shared core reached 1.50)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from reference_metrics import frechet_distance, inception_score
from sklearn.metrics import roc_auc_score

from evalgen import load_dataset, split_inputs
from evalgen.cli import main
from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint
from evalgen.harness.evaluation import draw_samples
from evalgen.harness.resolved import resolve_run
from evalgen.harness.spec import RunSpec
from evalgen.metrics.builtin import OUTLIER_SEED
from evalgen.metrics.extractors import EMBEDDING, LOGITS, ensure_extractor, extract_features, to_uint8
from evalgen.metrics.outliers import synthetic_outliers
from evalgen.plugins import load_plugins


def _run(tmp_path, *args):
    result = CliRunner().invoke(main, ["run", "--plugin", "autoregressive", *args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return pd.read_csv(tmp_path / "table.csv").set_index("model")


def test_default_run_on_digits_fills_exact_nll_is_fid_auroc_and_samples_per_second(tmp_path, install_plugin):
    """References: every record's samples/s is its num_samples / seconds and its bits/dim its nats /
    (64 ln 2); every model beats the uniform model's 64 ln 17 nats by 10 and tells uniform noise from
    digits (AUROC > 0.9; a flipped score gives < 0.1); the table shows the records' numbers. NADE's
    checkpoint, reloaded, gives the recorded test NLL (-mean log_prob of the fixed test inputs) and
    uniform-noise AUROC (sklearn on -log p(x)/D), and samples, redrawn with the run's sampling seed,
    whose IS (numpy, Salimans et al. over torch-fidelity's 10 shuffled splits) and FID (scipy sqrtm,
    against the test set) on the digits classifier's features are the recorded ones."""
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    table = _run(tmp_path, "--budget", "unit")
    assert set(table.index) == {"categorical", "nade", "made", "pixelcnn"}
    assert (table["dataset"] == "digits").all() and (table["likelihood"] == "exact").all()
    records = [json.loads(path.read_text()) for path in (tmp_path / "records").glob("*.json")]
    records = {record["spec"]["model"]: record for record in records}
    assert set(records) == set(table.index)
    for model, record in records.items():
        sampling, nll, quality, outliers = (record["metrics"][name] for name in
                                            ("sampling", "test_nll", "sample_quality", "outliers"))
        assert sampling["samples_per_second"] == pytest.approx(sampling["num_samples"] / sampling["seconds"])
        assert nll["bits_per_dim"] == pytest.approx(nll["nats"] / (64 * math.log(2)), rel=1e-12)
        assert nll["nats"] < 64 * math.log(17) - 10, model
        assert outliers["sets"]["uniform-noise"]["auroc"] > 0.9, model
        drawn = quality["draws"]["metrics"]  # tables show the mean over the sample draws
        shown = {"bits_per_dim_mean": nll["bits_per_dim"], "samples_per_second_mean": sampling["samples_per_second"],
                 "inception_score_mean": drawn["inception_score_mean"]["mean"], "fid_mean": drawn["fid"]["mean"],
                 "auroc_mean": outliers["sets"][outliers["headline"]]["auroc"]}
        for column, value in shown.items():
            assert table.loc[model, column] == pytest.approx(value, rel=1e-6), (model, column)

    saved = read_checkpoint(checkpoint_path(tmp_path, records["nade"]["key"]))
    dataset = load_dataset("digits")
    run = resolve_run(RunSpec(**saved["spec"]), load_plugins(), dataset)
    model = run.hooks.build(run.info, run.options)
    model.load_state_dict(saved["state_dict"])
    nade = records["nade"]["metrics"]
    log_p = run.hooks.log_prob_in_batches(model, split_inputs(dataset, "test", run.model), run.hooks.importance_samples)
    assert nade["test_nll"]["nats"] == pytest.approx(float(-log_p.mean()), rel=1e-6)
    noise = synthetic_outliers(dataset.shape, dataset.levels, len(dataset.test),
                               torch.Generator().manual_seed(OUTLIER_SEED), kinds=("uniform-noise",))["uniform-noise"]
    noise_log_p = run.hooks.log_prob_in_batches(model, noise, run.hooks.importance_samples)
    labels = np.r_[np.zeros(len(log_p)), np.ones(len(noise_log_p))]
    auroc = roc_auc_score(labels, -torch.cat([log_p, noise_log_p]).numpy() / 64)
    assert nade["outliers"]["sets"]["uniform-noise"]["auroc"] == pytest.approx(auroc, abs=1e-4)

    device = torch.device(records["nade"]["provenance"]["device"])  # where the run drew its samples
    samples, _ = draw_samples(run.hooks, model.to(device), run.info, run.budget.num_samples, run.spec.seed, device)
    weights = ensure_extractor("digits-classifier")  # the one the run trained into the tests' cache
    generated, real = (extract_features(to_uint8(x, dataset.levels), weights) for x in (samples, dataset.test.x))
    quality = nade["sample_quality"]
    assert quality["inception_score_mean"] == pytest.approx(inception_score(generated[LOGITS].numpy()), rel=1e-9)
    fid = frechet_distance(generated[EMBEDDING].numpy(), real[EMBEDDING].numpy())
    assert quality["fid"] == pytest.approx(fid, rel=1e-6)


@pytest.mark.long
@pytest.mark.parametrize("model,dataset,budget", [("nade", "binarized-mnist", "quick"),
                                                  ("made", "binarized-mnist", "quick"),
                                                  ("pixelcnn", "mnist", "standard")])
def test_budget_beats_the_independent_pixel_baseline(tmp_path, data_copy, monkeypatch, model, dataset, budget):
    monkeypatch.setenv("EVALGEN_DATA_DIR", str(data_copy))
    table = _run(tmp_path, "--model", model, "--dataset", dataset, "--budget", budget)
    print(f"\n{model} on {dataset}, {budget}: {table.loc[model, 'nll_nats_mean']:.2f} nats "
          f"({table.loc[model, 'bits_per_dim_mean']:.4f} bits/dim) in {table.loc[model, 'steps_mean']:.0f} steps; "
          f"baseline {table.loc['categorical', 'nll_nats_mean']:.2f} nats; "
          f"{table.loc[model, 'samples_per_second_mean']:.1f} samples/s")
    assert table.loc[model, "nll_nats_mean"] < table.loc["categorical", "nll_nats_mean"]
