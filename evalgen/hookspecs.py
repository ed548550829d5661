"""Every hook evalgen calls, in one place.

A plugin is a module (or object) with functions decorated by ``evalgen.hookimpl`` whose names
match the specs below. Plugins are found through the ``evalgen`` entry-point group.

There are two sorts of plugin:

* **Family plugins** implement ``evalgen_family`` and the model hooks (build, optimizers,
  train step, sample, log_prob, outlier score). When the harness works with a model of family
  F it calls F's implementations only, so families never answer for each other.
* **Cross-cutting plugins** (profiling, EMA weights, sample post-processing, ...) implement the
  model hooks as wrappers, ``@hookimpl(wrapper=True)``, and thereby wrap every family's hooks.

Any plugin may implement the registration hooks to add datasets and budgets.

Units and shapes: ``shape`` is the per-example shape of the dataset (``DatasetInfo.shape``),
``N``/``B`` a number of examples. Values are float32 in the model's representation
(``DatasetInfo.representation``): integers ``0..levels-1`` (``levels``), ``(x + u) / levels``
in [0, 1) (``dequantized``) or raw reals (``continuous``). Likelihoods are natural-log values
per example of that representation (nats); the harness, never the plugin, converts them to
bits/dim and adds the dequantization offset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from evalgen.markers import PROJECT_NAME, hookimpl, hookspec  # noqa: F401 - PROJECT_NAME, hookimpl re-exported

if TYPE_CHECKING:
    import torch
    from torch import nn

    from evalgen.budgets import Budget
    from evalgen.datasets.base import DatasetSpec
    from evalgen.metrics.outlier_scores import OutlierScore
    from evalgen.metrics.registry import MetricSpec
    from evalgen.types import Batch, DatasetInfo, FamilyInfo, Likelihood, TrainState


# --- registration hooks: any plugin -------------------------------------------------------


@hookspec
def evalgen_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Add datasets to the registry.

    Called once, when the plugin manager is first set up (before any command runs).

    :param register: call it with one `evalgen.DatasetSpec` per dataset. A name that is
        already registered is an error that names both plugins.
    :return: nothing.
    """


@hookspec
def evalgen_register_budgets(register: Callable[[Budget], None]) -> None:
    """Add training budget presets.

    Called once, when the plugin manager is first set up.

    :param register: call it with one `evalgen.Budget` per preset; duplicate names are an error.
    :return: nothing.
    """


@hookspec
def evalgen_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Add metrics to the registry.

    Called once, when the plugin manager is first set up. After training, the harness computes
    every registered metric whose ``needs`` and ``data_kinds`` fit the model and the dataset,
    and records the others as skipped with the reason.

    :param register: call it with one `evalgen.MetricSpec` per metric; duplicate names are an
        error.
    :return: nothing.
    """


@hookspec
def evalgen_register_outlier_scores(register: Callable[[OutlierScore], None]) -> None:
    """Add outlier scores: what the outlier-detection metric ranks examples by.

    Called once, when the plugin manager is first set up. For every likelihood model on image
    data, the ``outliers`` metric computes each registered score on the in-distribution test
    examples and on every outlier set, and records AUROC, AUPR and FPR@95%TPR (with bootstrap
    intervals) per (score, set) under ``outliers.scores.<name>``; a score whose ``needs`` the
    model lacks is recorded as skipped, with the reason. Each score gets an AUROC column on the
    headline set.

    :param register: call it with one `evalgen.OutlierScore` per score: ``compute`` maps a
        `evalgen.metrics.outlier_scores.ScoredSet` (stored values (N, *shape), log p (N,) in
        nats, a background model's log p) and a ``ScoreContext`` (D, levels, Ĥ) to (N,) scores,
        higher = more outlying. Duplicate names are an error.
    :return: nothing.
    """


# --- family hooks -------------------------------------------------------------------------


@hookspec
def evalgen_family() -> FamilyInfo:
    """Declare the model family this plugin provides.

    Called when plugins are listed and before every run. A plugin that is not a family does
    not implement it.

    :return: a `evalgen.FamilyInfo`: the family's name (used as ``--plugin``), its model
        variants (`evalgen.ModelSpec`), each with its likelihood kind (exact, lower bound,
        estimate, none), the data kinds it supports and whether it wants dequantized input.
    """


@hookspec(firstresult=True)
def evalgen_build_model(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> nn.Module:
    """Build one untrained model variant for one dataset.

    Called once per run, after the seed has been set (``torch.manual_seed(seed)``), so
    parameter initialisation is reproducible. Also called to rebuild a model before its
    checkpoint (``state_dict``) is loaded, so everything the model needs must come from
    these arguments. The harness moves the model to the device afterwards.

    :param model_name: one of the names declared in ``evalgen_family``.
    :param dataset: shape, kind, levels, labels and the representation the model will see.
    :param config: the plugin options (``evalgen run -o key=value``): every option the model declares
        (``ModelSpec.options``, ``FamilyInfo.options``), defaults filled in and the values checked;
        for a model that declares none, the given values as parsed, unchecked.
    :return: a ``torch.nn.Module`` holding every trainable parameter and buffer.
    """


@hookspec(firstresult=True)
def evalgen_configure_optimizers(model: nn.Module, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """Create the optimizers ``evalgen_train_step`` will find in ``state.optimizers``.

    Called once per run, after the model is on its device. Optional: without it the harness
    uses ``{"model": torch.optim.Adam(model.parameters(), lr=1e-3)}``.

    :param model: the model returned by ``evalgen_build_model``, already on its device.
    :param config: the plugin options, as given to ``evalgen_build_model``.
    :return: a dict name -> optimizer (e.g. ``{"generator": ..., "critic": ...}`` for a GAN).
    """


@hookspec(firstresult=True)
def evalgen_train_step(model: nn.Module, batch: Batch, state: TrainState) -> Mapping[str, Any]:
    """Do one training step: forward, backward, optimizer update(s).

    Called by the harness's loop, which owns the data order, the clock and the budget; the
    model is in ``train()`` mode and the batch is on the model's device.

    :param model: the model being trained.
    :param batch: ``batch.x`` float32 (B, *shape) in the model's representation;
        ``batch.y`` int64 (B,) class labels or None.
    :param state: step counter, optimizers, a seeded generator and per-run scratch space.
    :return: a dict of scalars (floats or 0-dim tensors): the losses, and anything else worth a
        trace, such as gradient norms (by convention named ``grad_norm/<network>``). The harness
        keeps each one's mean per validation interval in the run record (``training.losses``);
        the first entry is shown in the progress bar. A NaN or inf in any entry ends the run
        as "diverged at step N", with the entry named; the sweep goes on.
    :raises evalgen.TrainingDiverged: when the plugin sees that training has failed beyond
        repair (e.g. a discriminator that has won completely for a sustained period); the run
        ends as diverged with the exception's message and the step.
    """


@hookspec(firstresult=True)
def evalgen_sample(model: nn.Module, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    """Draw samples from the model.

    Called after training, in ``eval()`` mode under ``torch.no_grad()``.

    :param model: the trained model.
    :param num_samples: N, the number of samples wanted (the harness batches large requests).
    :param generator: a seeded generator on the model's device; all randomness must come
        from it so that the same seed gives the same samples.
    :return: float32 (N, *shape) on the model's device, in the model's representation:
        integers in [0, levels-1] for ``levels``, values in [0, 1] for ``dequantized``.
        The harness checks shape, dtype, range and finiteness.
    """


@hookspec(firstresult=True)
def evalgen_log_prob(model: nn.Module, x: torch.Tensor, num_importance_samples: int) -> torch.Tensor:
    """Log-likelihood of each example.

    Called on validation batches during training (for best-checkpoint selection) and on the
    test set after training, in ``eval()`` mode under ``torch.no_grad()``. Not called for
    models whose likelihood kind is "none". For an IWAE-bound model it is also called on the
    test set with ``num_importance_samples=1``, which gives the ELBO.

    :param model: the model.
    :param x: float32 (N, *shape) on the model's device, in the model's representation.
    :param num_importance_samples: for a bound or estimate computed by importance sampling
        whose ``Likelihood`` names a ``sample_count``: how many samples per example to use
        (IWAE's K; the budget's ``importance_samples`` on the test set). Exact models ignore it
        and may leave it out of their signature.
    :return: float32 or float64 (N,): log p(x) in nats per example -- a log-pmf for
        ``levels``, a log-density on [0, 1)^D for ``dequantized``, a log-density for
        ``continuous``. If the family declared the value a bound or an estimate, it is that
        bound or estimate. Must be finite for every input in the support.
    """


@hookspec(firstresult=True)
def evalgen_describe_likelihood(model_name: str, dataset: DatasetInfo, config: Mapping[str, Any]) -> Likelihood | None:
    """Say what ``evalgen_log_prob`` will return under this run's options.

    Called once per run, before the model is built. Optional: without it (or when it returns
    None) the ``likelihood`` of the variant's `evalgen.ModelSpec` is used. Use it when options
    change what the number is, e.g. the length of an AIS schedule, so that the label in the
    tables is true: ``Likelihood(LikelihoodKind.ESTIMATE, "AIS, T=1000", sample_count="M")``.

    :param model_name: one of the names declared in ``evalgen_family``.
    :param dataset: the dataset as the model will see it.
    :param config: the plugin options of the run.
    :return: a `evalgen.Likelihood` (its kind must be "none" exactly when the ModelSpec's is), or None.
    """


@hookspec(firstresult=True)
def evalgen_likelihood_details(model: nn.Module) -> Mapping[str, Any] | None:
    """Report how the test set's ``log_prob`` was obtained, beyond its label.

    Called once after ``evalgen_log_prob`` has scored the whole test set. Optional. The result
    is stored with the test NLL in the run record (``metrics.test_nll.details``), e.g. the AIS
    estimate of log Z with its spread over chains and the number of chains and temperatures.

    :param model: the trained model.
    :return: a JSON-serializable dict (finite numbers), or None.
    """


@hookspec(firstresult=True)
def evalgen_outlier_score(model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """Score examples for outlier detection: higher means more likely an outlier.

    Called by the outlier-detection metric. Optional: without it the score is
    ``-log_prob(x) / D`` for models that have a likelihood.

    :param model: the trained model.
    :param x: float32 (N, *shape) in the model's representation.
    :return: float (N,) scores, or None to fall back to the default.
    """


@hookspec(firstresult=True)
def evalgen_weights_sha256(model: nn.Module) -> str | None:
    """Name the published weights a pretrained model was built from.

    Called once per run, after ``evalgen_build_model`` (and training, if any). Optional. For a
    plugin whose ``evalgen_build_model`` loads published weights, scored with ``--budget none``
    (no training): the SHA-256 goes into the record's provenance (``provenance.weights_sha256``),
    so a leaderboard row says which weights it ranks.

    :param model: the model as built (and trained, under a budget that trains).
    :return: the SHA-256 of the weights file (64 lowercase hex digits), or None.
    """
