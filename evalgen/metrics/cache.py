"""evalgen's metric cache: entries that are checked before they are parsed, and never unpickled.

Anyone who can write to the cache folder can plant a file there, so a cache entry is data to
check, not code to run. Arrays (reference features) are ``.npy`` files read back with numpy's
``.npy`` reader and ``allow_pickle=False``, each beside a JSON sidecar ``<file>.json`` holding the
SHA-256 of its bytes, its shape and its dtype (`write_array`, `read_array`). A reader takes the
bytes once, checks their SHA-256 against the sidecar, then parses those same bytes (nothing can
swap the file between the check and the use) and checks shape, dtype and finiteness.

A failing entry raises `BadCacheEntry` with the reason in a few words; callers rebuild it and say
so in one line. A missing entry is None. Both files are written with `atomic_write_bytes`, the
array first: a process killed between the two leaves a pair that fails the check, so it is
rebuilt, never trusted. `cache_folder` also clears the temporaries a killed writer left behind.

`remove_legacy_sample_features` deletes what older evalgen versions left in ``<cache>/fidelity``:
per-run sample features named ``evalgen-samples-<uuid>-*.pt`` that torch-fidelity wrote and a
kill -9 left behind. Nothing else there is touched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
from pathlib import Path

import numpy as np

from evalgen.errors import EvalgenError
from evalgen.storage import atomic_write_bytes, check_real_folder, read_json, remove_stale_temporaries

__all__ = [
    "ARRAY_FORMAT",
    "BadCacheEntry",
    "cache_folder",
    "read_array",
    "read_checked_bytes",
    "read_sidecar_json",
    "remove_legacy_sample_features",
    "sidecar_path",
    "write_array",
]

#: The ``format`` field of an array's sidecar.
ARRAY_FORMAT = "evalgen-cache-array/1"
#: A sidecar is a few hundred bytes; anything larger is not one evalgen wrote.
MAX_SIDECAR_BYTES = 64 * 2**10
#: Room for the ``.npy`` header beyond the array's bytes (numpy pads it to a multiple of 64).
NPY_HEADER_ALLOWANCE = 64 * 2**10
#: What the per-run sample features of evalgen < METRIC_VERSION 2 are called in <cache>/fidelity.
LEGACY_SAMPLE_FEATURES = re.compile(r"^evalgen-samples-[0-9a-f]{32}-.+\.pt$")


class BadCacheEntry(Exception):
    """A cache entry that failed a check; the message says which, in a few words (no path)."""


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def cache_folder(root: Path, name: str) -> Path:
    """``root/name``, created, a real folder (not a symlink), cleared of stale temporaries."""
    folder = check_real_folder(root, name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvalgenError(f"cannot create cache folder {folder}: {exc.strerror or exc}; make it writable or "
                           f"set XDG_CACHE_HOME to another folder") from None
    remove_stale_temporaries(folder)
    return folder


def read_checked_bytes(path: Path, sha256: str, max_bytes: int) -> bytes:
    """The bytes of ``path`` (a regular file, symlinks refused) if their SHA-256 is ``sha256``.

    Read once and returned, so that the caller parses exactly what was hashed.
    """
    try:
        # O_NONBLOCK: a planted FIFO must not hang the run (no effect on regular files)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise BadCacheEntry("the file is missing") from None
    except OSError as exc:
        raise BadCacheEntry(f"the file cannot be read ({exc.strerror or exc}; a symlink is refused)") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # a folder, FIFO or device: never read
            raise BadCacheEntry("it is not a regular file")
        payload = handle.read(max_bytes + 1)
    if len(payload) > max_bytes:
        raise BadCacheEntry(f"it is larger than the {max_bytes} bytes expected")
    if hashlib.sha256(payload).hexdigest() != sha256:
        raise BadCacheEntry("its SHA-256 does not match the one recorded beside it")
    return payload


def read_sidecar_json(path: Path) -> object:
    """A sidecar's JSON (a regular file, at most `MAX_SIDECAR_BYTES`, strict JSON), or `BadCacheEntry`."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        raise BadCacheEntry(f"its sidecar {path.name} is missing") from None
    if not stat.S_ISREG(mode):  # a symlink, folder or FIFO is not what evalgen writes
        raise BadCacheEntry(f"its sidecar {path.name} is not a regular file")
    try:
        return read_json(path, "cache sidecar", max_bytes=MAX_SIDECAR_BYTES)
    except EvalgenError:
        raise BadCacheEntry(f"its sidecar {path.name} is unreadable or not valid JSON") from None


def _read_sidecar(path: Path) -> dict:
    meta = read_sidecar_json(path)
    valid = (isinstance(meta, dict) and meta.get("format") == ARRAY_FORMAT
             and isinstance(meta.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", meta["sha256"])
             and isinstance(meta.get("shape"), list) and all(type(d) is int and d >= 0 for d in meta["shape"])
             and isinstance(meta.get("dtype"), str))
    if not valid:
        raise BadCacheEntry(f"its sidecar {path.name} is not in evalgen's format ({ARRAY_FORMAT})")
    return meta


def _describe(dtype: str, shape: tuple[int, ...]) -> str:
    return f"{dtype} {tuple(shape)}"


def _parse_npy(payload: bytes) -> np.ndarray:
    """A ``.npy`` payload as an array; pickled (object) arrays, ``.npz`` and pickles are refused."""
    stream = io.BytesIO(payload)
    try:
        np.lib.format.read_magic(stream)
        stream.seek(0)
        array = np.lib.format.read_array(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # numpy's reader reports a bad file as one of these
        raise BadCacheEntry(f"it is not a plain .npy array ({' '.join(str(exc).split())[:120]})") from None
    if stream.read(1):
        raise BadCacheEntry("it has bytes after the array")
    return array


def read_array(path: Path, shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray | None:
    """The array (``shape``, ``dtype``, finite) cached at ``path``, or None when there is none.

    Raises `BadCacheEntry` when the file or its sidecar exist but fail any check.
    """
    path = Path(path)
    sidecar = sidecar_path(path)
    if not os.path.lexists(path) and not os.path.lexists(sidecar):
        return None
    expected = np.dtype(dtype)
    meta = _read_sidecar(sidecar)
    if tuple(meta["shape"]) != tuple(shape) or meta["dtype"] != expected.str:
        raise BadCacheEntry(f"its sidecar says {_describe(meta['dtype'], meta['shape'])}, expected "
                            f"{_describe(expected.str, shape)}")
    payload = read_checked_bytes(path, meta["sha256"], expected.itemsize * int(np.prod(shape)) + NPY_HEADER_ALLOWANCE)
    array = _parse_npy(payload)
    if array.shape != tuple(shape) or array.dtype != expected:
        raise BadCacheEntry(f"it holds {_describe(array.dtype.str, array.shape)}, expected "
                            f"{_describe(expected.str, shape)}")
    if array.dtype.kind in "fc" and not bool(np.isfinite(array).all()):
        raise BadCacheEntry("it holds NaN or infinite values")
    return array


def write_array(path: Path, array: np.ndarray) -> None:
    """Cache ``array`` (numeric, any shape) at ``path`` with its sidecar, both atomically."""
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise ValueError("write_array stores numeric arrays only")
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    payload = buffer.getvalue()
    meta = {"format": ARRAY_FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
            "shape": list(array.shape), "dtype": array.dtype.str}
    atomic_write_bytes(path, payload)
    atomic_write_bytes(sidecar_path(path), (json.dumps(meta, indent=2) + "\n").encode())


def remove_legacy_sample_features(folder: Path) -> list[Path]:
    """Delete the ``evalgen-samples-<uuid>-*.pt`` files older evalgen versions left in ``folder``.

    Only regular files of exactly that name pattern (not symlinks, not folders); returns them.
    """
    removed: list[Path] = []
    if Path(folder).is_symlink():  # evalgen deletes only inside the cache, not wherever a link points
        return removed
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no such folder: nothing was left
        return removed
    for entry in entries:
        if LEGACY_SAMPLE_FEATURES.match(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass  # another process removed it first, or the folder is read-only: harmless
    return removed
