"""The safeguard kinds: the one registry every list of kinds is read from.

A *kind* is a name (``"raymask-tanh"``) with a display name (``"tanh ray mask"``), a
:class:`~reachsafe.safeguards.base.Safeguard` subclass that implements it, and whether it
*shields* (every returned action is verified safe, or counted unsafe; ``"none"`` does not).
Every other list of kinds in the project is derived from :data:`SAFEGUARD_KINDS`, live (a kind
registered later is in all of them):

* :func:`reachsafe.safeguards.make_safeguard` and ``reachsafe.safeguards.KINDS`` (name -> class);
* the choices of ``reachsafe train --safeguard`` (:data:`KIND_NAMES`);
* ``training.runner.SAFEGUARDS``, which validates run configurations and experiment files
  (:data:`KIND_NAMES`), and the hint of its "needs a safeguard" error (:data:`SHIELDING_KIND_NAMES`);
* the display names of the result tables, ``training.aggregate.SAFEGUARD_NAMES`` (:data:`DISPLAY_NAMES`);
* the defaults of ``reachsafe bench training`` and the kinds a gymnasium shield accepts
  (:data:`SHIELDING_KIND_NAMES`);
* the tests' lists of kinds.

Adding a kind is one class and one line at the end of this module (docs/extending.md)::

    SAFEGUARD_KINDS.register(SafeguardKind("clip", "clipping", "reachsafe.safeguards.clip:ClipSafeguard"))

This module imports neither torch nor the safeguards: an implementation named as
``"module:Class"`` is imported on first use (:meth:`SafeguardKind.load`), so that the command
line lists the kinds without loading torch.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, Union, overload

from .errors import UserError

__all__ = ["SafeguardKind", "SafeguardRegistry", "KindMap", "KindNames", "SAFEGUARD_KINDS", "KIND_NAMES",
           "SHIELDING_KIND_NAMES", "DISPLAY_NAMES"]

V = TypeVar("V")

_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")  # one word for the CLI, comma lists and run names


@dataclass(frozen=True)
class SafeguardKind:
    """One registry entry.

    :param name: the kind's name in ``make_safeguard``, ``--safeguard``, experiment files and run
        names: lower-case letters and digits, words joined by ``-``.
    :param display_name: the name in result tables (``"tanh ray mask"``).
    :param implementation: the :class:`~reachsafe.safeguards.base.Safeguard` subclass, or its
        ``"module:Class"`` path (imported on first use).  Its ``kind`` and ``shields`` class
        attributes must agree with this entry (checked when it is loaded).
    :param shields: ``True``: every returned action is verified safe or counted unsafe and replaced
        (the safety net); ``False``: actions are returned as the map gives them, unsafe ones counted.
    """

    name: str
    display_name: str
    implementation: Union[str, type]
    shields: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"safeguard kind name {self.name!r}: use lower-case letters and digits, words joined "
                             "by '-' (it appears on the command line, in comma lists and in run names)")
        if not isinstance(self.display_name, str) or not self.display_name.strip():
            raise ValueError(f"safeguard kind {self.name!r} needs a display name (e.g. 'tanh ray mask')")
        impl = self.implementation
        if not (isinstance(impl, type) or (isinstance(impl, str) and re.fullmatch(r"[\w.]+:\w+", impl))):
            raise ValueError(f"safeguard kind {self.name!r}: implementation must be a class or 'module:Class', "
                             f"got {impl!r}")

    def load(self) -> type:
        """The implementing class, imported if named by path, checked against this entry.

        :raises TypeError: it is not a concrete :class:`~reachsafe.safeguards.base.Safeguard`
            subclass, or its ``kind`` / ``shields`` disagree with the entry.
        """
        # lazy: the safeguards need torch, and listing kinds must not
        from .safeguards.base import Safeguard

        cls = self.implementation
        if isinstance(cls, str):
            module, _, attr = cls.partition(":")
            cls = getattr(importlib.import_module(module), attr)
        if not (isinstance(cls, type) and issubclass(cls, Safeguard)):
            raise TypeError(f"safeguard kind {self.name!r}: {cls!r} is not a subclass of Safeguard")
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
            raise TypeError(f"safeguard kind {self.name!r}: {cls.__name__} does not implement {missing}")
        if cls.kind != self.name or bool(cls.shields) != self.shields:
            raise TypeError(
                f"safeguard kind {self.name!r}: {cls.__name__} has kind={cls.kind!r}, shields={cls.shields}, "
                f"its registry entry name={self.name!r}, shields={self.shields}; make them agree"
            )
        return cls


class KindMap(Mapping[str, V], Generic[V]):
    """Live, read-only mapping kind name -> ``value(entry)`` over a registry's entries (registration order)."""

    def __init__(self, kinds: dict[str, SafeguardKind], value: Callable[[SafeguardKind], V]) -> None:
        self._kinds, self._value = kinds, value

    def __getitem__(self, name: str) -> V:
        return self._value(self._kinds[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r})"


class SafeguardRegistry(KindMap[SafeguardKind]):
    """Name -> :class:`SafeguardKind`, in registration order (the order every list shows)."""

    def __init__(self) -> None:
        super().__init__({}, lambda kind: kind)

    def register(self, kind: SafeguardKind) -> SafeguardKind:
        """Add ``kind`` (last in every list).  A class given directly is checked now (:meth:`SafeguardKind.load`).

        :raises ValueError: the name or the display name is taken.
        """
        if not isinstance(kind, SafeguardKind):
            raise TypeError(f"register a SafeguardKind, got {type(kind).__name__}")
        if kind.name in self._kinds:
            raise ValueError(f"safeguard kind {kind.name!r} is already registered")
        taken = {k.display_name: k.name for k in self._kinds.values()}
        if kind.display_name in taken:
            raise ValueError(
                f"display name {kind.display_name!r} is taken by safeguard kind {taken[kind.display_name]!r}"
            )
        if isinstance(kind.implementation, type):
            kind.load()
        self._kinds[kind.name] = kind
        return kind

    def unregister(self, name: str) -> SafeguardKind:
        """Remove the kind ``name`` and return its entry (``KeyError`` if it is not registered)."""
        return self._kinds.pop(name)

    def load(self, name: str) -> type:
        """The class implementing ``name``; :class:`UserError` (one line, the choices) for an unknown name."""
        if name not in self._kinds:
            raise UserError(f"unknown safeguard kind {name!r}; choose one of {', '.join(self._kinds)}")
        return self._kinds[name].load()

    def names(self, shielding_only: bool = False) -> "KindNames":
        """A live view of the names (all, or only the kinds that shield)."""
        return KindNames(self, shielding_only)

    def display_names(self) -> KindMap[str]:
        """A live view name -> display name."""
        return KindMap(self._kinds, lambda kind: kind.display_name)

    def classes(self) -> KindMap[type]:
        """A live view name -> implementing class (imported and checked on first access, :meth:`SafeguardKind.load`)."""
        return KindMap(self._kinds, SafeguardKind.load)


class KindNames(Sequence[str]):
    """Live, read-only sequence of registered kind names (a tuple's interface: ``in``, ``index``, iteration)."""

    def __init__(self, registry: SafeguardRegistry, shielding_only: bool = False) -> None:
        self._registry, self._shielding_only = registry, shielding_only

    def _names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self._registry.values() if k.shields or not self._shielding_only)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[str, ...]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[str, tuple[str, ...]]:
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __repr__(self) -> str:
        return repr(self._names())


SAFEGUARD_KINDS = SafeguardRegistry()
KIND_NAMES = SAFEGUARD_KINDS.names()
SHIELDING_KIND_NAMES = SAFEGUARD_KINDS.names(shielding_only=True)
DISPLAY_NAMES = SAFEGUARD_KINDS.display_names()

# The built-in kinds, one line each, in the order every list shows them.
SAFEGUARD_KINDS.register(SafeguardKind("none", "none", "reachsafe.safeguards.baseline:NoSafeguard", shields=False))
SAFEGUARD_KINDS.register(
    SafeguardKind("projection", "projection", "reachsafe.safeguards.projection:ProjectionSafeguard")
)
SAFEGUARD_KINDS.register(SafeguardKind("raymask", "ray mask", "reachsafe.safeguards.raymask:RayMaskSafeguard"))
SAFEGUARD_KINDS.register(
    SafeguardKind("raymask-tanh", "tanh ray mask", "reachsafe.safeguards.raymask:TanhRayMaskSafeguard")
)
