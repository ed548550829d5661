"""`build_leaderboard`: run records in, every leaderboard file out (layout: `evalgen.leaderboard`)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path

from evalgen.leaderboard.board import Board, build_boards, capabilities
from evalgen.leaderboard.collect import collect_records
from evalgen.leaderboard.formats import leaderboard_csv, leaderboard_latex, leaderboard_markdown
from evalgen.leaderboard.html import leaderboard_html
from evalgen.leaderboard.plots import learning_curve, sample_grid
from evalgen.leaderboard.protocol import protocol_markdown
from evalgen.records import atomic_write_bytes

ASSETS = "assets"


def _assets(boards: list[Board]) -> tuple[dict[str, bytes], dict[str, dict[str, str]]]:
    """The PNG files by relative path, and per row (asset id) the path of each kind."""
    files: dict[str, bytes] = {}
    links: dict[str, dict[str, str]] = {}
    for board in boards:
        for row in board.rows:
            images = {"samples": sample_grid(row),
                      "curve": learning_curve(row, f"{row.label} on {board.dataset} ({board.budget})")}
            for kind, payload in images.items():
                if payload is not None:
                    path = f"{ASSETS}/{row.asset_id}--{kind}.png"
                    files[path] = payload
                    links.setdefault(row.asset_id, {})[kind] = path
    return files, links


def _remove_stale_assets(out_dir: Path, keep: set[str]) -> None:
    """PNGs of rows that are gone would otherwise linger beside the regenerated files."""
    for path in sorted((out_dir / ASSETS).glob("*.png")):
        if f"{ASSETS}/{path.name}" not in keep:
            path.unlink()


def leaderboard_files(runs_dir: Path, out_dir: Path, report: Callable[[str], None] = print) -> dict[str, bytes]:
    """Every file of the leaderboard, by path relative to ``out_dir``; nothing is written."""
    found = collect_records(runs_dir, report)
    boards = build_boards(found)
    abilities = capabilities(found)
    files, links = _assets(boards)
    runs_relative = shlex.quote(os.path.relpath(runs_dir.resolve(), out_dir.resolve()))
    texts = {
        "leaderboard.md": leaderboard_markdown(boards, abilities, links, len(found)),
        "leaderboard.csv": leaderboard_csv(boards),
        "leaderboard.tex": leaderboard_latex(boards, abilities),
        "index.html": leaderboard_html(boards, abilities, links, len(found)),
        "protocol.md": protocol_markdown(found, boards, runs_relative),
    }
    return {**files, **{name: text.encode() for name, text in texts.items()}}


def build_leaderboard(runs_dir: Path, out_dir: Path, report: Callable[[str], None] = print) -> list[Path]:
    """Read every record under ``runs_dir`` and write the leaderboard into ``out_dir``.

    Nothing is written unless all records are valid and compatible. Returns the written paths.
    """
    files = leaderboard_files(runs_dir, out_dir, report)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_assets(out_dir, set(files))
    for name in sorted(files):
        atomic_write_bytes(out_dir / name, files[name])
    return [out_dir / name for name in sorted(files)]
