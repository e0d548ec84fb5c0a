"""Evaluation protocol shared by SHAC and the baselines.

``E`` episodes run in parallel in one :class:`~training.env.SafeEnv` with ``E`` environments,
each for the full episode length ``T`` (240), with the deterministic policy.  The episodes
start from fixed seeded initial states (uniform in ``P``, or ``P ∩ I`` with an initial set)
and noise is ``uniform`` in W or ``adversarial`` (see :mod:`training.env`).

The result is a :class:`reachsafe.rollouts.Rollouts` (the rollouts contract, also read by the
audit) with the trainer's per-step flags ``intervened``, ``outside_P`` and ``outside_X``
(successor of step t).  Run directories and their evaluation live in :mod:`training.runner`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from reachsafe.rollouts import Rollouts

from .env import SafeEnv

__all__ = ["run_episodes", "Policy"]

Policy = Callable[[Tensor], Tensor]  # observations [E, k] -> actions [E, m] in [-1, 1]


@torch.no_grad()
def run_episodes(env: SafeEnv, policy: Policy, seed: int, set_fingerprint: str = "unknown") -> Rollouts:
    """One full episode per environment of ``env`` (``E = env.num_envs``), deterministic ``policy``.

    :param env: evaluation environment; it is reseeded with ``seed`` (same initial states and
        noise for every call with the same seed).
    :param policy: ``obs [E, k] -> actions [E, m]``.
    :param set_fingerprint: :func:`reachsafe.setfile.set_fingerprint` of the set in use (recorded).
    """
    E, T = env.num_envs, env.episode_length
    obs = env.reseed(seed)
    states = np.empty((E, T + 1, env.n))
    actions = np.empty((E, T, env.m))
    pol = np.empty((E, T, env.m))
    rewards = np.empty((E, T))
    intervened = np.zeros((E, T), dtype=bool)
    out_P = np.zeros((E, T), dtype=bool)
    out_X = np.zeros((E, T), dtype=bool)
    fallbacks = 0
    for t in range(T):
        states[:, t] = env.x.detach().double().cpu().numpy()
        a = policy(obs).to(env.dtype).clamp(-1.0, 1.0)
        res = env.step(a)
        pol[:, t] = res.policy_action.detach().double().cpu().numpy()
        actions[:, t] = res.action.detach().double().cpu().numpy()
        rewards[:, t] = res.reward.detach().double().cpu().numpy()
        intervened[:, t] = res.intervened.cpu().numpy()
        out_P[:, t] = res.outside_P.cpu().numpy()
        out_X[:, t] = res.outside_X.cpu().numpy()
        fallbacks += res.fallbacks
        obs = res.obs
    states[:, T] = res.next_state.detach().double().cpu().numpy()
    return Rollouts(states=states, actions=actions, policy_actions=pol, rewards=rewards, system=env.system.name,
                    set_fingerprint=set_fingerprint, model_fingerprint=env.system.fingerprint, noise=env.noise,
                    intervened=intervened, outside_P=out_P, outside_X=out_X, fallbacks=fallbacks,
                    extra={"noise_lo": env.system.noise_lo, "noise_hi": env.system.noise_hi})
