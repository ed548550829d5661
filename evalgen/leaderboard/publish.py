"""Writing a leaderboard folder without harming anything else in it.

The output folder is often someone's: a repository with hand-written notes, the records in runs/,
maybe an index.html of their own. So `publish` writes only evalgen's own file names (`TEXT_FILES`
and ``assets/<safe name>.png``, see `asset_path`), each checked to lie inside the folder, into a
real ``assets/`` folder (not a link), and it keeps a manifest of what it wrote, ``MANIFEST``:
every file with its sha256, written last. A file is overwritten or removed only if an earlier build
wrote it (in the manifest, still with that hash) or it already holds exactly the new bytes; any
other file in the way is refused, one line, before anything is written, unless ``force``. Files
that are not in the way (NOTES.md, runs/, anything not named like evalgen's) are never touched.

The manifest is untrusted like everything else on disk: an entry counts only if it is a name
evalgen writes, lies inside the folder and is a regular file, not a link; others are ignored, so a
hostile manifest can never make evalgen delete anything else.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from evalgen.errors import EvalgenError
from evalgen.storage import (
    atomic_write_bytes,
    check_real_folder,
    file_sha256,
    inside,
    read_json,
    remove_stale_temporaries,
)

__all__ = ["ASSETS", "MANIFEST", "MANIFEST_FORMAT", "TEXT_FILES", "asset_path", "is_generated_name", "manifest_bytes",
           "publish", "read_manifest"]

ASSETS = "assets"
MANIFEST = ".evalgen-leaderboard.json"
MANIFEST_FORMAT = "evalgen.leaderboard-manifest/1"
TEXT_FILES = ("index.html", "leaderboard.csv", "leaderboard.md", "leaderboard.tex", "protocol.md")
#: A file name in assets/: words of letters and digits joined by . _ -, so never "..", a hidden
#: file, a separator or anything a shell, URL or Markdown link would read specially.
_STEM = re.compile(r"[A-Za-z0-9]+(?:[._-]+[A-Za-z0-9]+)*")
_ASSET_FILE = re.compile(rf"{ASSETS}/{_STEM.pattern}\.png")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Longest stem kept from an asset id (file names are limited to 255 bytes on most systems).
_MAX_STEM = 150
_MAX_MANIFEST_BYTES = 8 * 2**20


def _safe_stem(asset_id: str) -> str:
    """``asset_id`` itself when it is a safe file name, else a sanitised form of it plus a hash
    of it (two ids that sanitise alike still get different files)."""
    if _STEM.fullmatch(asset_id) and len(asset_id) <= _MAX_STEM:
        return asset_id
    # '/', spaces, markup... become '_'; the ends are letters or digits, so it is never '..' or hidden
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", asset_id)[:_MAX_STEM].strip("._-") or "row"
    return f"{stem}-{hashlib.sha256(asset_id.encode('utf-8', 'replace')).hexdigest()[:12]}"


def asset_path(asset_id: str, kind: str) -> str:
    """Where a row's image of this kind ("samples", "curve") is written, relative to the output
    folder: ``assets/<asset id>--<kind>.png``, the id sanitised if it is not a safe name."""
    path = f"{ASSETS}/{_safe_stem(asset_id)}--{kind}.png"
    assert _ASSET_FILE.fullmatch(path), path  # what `read_manifest` accepts back
    return path


def is_generated_name(name: object) -> bool:
    """Whether ``name`` (relative to the output folder) is a file name `publish` writes."""
    return isinstance(name, str) and (name in TEXT_FILES or bool(_ASSET_FILE.fullmatch(name)))


def _plain_file(out_dir: Path, name: str) -> bool:
    """``out_dir/name`` is a regular file (not a link) inside ``out_dir``."""
    path = out_dir / name
    return not path.is_symlink() and path.is_file() and inside(out_dir, path.parent) and inside(out_dir, path)


def _missing(out_dir: Path, name: str) -> bool:
    return not (out_dir / name).exists() and not (out_dir / name).is_symlink()


def _manifest_entries(data: Any) -> dict[str, Any] | None:
    if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT and isinstance(data.get("files"), dict):
        return data["files"]
    return None


def read_manifest(out_dir: Path, report: Callable[[str], None] = print) -> dict[str, str] | None:
    """What an earlier build wrote into ``out_dir``, {name: sha256}, keeping only the entries that
    name a file evalgen writes and that is still there as a regular file inside ``out_dir``.

    {} without a manifest; None when a file of that name is there but is not a manifest (it is
    then not evalgen's to overwrite).
    """
    path = out_dir / MANIFEST
    if _missing(out_dir, MANIFEST):
        return {}
    if path.is_symlink() or not path.is_file():
        return None
    try:
        entries = _manifest_entries(read_json(path, "leaderboard manifest", _MAX_MANIFEST_BYTES))
    except EvalgenError:
        return None
    if entries is None:
        return None
    valid = {name: sha for name, sha in entries.items()
             if is_generated_name(name) and isinstance(sha, str) and _SHA256.fullmatch(sha)}
    trusted = {name: sha for name, sha in valid.items() if _plain_file(out_dir, name)}
    ignored = len(entries) - len(valid) + sum(not _missing(out_dir, name) for name in set(valid) - set(trusted))
    if ignored:  # a file deleted since is no news; anything else in a manifest is suspicious
        report(f"{path}: ignored {ignored} entr{'y' if ignored == 1 else 'ies'} naming no file evalgen leaderboard "
               f"writes (another name, a link, or not a regular file); nothing they name is touched")
    return trusted


def manifest_bytes(hashes: Mapping[str, str]) -> bytes:
    """The manifest for these files: sorted, no timestamps, so a rebuild gives the same bytes."""
    manifest = {"format": MANIFEST_FORMAT, "files": dict(sorted(hashes.items())),
                "about": "the files `evalgen leaderboard` wrote in this folder, with their sha256: a rebuild "
                         "overwrites or removes only these, and only while unchanged (--force: overwrite others)"}
    return (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode()


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _ours(path: Path, recorded: str | None, payload: bytes) -> bool:
    """Whether writing ``payload`` over ``path`` loses nothing evalgen did not write."""
    if not path.exists() and not path.is_symlink():
        return True  # nothing there to lose
    if path.is_symlink() or not path.is_file():
        return False
    try:
        found = file_sha256(path)
    except OSError:  # unreadable: evalgen cannot tell what it would lose
        return False
    return found == recorded or found == _sha256(payload)  # the same bytes: e.g. a build cut short


def _refuse(blocked: list[Path], report: Callable[[str], None]) -> None:
    lines = [f"{path} is in the way and was not written by evalgen leaderboard (or was changed since); move it "
             f"away, or pass --force to overwrite it" for path in blocked]
    for line in lines[1:]:
        report(line)
    more = f" (and {len(lines) - 1} more, listed above)" if len(lines) > 1 else ""
    raise EvalgenError(lines[0] + more)


def _check_names(out_dir: Path, files: Mapping[str, bytes]) -> None:
    """Every file to write is one of evalgen's names, inside ``out_dir``: the last guard, should
    a record's text ever reach a file name unsanitised."""
    for name in files:
        if not is_generated_name(name) or not inside(out_dir, (out_dir / name).parent):
            raise EvalgenError(f"refusing to write {out_dir / name}: not a leaderboard file name inside {out_dir}; "
                               f"this is a bug in evalgen, please report it")


def _remove_stale(out_dir: Path, name: str, recorded: str, report: Callable[[str], None]) -> None:
    """Remove a file an earlier build wrote and this one does not, if it is still as written."""
    path = out_dir / name
    try:
        if not _plain_file(out_dir, name):
            return
        if file_sha256(path) != recorded:
            report(f"kept {path}: changed since evalgen leaderboard wrote it, though it is no longer generated; "
                   f"remove it if it is not needed")
            return
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        report(f"cannot remove the stale leaderboard file {path}: {exc.strerror or exc}; remove it by hand")


def publish(out_dir: Path, files: Mapping[str, bytes], force: bool = False,
            report: Callable[[str], None] = print) -> list[Path]:
    """Write ``files`` (relative name -> bytes) into ``out_dir`` and the manifest last; remove the
    files an earlier build wrote that are no longer generated. Returns the written paths.

    Refuses (EvalgenError, nothing written) if a file to write is there but is not evalgen's
    (see the module docstring), unless ``force``.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise EvalgenError(f"--out {out_dir} is not a folder; choose a folder for the leaderboard")
    check_real_folder(out_dir, ASSETS)
    _check_names(out_dir, files)
    earlier = read_manifest(out_dir, report)
    blocked = [] if earlier is not None else [out_dir / MANIFEST]
    earlier = earlier or {}
    blocked += [out_dir / name for name in sorted(files) if not _ours(out_dir / name, earlier.get(name), files[name])]
    if blocked and not force:
        _refuse(blocked, report)
    for folder in (out_dir, out_dir / ASSETS):
        remove_stale_temporaries(folder)  # of a build that was killed
    for name in sorted(files):
        atomic_write_bytes(out_dir / name, files[name])
    for name in sorted(set(earlier) - set(files)):
        _remove_stale(out_dir, name, earlier[name], report)
    atomic_write_bytes(out_dir / MANIFEST, manifest_bytes({name: _sha256(data) for name, data in files.items()}))
    return [out_dir / name for name in sorted(files)] + [out_dir / MANIFEST]
