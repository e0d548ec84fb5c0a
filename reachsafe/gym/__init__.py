"""Shield any Gymnasium environment with a certified safeguard (issue 16).

* :class:`Shield` -- a ``gymnasium.Wrapper`` around one environment (:mod:`.shield`);
* :class:`ShieldVectorEnv` -- a ``gymnasium.vector.VectorEnv`` over ``N`` copies of it, one
  batched safeguard call per step (:mod:`.vector`);
* :class:`ShieldVecEnv` -- the same as a stable-baselines3 ``VecEnv`` (:mod:`.sb3`, imported on
  first use so that ``reachsafe.gym`` does not import stable-baselines3).

State access (``state_fn``, ``set_state_fn``, ``obs_fn``) is described in :mod:`.state`, the
action map in :mod:`.actions`, the batched decision in :mod:`.guard`.
"""

from __future__ import annotations

from typing import Any

from .shield import Shield
from .state import ShieldError, check_state, default_obs, default_set_state, default_state
from .vector import ShieldVectorEnv

__all__ = ["Shield", "ShieldVectorEnv", "ShieldVecEnv", "ShieldError", "check_state", "default_state",
           "default_set_state", "default_obs"]


def __getattr__(name: str) -> Any:
    if name == "ShieldVecEnv":
        from .sb3 import ShieldVecEnv  # lazy: stable_baselines3 is optional

        return ShieldVecEnv
    raise AttributeError(f"module 'reachsafe.gym' has no attribute {name!r}")
