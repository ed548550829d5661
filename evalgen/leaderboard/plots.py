"""Per-row images: the sample grid of the lowest seed that has one (the run's own PNG, copied);
the training curves are drawn by `evalgen.leaderboard.curves`.

A sample grid comes from someone else's run folder and is published as it is, so it is copied
only if it is what `evalgen run` writes there (`sample_grid_problem`): a regular file, reached
without a symbolic link from the runs folder and inside the run's folder, at most
`MAX_GRID_BYTES`, a valid PNG and nothing after it, of the pixel size
`evalgen.harness.grids.grid_size` gives for the record's dataset shape and sample count. Anything
else (a link to a private key, a page of HTML named .png, a huge image) is reported, one line, and
the row is shown without samples.

Plots are byte-for-byte reproducible for a given matplotlib: matplotlib's default style (not the
user's matplotlibrc), a fixed size and dpi, and no software/date metadata in the PNG.
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from evalgen.harness.grids import grid_size
from evalgen.leaderboard.board import Row
from evalgen.leaderboard.collect import Found
from evalgen.leaderboard.escape import clean_text
from evalgen.record_types import RunRecord
from evalgen.storage import inside
from evalgen.types import LikelihoodKind

__all__ = ["MAX_GRID_BYTES", "MAX_GRID_PIXELS", "PNG_MAGIC", "sample_grid", "sample_grid_problem"]

FIGSIZE = (4.0, 3.0)
#: What a learning curve's axis adds to "validation NLL" per likelihood kind.
CURVE_KINDS = {LikelihoodKind.LOWER_BOUND: ", upper bound", LikelihoodKind.ESTIMATE: ", estimate"}
DPI = 100
TITLE_WIDTH = 60  # characters per line

#: Largest sample grid published (the harness writes tens of kB).
MAX_GRID_BYTES = 8 * 2**20
#: Largest grid, in pixels, however large the record says its images are (a browser decodes it).
MAX_GRID_PIXELS = 25_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: the last bytes of a PNG
#: How the harness names grids (`evalgen.harness.grids.grid_path`), relative to the run folder.
_GRID_NAME = re.compile(r"samples/[A-Za-z0-9][A-Za-z0-9._-]*\.png")


class _Refused(Exception):
    """Why a sample grid is not published (internal: it becomes one reported line)."""


def _no_links(base: Path, path: Path) -> None:
    """Refuse ``path`` if it, or a folder between ``base`` and it, is a symbolic link."""
    current = base
    for part in path.relative_to(base).parts:
        current = current / part
        if current.is_symlink():
            raise _Refused(f"{current} is a symbolic link")


def _expected_size(record: RunRecord) -> tuple[int, int]:
    shape = record.dataset.shape
    num_samples = record.sampling.num_samples if record.sampling is not None else None
    numbers = all(isinstance(n, int) for n in [*shape, num_samples])
    size = grid_size(shape, num_samples) if numbers else None
    if size is None:
        raise _Refused(f"evalgen writes no sample grid for {num_samples} samples of shape {shape}")
    if size[0] * size[1] > MAX_GRID_PIXELS:
        raise _Refused(f"a grid of {size[0]}x{size[1]} pixels is larger than leaderboards publish")
    return size


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file of at most `MAX_GRID_BYTES`, opened without following a link
    (and without blocking on a FIFO)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _Refused(f"cannot be opened ({exc.strerror or type(exc).__name__})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a folder, a FIFO, a device
            raise _Refused("not a regular file")
        if info.st_size > MAX_GRID_BYTES:
            raise _Refused(f"{info.st_size} bytes, more than {MAX_GRID_BYTES // 2**20} MiB")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_GRID_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_GRID_BYTES:
        raise _Refused(f"more than {MAX_GRID_BYTES // 2**20} MiB")
    return data


def _check_png(data: bytes, expected: tuple[int, int]) -> None:
    from PIL import Image  # a dependency of matplotlib and torchvision

    if not data.startswith(PNG_MAGIC):
        raise _Refused("not a PNG file (no PNG signature)")
    if not data.endswith(_PNG_END):
        raise _Refused("not a PNG file as evalgen writes it (data after the image, or truncated)")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            size = image.size
            if size != expected:  # before decoding anything: a wrong size may be a huge one
                raise _Refused(f"{size[0]}x{size[1]} pixels where evalgen writes {expected[0]}x{expected[1]} "
                               f"for this record")
            image.verify()
    except _Refused:
        raise
    except Exception as exc:  # noqa: BLE001 -- PIL raises many kinds on bad files (SyntaxError, struct.error...)
        detail = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise _Refused(f"not a valid PNG image ({detail})") from None


def sample_grid_problem(found: Found, runs_dir: Path) -> tuple[bytes | None, str | None]:
    """The grid of one record: (PNG bytes, None), (None, None) without one, or (None, why it is
    refused). ``runs_dir``: the folder the records were found under (no link below it is followed)."""
    grid = found.record.samples_grid
    if not grid:
        return None, None
    path = found.run_dir / str(grid)
    try:
        if not isinstance(grid, str) or not _GRID_NAME.fullmatch(grid):
            raise _Refused("not samples/<name>.png")
        base = runs_dir if found.run_dir.is_relative_to(runs_dir) else found.run_dir
        _no_links(base, path)
        if not os.path.lexists(path):
            return None, None  # not copied with the record (leaderboards keep one seed's grids)
        if not (inside(found.run_dir, path) and inside(runs_dir, path)):
            raise _Refused(f"it lies outside the run folder {found.run_dir}")
        expected = _expected_size(found.record)
        data = _read_regular(path)
        _check_png(data, expected)
    except _Refused as refused:
        return None, str(refused)
    return data, None


def sample_grid(row: Row, runs_dir: Path, report: Callable[[str], None]) -> bytes | None:
    """The PNG bytes of the lowest finished seed's sample grid, or None if no run has one.

    A grid that is refused (see the module docstring) is reported, one line naming the record and
    the file, and the row gets no grid (not another seed's: the lowest seed is the one shown).
    """
    for found in row.found:  # in seed order
        if not found.record.finished:
            continue
        data, problem = sample_grid_problem(found, runs_dir)
        if problem is not None:
            where = clean_text(found.run_dir / str(found.record.samples_grid))
            report(f"{found.path}: sample grid {where} not published: {clean_text(problem)}; "
                   f"the row is shown without samples (replace the file with the one evalgen run wrote)")
            return None
        if data is not None:
            return data
    return None


def _plain(text: str) -> str:
    """``text`` as matplotlib shows it literally: one line, and a ``$`` would start mathtext
    (a record's name could make the parser fail, and with it the whole build)."""
    return clean_text(text).replace("$", r"\$")
