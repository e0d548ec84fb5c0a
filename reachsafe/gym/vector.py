"""``ShieldVectorEnv``: ``N`` shielded copies of a user's environment as a ``gymnasium.vector.VectorEnv``.

::

    envs = ShieldVectorEnv([lambda: gym.make("Pendulum-v1")] * 8, "data/pendulum_v1.json")
    obs, info = envs.reset(seed=0)           # obs [8, 3]; lane i seeded 0 + i
    obs, r, term, trunc, info = envs.step(envs.action_space.sample())
    info["intervened"], info["policy_action"]  # [8] and [8, 1], with gymnasium's "_key" masks

Like ``gymnasium.vector.SyncVectorEnv`` it takes environment factories (or instances) and
steps them in this process, but the safeguard runs once per step for all ``N`` states
(:mod:`.lanes`).  ``autoreset_mode``: ``"next_step"`` (gymnasium's default) or
``"same_step"`` (the final observation and info are in ``info["final_obs"]`` and
``info["final_info"]``).  Keyword arguments are those of :class:`~.shield.Shield`;
``record=True`` keeps complete episodes of every lane in :attr:`recorder`.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from .lanes import Lanes, make_envs
from .state import ShieldError

__all__ = ["ShieldVectorEnv"]


class ShieldVectorEnv(VectorEnv):
    """A ``gymnasium.vector.VectorEnv`` of shielded environments (module docstring).

    :param env_fns: functions making the environments (or the environments themselves).
    :param invariant_set: the certified set file (path or SetFile); :param system: the model
        (default: the set file's).
    :param autoreset_mode: ``"next_step"`` (default) or ``"same_step"``.
    :param copy: return copies of the observation batch (as ``SyncVectorEnv``).
    :param shield_kw: ``state_fn``, ``set_state_fn``, ``obs_fn``, ``start``, ``safeguard``,
        ``outside``, ``record``, ``tighten`` (as :class:`~.shield.Shield`; functions get one
        environment).
    """

    def __init__(self, env_fns: Sequence[Any], invariant_set: Any, system: Any = None, *,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP, copy: bool = True,
                 **shield_kw: Any) -> None:
        super().__init__()
        modes = {
            "next_step": AutoresetMode.NEXT_STEP,
            "same_step": AutoresetMode.SAME_STEP,
            AutoresetMode.NEXT_STEP.value: AutoresetMode.NEXT_STEP,
            AutoresetMode.SAME_STEP.value: AutoresetMode.SAME_STEP,
        }
        key = autoreset_mode.value if isinstance(autoreset_mode, AutoresetMode) else str(autoreset_mode)
        if key not in modes:
            raise ShieldError(f"autoreset_mode must be 'next_step' or 'same_step' (AutoresetMode.NEXT_STEP or "
                              f"SAME_STEP), got {autoreset_mode!r}")
        mode = modes[key]
        envs = make_envs(env_fns)
        self.lanes = Lanes(envs, invariant_set, system, same_step=mode == AutoresetMode.SAME_STEP, **shield_kw)
        self.envs, self.num_envs, self.copy, self.autoreset_mode = envs, len(envs), copy, mode
        self.metadata = dict(envs[0].metadata, autoreset_mode=mode)
        self.render_mode = envs[0].render_mode
        self.single_action_space, self.single_observation_space = envs[0].action_space, envs[0].observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._obs = create_empty_array(self.single_observation_space, n=self.num_envs, fn=np.zeros)

    @property
    def guard(self) -> Any:
        """The batched safeguard (:class:`~.guard.Guard`)."""
        return self.lanes.guard

    def _batch(self, obs: list[Any]) -> Any:
        self._obs = concatenate(self.single_observation_space, obs, self._obs)  # type: ignore[arg-type]
        return deepcopy(self._obs) if self.copy else self._obs

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        seeds = [None] * self.num_envs if seed is None else (
            [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed))
        if len(seeds) != self.num_envs:
            raise ShieldError(f"need {self.num_envs} seeds, got {len(seeds)}")
        obs, infos = self.lanes.reset(seeds, options)
        out: dict[str, Any] = {}
        for i, inf in enumerate(infos):
            out = self._add_info(out, inf, i)
        return self._batch(obs), out

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        res = self.lanes.step(actions)
        out: dict[str, Any] = {}
        for i in range(self.num_envs):
            if i in res.final:
                final_obs, final_info = res.final[i]
                out = self._add_info(out, {"final_obs": final_obs, "final_info": final_info}, i)
                out = self._add_info(out, res.reset_infos[i], i)
            else:
                out = self._add_info(out, res.infos[i], i)
        return self._batch(res.obs), res.rewards.copy(), res.terminated.copy(), res.truncated.copy(), out

    @property
    def recorder(self) -> Any:
        """The complete episodes of every environment (``record=True``): ``.save(path)``, ``.rollouts()``."""
        if self.lanes.recorder is None:
            raise ShieldError("this ShieldVectorEnv does not record; create it with record=True")
        return self.lanes.recorder

    def close_extras(self, **kwargs: Any) -> None:
        for e in self.envs:
            e.close()
