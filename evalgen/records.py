"""Run records: one JSON file per (plugin, model, dataset, budget, seed), written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evalgen.errors import EvalgenError

SCHEMA_NAME = "evalgen.run-record"
#: Bumped whenever a field changes meaning or a reader could no longer find what it needs.
SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
RECORDS_DIR = "records"


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_path(out_dir: Path, key: str) -> Path:
    return out_dir / RECORDS_DIR / f"{key}.json"


def write_record(out_dir: Path, record: dict[str, Any]) -> Path:
    path = record_path(out_dir, record["key"])
    payload = json.dumps(record, indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
    atomic_write_bytes(path, payload)
    return path


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EvalgenError(f"cannot read run record {path}: {exc}") from exc
    schema = record.get("schema") if isinstance(record, dict) else None
    if isinstance(schema, str) and schema.startswith(f"{SCHEMA_NAME}/") and schema != SCHEMA:
        raise EvalgenError(f"{path} is a run record of schema {schema}, which this evalgen cannot read "
                           f"(it reads {SCHEMA}); use the evalgen version that wrote it")
    if schema != SCHEMA:
        raise EvalgenError(f"{path} is not an evalgen run record (expected schema {SCHEMA})")
    return record


def find_record(out_dir: Path, key: str) -> dict[str, Any] | None:
    path = record_path(out_dir, key)
    return read_record(path) if path.exists() else None


def read_records(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [read_record(p) for p in paths]


def ensure_writable(out_dir: Path) -> None:
    """Fail early, with one line, if results could not be saved in ``out_dir``."""
    try:
        (out_dir / RECORDS_DIR).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir / RECORDS_DIR):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise EvalgenError(f"cannot write results to {out_dir}: {reason}; choose another --out") from None
