"""PPO and SAC from stable-baselines3 on the safeguarded environment (not hand-written).

The safeguard sits in :meth:`training.env.SafeEnv.step` behind :class:`~training.gym_adapter.SafeVecEnv`:
SB3 samples an action, the environment executes the safeguard's output, and rewards,
observations and the evaluation protocol are the same as SHAC's.  (SB3 stores the policy's
own action in its buffers; the safeguard is part of the environment from its point of view.)
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from .gym_adapter import SafeVecEnv
from .profiles import profile_overrides

__all__ = ["ALGOS", "GENERIC_HYPERPARAMETERS", "default_hyperparameters", "make_model", "load_model", "HookCallback",
           "sb3_policy"]

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}


# generic SB3 settings of the baselines (``num_envs`` is ours, the rest are SB3 keyword arguments)
GENERIC_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "ppo": {"num_envs": 16, "n_steps": 256, "batch_size": 256, "n_epochs": 10, "learning_rate": 3e-4, "gamma": 0.98,
            "gae_lambda": 0.95, "ent_coef": 0.0, "clip_range": 0.2, "net_arch": [128, 128]},
    "sac": {"num_envs": 4, "learning_rate": 3e-4, "gamma": 0.98, "batch_size": 256, "buffer_size": 1_000_000,
            "learning_starts": 1000, "train_freq": 1, "gradient_steps": 1, "tau": 0.005, "net_arch": [128, 128]},
}


def default_hyperparameters(algo: str, system: str) -> dict[str, Any]:
    """SB3 settings of the ``algo`` baseline on ``system``: :data:`GENERIC_HYPERPARAMETERS`, replaced by the
    entries of the system's profile (:mod:`reachsafe.systems.profile`; e.g. the pendulum's gamma)."""
    if algo not in GENERIC_HYPERPARAMETERS:
        raise ValueError(f"unknown baseline {algo!r}")
    hp = copy.deepcopy(GENERIC_HYPERPARAMETERS[algo])
    for k, v in profile_overrides(system, algo, hp).items():
        hp[k] = list(v) if isinstance(v, tuple) else v  # as config.json stores it (a resume compares them)
    return hp


def make_model(algo: str, venv: SafeVecEnv, seed: int, hp: dict[str, Any]) -> BaseAlgorithm:
    """A fresh SB3 model for ``venv`` with hyperparameters ``hp`` (see :func:`default_hyperparameters`)."""
    kw = {k: v for k, v in hp.items() if k not in ("num_envs", "net_arch")}
    policy_kwargs = {"net_arch": list(hp.get("net_arch", [64, 64]))}
    if algo == "ppo" and kw.get("batch_size", 64) > kw.get("n_steps", 2048) * venv.num_envs:
        kw["batch_size"] = kw["n_steps"] * venv.num_envs
    return ALGOS[algo]("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, policy_kwargs=policy_kwargs, **kw)


def load_model(algo: str, path: Any, venv: SafeVecEnv | None = None, force_reset: bool = True) -> BaseAlgorithm:
    """Load a saved SB3 model (``path``: the ``.zip`` or a file object); ``force_reset=False`` keeps its last
    observation (a bit-exact resume restores the environments' state too)."""
    return ALGOS[algo].load(path, env=venv, device="cpu", force_reset=force_reset)


def sb3_policy(model: BaseAlgorithm) -> Callable[[torch.Tensor], torch.Tensor]:
    """Deterministic evaluation policy ``obs [E, k] -> actions [E, m]`` of an SB3 model."""

    def policy(obs: torch.Tensor) -> torch.Tensor:
        a, _ = model.predict(obs.detach().cpu().numpy().astype(np.float32), deterministic=True)
        return torch.as_tensor(np.clip(a, -1.0, 1.0), dtype=obs.dtype)

    return policy


class HookCallback(BaseCallback):
    """Calls ``hook(num_timesteps) -> stop`` after every vectorised step (metrics, eval) and
    ``on_rollout_start()`` where a rollout begins: the point where SB3 holds no unsaved state
    (the previous transitions stored, the update done), so a checkpoint there resumes exactly."""

    def __init__(self, hook: Callable[[int], bool], on_rollout_start: Callable[[], None] | None = None):
        super().__init__()
        self.hook = hook
        self.rollout_start = on_rollout_start

    def _on_step(self) -> bool:
        return not self.hook(int(self.num_timesteps))

    def _on_rollout_start(self) -> None:
        if self.rollout_start is not None:
            self.rollout_start()
