"""Where the Inception-v3 weights for natural-image metrics come from, checked by SHA-256.

torch-fidelity's ``inception-v3-compat`` extractor (the TensorFlow FID network, converted) would
unpickle its weights file with ``weights_only=False``, running whatever code a planted file holds.
evalgen never hands it the file: `load_inception_state_dict` reads the bytes once, checks
their SHA-256 and loads them with ``weights_only=True``; `build_inception` makes torch-fidelity's
module around that state_dict (`VerifiedInceptionV3`). The file is found in this order:

1. the ``weights_path`` argument;
2. ``$EVALGEN_INCEPTION_WEIGHTS``;
3. ``user_cache_dir()/weights/pt_inception-2015-12-05-6726825d.pth``;
4. the file torch-fidelity (or pytorch-fid) already downloaded into ``torch.hub.get_dir()/checkpoints``;
5. online only: downloaded there from torch-fidelity's release URL, as torch-fidelity does.

The torch-fidelity file (``weights-inception-2015-12-05-6726825d.pth``) and the pytorch-fid one
(``pt_inception-2015-12-05-6726825d.pth``) are the same bytes. Offline (``EVALGEN_OFFLINE=1``)
with none of 1-4 present is one-line `EvalgenError` saying where to put the file.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

from evalgen.datasets.files import load_context_from_env, user_cache_dir
from evalgen.errors import EvalgenError
from evalgen.storage import file_sha256

INCEPTION_EXTRACTOR = "inception-v3-compat"
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_ENV = "EVALGEN_INCEPTION_WEIGHTS"
#: torch-fidelity's name for the same file in the torch hub checkpoint folder.
TORCH_FIDELITY_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
#: Layers torch-fidelity uses by default: unbiased logits for IS, pool3 (2048) for FID/KID/PRC.
INCEPTION_LAYERS = {"isc": "logits_unbiased", "fid": "2048", "kid": "2048", "prc": "2048"}

#: Larger than any Inception-v3 weights file (the real one is 91 MiB).
MAX_WEIGHTS_BYTES = 512 * 2**20

_verified: dict[tuple[str, int, int, str], str] = {}  # (path, size, mtime_ns, expected) -> sha256
_BUILD_LOCK = threading.Lock()


def default_inception_path() -> Path:
    return user_cache_dir() / "weights" / INCEPTION_FILENAME


def _hub_candidates() -> list[Path]:
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / TORCH_FIDELITY_FILENAME, folder / INCEPTION_FILENAME]


def verify_weights(path: Path, expected_sha256: str) -> str:
    """SHA-256 of ``path`` (memoized per path, size and mtime), which must equal the expected one."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected_sha256)
    sha = _verified.get(memo) or file_sha256(path)
    if sha != expected_sha256:
        raise EvalgenError(f"Inception-v3 weights {path} have SHA-256 {sha}, expected {expected_sha256}: "
                           f"replace the file with {INCEPTION_FILENAME}")
    _verified[memo] = sha
    return sha


def resolve_inception_weights(weights_path: Path | str | None = None, *, expected_sha256: str | None = None,
                              allow_download: bool | None = None) -> tuple[Path, str]:
    """A checked local Inception-v3 weights file and its SHA-256 (see the module doc for the order).

    expected_sha256: default `INCEPTION_SHA256` (read at call time).
    allow_download: default from the environment (``EVALGEN_OFFLINE``).
    """
    expected = expected_sha256 if expected_sha256 is not None else INCEPTION_SHA256
    explicit = [(Path(weights_path).expanduser(), "weights_path")] if weights_path is not None else []
    env = os.environ.get(INCEPTION_WEIGHTS_ENV, "").strip()
    if env:
        explicit.append((Path(env).expanduser(), f"${INCEPTION_WEIGHTS_ENV}"))
    if explicit:  # an explicit choice is used or reported, never skipped
        path, origin = explicit[0]
        if not path.is_file():
            raise EvalgenError(f"Inception-v3 weights not found at {path} (from {origin}); "
                               f"put {INCEPTION_FILENAME} there or fix {origin}")
        return path, verify_weights(path, expected)
    for path in [default_inception_path(), *_hub_candidates()]:
        if path.is_file():
            return path, verify_weights(path, expected)
    if allow_download is None:
        allow_download = load_context_from_env().allow_download
    if not allow_download:
        raise EvalgenError(f"Inception-v3 weights missing and downloads are off (EVALGEN_OFFLINE): put "
                           f"{INCEPTION_FILENAME} (SHA-256 {expected[:12]}...) at {default_inception_path()} "
                           f"or set {INCEPTION_WEIGHTS_ENV}=/path/to/{INCEPTION_FILENAME}")
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    target = _hub_candidates()[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(URL_INCEPTION_V3, str(target), progress=False)
    except Exception as exc:  # noqa: BLE001 - weights_only refuses what is not tensors in many ways
        raise EvalgenError(f"could not download Inception-v3 weights from {URL_INCEPTION_V3} "
                           f"({type(exc).__name__}: {exc}); put {INCEPTION_FILENAME} at "
                           f"{default_inception_path()} or set {INCEPTION_WEIGHTS_ENV}") from None
    return target, verify_weights(target, expected)


def load_inception_state_dict(path: Path, expected_sha256: str) -> dict[str, torch.Tensor]:
    """The tensors of an Inception-v3 weights file, loaded with ``weights_only=True`` from the very
    bytes whose SHA-256 was checked against ``expected_sha256`` (no file is unpickled)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            payload = handle.read(MAX_WEIGHTS_BYTES + 1)
    except OSError as exc:
        raise EvalgenError(f"cannot read Inception-v3 weights {path}: {exc.strerror or exc}; "
                           f"put {INCEPTION_FILENAME} there or set {INCEPTION_WEIGHTS_ENV}") from None
    sha = hashlib.sha256(payload).hexdigest()
    if len(payload) > MAX_WEIGHTS_BYTES or sha != expected_sha256:
        raise EvalgenError(f"Inception-v3 weights {path} have SHA-256 {sha}, expected {expected_sha256}: "
                           f"replace the file with {INCEPTION_FILENAME}")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - weights_only refuses what is not tensors in many ways
        raise EvalgenError(f"Inception-v3 weights {path} are not a plain state_dict ({type(exc).__name__}); "
                           f"replace the file with {INCEPTION_FILENAME}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise EvalgenError(f"Inception-v3 weights {path} are not a state_dict of tensors; "
                           f"replace the file with {INCEPTION_FILENAME}")
    return state


@contextmanager
def _state_dict_instead_of_download(state_dict: dict[str, torch.Tensor]) -> Iterator[list[bool]]:
    """While active, torch-fidelity's Inception module takes ``state_dict`` where it would download.

    torch-fidelity 0.4 has no way to pass tensors in: it unpickles a path unsafely or downloads
    (and unpickles) a URL through its module-level ``load_state_dict_from_url``. Replacing that
    one name, under a lock and only for the constructor call, keeps its architecture code ours to
    reuse without letting it load anything. Yields a flag list that is [True] once it was used.
    """
    used: list[bool] = []

    def provide(*args, **kwargs):
        used.append(True)
        return state_dict

    with _BUILD_LOCK:
        original = tf_inception.load_state_dict_from_url
        tf_inception.load_state_dict_from_url = provide
        try:
            yield used
        finally:
            tf_inception.load_state_dict_from_url = original


class VerifiedInceptionV3(tf_inception.FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3 feature extractor, built around a state_dict evalgen loaded
    (`load_inception_state_dict`); the same module, forward and features otherwise."""

    def __init__(self, name: str, features_list: list[str], state_dict: dict[str, torch.Tensor], **kwargs):
        kwargs.pop("feature_extractor_weights_path", None)  # never a path: torch-fidelity would unpickle it
        with _state_dict_instead_of_download(state_dict) as used:
            super().__init__(name, features_list, feature_extractor_weights_path=None, **kwargs)
        if not used:
            raise EvalgenError("this torch-fidelity builds Inception-v3 differently from 0.4: evalgen could not "
                               "give it checked weights; install torch-fidelity 0.4")


def build_inception(features_list: list[str], weights_path: Path, expected_sha256: str) -> VerifiedInceptionV3:
    """Inception-v3 (``inception-v3-compat``) providing ``features_list``, from a checked local file."""
    state = load_inception_state_dict(weights_path, expected_sha256)
    return VerifiedInceptionV3(INCEPTION_EXTRACTOR, list(features_list), state, verbose=False)
