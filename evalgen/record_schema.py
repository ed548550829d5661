"""The JSON Schema of run records (``evalgen.run-record/4``; versions 1 to 3 still read), and validation.

It pins down what readers of records (tables, leaderboards) rely on; metric sections may carry
more fields than listed, and a metric that did not apply is ``{"skipped": "<why>"}``. A change
that removes a field or changes its meaning needs a new schema version (`SCHEMA_VERSION`).

Names that reach file names (plugin, model, dataset, budget) must match the registries'
`NAME_PATTERN`; plugin options are scalars; AUROCs lie in [0, 1], counts and seconds are not
negative. NaN and infinities cannot occur: `evalgen.storage.read_json` refuses them.

Version 2 added ``model.likelihood_kind`` (what tables read, instead of parsing the label) and
``model.options`` (every plugin option the model was built with, defaults included). A record of
version 1 is validated against version 1 and upgraded on reading (`evalgen.records.upgrade`).

Version 3 made budgets machine-independent: a budget is counted training FLOPs capped by steps
and examples (``max_flops``), the clock only a safety net (``clock_cap_seconds``, replacing the
``max_seconds`` that was the budget); training records its counted ``flops``, ``flop_rate``,
``flop_counting`` and ``budget_fraction``, history rows a fifth column (FLOPs so far), outlier
sets their sizes and AUROC standard-error bound, and ``evaluation`` the seconds of each part.
Records of versions 1 and 2 are upgraded on reading with their budgets marked
``legacy: "seconds-bound (schema N)"``: they compare with no budget of version 3.

Version 4 added ``origin``: what the numbers come from (a trained run, a model evaluated with no
training, external samples scored by `evalgen score`, a checkpoint evaluated again by `evalgen
eval`, `evalgen.record_types.Origin`); ``model.parameters`` is null where there is no model, and
provenance may name a pretrained model's ``weights_sha256``. Records of version 3 read as trained.
The sections and their fields are those of `evalgen.record_types` (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from evalgen.errors import EvalgenError
from evalgen.record_types import ORIGIN_KINDS
from evalgen.registry import NAME_MAX_LENGTH, NAME_PATTERN
from evalgen.types import LikelihoodKind

__all__ = ["RUN_RECORD_1", "RUN_RECORD_2", "RUN_RECORD_3", "RUN_RECORD_4", "SCHEMA", "SCHEMA_1", "SCHEMA_2",
           "SCHEMA_3", "SCHEMA_NAME", "SCHEMA_VERSION", "run_record_schema", "validate_record"]

SCHEMA_NAME = "evalgen.run-record"
#: Bumped whenever a field changes meaning or a reader could no longer find what it needs.
SCHEMA_VERSION = 4
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
#: The earlier versions, which `evalgen.records` still reads (and upgrades).
SCHEMA_1 = f"{SCHEMA_NAME}/1"
SCHEMA_2 = f"{SCHEMA_NAME}/2"
SCHEMA_3 = f"{SCHEMA_NAME}/3"

_STRING = {"type": "string"}
_NAME = {"type": "string", "minLength": 1}
_SAFE_NAME = {"type": "string", "pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH}
_COUNT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": "number"}
_SECONDS = {"type": "number", "minimum": 0}
_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
_OPTION_VALUE = {"type": ["string", "number", "boolean"]}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object with these properties, all required unless listed otherwise; more are allowed."""
    return {"type": "object", "properties": properties,
            "required": sorted(properties) if required is None else required}


def _metric(properties: dict[str, Any]) -> dict[str, Any]:
    """A metric section: its numbers (any may be missing), or the reason it was skipped."""
    return {"anyOf": [_object({"skipped": _STRING}), _object(properties, required=[])]}


def _budget(version: int) -> dict[str, Any]:
    properties = {
        "name": _SAFE_NAME, "summary": _STRING, "max_steps": _COUNT, "max_examples": _optional(_COUNT),
        "batch_size": _COUNT, "eval_every": _COUNT, "patience": _COUNT, "num_samples": _COUNT, "target": _STRING,
        "importance_samples": _COUNT, "valid_importance_samples": _COUNT,
    }
    if version < 3:
        return _object({**properties, "max_seconds": _SECONDS})
    properties.update(max_flops=_optional(_COUNT), clock_cap_seconds=_SECONDS, outlier_examples=_COUNT)
    positive = {"type": "integer", "minimum": 1}
    later = {"legacy": _optional(_STRING), "sample_draws": positive, "dequantization_samples": positive,
             "trace_samples": positive, "trace_points": positive}
    return _object({**properties, **later}, required=sorted(properties))


def _history_row(version: int) -> dict[str, Any]:
    """[step, wall-clock seconds, train loss, validation NLL in nats, (3:) counted FLOPs so far]."""
    items = [_COUNT, _SECONDS, _optional(_NUMBER), _optional(_NUMBER)] + ([_optional(_COUNT)] if version >= 3 else [])
    return {"type": "array", "minItems": len(items), "maxItems": len(items), "prefixItems": items}


def _training(version: int) -> dict[str, Any]:
    properties = {
        "budget": _budget(version), "seconds": _SECONDS, "steps": _COUNT, "examples": _COUNT,
        "stopped_by": _optional(_STRING), "best_step": _optional(_COUNT),
        "best_valid_nll_nats": _optional(_NUMBER), "diverged_at_step": _optional(_COUNT),
        "divergence": _optional(_STRING), "history": {"type": "array", "items": _history_row(version)},
        "losses": {"type": "object", "additionalProperties": {"type": "array", "items": _optional(_NUMBER)}},
    }
    if version >= 3:
        properties.update(
            flops=_optional(_COUNT), flop_rate=_optional(_SECONDS), budget_fraction=_optional(_FRACTION),
            flop_counting=_optional(_object({"convention": _STRING, "counted_steps": _COUNT}, required=[])))
    required = sorted(properties)
    if version >= 4:  # traces came later in version 4: optional
        properties["traces"] = _optional(_TRACES)
    return _object(properties, required=required)


_TRACE_POINT = _object({
    "step": _COUNT, "flops": _optional(_COUNT), "fid": _optional(_NUMBER), "kid": _optional(_NUMBER),
    "modes_covered": _COUNT, "high_quality": _optional(_FRACTION), "counts": {"type": "array", "items": _COUNT},
})
_TRACES = _object({
    "level": {"enum": ["light", "full"]}, "num_samples": _COUNT, "cadence": _STRING,
    "max_points": _optional({"type": "integer", "minimum": 1}),
    "sample_seed": _COUNT, "counts_of": _STRING, "extractor": _optional(_STRING), "reference": _optional(_STRING),
    "seconds": _SECONDS, "points": {"type": "array", "items": _TRACE_POINT}, "skipped": _optional(_STRING),
    "selected_by": _optional(_STRING), "warnings": {"type": "array", "items": _STRING},
}, required=["level", "num_samples", "cadence", "max_points", "sample_seed", "counts_of", "extractor", "reference",
             "seconds",
             "points"])

_COUNTS = {"type": "array", "items": _COUNT}
_DYNAMICS = {
    "num_modes": _COUNT, "held": _COUNTS, "steps": _COUNTS,
    "collapse": _object({"at_step": _optional(_COUNT), "collapsed": {"type": "boolean"}}),
    "hopping": _object({"steps": _COUNTS, "hops": _COUNT,
                        "total_variation": {"type": "array", "items": _optional(_SECONDS)},  # >= 0 (1 + rounding)
                        "threshold": _FRACTION, "false_alarm_rate": _optional(_FRACTION)}),
}

_SCALAR_OR_NULL = {"type": ["string", "number", "boolean", "null"]}


def _model_section(version: int) -> dict[str, Any]:
    properties = {
        "likelihood": _NAME, "parameters": _optional(_COUNT) if version >= 4 else _COUNT,
        "summary": _STRING, "family_summary": _STRING,
        "reference": _STRING, "representation": _STRING, "plugin_version": _optional(_STRING),
        "importance_samples": _optional(_object({"test": _COUNT, "validation": _COUNT})),
    }
    if version >= 2:
        properties["likelihood_kind"] = {"enum": [kind.value for kind in LikelihoodKind]}
        properties["options"] = _optional({"type": "object", "additionalProperties": _SCALAR_OR_NULL})
    return _object(properties)


def _metrics_section(version: int) -> dict[str, Any]:
    properties = {
        "sampling": _object({"num_samples": _COUNT, "seconds": _SECONDS,
                             "samples_per_second": _optional(_SECONDS)}),
        "test_nll": _metric({"nats": _NUMBER, "bits_per_dim": _optional(_NUMBER), "kind": _STRING,
                             "elbo": _optional(_object({"nats": _NUMBER}, required=[]))}),
        "sample_quality": _metric({"extractor": _STRING, "fid": _optional(_NUMBER),
                                   "inception_score_mean": _optional(_NUMBER),
                                   "kid_mean": _optional(_NUMBER)}),
        "outliers": _metric({"headline": _STRING, "score": _STRING, "in_distribution": _STRING,
                             "sets": {"type": "object", "additionalProperties": _object(
                                 {"auroc": _FRACTION, "num_in": _COUNT, "num_out": _COUNT,
                                  "auroc_se_bound": _FRACTION}, required=[])}}),
    }
    if version >= 2:
        properties["mode_coverage"] = _metric({"modes_covered": _COUNT, "num_modes": _COUNT,
                                               "high_quality": _optional(_FRACTION), "mode_kl": _optional(_NUMBER)})
    if version >= 4:
        properties["dynamics"] = _metric(_DYNAMICS)
    return _object(properties, required=[])


def _origin() -> dict[str, Any]:
    """Version 4: what the numbers come from (`evalgen.record_types.Origin`)."""
    samples = _object({"name": _SAFE_NAME, "file": _STRING, "sha256": _SHA256, "count": _COUNT})
    again = _object({"of": {"type": "string", "pattern": r"^[A-Za-z0-9._-]+$"}, "checkpoint_sha256": _SHA256,
                     "importance_samples": _optional({"type": "integer", "minimum": 1}),
                     "num_samples": _optional({"type": "integer", "minimum": 1}),
                     "metrics": _optional({"type": "array", "items": _SAFE_NAME, "minItems": 1})},
                    required=["of", "checkpoint_sha256"])
    return _object({"kind": {"enum": list(ORIGIN_KINDS)}, "samples": _optional(samples),
                    "reevaluation": _optional(again)}, required=["kind"])


def run_record_schema(version: int) -> dict[str, Any]:
    """The JSON Schema of run records of this version (1 to 4)."""
    extra = {"evaluation": _optional(_object({"seconds": {"type": "object", "additionalProperties": _SECONDS}}))} \
        if version >= 3 else {}
    if version >= 4:
        extra["origin"] = _origin()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{SCHEMA_NAME}/{version}",
        **_object({
            **extra,
            "schema": {"const": f"{SCHEMA_NAME}/{version}"},
            "key": {"type": "string", "pattern": r"^[A-Za-z0-9._-]+$"},
            "status": {"enum": ["ok", "diverged"]},
            "spec": _object({
                "plugin": _SAFE_NAME, "model": _SAFE_NAME, "dataset": _SAFE_NAME, "budget": _SAFE_NAME,
                "seed": _COUNT, "config": {"type": "object", "additionalProperties": _OPTION_VALUE},
                "importance_samples": _optional({"type": "integer", "minimum": 1}),
            }),
            "model": _model_section(version),
            "dataset": _object({
                "name": _SAFE_NAME, "kind": _NAME, "shape": {"type": "array", "items": _COUNT, "minItems": 1},
                "levels": _optional(_COUNT), "checksum": _optional(_STRING), "source": _STRING,
                "sizes": {"type": "array", "items": _COUNT, "minItems": 3, "maxItems": 3},
            }),
            "training": _training(version),
            "metrics": _metrics_section(version),
            "samples_grid": _optional({"type": "string", "pattern": r"^samples/[A-Za-z0-9._-]+\.png$"}),
            "provenance": _object({
                "evalgen_version": _NAME, "git_commit": _optional(_STRING), "torch_version": _STRING,
                "cuda_version": _optional(_STRING), "python_version": _STRING, "platform": _STRING,
                "device": _STRING, "device_name": _STRING, "created_at": _STRING,
                "executor": _optional(_STRING), "host": _optional(_STRING), "slurm_job_id": _optional(_STRING),
                "weights_sha256": _optional(_SHA256),
            }, required=["created_at", "cuda_version", "device", "device_name", "evalgen_version", "git_commit",
                         "platform", "python_version", "torch_version"]),
        }),
    }


RUN_RECORD_1 = run_record_schema(1)
RUN_RECORD_2 = run_record_schema(2)
RUN_RECORD_3 = run_record_schema(3)
RUN_RECORD_4 = run_record_schema(4)
_VALIDATORS = {schema["title"]: jsonschema.Draft202012Validator(schema)
               for schema in (RUN_RECORD_1, RUN_RECORD_2, RUN_RECORD_3, RUN_RECORD_4)}
_LONGEST_MESSAGE = 160


def validate_record(record: Any, path: Path, schema: str = SCHEMA) -> None:
    """Raise a one-line EvalgenError naming the file and the first offending field, if any,
    validating against ``schema`` (the current one or an earlier one)."""
    error = jsonschema.exceptions.best_match(_VALIDATORS[schema].iter_errors(record))
    if error is None:
        return
    where = "/".join(str(part) for part in error.absolute_path) or "the top level"
    message = " ".join(error.message.split())
    if len(message) > _LONGEST_MESSAGE:
        message = message[:_LONGEST_MESSAGE] + "..."
    raise EvalgenError(f"{path} is not a valid {schema} record: at {where}: {message}")
