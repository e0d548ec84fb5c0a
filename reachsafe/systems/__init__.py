"""Systems: symbolic definitions (one module each) and their compiled numeric form.

>>> from reachsafe.systems import get_system
>>> sys = get_system("pendulum")          # compiled once per process, then cached
>>> sys.n, sys.m, sys.p
(2, 1, 1)
"""

from __future__ import annotations

import functools
import importlib

from .compiled import AffineEnclosure, CompiledSystem
from .definition import ModelError, SystemDefinition

__all__ = ["get_system", "get_definition", "available_systems", "CompiledSystem", "SystemDefinition",
           "AffineEnclosure", "ModelError", "UnknownSystemError"]

_BUILTIN = {"pendulum": "reachsafe.systems.pendulum", "quadrotor": "reachsafe.systems.quadrotor"}


class UnknownSystemError(KeyError):
    """No system of that name is registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one clean line
        return str(self.args[0])


def available_systems() -> list[str]:
    """Names of the built-in systems."""
    return sorted(_BUILTIN)


def get_definition(name: str) -> SystemDefinition:
    """The symbolic definition of a registered system."""
    if name not in _BUILTIN:
        raise UnknownSystemError(
            f"unknown system {name!r}; available: {', '.join(available_systems())}"
        )
    return importlib.import_module(_BUILTIN[name]).DEFINITION


@functools.lru_cache(maxsize=None)
def get_system(name: str) -> CompiledSystem:
    """The compiled system ``name`` (compiled once per process)."""
    return CompiledSystem(get_definition(name))
