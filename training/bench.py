"""``reachsafe bench training``: wall-time overhead of the safeguards inside SHAC.

Runs SHAC with the paper's hyperparameters for the same number of environment steps and
the same seed, once unsafeguarded and once per safeguard, in one process, and prints the
training wall time (evaluation excluded) and its ratio to the unsafeguarded run.  The
environment, policy and critic are identical; only the executed action differs.

Examples:
  reachsafe bench training
  reachsafe bench training --system pendulum --steps 10240 --safeguards projection,raymask
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_arguments", "run_bench", "bench_training"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system", default="pendulum", help="system (default: %(default)s)")
    p.add_argument("--set", dest="set_path", metavar="FILE", help="set in use (default: as 'reachsafe train')")
    p.add_argument("--steps", type=int, default=10_240, help="env steps per run (default: %(default)s)")
    p.add_argument("--safeguards", default="projection,raymask,raymask-tanh",
                   help="comma-separated safeguards compared with 'none' (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")


def bench_training(system: str = "pendulum", set_path: str | None = None, steps: int = 10_240,
                   safeguards: tuple[str, ...] = ("projection", "raymask", "raymask-tanh"), seed: int = 0,
                   threads: int = 1) -> list[dict[str, Any]]:
    """One SHAC run per safeguard (``"none"`` first); rows with wall time and ratio to ``"none"``."""
    import time

    import torch

    from .runner import build_env, load_sets, make_config
    from .shac import SHACAgent, SHACConfig, train_shac

    torch.set_num_threads(threads)
    rows: list[dict[str, Any]] = []
    sets = None
    for kind in ("none",) + tuple(k for k in safeguards if k != "none"):
        cfg, _ = make_config(system, "shac", kind, set_path=set_path, seed=seed, steps=steps)
        sets = sets or load_sets(cfg)
        env = build_env(cfg, int(cfg.hyperparameters["num_envs"]), "uniform", seed, sets)
        torch.manual_seed(seed)
        agent = SHACAgent(env.obs_dim, env.m, SHACConfig.from_dict(cfg.hyperparameters))
        t0 = time.perf_counter()
        done = train_shac(agent, env, steps)
        wall = time.perf_counter() - t0
        rows.append({"safeguard": kind, "env_steps": done, "wall_s": wall, "steps_per_s": done / wall,
                     "interventions": env.total_interventions, "violations_P": env.total_violations_P,
                     "set": cfg.set_path})
    base = rows[0]["wall_s"]
    for r in rows:
        r["ratio"] = r["wall_s"] / base
    return rows


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of ``reachsafe bench training`` (arguments of :func:`add_arguments`)."""
    from reachsafe.commands._common import format_table

    kinds = tuple(k.strip() for k in str(args.safeguards).split(",") if k.strip())
    rows = bench_training(args.system, args.set_path, int(args.steps), kinds, int(args.seed), int(args.threads))
    print(f"SHAC on {args.system}, {rows[0]['env_steps']} env steps per run, seed {args.seed}, set {rows[0]['set']}")
    table = [[r["safeguard"], str(r["env_steps"]), f"{r['wall_s']:.1f}", f"{r['steps_per_s']:.0f}",
              f"{r['ratio']:.2f}x", str(r["interventions"]), str(r["violations_P"])] for r in rows]
    print(format_table(table, ["safeguard", "env steps", "wall s", "steps/s", "vs none", "interventions",
                               "violations"]))
    worst = max(r["ratio"] for r in rows)
    print(f"largest overhead: {worst:.2f}x the unsafeguarded run (target <= 1.5x)")
    return 0
