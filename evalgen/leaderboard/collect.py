"""Find run records under a folder, validate them, and merge copies from several machines.

Merging refuses, rather than mixes: two different records under one key, records of another
evalgen major version, and runs that disagree on what a dataset or a budget is, in any unit (a
seconds-bound budget of a schema-1 or -2 record differs from every budget of counted units).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalgen.errors import EvalgenError
from evalgen.record_types import RunRecord
from evalgen.records import RECORDS_DIR, read_record
from evalgen.version import __version__

#: Dataset fields that must agree between records of the same dataset name.
DATASET_IDENTITY = ("kind", "shape", "levels", "checksum", "sizes")


@dataclass(frozen=True)
class Found:
    """A validated record and the file it was read from (copies: the first in sorted order)."""

    path: Path
    record: RunRecord

    @property
    def run_dir(self) -> Path:
        """The ``--out`` folder of the run: its samples/ are resolved against it."""
        return self.path.parent.parent


def record_files(runs_dir: Path) -> list[Path]:
    """Every ``records/*.json`` under ``runs_dir``, at any depth, in sorted order."""
    return sorted(runs_dir.glob(f"**/{RECORDS_DIR}/*.json"))


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def _load(path: Path) -> RunRecord:
    record = read_record(path)
    found, ours = record.provenance.evalgen_version, __version__
    if _major(found) != _major(ours):
        raise EvalgenError(f"{path} was written by evalgen {found}, whose major version differs from "
                           f"this evalgen's ({ours}); build its leaderboard with a matching evalgen")
    return record


def _merge(paths: Iterable[Path]) -> tuple[list[Found], list[str]]:
    by_key: dict[str, Found] = {}
    problems: list[str] = []
    for path in paths:
        try:
            record = _load(path)
        except EvalgenError as exc:
            problems.append(str(exc))
            continue
        first = by_key.setdefault(record.key, Found(path, record))
        if first.record != record:
            problems.append(f"duplicate run {record.key}: {first.path} and {path} differ; "
                            f"keep one of them (or put them in different leaderboards)")
    return [by_key[key] for key in sorted(by_key)], problems


def _identity(record: RunRecord, what: str) -> tuple[str, dict[str, Any]]:
    if what == "dataset":
        return record.dataset.name, {k: getattr(record.dataset, k) for k in DATASET_IDENTITY}
    return record.spec.budget, {k: v for k, v in record.training.budget.to_dict().items() if k != "summary"}


def _shown(value: Any) -> str:
    return "none" if value is None else repr(value) if isinstance(value, str) else f"{value}"


def _disagreements(found: list[Found]) -> list[str]:
    """Same dataset or budget name with a different definition: their numbers do not compare."""
    problems = []
    first: dict[tuple[str, str], Found] = {}
    for item in found:
        for what in ("dataset", "budget"):
            name, identity = _identity(item.record, what)
            seen = first.setdefault((what, name), item)
            theirs = _identity(seen.record, what)[1]
            if theirs != identity:
                keys = sorted(key for key in theirs.keys() | identity.keys() if theirs.get(key) != identity.get(key))
                differ = ", ".join(f"{key} {_shown(theirs.get(key))} vs {_shown(identity.get(key))}" for key in keys)
                problems.append(f"{what} '{name}' is defined differently in {seen.path} and {item.path} ({differ}); "
                                f"the records of one leaderboard must agree on it")
    return problems


def collect_records(runs_dir: Path, report: Callable[[str], None] = print) -> list[Found]:
    """The validated, de-duplicated records under ``runs_dir``, sorted by key.

    Problems make an EvalgenError naming the first; the others are reported, one line each.
    """
    if not runs_dir.is_dir():
        raise EvalgenError(f"runs folder {runs_dir} does not exist")
    paths = record_files(runs_dir)
    if not paths:
        raise EvalgenError(f"no run records (records/*.json) under {runs_dir}; write some with `evalgen run --out`")
    found, problems = _merge(paths)
    problems = problems or _disagreements(found)
    if problems:
        for problem in problems[1:]:
            report(problem)
        more = f" (and {len(problems) - 1} more, listed above)" if len(problems) > 1 else ""
        raise EvalgenError(problems[0] + more)
    return found
