"""How a shield reads an environment's state and places a start state in P (one environment at a time).

:class:`EnvAccess` bundles the three state functions (:mod:`.state`) with the model's
dimension and names.  :meth:`EnvAccess.begin` runs after the environment's own ``reset`` and
makes sure the episode starts in P:

* ``start="sample"``: draw ``x0`` uniform in P (the lane's generator), set it with
  ``set_state_fn``, read it back (it must come back bit for bit, else the environment did not
  take it), and return ``obs_fn(env)``, the observation of ``x0``;
* ``start="refuse"``: keep the environment's own start state if it lies in P (``A x0 <= b``
  in float64), else raise one :class:`~.state.ShieldError`.

With the default ``obs_fn`` the observation comes from the unwrapped environment, so
observation wrappers must sit *outside* the shield; :meth:`EnvAccess.check_wrappers` refuses a
``gymnasium.ObservationWrapper`` between the shield and the environment for ``"sample"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .state import ObsFn, SetStateFn, ShieldError, StateFn, check_state, default_obs, default_set_state, default_state

__all__ = ["EnvAccess", "START_MODES"]

START_MODES = ("sample", "refuse")


@dataclass
class EnvAccess:
    """State access for one model: ``n`` states named ``names`` (module docstring)."""

    n: int
    names: tuple[str, ...]
    state_fn: StateFn | None = None
    set_state_fn: SetStateFn | None = None
    obs_fn: ObsFn | None = None
    start: str = "sample"

    def __post_init__(self) -> None:
        if self.start not in START_MODES:
            raise ShieldError(f"start must be one of {', '.join(START_MODES)}, got {self.start!r}")

    def read(self, env: Any) -> np.ndarray:
        """The environment's true state, float64 ``[n]`` (validated: shape, numbers, finite)."""
        return check_state((self.state_fn or default_state)(env), self.n, self.names)

    def check_wrappers(self, env: Any) -> None:
        """Refuse an observation wrapper inside the shield when observations come from ``default_obs``."""
        import gymnasium as gym  # lazy: gymnasium is optional

        if self.start != "sample" or self.obs_fn is not None:
            return
        e = env
        while isinstance(e, gym.Wrapper):
            if isinstance(e, gym.ObservationWrapper):
                raise ShieldError(f"{type(e).__name__} sits between the shield and the environment; with "
                                  "start='sample' the shield takes the start observation from the unwrapped "
                                  "environment, so put observation wrappers outside the shield (or pass obs_fn)")
            e = e.env

    def begin(self, env: Any, obs: Any, guard: Any, rng: np.random.Generator) -> tuple[np.ndarray, Any]:
        """``(x0, obs)`` of an episode that starts in P (module docstring), after ``env.reset``."""
        x0 = self.read(env)
        if self.start == "refuse":
            if not bool(guard.inside(x0[None])[0]):
                raise ShieldError(f"the environment's start state {_fmt(self.names, x0)} lies outside the invariant "
                                  f"set (by {float(guard.excess(x0[None])[0]):.3g}); pass start='sample' to draw "
                                  "start states uniformly in the set, or make the environment start inside it")
            return x0, obs
        x = guard.sample(1, rng)[0]
        (self.set_state_fn or default_set_state)(env, x)
        x0 = self.read(env)
        if not np.array_equal(x0, x):
            raise ShieldError(f"set_state_fn did not set the state: set {_fmt(self.names, x)}, state_fn read back "
                              f"{_fmt(self.names, x0)}; pass set_state_fn (and state_fn) that match the environment")
        return x0, (self.obs_fn or default_obs)(env)


def _fmt(names: tuple[str, ...], x: np.ndarray) -> str:
    return "(" + ", ".join(f"{k}={v:.6g}" for k, v in zip(names, x)) + ")"
