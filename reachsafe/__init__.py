"""reachsafe: reachability-backed safety verification for reinforcement learning.

The core package: symbolic systems (:mod:`reachsafe.systems`), polytopes and zonotopes
(:mod:`reachsafe.sets`), the set-file contract (:mod:`reachsafe.setfile`), online
safeguards (:mod:`reachsafe.safeguards`), shields for gymnasium environments
(:mod:`reachsafe.gym`), the rollouts contract and its recorder (:mod:`reachsafe.rollouts`,
:mod:`reachsafe.recorder`), samplers of P and W (:mod:`reachsafe.sampling`), the audit's
Python entry (:func:`audit`, :mod:`reachsafe.auditing`) and the ``reachsafe`` command line
(:mod:`reachsafe.cli`).  Importing it stays light: it never imports ``verification``,
``training``, matplotlib or cvxpy.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .auditing import audit
from .errors import UserError
from .recorder import RolloutRecorder
from .rollouts import Rollouts
from .sampling import sample_noise, sample_states
from .setfile import SetFile, SetFileError, load_set, set_fingerprint
from .systems import available_systems, get_system

__all__ = ["__version__", "UserError", "SetFile", "SetFileError", "load_set", "set_fingerprint", "available_systems",
           "get_system", "Rollouts", "RolloutRecorder", "sample_states", "sample_noise", "audit"]
