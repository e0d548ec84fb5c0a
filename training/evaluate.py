"""Evaluation protocol shared by SHAC and the baselines, and the rollouts file.

``E`` episodes run in parallel in one :class:`~training.env.SafeEnv` with ``E`` environments,
each for the full episode length ``T`` (240), with the deterministic policy.  The episodes
start from fixed seeded initial states (uniform in ``P``, or ``P ∩ I`` with an initial set)
and noise is ``uniform`` in W or ``adversarial`` (see :mod:`training.env`).

Rollouts file (``.npz``, DESIGN.md): ``states [E, T+1, n]``, ``actions [E, T, m]`` (executed,
after the safeguard), ``policy_actions [E, T, m]``, ``rewards [E, T]``, ``returns [E]``,
``intervened [E, T]``, ``outside_P [E, T]``, ``outside_X [E, T]`` (successor of step t),
and the metadata ``system``, ``set_fingerprint``, ``model_fingerprint``, ``noise``,
``noise_lo``, ``noise_hi``, ``safeguard``, ``algo``, ``set_path``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from .env import SafeEnv

__all__ = ["Rollouts", "run_episodes", "save_rollouts", "load_rollouts", "Policy"]

Policy = Callable[[Tensor], Tensor]  # observations [E, k] -> actions [E, m] in [-1, 1]


@dataclass
class Rollouts:
    """``E`` complete episodes (arrays as in the module docstring)."""

    states: np.ndarray
    actions: np.ndarray
    policy_actions: np.ndarray
    rewards: np.ndarray
    intervened: np.ndarray
    outside_P: np.ndarray
    outside_X: np.ndarray
    fallbacks: int = 0

    @property
    def returns(self) -> np.ndarray:
        return self.rewards.sum(axis=1)

    def summary(self) -> dict[str, float]:
        """Return mean/std, intervention rate and counts, violation counts (steps with successor outside P / X)."""
        r = self.returns
        return {
            "episodes": int(r.shape[0]),
            "return_mean": float(r.mean()),
            "return_std": float(r.std()),
            "interventions": int(self.intervened.sum()),
            "intervention_rate": float(self.intervened.mean()),
            "violations_P": int(self.outside_P.sum()),
            "violations_X": int(self.outside_X.sum()),
            "fallbacks": int(self.fallbacks),
        }


@torch.no_grad()
def run_episodes(env: SafeEnv, policy: Policy, seed: int) -> Rollouts:
    """One full episode per environment of ``env`` (``E = env.num_envs``), deterministic ``policy``.

    :param env: evaluation environment; it is reseeded with ``seed`` (same initial states and
        noise for every call with the same seed).
    :param policy: ``obs [E, k] -> actions [E, m]``.
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
        states[:, t] = env.x.detach().double().numpy()
        a = policy(obs).to(env.dtype).clamp(-1.0, 1.0)
        res = env.step(a)
        pol[:, t] = res.policy_action.double().numpy()
        actions[:, t] = res.action.detach().double().numpy()
        rewards[:, t] = res.reward.double().numpy()
        intervened[:, t] = res.intervened.numpy()
        out_P[:, t] = res.outside_P.numpy()
        out_X[:, t] = res.outside_X.numpy()
        fallbacks += res.fallbacks
        obs = res.obs
    states[:, T] = res.next_state.detach().double().numpy()
    return Rollouts(states, actions, pol, rewards, intervened, out_P, out_X, fallbacks)


def save_rollouts(path: str | Path, ro: Rollouts, meta: dict[str, Any]) -> Path:
    """Write the rollouts file atomically (``meta``: system, set/model fingerprints, noise, ...)."""
    from reachsafe.setfile import atomic_write_bytes

    arrays: dict[str, Any] = dict(states=ro.states, actions=ro.actions, policy_actions=ro.policy_actions,
                                  rewards=ro.rewards, returns=ro.returns, intervened=ro.intervened,
                                  outside_P=ro.outside_P, outside_X=ro.outside_X)
    for k, v in meta.items():
        arrays[k] = np.asarray(v) if v is not None else np.asarray("")
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_rollouts(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a rollouts file (strings as 0-d arrays)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def evaluate_run(run_dir: str | Path, episodes: int = 16, noise: str = "uniform",
                 out: str | Path | None = None) -> tuple[dict[str, float], Path]:
    """Evaluate the last checkpoint of a run directory; write its rollouts file.

    :param run_dir: the ``--out`` of a ``reachsafe train`` run.
    :param episodes: number of episodes ``E`` (run in parallel).
    :param noise: ``"uniform"`` or ``"adversarial"``.
    :param out: rollouts file (default ``RUN_DIR/rollouts.npz``, ``RUN_DIR/rollouts-adversarial.npz``).
    :returns: the summary (:meth:`Rollouts.summary`) and the rollouts path.
    """
    from reachsafe.errors import UserError

    from .env import NOISE_MODES
    from .runner import EVAL_SEED, RunConfig, RunDir, build_env, load_policy, load_sets, set_fingerprint

    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    if noise not in NOISE_MODES:
        raise UserError(f"unknown --noise {noise!r}; choose one of {', '.join(NOISE_MODES)}")
    run = RunDir(run_dir)
    stored = run.read_config()
    cfg = RunConfig(**{k: stored[k] for k in RunConfig.__dataclass_fields__ if k in stored})
    sets = load_sets(cfg)
    fp = set_fingerprint(sets[0])
    if stored.get("set_fingerprint") not in (None, fp):
        raise UserError(f"the set file {cfg.set_path} changed since the run was trained (fingerprint differs); "
                        "restore it or retrain")
    torch.set_num_threads(int(cfg.threads))
    env = build_env(cfg, episodes, noise, EVAL_SEED, sets, dtype=torch.float64)
    policy = load_policy(run, cfg)
    ro = run_episodes(env, policy, EVAL_SEED)
    meta = {"system": cfg.system, "set_fingerprint": fp, "model_fingerprint": env.system.fingerprint,
            "noise": noise, "noise_lo": env.system.noise_lo, "noise_hi": env.system.noise_hi,
            "safeguard": cfg.safeguard, "algo": cfg.algo, "set_path": cfg.set_path}
    path = Path(out) if out is not None else run.rollouts_path(noise)
    save_rollouts(path, ro, meta)
    return ro.summary(), path
