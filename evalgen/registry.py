"""A name -> item registry that rejects duplicates and suggests close names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from evalgen.errors import EvalgenError, unknown_name


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
        if item.name in self._items:
            raise EvalgenError(
                f"{self.what} '{item.name}' registered twice (by {self._owners[item.name]} "
                f"and by {owner}); rename one of them"
            )
        self._items[item.name] = item
        self._owners[item.name] = owner

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
