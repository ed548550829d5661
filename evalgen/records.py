"""Run records: one JSON file per (plugin, model, dataset, budget, seed), written atomically.

A record read from disk is untrusted (it may come from another machine, be truncated, or be
crafted): `read_record` parses it strictly (`evalgen.storage.read_json`: no NaN or Infinity),
validates it against the schema (`evalgen.record_schema`) and checks that it is what its file
name says it is (`check_identity`), so that a record is only ever reused or published as the run
it really is. It returns the typed record (`evalgen.record_types.RunRecord`); a record of schema 1
is upgraded on reading (`upgrade`), so records written by earlier versions still load, and a
likelihood that earlier versions labelled untruly (a flow on dequantized data called exact, the
DBM's estimated bound called a bound) reads back labelled truly, its numbers unchanged
(`relabel_likelihood`).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from evalgen.errors import EvalgenError
from evalgen.metrics.dynamics import Traces, trace_problem
from evalgen.metrics.nll import discrete_likelihood
from evalgen.record_schema import SCHEMA, SCHEMA_1, SCHEMA_2, SCHEMA_3, SCHEMA_NAME, SCHEMA_VERSION, validate_record
from evalgen.record_types import EXTERNAL_PLUGIN, EXTERNAL_SAMPLES, REEVALUATED, Origin, RunRecord
from evalgen.runspec import RunSpec
from evalgen.storage import atomic_write_bytes, check_real_folder, read_json
from evalgen.types import Likelihood, LikelihoodKind, Representation

__all__ = ["RECORDS_DIR", "SCHEMA", "SCHEMA_NAME", "SCHEMA_VERSION", "atomic_write_bytes", "check_identity",
           "ensure_writable", "find_record", "read_record", "record_path", "relabel_likelihood", "true_likelihood",
           "upgrade", "upgrade_3", "write_record"]

RECORDS_DIR = "records"
#: Relative tolerance of the bits/dim a record states against the one its nats give.
BITS_PER_DIM_RTOL = 1e-6


def record_path(out_dir: Path, key: str) -> Path:
    return out_dir / RECORDS_DIR / f"{key}.json"


def write_record(out_dir: Path, record: RunRecord) -> Path:
    path = record_path(out_dir, record.key)
    payload = json.dumps(record.to_dict(), indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
    atomic_write_bytes(path, payload)
    return path


def _check_schema_name(record: Any, path: Path) -> None:
    schema = record.get("schema") if isinstance(record, dict) else None
    if schema in (SCHEMA_1, SCHEMA_2, SCHEMA_3):
        return
    if isinstance(schema, str) and schema.startswith(f"{SCHEMA_NAME}/") and schema != SCHEMA:
        raise EvalgenError(f"{path} is a run record of schema {schema}, which this evalgen cannot read "
                           f"(it reads {SCHEMA}); use the evalgen version that wrote it")
    if schema != SCHEMA:
        raise EvalgenError(f"{path} is not an evalgen run record (expected schema {SCHEMA})")


def _check_bits_per_dim(record: dict[str, Any], path: Path) -> None:
    nll = record["metrics"].get("test_nll") or {}
    nats, bits = nll.get("nats"), nll.get("bits_per_dim")
    if nats is None or bits is None:
        return
    expected = nats / (math.prod(record["dataset"]["shape"]) * math.log(2))
    if abs(bits - expected) > BITS_PER_DIM_RTOL * max(abs(expected), 1.0):
        raise EvalgenError(f"{path}: test NLL of {bits} bits/dim does not match its {nats} nats over "
                           f"{math.prod(record['dataset']['shape'])} dimensions ({expected:.6g} bits/dim); "
                           f"the record was edited or is corrupt: delete it and run it again")


def _check_traces(record: dict[str, Any], path: Path) -> None:
    """The traces are what a run can trace, and the dynamics metric is what they give: neither a
    curve nor a "mode hops" cell can be forged on its own."""
    section, dynamics = record["training"].get("traces"), record["metrics"].get("dynamics")
    computed = dynamics if isinstance(dynamics, dict) and "skipped" not in dynamics else None
    if section is None:
        problem = "it has mode dynamics but no traces" if computed is not None else None
    else:
        problem = trace_problem(Traces.from_dict(section), record["training"]["steps"], computed)
    if problem is not None:
        raise EvalgenError(f"{path}: {problem}; the record was edited or is corrupt: delete it and run it again")


def _check_origin(record: dict[str, Any], path: Path) -> None:
    """The origin agrees with the rest: external samples are the reserved plugin's and have no
    model; a re-evaluation says of what; a trained run is neither. A record cannot pass samples
    off as a trained model, or a model as samples."""
    origin = Origin.from_dict(record["origin"])
    external = origin.kind == EXTERNAL_SAMPLES
    problems = [
        (external != (record["spec"]["plugin"] == EXTERNAL_PLUGIN),
         f"plugin '{EXTERNAL_PLUGIN}' is reserved for, and only for, external samples"),
        (external != (origin.samples is not None), "only external samples carry origin.samples"),
        (external != (record["model"]["parameters"] is None), "only external samples have no parameter count"),
        ((origin.kind == REEVALUATED) != (origin.reevaluation is not None),
         "only a re-evaluation carries origin.reevaluation"),
        (external and origin.samples is not None and origin.samples.name != record["spec"]["model"],
         "the samples' name is not the spec's model"),
    ]
    for wrong, what in problems:
        if wrong:
            raise EvalgenError(f"{path}: its origin ({origin.kind}) does not fit the record: {what}; "
                               f"the record was edited or is corrupt: delete it and score or run it again")


def check_identity(record: dict[str, Any], path: Path) -> None:
    """The record is the run its file name and its spec say: key = file name = the spec's key
    (with what a re-evaluation adds), the dataset and budget sections describe the spec's dataset
    and budget, and its origin fits the rest."""
    spec = record["spec"]
    _check_origin(record, path)
    key = RunSpec(**spec).key + Origin.from_dict(record["origin"]).key_suffix
    if record["key"] != key:
        raise EvalgenError(f"{path}: its key '{record['key']}' is not the key of its spec ('{key}'); "
                           f"the record was edited or is corrupt: delete it and run it again")
    if path.name != f"{key}.json":
        raise EvalgenError(f"{path}: the file name does not match the record inside ('{key}'); "
                           f"rename it to {key}.json or delete it")
    for section, name in (("dataset", record["dataset"]["name"]), ("budget", record["training"]["budget"]["name"])):
        if name != spec[section]:
            raise EvalgenError(f"{path}: its spec names {section} '{spec[section]}' but it describes '{name}'; "
                               f"the record was edited or is corrupt: delete it and run it again")
    _check_bits_per_dim(record, path)
    _check_traces(record, path)


def likelihood_kind_of_label(label: str) -> LikelihoodKind:
    """The kind a schema-1 ``model.likelihood`` label names: those labels were written by
    `evalgen.types.Likelihood.label`, ``"<kind>"`` or ``"<kind> (<estimator>)"``."""
    head = label.split(" (", 1)[0]
    try:
        return LikelihoodKind(head)
    except ValueError:
        raise EvalgenError(f"likelihood '{label}' names no likelihood kind") from None


def upgrade(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """A record of schema 1 or 2 as schema 3 (which `upgrade_3` takes on to the current one).

    From 1: its likelihood kind read from its label (the one place that still parses a label),
    and its options unknown (schema 1 did not keep the defaults). From 1 and 2: its budget was
    wall-clock seconds; it is kept as such and marked ``legacy: "seconds-bound (schema N)"``, so
    it equals no budget of counted units and no leaderboard merges it with one; FLOPs and
    evaluation seconds are unknown (None)."""
    version = record["schema"].rsplit("/", 1)[1]
    model = dict(record["model"])
    if record["schema"] == SCHEMA_1:
        try:
            model["likelihood_kind"] = likelihood_kind_of_label(model["likelihood"]).value
        except EvalgenError as exc:
            raise EvalgenError(f"{path}: {exc}; the record was edited or is corrupt") from None
        model["options"] = None
    training = dict(record["training"])
    budget = dict(training["budget"])
    budget.update(max_flops=None, clock_cap_seconds=budget.pop("max_seconds"), outlier_examples=0,
                  legacy=f"seconds-bound (schema {version})")
    training.update(budget=budget, history=[[*row, None] for row in training["history"]], flops=None,
                    flop_rate=None, flop_counting=None, budget_fraction=None)
    return {**record, "schema": SCHEMA_3, "model": model, "training": training, "evaluation": None}


def upgrade_3(record: dict[str, Any]) -> dict[str, Any]:
    """A record of schema 3 as schema 4: every record of schema 3 is of a trained run."""
    return {**record, "schema": SCHEMA, "origin": {"kind": "trained", "samples": None, "reevaluation": None}}


#: The default outlier score's label (`evalgen.harness.evaluation.DEFAULT_OUTLIER_SCORE`).
_DEFAULT_SCORE = "-log p(x) / D"
#: Estimators that earlier evalgens called a lower bound but that are estimates of one, and what
#: they are called now: the DBM's mean-field bound with an AIS log Z (log Z-hat errs low in
#: expectation, so the "bound" can exceed log p and flatter the NLL).
ESTIMATED_BOUNDS = {"mean-field bound, log Z by AIS": "estimate of a lower bound: mean-field ELBO, log Z by AIS"}


def true_likelihood(model: dict[str, Any]) -> tuple[Likelihood, Likelihood] | None:
    """(what a record's ``model`` section says, what it should say) for a record written before its
    label was made true, or None when the label is true already:

    * a declared-exact density on dequantized data, scored with one noise draw per example: the
      single-draw uniform dequantization bound (a lower bound on log P(x), `discrete_likelihood`);
    * a lower bound named in `ESTIMATED_BOUNDS` (the DBM's): an estimate of that bound."""
    kind, label = LikelihoodKind(model["likelihood_kind"]), model["likelihood"]
    estimator = label[label.index(" (") + 2:-1] if label.endswith(")") and " (" in label else kind.value
    said = Likelihood(kind, estimator)
    if model["representation"] == Representation.DEQUANTIZED.value and kind is LikelihoodKind.EXACT:
        return said, discrete_likelihood(said, Representation.DEQUANTIZED, 1)
    for old, new in ESTIMATED_BOUNDS.items():
        if kind is LikelihoodKind.LOWER_BOUND and estimator.startswith(old):
            return said, Likelihood(LikelihoodKind.ESTIMATE, new + estimator[len(old):])
    return None


def _relabelled_score(score: str, said: Likelihood, true: Likelihood) -> str:
    """An outlier score's label, with the likelihood behind it named as ``true`` (its K kept)."""
    if score == _DEFAULT_SCORE and said.kind is LikelihoodKind.EXACT:
        return f"{_DEFAULT_SCORE} ({true.kind.value}: {true.estimator})"
    old_head = f"{_DEFAULT_SCORE} ({said.kind.value}: "
    for old, new in ESTIMATED_BOUNDS.items():
        if score.startswith(old_head + old):
            return f"{_DEFAULT_SCORE} ({true.kind.value}: {new}{score[len(old_head + old):]}"
    return score


def relabel_likelihood(record: dict[str, Any]) -> dict[str, Any]:
    """A validated record with its likelihood labelled truly (`true_likelihood`): the model's
    label and kind, the test NLL's kind and estimator, and the outlier score's label; no number
    changes. Records written since say it themselves and are returned as they are."""
    found = true_likelihood(record["model"])
    if found is None:
        return record
    said, true = found
    model = {**record["model"], "likelihood": true.label, "likelihood_kind": true.kind.value}
    metrics = dict(record["metrics"])
    nll, outliers = metrics.get("test_nll"), metrics.get("outliers")
    if isinstance(nll, dict) and "skipped" not in nll:
        metrics["test_nll"] = {**nll, "kind": true.kind.value, "estimator": true.estimator}
    if isinstance(outliers, dict) and isinstance(outliers.get("score"), str):
        metrics["outliers"] = {**outliers, "score": _relabelled_score(outliers["score"], said, true)}
    return {**record, "model": model, "metrics": metrics}


def read_record(path: Path) -> RunRecord:
    """A record read strictly and validated; anything wrong is one EvalgenError naming ``path``."""
    if path.is_symlink():  # a link could make a record of any file, and an error message quote it
        raise EvalgenError(f"{path} is a symbolic link; evalgen reads only real record files: copy the file there")
    record = read_json(path, "run record")
    _check_schema_name(record, path)
    if record["schema"] in (SCHEMA_1, SCHEMA_2):
        validate_record(record, path, record["schema"])
        record = upgrade(record, path)
    if record["schema"] == SCHEMA_3:
        validate_record(record, path, SCHEMA_3)
        record = upgrade_3(record)
    validate_record(record, path)
    check_identity(record, path)
    return RunRecord.from_dict(relabel_likelihood(record))


def find_record(out_dir: Path, key: str) -> RunRecord | None:
    path = record_path(out_dir, key)
    return read_record(path) if path.exists() or path.is_symlink() else None


def ensure_writable(out_dir: Path, folders: tuple[str, ...] = (RECORDS_DIR,)) -> None:
    """Fail early, with one line, if results could not be saved in ``out_dir``: each of
    ``folders`` must be a real folder (not a link elsewhere) in which a file can be created."""
    for name in folders:
        folder = check_real_folder(out_dir, name)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise EvalgenError(f"cannot write results to {folder}: {reason}; make it writable or "
                               f"choose another --out") from None
