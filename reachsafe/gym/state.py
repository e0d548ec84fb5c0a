"""Reading and setting the true state of a user's environment, with one clear error for bad values.

The shield needs the environment's state ``x`` in the model's coordinates (``[n]`` float64,
the order of the model's ``state`` symbols).  Three functions of the (single) environment
provide it; the defaults cover classic-control environments (gymnasium's ``Pendulum-v1``,
``CartPole-v1``, ``MountainCarContinuous-v0``, ``Acrobot-v1``), which keep their state in
``env.unwrapped.state``:

* ``state_fn(env) -> x``: default ``env.unwrapped.state``;
* ``set_state_fn(env, x)``: default ``env.unwrapped.state = x`` (a float64 copy); used only
  to place a start state drawn from P (``start="sample"``);
* ``obs_fn(env) -> obs``: the observation of the state just set; default
  ``env.unwrapped._get_obs()`` if the environment has it, else ``env.unwrapped.state`` cast to
  the observation space's dtype.

Every value ``state_fn`` returns goes through :func:`check_state`; a wrong shape, a value
that is not numeric, NaN or inf is one :class:`ShieldError` naming the shape expected, the
model's state names and the fix.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import UserError

__all__ = ["ShieldError", "StateFn", "SetStateFn", "ObsFn", "default_state", "default_set_state", "default_obs",
           "check_state"]

StateFn = Callable[[Any], Any]
SetStateFn = Callable[[Any, np.ndarray], None]
ObsFn = Callable[[Any], Any]


class ShieldError(UserError):
    """The shield cannot guarantee safety here (bad state, start state outside P, state left P, ...); one line."""


def default_state(env: Any) -> Any:
    """``env.unwrapped.state`` (classic-control environments)."""
    base = env.unwrapped
    if not hasattr(base, "state"):
        raise ShieldError(f"{type(base).__name__} has no attribute 'state'; pass state_fn=lambda env: ... returning "
                          "the environment's true state in the model's coordinates")
    return base.state


def default_set_state(env: Any, x: np.ndarray) -> None:
    """``env.unwrapped.state = x`` (a float64 copy)."""
    env.unwrapped.state = np.array(x, dtype=np.float64)


def default_obs(env: Any) -> Any:
    """The unwrapped environment's observation of its current state.

    ``env.unwrapped._get_obs()`` when it exists (``Pendulum-v1``, ``Acrobot-v1``), else the
    state itself in the observation space's dtype (``CartPole-v1``, ``MountainCar``).
    """
    base = env.unwrapped
    get_obs = getattr(base, "_get_obs", None)
    if callable(get_obs):
        return get_obs()
    return np.asarray(base.state, dtype=env.observation_space.dtype)


def check_state(value: Any, n: int, names: tuple[str, ...], where: str = "state_fn(env)") -> np.ndarray:
    """``value`` as float64 ``[n]``, or one :class:`ShieldError` (wrong shape, not numeric, NaN, inf).

    :param value: what the state function returned (array-like, tensor, tuple, ...).
    :param n: the model's state dimension; :param names: its state names (for the message).
    """
    expect = f"[{n}] ({', '.join(names)})"
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    try:
        x = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ShieldError(f"{where} returned {type(value).__name__}, not numbers; it must return the true state "
                          f"{expect} of the model") from None
    if x.shape != (n,):
        raise ShieldError(f"{where} returned shape {list(x.shape)}, but the model's state is {expect}; return the "
                          "true state in the model's coordinates, not the observation")
    bad = ~np.isfinite(x)
    if bad.any():
        j = int(np.argmax(bad))
        raise ShieldError(f"{where} returned a non-finite state ({names[j]} = {x[j]}); the environment's state "
                          "must be finite to be shielded")
    return x
