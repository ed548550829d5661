"""Budgets in machine-independent units: counted FLOPs, steps; the clock only a safety net.

FLOP formulas are checked against closed forms (2mn for a matrix-vector product, one per element
for elementwise ops, reductions and scans); the step-kind shortcut of the counter against
counting every step; the same command against itself beside a CPU-burning process.
"""

import json
import multiprocessing
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import toy_plugins
from click.testing import CliRunner

from evalgen import Budget, hookimpl
from evalgen.cli import main
from evalgen.datasets.base import LoadContext
from evalgen.harness.flops import FLOP_CONVENTION, StepFlopCounter, count_flops
from evalgen.harness.resolved import resolve_run
from evalgen.harness.runner import RunContext, run_one
from evalgen.harness.spec import RunSpec
from evalgen.harness.training import build_and_train
from evalgen.plugins import load_plugins
from evalgen.tables import CUT_SHORT, comparison
from evalgen.testing.reproducibility import without_timings


def _flops(fn, *args):
    with count_flops() as counter:
        fn(*args)
    return counter.get_total_flops()


def test_formulas_match_closed_forms():
    a, x, y = torch.randn(7, 5), torch.randn(5), torch.randn(7)
    assert _flops(torch.mv, a, x) == 2 * 7 * 5
    assert _flops(torch.addmv, y, a, x) == 2 * 7 * 5
    assert _flops(torch.addr, a.t().contiguous().t(), y, x) == 2 * 7 * 5
    assert _flops(torch.outer, y, x) == 7 * 5  # one multiply per element (it runs as a broadcast mul)
    assert _flops(torch.mm, a, torch.randn(5, 3)) == 2 * 7 * 5 * 3  # PyTorch's own formula
    assert _flops(torch.add, a, x) == 35  # broadcast: one per output element
    assert _flops(torch.sum, a) == 35  # a reduction: one per input element
    assert _flops(torch.cumsum, a, 1) == 35  # a scan
    assert _flops(torch.softmax, a, 1) == 35
    assert _flops(torch.bernoulli, torch.rand(4, 6)) == 24  # a random draw per element
    assert _flops(torch.cat, [a, a]) == 0 and _flops(a.t().contiguous) == 0  # data movement
    assert _flops(torch._foreach_add, [a, x], [a, x]) == 40


def _counted_every_step(hooks, model, batches, state):
    """FLOPs of each step counted one by one (the reference for the counter's shortcut)."""
    totals = []
    for batch in batches:
        with count_flops() as counter:
            hooks.train_step(model, batch, state)
        state.step += 1
        totals.append(counter.get_total_flops())
    return totals


BUNDLED = [(family, model) for family, models in {
    "flows": ("planar", "realnvp", "maf"), "vae": ("vae", "vae-conv", "iwae", "cvae"),
    "gan": ("gan", "wgan", "wgan-gp"), "autoregressive": ("nade", "made", "pixelcnn"),
    "ebm": ("rbm", "rbm-pcd", "dbm"), "baselines": ("categorical",)}.items() for model in models]
STEPS = 16  # a WGAN's generator step is every 5th: three of them


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("unit-budget", toy_plugins.UnitBudget())])


def _setup(plugins, family, model, tmp_path):
    from evalgen.harness.data import ModelData
    from evalgen.harness.runner import seed_everything
    from evalgen.types import TrainState

    dataset_name = "binarized-digits" if family == "ebm" else "digits"
    dataset = plugins.datasets.get(dataset_name).load(LoadContext(tmp_path, False))
    run = resolve_run(RunSpec(family, model, dataset_name, "unit", 0), plugins, dataset)
    seed_everything(0)
    net = run.hooks.build(run.info, run.options)
    state = TrainState(step=0, optimizers=run.hooks.optimizers(net, run.options),
                       generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), dataset=run.info,
                       config=run.options)
    data = ModelData(run.dataset, run.representation, torch.device("cpu"))
    stream = data.batches(16, state.generator)
    return run, net, state, [next(stream) for _ in range(STEPS)]


@pytest.mark.parametrize(("family", "model"), BUNDLED)
def test_charged_flops_equal_counting_every_step(plugins, family, model, tmp_path):
    """The counter counts a few steps per kind and charges the rest: the same total as counting
    each step, for every bundled model (GANs' generator steps included)."""
    run, net, state, batches = _setup(plugins, family, model, tmp_path)
    reference = _counted_every_step(run.hooks, net, batches, state)
    run, net, state, batches = _setup(plugins, family, model, tmp_path)
    counter = StepFlopCounter(state.optimizers)
    for batch in batches:
        with counter.step():
            run.hooks.train_step(net, batch, state)
        state.step += 1
    counter.close()
    assert counter.total == sum(reference) > 0
    assert counter.disagreements == 0 and counter.describe()["unconfirmed_steps"] == 0
    assert counter.counted_steps < STEPS or family == "gan"
    assert counter.describe()["convention"] == FLOP_CONVENTION


def test_counting_does_not_change_training(plugins, tmp_path, monkeypatch):
    """Steps run under the counter compute exactly what they compute without it."""
    def trained():
        run = resolve_run(RunSpec("flows", "realnvp", "digits", "unit", 0), plugins,
                          plugins.datasets.get("digits").load(LoadContext(tmp_path, False)))
        run = replace(run, budget=replace(run.budget, max_steps=8))
        model, _, _ = build_and_train(run, run.dataset, run.spec.seed, torch.device("cpu"), run.label)
        return [p.detach().clone() for p in model.parameters()]

    counted = trained()
    def never_counting(self, counter, counting):
        self.counter, self.mode = counter, None

    monkeypatch.setattr("evalgen.harness.flops._StepScope.__init__", never_counting)
    assert all(torch.equal(a, b) for a, b in zip(counted, trained()))


class Budgets:
    @hookimpl
    def evalgen_register_budgets(self, register):
        register(Budget("compute", "1 GFLOP", max_flops=10**9, max_steps=10_000, max_examples=None,
                        clock_cap_seconds=600, batch_size=64, eval_every=50, patience=100, num_samples=64))
        register(Budget("tiny-cap", "a clock cap no run can meet", max_flops=None, max_steps=10_000,
                        max_examples=None, clock_cap_seconds=0.05, batch_size=64, eval_every=50, patience=100,
                        num_samples=64))


def test_compute_budget_ends_on_the_step_the_flops_run_out(tmp_path):
    plugins = load_plugins(extra=[("budgets", Budgets())])
    ctx = RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path / "data", False))
    record, _ = run_one(RunSpec("flows", "realnvp", "digits", "compute", 0), ctx)
    training = record.training
    per_step = training.flop_counting["flops_per_step_kind"]["model"]
    assert training.stopped_by == "compute" and training.flops == per_step * training.steps
    assert training.steps == -(-10**9 // per_step)  # the first step at which the budget is spent
    assert training.budget_fraction == 1.0 and training.history[-1].flops == training.flops
    assert training.flop_rate == pytest.approx(training.flops / training.seconds)


def test_a_run_the_clock_cap_stops_is_marked_and_not_ranked(tmp_path):
    plugins = load_plugins(extra=[("budgets", Budgets())])
    ctx = RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path / "data", False))
    record, _ = run_one(RunSpec("flows", "realnvp", "digits", "tiny-cap", 0), ctx)
    training = record.training
    assert training.stopped_by == "clock cap" and training.cut_short and 0 < training.budget_fraction < 1
    summary, shown = comparison([record])
    assert summary["fid_mean"].isna().all()
    assert (shown.filter(like="FID") == CUT_SHORT).all().all()
    assert "seed 0 at" in shown["cut short by the clock"].iloc[0]


def _burn(seconds: float) -> None:
    import time
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _run(out, *extra):
    result = subprocess.run([sys.executable, "-m", "evalgen", "run", "--plugin", "gan", "--model", "wgan",
                             "--budget", "smoke", "--dataset", "digits", "--no-baseline", "--out", str(out), *extra],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(next((out / "records").glob("*.json")).read_text())


@pytest.mark.long  # 30-45 s: CI runs it after the suite (.ci/run)
def test_same_command_same_record_on_an_idle_and_a_loaded_machine(tmp_path):
    idle = _run(tmp_path / "idle")
    burners = [multiprocessing.Process(target=_burn, args=(120,)) for _ in range(multiprocessing.cpu_count())]
    for burner in burners:
        burner.start()
    try:
        loaded = _run(tmp_path / "loaded")
    finally:
        for burner in burners:
            burner.terminate()
    assert without_timings(idle) == without_timings(loaded)
    assert idle["training"]["stopped_by"] == "steps" and idle["training"]["steps"] == 100


def test_budgets_command_shows_units():
    result = CliRunner().invoke(main, ["budgets"])
    assert result.exit_code == 0
    assert "training: ≤ 1 TFLOP, ≤ 20000 steps; clock cap" in result.output
    assert "2 FLOPs per multiply-add" in result.output
