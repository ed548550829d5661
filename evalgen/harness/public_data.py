"""The data a run sees, for use outside a run: `load_dataset` and `split_inputs`.

A third party who scores a model with its own code (a flow library's ``log_prob``, say) gets the
same numbers as ``evalgen run`` from these two: the dataset with its fixed splits, and the
validation or test set in the model's representation with the harness's fixed dequantization
noise (one definition, `evalgen.harness.data.evaluation_inputs`, which the harness itself uses).
"""

from __future__ import annotations

from pathlib import Path

import torch

from evalgen.datasets.base import Dataset
from evalgen.datasets.files import load_context_from_env
from evalgen.errors import EvalgenError
from evalgen.harness.data import evaluation_inputs
from evalgen.plugins import load_plugins
from evalgen.types import DataKind, ModelSpec, Representation

__all__ = ["load_dataset", "split_inputs"]

SPLITS = ("valid", "test")


def load_dataset(name: str, data_dir: str | Path | None = None, *, allow_download: bool | None = None) -> Dataset:
    """A registered dataset (built-in or a plugin's), loaded as ``evalgen run`` loads it.

    The `Dataset` holds the exact fixed splits every run uses (``train``, ``valid``, ``test``:
    `Split` s of float32 stored values, integers for binary and discrete data), its ``kind``,
    ``levels``, ``shape`` and ``checksum`` (recorded with every result). For the inputs a model
    is scored on, see `split_inputs`.

    Args:
        name: the dataset's name (``evalgen datasets`` lists them).
        data_dir: where its files are (as ``evalgen run --data-dir``); default
            ``$EVALGEN_DATA_DIR``, else the user cache.
        allow_download: fetch missing files; default yes unless ``$EVALGEN_OFFLINE`` is set.

    :raises EvalgenError: unknown name (with a "did you mean"); `DataUnavailableError` when its
        files are missing and cannot be downloaded, saying how to get them.
    """
    spec = load_plugins().datasets.get(name)
    return spec.load(load_context_from_env(data_dir, allow_download))


def split_inputs(dataset: Dataset, split: str, representation: Representation | ModelSpec | str,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """The validation or test set exactly as the harness hands it to a model's ``log_prob``.

    ``representation`` is a `Representation` or the model's `ModelSpec` (its representation for
    this dataset's kind). ``split="test"`` is the whole test set; ``"valid"`` the fixed subset of
    at most 2,048 examples used to pick the best checkpoint. Values are float32 (N, *shape):

    * ``levels``: the stored integers 0..L-1; log_prob is a log-pmf, and the reported
      test NLL is ``-log_prob`` in nats per example.
    * ``dequantized``: ``(x + u) / L`` in [0, 1)^D, with u ~ U[0, 1)^D drawn once from a fixed
      seed, independent of the run's seed (so every model is scored on the same values);
      log_prob is a density on [0, 1)^D, and the harness reports test NLL =
      ``-log_prob + D * log(L)`` nats per example (D = prod(dataset.shape), L = dataset.levels),
      bits/dim = NLL / (D ln 2). The plugin never adds the offset itself.
    * ``continuous``: the stored real values; test NLL = ``-log_prob`` (no bits/dim).

    The noise is drawn on ``device`` (as the harness draws it on the run's device), so give the
    run's device to reproduce a run's numbers exactly.

    :raises EvalgenError: an unknown split or representation, or dequantized continuous data.
    """
    if split not in SPLITS:
        raise EvalgenError(f"unknown split {split!r}: choose 'valid' or 'test' (training batches get fresh "
                           "dequantization noise per batch from the run's seed; the stored values are "
                           "dataset.train.x)")
    if isinstance(representation, ModelSpec):
        representation = representation.representation_for(dataset.kind)
    try:
        representation = Representation(representation)
    except ValueError:
        choices = ", ".join(r.value for r in Representation)
        raise EvalgenError(f"unknown representation {representation!r}: choose {choices}") from None
    if representation is Representation.DEQUANTIZED and (dataset.kind is DataKind.CONTINUOUS or not dataset.levels):
        raise EvalgenError(f"dataset '{dataset.name}' is continuous: it has no dequantized representation")
    valid, test = evaluation_inputs(dataset, representation, torch.device(device))
    return valid if split == "valid" else test
