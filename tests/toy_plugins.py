"""Small fake families for harness and CLI tests, each with one deliberate behaviour.

They are registered through real entry points by the ``install_plugin`` fixture.
"""

from __future__ import annotations

import os
import time

import torch
from torch import nn

from evalgen import Budget, DataKind, FamilyInfo, ModelSpec, hookimpl


class ToyModel(nn.Module):
    """Independent Gaussian on dequantized/continuous values, or categorical on levels."""

    def __init__(self, shape, levels):
        super().__init__()
        self.shape = tuple(shape)
        self.levels = levels
        self.logits = nn.Parameter(torch.zeros(int(torch.tensor(shape).prod()), levels or 2))


#: A file's path: while it exists the sleeping toy families sleep in each step, after it is gone they do not.
HOLD_ENV = "EVALGEN_TEST_SLEEP_WHILE"


class ToyFamily:
    """A categorical-per-dimension family whose behaviour the tests switch on."""

    def __init__(self, name, *, sample_shape_bug=False, nan_log_prob=False, nan_loss_at=None,
                 sleep=0.0, valid_worsens_after=None, keep_parameters=False):
        self.name = name
        self.sample_shape_bug = sample_shape_bug
        self.nan_log_prob = nan_log_prob
        self.nan_loss_at = nan_loss_at
        self.sleep = sleep
        self.valid_worsens_after = valid_worsens_after
        #: step -> a copy of the logits right after that step (with ``keep_parameters``)
        self.parameters_after: dict[int, torch.Tensor] | None = {} if keep_parameters else None
        #: every loss this family reported, in order
        self.reported: list[float] = []
        self.steps_seen = 0

    @hookimpl
    def evalgen_family(self):
        spec = ModelSpec("toy", "categorical toy", data_kinds=frozenset({DataKind.DISCRETE, DataKind.BINARY}))
        return FamilyInfo(self.name, f"toy family {self.name}", (spec,))

    @hookimpl
    def evalgen_build_model(self, model_name, dataset, config):
        return ToyModel(dataset.shape, dataset.levels)

    def _log_prob(self, model, x):
        index = x.reshape(x.shape[0], -1).long()
        log_p = torch.log_softmax(model.logits, -1)
        return log_p[torch.arange(log_p.shape[0]), index].sum(1)

    @hookimpl
    def evalgen_train_step(self, model, batch, state):
        hold = os.environ.get(HOLD_ENV)
        if self.sleep and (hold is None or os.path.exists(hold)):
            time.sleep(self.sleep)
        self.steps_seen += 1
        optimizer = state.optimizers["model"]
        loss = -self._log_prob(model, batch.x).mean()
        if self.valid_worsens_after is not None and state.step >= self.valid_worsens_after:
            loss = -loss  # climb: the validation NLL gets worse from here on
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # The first training only: the run's model trains before its background model does.
        if self.parameters_after is not None and state.step + 1 not in self.parameters_after:
            self.parameters_after[state.step + 1] = model.logits.detach().clone()
        if self.nan_loss_at is not None and state.step + 1 >= self.nan_loss_at:
            return {"loss": torch.tensor(float("nan"))}
        self.reported.append(float(loss))
        return {"loss": loss.detach()}

    @hookimpl
    def evalgen_configure_optimizers(self, model, config):
        return {"model": torch.optim.SGD(model.parameters(), lr=0.5)}

    @hookimpl
    def evalgen_log_prob(self, model, x):
        out = self._log_prob(model, x)
        if self.nan_log_prob:
            out = out.clone()
            out[0] = float("nan")
        return out

    @hookimpl
    def evalgen_sample(self, model, num_samples, generator):
        probs = torch.softmax(model.logits, -1)
        draws = torch.multinomial(probs, num_samples, replacement=True, generator=generator).t()
        out = draws.reshape(num_samples, *model.shape).float()
        return out[:, :, :-1] if self.sample_shape_bug else out


good = ToyFamily("toygood")
bad_sample = ToyFamily("badsample", sample_shape_bug=True)
nan_log_prob = ToyFamily("nanlogprob", nan_log_prob=True)
nan_loss = ToyFamily("nanloss", nan_loss_at=7)
slow = ToyFamily("slowtoy", sleep=0.05)
#: 100 smoke steps take about 20 s: long enough to be seen running (--status) and cancelled; with
#: ``HOLD_ENV`` set, its steps sleep only while that file exists (a rerun need not wait)
sleepy = ToyFamily("sleepytoy", sleep=0.2)


class StepCounter:
    """A cross-cutting plugin: wraps every family's train step."""

    def __init__(self):
        self.calls: list[str] = []

    @hookimpl(wrapper=True)
    def evalgen_train_step(self, model, batch, state):
        self.calls.append(type(model).__name__)
        return (yield)


class UnitBudget:
    """Registers a step-bound budget so that test results never depend on machine speed."""

    @hookimpl
    def evalgen_register_budgets(self, register):
        register(Budget("unit", "step-bound, for tests", max_flops=None, clock_cap_seconds=600, max_steps=100,
                        max_examples=None, batch_size=64, eval_every=50, patience=5, num_samples=256))


unit_budget = UnitBudget()


class QuickSteps:
    """The `quick` preset without its wall clock and capped at 500 steps, so that a loaded
    machine cannot cut training short and the suite stays fast. On digits every flow is past the
    baseline (107.5 nats validation NLL) by then: 100.1 (planar), 97.0 (RealNVP), 100.2 (MAF)
    nats at step 500, measured with seed 0 on 2026-12-03 (98.7, 94.4 and 96.4 at step 1,000)."""

    MAX_STEPS = 500

    @hookimpl
    def evalgen_register_budgets(self, register):
        from evalgen.budget_presets import PRESETS

        quick = next(b for b in PRESETS if b.name == "quick")
        register(Budget("quick-steps", "quick, step-bound: for tests", max_flops=None, clock_cap_seconds=3_600,
                        max_steps=self.MAX_STEPS,
                        max_examples=None, batch_size=quick.batch_size, eval_every=quick.eval_every,
                        patience=quick.patience, num_samples=quick.num_samples))


quick_steps = QuickSteps()


def assert_one_line_error(result, *fragments: str) -> None:
    """A CLI result that failed with one "Error: ..." line naming every fragment, no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in last, last
