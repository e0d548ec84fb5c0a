"""``N`` copies of a user's environment driven together, with one batched safeguard call per step.

:class:`Lanes` is the engine behind both vectorised shields (:mod:`.vector` for
``gymnasium.vector``, :mod:`.sb3` for stable-baselines3).  Lane ``i`` is environment
``envs[i]``; a step:

1. one :meth:`Guard.act <.guard.Guard.act>` call for the states ``X [k, n]`` of the ``k`` lanes
   that step (``[k, m]`` actions in, ``[k, m]`` safe actions out);
2. each environment steps with its safe action (the only per-lane loop: the environments are
   separate objects) and its successor state is read (``state_fn``);
3. one membership test of the successors in P, the record of the ``k`` transitions, and the
   resets of finished lanes.

Resets follow ``same_step``: ``True`` resets a finished lane within the same call and returns
its first observation (the final one is returned separately), as stable-baselines3 and
gymnasium's ``AutoresetMode.SAME_STEP`` expect; ``False`` is gymnasium's default
``NEXT_STEP``: the call after the end resets the lane, ignores its action and returns reward
0.  Either way a lane's new episode starts in P (:mod:`.access`), and the terminal state of
the old one is read *before* the reset, so the recorder keeps every transition.

Lane ``i`` samples its start states with its own generator, seeded by ``seed + i`` at
``reset(seed)``, the same seed a single :class:`~.shield.Shield` would get: lane ``i`` and a
single shield seeded ``seed + i`` start from the same states.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from ..recorder import RolloutRecorder
from ..sampling import as_generator
from .access import EnvAccess
from .guard import Guard
from .state import ShieldError

__all__ = ["Lanes", "LaneStep", "make_envs"]


def make_envs(env_fns: Sequence[Any]) -> list[gym.Env]:
    """Environments from factories (callables, as ``gymnasium.vector.SyncVectorEnv`` takes) or instances."""
    envs = [f if isinstance(f, gym.Env) else f() for f in env_fns]
    if not envs:
        raise ShieldError("need at least one environment")
    for e in envs:
        if not isinstance(e, gym.Env):
            raise ShieldError(f"expected gymnasium environments or functions making them, got {type(e).__name__}")
    if any(e.action_space != envs[0].action_space for e in envs):
        raise ShieldError("the environments have different action spaces; a vector of shields needs one")
    return envs


class LaneStep:
    """Result of :meth:`Lanes.step`: per-lane lists and ``[N]`` arrays.

    ``obs[i]``: observation after the step (the new episode's first one for a lane reset in
    this call); ``final[i]``: ``(final_obs, final_info)`` of a lane that finished and was reset
    in this call (``same_step``), else absent; ``reset_infos[i]``: the reset's info for those lanes.
    """

    def __init__(self, N: int) -> None:
        self.obs: list[Any] = [None] * N
        self.rewards = np.zeros(N, dtype=np.float64)
        self.terminated = np.zeros(N, dtype=bool)
        self.truncated = np.zeros(N, dtype=bool)
        self.infos: list[dict[str, Any]] = [{} for _ in range(N)]
        self.final: dict[int, tuple[Any, dict[str, Any]]] = {}
        self.reset_infos: dict[int, dict[str, Any]] = {}


class Lanes:
    """``N`` shielded environments (module docstring); keyword arguments as :class:`~.shield.Shield`."""

    def __init__(self, envs: list[gym.Env], invariant_set: Any, system: Any = None, *, same_step: bool,
                 state_fn: Any = None, set_state_fn: Any = None, obs_fn: Any = None, start: str = "sample",
                 safeguard: str = "projection", outside: str = "raise", record: bool = False,
                 tighten: float | None = None) -> None:
        self.envs, self.N, self.same_step = envs, len(envs), bool(same_step)
        self.guard = Guard(invariant_set, system, action_space=envs[0].action_space, safeguard=safeguard,
                           outside=outside, tighten=tighten)
        sysm = self.guard.system
        self.access = EnvAccess(sysm.n, tuple(sysm.state_names), state_fn, set_state_fn, obs_fn, start)
        for e in envs:
            self.access.check_wrappers(e)
        self.recorder = RolloutRecorder(sysm, self.guard.setfile, noise="environment", safeguard=safeguard) \
            if record else None
        self.rngs = [as_generator(None) for _ in envs]
        self.X: np.ndarray | None = None  # [N, n] current states
        self.pending = np.zeros(self.N, dtype=bool)  # NEXT_STEP: lanes that reset on the next call

    def _begin(self, i: int, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset lane ``i`` and start its episode in P; records the start."""
        obs, info = self.envs[i].reset(seed=seed, options=options)
        if seed is not None:
            self.rngs[i] = as_generator(seed)
        x0, obs = self.access.begin(self.envs[i], obs, self.guard, self.rngs[i])
        self.X[i] = x0  # type: ignore[index]  # reset() has allocated X
        if self.recorder is not None:
            self.recorder.start(x0[None], lanes=[i])
        return obs, info

    def reset(self, seeds: Sequence[int | None], options: Any = None) -> tuple[list, list]:
        """Reset every lane (``seeds[i]`` for lane ``i``; ``options``: one dict, or one per lane).

        Returns ``(observations, infos)``, one per lane.
        """
        opts = list(options) if isinstance(options, (list, tuple)) else [options] * self.N
        self.X = np.zeros((self.N, self.guard.n))
        self.pending[:] = False
        out = [self._begin(i, seeds[i], opts[i]) for i in range(self.N)]
        return [o for o, _ in out], [inf for _, inf in out]

    def step(self, u_policy: Any) -> LaneStep:
        """One step of every lane with the policy's actions ``[N, m]`` (environment units)."""
        if self.X is None:
            raise ShieldError("call reset() before step(): the shield needs the environments' start states")
        u = self.guard.actions.check_policy_action(u_policy, self.N)
        res = LaneStep(self.N)
        idx = np.flatnonzero(~self.pending)
        for i in np.flatnonzero(self.pending):  # NEXT_STEP: the lanes that finished last call reset now
            res.obs[i], res.infos[i] = self._begin(int(i))
        self.pending[:] = False
        if idx.size == 0:
            return res
        d = self.guard.act(self.X[idx], u[idx])
        X_next = np.empty((idx.size, self.guard.n))
        for j, i in enumerate(idx):  # the environments step one by one (separate objects)
            res.obs[i], r, te, tr, info = self.envs[i].step(d.u_env[j])
            res.rewards[i], res.terminated[i], res.truncated[i] = float(r), bool(te), bool(tr)
            X_next[j] = self.access.read(self.envs[i])
            res.infos[i] = dict(info, intervened=bool(d.intervened[j]), policy_action=u[i].copy(),
                                action=d.u_env[j].copy(), verified=bool(d.verified[j]))
        outside = ~self.guard.inside(X_next)
        for j, i in enumerate(idx):
            res.infos[i]["outside_P"] = bool(outside[j])
        done = res.terminated[idx] | res.truncated[idx]
        if self.recorder is not None:
            self.recorder.step(X_next, d.a_exec, d.a_pol, res.rewards[idx], done=done, lanes=idx)
        self.X[idx] = X_next
        if outside.any() and self.guard.outside == "raise":
            j = int(np.argmax(outside))
            raise ShieldError(f"environment {int(idx[j])} left the invariant set: state {X_next[j].tolist()} is "
                              f"outside P by {float(self.guard.excess(X_next[j:j + 1])[0]):.3g}; the model does not "
                              "describe this environment (a wrong parameter, or state_fn reads another state). Audit "
                              "the recorded rollouts, or pass outside='fallback' to carry on")
        finished = idx[done]
        if self.same_step:
            for i in finished:
                res.final[int(i)] = (res.obs[i], res.infos[i])
                res.obs[i], res.reset_infos[int(i)] = self._begin(int(i))
        else:
            self.pending[finished] = True
        return res
