"""The ``evalgen`` command line. Every EvalgenError becomes one line and a non-zero exit."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click

from evalgen.cli_common import Folder, debug, parse_options, user_errors
from evalgen.cli_score import eval_command, score_command
from evalgen.harness.flops import FLOP_CONVENTION
from evalgen.leaderboard.cli import leaderboard_command
from evalgen.new_plugin import new_plugin_command
from evalgen.sweeps.cli import execution_from_options, execution_options, report_sweep, sweep_command
from evalgen.testing.cli import check_command

DEFAULT_OUT = "evalgen-runs"


def _plugins():
    from evalgen.plugins import load_plugins

    return load_plugins()


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
    """Warnings (a rebuilt cache entry, an unreliable FID) as one line, not message + source line."""
    click.echo(f"warning: {' '.join(str(message).split())}", err=True)


@click.group()
@click.version_option(package_name="evalgen")
def main() -> None:
    """Train generative models under standardized budgets and compare them honestly."""
    if not debug():
        warnings.showwarning = _one_line_warning


def _chosen(plugins: Any, name: str | None) -> tuple[list[Any], list[Any]]:
    """The loaded plugins and load failures that ``evalgen plugins [NAME]`` lists."""
    if name is None:
        return list(plugins.loaded), list(plugins.failures)
    loaded = [p for p in plugins.loaded if name in (p.name, p.family.name if p.family else None)]
    failures = [f for f in plugins.failures if f.name == name]
    if not loaded and not failures:
        from evalgen.errors import unknown_name

        known = {p.name for p in plugins.loaded} | {p.family.name for p in plugins.loaded if p.family}
        raise unknown_name("plugin", name, known | {f.name for f in plugins.failures})
    return loaded, failures


@main.command("plugins")
@click.argument("name", required=False)
@click.option("--options", "show_options", is_flag=True,
              help="Also list each model's options (-o key=value): type, default, allowed values, help.")
@user_errors
def plugins_command(name: str | None, show_options: bool) -> None:
    """List installed plugins, their model families and any that failed to load; NAME: one
    plugin, with its models' options."""
    from evalgen.options import declared_options, format_options
    from evalgen.terminal import output_width

    plugins = _plugins()
    loaded_plugins, failures = _chosen(plugins, name)
    show_options = show_options or name is not None
    for loaded in loaded_plugins:
        version = f" ({loaded.version})" if loaded.version else ""
        if loaded.family is None:
            click.echo(f"{loaded.name}{version}: not a family (wraps or registers)")
            continue
        click.echo(f"{loaded.name}{version}: {loaded.family.summary}")
        for spec in loaded.family.models:
            kinds = ",".join(sorted(k.value for k in spec.data_kinds))
            label = spec.likelihood.label
            if spec.likelihood.sample_count is not None:
                label = f"{label[:-1]}, {spec.likelihood.sample_count} set by the budget)"
            click.echo(f"  {spec.name:<14} likelihood: {label:<28} data: {kinds}")
            if show_options:
                for line in format_options(declared_options(loaded.family, spec), output_width() or 100):
                    click.echo(line)
    for failure in failures:
        click.echo(f"{failure.name}: FAILED TO LOAD: {failure.error}")


@main.command("datasets")
@user_errors
def datasets_command() -> None:
    """List the registered datasets."""
    specs = list(_plugins().datasets)
    width = max([18, *(len(spec.name) for spec in specs)])
    for spec in specs:
        where = "files in the data directory" if spec.needs_files else "built in"
        click.echo(f"{spec.name:<{width}} {spec.kind.value:<10} {spec.summary} [{where}]")


@main.command("budgets")
@user_errors
def budgets_command() -> None:
    """List the training budget presets and their units.

    Training stops at the first of the budget's limits (counted FLOPs, steps, examples); the
    clock cap is a safety net, and a run it stops is marked as cut short."""
    for b in _plugins().budgets:
        click.echo(f"{b.name:<10} {b.target:<4} {b.summary}")
        click.echo(f"{'':15} training: {b.units()}")
        click.echo(f"{'':15} batch {b.batch_size}, validate every {b.eval_every} steps (patience {b.patience}), "
                   f"{b.num_samples} samples, {b.outlier_examples} examples per outlier set, "
                   f"K={b.importance_samples} for bounds")
    click.echo(f"FLOPs: {FLOP_CONVENTION}.")


@main.command("run")
@click.option("--plugin", "plugin_name", required=True, help="Model family to run, e.g. flows.")
@click.option("--model", "models", multiple=True, help="Model variant(s); default: all that fit the data.")
@click.option("--dataset", default=None,
              help="Dataset name (evalgen datasets); default: the family's default dataset, else digits.")
@click.option("--budget", default="quick", show_default=True, help="Budget preset (evalgen budgets).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1), help="Seeds 0..N-1.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=Folder(),
              help="Folder for records, checkpoints and tables.")
@click.option("--data-dir", type=Folder(), default=None,
              help="Dataset folder (default: $EVALGEN_DATA_DIR or the user cache).")
@click.option("-o", "--option", "options", multiple=True, help="Plugin option key=value (repeatable).")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Add the independent-dimension baseline row to the table.")
@click.option("--rerun", is_flag=True, help="Train again even where a finished record exists.")
@click.option("--save-samples", is_flag=True,
              help="Also save every sample each run scored (samples/<key>.npz), for evalgen score or any tool.")
@click.option("--importance-samples", type=int, default=None,
              help="Samples per test example for importance-sampled likelihoods (IWAE's K); "
                   "default: the budget's.")
@click.option("--trace", type=click.Choice(["off", "light", "full"]), default="light", show_default=True,
              help="Trace sample quality and modes over training: light (the budget's trace_samples at "
                   "most trace_points times, spread over the budget), full (4x the samples, every validation) or off.")
@execution_options
@user_errors
def run_command(plugin_name: str, models: tuple[str, ...], dataset: str | None, budget: str, seeds: int,
                device: str, out_dir: Path, data_dir: Path | None, options: tuple[str, ...],
                baseline: bool, rerun: bool, save_samples: bool, importance_samples: int | None,
                trace: str, **execution: Any) -> None:
    """Train and evaluate a family's models under a budget; print and save the table.

    The one-family shortcut of `evalgen sweep`: --jobs and --executor slurm work the same way."""
    from evalgen.planning import default_dataset, plan_specs
    from evalgen.sweeps.driver import SweepTarget, execute_sweep
    from evalgen.sweeps.execution import Execution
    from evalgen.table_columns import metric_columns

    plan = execution_from_options(Execution(), execution)
    plugins = _plugins()
    metric_columns(plugins.metrics)  # before training: two metrics may not claim one column
    if dataset is None:
        dataset = default_dataset(plugins, plugin_name)
        if plugins.family(plugin_name).default_dataset is not None:
            click.echo(f"dataset: {dataset} (the default of plugin '{plugin_name}'; --dataset to change)", err=True)
    specs = plan_specs(plugins, plugin_name, list(models), dataset, budget, seeds,
                       parse_options(options), baseline, importance_samples)
    result = execute_sweep(specs, SweepTarget(out_dir, device, data_dir, rerun, save_samples, trace), plan, plugins,
                           lambda line: click.echo(line, err=True))
    if not plan.detach:
        report_sweep(result, out_dir, plugins)


main.add_command(new_plugin_command)
main.add_command(leaderboard_command)
main.add_command(check_command)
main.add_command(sweep_command)
main.add_command(score_command)
main.add_command(eval_command)
