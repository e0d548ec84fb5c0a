"""The repository a command works in, found from the working folder (not from where reachsafe is installed).

The certified sets shipped with reachsafe (``data/SYSTEM.json`` with their proof artifacts, the
paper's sets in ``data/published/``) live in the repository beside ``experiments/`` and
``results/``, not inside the Python package.  Commands that default to them (``reachsafe train``
without ``--set``, ``reachsafe demo``, ``reachsafe bench audit``, an experiment without ``set``)
look for the repository by walking up from the current folder (an experiment: from its
``root``): the repository root is the nearest folder at or above it that holds both
``pyproject.toml`` and a ``data/`` folder.

So a user working anywhere inside a checkout gets the checkout's ``data/``, whether reachsafe
is installed editable, from a wheel or run from the source tree; outside any checkout there is
no default set from ``data/`` (give ``--set``; ``reachsafe demo`` computes one).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repository_root"]


def repository_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the current folder) holding ``pyproject.toml``
    and ``data/``, resolved; None if there is none."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "data").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    return None
