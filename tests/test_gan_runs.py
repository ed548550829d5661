"""The `gan` family through the harness: implicit-model rows, traces, grids, divergence, and
the acceptance runs of the GAN issue (the quick-budget ones are marked ``long``)."""

from __future__ import annotations

import pytest
import torch
import toy_plugins

from evalgen import Budget, hookimpl
from evalgen.datasets.base import LoadContext
from evalgen.harness.data import to_stored_values
from evalgen.harness.runner import RunContext, run_sweep
from evalgen.harness.spec import RunSpec
from evalgen.metrics.fidelity import sample_quality
from evalgen.options import resolved_options
from evalgen.plugins import load_plugins
from evalgen.tables import comparison
from evalgen_gan import hooks

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ToySteps:
    """A step-bound budget for the 2-D regression check (machine speed does not matter)."""

    @hookimpl
    def evalgen_register_budgets(self, register):
        register(Budget("toy-5k", "5000 steps, for tests", max_flops=None, clock_cap_seconds=600,
                        max_steps=5_000, max_examples=None,
                        batch_size=128, eval_every=1_000, patience=5, num_samples=2_000))


def _context(tmp_path, data_dir=None):
    plugins = load_plugins(extra=[("unit-budget", toy_plugins.UnitBudget()), ("toy-steps", ToySteps())])
    return RunContext(plugins, tmp_path / "out", torch.device("cpu"),
                      LoadContext(data_dir or tmp_path / "nodata", allow_download=False))


def _sweep(ctx, specs):
    return run_sweep(specs, ctx, report=lambda line: None)


def _table(records):
    return comparison(records)[1]


def test_gan_rows_show_no_likelihood_a_critic_auroc_a_trace_and_a_sample_grid(tmp_path):
    ctx = _context(tmp_path)
    result = _sweep(ctx, [RunSpec("baselines", "categorical", "digits", "unit", 0),
                          RunSpec("gan", "wgan-gp", "digits", "unit", 0)])
    assert not result.failures
    baseline, gan = result.records
    assert gan.status == "ok" and gan.model.likelihood == "none"
    assert "skipped" in gan.metrics["test_nll"]
    assert gan.metrics["outliers"]["score"] == hooks.CRITIC_SCORE
    # Reference: uniform noise is nothing like digits, so a critic that has trained at all scores it
    # as more outlying than the test set (AUROC > 0.5; the score's sign flipped gives 1 - AUROC).
    sets = gan.metrics["outliers"]["sets"]
    assert sets["uniform-noise"]["auroc"] > 0.7, sets
    # losses and gradient norms, one mean per validation interval
    trace = gan.training.losses
    assert {"loss/critic", "gradient_penalty", "wasserstein_estimate", "grad_norm/discriminator",
            "loss/generator", "grad_norm/generator"} <= trace.keys()
    assert all(len(v) == len(gan.training.history) == 2 for v in trace.values())
    # the sample grid of an image run
    for record in (baseline, gan):
        assert (ctx.out_dir / record.samples_grid).read_bytes()[:8] == PNG_MAGIC
    table = _table(result.records).set_index("model")
    assert table.loc["gan:wgan-gp", "test NLL (nats) ↓"] == "n/a (implicit model)"
    assert table.loc["gan:wgan-gp", "test NLL (bits/dim) ↓"] == "n/a (implicit model)"
    value, interval = table.loc["baselines:categorical", "test NLL (bits/dim) ↓"].split(" ", 1)
    assert value.replace(".", "").isdigit() and interval.startswith("[")  # one seed: its own interval
    auroc = table.loc["gan:wgan-gp", "AUROC ↑"]
    assert "critic output" in auroc and "[-log p(x) / D" in table.loc["baselines:categorical", "AUROC ↑"]
    assert table.loc["gan:wgan-gp", "modes ↑"].endswith("/10")


def test_nan_losses_are_recorded_as_diverged_and_the_sweep_goes_on(tmp_path):
    ctx = _context(tmp_path)
    result = _sweep(ctx, [RunSpec("gan", "gan", "digits", "unit", 0, {"lr": 1e30}),
                          RunSpec("gan", "wgan-gp", "digits", "unit", 0)])
    assert not result.failures
    diverged, fine = result.records
    assert diverged.status == "diverged" and diverged.metrics == {}
    assert diverged.training.diverged_at_step == 1
    assert "non-finite training loss" in diverged.training.divergence
    assert diverged.samples_grid is None
    assert fine.status == "ok" and "fid" in fine.metrics["sample_quality"]
    table = _table(result.records)
    (diverged_row,) = table[table.model.str.startswith("gan:gan [")].itertuples()  # labelled with its -o
    assert diverged_row.diverged == "seed 0@step 1"


def test_a_discriminator_that_wins_for_the_window_is_recorded_as_diverged(tmp_path):
    ctx = _context(tmp_path)
    spec = RunSpec("gan", "gan", "digits", "unit", 0, {"lr_g": 0.0, "divergence_window": 30})
    (record,) = _sweep(ctx, [spec]).records
    assert record.status == "diverged" and "won completely" in record.training.divergence
    step = record.training.diverged_at_step
    assert 30 <= step < 100 and f"since step {step - 29}" in record.training.divergence
    assert record.training.losses["loss/discriminator"]  # the trace up to the divergence is kept


@pytest.mark.long  # 30-45 s: CI runs it after the suite (.ci/run)
def test_wgan_gp_covers_the_eight_gaussians_within_5000_steps(tmp_path):
    """A step-bound regression check of the quick-budget acceptance run below."""
    ctx = _context(tmp_path)
    (record,) = _sweep(ctx, [RunSpec("gan", "wgan-gp", "eight-gaussians", "toy-5k", 0)]).records
    coverage = record.metrics["mode_coverage"]
    print(f"wgan-gp, 5000 steps: {coverage['modes_covered']}/8 modes, {coverage['high_quality']:.1%} high quality")
    assert coverage["modes_covered"] == 8 and coverage["high_quality"] >= 0.5
    # traced over training: the coverage curve rises to every mode; no hopping, no collapse
    covered = [p.modes_covered for p in record.training.traces.points]
    print(f"traced modes covered: {covered}")
    assert covered[0] < 8 and covered[-1] == 8
    dynamics = record.metrics["dynamics"]
    assert dynamics["hopping"]["hops"] == 0 and not dynamics["collapse"]["collapsed"], dynamics


@pytest.mark.long
def test_eight_gaussians_at_the_quick_budget(tmp_path):
    """Acceptance: WGAN-GP covers 8/8 modes with >= 80% high-quality samples; the table shows
    modes and quality for both losses."""
    ctx = _context(tmp_path)
    result = _sweep(ctx, [RunSpec("gan", m, "eight-gaussians", "quick", 0) for m in ("gan", "wgan-gp")])
    table = _table(result.records).set_index("model")
    print("\n" + table[["modes ↑", "HQ % ↑", "mode KL ↓", "steps"]].to_string())
    coverage = {r.spec.model: r.metrics["mode_coverage"] for r in result.records}
    assert coverage["wgan-gp"]["modes_covered"] == 8 and coverage["wgan-gp"]["high_quality"] >= 0.8
    assert all(table.loc[f"gan:{m}", "modes ↑"].endswith("/8") and table.loc[f"gan:{m}", "HQ % ↑"]
               for m in ("gan", "wgan-gp"))


def _untrained_fid(ctx, dataset_name: str, num_samples: int, seed: int = 0) -> float:
    """FID of the wgan-gp generator as built (the run's seed), scored like the trained one."""
    dataset = ctx.dataset(dataset_name)
    spec = ctx.plugins.family("gan").model("wgan-gp")
    info = dataset.info(spec.representation_for(dataset.kind))
    torch.manual_seed(seed)
    config = resolved_options(ctx.plugins.family("gan"), "wgan-gp")
    model = hooks.evalgen_build_model(model_name="wgan-gp", dataset=info, config=config).eval()
    with torch.no_grad():
        samples = model.sample(num_samples, torch.Generator().manual_seed(seed))
    return sample_quality(to_stored_values(samples, info.representation, info.levels), dataset).fid


@pytest.mark.long
def test_wgan_gp_on_mnist_at_the_quick_budget_beats_its_untrained_self_and_the_pixel_baseline(
        tmp_path, data_copy):
    ctx = _context(tmp_path, data_copy)
    result = _sweep(ctx, [RunSpec("baselines", "categorical", "mnist", "quick", 0),
                          RunSpec("gan", "wgan-gp", "mnist", "quick", 0)])
    fid = {r.spec.model: r.metrics["sample_quality"]["fid"] for r in result.records}
    fid["untrained"] = _untrained_fid(ctx, "mnist", result.records[1].metrics["sampling"]["num_samples"])
    steps = result.records[1].training.steps
    print(f"\nMNIST FID [mnist-classifier]: wgan-gp {fid['wgan-gp']:.2f} after {steps} steps, "
          f"untrained {fid['untrained']:.2f}, independent-pixel baseline {fid['categorical']:.2f}")
    assert fid["wgan-gp"] < 0.5 * fid["untrained"]
    assert fid["wgan-gp"] < fid["categorical"]
