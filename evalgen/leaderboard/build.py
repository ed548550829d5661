"""`build_leaderboard`: run records in, every leaderboard file out (layout: `evalgen.leaderboard`)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from evalgen.leaderboard.board import Board, Row, build_boards, capabilities
from evalgen.leaderboard.collect import collect_records
from evalgen.leaderboard.curves import training_curves
from evalgen.leaderboard.escape import clean_text
from evalgen.leaderboard.figures import BoardFigure, board_figures
from evalgen.leaderboard.formats import leaderboard_csv, leaderboard_latex, leaderboard_markdown
from evalgen.leaderboard.html import leaderboard_html
from evalgen.leaderboard.plots import sample_grid
from evalgen.leaderboard.protocol import protocol_markdown
from evalgen.leaderboard.publish import ASSETS, asset_path, publish
from evalgen.table_columns import TableColumn, builtin_columns

__all__ = ["ASSETS", "build_leaderboard", "leaderboard_files"]


def _row_images(row: Row, board: Board, runs_dir: Path, report: Callable[[str], None]) -> dict[str, bytes]:
    images = {"samples": sample_grid(row, runs_dir, report),
              "curve": training_curves(row, f"{row.label} on {board.dataset} ({board.budget})")}
    return {kind: payload for kind, payload in images.items() if payload is not None}


def _assets(boards: list[Board], runs_dir: Path,
            report: Callable[[str], None]) -> tuple[dict[str, bytes], dict[str, dict[str, str]]]:
    """The PNG files by relative path, and per row (asset id) the path of each kind."""
    files: dict[str, bytes] = {}
    links: dict[str, dict[str, str]] = {}
    for board in boards:
        for row in board.rows:
            for kind, payload in _row_images(row, board, runs_dir, report).items():
                path = asset_path(row.asset_id, kind)
                if path in files:  # two rows must never share (or overwrite) a file
                    report(f"{row.found[0].path}: its {kind} image would be {path}, like another row's; "
                           f"it is left out (the record's key does not match its spec: {clean_text(row.asset_id)})")
                    continue
                files[path] = payload
                links.setdefault(row.asset_id, {})[kind] = path
    return files, links


def _board_figures(boards: list[Board], columns: Sequence[TableColumn], files: dict[str, bytes],
                   report: Callable[[str], None]) -> dict[str, list[BoardFigure]]:
    """Each board's interval and trade-off figures (`figures`), added to ``files``; by board slug."""
    shown: dict[str, list[BoardFigure]] = {}
    for board in boards:
        for figure in board_figures(board, columns):
            if figure.path in files:  # never overwrite a row's image (or another board's)
                report(f"{figure.path}: this figure of {clean_text(board.title)} is named like another image; "
                       f"it is left out")
                continue
            files[figure.path] = figure.payload
            shown.setdefault(board.slug, []).append(figure)
    return shown


def leaderboard_files(runs_dir: Path, out_dir: Path, report: Callable[[str], None] = print,
                      columns: Sequence[TableColumn] | None = None) -> dict[str, bytes]:
    """Every file of the leaderboard, by path relative to ``out_dir``; nothing is written.
    ``columns``: the metrics' (`evalgen.table_columns.metric_columns` of the loaded plugins);
    None: the built-in metrics'."""
    columns = builtin_columns() if columns is None else columns
    found = collect_records(runs_dir, report)
    boards = build_boards(found, columns)
    abilities = capabilities(found)
    files, links = _assets(boards, runs_dir, report)
    figures = _board_figures(boards, columns, files, report)
    runs_relative = shlex.quote(os.path.relpath(runs_dir.resolve(), out_dir.resolve()))
    texts = {
        "leaderboard.md": leaderboard_markdown(boards, abilities, links, len(found)),
        "leaderboard.csv": leaderboard_csv(boards, columns),
        "leaderboard.tex": leaderboard_latex(boards, abilities),
        "index.html": leaderboard_html(boards, abilities, links, len(found), figures),
        "protocol.md": protocol_markdown(found, boards, runs_relative),
    }
    return {**files, **{name: text.encode() for name, text in texts.items()}}


def build_leaderboard(runs_dir: Path, out_dir: Path, report: Callable[[str], None] = print,
                      force: bool = False, columns: Sequence[TableColumn] | None = None) -> list[Path]:
    """Read every record under ``runs_dir`` and write the leaderboard into ``out_dir``.

    Nothing is written unless all records are valid and compatible, and unless every file in the
    way was written by an earlier build and is unchanged (``force``: overwrite them anyway); see
    `evalgen.leaderboard.publish`. Returns the written paths, the manifest last.
    """
    return publish(out_dir, leaderboard_files(runs_dir, out_dir, report, columns), force=force, report=report)
