"""The sample grid saved with every image run (a PNG of the first samples, for eyes, not metrics),
and with ``--save-samples`` every sample a run scored (an .npz, for metrics)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evalgen.records import atomic_write_bytes

__all__ = ["GRID_PADDING", "GRID_ROW", "GRID_SAMPLES", "MIN_SIDE", "SAMPLES_DIR", "grid_path", "grid_size",
           "samples_file_path", "save_sample_grid", "save_samples_file", "scale_factor"]

SAMPLES_DIR = "samples"
#: Samples shown (an 8 x 8 grid) and the smallest side an image is scaled up to (nearest neighbour).
GRID_SAMPLES = 64
GRID_ROW = 8
MIN_SIDE = 28
#: Pixels between the images of the grid and around it.
GRID_PADDING = 2


def grid_path(out_dir: Path, key: str) -> Path:
    return out_dir / SAMPLES_DIR / f"{key}.png"


def samples_file_path(out_dir: Path, key: str) -> Path:
    """Where ``--save-samples`` puts every sample a run scored."""
    return out_dir / SAMPLES_DIR / f"{key}.npz"


def save_samples_file(samples: torch.Tensor, path: Path) -> None:
    """(N, *shape) stored values as ``path`` (.npz, one array "samples", uint8 when the levels fit,
    else the values as they are), atomically: the file `evalgen.harness.samples_file` and any
    numpy reader take back."""
    values = samples.numpy()
    if values.size and values.min() >= 0 and values.max() <= 255 and np.array_equal(values, np.rint(values)):
        values = values.astype(np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, samples=values)
    atomic_write_bytes(path, buffer.getvalue())


def scale_factor(width: int) -> int:
    """The integer factor images ``width`` pixels wide are scaled up by in the grid (1: not scaled)."""
    return MIN_SIDE // width if width < MIN_SIDE else 1


def grid_size(shape: Sequence[int], num_samples: int) -> tuple[int, int] | None:
    """(width, height) in pixels of the PNG `save_sample_grid` writes for ``num_samples`` samples
    of ``shape`` (channels, height, width); None where it writes none. Readers of grids from other
    machines check grids against it (`evalgen.leaderboard.plots`)."""
    if len(shape) != 3 or num_samples < 1 or min(shape) < 1:
        return None
    _, height, width = shape
    scale = scale_factor(width)
    count = min(num_samples, GRID_SAMPLES)
    if count == 1:  # torchvision's make_grid returns a lone image as it is, without padding
        return width * scale, height * scale
    columns = min(GRID_ROW, count)
    rows = math.ceil(count / columns)
    return (columns * (width * scale + GRID_PADDING) + GRID_PADDING,
            rows * (height * scale + GRID_PADDING) + GRID_PADDING)


def save_sample_grid(samples: torch.Tensor, levels: int, path: Path) -> Path:
    """Write the first `GRID_SAMPLES` of ``samples`` (N, C, H, W), stored values 0..levels-1, as a
    PNG grid (grey levels scaled to 0..255; 8x8 digits scaled up to `MIN_SIDE` pixels)."""
    from torchvision.utils import save_image

    images = samples[:GRID_SAMPLES].detach().cpu().float() / max(levels - 1, 1)
    scale = scale_factor(images.shape[-1])
    if scale > 1:
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
    buffer = io.BytesIO()
    save_image(images.clamp(0, 1), buffer, format="png", nrow=GRID_ROW, padding=GRID_PADDING, pad_value=0.5)
    atomic_write_bytes(path, buffer.getvalue())
    return path
