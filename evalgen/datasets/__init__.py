"""Datasets: the value types, the data directory, and the built-in loaders.

Built-in datasets (registered by `evalgen.datasets.builtin`): ``digits`` and its binary
counterparts ``binarized-digits`` and ``tiny-binarized-digits``, ``mnist``, ``fashion-mnist``,
``binarized-mnist``, ``binarized-fashion-mnist`` and the 2-D toys ``eight-gaussians``,
``grid-gaussians``, ``checkerboard``, ``rings``, ``two-moons``.
"""

from evalgen.datasets.base import Dataset, DatasetSpec, LoadContext, Split, tensor_checksum
from evalgen.datasets.files import (
    DATA_DIR_ENV,
    OFFLINE_ENV,
    default_data_dir,
    load_context_from_env,
    user_cache_dir,
)

__all__ = [
    "DATA_DIR_ENV",
    "OFFLINE_ENV",
    "Dataset",
    "DatasetSpec",
    "LoadContext",
    "Split",
    "default_data_dir",
    "load_context_from_env",
    "tensor_checksum",
    "user_cache_dir",
]
