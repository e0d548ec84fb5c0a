"""reachsafe: reachability-backed safety verification for reinforcement learning.

The core package: symbolic systems (:mod:`reachsafe.systems`), polytopes and zonotopes
(:mod:`reachsafe.sets`), the set-file contract (:mod:`reachsafe.setfile`), online
safeguards (:mod:`reachsafe.safeguards`) and the ``reachsafe`` command line
(:mod:`reachsafe.cli`).  Importing it stays light: it never imports ``verification``,
``training``, matplotlib or cvxpy.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import UserError
from .setfile import SetFile, SetFileError, load_set
from .systems import available_systems, get_system

__all__ = ["__version__", "UserError", "SetFile", "SetFileError", "load_set", "available_systems", "get_system"]
