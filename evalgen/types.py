"""The value types that cross the plugin boundary.

Everything here is plain data: plugins receive and return these, the harness owns the logic.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


class DataKind(str, enum.Enum):
    """What the values of a dataset are."""

    BINARY = "binary"  #: {0, 1} per dimension
    DISCRETE = "discrete"  #: integers {0, ..., levels-1} per dimension (grey levels)
    CONTINUOUS = "continuous"  #: real vectors (the 2-D toy densities)


class Representation(str, enum.Enum):
    """How the harness hands a dataset's values to one model (see ``ModelSpec.dequantize``)."""

    LEVELS = "levels"  #: float32 holding integers in {0, ..., levels-1}; log_prob is a log-pmf
    DEQUANTIZED = "dequantized"  #: float32 in [0, 1): (x + u) / levels, u ~ U[0, 1); a log-density
    CONTINUOUS = "continuous"  #: float32 real values as stored; a log-density


class LikelihoodKind(str, enum.Enum):
    """What a model's ``log_prob`` number is."""

    EXACT = "exact"
    LOWER_BOUND = "lower bound"
    ESTIMATE = "estimate"
    NONE = "none"  #: implicit model: no log_prob; tables show n/a


@dataclass(frozen=True)
class Likelihood:
    """A likelihood kind with the estimator that produces it, e.g. ("lower bound", "IWAE, K=5000")."""

    kind: LikelihoodKind = LikelihoodKind.EXACT
    estimator: str = "exact"
    #: For an importance-sampled bound or estimate whose sample count the harness sets (the
    #: budget's ``importance_samples``), the name of that count in the label, e.g. "K" for IWAE;
    #: None when the estimator has no such setting or it is already part of ``estimator``.
    sample_count: str | None = None

    @property
    def label(self) -> str:
        if self.kind in (LikelihoodKind.EXACT, LikelihoodKind.NONE):
            return self.kind.value
        return f"{self.kind.value} ({self.estimator})"

    def with_samples(self, num_samples: int) -> Likelihood:
        """The likelihood as evaluated with ``num_samples`` importance samples: the count joins
        the estimator, ``("lower bound", "IWAE", "K")`` -> ``("lower bound", "IWAE, K=100")``.
        Unchanged when the estimator takes no sample count."""
        if self.sample_count is None:
            return self
        return Likelihood(self.kind, f"{self.estimator}, {self.sample_count}={int(num_samples)}")


#: The value types a plugin option can have.
OPTION_TYPES: tuple[type, ...] = (int, float, bool, str)


def _option_value_ok(value: Any, kind: type) -> bool:
    """``value`` is a value of an option of type ``kind`` (an int is a float; a bool is neither)."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


@dataclass(frozen=True)
class Option:
    """One plugin option a model takes (``evalgen run -o name=value``), as the plugin declares it.

    Attributes:
        name: the key after ``-o``, e.g. ``"lr"``.
        type: ``int``, ``float``, ``bool`` or ``str``; a given value is checked and converted
            (an int option takes 64, a float option 1e-3 or 2, a bool option true/false).
        default: the value a run without ``-o name=...`` uses; None means the model decides (e.g.
            from the data's size), and ``help`` then says how.
        help: one line for ``evalgen plugins --options``.
        minimum, maximum: the allowed range (inclusive) of an int or float option, or None.
        choices: the allowed values, or None for any value of the type.
    """

    name: str
    type: type
    default: int | float | bool | str | None
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[int | float | bool | str, ...] | None = None

    def __post_init__(self) -> None:
        where = f"Option {self.name!r}"
        if not self.name or any(c.isspace() or c in "=:," for c in self.name):
            raise ValueError(f"{where}: the name must be non-empty, without spaces, '=', ':' or ','")
        if self.type not in OPTION_TYPES:
            raise TypeError(f"{where}: type must be int, float, bool or str, got {self.type!r}")
        if "\n" in self.help or not self.help.strip():
            raise ValueError(f"{where}: help must be one non-empty line")
        if (self.minimum is not None or self.maximum is not None) and self.type not in (int, float):
            raise TypeError(f"{where}: minimum and maximum are for int and float options")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
            if not self.choices or not all(_option_value_ok(c, self.type) for c in self.choices):
                raise TypeError(f"{where}: choices must be a non-empty tuple of {self.type.__name__} values")
        if self.default is None:
            return
        if not _option_value_ok(self.default, self.type):
            raise TypeError(f"{where}: default {self.default!r} is not a {self.type.__name__}")
        if self.type is float:
            object.__setattr__(self, "default", float(self.default))
        if ((self.minimum is not None and self.default < self.minimum)
                or (self.maximum is not None and self.default > self.maximum)
                or (self.choices is not None and self.default not in self.choices)):
            raise ValueError(f"{where}: default {self.default!r} is outside its own range or choices")


@dataclass(frozen=True)
class ModelSpec:
    """One model variant of a family, as the family declares it.

    Attributes:
        name: identifier used on the command line (``--model``), unique within the family.
        summary: one line for listings.
        data_kinds: the kinds of data the variant can be built for.
        likelihood: what its ``log_prob`` returns.
        dequantize: for binary and discrete data: True if the model is a density on
            uniformly dequantized values in [0, 1) (flows), False if it is a mass function on
            the integer levels (categorical / Bernoulli models). Ignored for continuous data.
        reference: the paper the variant follows.
        outlier_score: what the family's ``evalgen_outlier_score`` returns, for the tables
            (e.g. "critic output"); None if the family relies on the default -log p(x) / D.
        needs_labels: the variant trains on class labels (a conditional model); it is left out
            of runs on datasets without labels.
        max_dims: the largest number of dimensions the variant can be built for (e.g. a model
            that enumerates its 2^D states), or None; it is left out of runs on larger datasets.
        validation_nll: whether the harness computes a validation NLL every ``eval_every`` steps
            to keep the best checkpoint. False for likelihoods too costly to estimate that often
            (an AIS estimate of log Z): the parameters at the end of training are evaluated.
        options: the options (``-o``) the variant takes besides its family's `FamilyInfo.options`
            (one of the same name replaces the family's, e.g. with another default). None, with no
            family options either, means undeclared: ``-o`` values then reach the hooks unchecked.
    """

    name: str
    summary: str
    data_kinds: frozenset[DataKind] = frozenset(DataKind)
    likelihood: Likelihood = Likelihood()
    dequantize: bool = False
    reference: str = ""
    outlier_score: str | None = None
    needs_labels: bool = False
    max_dims: int | None = None
    validation_nll: bool = True
    options: tuple[Option, ...] | None = None

    def unfit_reason(self, kind: DataKind, num_dims: int | None, labelled: bool | None) -> str | None:
        """Why the variant cannot be trained on data of this kind, size (None: not known yet)
        and labelling (None: not known yet), or None when it can: the one rule that planning,
        the harness and the conformance kit apply."""
        if kind not in self.data_kinds:
            kinds = ", ".join(sorted(k.value for k in self.data_kinds))
            return f"it supports {kinds} data, not {kind.value}"
        if self.max_dims is not None and num_dims is not None and num_dims > self.max_dims:
            return f"it handles at most {self.max_dims} dimensions, not {num_dims}"
        if self.needs_labels and labelled is False:
            return "it trains on class labels, and the dataset has none"
        return None

    def representation_for(self, kind: DataKind) -> Representation:
        if kind is DataKind.CONTINUOUS:
            return Representation.CONTINUOUS
        return Representation.DEQUANTIZED if self.dequantize else Representation.LEVELS


@dataclass(frozen=True)
class FamilyInfo:
    """What ``evalgen_family`` returns: a family of models and what it can do.

    Attributes:
        name: the family's name (``--plugin``).
        summary: one line for ``evalgen plugins``.
        models: the family's model variants.
        version: the family's version, if it has its own.
        default_dataset: the dataset ``evalgen run --plugin <family>`` uses when ``--dataset`` is
            not given (a registered dataset name, e.g. ``"binarized-digits"`` for a family of
            binary-only models); None = ``digits``.
        options: the options every model of the family takes (see `ModelSpec.options`).
        known_failures: conformance checks the family is known to fail, as scikit-learn's
            ``_xfail_checks``: check name (``"normalization"``, every model),
            ``"model:check"`` or ``"model:data:check"`` -> the reason (see
            `evalgen.testing.CHECK_NAMES`). `evalgen.testing` reports them as expected
            failures, and fails once one of them passes (remove the declaration then).
    """

    name: str
    summary: str
    models: tuple[ModelSpec, ...]
    version: str = ""
    default_dataset: str | None = None
    options: tuple[Option, ...] = ()
    known_failures: Mapping[str, str] = field(default_factory=dict, hash=False)

    def model(self, name: str) -> ModelSpec:
        from evalgen.errors import unknown_name

        for spec in self.models:
            if spec.name == name:
                return spec
        raise unknown_name(f"model of plugin '{self.name}'", name, [m.name for m in self.models])


@dataclass(frozen=True)
class DatasetInfo:
    """What a plugin is told about the data a model is built for.

    Attributes:
        name: registry name of the dataset.
        kind: binary, discrete or continuous.
        shape: shape of one example, e.g. ``(1, 8, 8)`` for digits or ``(2,)`` for 2-D toys.
        levels: number of values per dimension (2, 17, 256) or None for continuous data.
        num_classes: number of class labels, or None when the dataset has no labels.
        representation: how the values reach this model (see `Representation`).
        num_train: number of training examples.
        label_counts: training examples per class label (index = label), or None without labels.
    """

    name: str
    kind: DataKind
    shape: tuple[int, ...]
    levels: int | None
    num_classes: int | None
    representation: Representation
    num_train: int = 0
    label_counts: tuple[int, ...] | None = None

    @property
    def num_dims(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass
class Batch:
    """One training batch: ``x`` of shape (B, *shape) float32 in the model's representation,
    ``y`` the class labels (B,) int64 or None."""

    x: torch.Tensor
    y: torch.Tensor | None = None


@dataclass
class TrainState:
    """Mutable state the harness keeps across training steps and hands to ``evalgen_train_step``.

    Attributes:
        step: number of steps completed before this one (0 on the first call).
        optimizers: from ``evalgen_configure_optimizers`` (default: ``{"model": Adam}``).
        generator: seeded generator on the model's device, for the plugin's own randomness.
        device: where the model and the batches live.
        dataset: the dataset the model was built for.
        config: the plugin options the model was built with.
        scratch: a dict the plugin may use to keep state between steps (e.g. persistent chains).
    """

    step: int
    optimizers: dict[str, torch.optim.Optimizer]
    generator: torch.Generator
    device: torch.device
    dataset: DatasetInfo
    config: Mapping[str, Any] = field(default_factory=dict)
    scratch: dict[str, Any] = field(default_factory=dict)
