"""``evalgen score`` (samples from anywhere) and ``evalgen eval`` (a finished run evaluated again):
numbers for what evalgen did not train, written as records that leaderboards show beside runs."""

from __future__ import annotations

from pathlib import Path

import click

from evalgen.cli_common import Folder, user_errors

__all__ = ["eval_command", "score_command"]

DEFAULT_OUT = "evalgen-runs"


def _say(record, plugins, path: Path) -> None:
    from evalgen.harness.runner import summary_line
    from evalgen.table_columns import metric_columns

    columns = {column.name: column for column in metric_columns(plugins.metrics)}
    click.echo(summary_line(record, columns))
    click.echo(f"record: {path}")


@click.command("score")
@click.argument("samples", type=click.Path(path_type=Path))
@click.option("--dataset", required=True, help="The dataset the samples are of (evalgen datasets).")
@click.option("--name", default=None, help="The row's name: samples:NAME (default: from the file name).")
@click.option("--extractor", default=None, help="Feature extractor for IS/FID/KID (default: the dataset's).")
@click.option("--budget", default="quick", show_default=True,
              help="Shown with, and compared with, the runs of this budget.")
@click.option("--key", default=None, help="The array of an .npz that holds several.")
@click.option("--float01", is_flag=True, help="Values are floats in [0, 1] (else the dataset's levels or 0..255).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of the metrics' subsets.")
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=Folder(),
              help="Folder the record goes to (records/).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--data-dir", type=Folder(), default=None,
              help="Dataset folder (default: $EVALGEN_DATA_DIR or the user cache).")
@user_errors
def score_command(samples: Path, dataset: str, name: str | None, extractor: str | None, budget: str,
                  key: str | None, float01: bool, seed: int, out_dir: Path, device: str,
                  data_dir: Path | None) -> None:
    """Score SAMPLES (.npy, .npz, .pt, or a folder of PNG/JPEG images) with every sample-based
    metric of the dataset, against the reference features its runs use; write a record."""
    from evalgen.harness.entry import default_samples_name, writing_context
    from evalgen.harness.external import ScoreRequest, score_external
    from evalgen.records import record_path

    ctx = writing_context(out_dir, device, data_dir)
    request = ScoreRequest(samples, dataset, name or default_samples_name(samples), budget, extractor, key,
                           float01, seed)
    record = score_external(request, ctx)
    _say(record, ctx.plugins, record_path(out_dir, record.key))


@click.command("eval")
@click.argument("record_or_key")
@click.option("--runs", "runs_dir", default=DEFAULT_OUT, show_default=True, type=Folder(),
              help="Where a KEY's record and checkpoint are (--out of its evalgen run).")
@click.option("--importance-samples", type=click.IntRange(1), default=None,
              help="Test-set K of an importance-sampled likelihood (e.g. 5000 for the literature's IWAE bound).")
@click.option("--num-samples", type=click.IntRange(1), default=None, help="Samples for the sample-based metrics.")
@click.option("--metric", "metrics", multiple=True,
              help="Compute only this metric (repeatable): test_nll, sample_quality, outliers, mode_coverage, ...")
@click.option("--out", "out_dir", default=None, type=Folder(),
              help="Folder the new record goes to (default: the original's).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--data-dir", type=Folder(), default=None,
              help="Dataset folder (default: $EVALGEN_DATA_DIR or the user cache).")
@user_errors
def eval_command(record_or_key: str, runs_dir: Path, importance_samples: int | None, num_samples: int | None,
                 metrics: tuple[str, ...], out_dir: Path | None, device: str, data_dir: Path | None) -> None:
    """Evaluate a finished run again from its checkpoint, under new evaluation settings, without
    training it again; write a record of its own beside the original."""
    from evalgen.harness.entry import resolve_record, writing_context
    from evalgen.harness.reevaluation import EvalSettings, reevaluate
    from evalgen.records import record_path

    path = resolve_record(record_or_key, runs_dir)
    target = out_dir if out_dir is not None else path.parent.parent
    ctx = writing_context(target, device, data_dir)
    record = reevaluate(path, EvalSettings(importance_samples, num_samples, metrics), ctx)
    _say(record, ctx.plugins, record_path(target, record.key))
