"""``Shield``: a ``gymnasium.Wrapper`` that puts a certified safeguard between a policy and a user's own environment.

::

    env = Shield(gym.make("Pendulum-v1"), "data/pendulum_v1.json")   # the set file finds its model
    obs, info = env.reset(seed=0)            # the episode starts in P
    obs, r, terminated, truncated, info = env.step(env.action_space.sample())
    info["intervened"], info["policy_action"], info["action"]

Every step:

1. the policy's action ``u`` (environment units, the wrapper's ``action_space`` is the
   environment's) is normalised to ``a in [-1, 1]^m`` and replaced by the safeguard's output
   ``a_s in S(x)`` at the environment's true state ``x`` (``state_fn``), which is mapped back to
   environment units (:class:`~.guard.Guard`);
2. the *real* environment steps with that action;
3. the successor state is read again; if it lies outside P the model does not describe the
   environment (with a correct model and a certified set this cannot happen), and the shield
   raises :class:`~.state.ShieldError` (``outside="raise"``, default) after recording the step,
   or reports ``info["outside_P"]`` and carries on (``outside="fallback"``).

``info`` gains ``intervened`` (bool: the executed action differs from the policy's by more
than 1e-6 in normalised units), ``policy_action`` (the policy's action as given, environment
units), ``action`` (the executed one, environment units, the space's dtype), ``outside_P`` and
``verified`` (the executed action passed the float64 check against ``S(x)``).

On ``reset`` the environment resets itself, then the shield makes the start state lie in P:
``start="sample"`` (default) draws it uniformly in P and sets it (:mod:`.access`);
``start="refuse"`` keeps the environment's own start state and raises a clear error if it is
outside P.  The sampling generator is seeded by ``reset(seed=...)``.

With ``record=True`` every complete episode (ended by termination or truncation) is kept by a
:class:`~reachsafe.recorder.RolloutRecorder` (states read from the environment itself, the
executed and the policy's normalised actions, the environment's rewards; ``noise`` =
``"environment"``), and ``shield.recorder.save(path)`` writes them for ``reachsafe audit``.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from ..recorder import RolloutRecorder
from ..sampling import as_generator
from .access import EnvAccess
from .guard import Guard
from .state import ObsFn, SetStateFn, ShieldError, StateFn

__all__ = ["Shield"]


class Shield(gym.Wrapper):
    """A safeguard around a user's environment (module docstring).

    :param env: the environment (``gym.make(...)``), whose state the model describes.
    :param invariant_set: the certified set file (path or :class:`~reachsafe.setfile.SetFile`).
    :param system: the model; default the set file's own (its ``model_file`` or system name).
    :param state_fn: ``env -> x [n]``, the true state in the model's coordinates (default
        ``env.unwrapped.state``).
    :param set_state_fn: ``(env, x) -> None`` (default ``env.unwrapped.state = x``); for ``start="sample"``.
    :param obs_fn: ``env -> obs`` of the state just set (default ``env.unwrapped._get_obs()`` or the state).
    :param start: ``"sample"`` or ``"refuse"`` (module docstring).
    :param safeguard: ``"projection"`` (default), ``"raymask"``, ``"raymask-tanh"``.
    :param outside: ``"raise"`` (default) or ``"fallback"`` when the state leaves P.
    :param record: keep complete episodes in :attr:`recorder` (``shield.recorder.save(path)``).
    :param tighten: the safeguard's margin (default from the action dtype, :mod:`.guard`).
    """

    def __init__(self, env: gym.Env, invariant_set: Any, system: Any = None, *, state_fn: StateFn | None = None,
                 set_state_fn: SetStateFn | None = None, obs_fn: ObsFn | None = None, start: str = "sample",
                 safeguard: str = "projection", outside: str = "raise", record: bool = False,
                 tighten: float | None = None) -> None:
        super().__init__(env)
        self.guard = Guard(invariant_set, system, action_space=env.action_space, safeguard=safeguard, outside=outside,
                           tighten=tighten)
        sysm = self.guard.system
        self.access = EnvAccess(sysm.n, tuple(sysm.state_names), state_fn, set_state_fn, obs_fn, start)
        self.access.check_wrappers(env)
        self._recorder = RolloutRecorder(sysm, self.guard.setfile, noise="environment", safeguard=safeguard) \
            if record else None
        self._rng = as_generator(None)
        self._x: np.ndarray | None = None
        self._open = False

    @property
    def recorder(self) -> RolloutRecorder:
        """The episodes recorded so far (``record=True``); ``.save(path)`` writes them, ``.rollouts()`` returns them."""
        if self._recorder is None:
            raise ShieldError("this Shield does not record; create it with record=True")
        return self._recorder

    @property
    def state(self) -> np.ndarray | None:
        """The environment's state as last read (float64 ``[n]``), None before the first reset."""
        return None if self._x is None else self._x.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = as_generator(seed)
        self._x, obs = self.access.begin(self.env, obs, self.guard, self._rng)
        if self._recorder is not None:
            self._recorder.start(self._x[None])
        self._open = True
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._x is None:
            raise ShieldError("call reset() before step(): the shield needs the environment's start state")
        u_pol = self.guard.actions.check_policy_action(action, 1)
        d = self.guard.act(self._x[None], u_pol)
        obs, reward, terminated, truncated, info = self.env.step(d.u_env[0])
        x_next = self.access.read(self.env)
        outside = not bool(self.guard.inside(x_next[None])[0])
        info = dict(info, intervened=bool(d.intervened[0]), policy_action=np.asarray(action).copy(),
                    action=d.u_env[0].copy(), outside_P=outside, verified=bool(d.verified[0]))
        done = bool(terminated or truncated)
        if self._recorder is not None and self._open:
            self._recorder.step(x_next[None], d.a_exec, d.a_pol, [float(reward)], done=done)
        self._open = self._open and not done
        prev, self._x = self._x, x_next
        if outside and self.guard.outside == "raise":
            raise ShieldError(f"the environment left the invariant set: state {x_next.tolist()} after "
                              f"{prev.tolist()} with action {d.u_env[0].tolist()} is outside P by "
                              f"{float(self.guard.excess(x_next[None])[0]):.3g}; the model does not describe this "
                              "environment (a wrong parameter, or state_fn reads another state). Audit the "
                              "recorded rollouts, or pass outside='fallback' to carry on")
        return obs, reward, terminated, truncated, info
