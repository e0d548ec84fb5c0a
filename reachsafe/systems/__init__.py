"""Systems: symbolic definitions (one module each) and their compiled numeric form.

>>> from reachsafe.systems import get_system
>>> sys = get_system("pendulum")          # compiled once per process, then cached
>>> sys.n, sys.m, sys.p
(2, 1, 1)
>>> cart = get_system("examples/drifting_cart.py")   # a model file of your own (see loader)
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

from .compiled import AffineEnclosure, CompiledSystem
from .definition import ModelError, SystemDefinition
from .loader import (installed_systems, is_model_path, load_installed, load_model_file, registered_source,
                     source_of)
from .profile import GENERIC, SystemProfile

__all__ = ["get_system", "get_definition", "available_systems", "installed_systems", "CompiledSystem",
           "SystemDefinition", "AffineEnclosure", "ModelError", "UnknownSystemError", "is_model_path", "model_file_of",
           "SystemProfile", "profile_of"]

_BUILTIN = {"pendulum": "reachsafe.systems.pendulum", "quadrotor": "reachsafe.systems.quadrotor"}


class UnknownSystemError(KeyError):
    """No system of that name is registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one clean line
        return str(self.args[0])


def available_systems() -> list[str]:
    """Names of the built-in systems."""
    return sorted(_BUILTIN)


def get_definition(spec: str) -> SystemDefinition:
    """The symbolic definition of a system: a built-in or installed name, or a model file path."""
    if spec in _BUILTIN:
        return importlib.import_module(_BUILTIN[spec]).DEFINITION
    return get_system(spec).definition


def profile_of(spec: str) -> SystemProfile:
    """The tools' defaults for the system ``spec``: its definition's profile, else the generic one
    (:mod:`reachsafe.systems.profile`)."""
    return get_definition(spec).profile or GENERIC


@functools.lru_cache(maxsize=None)
def _builtin(name: str) -> CompiledSystem:
    return CompiledSystem(importlib.import_module(_BUILTIN[name]).DEFINITION)


@functools.lru_cache(maxsize=None)
def _installed(name: str) -> CompiledSystem | None:
    return load_installed(name, set(_BUILTIN))


def get_system(spec: str) -> CompiledSystem:
    """The compiled system ``spec`` (compiled once per process; model files again when edited).

    ``spec`` is a built-in name (``pendulum``), the path of a model file of the user's own
    (``models/cart.py``: any argument ending in ``.py`` or containing a path separator),
    the name of a system loaded from a model file earlier in this process, or the name of
    an installed system (entry-point group ``reachsafe.systems``).  See
    :mod:`reachsafe.systems.loader`.
    """
    spec = str(spec)
    if spec in _BUILTIN:
        return _builtin(spec)
    if is_model_path(spec):
        return load_model_file(spec, set(_BUILTIN))
    src = registered_source(spec)
    if src is not None:
        return load_model_file(src, set(_BUILTIN))  # recompiled if the file was edited
    compiled = _installed(spec)
    if compiled is None:
        extra = installed_systems()
        raise UnknownSystemError(
            f"unknown system {spec!r}; available: {', '.join(available_systems() + extra)}, "
            "or the path of a model file (.py) defining DEFINITION"
        )
    return compiled


def model_file_of(system: CompiledSystem) -> Path | None:
    """The model file a system was loaded from; None for built-in and installed systems."""
    return source_of(system)
