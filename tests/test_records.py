"""The typed run record: the JSON Schema and the record types describe the same fields, records of
schema 1 (the committed leaderboards') load through the upgrade, and a record survives writing."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from evalgen.budgets import Budget
from evalgen.errors import EvalgenError
from evalgen.record_schema import RUN_RECORD_1, RUN_RECORD_2, RUN_RECORD_4, SCHEMA, SCHEMA_1, SCHEMA_3
from evalgen.record_types import (
    DatasetSection,
    HistoryRow,
    ModelSection,
    Origin,
    Provenance,
    RunRecord,
    Sampling,
    TrainingSection,
)
from evalgen.records import likelihood_kind_of_label, read_record, write_record
from evalgen.runspec import RunSpec
from evalgen.types import Likelihood, LikelihoodKind

LEADERBOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
COMMITTED = sorted(LEADERBOARDS.glob("*/runs/**/records/*.json"))


def _names(cls: type) -> set[str]:
    if hasattr(cls, "_fields"):
        return set(cls._fields)
    return {f.name for f in dataclasses.fields(cls)}


SECTIONS = [
    ((), RunRecord), (("spec",), RunSpec), (("model",), ModelSection), (("dataset",), DatasetSection),
    (("training",), TrainingSection), (("training", "budget"), Budget), (("provenance",), Provenance),
    (("metrics", "sampling"), Sampling), (("origin",), Origin),
]


def _properties(schema: dict, path: tuple[str, ...]) -> set[str]:
    for part in path:
        schema = schema["properties"][part]
    return set(schema["properties"])


@pytest.mark.parametrize(("path", "cls"), SECTIONS, ids=lambda item: getattr(item, "__name__", None))
def test_schema_and_types_name_the_same_fields(path, cls):
    assert _properties(RUN_RECORD_4, path) == _names(cls)


def test_history_rows_are_the_schema_history_rows():
    items = RUN_RECORD_4["properties"]["training"]["properties"]["history"]["items"]
    assert len(items["prefixItems"]) == len(HistoryRow._fields) == items["maxItems"]


def test_schema_2_adds_the_likelihood_kind_and_the_options_to_schema_1():
    one, two = (_properties(s, ("model",)) for s in (RUN_RECORD_1, RUN_RECORD_2))
    assert two - one == {"likelihood_kind", "options"} and one <= two


@pytest.mark.parametrize("likelihood", [
    Likelihood(), Likelihood(LikelihoodKind.NONE, "none"),
    Likelihood(LikelihoodKind.LOWER_BOUND, "IWAE", "K").with_samples(100),
    Likelihood(LikelihoodKind.ESTIMATE, "AIS (100 chains), exact-free (tail) bound"),
], ids=lambda lik: lik.label)
def test_the_kind_of_every_label_is_the_kind_it_was_made_from(likelihood):
    assert likelihood_kind_of_label(likelihood.label) is likelihood.kind


def test_a_label_that_names_no_kind_is_refused():
    with pytest.raises(EvalgenError, match="names no likelihood kind"):
        likelihood_kind_of_label("bounded, sort of")


def test_committed_records_are_schema_1_and_load_upgraded():
    assert COMMITTED, "no committed run records"
    kinds = set()
    for path in COMMITTED:
        assert json.loads(path.read_text())["schema"] == SCHEMA_1
        record = read_record(path)
        assert record.schema == SCHEMA and record.model.options is None
        kinds.add((record.spec.plugin, record.model.likelihood_kind))
    assert ("vae", LikelihoodKind.LOWER_BOUND) in kinds and ("gan", LikelihoodKind.NONE) in kinds
    assert ("baselines", LikelihoodKind.EXACT) in kinds
    # flows on dequantized digits were written as "exact": they read back as the single-draw bound
    assert ("flows", LikelihoodKind.LOWER_BOUND) in kinds and ("flows", LikelihoodKind.EXACT) not in kinds


def test_a_record_written_reads_back_the_same(tmp_path):
    record = read_record(COMMITTED[0])
    model = dataclasses.replace(record.model, options={"hidden": 64, "lr": 0.001, "flag": True, "auto": None})
    record = dataclasses.replace(record, model=model)
    path = write_record(tmp_path, record)
    assert json.loads(path.read_text())["schema"] == SCHEMA
    assert read_record(path) == record


def test_a_broken_schema_1_record_is_named_with_its_schema(tmp_path):
    source = COMMITTED[0]
    data = json.loads(source.read_text())
    del data["provenance"]["platform"]
    (tmp_path / source.name).write_text(json.dumps(data))
    with pytest.raises(EvalgenError, match=f"not a valid {SCHEMA_1} record: at provenance"):
        read_record(tmp_path / source.name)


def test_a_schema_1_record_with_a_label_of_no_kind_is_refused(tmp_path):
    source = COMMITTED[0]
    shutil.copy(source, tmp_path / source.name)
    data = json.loads(source.read_text())
    data["model"]["likelihood"] = "mostly exact"
    (tmp_path / source.name).write_text(json.dumps(data))
    with pytest.raises(EvalgenError, match="names no likelihood kind"):
        read_record(tmp_path / source.name)


def _assert_edit_is_one_line_error(tmp_path, edit, where):
    """A committed record, edited on disk by ``edit``, is refused in one line naming ``where``."""
    path = write_record(tmp_path, read_record(COMMITTED[0]))
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(EvalgenError, match=f"not a valid {SCHEMA} record") as error:
        read_record(path)
    assert where in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("edit", "where"), [
    (lambda r: r["model"].update(likelihood_kind="best"), "at model/likelihood_kind"),
    (lambda r: r["model"].update(options={"hidden": {"nested": 1}}), "at model/options"),
    (lambda r: r["model"].update(options=["lr", 1]), "at model/options"),
    (lambda r: r["model"].pop("likelihood_kind"), "'likelihood_kind' is a required property"),
], ids=["unknown kind", "nested option", "options not an object", "no kind"])
def test_hostile_schema_2_fields_are_one_line_errors(tmp_path, edit, where):
    _assert_edit_is_one_line_error(tmp_path, edit, where)


@pytest.mark.parametrize(("edit", "where"), [
    (lambda r: r["training"].update(flops=-1), "at training/flops"),
    (lambda r: r["training"].update(budget_fraction=1.5), "at training/budget_fraction"),
    (lambda r: r["training"]["budget"].update(max_flops="1e12"), "at training/budget/max_flops"),
    (lambda r: r["training"]["budget"].update(clock_cap_seconds=-5), "at training/budget/clock_cap_seconds"),
    (lambda r: r["training"]["budget"].pop("outlier_examples"), "'outlier_examples' is a required property"),
    (lambda r: r["training"].update(history=[[1, 0.1, None, None]]), "at training/history/0"),
    (lambda r: r.update(evaluation={"seconds": {"sampling": -1}}), "at evaluation"),
    (lambda r: r.update(evaluation={"seconds": [1, 2]}), "at evaluation"),
], ids=["negative flops", "fraction above 1", "flops as text", "negative clock cap", "no outlier size",
        "history row of schema 2", "negative seconds", "seconds not an object"])
def test_hostile_schema_3_fields_are_one_line_errors(tmp_path, edit, where):
    _assert_edit_is_one_line_error(tmp_path, edit, where)


def test_a_schema_3_record_reads_as_a_trained_run(tmp_path):
    payload = read_record(COMMITTED[0]).to_dict()
    payload["schema"] = SCHEMA_3
    del payload["origin"], payload["provenance"]["weights_sha256"]
    path = tmp_path / f"{payload['key']}.json"
    path.write_text(json.dumps(payload))
    record = read_record(path)
    assert record.schema == SCHEMA and record.origin == Origin("trained")


_SAMPLES = {"name": "x", "file": "x.npy", "sha256": "0" * 64, "count": 10}


@pytest.mark.parametrize(("edit", "what"), [
    (lambda r: r["origin"].update(kind="external samples", samples=_SAMPLES), "plugin 'samples' is reserved"),
    (lambda r: r["origin"].update(samples=_SAMPLES), "only external samples carry origin.samples"),
    (lambda r: r["model"].update(parameters=None), "only external samples have no parameter count"),
    (lambda r: r["origin"].update(kind="re-evaluated"), "only a re-evaluation carries origin.reevaluation"),
], ids=["samples claimed by a model", "samples on a trained run", "no parameters", "re-evaluated of nothing"])
def test_an_origin_that_does_not_fit_the_record_is_refused(tmp_path, edit, what):
    """A record cannot pass a trained model off as samples, or samples off as a model."""
    path = write_record(tmp_path, read_record(COMMITTED[0]))
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(EvalgenError, match="does not fit the record") as error:
        read_record(path)
    assert what in str(error.value) and "\n" not in str(error.value)
