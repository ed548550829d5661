"""The training/evaluation harness: budget, checkpoint selection, divergence, determinism."""

import math

import pytest
import torch
import toy_plugins

from evalgen.datasets.base import LoadContext
from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint
from evalgen.harness.contract import CheckedHooks
from evalgen.harness.data import ModelData
from evalgen.harness.evaluation import test_log_prob as evaluate_test_log_prob
from evalgen.harness.runner import RunContext, run_one, run_sweep
from evalgen.harness.spec import RunSpec
from evalgen.options import resolved_options
from evalgen.plugins import load_plugins
from evalgen.records import find_record


def make_context(tmp_path, *extra):
    plugins = load_plugins(extra=[("unit-budget", toy_plugins.UnitBudget()), *extra])
    return RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path / "data", False))


def test_same_seed_gives_the_same_numbers_on_cpu(tmp_path):
    ctx = make_context(tmp_path)
    spec = RunSpec("flows", "realnvp", "digits", "unit", seed=3)
    first, samples_a = run_one(spec, ctx)
    second, samples_b = run_one(spec, ctx)
    assert first.training.stopped_by == "steps"  # the unit budget is step-bound, so runs are comparable
    assert first.metrics["test_nll"] == second.metrics["test_nll"]
    without_seconds = [[[s, loss, v] for s, _, loss, v in r.training.history] for r in (first, second)]
    assert without_seconds[0] == without_seconds[1]
    assert torch.equal(samples_a, samples_b)
    other, _ = run_one(RunSpec("flows", "realnvp", "digits", "unit", seed=4), ctx)
    assert other.metrics["test_nll"]["nats"] != first.metrics["test_nll"]["nats"]


def test_record_carries_provenance_and_budget_used(tmp_path):
    ctx = make_context(tmp_path)
    record, _ = run_one(RunSpec("baselines", "categorical", "digits", "unit", 0), ctx)
    prov = record.provenance
    assert prov.evalgen_version and prov.torch_version and prov.device_name and prov.python_version
    training = record.training
    assert training.steps == 100 and training.examples == 100 * 64
    assert training.budget.name == "unit" and training.seconds > 0
    assert record.dataset.checksum == ctx.dataset("digits").checksum
    nll = record.metrics["test_nll"]
    assert nll["kind"] == "exact" and nll["num_examples"] == len(ctx.dataset("digits").test)
    assert record.metrics["sampling"]["num_samples"] == 256


def test_best_validation_checkpoint_is_kept(tmp_path):
    family = toy_plugins.ToyFamily("worsening", valid_worsens_after=50)
    ctx = make_context(tmp_path, ("worsening", family))
    record, _ = run_one(RunSpec("worsening", "toy", "digits", "unit", 0), ctx)
    history = record.training.history
    assert [row[0] for row in history] == [50, 100]
    assert history[1][3] > history[0][3]  # validation got worse after step 50 ...
    assert record.training.best_step == 50  # ... so step 50's parameters were kept
    assert record.training.best_valid_nll_nats == pytest.approx(history[0][3])


def test_nan_loss_is_recorded_as_diverged_and_the_sweep_goes_on(tmp_path):
    ctx = make_context(tmp_path, ("nanloss", toy_plugins.nan_loss))
    specs = [RunSpec("nanloss", "toy", "digits", "unit", 0),
             RunSpec("baselines", "categorical", "digits", "unit", 0)]
    result = run_sweep(specs, ctx, report=lambda line: None)
    assert not result.failures
    diverged, fine = result.records
    assert diverged.status == "diverged" and diverged.training.diverged_at_step == 7
    assert diverged.metrics == {}
    assert fine.status == "ok"


def test_checkpoint_reloads_with_weights_only_and_gives_the_same_test_nll(tmp_path):
    ctx = make_context(tmp_path)
    spec = RunSpec("flows", "maf", "digits", "unit", 0)
    record, _ = run_one(spec, ctx)
    saved = read_checkpoint(checkpoint_path(tmp_path, spec.key))
    assert saved["spec"] == spec.to_dict()
    family = ctx.plugins.family("flows")
    bound = CheckedHooks(ctx.plugins.hooks("flows"), family.model("maf"))
    dataset = ctx.dataset("digits")
    info = dataset.info(family.model("maf").representation_for(dataset.kind))
    model = bound.build(info, resolved_options(family, "maf"))  # the options run_one hands the hooks
    model.load_state_dict(saved["state_dict"])
    log_p = evaluate_test_log_prob(bound, model, ModelData(dataset, info.representation, torch.device("cpu")))
    nats = float((-log_p + info.num_dims * math.log(17)).mean())
    assert nats == pytest.approx(record.metrics["test_nll"]["nats"], rel=1e-9)


def test_wrapper_plugins_see_every_family_and_families_stay_separate(tmp_path):
    counter = toy_plugins.StepCounter()
    ctx = make_context(tmp_path, ("counter", counter), ("toygood", toy_plugins.good))
    run_one(RunSpec("baselines", "categorical", "digits", "unit", 0), ctx)
    run_one(RunSpec("toygood", "toy", "digits", "unit", 0), ctx)
    assert counter.calls.count("FactorizedCategorical") == 100
    assert counter.calls.count("ToyModel") == 100


def test_existing_records_are_reused_unless_rerun(tmp_path):
    ctx = make_context(tmp_path)
    spec = RunSpec("baselines", "categorical", "digits", "unit", 0)
    run_sweep([spec], ctx, report=lambda line: None)
    before = find_record(tmp_path, spec.key)
    lines = []
    run_sweep([spec], ctx, report=lines.append)
    assert lines[0].startswith("reusing") and find_record(tmp_path, spec.key) == before
    ctx.rerun = True
    run_sweep([spec], ctx, report=lines.append)
    assert lines[1].startswith("done")
