"""Device-resident data in a model's representation, and the batch stream."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch

from evalgen.datasets.base import Dataset
from evalgen.types import Batch, Representation

#: Dequantization noise of the validation and test sets comes from this seed, independent of
#: the run's seed, so every model and seed is scored on the same dequantized values.
EVAL_NOISE_SEED = 20_240_601
#: Best-checkpoint selection uses at most this many validation examples (a fixed subset).
MAX_VALIDATION_EXAMPLES = 2_048


def to_representation(x: torch.Tensor, representation: Representation, levels: int | None,
                      generator: torch.Generator) -> torch.Tensor:
    """Stored values -> what the model sees; for ``dequantized``: (x + u) / levels."""
    if representation is not Representation.DEQUANTIZED:
        return x
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise) / levels


def dequantization_seed(draw: int) -> int:
    """The seed of the test set's dequantization noise for draw ``draw`` (0, 1, ... K - 1): draw 0
    is the noise `evaluation_inputs` draws from `EVAL_NOISE_SEED` (after the validation subset's),
    the others come from their own generators, seeded from it and the index by SHA-256."""
    digest = hashlib.sha256(f"{EVAL_NOISE_SEED}/dequantization/{draw}".encode()).digest()
    return int.from_bytes(digest[:6], "little")


def evaluation_inputs(dataset: Dataset, representation: Representation,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed validation subset (at most `MAX_VALIDATION_EXAMPLES`) and the whole test set in
    ``representation``, on ``device``: what every run is scored on. For ``dequantized`` the noise
    comes from one generator on ``device`` seeded with `EVAL_NOISE_SEED`, drawn for the validation
    subset first and then for the test set (the values depend on the device's random stream)."""
    noise = torch.Generator(device=device).manual_seed(EVAL_NOISE_SEED)
    valid = to_representation(dataset.valid.x[:MAX_VALIDATION_EXAMPLES].to(device), representation,
                              dataset.levels, noise)
    test = to_representation(dataset.test.x.to(device), representation, dataset.levels, noise)
    return valid, test


def to_stored_values(samples: torch.Tensor, representation: Representation,
                     levels: int | None) -> torch.Tensor:
    """A model's samples -> the dataset's stored values (integers for discrete data)."""
    if representation is not Representation.DEQUANTIZED:
        return samples
    return torch.floor(samples * levels).clamp_(0, levels - 1)


class ModelData:
    """Train, validation and test tensors on one device, in one model's representation."""

    def __init__(self, dataset: Dataset, representation: Representation, device: torch.device) -> None:
        self.representation = representation
        self.levels = dataset.levels
        self.device = device
        self.train_x = dataset.train.x.to(device)
        self.train_y = None if dataset.train.y is None else dataset.train.y.to(device)
        self.valid_x, self.test_x = evaluation_inputs(dataset, representation, device)
        #: the test set's stored values (on the CPU): further dequantization draws start from them
        self.test_values = dataset.test.x
        self.test_y = dataset.test.y

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Endless shuffled batches (a new permutation each epoch); drops the ragged tail."""
        n = self.train_x.shape[0]
        batch_size = min(batch_size, n)
        while True:
            order = torch.randperm(n, generator=generator, device=self.device)
            for start in range(0, n - batch_size + 1, batch_size):
                index = order[start:start + batch_size]
                x = to_representation(self.train_x[index], self.representation, self.levels, generator)
                y = None if self.train_y is None else self.train_y[index]
                yield Batch(x, y)
