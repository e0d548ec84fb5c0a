"""Gymnasium / stable-baselines3 faces of :class:`~training.env.SafeEnv` (numpy in, numpy out).

* :class:`SafeVecEnv` — a stable-baselines3 ``VecEnv`` over the ``N`` batched environments:
  the baselines (PPO, SAC) see observations ``[N, k]`` and send actions ``[N, m]``; the
  safeguard runs inside :meth:`SafeEnv.step`, so what is executed is its output.  Episodes
  end by time limit (``TimeLimit.truncated`` is set and ``terminal_observation`` given,
  so SB3 bootstraps correctly).
* :class:`SafeGymEnv` — a single ``gymnasium.Env`` (``num_envs = 1``) for other tools.

``info`` of every environment carries ``intervened``, ``outside_P``, ``outside_X`` (bool),
``policy_action`` and ``action`` (the executed one).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv

from .env import EnvStep, SafeEnv

__all__ = ["SafeVecEnv", "SafeGymEnv", "spaces_of"]


def spaces_of(env: SafeEnv) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """``(observation_space, action_space)``: unbounded observations, actions in ``[-1, 1]^m``."""
    obs = gym.spaces.Box(-np.inf, np.inf, shape=(env.obs_dim,), dtype=np.float32)
    act = gym.spaces.Box(-1.0, 1.0, shape=(env.m,), dtype=np.float32)
    return obs, act


def _infos(res: EnvStep, i: int) -> dict[str, Any]:
    return {"intervened": bool(res.intervened[i]), "outside_P": bool(res.outside_P[i]),
            "outside_X": bool(res.outside_X[i]), "policy_action": res.policy_action[i].numpy(),
            "action": res.action[i].numpy()}


class SafeVecEnv(VecEnv):
    """stable-baselines3 ``VecEnv`` over a :class:`SafeEnv` (no gradients: runs under ``no_grad``)."""

    def __init__(self, env: SafeEnv):
        self.env = env
        obs_space, act_space = spaces_of(env)
        super().__init__(env.num_envs, obs_space, act_space)
        self._actions: Optional[np.ndarray] = None

    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if getattr(self, "_seeds", None) and self._seeds[0] is not None else None
        if seed is not None:
            self.env.reseed(int(seed))
            self._reset_seeds()
        else:
            self.env.reset()
        return self.env.obs.detach().numpy().astype(np.float32)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, self.env.m)

    def step_wait(self):
        a = torch.as_tensor(self._actions, dtype=self.env.dtype).clamp(-1.0, 1.0)
        with torch.no_grad():
            res = self.env.step(a)
        obs = res.obs.numpy().astype(np.float32)
        rewards = res.reward.numpy().astype(np.float32)
        dones = res.done.numpy().copy()
        infos = [_infos(res, i) for i in range(self.num_envs)]
        for i in np.nonzero(dones)[0]:
            infos[i]["terminal_observation"] = res.terminal_obs[i].numpy().astype(np.float32)
            infos[i]["TimeLimit.truncated"] = True
            infos[i]["episode"] = {"r": float(self.env.completed_returns[-1 - int(np.sum(dones[i + 1:]))]),
                                   "l": self.env.episode_length}
        return obs, rewards, dones, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        # SB3 asks every VecEnv for ``render_mode``; these environments do not render
        value = None if attr_name == "render_mode" else getattr(self.env, attr_name)
        return [value] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kw: Any) -> list[Any]:
        return [getattr(self.env, method_name)(*args, **kw) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def _get_indices(self, indices: Any) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)


class SafeGymEnv(gym.Env):
    """One environment as a ``gymnasium.Env`` (``terminated`` is always False; ``truncated`` at 240 steps)."""

    metadata = {"render_modes": []}

    def __init__(self, env: SafeEnv):
        if env.num_envs != 1:
            raise ValueError(f"SafeGymEnv wraps a SafeEnv with num_envs=1, got {env.num_envs}")
        self.env = env
        self.observation_space, self.action_space = spaces_of(env)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        obs = self.env.reseed(seed) if seed is not None else self.env.reset()
        return obs[0].detach().numpy().astype(np.float32), {}

    def step(self, action: np.ndarray):
        a = torch.as_tensor(np.asarray(action, dtype=np.float32).reshape(1, self.env.m), dtype=self.env.dtype)
        with torch.no_grad():
            res = self.env.step(a.clamp(-1.0, 1.0))
        info = _infos(res, 0)
        truncated = bool(res.done[0])
        obs = res.terminal_obs[0] if truncated else res.obs[0]
        return obs.numpy().astype(np.float32), float(res.reward[0]), False, truncated, info
