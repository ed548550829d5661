"""The training loop: budget, validation with best-checkpoint selection, divergence."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from evalgen.budgets import NO_TRAINING, Budget
from evalgen.errors import TrainingDiverged
from evalgen.harness.clock import TrainingClock
from evalgen.harness.contract import CheckedHooks
from evalgen.harness.data import ModelData
from evalgen.metrics.nll import nll_nats
from evalgen.types import TrainState

if TYPE_CHECKING:
    from evalgen.datasets.base import Dataset
    from evalgen.harness.resolved import ResolvedRun
    from evalgen.harness.tracing import Tracer
    from evalgen.record_types import Traces


@dataclass
class TrainOutcome:
    """What training did.

    ``history`` rows: [step, train seconds, mean of the first reported loss, valid NLL, counted
    training FLOPs so far], one per validation point (every ``eval_every`` steps and at the end).
    ``losses`` holds, per name the
    train step reported (losses, gradient norms, ...), its mean over the steps since the previous
    row, aligned with ``history`` (None where the name was not reported in that window).
    """

    seconds: float = 0.0
    steps: int = 0
    examples: int = 0
    flops: int = 0
    #: how the FLOPs were counted (`evalgen.harness.flops.StepFlopCounter.describe`)
    flop_counting: dict[str, Any] = field(default_factory=dict)
    #: how far training got towards the nearest limit of its budget, in [0, 1]
    budget_fraction: float = 0.0
    stopped_by: str = ""
    diverged_at_step: int | None = None
    divergence: str | None = None
    best_step: int | None = None
    best_valid_nll: float | None = None
    history: list[list[float | None]] = field(default_factory=list)
    losses: dict[str, list[float | None]] = field(default_factory=dict)
    #: sample quality and modes over training (`evalgen.harness.tracing`), None untraced
    traces: Traces | None = None

    def diverge(self, step: int, reason: str) -> None:
        self.diverged_at_step, self.divergence, self.stopped_by = step, reason, "diverged"

    def add_row(self, clock: TrainingClock, window: dict[str, list[float]], valid: float | None) -> None:
        means = {name: sum(v) / len(v) for name, v in window.items() if v}
        first = next(iter(means.values()), None)
        self.history.append([clock.steps, clock.seconds, first, valid, clock.flops.total])
        for name in means.keys() - self.losses.keys():
            self.losses[name] = [None] * (len(self.history) - 1)
        for name, trace in self.losses.items():
            trace.append(means.get(name))


def _non_finite(losses: dict[str, float]) -> str | None:
    bad = [f"'{name}' = {value}" for name, value in losses.items() if not math.isfinite(value)]
    return f"non-finite training loss: {', '.join(bad)}" if bad else None


def mean_nll(hooks: CheckedHooks, model: nn.Module, x: torch.Tensor, data: ModelData) -> float:
    """Mean NLL in nats/example over ``x`` (the dequantization offset included)."""
    log_p = hooks.log_prob_in_batches(model, x, hooks.valid_importance_samples)
    return float(nll_nats(log_p, data.representation, x[0].numel(), data.levels).mean())


class _Best:
    """Keeps a copy of the parameters with the lowest validation NLL."""

    def __init__(self) -> None:
        self.nll = math.inf
        self.step: int | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.stale = 0

    def offer(self, nll: float, step: int, model: nn.Module) -> None:
        if nll < self.nll:
            self.nll, self.step, self.stale = nll, step, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1


def _trace(tracer: Tracer | None, best: _Best, model: nn.Module, clock: TrainingClock, last: bool) -> None:
    """A trace point at a validation point (the clock paused); for an implicit model, the
    traced FID is what picks the kept parameters."""
    if tracer is None or not tracer.due(clock.budget_fraction(), last):
        return
    point = tracer.trace(model, clock.steps, clock.flops.total)
    if tracer.selects and point is not None and point.fid is not None:
        best.offer(point.fid, clock.steps, model)


def train(hooks: CheckedHooks, model: nn.Module, data: ModelData, budget: Budget,
          state: TrainState, label: str, tracer: Tracer | None = None) -> TrainOutcome:
    """Train ``model`` until the budget, early stopping or divergence ends it.

    For likelihood models the parameters of the best validation step are restored at the end;
    for implicit models traced with a classifier, those of the lowest traced FID (``tracer``).
    A budget of no training (`Budget.trains`) takes no step: the model stays as it was built.
    """
    outcome = TrainOutcome()
    if not budget.trains:
        outcome.stopped_by, outcome.budget_fraction = NO_TRAINING, 1.0
        model.eval()
        return outcome
    clock = TrainingClock(budget, state.optimizers)
    best = _Best()
    validate = hooks.has_likelihood and hooks.spec.validation_nll
    window: dict[str, list[float]] = {}
    model.train()
    progress = tqdm(total=budget.max_steps, desc=label, unit="step", leave=False,  # pragma: no mutate
                    disable=None, mininterval=1.0)  # pragma: no mutate (a progress bar changes no number)
    if tracer is not None:
        tracer.trace(model, 0, 0)  # the model as built
    clock.start()
    for batch in data.batches(budget.batch_size, state.generator):
        try:
            with clock.flops.step():
                losses = hooks.train_step(model, batch, state)
        except TrainingDiverged as exc:
            outcome.diverge(state.step + 1, str(exc))
            break
        state.step += 1
        clock.tick(batch.x.shape[0])
        if (reason := _non_finite(losses)) is not None:
            outcome.diverge(state.step, reason)
            break
        for name, value in losses.items():
            window.setdefault(name, []).append(value)
        limit = clock.exhausted()
        if state.step % budget.eval_every == 0 or limit:
            clock.pause()
            valid = mean_nll(hooks, model, data.valid_x, data) if validate else None
            outcome.add_row(clock, window, valid)
            window = {}
            progress.update(state.step - progress.n)
            progress.set_postfix(loss=f"{outcome.history[-1][2]:.4g}", refresh=False)
            if valid is not None:
                if not math.isfinite(valid):
                    outcome.diverge(state.step, f"non-finite validation NLL ({valid})")
                    break
                best.offer(valid, state.step, model)
                if best.stale >= budget.patience:
                    limit = "early stopping"
            _trace(tracer, best, model, clock, last=bool(limit))
            if limit:
                outcome.stopped_by = limit
                break
            clock.start()
    clock.pause()
    clock.flops.close()
    progress.close()
    if outcome.diverged_at_step is not None and any(window.values()):
        outcome.add_row(clock, window, None)  # the trace up to the divergence
    outcome.seconds, outcome.steps, outcome.examples = clock.seconds, clock.steps, clock.examples
    outcome.flops, outcome.flop_counting = clock.flops.total, clock.flops.describe()
    outcome.budget_fraction = clock.budget_fraction()
    if best.state is not None:
        model.load_state_dict(best.state)
        outcome.best_step, outcome.best_valid_nll = best.step, best.nll if validate else None
    if tracer is not None:
        outcome.traces = tracer.section(outcome.best_step)
    model.eval()
    return outcome


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_and_train(run: ResolvedRun, dataset: Dataset, seed: int, device: torch.device, label: str,
                    prebuilt: nn.Module | None = None,
                    tracer: Tracer | None = None) -> tuple[nn.Module, ModelData, TrainOutcome]:
    """Build ``run``'s model after seeding with ``seed`` (or take ``prebuilt``), then train it on
    ``dataset`` (the run's, or a background model's perturbed copy) under the run's budget,
    traced by ``tracer``."""
    seed_everything(seed)
    model = (prebuilt if prebuilt is not None else run.hooks.build(run.info, run.options)).to(device)
    state = TrainState(step=0, optimizers=run.hooks.optimizers(model, run.options),
                       generator=torch.Generator(device=device).manual_seed(seed),
                       device=device, dataset=run.info, config=run.options)
    data = ModelData(dataset, run.representation, device)
    return model, data, train(run.hooks, model, data, run.budget, state, label=label, tracer=tracer)
