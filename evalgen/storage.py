"""Files evalgen writes and reads, treating everything on disk as untrusted.

Everything evalgen writes goes through `atomic_write_bytes`: readers see the old file or the new
one, never half; the file gets the mode the process umask gives (``mkstemp`` alone would leave it
0600, unreadable to a web server or a colleague); and an OS error becomes one line that names the
file and what to change. Temporary files are named ``.<name>.evalgen-<host>-<pid>-<random>.tmp``
so that `remove_stale_temporaries` can recognise the ones a killed process left behind (same
host, process gone) without touching another live process's, or anything it did not write.

Reading: `read_json` refuses NaN, ±Infinity and numbers that overflow to them, duplicate keys,
files over a size limit and nesting deep enough to exhaust the stack; `file_sha256` and
`inside` / `check_real_folder` are what callers check files and folders with before trusting them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evalgen.errors import EvalgenError

__all__ = [
    "MAX_JSON_BYTES",
    "atomic_write_bytes",
    "check_real_folder",
    "file_mode",
    "file_sha256",
    "inside",
    "iter_files",
    "os_error_line",
    "read_bounded",
    "read_json",
    "remove_stale_temporaries",
]

#: Largest JSON file evalgen parses (a run record is a few hundred kB at most).
MAX_JSON_BYTES = 64 * 2**20
#: A temporary file left by a process on another host is removed only once it is this old.
FOREIGN_TEMPORARY_AGE_S = 24 * 3600
_HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"
_TEMPORARY = re.compile(r"^\..+\.evalgen-(?P<host>[A-Za-z0-9._-]+)-(?P<pid>\d+)-[0-9a-f]{16}\.tmp$")
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    with _UMASK_LOCK:  # the only portable way to read the umask is to set it and set it back
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets under the process umask (0644 under umask 022)."""
    return 0o666 & ~_umask()


def os_error_line(action: str, path: Path, exc: OSError) -> str:
    """One line for an OS error: what failed, on which file, and what to change."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space or choose another folder"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make it writable or choose another folder" if action != "read" else "make it readable"
    elif exc.errno == errno.ENOTDIR:
        fix = "a part of the path is a file, not a folder: choose another folder"
    elif exc.errno == errno.ENAMETOOLONG:
        fix = "use a shorter folder or name"
    else:
        fix = "check the path"
    return f"cannot {action} {path}: {reason}; {fix}"


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.evalgen-{_HOST}-{os.getpid()}-{secrets.token_hex(8)}.tmp")


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically, with the umask's mode; parents are created.

    An OSError (read-only folder, full disk, ...) becomes an EvalgenError naming ``path``; the
    temporary file is removed and an existing ``path`` is left as it was.
    """
    path = Path(path)
    tmp = _temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
                os.fchmod(handle.fileno(), file_mode())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise EvalgenError(os_error_line("write", path, exc)) from None


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def _stale(match: re.Match[str], path: Path) -> bool:
    if match["host"] == _HOST:
        return _process_gone(int(match["pid"]))
    try:
        return time.time() - path.lstat().st_mtime > FOREIGN_TEMPORARY_AGE_S
    except OSError:
        return False


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files of `atomic_write_bytes` that a killed process left in
    ``folder`` (not below it); files of live processes and every other file are left alone."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        path = Path(entry.path)
        if match and entry.is_file(follow_symlinks=False) and _stale(match, path):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def inside(root: Path, path: Path) -> bool:
    """Whether ``path``, with every symlink resolved, is ``root`` or lies below it."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False


def check_real_folder(root: Path, relative: str) -> Path:
    """``root/relative``, refused (one line) when it, or a folder between, is a symlink or not a
    folder: evalgen writes into the folder it was given, not wherever a link points."""
    path = Path(root)
    for part in Path(relative).parts:
        path = path / part
        if path.is_symlink():
            raise EvalgenError(f"{path} is a symbolic link; evalgen writes only into real folders under "
                               f"{root}: replace the link with a folder")
        if path.exists() and not path.is_dir():
            raise EvalgenError(f"{path} is not a folder; move it away so that evalgen can create one there")
    return path


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} overflows to infinity")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows (NaN and Infinity are refused)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


def read_bounded(path: Path, what: str, max_bytes: int) -> bytes:
    """The bytes of a file of at most ``max_bytes`` (a larger one is not what it claims to be);
    any problem is one EvalgenError line naming ``what`` and ``path``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise EvalgenError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise EvalgenError(f"{what} {path} is larger than {max(1, max_bytes // 2**20)} MiB; it is not one "
                           f"evalgen wrote")
    return data


def read_json(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file strictly; any problem is one EvalgenError line naming ``path``.

    ``what`` names the file for messages, e.g. "run record".
    """
    data = read_bounded(path, what, max_bytes)
    try:
        return json.loads(data.decode("utf-8"), parse_float=_finite_float, parse_constant=_reject_constant,
                          object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise EvalgenError(f"{what} {path} is not valid JSON ({detail}); delete it or restore it") from None


def iter_files(folder: Path, pattern: str) -> Iterator[Path]:
    """Regular files (not symlinks) in ``folder`` matching ``pattern``, sorted."""
    for path in sorted(Path(folder).glob(pattern)):
        if path.is_file() and not path.is_symlink():
            yield path
