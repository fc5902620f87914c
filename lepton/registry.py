"""A tiny name -> object registry, one per kind (methods, domains, encoders).

The registry name is the standard name from the literature (``dann``, ``deep-coral``) and the
same string is used by the CLI, the UI and the stored run config.
"""
from __future__ import annotations

from typing import Callable, Dict, Generic, Iterator, List, Optional, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Map standard names to objects of one kind.

    Parameters
    ----------
    kind : str
        What is registered (``"method"``, ``"domain"``), used in error messages.
    name_attr : str, optional
        If given, :meth:`add` sets this attribute of each registered object to its name (so a
        method class knows the name it is registered under).
    """

    def __init__(self, kind: str, name_attr: Optional[str] = None):
        self.kind = kind
        self.name_attr = name_attr
        self._items: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``.

        Raises
        ------
        ValueError
            If ``name`` is already registered.
        """

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T, replace: bool = False) -> None:
        """Register ``obj`` under ``name`` (``replace=True`` allows overwriting)."""
        if name in self._items and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if self.name_attr:
            setattr(obj, self.name_attr, name)
        self._items[name] = obj

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises
        ------
        UnknownNameError
            A ``KeyError`` naming the unknown name and listing the valid ones.
        """
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())}"
            ) from None

    def names(self) -> List[str]:
        """Registered names, in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
