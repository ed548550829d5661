"""``evalgen leaderboard``: registered on the main group by `evalgen.cli`."""

from __future__ import annotations

from pathlib import Path

import click

from evalgen.cli_common import Folder, user_errors

__all__ = ["leaderboard_command"]


@click.command("leaderboard")
@click.argument("runs_dir", type=Folder())
@click.option("--out", "out_dir", required=True, type=Folder(),
              help="Folder for the leaderboard files (created if missing).")
@click.option("--force", is_flag=True,
              help="Overwrite files in OUT that have a leaderboard file's name but that an earlier build did not "
                   "write (or that were changed since). Other files are never touched.")
def leaderboard_command(runs_dir: Path, out_dir: Path, force: bool) -> None:
    """Build leaderboards from every records/*.json under RUNS_DIR (any depth: the --out folders
    of `evalgen run` from several machines).

    Records are validated against the run-record schema and merged; identical copies are fine,
    but differing records with the same key, other schema or evalgen major versions, and
    disagreeing dataset or budget definitions are errors, and nothing is written. One table per
    (dataset, budget), rows plugin:model, seeds as mean ± std (n); diverged seeds are listed.
    NLLs are marked exact (bare), bound (≤) or estimate (≈). Each metric ranks the rows as a
    superscript; '#' is the rank by test NLL (bits/dim, else nats), or by FID without one.

    \b
    Writes, byte-for-byte the same from the same records:
      OUT/leaderboard.md    every table, the capability matrix, sample grids and curves
      OUT/leaderboard.csv   every row, numbers unrounded (one line per dataset, budget, model)
      OUT/leaderboard.tex   booktabs tables (\\usepackage{booktabs})
      OUT/index.html        one page, sortable columns, works offline
      OUT/protocol.md       datasets, budgets, hardware, versions, a command per row
      OUT/assets/*.png      per row: the sample grid and validation NLL against time
      OUT/.evalgen-leaderboard.json   the manifest: each file above with its sha256

    OUT may hold other files (notes, the runs): they are never touched. A file is overwritten or
    removed only if the manifest says an earlier build wrote it and it is unchanged since; any
    other file in the way (a hand-written index.html, an edited leaderboard.md) stops the build
    before anything is written, unless --force. Text from records is escaped in every format, and
    a run's sample grid is published only if it is the PNG `evalgen run` writes (a regular file in
    the run's folder, not a link, of the expected size); otherwise that row has no grid and a line
    says why.

    \b
    Example (a leaderboard kept with its records):
      evalgen leaderboard leaderboards/NAME/runs --out leaderboards/NAME
    """
    from evalgen.leaderboard.build import build_leaderboard
    from evalgen.plugins import load_plugins
    from evalgen.table_columns import metric_columns

    def build() -> None:
        columns = metric_columns(load_plugins().metrics)  # a plugin's metric gets its columns too
        paths = build_leaderboard(runs_dir, out_dir, report=lambda line: click.echo(line, err=True), force=force,
                                  columns=columns)
        click.echo(f"leaderboard: {len(paths)} files in {out_dir} (open {out_dir / 'index.html'})")

    user_errors(build)()
