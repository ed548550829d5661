"""The metric registry: what each metric needs, where it applies, and how it is computed.

The harness builds one `MetricInputs` per trained model and computes every registered metric
that applies; a metric that does not apply is recorded as skipped, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evalgen.budgets import Budget
from evalgen.datasets.base import Dataset
from evalgen.metrics.columns import MetricColumn
from evalgen.metrics.dynamics import Traces
from evalgen.metrics.outlier_scores import BUILTIN_SCORES, OutlierScore
from evalgen.types import DataKind, DatasetInfo, Likelihood, LikelihoodKind

#: What a metric can ask for in ``MetricSpec.needs``; a metric whose needs a model or dataset
#: lacks is recorded as skipped, with the reason:
#:
#: * ``samples``: the model's samples (``MetricInputs.samples``; every model has them).
#: * ``log_prob``: a likelihood: the test set's log_prob (``test_log_prob``); not for implicit
#:   models (``LikelihoodKind.NONE``).
#: * ``outlier_score``: a per-example outlier score (``outlier_score``, ``test_outlier_scores``):
#:   the family's own, or -log p(x) / D for models with a likelihood.
#: * ``labels``: a dataset with class labels (``dataset.num_classes``).
#: * ``images``: image data, examples of shape (C, H, W) (``info.shape``).
#: * ``traces``: sample quality and modes traced over training (``traces``: ``--trace light`` or
#:   ``full``, a budget that trains, a dataset with modes or a domain classifier).
NEEDS = frozenset({"samples", "log_prob", "outlier_score", "labels", "images", "traces"})


@dataclass
class MetricInputs:
    """Everything a metric may use about one trained model.

    Attributes:
        dataset: the dataset the model was trained on (stored values, all splits).
        info: the dataset as the model sees it (representation included).
        likelihood: what the model's log_prob is.
        samples: (N, *shape) the model's samples in stored values on the CPU, or None.
        test_log_prob: (N_test,) log_prob of the test set as the model sees it, or None; for a
            density on dequantized data, the importance-weighted dequantization bound
            log (1/K) sum_k p((x + u_k) / L) over the K draws of ``test_dequantization``.
        test_dequantization: (N_test, K) float64 log p((x + u_k) / L) of the test set under K
            dequantization noise draws (``budget.dequantization_samples``, draw 1 the fixed-seed
            one of earlier records), for a model on dequantized data; None otherwise.
        test_elbo: (N_test,) the ELBO of the test set (the IWAE bound at K = 1) for models
            whose likelihood is an IWAE bound, else None.
        likelihood_details: what the family reported about how its test log_prob was obtained
            (``evalgen_likelihood_details``, e.g. an AIS estimate of log Z and its spread), or None.
        outlier_score: stored values (N, *shape) -> (N,) scores (higher = more outlying), or None.
        test_outlier_scores: (N_test,) the outlier scores of the test set, or None.
        outlier_score_label: how the outlier score is computed, for the tables.
        load_dataset: name -> Dataset, for metrics that compare with other datasets.
        budget, seed, device: of the run.
        plugin: the family of the model scored (``--plugin``); "" when not known.
        model: the model variant scored (its ``ModelSpec.name``); "" when not known.
        extractor: the feature extractor of the sample-quality metrics (``evalgen score
            --extractor``); None: the dataset's default.
        more_samples: the further independent draws of ``samples``' size (``budget.sample_draws``
            - 1 of them; none for external samples): sample metrics report their spread over all.
        sample_seeds: the generator seed of each draw, ``samples`` first (empty when not known).
        outlier_log_prob: stored values (N, *shape) -> (N,) float64 log p(x) in nats as the
            outlier sets are scored (one dequantization draw; IWAE at the validation K), for
            models with a likelihood; None otherwise.
        test_outlier_log_prob: (N_out,) that log p of the first ``budget.outlier_examples`` test
            examples, or None.
        outlier_log_prob_note: what stands in for log p ("" when exact; "lower bound: ...").
        outlier_score_is_likelihood: the headline outlier score is -log p(x) / D (the family
            has no score of its own).
        outlier_scores: the registered outlier scores (`evalgen_register_outlier_scores`).
        background_log_prob: stored values -> (N,) log p_bg(x) of the likelihood-ratio score's
            background model, scored as ``outlier_log_prob``; None when there is none.
        background: what the record says about that model (its perturbation and training), or
            ``{"skipped": reason}``; None when no background model was considered.
        traces: sample quality and modes traced over training (`evalgen.metrics.dynamics.Traces`),
            or None (untraced).
    """

    dataset: Dataset
    info: DatasetInfo
    likelihood: Likelihood
    samples: torch.Tensor | None
    test_log_prob: torch.Tensor | None
    outlier_score: Callable[[torch.Tensor], torch.Tensor] | None
    test_outlier_scores: torch.Tensor | None
    outlier_score_label: str
    load_dataset: Callable[[str], Dataset]
    budget: Budget
    seed: int
    device: torch.device
    cache_dir: Path | None = None
    test_elbo: torch.Tensor | None = None
    likelihood_details: dict[str, Any] | None = None
    test_dequantization: torch.Tensor | None = None
    plugin: str = ""
    model: str = ""
    extractor: str | None = None
    more_samples: tuple[torch.Tensor, ...] = ()
    sample_seeds: tuple[int, ...] = ()
    outlier_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None
    test_outlier_log_prob: torch.Tensor | None = None
    outlier_log_prob_note: str = ""
    outlier_score_is_likelihood: bool = False
    outlier_scores: tuple[OutlierScore, ...] = BUILTIN_SCORES
    background_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None
    background: Mapping[str, Any] | None = None
    traces: Traces | None = None

    def available(self) -> set[str]:
        have = set()
        if self.samples is not None:
            have.add("samples")
        if self.test_log_prob is not None and self.likelihood.kind is not LikelihoodKind.NONE:
            have.add("log_prob")
        if self.outlier_score is not None:
            have.add("outlier_score")
        if self.dataset.num_classes:
            have.add("labels")
        if len(self.info.shape) == 3:
            have.add("images")
        if self.traces is not None and self.traces.points:
            have.add("traces")
        return have


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Attributes:
        name: key of its result in the run record's ``metrics``.
        summary: one line for listings.
        needs: subset of `NEEDS`; the metric is skipped when the model or data lacks one.
        data_kinds: data kinds it applies to.
        higher_is_better: for each headline value it reports (a key of its result, or a dotted
            path into it), whether higher is better: the direction of its columns.
        compute: `MetricInputs` -> a JSON-serializable dict (it may raise EvalgenError).
        applies: optional extra check: inputs -> None if it applies, else the reason it does not.
        columns: what it shows in tables and leaderboards (`MetricColumn`); when empty, one
            column per ``higher_is_better`` entry, titled by its key.
    """

    name: str
    summary: str
    needs: frozenset[str]
    data_kinds: frozenset[DataKind]
    higher_is_better: Mapping[str, bool]
    compute: Callable[[MetricInputs], dict[str, Any]]
    applies: Callable[[MetricInputs], str | None] | None = field(default=None)
    columns: tuple[MetricColumn, ...] = ()

    def table_columns(self) -> tuple[MetricColumn, ...]:
        """The declared columns, or one per ``higher_is_better`` entry."""
        if self.columns:
            return self.columns
        return tuple(MetricColumn(re.sub(r"[^a-z0-9_]", "_", f"{self.name}_{key}".lower()), key, key)
                     for key in self.higher_is_better)

    def better(self, column: MetricColumn) -> str | None:
        """"lower", "higher", or None (shown, not ranked) for one of its columns."""
        higher = self.higher_is_better.get(column.field)
        return None if higher is None else ("higher" if higher else "lower")

    def skip_reason(self, inputs: MetricInputs) -> str | None:
        if inputs.info.kind not in self.data_kinds:
            return f"not defined for {inputs.info.kind.value} data"
        missing = sorted(self.needs - inputs.available())
        if missing:
            return f"needs {', '.join(missing)}, which this model or dataset does not provide"
        return self.applies(inputs) if self.applies is not None else None
