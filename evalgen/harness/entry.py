"""What `evalgen score` / `evalgen eval` and the Python API share: the context they write into,
a row name from a file name, and a record named by path or by key."""

from __future__ import annotations

import re
from pathlib import Path

from evalgen.datasets.files import load_context_from_env
from evalgen.errors import EvalgenError
from evalgen.harness.grids import SAMPLES_DIR
from evalgen.harness.runner import RunContext, resolve_device
from evalgen.plugins import load_plugins
from evalgen.provenance import git_commit
from evalgen.records import RECORDS_DIR, ensure_writable, record_path

__all__ = ["default_samples_name", "resolve_record", "writing_context"]


def writing_context(out_dir: Path, device: str, data_dir: Path | None) -> RunContext:
    """Plugins loaded, the device resolved, and ``out_dir`` checked writable (records/, samples/)."""
    ensure_writable(out_dir, (RECORDS_DIR, SAMPLES_DIR))
    git_commit()  # read now, while it still names the code this process loaded (it is cached)
    return RunContext(plugins=load_plugins(), out_dir=out_dir, device=resolve_device(device),
                      load_context=load_context_from_env(data_dir))


def default_samples_name(path: Path) -> str:
    """A row name from a file name: ``my gan (v2).npz`` -> ``my-gan-v2``."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", path.name.split(".", 1)[0]).strip("-")[:64].strip("-")
    return name or "samples"


def resolve_record(record_or_key: str, runs_dir: Path) -> Path:
    """A record file given by path, or by key in ``runs_dir``/records/."""
    path = Path(record_or_key)
    if path.suffix == ".json" or path.exists():
        return path
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", record_or_key):
        raise EvalgenError(f"'{record_or_key}' is neither a record file nor a run key")
    found = record_path(runs_dir, record_or_key)
    if not found.exists():
        raise EvalgenError(f"no record {record_or_key} in {runs_dir / RECORDS_DIR}; give the record file, or "
                           f"the folder it is in (--runs)")
    return found
