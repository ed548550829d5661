"""Registers every built-in dataset through the ``evalgen_register_datasets`` hook."""

from __future__ import annotations

from collections.abc import Callable

from evalgen.datasets import digits, mnist, toys
from evalgen.datasets.base import DatasetSpec
from evalgen.markers import hookimpl


def builtin_specs() -> list[DatasetSpec]:
    """All built-in dataset specs, in listing order (cheap: nothing is loaded)."""
    return [*digits.dataset_specs(), *mnist.dataset_specs(), *toys.dataset_specs()]


@hookimpl
def evalgen_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    for spec in builtin_specs():
        register(spec)
