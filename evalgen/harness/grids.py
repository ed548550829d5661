"""The sample grid saved with every image run: a PNG of the first samples, for eyes, not metrics."""

from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn.functional as F

from evalgen.records import atomic_write_bytes

SAMPLES_DIR = "samples"
#: Samples shown (an 8 x 8 grid) and the smallest side an image is scaled up to (nearest neighbour).
GRID_SAMPLES = 64
GRID_ROW = 8
MIN_SIDE = 28


def grid_path(out_dir: Path, key: str) -> Path:
    return out_dir / SAMPLES_DIR / f"{key}.png"


def save_sample_grid(samples: torch.Tensor, levels: int, path: Path) -> Path:
    """Write the first `GRID_SAMPLES` of ``samples`` (N, C, H, W), stored values 0..levels-1, as a
    PNG grid (grey levels scaled to 0..255; 8x8 digits scaled up to `MIN_SIDE` pixels)."""
    from torchvision.utils import save_image

    images = samples[:GRID_SAMPLES].detach().cpu().float() / max(levels - 1, 1)
    side = images.shape[-1]
    if side < MIN_SIDE:
        images = F.interpolate(images, scale_factor=MIN_SIDE // side, mode="nearest")
    buffer = io.BytesIO()
    save_image(images.clamp(0, 1), buffer, format="png", nrow=GRID_ROW, padding=2, pad_value=0.5)
    atomic_write_bytes(path, buffer.getvalue())
    return path
