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
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise EvalgenError(f"cannot load checkpoint {path}: {exc}") from exc
