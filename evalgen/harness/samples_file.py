"""Samples from anywhere, read into a dataset's stored values: a ``.npy`` array, an ``.npz``
archive (one array, or the one ``key`` names), a ``.pt`` tensor file (``weights_only=True``) or a
flat folder of PNG/JPEG images, as torch-fidelity and clean-fid take them.

The file is untrusted: nothing in it is executed (no pickles), its size is bounded before it is
read, and every problem is one line naming the file and what to change. The result is the
(N, *shape) float tensor of integer levels 0..L-1 that a trained run's samples are stored as, so
every sample-based metric sees external samples exactly as it sees a run's.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evalgen.errors import EvalgenError, unknown_name

__all__ = ["IMAGE_SUFFIXES", "MAX_SAMPLE_BYTES", "SampleTarget", "array_sha256", "checked_samples", "read_samples",
           "samples_sha256"]

#: Largest samples file (or folder, all images together) evalgen reads.
MAX_SAMPLE_BYTES = 4 * 2**30
#: Most images a samples folder may hold.
MAX_IMAGES = 500_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class SampleTarget:
    """What the samples must be: one example's ``shape`` (C, H, W) or (D,), its ``levels``, and
    the fewest samples the metrics can use (``min_count``, with the reason)."""

    dataset: str
    shape: tuple[int, ...]
    levels: int | None  #: None: continuous data, any finite values
    min_count: int = 1
    min_count_reason: str = ""


def _fail(path: Path | str, message: str) -> EvalgenError:
    return EvalgenError(f"samples {path}: {message}")


def _check_size(path: Path, size: int) -> None:
    if size > MAX_SAMPLE_BYTES:
        raise _fail(path, f"{size / 2**30:.1f} GiB is over the {MAX_SAMPLE_BYTES >> 30} GiB evalgen reads")


def _read_bytes(path: Path) -> bytes:
    try:
        if not path.is_file():
            raise _fail(path, "not a file")
        _check_size(path, path.stat().st_size)
        return path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot read it ({exc.strerror})") from None


def _from_npy(path: Path, data: bytes) -> np.ndarray:
    if not data.startswith(b"\x93NUMPY"):  # else numpy would try it as a pickle
        raise _fail(path, "is not a valid .npy file (no NumPy header)")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise _fail(path, "holds Python objects (pickled), not a numeric array; save a plain array") from None
        raise _fail(path, f"is not a valid .npy file ({' '.join(str(exc).split())[:120]})") from None


def _from_npz(path: Path, data: bytes, key: str | None) -> np.ndarray:
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, zipfile.BadZipFile, OSError):
        raise _fail(path, "is not a valid .npz archive") from None
    names = list(archive.files)
    if key is None:
        if len(names) != 1:
            raise _fail(path, f"holds {len(names)} arrays ({', '.join(names) or 'none'}); choose one with --key")
        key = names[0]
    if key not in names:
        raise _fail(path, str(unknown_name("array", key, names)))
    try:
        return archive[key]
    except ValueError:
        raise _fail(path, f"array '{key}' holds Python objects (pickled), not numbers") from None


def _from_pt(path: Path, data: bytes) -> np.ndarray:
    try:
        value = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad or unsafe file
        raise _fail(path, f"is not a tensor file torch can load safely ({type(exc).__name__})") from None
    if not isinstance(value, torch.Tensor):
        raise _fail(path, f"holds a {type(value).__name__}, not a tensor; save the samples tensor itself")
    return value.detach().cpu().numpy()


def _from_folder(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    if not files:
        raise _fail(path, "the folder holds no images")
    if len(files) > MAX_IMAGES:
        raise _fail(path, f"the folder holds {len(files)} files, over the {MAX_IMAGES} evalgen reads")
    _check_size(path, sum(p.lstat().st_size for p in files))
    images = []
    for file in files:
        if file.is_symlink() or not file.is_file() or file.suffix.lower() not in IMAGE_SUFFIXES:
            raise _fail(path, f"'{file.name}' is not a PNG or JPEG image file (the folder must hold only those)")
        try:
            with Image.open(file) as image:
                image.load()
                images.append(_image_array(image))
        except (UnidentifiedImageError, OSError, SyntaxError):
            raise _fail(path, f"'{file.name}' cannot be decoded as an image") from None
    if len({a.shape for a in images}) != 1:
        raise _fail(path, f"the images differ in size or channels ({sorted({a.shape for a in images})[:3]})")
    return np.stack(images)


def _image_array(image) -> np.ndarray:
    """(C, H, W) uint8: grey images one channel, colour ones three (alpha dropped)."""
    if image.mode not in ("L", "1", "RGB"):
        image = image.convert("RGB" if image.mode in ("RGBA", "P", "CMYK", "YCbCr") else "L")
    array = np.asarray(image.convert("L") if image.mode == "1" else image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _shaped(path: Path | str, array: np.ndarray, target: SampleTarget) -> np.ndarray:
    """(N, *shape): channels-last images and missing single channels are accepted."""
    shape = target.shape
    if array.ndim == len(shape) + 1 and array.shape[1:] == shape:
        return array
    if len(shape) == 3:
        c, h, w = shape
        if array.ndim == 3 and c == 1 and array.shape[1:] == (h, w):
            return array[:, None]
        if array.ndim == 4 and array.shape[1:] == (h, w, c):
            return array.transpose(0, 3, 1, 2)
        if array.ndim == 4 and array.shape[2:] == (h, w):
            raise _fail(path, f"images have {array.shape[1]} channel(s); dataset '{target.dataset}' has {c}")
    expected = ", ".join(str(n) for n in shape)
    raise _fail(path, f"shape {tuple(array.shape)} does not fit dataset '{target.dataset}': it needs "
                      f"(N, {expected})")


def _levels(path: Path | str, array: np.ndarray, target: SampleTarget, float01: bool, image_scale: bool) -> np.ndarray:
    """The values as integer levels 0..L-1 (float64), or a one-line error."""
    if array.dtype.kind not in "biuf":
        raise _fail(path, f"values of type {array.dtype} are not numbers")
    values = array.astype(np.float64)
    if np.isnan(values).any():
        raise _fail(path, f"{int(np.isnan(values).sum())} value(s) are NaN")
    if target.levels is None:  # continuous data: the values themselves, finite
        if float01:
            raise _fail(path, f"--float01 is for datasets of levels; dataset '{target.dataset}' is continuous")
        if not np.isfinite(values).all():
            raise _fail(path, f"{int((~np.isfinite(values)).sum())} value(s) are infinite")
        return values
    top = target.levels - 1
    if float01:
        if values.min() < 0 or values.max() > 1:
            raise _fail(path, f"--float01 takes values in [0, 1], found {values.min():g}..{values.max():g}")
        return np.rint(values * top)
    if image_scale and top != 255:  # 8-bit images of a dataset with fewer levels: 0..255 spans them
        scaled = values * top / 255
        if not np.allclose(scaled, np.rint(scaled)):
            raise _fail(path, f"8-bit images of dataset '{target.dataset}' must use its {target.levels} levels "
                              f"spread over 0..255 (multiples of {255 / top:g})")
        values = np.rint(scaled)
    if values.min() < 0 or values.max() > top or not np.array_equal(values, np.rint(values)):
        raise _fail(path, f"values out of range ({values.min():g}..{values.max():g}): dataset '{target.dataset}' "
                          f"takes integers 0..{top} (or floats in [0, 1] with --float01)")
    return values


def read_samples(path: Path, target: SampleTarget, key: str | None = None, float01: bool = False) -> torch.Tensor:
    """Samples at ``path`` as (N, *target.shape) float32 levels 0..L-1, checked; see the module."""
    path = Path(path)
    if path.is_dir():
        array, image_scale = _from_folder(path), True
    else:
        suffix = path.suffix.lower()
        readers = {".npy": lambda b: _from_npy(path, b), ".npz": lambda b: _from_npz(path, b, key),
                   ".pt": lambda b: _from_pt(path, b), ".pth": lambda b: _from_pt(path, b)}
        if suffix not in readers:
            if not path.exists():
                raise _fail(path, "no such file or folder")
            raise _fail(path, "give a .npy, .npz or .pt file, or a folder of PNG/JPEG images")
        array, image_scale = readers[suffix](_read_bytes(path)), suffix in IMAGE_SUFFIXES
    if key is not None and (path.is_dir() or path.suffix.lower() != ".npz"):
        raise _fail(path, "--key names an array of an .npz archive")
    return _checked(path, np.asarray(array), target, float01, image_scale)


def _checked(where: Path | str, array: np.ndarray, target: SampleTarget, float01: bool,
             image_scale: bool) -> torch.Tensor:
    values = _levels(where, _shaped(where, array, target), target, float01, image_scale)
    if len(values) < target.min_count:
        raise _fail(where, f"{len(values)} samples are fewer than {target.min_count}"
                           + (f" ({target.min_count_reason})" if target.min_count_reason else ""))
    return torch.from_numpy(values.astype(np.float32))


def checked_samples(array: np.ndarray | torch.Tensor, target: SampleTarget, float01: bool = False) -> torch.Tensor:
    """Samples held in memory (a notebook's array or tensor), checked as `read_samples` checks a file's."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return _checked("(in memory)", np.asarray(array), target, float01, image_scale=False)


def array_sha256(array: np.ndarray | torch.Tensor) -> str:
    """SHA-256 of an in-memory array: its dtype, shape and bytes (C order)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str} {array.shape}\n".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def samples_sha256(path: Path) -> str:
    """SHA-256 of a samples file's bytes; of a folder, of each image's name and SHA-256 in sorted
    order ("<sha256>  <name>" lines, as ``sha256sum`` prints them). Read after `read_samples` has
    checked the file, so its size is bounded."""
    path = Path(path)
    if not path.is_dir():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    lines = [f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n"
             for f in sorted(p for p in path.iterdir() if not p.name.startswith("."))]
    return hashlib.sha256("".join(lines).encode()).hexdigest()
