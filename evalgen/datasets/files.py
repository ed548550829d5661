"""Where dataset files live, how they are checked, and how (if allowed) they are downloaded.

The data directory is ``$EVALGEN_DATA_DIR`` when set, else a per-user cache directory
(``$XDG_CACHE_HOME/evalgen/data`` or ``~/.cache/evalgen/data``). Loaders only *read* from it;
the one time anything is written there is when a missing file is downloaded, which happens only
when ``LoadContext.allow_download`` is true. Every file is checked against a checksum embedded in
the code, both right after a download and every time it is read, so a truncated or tampered file
is never parsed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from evalgen.datasets.base import LoadContext
from evalgen.errors import DataUnavailableError

#: Environment variable that selects the data directory.
DATA_DIR_ENV = "EVALGEN_DATA_DIR"
#: Environment variable that, set to 1/true/yes, forbids downloads (see `load_context_from_env`).
OFFLINE_ENV = "EVALGEN_OFFLINE"
#: Seconds a download may wait on the network (connect / read) before it is given up.
DOWNLOAD_TIMEOUT_S = 20.0


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/evalgen`` if set, else ``~/.cache/evalgen``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "evalgen"


def default_data_dir() -> Path:
    """``$EVALGEN_DATA_DIR`` if set (and non-empty), else ``user_cache_dir() / "data"``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return user_cache_dir() / "data"


def load_context_from_env(data_dir: Path | str | None = None, allow_download: bool | None = None) -> LoadContext:
    """A `LoadContext` from the environment: `default_data_dir()` and downloads allowed unless
    ``EVALGEN_OFFLINE`` is 1/true/yes. Explicit arguments win over the environment."""
    if allow_download is None:
        allow_download = os.environ.get(OFFLINE_ENV, "").strip().lower() not in {"1", "true", "yes", "on"}
    return LoadContext(data_dir=Path(data_dir) if data_dir is not None else default_data_dir(),
                       allow_download=allow_download)


@dataclass(frozen=True)
class RemoteFile:
    """One file a dataset needs: its name, the expected digest and where it can be downloaded.

    Attributes:
        name: file name inside the dataset's folder.
        algorithm: ``"md5"`` or ``"sha256"`` (any `hashlib` name).
        digest: expected hex digest.
    """

    name: str
    algorithm: str
    digest: str


@dataclass(frozen=True)
class FileSet:
    """The files one dataset reads from one folder of the data directory.

    Attributes:
        dataset: registry name, for messages.
        folder: the folder relative to the data directory, e.g. ``"MNIST/raw"``.
        files: the files, in a fixed order.
        urls: file name -> download locations, tried in order (mirrors); only called when a
            download is attempted, so resolving mirrors (e.g. importing torchvision) costs nothing
            when the files are present.
    """

    dataset: str
    folder: str
    files: tuple[RemoteFile, ...]
    urls: Callable[[str], Sequence[str]] = lambda name: ()

    @property
    def top(self) -> str:
        """The first component of ``folder``: what the data directory must contain."""
        return Path(self.folder).parts[0]

    def directory(self, ctx: LoadContext) -> Path:
        return Path(ctx.data_dir) / self.folder

    def checksum_lines(self) -> list[str]:
        """``"<algorithm>:<digest>  <folder>/<name>"`` per file: what a dataset checksum covers."""
        return [f"{f.algorithm}:{f.digest}  {self.folder}/{f.name}" for f in self.files]


def file_digest(data: bytes, algorithm: str) -> str:
    if algorithm == "md5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    return hashlib.new(algorithm, data).hexdigest()


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def ensure_files(fileset: FileSet, ctx: LoadContext) -> Path:
    """Make sure every file of ``fileset`` is present, downloading the missing ones if allowed.

    Returns the folder that holds them. Raises `DataUnavailableError` (one line: which files,
    which folder, how to fix) when some are missing and cannot be downloaded. Presence only:
    the checksums are verified by `read_verified` each time a file is read.
    """
    folder = fileset.directory(ctx)
    missing = [f for f in fileset.files if not _is_file(fileset, folder / f.name)]
    if not missing:
        return folder
    names = ", ".join(f.name for f in missing)
    where = f"set {DATA_DIR_ENV} to the folder that holds {fileset.top}/"
    if not ctx.allow_download:
        raise DataUnavailableError(
            f"dataset '{fileset.dataset}' needs {names} in {folder} (put them there or {where}; "
            f"offline, so nothing was downloaded)"
        )
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    for f in missing:
        try:
            error = _download(f, tuple(fileset.urls(f.name)), folder)
        except Exception as exc:  # noqa: BLE001 - e.g. mirrors cannot be resolved: report, do not crash
            error = f"no download location: {_one_line(exc)}"
        if error is not None:
            _remove_empty_dirs(folder, stop=existing)
            raise DataUnavailableError(
                f"dataset '{fileset.dataset}' needs {names} in {folder}; downloading {f.name} failed "
                f"({error}); put the files there by hand or {where}"
            )
    return folder


def _is_file(fileset: FileSet, path: Path) -> bool:
    """Whether ``path`` is a file; a folder that cannot be searched is one line, not a traceback."""
    try:
        return path.is_file()
    except OSError as exc:  # Path.is_file only swallows "does not exist"; EACCES and others raise
        raise DataUnavailableError(
            f"dataset '{fileset.dataset}' cannot look into {path.parent} ({_one_line(exc.strerror or exc)}); "
            f"make it readable (chmod u+rx) or set {DATA_DIR_ENV} to another folder"
        ) from None


def _remove_empty_dirs(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents below ``stop`` if empty (undo a failed download's mkdir)."""
    for path in (folder, *folder.parents):
        if path == stop or not path.is_relative_to(stop):
            return
        try:
            path.rmdir()
        except OSError:
            return


def read_verified(fileset: FileSet, ctx: LoadContext, name: str) -> bytes:
    """Read one file of ``fileset`` (after `ensure_files`) and check its digest.

    Raises `DataUnavailableError` naming the file when it is missing, unreadable or corrupt.
    """
    entry = next(f for f in fileset.files if f.name == name)
    path = fileset.directory(ctx) / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataUnavailableError(
            f"dataset '{fileset.dataset}' cannot read {path} ({_one_line(exc)}); make it readable or replace it"
        ) from None
    actual = file_digest(data, entry.algorithm)
    if actual != entry.digest:
        raise DataUnavailableError(
            f"dataset '{fileset.dataset}': {path} is corrupt or the wrong file ({entry.algorithm} {actual}, "
            f"expected {entry.digest}); delete it so it can be downloaded again, or replace it with the "
            f"official {name}"
        )
    return data


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Give urllib (used by torchvision's ``download_url``) a timeout; restores the old default."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _download(entry: RemoteFile, urls: Sequence[str], folder: Path, timeout: float | None = None) -> str | None:
    """Download ``entry`` into ``folder``, trying each URL; None on success, else why it failed.

    The file is fetched into a temporary folder next to its destination, verified, and only then
    moved into place, so a failed or corrupt download never leaves a file behind.
    """
    from torchvision.datasets.utils import download_url

    if not urls:
        return "no download location is known"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".evalgen-download-", dir=folder))
    except OSError as exc:
        return f"cannot write to {folder}: {_one_line(exc)}"
    errors: list[str] = []
    try:
        for url in urls:
            target = tmp / entry.name
            try:
                with _socket_timeout(DOWNLOAD_TIMEOUT_S if timeout is None else timeout):
                    # md5=None: the check below covers every algorithm the same way.
                    download_url(url, root=str(tmp), filename=entry.name, md5=None)
                actual = file_digest(target.read_bytes(), entry.algorithm)
            except Exception as exc:  # noqa: BLE001 - any failure means "try the next mirror"
                errors.append(f"{url}: {_one_line(exc) or type(exc).__name__}")
                target.unlink(missing_ok=True)
                continue
            if actual != entry.digest:
                errors.append(f"{url}: {entry.algorithm} {actual} instead of {entry.digest}")
                target.unlink(missing_ok=True)
                continue
            os.replace(target, folder / entry.name)
            return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return "; ".join(errors)


def mirror_urls(mirrors: Sequence[str], name: str) -> tuple[str, ...]:
    """``mirror + name`` for each mirror (torchvision's convention: mirrors end with ``/``)."""
    return tuple(m.rstrip("/") + "/" + name for m in mirrors)
