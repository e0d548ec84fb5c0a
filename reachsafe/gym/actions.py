"""The affine map between an environment's ``Box`` action space (environment units) and ``[-1, 1]^m``.

For a box ``[low, high]`` with centre ``c = (low + high) / 2`` and half-width ``h = (high - low) / 2``::

    a = (u - c) / h        (environment units u -> normalised a)
    u = c + h a            (normalised a -> environment units, cast to the space's dtype)

The model's action is the normalised ``a``: a model file writes the environment's action as
``c + h a`` in its units (``Pendulum-v1``: torque ``u = 2 a``).  :meth:`ActionMap.to_env`
rounds to the space's dtype and clips to ``[low, high]``; :meth:`ActionMap.executed` maps that
rounded action back (float64), so what the shield records is the action the environment
received, not the one it meant to send.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .state import ShieldError

__all__ = ["ActionMap"]


class ActionMap:
    """``[-1, 1]^m`` <-> a ``gymnasium.spaces.Box`` of shape ``(m,)`` with finite bounds (module docstring).

    :param space: the environment's action space.
    :param m: the model's action dimension.
    """

    def __init__(self, space: Any, m: int) -> None:
        import gymnasium as gym  # lazy: gymnasium is optional

        if not isinstance(space, gym.spaces.Box):
            raise ShieldError(f"the shield needs a Box action space, got {type(space).__name__}; the model's actions "
                              "are continuous")
        if space.shape != (m,):
            raise ShieldError(f"the environment's action space has shape {list(space.shape)}, the model has {m} "
                              f"action(s); expected shape [{m}]")
        low, high = np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
            raise ShieldError(f"the action space needs finite bounds low < high, got low={low.tolist()}, "
                              f"high={high.tolist()}")
        self.space, self.m, self.dtype = space, m, np.dtype(space.dtype)
        self.low, self.high = low, high
        self.centre, self.half = 0.5 * (low + high), 0.5 * (high - low)

    def to_unit(self, u: Any) -> np.ndarray:
        """Environment units ``[..., m]`` -> ``[-1, 1]^m`` (float64, clipped: the env clips too)."""
        u = np.asarray(u, dtype=np.float64)
        return np.clip((u - self.centre) / self.half, -1.0, 1.0)

    def to_env(self, a: np.ndarray) -> np.ndarray:
        """``[-1, 1]^m`` ``[..., m]`` -> environment units in the space's dtype, within ``[low, high]``."""
        u = (self.centre + self.half * np.asarray(a, dtype=np.float64)).astype(self.dtype)
        return np.clip(u, self.space.low, self.space.high).astype(self.dtype)

    def executed(self, u_env: np.ndarray) -> np.ndarray:
        """The normalised value of the (rounded) environment action ``u_env`` (float64, in ``[-1, 1]^m``)."""
        return self.to_unit(np.asarray(u_env, dtype=np.float64))

    def check_policy_action(self, u: Any, k: int) -> np.ndarray:
        """A policy's action batch ``[k, m]`` as float64, or one :class:`ShieldError` (shape, NaN)."""
        try:
            x = np.asarray(u, dtype=np.float64)
        except (TypeError, ValueError):
            raise ShieldError(f"the action must be numbers of shape [{self.m}], got {type(u).__name__}") from None
        if x.size != k * self.m:
            raise ShieldError(f"the action has shape {list(x.shape)}, the action space {list(self.space.shape)}")
        x = x.reshape(k, self.m)
        if not np.all(np.isfinite(x)):
            raise ShieldError("the policy's action is NaN or infinite; the shield needs a finite action to replace")
        return x
