"""Calls into a family's hooks, with the plugin's errors and contract breaches made readable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from evalgen.errors import EvalgenError, PluginContractError
from evalgen.metrics.nll import discrete_likelihood
from evalgen.plugins import FamilyHooks
from evalgen.types import Batch, DatasetInfo, Likelihood, LikelihoodKind, ModelSpec, Representation, TrainState

SAMPLE_RANGE_TOLERANCE = 1e-4
#: Examples per log_prob call when whole splits are scored (validation, test).
EVAL_BATCH_SIZE = 512


class PluginFailedError(EvalgenError):
    """A plugin's hook raised an exception."""


class CheckedHooks:
    """One family's hooks for one model variant, every call checked: what the plugin returns
    must keep the contract (shapes, dtypes, ranges, finiteness), and what it raises becomes one
    line naming the plugin, the model and the hook."""

    def __init__(self, hooks: FamilyHooks, spec: ModelSpec, importance_samples: int = 1,
                 valid_importance_samples: int = 1, representation: Representation | None = None,
                 dequantization_samples: int = 1) -> None:
        self.hooks = hooks
        self.spec = spec
        self.where = f"plugin '{hooks.family.name}' model '{spec.name}'"
        self.importance_samples = int(importance_samples)
        self.valid_importance_samples = int(valid_importance_samples)
        #: How the run's data reach the model (None: not known, as in the conformance kit): on
        #: dequantized data the likelihood is relabelled as the data's (`discrete_likelihood`).
        self.representation = representation
        #: K, the noise draws per test example on dequantized data (``budget.dequantization_samples``).
        self.dequantization_samples = int(dequantization_samples)
        #: What log_prob is under this run's options (`describe_likelihood`); the spec's until then.
        self.declared = spec.likelihood

    @property
    def has_likelihood(self) -> bool:
        return self.declared.kind is not LikelihoodKind.NONE

    @property
    def likelihood(self) -> Likelihood:
        """The model's likelihood as the test set is scored: sample counts filled in, and what it
        is of the data's discrete values (a density on dequantized data: a bound, K draws)."""
        return self.likelihood_with(self.importance_samples, self.dequantization_samples)

    def likelihood_with(self, importance_samples: int, dequantization_samples: int = 1) -> Likelihood:
        """The likelihood as scored with these sample counts (validation and outlier scores:
        one noise draw); the one place a declared likelihood becomes what a record says."""
        found = self.declared.with_samples(importance_samples)
        return discrete_likelihood(found, self.representation, dequantization_samples)

    def describe_likelihood(self, dataset: DatasetInfo, config: Mapping[str, Any]) -> Likelihood:
        """Ask the family what log_prob is under ``config`` (optional hook); keep it in ``declared``."""
        found = self._call("describe_likelihood", model_name=self.spec.name, dataset=dataset, config=config)
        if found is None:
            return self.declared
        if not isinstance(found, Likelihood) or (found.kind is LikelihoodKind.NONE) != (
                self.spec.likelihood.kind is LikelihoodKind.NONE):
            raise PluginContractError(
                f"{self.where}: evalgen_describe_likelihood should return a Likelihood that has a "
                f"likelihood exactly when the ModelSpec does ({self.spec.likelihood.label}), got {found!r}")
        self.declared = found
        return found

    def likelihood_details(self, model: nn.Module) -> dict[str, Any] | None:
        details = self._call("likelihood_details", model=model)
        if details is not None and not isinstance(details, Mapping):
            raise PluginContractError(f"{self.where}: evalgen_likelihood_details should return a dict or None")
        return None if details is None else dict(details)

    def weights_sha256(self, model: nn.Module) -> str | None:
        """The SHA-256 of the published weights the model was built from (optional hook), or None."""
        found = self._call("weights_sha256", model=model)
        if found is not None and not (isinstance(found, str) and re.fullmatch(r"[0-9a-f]{64}", found)):
            raise PluginContractError(f"{self.where}: evalgen_weights_sha256 should return 64 lowercase hex "
                                      f"digits (a SHA-256) or None, got {str(found)[:80]!r}")
        return found

    def _call(self, hook: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.hooks, hook)(**kwargs)
        except EvalgenError:
            raise
        except Exception as exc:
            raise PluginFailedError(
                f"{self.where}: evalgen_{hook} raised {type(exc).__name__}: {exc}"
            ) from exc

    def build(self, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
        model = self._call("build_model", model_name=self.spec.name, dataset=dataset, config=config)
        if not isinstance(model, nn.Module):
            raise PluginContractError(
                f"{self.where}: evalgen_build_model returned {type(model).__name__}; "
                "it should return a torch.nn.Module"
            )
        return model

    def optimizers(self, model: nn.Module, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
        found = self._call("configure_optimizers", model=model, config=config)
        if found is None:
            return {"model": torch.optim.Adam(model.parameters(), lr=1e-3)}
        if not isinstance(found, Mapping) or not all(
            isinstance(o, torch.optim.Optimizer) for o in found.values()
        ):
            raise PluginContractError(
                f"{self.where}: evalgen_configure_optimizers should return a dict of torch optimizers"
            )
        return dict(found)

    def train_step(self, model: nn.Module, batch: Batch, state: TrainState) -> dict[str, float]:
        """Runs one step; returns every reported scalar as a float (NaN passes: the caller decides).

        `TrainingDiverged` raised by the plugin passes through to the training loop."""
        losses = self._call("train_step", model=model, batch=batch, state=state)
        if not isinstance(losses, Mapping) or not losses:
            raise PluginContractError(
                f"{self.where}: evalgen_train_step should return a non-empty dict of scalar losses, "
                f"got {type(losses).__name__}"
            )
        try:
            return {str(name): float(value) for name, value in losses.items()}
        except (TypeError, ValueError, RuntimeError):
            raise PluginContractError(
                f"{self.where}: evalgen_train_step should return scalars (floats or 0-dim tensors), "
                f"got {', '.join(f'{k}: {type(v).__name__}' for k, v in losses.items())}"
            ) from None

    def log_prob(self, model: nn.Module, x: torch.Tensor, num_importance_samples: int) -> torch.Tensor:
        out = self._call("log_prob", model=model, x=x, num_importance_samples=int(num_importance_samples))
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (x.shape[0],):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise PluginContractError(
                f"{self.where}: evalgen_log_prob should return a tensor of shape ({x.shape[0]},) "
                f"(one log-likelihood per example), got {got}"
            )
        bad = int((~torch.isfinite(out)).sum())
        if bad:
            raise PluginContractError(
                f"{self.where}: evalgen_log_prob returned NaN or inf for {bad} of {x.shape[0]} "
                "examples; it must be finite on every example of the data"
            )
        return out

    @torch.no_grad()
    def log_prob_in_batches(self, model: nn.Module, x: torch.Tensor, num_importance_samples: int,
                            batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
        """(N,) float64 on the CPU: the checked log_prob of ``x`` (N, *shape), ``batch_size``
        examples per call, with the model in eval mode (its mode is restored after)."""
        was_training = model.training
        model.eval()
        try:
            parts = [self.log_prob(model, chunk, num_importance_samples).detach().double().cpu()
                     for chunk in x.split(batch_size)]
        finally:
            model.train(was_training)
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    def outlier_score(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        out = self._call("outlier_score", model=model, x=x)
        if out is None:
            return None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (x.shape[0],):
            raise PluginContractError(
                f"{self.where}: evalgen_outlier_score should return a tensor of shape ({x.shape[0]},) or None"
            )
        if not bool(torch.isfinite(out).all()):
            raise PluginContractError(f"{self.where}: evalgen_outlier_score returned NaN or inf")
        return out

    def sample(self, model: nn.Module, num_samples: int, generator: torch.Generator,
               dataset: DatasetInfo) -> torch.Tensor:
        out = self._call("sample", model=model, num_samples=num_samples, generator=generator)
        expected = (num_samples, *dataset.shape)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise PluginContractError(
                f"{self.where}: evalgen_sample should return a tensor of shape {expected}, got {got}"
            )
        if not out.is_floating_point():
            raise PluginContractError(f"{self.where}: evalgen_sample should return floats, got {out.dtype}")
        _check_sample_values(out, dataset, self.where)
        return out


def _check_sample_values(samples: torch.Tensor, dataset: DatasetInfo, where: str) -> None:
    if not bool(torch.isfinite(samples).all()):
        raise PluginContractError(f"{where}: evalgen_sample returned NaN or inf values")
    rep = dataset.representation
    if rep is Representation.CONTINUOUS:
        return
    high = 1.0 if rep is Representation.DEQUANTIZED else float(dataset.levels - 1)
    low_seen, high_seen = float(samples.min()), float(samples.max())
    if low_seen < -SAMPLE_RANGE_TOLERANCE or high_seen > high + SAMPLE_RANGE_TOLERANCE:
        raise PluginContractError(
            f"{where}: evalgen_sample returned values in [{low_seen:.3g}, {high_seen:.3g}]; "
            f"the {rep.value} representation needs values in [0, {high:g}]"
        )
    if rep is Representation.LEVELS and not bool((samples == samples.round()).all()):
        raise PluginContractError(f"{where}: evalgen_sample should return integer levels as floats")
