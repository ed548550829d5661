"""One model variant of one family on one kind of data: the thing the checks examine.

A `Subject` calls the family's hooks through `evalgen.harness.contract.CheckedHooks`, so every
result is validated the way the harness validates it (shapes, dtypes, ranges, finiteness) and a
plugin's exception becomes an `EvalgenError` naming the hook. Work that several checks need (the
built model, the trained model, the low-dimensional model) is done once and kept; when it fails,
every check that needs it fails with "not run: ..." and the original error.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from evalgen.errors import EvalgenError
from evalgen.harness.contract import CheckedHooks
from evalgen.plugins import FamilyHooks
from evalgen.testing.data import CheckData, make_data
from evalgen.testing.report import CheckFailed, CheckSkipped
from evalgen.testing.settings import CheckSettings
from evalgen.types import DataKind, Likelihood, LikelihoodKind, ModelSpec, TrainState


def describe_error(exc: BaseException) -> str:
    """A plugin's error as one line (`EvalgenError` messages already name the hook)."""
    if isinstance(exc, (EvalgenError, CheckFailed, CheckSkipped)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """As the harness calls sample and log_prob: ``eval()`` mode, under ``torch.no_grad()``."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


@dataclass
class StepLog:
    """What a run of training steps did, step by step."""

    losses: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    optimizer_steps: list[dict[str, int]] = field(default_factory=list)
    batch_modified_at: int | None = None


@dataclass
class Trained:
    """A model after ``train_steps`` steps on the main check data, with what was measured."""

    model: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    log: StepLog
    changed: dict[str, bool]  #: per optimizer: did any of its parameters change
    unreached: list[str]  #: optimized parameters that no gradient reached and training left as built
    before: float | BaseException | None = None  #: mean log_prob of eval_x before training
    after: float | BaseException | None = None


def _call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # kept and reported by the check that needs it
        return exc


class Subject:
    """The checks' view of one (family, model variant, data kind)."""

    def __init__(self, hooks: FamilyHooks, spec: ModelSpec, kind: DataKind, settings: CheckSettings,
                 config: Mapping[str, Any], min_budget: tuple[str, float] | None) -> None:
        self.hooks = hooks
        self.family = hooks.family.name
        self.spec = spec
        self.kind = kind
        self.settings = settings
        self.config = dict(config)
        self.min_budget = min_budget
        self.device = torch.device(settings.device)
        self.bound = CheckedHooks(hooks, spec, importance_samples=settings.importance_samples,
                                valid_importance_samples=settings.importance_samples)
        self.representation = spec.representation_for(kind)
        shape, levels = self.main_shape(kind)
        self.data = self.make_data(shape, levels)
        self._cache: dict[str, tuple[str, Any]] = {}

    # --- data and shared work ---------------------------------------------------------------

    def main_shape(self, kind: DataKind) -> tuple[tuple[int, ...], int | None]:
        s = self.settings
        if kind is DataKind.BINARY:
            return s.binary_shape, 2
        if kind is DataKind.DISCRETE:
            return s.discrete_shape, s.discrete_levels
        return s.continuous_shape, None

    def make_data(self, shape: tuple[int, ...], levels: int | None) -> CheckData:
        labelled = self.kind is not DataKind.CONTINUOUS or self.spec.needs_labels
        return make_data(self.kind, self.representation, shape, levels, labelled, self.settings, self.device)

    def resource(self, name: str, direct: bool = False) -> Any:
        """Shared work by name (``_make_<name>``), done once. ``direct``: re-raise its own
        error (the check that owns it); otherwise a failure reads "not run: ..."."""
        if name not in self._cache:
            try:
                self._cache[name] = ("ok", getattr(self, f"_make_{name}")())
            except CheckSkipped as exc:
                self._cache[name] = ("skip", exc)
            except Exception as exc:
                self._cache[name] = ("fail", exc)
        status, value = self._cache[name]
        if status == "ok":
            return value
        if status == "skip" or direct:
            raise value
        raise CheckFailed(f"not run: {_WHAT.get(name, name)} failed: {describe_error(value)}")

    @property
    def likelihood(self) -> Likelihood:
        return self.resource("likelihood")

    @property
    def has_likelihood(self) -> bool:
        return self.spec.likelihood.kind is not LikelihoodKind.NONE

    def _make_likelihood(self) -> Likelihood:
        return self.bound.describe_likelihood(self.data.info, self.config)

    def _make_fresh(self) -> nn.Module:
        return self.build(self.data, self.settings.seed)

    def _make_trained(self) -> Trained:
        model = self.build(self.data, self.settings.seed)
        optimizers = self.bound.optimizers(model, self.config)
        before = _call(lambda: self.mean_log_prob(model)) if self.has_likelihood else None
        params = {name: [p.detach().clone() for g in opt.param_groups for p in g["params"]]
                  for name, opt in optimizers.items()}
        initial = {name: p.detach().clone() for name, p in model.named_parameters()}
        optimized = {id(p) for opt in optimizers.values() for g in opt.param_groups for p in g["params"]}
        watched = {name: p for name, p in model.named_parameters() if p.requires_grad and id(p) in optimized}
        reached: set[str] = set()
        handles = [p.register_hook(_reaches(reached, name)) for name, p in watched.items()]
        try:
            log = self.train(model, optimizers, self.data, self.settings.train_steps)
        finally:
            for handle in handles:
                handle.remove()
        changed = {name: any(not torch.equal(old, p.detach()) for old, p in
                             zip(params[name], [p for g in opt.param_groups for p in g["params"]]))
                   for name, opt in optimizers.items()}
        after = _call(lambda: self.mean_log_prob(model)) if self.has_likelihood else None
        unreached = [name for name, p in watched.items()
                     if name not in reached and torch.equal(initial[name], p.detach())]
        return Trained(model, optimizers, log, changed, unreached, before, after)

    def _make_lowdim(self):
        from evalgen.testing.density import make_lowdim

        return make_lowdim(self)

    def _make_lowdim_samples(self) -> torch.Tensor:
        low = self.resource("lowdim")
        return self.sample(low.model, self.settings.agreement_samples, self.settings.seed + 3, low.data)

    # --- hook calls, as the harness makes them ------------------------------------------------

    def build(self, data: CheckData, seed: int) -> nn.Module:
        """Build after ``torch.manual_seed(seed)``, as the harness does, and move to the device."""
        self.resource("likelihood")
        torch.manual_seed(seed)
        return self.bound.build(data.info, self.config).to(self.device)

    def sample(self, model: nn.Module, n: int, seed: int, data: CheckData | None = None) -> torch.Tensor:
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with evaluating(model):
            return self.bound.sample(model, n, generator, (data or self.data).info)

    def log_prob(self, model: nn.Module, x: torch.Tensor, k: int | None = None,
                 reseed: int | None = None, chunk: int = 4_096) -> torch.Tensor:
        """(N,) float64 on the CPU: log_prob of x in chunks, as the harness computes it;
        ``reseed`` seeds the global RNG first (importance sampling inside log_prob draws from it),
        so that two evaluations are comparable."""
        if reseed is not None:
            torch.manual_seed(reseed)
        k = self.settings.importance_samples if k is None else k
        return self.bound.log_prob_in_batches(model, x, k, batch_size=chunk)  # as the harness scores a split

    def mean_log_prob(self, model: nn.Module) -> float:
        return float(self.log_prob(model, self.data.eval_x, reseed=self.settings.seed + 11).double().mean())

    def train(self, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer], data: CheckData,
              steps: int) -> StepLog:
        """``steps`` calls of train_step on random batches, as the harness's loop makes them."""
        generator = torch.Generator(device=self.device).manual_seed(self.settings.seed + 5)
        state = TrainState(step=0, optimizers=optimizers, generator=generator, device=self.device,
                           dataset=data.info, config=self.config)
        log = StepLog()
        counts: dict[str, int] = {}
        handles = [opt.register_step_post_hook(_counter(counts, name)) for name, opt in optimizers.items()]
        model.train()
        try:
            for _ in range(steps):
                batch = data.batch(self.settings.batch_size, generator)
                x_copy = batch.x.clone()
                y_copy = None if batch.y is None else batch.y.clone()
                counts.clear()
                start = time.perf_counter()
                log.losses.append(self.bound.train_step(model, batch, state))
                log.seconds.append(time.perf_counter() - start)
                log.optimizer_steps.append({name: counts.get(name, 0) for name in optimizers})
                modified = not torch.equal(x_copy, batch.x) or (y_copy is not None and not torch.equal(y_copy, batch.y))
                if modified and log.batch_modified_at is None:
                    log.batch_modified_at = state.step
                state.step += 1
        finally:
            for handle in handles:
                handle.remove()
        model.eval()
        return log


def _reaches(reached: set[str], name: str) -> Callable[[torch.Tensor], None]:
    def hook(grad: torch.Tensor) -> None:
        reached.add(name)

    return hook


def _counter(counts: dict[str, int], name: str) -> Callable[..., None]:
    def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        counts[name] = counts.get(name, 0) + 1

    return hook


_WHAT = {
    "likelihood": "evalgen_describe_likelihood",
    "fresh": "building the model",
    "trained": "training the model",
    "lowdim": "building and training the model on low-dimensional data",
    "lowdim_samples": "sampling the low-dimensional model",
}
