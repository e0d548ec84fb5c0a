"""``ShieldVecEnv``: ``N`` shielded copies of a user's environment as a stable-baselines3 ``VecEnv``.

::

    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import VecMonitor
    venv = VecMonitor(ShieldVecEnv([lambda: gym.make("Pendulum-v1")] * 4, "data/pendulum_v1.json"))
    SAC("MlpPolicy", venv).learn(10_000)

The stable-baselines3 conventions hold: a finished environment resets within the same
``step`` call, its last observation is ``info["terminal_observation"]`` and
``info["TimeLimit.truncated"]`` tells a time limit from a termination (so the algorithms
bootstrap correctly).  The safeguard runs once per step for all ``N`` states (:mod:`.lanes`).
Keyword arguments are those of :class:`~.shield.Shield`.  Seeds: ``venv.seed(s)`` seeds
lane ``i`` with ``s + i`` at the next reset, as ``DummyVecEnv`` does.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env import VecEnv

from .lanes import Lanes, make_envs
from .state import ShieldError

__all__ = ["ShieldVecEnv"]


def _stack(obs: list[Any]) -> Any:
    if isinstance(obs[0], dict):
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    return np.stack(obs)


class ShieldVecEnv(VecEnv):
    """A stable-baselines3 ``VecEnv`` of shielded environments (module docstring).

    :param env_fns: functions making the environments (or the environments themselves).
    :param invariant_set: the certified set file; :param system: the model (default: the set file's).
    :param shield_kw: as :class:`~.shield.Shield`.
    """

    def __init__(self, env_fns: Sequence[Any], invariant_set: Any, system: Any = None, **shield_kw: Any) -> None:
        envs = make_envs(env_fns)
        self.lanes = Lanes(envs, invariant_set, system, same_step=True, **shield_kw)
        self.envs = envs
        super().__init__(len(envs), envs[0].observation_space, envs[0].action_space)
        self._actions: np.ndarray | None = None

    @property
    def guard(self) -> Any:
        """The batched safeguard (:class:`~.guard.Guard`)."""
        return self.lanes.guard

    def reset(self) -> Any:
        obs, infos = self.lanes.reset(list(self._seeds), [o or None for o in self._options])
        self.reset_infos = infos
        self._reset_seeds()
        self._reset_options()
        return _stack(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        res = self.lanes.step(self._actions)
        dones = res.terminated | res.truncated
        infos = []
        for i in range(self.num_envs):
            info = dict(res.infos[i])
            if i in res.final:
                info["terminal_observation"] = res.final[i][0]
                info["TimeLimit.truncated"] = bool(res.truncated[i] and not res.terminated[i])
                self.reset_infos[i] = res.reset_infos[i]
            infos.append(info)
        return _stack(res.obs), res.rewards.astype(np.float32), dones, infos

    @property
    def recorder(self) -> Any:
        """The complete episodes of every environment (``record=True``): ``.save(path)``, ``.rollouts()``."""
        if self.lanes.recorder is None:
            raise ShieldError("this ShieldVecEnv does not record; create it with record=True")
        return self.lanes.recorder

    def close(self) -> None:
        for e in self.envs:
            e.close()

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [self.envs[i].get_wrapper_attr(attr_name) for i in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for i in self._indices(indices):
            self.envs[i].set_wrapper_attr(attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        return [self.envs[i].get_wrapper_attr(method_name)(*method_args, **method_kwargs)
                for i in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [is_wrapped(self.envs[i], wrapper_class) for i in self._indices(indices)]
