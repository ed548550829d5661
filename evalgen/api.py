"""The Python API, for notebooks: `score` samples, `evaluate` a model or a finished run, `run` a
sweep. Each does what its command does (`evalgen score`, `evalgen eval`, `evalgen run`), writes
the same records, and returns them typed (`Results`), with `Results.to_frame` for pandas.

Errors are `evalgen.EvalgenError`, one line each, as on the command line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from evalgen.errors import EvalgenError
from evalgen.record_types import RunRecord

__all__ = ["DEFAULT_OUT", "Results", "evaluate", "run", "score"]

#: Where records go unless ``out`` says otherwise (as on the command line).
DEFAULT_OUT = "evalgen-runs"


@dataclass(frozen=True)
class Results:
    """The records an API call wrote, typed (`evalgen.record_types.RunRecord`), and what failed.

    Attributes:
        records: one per run, scored file or evaluation, in order.
        out_dir: the folder they were written to (``records/<key>.json``).
        failures: (key, one-line reason) of the runs of a sweep that failed; the others finished.
    """

    records: tuple[RunRecord, ...]
    out_dir: Path
    failures: tuple[tuple[str, str], ...] = field(default=())

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[RunRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> RunRecord:
        return self.records[index]

    @property
    def record(self) -> RunRecord:
        """The one record of a call that wrote one (`score`, `evaluate`)."""
        if len(self.records) != 1:
            raise EvalgenError(f"these results hold {len(self.records)} records; index them")
        return self.records[0]

    def to_frame(self) -> pd.DataFrame:
        """One row per record: its identity (dataset, budget, plugin, model, variant, origin, seed),
        and the number of every metric column (``fid``, ``bits_per_dim``, ...) with its label
        (``<column>_label``); NaN where a record has no such number."""
        from evalgen.table_columns import COST_COLUMNS, builtin_columns
        from evalgen.tables import records_frame

        return records_frame(self.records, (*builtin_columns(), *COST_COLUMNS))

    def table(self) -> pd.DataFrame:
        """The comparison table `evalgen run` prints (seeds aggregated), as a frame of cells."""
        from evalgen.tables import comparison

        return comparison(self.records)[1]


def _context(out: str | Path, device: str, data_dir: str | Path | None):
    from evalgen.harness.entry import writing_context  # the commands' own set-up

    return writing_context(Path(out), device, None if data_dir is None else Path(data_dir))


def score(samples: str | Path | np.ndarray | torch.Tensor, *, dataset: str, name: str | None = None,
          budget: str = "quick", extractor: str | None = None, key: str | None = None, float01: bool = False,
          seed: int = 0, out: str | Path = DEFAULT_OUT, device: str = "auto",
          data_dir: str | Path | None = None) -> Results:
    """Score samples from anywhere as `evalgen score` does.

    samples: a .npy/.npz/.pt file or a folder of PNG/JPEG images, or an array or tensor
        (N, *dataset shape) in the dataset's levels (floats in [0, 1] with ``float01``).
    dataset: the dataset they are of; name: the row's name (``samples:<name>``; default: from
        the file name, "samples" for an array); budget: the runs they are compared with.
    """
    from evalgen.harness.entry import default_samples_name
    from evalgen.harness.external import ScoreRequest, score_external

    in_memory = isinstance(samples, (np.ndarray, torch.Tensor))
    source = samples if in_memory else Path(samples)
    chosen = name or ("samples" if in_memory else default_samples_name(Path(samples)))
    ctx = _context(out, device, data_dir)
    record = score_external(ScoreRequest(source, dataset, chosen, budget, extractor, key, float01, seed), ctx)
    return Results((record,), ctx.out_dir)


def evaluate(target: str | Path | torch.nn.Module, *, plugin: str | None = None, model: str | None = None,
             dataset: str | None = None, options: Mapping[str, Any] | None = None, seed: int = 0,
             importance_samples: int | None = None, num_samples: int | None = None, metrics: Sequence[str] = (),
             out: str | Path | None = None, runs: str | Path = DEFAULT_OUT, device: str = "auto",
             data_dir: str | Path | None = None) -> Results:
    """Evaluate a finished run again, or a model object, without training it.

    target: a record file or key of a finished run (found in ``runs``), evaluated again from its
        checkpoint as `evalgen eval` does, with ``importance_samples``, ``num_samples`` and
        ``metrics`` changed where given; or an ``nn.Module`` built (and trained) elsewhere for
        ``plugin``'s ``model`` on ``dataset`` (with ``options``), evaluated with that family's
        hooks under the budget of no training (``none``), as a pretrained model is.
    out: the folder of the new record (default: the run's, or ``evalgen-runs`` for a module).
    """
    if isinstance(target, torch.nn.Module):
        return _evaluate_module(target, plugin, model, dataset, options or {}, seed, importance_samples,
                                Path(out or DEFAULT_OUT), device, data_dir)
    if plugin is not None or model is not None or dataset is not None:
        raise EvalgenError("plugin, model and dataset describe a model object; a finished run is named by "
                           "its record alone")
    from evalgen.harness.entry import resolve_record
    from evalgen.harness.reevaluation import EvalSettings, reevaluate

    path = resolve_record(str(target), Path(runs))
    ctx = _context(out if out is not None else path.parent.parent, device, data_dir)
    record = reevaluate(path, EvalSettings(importance_samples, num_samples, tuple(metrics)), ctx)
    return Results((record,), ctx.out_dir)


def _evaluate_module(module: torch.nn.Module, plugin: str | None, model: str | None, dataset: str | None,
                     options: Mapping[str, Any], seed: int, importance_samples: int | None, out: Path,
                     device: str, data_dir: str | Path | None) -> Results:
    from evalgen.harness.runner import run_one
    from evalgen.runspec import RunSpec

    if plugin is None or model is None or dataset is None:
        raise EvalgenError("evaluating a model object needs plugin=, model= and dataset= (whose hooks score it)")
    ctx = _context(out, device, data_dir)
    spec = RunSpec(plugin, model, dataset, "none", seed, dict(options), importance_samples)
    record, _ = run_one(spec, ctx, prebuilt=module)
    return Results((record,), ctx.out_dir)


def run(plugin: str, *, models: Sequence[str] = (), dataset: str | None = None, budget: str = "quick",
        seeds: int = 1, options: Mapping[str, Any] | None = None, baseline: bool = False,
        importance_samples: int | None = None, jobs: int = 1, out: str | Path = DEFAULT_OUT,
        device: str = "auto", data_dir: str | Path | None = None, rerun: bool = False,
        save_samples: bool = False, trace: str = "light") -> Results:
    """Train and evaluate ``plugin``'s ``models`` (default: all that fit ``dataset``) under
    ``budget`` for seeds 0..``seeds``-1, as `evalgen run` does (``jobs`` runs at once); finished
    records are reused unless ``rerun``; ``trace``: off, light or full (``--trace``). A failing run
    is in ``failures``; the others finish."""
    from evalgen.planning import default_dataset, plan_specs
    from evalgen.plugins import load_plugins
    from evalgen.sweeps.driver import SweepTarget, execute_sweep
    from evalgen.sweeps.execution import Execution

    plugins = load_plugins()
    dataset = dataset or default_dataset(plugins, plugin)
    specs = plan_specs(plugins, plugin, list(models), dataset, budget, seeds, dict(options or {}), baseline,
                       importance_samples)
    target = SweepTarget(Path(out), device, None if data_dir is None else Path(data_dir), rerun, save_samples,
                         trace)
    result = execute_sweep(specs, target, Execution(jobs=jobs).checked(), plugins, lambda line: None)
    return Results(tuple(result.records), Path(out), tuple((spec.key, why) for spec, why in result.failures))
