"""The tiny synthetic datasets the checks build and train models on.

Every dataset is drawn from a fixed seed, so a check sees the same data on every machine:

* binary: ``num_classes`` random prototype images, each example a prototype with 10% of its
  bits flipped; the label is the prototype.
* discrete: random prototype images of levels 0..L-1, each example a prototype plus rounded
  Gaussian noise (std 0.8 levels), clipped; the label is the prototype.
* continuous: a mixture of Gaussians (std 0.4) centred at the corners of [-1.5, 1.5]^D; the
  label is the component (only given to models that need labels).

Values are stored as the harness stores them (integers as float32) and handed to the model in
its representation exactly as the harness does (`evalgen.harness.data.to_representation`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from evalgen.harness.data import to_representation
from evalgen.testing.settings import CheckSettings
from evalgen.types import Batch, DataKind, DatasetInfo, Representation

FLIP_PROBABILITY = 0.1
DISCRETE_NOISE = 0.8
CONTINUOUS_CENTER = 1.5
CONTINUOUS_STD = 0.4
_KIND_SALT = {DataKind.BINARY: 1, DataKind.DISCRETE: 2, DataKind.CONTINUOUS: 3}


@dataclass
class CheckData:
    """Stored training values ``x`` (N, *shape) and labels ``y`` (N,) or None, with the
    `DatasetInfo` a model is built for and a fixed evaluation batch in its representation."""

    info: DatasetInfo
    x: torch.Tensor
    y: torch.Tensor | None
    eval_x: torch.Tensor
    device: torch.device

    @property
    def shape(self) -> tuple[int, ...]:
        return self.info.shape

    @property
    def levels(self) -> int | None:
        return self.info.levels

    @property
    def representation(self) -> Representation:
        return self.info.representation

    def describe(self) -> str:
        levels = f", {self.levels} levels" if self.levels and self.levels > 2 else ""
        return f"{self.info.kind.value} data of shape {self.shape}{levels}"

    def batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A random training batch in the model's representation (fresh dequantization noise)."""
        index = torch.randperm(self.x.shape[0], generator=generator, device=self.device)[:batch_size]
        x = to_representation(self.x[index], self.representation, self.levels, generator)
        return Batch(x, None if self.y is None else self.y[index])

    def extremes(self) -> tuple[torch.Tensor, str]:
        """Valid inputs at the edges of the support, and what they are."""
        d = math.prod(self.shape)
        if self.representation is Representation.LEVELS:
            top = float(self.levels - 1)
            alternating = (torch.arange(d) % 2).float() * top
            rows = [torch.zeros(d), torch.full((d,), top), alternating]
            what = f"all-zero, all-{top:g} and alternating 0/{top:g} inputs"
        elif self.representation is Representation.DEQUANTIZED:
            high = 1.0 - 2.0 ** -12
            rows = [torch.zeros(d), torch.full((d,), high), (torch.arange(d) % 2).float() * high]
            what = f"dequantized values at the corners of [0, 1)^{d} (0 and {high:.6f})"
        else:
            spread = float(self.x.std()) if self.x.numel() > 1 else 1.0
            center = self.x.mean(0).flatten()
            rows = [center + 5 * spread, center - 5 * spread, center]
            what = "points 5 standard deviations away from the data, and its mean"
        x = torch.stack(rows).reshape(len(rows), *self.shape).to(self.device)
        return x, what


def make_data(kind: DataKind, representation: Representation, shape: tuple[int, ...], levels: int | None,
              labelled: bool, settings: CheckSettings, device: torch.device) -> CheckData:
    """A check dataset of ``kind`` (stored values) for a model that sees ``representation``."""
    generator = torch.Generator().manual_seed(settings.seed * 1_000 + _KIND_SALT[kind] * 100 + math.prod(shape))
    n, d, classes = settings.num_train, math.prod(shape), settings.num_classes
    y = torch.randint(classes, (n,), generator=generator)
    if kind is DataKind.BINARY:
        levels = 2
        prototypes = torch.rand(classes, d, generator=generator) < 0.5
        flips = torch.rand(n, d, generator=generator) < FLIP_PROBABILITY
        x = (prototypes[y] ^ flips).float()
    elif kind is DataKind.DISCRETE:
        prototypes = torch.randint(levels, (classes, d), generator=generator).float()
        noise = torch.round(DISCRETE_NOISE * torch.randn(n, d, generator=generator))
        x = (prototypes[y] + noise).clamp_(0, levels - 1)
    else:
        levels = None
        signs = torch.tensor(list(itertools.islice(itertools.product((1.0, -1.0), repeat=d), classes)))
        if signs.shape[0] < classes:  # 1-D data: two components
            classes = signs.shape[0]
            y = y % classes
        x = CONTINUOUS_CENTER * signs[y] + CONTINUOUS_STD * torch.randn(n, d, generator=generator)
    x = x.reshape(n, *shape).float().to(device)
    y = y.to(device) if labelled else None
    label_counts = None if y is None else tuple(int(c) for c in torch.bincount(y, minlength=classes))
    info = DatasetInfo(name=f"conformance-{kind.value}", kind=kind, shape=tuple(shape), levels=levels,
                       num_classes=classes if labelled else None, representation=representation,
                       num_train=n, label_counts=label_counts)
    noise = torch.Generator(device=device).manual_seed(settings.seed + 7)
    eval_x = to_representation(x[:settings.eval_examples], representation, levels, noise)
    return CheckData(info, x, y, eval_x, device)


def all_states(shape: tuple[int, ...], levels: int, device: torch.device) -> torch.Tensor:
    """Every vector of ``levels`` values of ``shape``: (levels^D, *shape) float32, counting order
    (the last dimension changes fastest)."""
    d = math.prod(shape)
    codes = torch.arange(levels ** d, device=device)
    powers = levels ** torch.arange(d - 1, -1, -1, device=device)
    return ((codes[:, None] // powers) % levels).float().reshape(-1, *shape)


def state_codes(x: torch.Tensor, levels: int) -> torch.Tensor:
    """The index of each vector of x (N, *shape) in `all_states` order: (N,) int64."""
    flat = x.reshape(x.shape[0], -1).long()
    d = flat.shape[1]
    powers = levels ** torch.arange(d - 1, -1, -1, device=x.device)
    return (flat * powers).sum(1)
