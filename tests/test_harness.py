"""The training/evaluation harness: budget, checkpoint selection, divergence, determinism."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import toy_plugins

from evalgen import Budget, hookimpl
from evalgen.datasets.base import LoadContext
from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint
from evalgen.harness.contract import CheckedHooks
from evalgen.harness.data import ModelData
from evalgen.harness.evaluation import reports_elbo
from evalgen.harness.evaluation import test_log_prob as evaluate_test_log_prob
from evalgen.harness.runner import RunContext, run_one, run_sweep
from evalgen.harness.spec import RunSpec
from evalgen.metrics.bounds import IWAE_ESTIMATOR
from evalgen.options import resolved_options
from evalgen.plugins import load_plugins
from evalgen.records import find_record
from evalgen.types import Likelihood, LikelihoodKind


def make_context(tmp_path, *extra):
    plugins = load_plugins(extra=[("unit-budget", toy_plugins.UnitBudget()), *extra])
    return RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path / "data", False))


def test_same_seed_gives_the_same_numbers_on_cpu(tmp_path):
    ctx = make_context(tmp_path)
    spec = RunSpec("flows", "realnvp", "digits", "unit", seed=3)
    first, samples_a = run_one(spec, ctx)
    second, samples_b = run_one(spec, ctx)
    assert first.training.stopped_by == "steps"  # the unit budget is step-bound, so runs are comparable
    # the validation NLL is in the test NLL's units (D log L included): the best one is close to it
    assert first.training.best_valid_nll_nats == pytest.approx(first.metrics["test_nll"]["nats"], rel=0.05)
    assert first.metrics["test_nll"] == second.metrics["test_nll"]
    without_seconds = [[[s, loss, v, flops] for s, _, loss, v, flops in r.training.history] for r in (first, second)]
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
    sampling = record.metrics["sampling"]
    assert sampling["num_samples"] == 256
    assert sampling["samples_per_second"] == pytest.approx(sampling["num_samples"] / sampling["seconds"], rel=1e-12)


def test_best_validation_checkpoint_is_kept(tmp_path):
    family = toy_plugins.ToyFamily("worsening", valid_worsens_after=50)
    ctx = make_context(tmp_path, ("worsening", family))
    record, _ = run_one(RunSpec("worsening", "toy", "digits", "unit", 0), ctx)
    history = record.training.history
    assert [row[0] for row in history] == [50, 100]
    assert history[1][3] > history[0][3]  # validation got worse after step 50 ...
    assert record.training.best_step == 50  # ... so step 50's parameters were kept
    assert record.training.best_valid_nll_nats == pytest.approx(history[0][3])


def _categorical_test_nll(logits: torch.Tensor, test_levels: torch.Tensor) -> float:
    """-mean log p of the test set under independent categoricals with these logits (D, L), in
    numpy: the toy model's likelihood, computed outside evalgen."""
    log_p = logits.double().numpy() - np.logaddexp.reduce(logits.double().numpy(), axis=1, keepdims=True)
    index = test_levels.reshape(len(test_levels), -1).long().numpy()
    return float(-log_p[np.arange(log_p.shape[0]), index].sum(1).mean())


def test_the_best_validation_parameters_are_evaluated_and_saved(tmp_path):
    """Reference: the parameters the family held right after step 50, its best validation step;
    the checkpoint holds exactly them and the test NLL is theirs (numpy), not the last step's,
    which is far worse (so a run that kept the last parameters fails)."""
    family = toy_plugins.ToyFamily("worsening", valid_worsens_after=50, keep_parameters=True)
    ctx = make_context(tmp_path, ("worsening", family))
    record, _ = run_one(RunSpec("worsening", "toy", "digits", "unit", 0), ctx)
    assert record.training.best_step == 50
    best, last = family.parameters_after[50], family.parameters_after[100]
    saved = read_checkpoint(checkpoint_path(tmp_path, record.key))["state_dict"]["logits"]
    assert torch.equal(saved, best)
    test = ctx.dataset("digits").test.x
    assert record.metrics["test_nll"]["nats"] == pytest.approx(_categorical_test_nll(best, test), rel=1e-6)
    assert _categorical_test_nll(last, test) > _categorical_test_nll(best, test) + 1.0


class PatienceBudget:
    """Validation every 10 steps, early stopping after 2 without improvement, at most 100 steps."""

    @hookimpl
    def evalgen_register_budgets(self, register):
        register(Budget("patience", "step-bound, for tests", max_flops=None, clock_cap_seconds=600,
                        max_steps=100, max_examples=None,
                        batch_size=64, eval_every=10, patience=2, num_samples=64))


def test_early_stopping_waits_patience_validations_and_traces_are_interval_means(tmp_path):
    """References: the budget's definition (stop after `patience` = 2 validations without
    improvement: the toy improves until step 50, so validations 60 and 70 are the two and training
    stops at 70), and the losses the family itself reported: each trace point is the mean of the
    losses of its interval of 10 steps."""
    family = toy_plugins.ToyFamily("worsening", valid_worsens_after=50)
    ctx = make_context(tmp_path, ("worsening", family), ("patience-budget", PatienceBudget()))
    record, _ = run_one(RunSpec("worsening", "toy", "digits", "patience", 0), ctx)
    training = record.training
    assert (training.steps, training.stopped_by, training.best_step) == (70, "early stopping", 50)
    assert [row.step for row in training.history] == list(range(10, 80, 10))
    expected = [float(np.mean(family.reported[i:i + 10])) for i in range(0, 70, 10)]
    assert training.losses["loss"] == pytest.approx(expected, rel=1e-6)
    assert [row.train_loss for row in training.history] == pytest.approx(expected, rel=1e-6)


def test_nan_loss_is_recorded_as_diverged_and_the_sweep_goes_on(tmp_path):
    ctx = make_context(tmp_path, ("nanloss", toy_plugins.nan_loss))
    specs = [RunSpec("nanloss", "toy", "digits", "unit", 0),
             RunSpec("baselines", "categorical", "digits", "unit", 0)]
    result = run_sweep(specs, ctx, report=lambda line: None)
    assert not result.failures
    diverged, fine = result.records
    assert diverged.status == "diverged" and diverged.training.diverged_at_step == 7
    assert diverged.training.stopped_by == "diverged" and "non-finite training loss" in diverged.training.divergence
    assert diverged.metrics == {}
    assert fine.status == "ok" and fine.training.stopped_by == "steps"


@pytest.mark.parametrize(("likelihood", "expected"), [
    (Likelihood(LikelihoodKind.LOWER_BOUND, IWAE_ESTIMATOR, "K"), True),  # K is the harness's: K = 1 is the ELBO
    (Likelihood(LikelihoodKind.LOWER_BOUND, f"{IWAE_ESTIMATOR}, K=50"), False),  # the family fixed K itself
    (Likelihood(LikelihoodKind.ESTIMATE, "AIS", "M"), False),  # one AIS chain is no ELBO
    (Likelihood(), False),
])
def test_an_elbo_is_reported_beside_iwae_bounds_whose_k_the_harness_sets(likelihood, expected):
    assert reports_elbo(SimpleNamespace(declared=likelihood)) is expected


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
    # 100 steps each for the model and for its background model (the likelihood-ratio score's)
    assert counter.calls.count("FactorizedCategorical") == 200
    assert counter.calls.count("ToyModel") == 200


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
