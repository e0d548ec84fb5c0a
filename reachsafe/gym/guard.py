"""The batched core of every shield: from the environment's states and the policy's actions to safe actions.

For states ``x`` ``[B, n]`` (in P) and policy actions ``u`` ``[B, m]`` in environment units,
:meth:`Guard.act` returns, in one safeguard call for the whole batch (no loop over rows):

1. ``a_pol = clip((u - c) / h, -1, 1)`` -- the policy's action, normalised (:mod:`.actions`);
2. ``a_s = safeguard(x, a_pol)`` in float64 -- an action in the safe set
   ``S(x) = {a in U : A (c(x) + B(x) a) + h_W(x) <= b}``, shrunk by ``tighten`` so that the
   rounding of step 3 stays inside ``S(x)``;
3. ``u_env = c + h a_s`` rounded to the action space's dtype, and ``a_exec``, its normalised
   value: the action the environment will execute;
4. ``verified``: ``a_exec`` satisfies ``G a_exec <= h`` for every row of ``S(x)`` in float64
   (a cheap online check; the audit proves it rigorously afterwards).

``tighten`` defaults to the safeguard's float32 margin (1e-5, a distance in state space) for
float32 action spaces and 1e-9 for float64 ones.  Rounding ``c + h a_s`` to float32 moves
``a`` by at most about ``2^-24 (|c| / h + 1)``, i.e. the successor by ``|A_i B(x)|`` times that:
far below 1e-5 unless ``|B|`` is in the hundreds.

The guard also holds the set's membership test (:meth:`inside`, float64, no tolerance) and a
uniform sampler of P (:meth:`sample`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ..intervention import intervened
from ..safeguard_kinds import SAFEGUARD_KINDS, SHIELDING_KIND_NAMES
from ..sampling import PolytopeSampler, as_generator
from ..setfile import SetFile, load_set
from ..systems import CompiledSystem, get_system
from .actions import ActionMap
from .state import ShieldError

__all__ = ["Guard", "GuardStep"]


@dataclass
class GuardStep:
    """One batched decision.  ``[B, m]`` arrays; ``u_env`` in the action space's dtype, the rest float64."""

    u_env: np.ndarray  # executed, environment units
    a_exec: np.ndarray  # executed, normalised (what the environment receives, mapped back)
    a_pol: np.ndarray  # the policy's, normalised and clipped to [-1, 1]
    intervened: np.ndarray  # [B] bool: |a_exec - a_pol| > 1e-6 (reachsafe.intervention)
    verified: np.ndarray  # [B] bool: a_exec passed the float64 check against S(x)


class Guard:
    """Safeguard, action map, membership test and sampler of one (system, set, action space).

    :param invariant_set: a :class:`~reachsafe.setfile.SetFile` or a path to one (loaded with
        its certificate checked: :func:`reachsafe.load_set`).
    :param system: the model (a :class:`~reachsafe.systems.CompiledSystem`, name or model
        file); default: the set file's own model (its ``model_file`` or system name).
    :param action_space: the environment's ``Box`` action space.
    :param safeguard: ``"projection"`` (default: changes only unsafe actions), ``"raymask"``,
        ``"raymask-tanh"`` or any other kind that shields (:mod:`reachsafe.safeguard_kinds`).
    :param outside: states outside P: ``"raise"`` (default) or ``"fallback"`` (see
        :class:`~reachsafe.safeguards.base.Safeguard`).
    :param tighten: the safeguard's margin (module docstring); default from the dtype.
    """

    def __init__(self, invariant_set: Any, system: Any = None, *, action_space: Any, safeguard: str = "projection",
                 outside: str = "raise", tighten: float | None = None) -> None:
        import torch  # lazy: torch; `import reachsafe.gym` stays torch-free

        from ..safeguards import make_safeguard  # lazy: torch; `import reachsafe.gym` stays torch-free

        if safeguard in SAFEGUARD_KINDS and not SAFEGUARD_KINDS[safeguard].shields:
            names = [repr(k) for k in SHIELDING_KIND_NAMES]
            choose = " or ".join(filter(None, [", ".join(names[:-1]), names[-1]]))
            raise ShieldError(f"safeguard={safeguard!r} does not shield; choose {choose}")
        if outside not in ("raise", "fallback"):
            raise ShieldError(f"outside must be 'raise' or 'fallback', got {outside!r}")
        if isinstance(invariant_set, SetFile):
            sf = invariant_set
        elif isinstance(invariant_set, (str, os.PathLike)):
            sf = load_set(invariant_set, system=None if system is None or isinstance(system, CompiledSystem)
                          else str(system))
        else:
            raise ShieldError(
                f"the set must be a SetFile or the path of a set file, got {type(invariant_set).__name__}"
            )
        if not sf.certified:
            warnings.warn(f"{sf.path or 'set file'}: the set is not certified; the shield keeps states in it, but "
                          "nothing proves it invariant (run 'reachsafe certify')", RuntimeWarning, stacklevel=3)
        self.setfile = sf
        # load_set registered the set's model (its model_file) under the system name
        self.system = system if isinstance(system, CompiledSystem) else get_system(
            str(system) if system is not None else sf.system)
        self.actions = ActionMap(action_space, self.system.m)
        if tighten is None:
            tighten = 1e-9 if self.actions.dtype == np.float64 else 1e-5
        self.safeguard = make_safeguard(safeguard, self.system, sf, outside=outside, tighten=tighten)
        self.outside = outside
        self.A, self.b = np.asarray(sf.A, dtype=np.float64), np.asarray(sf.b, dtype=np.float64)
        self.sampler = PolytopeSampler(self.A, self.b)
        self._torch = torch

    @property
    def n(self) -> int:
        return self.system.n

    def inside(self, x: np.ndarray) -> np.ndarray:
        """``A x <= b`` for ``x [B, n]`` -> bool ``[B]`` (float64, no tolerance)."""
        return np.all(np.asarray(x, dtype=np.float64) @ self.A.T <= self.b, axis=-1)

    def excess(self, x: np.ndarray) -> np.ndarray:
        """``max_i (A_i x - b_i) / |A_i|`` for ``x [B, n]``: > 0 outside P (a distance in state space)."""
        nu = np.linalg.norm(self.A, axis=1)
        return ((np.asarray(x, dtype=np.float64) @ self.A.T - self.b) / nu).max(axis=-1)

    def sample(self, k: int, rng: Union[None, int, np.random.Generator]) -> np.ndarray:
        """``k`` states uniform in P, float64 ``[k, n]``."""
        return self.sampler.sample(k, as_generator(rng))

    def act(self, x: np.ndarray, u_policy: np.ndarray) -> GuardStep:
        """Safe actions for states ``x [B, n]`` and policy actions ``u_policy [B, m]`` (module docstring)."""

        torch = self._torch
        a_pol = self.actions.to_unit(u_policy)
        xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
        with torch.no_grad():
            a_s = self.safeguard(xt, torch.as_tensor(a_pol)).numpy()
            G, h = self.safeguard.safe_action_set(xt)
        u_env = self.actions.to_env(a_s)
        a_exec = self.actions.executed(u_env)
        verified = ((G.numpy() @ a_exec[:, :, None])[..., 0] <= h.numpy()).all(axis=-1)
        return GuardStep(u_env=u_env, a_exec=a_exec, a_pol=a_pol, intervened=np.asarray(intervened(a_pol, a_exec)),
                         verified=verified)
