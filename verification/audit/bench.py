"""``reachsafe bench audit``: audit throughput (steps per second) on a synthetic rollout.

Simulates ``--episodes`` x ``--steps`` on a system with the published set (uniform initial
states in P, uniform noise in W) and times :func:`verification.audit.audit` (all four
checks, JSON summary; the artifact re-check and the HTML report are excluded).

The synthetic rollouts come from :func:`simulate_rollouts`, also used by the tests:

* ``policy="safe"`` (m = 1): the policy proposes ``a_pi ~ U[-1, 1]``; the executed action is
  ``a_pi`` clipped to the closed-form safe interval ``S(x) = [lo, hi]`` shrunk by ``margin``::

      S(x) = {a in [-1, 1] : g_i a <= r_i},  g = A B(x),  r = b - A c(x) - h_W(x),
      lo = max(-1, max_{g_i < 0} r_i / g_i),   hi = min(1, min_{g_i > 0} r_i / g_i);

* ``policy="zero"``: ``a = 0`` (any m; the audit's speed does not depend on its verdict).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from reachsafe.errors import UserError
from reachsafe.repository import repository_root
from reachsafe.rollouts import Rollouts
from reachsafe.setfile import load_set, set_fingerprint
from reachsafe.sets import HPolytope
from reachsafe.sets.rows import safe_action_rows
from reachsafe.systems import get_system

from .checks import audit

__all__ = ["add_arguments", "run_bench", "safe_interval", "simulate_rollouts", "published_set"]


def published_set(system: str) -> Path:
    """``data/published/SYSTEM.json`` of the repository found from the current folder
    (:func:`reachsafe.repository.repository_root`).

    :raises UserError: not inside a repository.
    """
    root = repository_root()
    if root is None:
        raise UserError(f"no repository (a folder with pyproject.toml and data/) found from the current folder, so no "
                        f"published {system} set; pass --set FILE")
    return root / "data" / "published" / f"{system}.json"


def safe_interval(system, A: np.ndarray, b: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float closed form of ``S(x) ∩ U`` for m = 1 at states ``X`` [N, n] (empty when lo > hi)."""
    if system.m != 1:
        raise ValueError(f"closed-form safe interval needs m = 1, {system.name} has m = {system.m}")
    c, B, E = system.affine(X)
    G, r = safe_action_rows(A, b, c, B, E, system.noise_lo, system.noise_hi)
    g = G[:, :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = r / g
    hi = np.minimum(1.0, np.where(g > 0, q, np.inf).min(axis=1))
    lo = np.maximum(-1.0, np.where(g < 0, q, -np.inf).max(axis=1))
    return lo, hi


def _initial_states(sf, n_ep: int, rng: np.random.Generator) -> np.ndarray:
    if sf.zonotope and sf.A.shape[0] > 64:  # rejection from the bounding box is hopeless in 6-D
        c = np.asarray(sf.zonotope["center"], float)
        G = np.asarray(sf.zonotope["generators"], float)
        x = c + rng.uniform(-1, 1, size=(n_ep, G.shape[1])) @ G.T * 0.5
        return x

    return HPolytope(sf.A, sf.b).sample(n_ep, rng)


def simulate_rollouts(sf, episodes: int, steps: int, seed: int = 0, policy: str = "safe", noise: str = "uniform",
                      margin: float = 1e-6, dtype: Any = np.float64, noise_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Arrays of a rollouts file (:mod:`reachsafe.rollouts`) simulated with ``system.step`` (see module docstring).

    :param sf: the set file (its system, ``A``, ``b``; its fingerprint goes into the file).
    :param policy: ``"safe"`` (m = 1) or ``"zero"``.
    :param noise: ``"uniform"`` in W or ``"corners"`` (random vertices of W, adversarial-like).
    :param margin: the executed action keeps this distance to the ends of ``S(x)``.
    :param noise_scale: multiply the noise by this (> 1: noise outside W, for tests).
    :param dtype: storage dtype of states and actions (float32: stored rounded, simulated from
        the rounded state, like a float32 simulator with float64 arithmetic).
    """

    system = get_system(sf.system)
    rng = np.random.default_rng(seed)
    A, b = np.asarray(sf.A, float), np.asarray(sf.b, float)
    n, m, p = system.n, system.m, system.p
    X = np.empty((episodes, steps + 1, n), dtype)
    U = np.empty((episodes, steps, m), dtype)
    Pi = np.empty((episodes, steps, m), dtype)
    x = _initial_states(sf, episodes, rng).astype(dtype).astype(np.float64)
    X[:, 0] = x
    for t in range(steps):
        pa = rng.uniform(-1.0, 1.0, size=(episodes, m))
        if policy == "safe":
            lo, hi = safe_interval(system, A, b, x)
            a = np.clip(pa[:, 0], lo + margin, hi - margin)[:, None]
        elif policy == "zero":
            a = np.zeros((episodes, m))
        else:
            raise ValueError(f"unknown policy {policy!r}")
        a = a.astype(dtype).astype(np.float64)
        if noise == "uniform":
            w = rng.uniform(system.noise_lo, system.noise_hi, size=(episodes, p))
        elif noise == "corners":
            w = np.where(rng.random((episodes, p)) < 0.5, system.noise_lo, system.noise_hi)
        else:
            raise ValueError(f"unknown noise {noise!r}")
        w = w * noise_scale
        x = system.step(x, a, w).astype(dtype).astype(np.float64)
        X[:, t + 1], U[:, t], Pi[:, t] = x, a, pa
    rewards = system.reward(X[:, :-1].astype(np.float64), U.astype(np.float64),
                            system.context_from_state(X[:, :1].astype(np.float64)))
    return {"states": X, "actions": U, "policy_actions": Pi.astype(dtype), "rewards": np.asarray(rewards, dtype),
            "system": np.array(sf.system), "set_fingerprint": np.array(set_fingerprint(sf)),
            "model_fingerprint": np.array(system.fingerprint), "noise": np.array(noise)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system", default="pendulum", choices=["pendulum", "quadrotor"],
                   help="system with its published set (default pendulum; quadrotor: 11702 facets, zero policy)")
    p.add_argument("--set", dest="setfile", default=None, metavar="FILE",
                   help="set file to audit against (default: the system's published set)")
    p.add_argument("--episodes", type=int, default=1000, help="episodes (default 1000)")
    p.add_argument("--steps", type=int, default=240, help="steps per episode (default 240)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions, best reported (default 3)")


def run_bench(args: argparse.Namespace) -> int:
    """Print the audit's steps per second (best of ``--repeat``), excluding HTML and re-check."""

    if args.episodes < 1 or args.steps < 1 or args.repeat < 1:
        raise UserError("--episodes, --steps and --repeat must be >= 1")
    sf = load_set(args.setfile or published_set(args.system), system=args.system)
    policy = "safe" if get_system(args.system).m == 1 else "zero"  # the closed-form safe interval needs m = 1
    t0 = time.perf_counter()
    d = simulate_rollouts(sf, args.episodes, args.steps, seed=0, policy=policy)
    sim_s = time.perf_counter() - t0
    ro = Rollouts(states=d["states"], actions=d["actions"], policy_actions=d["policy_actions"], system=args.system,
                  set_fingerprint=str(d["set_fingerprint"]), model_fingerprint=str(d["model_fingerprint"]),
                  noise="uniform", rewards=d["rewards"])
    audit(ro, sf, recheck=False)  # warm-up: compiles the model, caches lambdified functions
    best, res = np.inf, None
    for _ in range(args.repeat):
        t = time.perf_counter()
        res = audit(ro, sf, recheck=False)
        res.to_json()
        best = min(best, time.perf_counter() - t)
    steps = args.episodes * args.steps
    print(f"system        {args.system} ({sf.A.shape[0]} facets, policy {policy})")
    print(f"rollout       {args.episodes} episodes x {args.steps} steps = {steps} steps (simulated in {sim_s:.1f} s)")
    print(f"audit time    {best:.3f} s (best of {args.repeat}; checks 2-4 + JSON summary, no HTML, no re-check)")
    print(f"throughput    {steps / best:,.0f} steps/s")
    print(
        "verdict       "
        + ("all steps certified" if res.steps_ok else f"{sum(c.failed for c in res.checks)} failing items")
    )
    return 0
