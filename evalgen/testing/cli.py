"""``evalgen check PLUGIN``: run the conformance kit from the command line."""

from __future__ import annotations

import click

from evalgen.cli_common import parse_options, user_errors


@click.command("check")
@click.argument("plugin")
@click.option("--model", "models", multiple=True, help="Model variant(s) to check; default: all.")
@click.option("--check", "checks", multiple=True,
              help="Only these checks (repeatable): family, build, sample, determinism, log_prob, normalization, "
                   "agreement, checkpoint, training, one_step, side_effects, outlier_score, "
                   "likelihood_details.")
@click.option("-o", "--option", "options", multiple=True, help="Plugin option key=value (repeatable), as for run.")
@click.option("--device", default="cpu", show_default=True, help="Device the models run on.")
@click.option("-v", "--verbose", is_flag=True, help="Also print what each passing check measured.")
def check_command(plugin: str, models: tuple[str, ...], checks: tuple[str, ...], options: tuple[str, ...],
                  device: str, verbose: bool) -> None:
    """Check that an installed plugin honours the hook contracts (shapes, determinism,
    normalization, samples vs log_prob, checkpoints, training steps).

    Prints one line per model, data kind and check, PASS/FAIL/SKIP with its time and, for FAIL
    and SKIP, what to do; exits with 1 when any check failed.
    """
    import dataclasses

    from evalgen.testing import DEFAULTS, check_plugin
    from evalgen.testing.report import format_result

    settings = dataclasses.replace(DEFAULTS, device=device)
    report = user_errors(check_plugin)(plugin, list(models) or None, checks=list(checks) or None, settings=settings,
                                       config=parse_options(options),
                                       on_result=lambda result: click.echo(format_result(result, verbose)))
    click.echo(report.summary())
    if not report.ok:
        raise click.exceptions.Exit(1)
