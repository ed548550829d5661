"""The run record as types: what `evalgen.records` writes and reads back, and what the tables,
the leaderboard and the CLI summary read, by attribute rather than by string keys.

A record is built by the harness (`evalgen.harness.runner`) from these parts and serialized by
`RunRecord.to_dict` (the JSON of `evalgen.record_schema`); `RunRecord.from_dict` turns a record
that `evalgen.records.read_record` has already validated back into them. The JSON Schema is tested
against these fields (`tests/test_records.py`), so the two cannot drift apart.

Metric sections stay metric-owned JSON (``metrics[name]``, a dict, or ``{"skipped": why}``): each
metric declares the columns it contributes and where they are read from
(`evalgen.metrics.registry.MetricColumn`), so no reader hard-codes their keys.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

from evalgen.budgets import CLOCK_CAP, Budget
from evalgen.metrics.dynamics import TracePoint, Traces
from evalgen.runspec import RunSpec
from evalgen.types import LikelihoodKind

__all__ = ["CLOCK_CAP", "EXTERNAL_PLUGIN", "EXTERNAL_SAMPLES", "NO_TRAINING", "ORIGIN_KINDS", "REEVALUATED", "TRAINED",
           "DatasetSection", "EvaluationSection", "ExternalSamples", "HistoryRow", "ImportanceSamples", "ModelSection",
           "Origin", "Provenance", "Reevaluation", "RunRecord", "Sampling", "TracePoint", "Traces",
           "TrainingSection"]

#: What a record's numbers come from (`Origin.kind`): a model evalgen trained under the budget ...
TRAINED = "trained"
#: ... a model evaluated as its plugin built it (``--budget none``: pretrained weights) ...
NO_TRAINING = "no training"
#: ... samples from anywhere (`evalgen score`): no model, no likelihood ...
EXTERNAL_SAMPLES = "external samples"
#: ... or a finished run's checkpoint evaluated again under other settings (`evalgen eval`).
REEVALUATED = "re-evaluated"
ORIGIN_KINDS = (TRAINED, NO_TRAINING, EXTERNAL_SAMPLES, REEVALUATED)
#: The plugin name of external samples' records (``samples:<name>`` rows); no plugin may take it.
EXTERNAL_PLUGIN = "samples"

#: A metric section: the metric's own numbers, or ``{"skipped": "<why>"}``.
MetricSection = dict[str, Any]


@dataclass(frozen=True)
class ImportanceSamples:
    """Importance samples per example of an importance-sampled likelihood (IWAE's K)."""

    test: int
    validation: int


@dataclass(frozen=True)
class ModelSection:
    """The model that was trained.

    Attributes:
        likelihood: what its log_prob is, as shown: ``"exact"``, ``"lower bound (IWAE, K=100)"``.
        likelihood_kind: the kind alone; tables and leaderboards read this, never the label.
        parameters: number of trainable parameters; None when there is no model (external samples).
        representation: how the data reached it (`evalgen.types.Representation` value).
        options: every plugin option it was built with, defaults included; None when unknown
            (a record of schema 1, or a plugin that declares no options).
    """

    likelihood: str
    likelihood_kind: LikelihoodKind
    parameters: int | None  #: None for external samples (no model)
    summary: str
    family_summary: str
    reference: str
    representation: str
    plugin_version: str | None
    importance_samples: ImportanceSamples | None
    options: dict[str, Any] | None

    @property
    def has_likelihood(self) -> bool:
        return self.likelihood_kind is not LikelihoodKind.NONE


@dataclass(frozen=True)
class DatasetSection:
    """The data it was trained and scored on: ``sizes`` = (train, valid, test) examples."""

    name: str
    kind: str
    shape: tuple[int, ...]
    levels: int | None
    checksum: str | None
    source: str
    sizes: tuple[int, int, int]

    @property
    def num_dims(self) -> int:
        return math.prod(self.shape)


class HistoryRow(NamedTuple):
    """One validation point: step, wall-clock training seconds, train loss, validation NLL (nats),
    counted training FLOPs so far (None in records of schema 1 and 2)."""

    step: int
    seconds: float
    train_loss: float | None
    valid_nll: float | None
    flops: int | None = None


@dataclass(frozen=True)
class TrainingSection:
    """How training went under its budget (seconds are training steps only, not evaluation).

    ``stopped_by``: "compute", "steps", "examples" (the budget's limits), "early stopping",
    "diverged", or "clock cap" (cut short by the wall-clock safety net: not a complete run);
    "seconds" in records of schema 1 and 2, whose budgets were seconds. ``flops`` are counted as
    ``flop_counting["convention"]`` says; ``flop_rate`` is flops / seconds (FLOP/s achieved);
    ``budget_fraction`` how far training got towards the nearest limit of its budget. The three
    are None in records of schema 1 and 2.
    """

    budget: Budget
    seconds: float
    steps: int
    examples: int
    stopped_by: str | None
    best_step: int | None
    best_valid_nll_nats: float | None
    diverged_at_step: int | None
    divergence: str | None
    history: tuple[HistoryRow, ...]
    #: every scalar the train step reported, one mean per validation interval
    losses: dict[str, list[float | None]] = field(default_factory=dict)
    flops: int | None = None
    flop_rate: float | None = None
    flop_counting: dict[str, Any] | None = None
    budget_fraction: float | None = None
    #: None: not traced (``--trace off``, no training, records older than traces)
    traces: Traces | None = None

    @property
    def cut_short(self) -> bool:
        """Stopped by the clock cap before its budget: not comparable with complete runs."""
        return self.stopped_by == CLOCK_CAP


@dataclass(frozen=True)
class EvaluationSection:
    """What evaluating the trained model cost: wall-clock seconds per part ("sampling",
    "test_nll", then each metric by name; "background_training" for the likelihood-ratio
    score's background model), on the record's device."""

    seconds: dict[str, float]

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


@dataclass(frozen=True)
class Provenance:
    """The software and hardware that produced the record."""

    evalgen_version: str
    git_commit: str | None
    torch_version: str
    cuda_version: str | None
    python_version: str
    platform: str
    device: str
    device_name: str
    created_at: str
    #: Where the run executed: "local", "local (N jobs)" or "slurm" (None in older records).
    executor: str | None = None
    host: str | None = None
    slurm_job_id: str | None = None  #: "<array job>_<task>" under SLURM
    #: SHA-256 of the published weights a pretrained model was built from, as its plugin reports
    #: them (``evalgen_weights_sha256``); None otherwise.
    weights_sha256: str | None = None


@dataclass(frozen=True)
class ExternalSamples:
    """Samples scored by `evalgen score`: where they came from.

    Attributes:
        name: what the leaderboard calls them (``--name``; the row ``samples:<name>``).
        file: the file or folder name they were read from (its base name only: a record never
            names a path on the machine that wrote it).
        sha256: of the file's bytes; for a folder, of each image's name and SHA-256 in sorted order
            (`evalgen.harness.external.samples_sha256`).
        count: how many samples were scored.
    """

    name: str
    file: str
    sha256: str
    count: int


@dataclass(frozen=True)
class Reevaluation:
    """A finished run's checkpoint evaluated again (`evalgen eval`): which run, which checkpoint,
    and the evaluation settings that differ from the original's (None: the original's).

    Attributes:
        of: the key of the original record (its training block is this record's).
        checkpoint_sha256: of the checkpoint file that was loaded.
        importance_samples: the test-set K of an importance-sampled likelihood.
        num_samples: samples drawn for the sample-based metrics.
        metrics: the metrics computed (the others are skipped and say so); None: all of them.
    """

    of: str
    checkpoint_sha256: str
    importance_samples: int | None = None
    num_samples: int | None = None
    metrics: tuple[str, ...] | None = None

    @property
    def settings(self) -> list[str]:
        """The changed settings in words: ["K=1000", "N=5000", "metrics: test_nll"]; [] for none."""
        words = [] if self.importance_samples is None else [f"K={self.importance_samples}"]
        if self.num_samples is not None:
            words.append(f"N={self.num_samples}")
        if self.metrics is not None:
            words.append("metrics: " + " ".join(self.metrics))
        return words

    @property
    def key_suffix(self) -> str:
        """What the record's key adds to the original's: "--eval", "--eval-K1000-N5000-m<hash>"."""
        parts = [] if self.importance_samples is None else [f"K{self.importance_samples}"]
        if self.num_samples is not None:
            parts.append(f"N{self.num_samples}")
        if self.metrics is not None:
            parts.append("m" + hashlib.sha256(" ".join(sorted(self.metrics)).encode()).hexdigest()[:8])
        return "--eval" + "".join(f"-{part}" for part in parts)


@dataclass(frozen=True)
class Origin:
    """What the record's numbers come from: ``kind`` (`ORIGIN_KINDS`) and, for external samples
    and re-evaluations, the details. Tables and the leaderboard label every row by it."""

    kind: str = TRAINED
    samples: ExternalSamples | None = None
    reevaluation: Reevaluation | None = None

    @property
    def key_suffix(self) -> str:
        return "" if self.reevaluation is None else self.reevaluation.key_suffix

    @property
    def variant(self) -> str:
        """How a table's row says it: "" for a trained run, "evaluated again: K=1000", ..."""
        if self.kind == REEVALUATED and self.reevaluation is not None:
            return "evaluated again" + (": " + ", ".join(self.reevaluation.settings)
                                        if self.reevaluation.settings else "")
        return "" if self.kind == TRAINED else self.kind

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Origin:
        samples, again = data.get("samples"), data.get("reevaluation")
        if again is not None:
            again = {**again, "metrics": None if again.get("metrics") is None else tuple(again["metrics"])}
        return cls(kind=data["kind"], samples=None if samples is None else ExternalSamples(**samples),
                   reevaluation=None if again is None else Reevaluation(**_known(Reevaluation, again)))


@dataclass(frozen=True)
class Sampling:
    """How many samples were drawn for the sample-based metrics, and how fast."""

    num_samples: int
    seconds: float
    samples_per_second: float | None


@dataclass(frozen=True)
class RunRecord:
    """One run: its identity (``spec``, ``key``), what was trained on what, how, and its metrics."""

    schema: str
    key: str
    status: str  # "ok" or "diverged"
    spec: RunSpec
    model: ModelSection
    dataset: DatasetSection
    training: TrainingSection
    metrics: dict[str, MetricSection]
    samples_grid: str | None
    provenance: Provenance
    #: None in records of schema 1 and 2
    evaluation: EvaluationSection | None = None
    #: "trained" in records of schema 1 to 3
    origin: Origin = field(default_factory=Origin)

    @property
    def finished(self) -> bool:
        return self.status == "ok"

    @property
    def sampling(self) -> Sampling | None:
        section = self.metrics.get("sampling")
        return None if not section else Sampling(**{f.name: section.get(f.name) for f in fields(Sampling)})

    def metric(self, name: str) -> MetricSection | None:
        """The section of metric ``name``; None when it was not computed or was skipped."""
        section = self.metrics.get(name)
        return None if not section or "skipped" in section else section

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON (`evalgen.record_schema`)."""
        payload = asdict(self)
        payload["model"]["likelihood_kind"] = self.model.likelihood_kind.value
        payload["dataset"]["shape"] = list(self.dataset.shape)
        payload["dataset"]["sizes"] = list(self.dataset.sizes)
        payload["training"]["history"] = [list(row) for row in self.training.history]
        again = payload["origin"]["reevaluation"]
        if again is not None and again["metrics"] is not None:
            again["metrics"] = list(again["metrics"])
        return payload

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """The typed record of a record's JSON, validated beforehand (`evalgen.records.read_record`)."""
        model, dataset, training = dict(data["model"]), dict(data["dataset"]), dict(data["training"])
        samples = model["importance_samples"]
        model.update(likelihood_kind=LikelihoodKind(model["likelihood_kind"]),
                     importance_samples=None if samples is None else ImportanceSamples(**samples))
        dataset.update(shape=tuple(dataset["shape"]), sizes=tuple(dataset["sizes"]))
        training.update(budget=Budget(**_known(Budget, training["budget"])),
                        history=tuple(HistoryRow(*row) for row in training["history"]),
                        traces=None if training.get("traces") is None else Traces.from_dict(training["traces"]))
        evaluation = data.get("evaluation")
        return cls(schema=data["schema"], key=data["key"], status=data["status"], spec=RunSpec(**data["spec"]),
                   model=ModelSection(**_known(ModelSection, model)),
                   dataset=DatasetSection(**_known(DatasetSection, dataset)),
                   training=TrainingSection(**_known(TrainingSection, training)),
                   metrics=data["metrics"], samples_grid=data.get("samples_grid"),
                   provenance=Provenance(**_known(Provenance, data["provenance"])),
                   evaluation=None if evaluation is None else EvaluationSection(seconds=evaluation["seconds"]),
                   origin=Origin.from_dict(data["origin"]))


def _known(cls: type, section: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``cls`` in ``section`` (those with defaults may be missing): a record may
    carry more (the schema allows it)."""
    return {f.name: section[f.name] for f in fields(cls) if f.name in section}
