"""``reachsafe.audit``: audit rollouts given as a file, a Rollouts object, a recorder or plain arrays.

::

    from reachsafe import audit
    res = audit("runs/x/rollouts.npz", "data/pendulum.json")            # a file (or a run directory)
    res = audit(recorder, sf)                                            # a RolloutRecorder / Shield's recorder
    res = audit({"states": S, "actions": A}, sf)                         # arrays [E, T+1, n], [E, T, m]
    res.ok, res.exit_code, res.to_json()

The checks are :func:`verification.audit.audit` (certificate, states in P and X, actions in
``S(x)``, transitions explained by the model and the noise box); this module only turns its
input into a :class:`~reachsafe.rollouts.Rollouts`.  It imports ``verification`` lazily,
inside :func:`audit` (the one place in the core besides the command line that does; the
layout test names it), so ``import reachsafe`` stays light.

Arrays carry no metadata: ``states`` ``[E, T+1, n]`` and ``actions`` ``[E, T, m]`` (executed,
normalised to ``[-1, 1]^m``) are required; ``policy_actions`` defaults to ``actions`` (no
interventions counted) and ``rewards`` to zeros.  The system and both fingerprints are taken
from the set file, i.e. the arrays are audited *as if* recorded under that set and model: the
fingerprint items of check 1 then pass by construction, and checks 2-4 decide.  Float32
arrays get the transition tolerance of float32 (the audit reads the stored precision).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .recorder import RolloutRecorder
from .rollouts import Rollouts, RolloutsError
from .setfile import SetFile, load_set, set_fingerprint

__all__ = ["audit", "as_rollouts"]


def as_rollouts(rollouts: Any, setfile: Any) -> Rollouts | str | os.PathLike:
    """A :class:`Rollouts` (or a path, left to the audit) from any accepted input (module docstring)."""

    if isinstance(rollouts, (Rollouts, str, os.PathLike)):
        return rollouts
    if isinstance(rollouts, RolloutRecorder):
        return rollouts.rollouts()
    if hasattr(type(rollouts), "recorder"):  # a shield (Shield, ShieldVectorEnv, ShieldVecEnv) with record=True
        return rollouts.recorder.rollouts()
    if isinstance(rollouts, Mapping):
        missing = [k for k in ("states", "actions") if k not in rollouts]
        if missing:
            raise RolloutsError(f"audit: arrays need 'states' [E, T+1, n] and 'actions' [E, T, m]; missing "
                                f"{', '.join(missing)}")
        unknown = set(rollouts) - {"states", "actions", "policy_actions", "rewards"}
        if unknown:
            raise RolloutsError(f"audit: unknown array(s) {', '.join(sorted(unknown))}; pass states, actions and "
                                "optionally policy_actions and rewards")
        conv = {k: _array(v) for k, v in rollouts.items()}
        A = conv["actions"]
        return Rollouts(states=conv["states"], actions=A, policy_actions=conv.get("policy_actions", A),
                        rewards=conv.get("rewards", np.zeros(A.shape[:2] if A.ndim == 3 else (0, 0))),
                        system=setfile.system, set_fingerprint=set_fingerprint(setfile),
                        model_fingerprint=setfile.model_fingerprint, noise="unknown").validate()
    raise RolloutsError(f"audit: rollouts must be a path, a Rollouts, a RolloutRecorder (or a recording Shield) or "
                        f"a dict of arrays, got {type(rollouts).__name__}")


def _array(v: Any) -> Any:
    if type(v).__module__.startswith("torch"):
        v = v.detach().cpu().numpy()
    a = np.asarray(v)
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def audit(rollouts: Any, setfile: Any, **kw: Any) -> Any:
    """Audit ``rollouts`` against the set file ``setfile`` (path or SetFile); returns an ``AuditResult``.

    :param kw: ``recheck``, ``tol``, ``model_rtol``, ``max_failures`` of :func:`verification.audit.audit`.
    """

    sf = setfile if isinstance(setfile, SetFile) else load_set(setfile, check_fingerprint=False,
                                                               check_certificate=False)  # check 1 reports both
    from verification.audit import audit as _audit  # lazy: the core never imports verification at import time

    return _audit(as_rollouts(rollouts, sf), sf, **kw)
