"""Model checkpoints: saved atomically, reloaded with ``weights_only=True``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evalgen.errors import EvalgenError
from evalgen.records import atomic_write_bytes

CHECKPOINTS_DIR = "checkpoints"


def checkpoint_path(out_dir: Path, key: str) -> Path:
    return out_dir / CHECKPOINTS_DIR / f"{key}.pt"


def save_checkpoint(path: Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """Save the parameters with the run spec needed to rebuild the model."""
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "spec": spec}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The saved dict: ``state_dict`` and ``spec``. Only tensors and plain data are unpickled."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise EvalgenError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - the safe unpickler refuses globals, truncation, garbage, ...
        detail = " ".join(str(exc).split())[:200]
        raise EvalgenError(f"{path} is not a checkpoint evalgen can load safely ({type(exc).__name__}: {detail}); "
                           f"delete it, or train it again with --rerun") from None
    if not (isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict) and isinstance(blob.get("spec"), dict)):
        raise EvalgenError(f"{path} is not an evalgen checkpoint (no state_dict and spec); delete it or rerun")
    return blob
