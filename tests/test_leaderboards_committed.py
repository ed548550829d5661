"""The leaderboards committed under leaderboards/ regenerate byte for byte from their committed
run records with the documented command (``evalgen leaderboard runs --out .`` in each folder)."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalgen.cli import main
from evalgen.leaderboard.publish import MANIFEST

LEADERBOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
BOARDS = sorted(runs.parent for runs in LEADERBOARDS.glob("*/runs") if runs.is_dir())


def _generated_files(folder: Path) -> dict[str, bytes]:
    """Every file of a leaderboard folder but its inputs (runs/) and hand-written notes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] != "runs" and p.name != "NOTES.md"}


def test_there_are_committed_leaderboards():
    assert BOARDS, f"no leaderboard with a runs/ folder under {LEADERBOARDS}"


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.name)
def test_committed_leaderboard_regenerates_byte_for_byte(board, tmp_path):
    copy = tmp_path / board.name
    shutil.copytree(board / "runs", copy / "runs")
    result = CliRunner().invoke(main, ["leaderboard", str(copy / "runs"), "--out", str(copy)])
    assert result.exit_code == 0, result.output
    committed, rebuilt = _generated_files(board), _generated_files(copy)
    assert sorted(rebuilt) == sorted(committed)
    plotted_with = f"matplotlib {importlib.metadata.version('matplotlib')}"
    same_renderer = plotted_with in committed["protocol.md"].decode()
    for name, payload in committed.items():
        if (name.endswith(".png") or name == MANIFEST) and not same_renderer:
            continue  # PNG bytes (and so their hashes in the manifest) depend on the renderer's version
        assert rebuilt[name] == payload, f"{board.name}/{name} differs when regenerated"
