"""``evalgen sweep SWEEP.toml`` and the execution options it shares with ``evalgen run``
(``--jobs``, ``--executor``, the SLURM resources, ``--detach``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from evalgen.cli_common import Folder, parse_options, user_errors
from evalgen.errors import EvalgenError
from evalgen.sweeps.execution import EXECUTORS, Execution

__all__ = ["execution_from_options", "execution_options", "report_sweep", "sweep_command"]

DEFAULT_OUT = "evalgen-runs"


def execution_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options that say where runs execute; the command gets them as keyword arguments
    (None where not given, so a sweep file's values stand)."""
    options = [
        click.option("--executor", type=click.Choice(EXECUTORS), default=None,
                     help="local: this machine (default); slurm: one SLURM array task per run."),
        click.option("--jobs", type=click.IntRange(1), default=None,
                     help="Runs at once on this machine, each in a fresh process (default 1: in this process)."),
        click.option("--partition", default=None, help="SLURM partition (default: the cluster's)."),
        click.option("--time-minutes", type=click.IntRange(1), default=None,
                     help="SLURM time limit of one run, minutes (default 60)."),
        click.option("--gpus-per-job", type=click.IntRange(0), default=None, help="SLURM GPUs per run."),
        click.option("--cpus-per-job", type=click.IntRange(1), default=None,
                     help="SLURM CPUs per run; also its torch threads (default 1)."),
        click.option("--mem-gb", type=click.IntRange(1), default=None, help="SLURM memory per run, GB."),
        click.option("--array-parallelism", type=click.IntRange(1), default=None,
                     help="SLURM array tasks running at once (default: no limit)."),
        click.option("--sbatch", "sbatch", multiple=True,
                     help="Another sbatch option as name=value, e.g. account=myproj (repeatable)."),
        click.option("--detach", is_flag=True, default=None,
                     help="slurm: submit and return; follow with evalgen sweep FILE --status."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def execution_from_options(base: Execution, options: dict[str, Any]) -> Execution:
    """``base`` (the sweep file's, or the defaults) with the command line's choices over it."""
    sbatch = options.pop("sbatch", ())
    overrides = {**options, "sbatch": {k: str(v) for k, v in parse_options(tuple(sbatch)).items()} or None}
    if overrides.get("jobs") not in (None, 1) and overrides.get("executor") is None and base.executor == "slurm":
        raise EvalgenError("--jobs is for --executor local; a SLURM sweep sizes itself with --array-parallelism")
    return base.with_overrides(**overrides)


def report_sweep(result: Any, out_dir: Path, plugins: Any, echo: Callable[[str], None] = click.echo) -> None:
    """Print and save the tables of the finished records; one line for the failures (non-zero exit)."""
    from evalgen.table_columns import metric_columns
    from evalgen.tables import write_tables
    from evalgen.terminal import output_width

    if result.records:
        text, paths = write_tables(result.records, out_dir, metric_columns(plugins.metrics), width=output_width())
        echo(text)
        click.echo(f"\ntables: {', '.join(str(p) for p in paths)}", err=True)
    if result.failures:
        spec, reason = result.failures[0]
        more = f" (and {len(result.failures) - 1} more, listed above)" if len(result.failures) > 1 else ""
        raise EvalgenError(f"{len(result.failures)} run(s) failed{more}; {spec.key}: {reason}")


def _print_plan(specs: list[Any], execution: Execution, out_dir: Path) -> None:
    where = (f"SLURM array ({execution.slurm.array_parallelism or 'all'} at once)" if execution.executor == "slurm"
             else f"this machine, {execution.jobs} at once")
    click.echo(f"{len(specs)} run(s) into {out_dir}, on {where}:")
    for spec in specs:
        options = f" {spec.config}" if spec.config else ""
        click.echo(f"  {spec.plugin}:{spec.model} on {spec.dataset}, budget {spec.budget}, seed {spec.seed}{options}")


def _print_status(statuses: list[Any]) -> None:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status.status] = counts.get(status.status, 0) + 1
        detail = f": {status.detail}" if status.detail else ""
        click.echo(f"{status.status:<12} {status.spec.key}{detail}")
        for line in status.log_tail:
            click.echo(f"{'':13}| {line}")
    click.echo(", ".join(f"{n} {name}" for name, n in sorted(counts.items())), err=True)


@click.command("sweep")
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=Folder(), default=None,
              help=f"Folder for records and tables (default: the file's 'out', else {DEFAULT_OUT}).")
@click.option("--device", default=None, help="auto, cpu or cuda (default: the file's, else auto).")
@click.option("--data-dir", type=Folder(), default=None, help="Dataset folder (default: $EVALGEN_DATA_DIR).")
@click.option("--dry-run", is_flag=True, help="Check the file and print the planned runs; run nothing.")
@click.option("--status", "show_status", is_flag=True,
              help="Say what is done, running, pending and failed (with the log's last lines); run nothing.")
@click.option("--rerun", is_flag=True, help="Train again even where a finished record exists.")
@click.option("--save-samples", is_flag=True, help="Also save every sample each run scored (samples/<key>.npz).")
@click.option("--trace", type=click.Choice(["off", "light", "full"]), default="light", show_default=True,
              help="Trace sample quality and modes over training (as evalgen run --trace).")
@execution_options
@user_errors
def sweep_command(sweep_file: Path, out_dir: Path | None, device: str | None, data_dir: Path | None,
                  dry_run: bool, show_status: bool, rerun: bool, save_samples: bool, trace: str,
                  **execution: Any) -> None:
    """Run the matrix of runs that SWEEP_FILE (TOML) lists, on this machine or a SLURM cluster.

    Runs with a finished record are reused, so running the sweep again runs only what is missing."""
    from evalgen.plugins import load_plugins
    from evalgen.sweeps.driver import SweepTarget, execute_sweep, sweep_status
    from evalgen.sweeps.sweepfile import plan_sweep, read_sweep_file

    sweep = read_sweep_file(sweep_file)
    plan = execution_from_options(sweep.execution, execution)
    plugins = load_plugins()
    specs = plan_sweep(sweep, plugins)
    out = out_dir or sweep.out or Path(DEFAULT_OUT)
    if dry_run:
        _print_plan(specs, plan, out)
        return
    if show_status:
        _print_status(sweep_status(specs, out))
        return
    target = SweepTarget(out, device or sweep.device or "auto", data_dir or sweep.data_dir, rerun, save_samples,
                         trace)
    result = execute_sweep(specs, target, plan, plugins, lambda line: click.echo(line, err=True))
    if plan.detach:
        return
    report_sweep(result, out, plugins)

