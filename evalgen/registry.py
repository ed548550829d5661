"""A name -> item registry that rejects duplicates and unsafe names, and suggests close names.

Names of plugins, models, datasets, budgets and metrics end up in file names (run keys, records,
checkpoints, leaderboard assets) and in tables, so they are restricted to one character class,
`NAME_PATTERN`: letters and digits in runs joined by single '.', '_' or '-' (no '/', no '..', no
'--', which separates the parts of a run key, nothing that needs escaping anywhere).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from evalgen.errors import EvalgenError, unknown_name

__all__ = ["NAME_MAX_LENGTH", "NAME_PATTERN", "Registry", "check_name", "is_valid_name"]

NAME_PATTERN = r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$"
NAME_MAX_LENGTH = 64
_NAME = re.compile(NAME_PATTERN)


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= NAME_MAX_LENGTH and _NAME.fullmatch(name) is not None


def check_name(what: str, name: object) -> str:
    """``name`` if it is a valid name of a ``what``, else a one-line EvalgenError."""
    if not is_valid_name(name):
        raise EvalgenError(f"{what} name {name!r} is not allowed: use at most {NAME_MAX_LENGTH} letters and digits, "
                           f"joined by single '.', '_' or '-' (e.g. 'wgan-gp')")
    return name


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Items keyed by their ``name``; ``what`` names the kind of item in error messages."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def register(self, item: T, owner: str = "evalgen") -> None:
        check_name(self.what, item.name)
        if item.name in self._items:
            raise EvalgenError(
                f"{self.what} '{item.name}' registered twice (by {self._owners[item.name]} "
                f"and by {owner}); rename one of them"
            )
        self._items[item.name] = item
        self._owners[item.name] = owner

    def replace(self, item: T) -> None:
        """Put ``item`` in place of the registered item of its name (same owner)."""
        if item.name not in self._items:
            raise unknown_name(self.what, item.name, self._items)
        self._items[item.name] = item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown_name(self.what, name, self._items) from None

    def owner(self, name: str) -> str:
        return self._owners[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)
