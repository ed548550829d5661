"""The sweep file: a TOML description of a matrix of runs and where to run it.

    out = "runs/cpu-quick"          # below the sweep file's folder; --out overrides
    device = "cpu"                  # auto, cpu, cuda
    budgets = ["quick"]             # defaults of every [[runs]] entry ...
    seeds = 3                       # ... 3 means seeds 0, 1, 2; a list names them
    baseline = true                 # the independent-dimension baseline row per dataset and budget
    executor = "local"              # local (one machine) or slurm
    jobs = 2                        # runs at once on this machine (local)

    [[runs]]
    plugin = "flows"
    models = ["realnvp", "maf"]     # default: every model that fits the data
    datasets = ["digits"]           # default: the family's default dataset
    options = { hidden = 64 }       # plugin options (-o key=value)

    [slurm]                         # the SLURM job array (executor = "slurm")
    partition = "gpu"
    time_minutes = 60
    gpus_per_job = 1

Every name is checked before anything runs: an unknown key, plugin, model, dataset, budget or
option fails with "did you mean", and so does a model that cannot fit a dataset. The file is
untrusted input: it is parsed as data (TOML), its paths are only folders to write into.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalgen.errors import EvalgenError, unknown_name
from evalgen.planning import plan_specs
from evalgen.plugins import Plugins
from evalgen.runspec import RunSpec
from evalgen.storage import read_bounded
from evalgen.sweeps.execution import EXECUTORS, Execution, SlurmOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["MAX_SWEEP_FILE_BYTES", "RunsEntry", "SweepFile", "plan_sweep", "read_sweep_file"]

#: A sweep file is a page of TOML; anything far larger is not one.
MAX_SWEEP_FILE_BYTES = 1 << 20
_ENTRY_KEYS = ("plugin", "models", "datasets", "budgets", "seeds", "baseline", "options", "importance_samples")
_TOP_KEYS = ("out", "device", "data_dir", "executor", "jobs", "runs", "slurm", *_ENTRY_KEYS[2:])


@dataclass(frozen=True)
class RunsEntry:
    """One ``[[runs]]`` table: a family's models over datasets x budgets x seeds."""

    plugin: str
    models: tuple[str, ...] = ()
    datasets: tuple[str | None, ...] = (None,)  #: None: the family's default dataset
    budgets: tuple[str, ...] = ("quick",)
    seeds: tuple[int, ...] = (0,)
    baseline: bool = True
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    importance_samples: int | None = None


@dataclass(frozen=True)
class SweepFile:
    """A parsed sweep file; paths are resolved against the file's folder."""

    path: Path
    entries: tuple[RunsEntry, ...]
    out: Path | None = None
    device: str | None = None
    data_dir: Path | None = None
    execution: Execution = dataclasses.field(default_factory=Execution)


def _where(path: Path, table: str) -> str:
    return f"{path}: {table}"


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise EvalgenError(f"{where}: {unknown_name('key', key, allowed)}")


def _typed(value: Any, kind: type | tuple[type, ...], what: str, where: str) -> Any:
    # bool is an int in Python; a flag given where a count belongs is a mistake, not a 1
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = " or ".join(k.__name__ for k in _as_tuple(kind))
        raise EvalgenError(f"{where}: '{what}' should be {names}, got {value!r}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(value: Any, what: str, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else _typed(value, list, what, where)
    return tuple(_typed(item, str, what, where) for item in items)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise EvalgenError(f"{where}: 'seeds' should be at least 1 (seeds 0..N-1) or a list, got {value}")
        return tuple(range(value))
    seeds = tuple(_typed(s, int, "seeds", where) for s in _typed(value, list, "seeds", where))
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise EvalgenError(f"{where}: 'seeds' should list distinct seeds >= 0, got {list(seeds)}")
    return seeds


def _entry(table: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> RunsEntry:
    _check_keys(table, _ENTRY_KEYS, where)
    merged = {**defaults, **table}
    if "plugin" not in merged:
        raise EvalgenError(f"{where}: every [[runs]] entry needs 'plugin', e.g. plugin = \"flows\"")
    samples = merged.get("importance_samples")
    return RunsEntry(
        plugin=_typed(merged["plugin"], str, "plugin", where),
        models=_names(merged.get("models", []), "models", where),
        datasets=_names(merged["datasets"], "datasets", where) if "datasets" in merged else (None,),
        budgets=_names(merged.get("budgets", "quick"), "budgets", where),
        seeds=_seeds(merged.get("seeds", 1), where),
        baseline=_typed(merged.get("baseline", True), bool, "baseline", where),
        options=dict(_typed(merged.get("options", {}), dict, "options", where)),
        importance_samples=None if samples is None else _typed(samples, int, "importance_samples", where))


def _folder(value: Any, what: str, base: Path, where: str, inside: bool = False) -> Path | None:
    """A folder named by the file, relative to the file's folder. With ``inside`` it must stay
    below it (no absolute path, no ..): a sweep file someone else wrote must not choose where
    evalgen writes; --out does that."""
    if value is None:
        return None
    text = _typed(value, str, what, where)
    if not text.strip():
        raise EvalgenError(f"{where}: '{what}' is empty; give a folder")
    path = Path(text).expanduser()
    if inside and (path.is_absolute() or ".." in path.parts):
        raise EvalgenError(f"{where}: '{what}' = {text!r} leaves the sweep file's folder; give a folder below it, "
                           f"or choose one with --out")
    return base / path


def _parse(data: Mapping[str, Any], path: Path) -> SweepFile:
    top = _where(path, "the top level")
    _check_keys(data, _TOP_KEYS, top)
    runs = data.get("runs")
    if not runs:
        raise EvalgenError(f"{path}: no [[runs]] entries; add one, e.g. [[runs]] plugin = \"flows\"")
    runs = _typed(runs, list, "runs", top)
    defaults = {k: v for k, v in data.items() if k in _ENTRY_KEYS}
    entries = tuple(_entry(_typed(t, dict, "runs", top), defaults, _where(path, f"[[runs]] entry {i + 1}"))
                    for i, t in enumerate(runs))
    executor = _typed(data.get("executor", "local"), str, "executor", top)
    if executor not in EXECUTORS:
        raise EvalgenError(f"{top}: {unknown_name('executor', executor, EXECUTORS)}")
    slurm = _typed(data.get("slurm", {}), dict, "slurm", top)
    execution = Execution(executor=executor, jobs=_typed(data.get("jobs", 1), int, "jobs", top),
                          slurm=SlurmOptions.from_table(slurm, _where(path, "[slurm]")))
    base = path.parent
    return SweepFile(path=path, entries=entries, out=_folder(data.get("out"), "out", base, top, inside=True),
                     device=None if "device" not in data else _typed(data["device"], str, "device", top),
                     data_dir=_folder(data.get("data_dir"), "data_dir", base, top), execution=execution.checked())


def read_sweep_file(path: Path) -> SweepFile:
    """Parse and check the sweep file at ``path`` (names are checked by `plan_sweep`)."""
    raw = read_bounded(path, "the sweep file", MAX_SWEEP_FILE_BYTES)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise EvalgenError(f"{path} is not UTF-8 text: not a sweep file") from None
    except tomllib.TOMLDecodeError as exc:
        raise EvalgenError(f"{path} is not valid TOML: {exc}") from None
    return _parse(data, path)


def plan_sweep(sweep: SweepFile, plugins: Plugins) -> list[RunSpec]:
    """Every run of the sweep, in file order, each once (a baseline shared by two entries, or a
    run listed twice, runs once). Unknown names and unfit model/dataset pairs fail here."""
    runs: dict[str, RunSpec] = {}
    for number, entry in enumerate(sweep.entries, start=1):
        for dataset in entry.datasets:
            for budget in entry.budgets:
                try:
                    specs = plan_specs(plugins, entry.plugin, list(entry.models), dataset, budget, 1,
                                       dict(entry.options), entry.baseline, entry.importance_samples)
                except EvalgenError as exc:
                    raise EvalgenError(f"{sweep.path}: [[runs]] entry {number}: {exc}") from None
                for spec in specs:
                    for seed in entry.seeds:
                        seeded = dataclasses.replace(spec, seed=seed)
                        runs.setdefault(seeded.key, seeded)
    return list(runs.values())
