"""``reachsafe bench training``: wall-time overhead of the safeguards inside SHAC.

Runs SHAC with the paper's hyperparameters for the same number of environment steps and
the same seed, once unsafeguarded and once per safeguard, in one process, and prints the
training wall time (evaluation excluded) and its ratio to the unsafeguarded run.  The
environment, policy and critic are identical; only the executed action differs.  Like
``reachsafe bench safeguards`` it runs on one torch thread unless ``--threads`` says otherwise,
on ``--device`` (the simulator, the safeguard and the networks; default the CPU), prints the
thread count, the device and the load average, and warns when the load exceeds the number of
cores.

Examples:
  reachsafe bench training
  reachsafe bench training --system pendulum --steps 10240 --safeguards projection,raymask
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from reachsafe.commands._common import format_table
from reachsafe.errors import UserError
from reachsafe.safeguard_kinds import SHIELDING_KIND_NAMES

__all__ = ["add_arguments", "run_bench", "bench_training"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system", default="pendulum", help="system (default: %(default)s)")
    p.add_argument("--set", dest="set_path", metavar="FILE", help="set in use (default: as 'reachsafe train')")
    p.add_argument("--steps", type=int, default=10_240, help="env steps per run (default: %(default)s)")
    p.add_argument("--safeguards", default=",".join(SHIELDING_KIND_NAMES),
                   help="comma-separated safeguards compared with 'none' (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default: %(default)s, comparable on a shared machine)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3,
                   help="interleaved rounds; each variant keeps its fastest (default: %(default)s)")


def bench_training(system: str = "pendulum", set_path: str | None = None, steps: int = 10_240,
                   safeguards: tuple[str, ...] | None = None, seed: int = 0,
                   threads: int = 1, repeats: int = 3, device: str = "cpu") -> list[dict[str, Any]]:
    """SHAC runs per safeguard (``"none"`` first); rows with wall time and ratio to ``"none"``.

    The variants are run interleaved, ``repeats`` rounds of one run each, and each keeps
    its fastest round: load from other processes only ever slows a run down, so the minimum
    is the best estimate of the undisturbed time, and interleaving exposes every variant to
    the same load.  CPU time of the process (``time.process_time``) is reported too.  On a CUDA
    ``device`` every iteration's work is queued on the device and the clock stops after
    ``torch.cuda.synchronize``.  ``safeguards``: default every kind that shields
    (:data:`reachsafe.safeguard_kinds.SHIELDING_KIND_NAMES`).
    """

    import torch  # lazy: torch, kept off `bench training --help`

    from .runner import build_env, load_sets, make_config  # lazy: torch, kept off `bench training --help`
    from .shac import SHACAgent, SHACConfig, train_shac

    torch.set_num_threads(threads)
    if safeguards is None:
        safeguards = tuple(SHIELDING_KIND_NAMES)
    kinds = ("none",) + tuple(k for k in safeguards if k != "none")
    best: dict[str, dict[str, Any]] = {}
    sets = None
    for _ in range(max(1, int(repeats))):
        for kind in kinds:
            cfg, _ = make_config(system, "shac", kind, set_path=set_path, seed=seed, steps=steps, device=device)
            sets = sets or load_sets(cfg)
            env = build_env(cfg, int(cfg.hyperparameters["num_envs"]), "uniform", seed, sets, device=device)
            torch.manual_seed(seed)
            agent = SHACAgent(env.obs_dim, env.m, SHACConfig.from_dict(cfg.hyperparameters), device=device)
            t0, c0 = time.perf_counter(), time.process_time()
            done = train_shac(agent, env, steps)
            if env.device.type == "cuda":
                torch.cuda.synchronize(env.device)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            row = best.get(kind)
            if row is None or wall < row["wall_s"]:
                best[kind] = {"safeguard": kind, "env_steps": done, "wall_s": wall, "steps_per_s": done / wall,
                              "cpu_s": min(cpu, row["cpu_s"]) if row else cpu,
                              "interventions": env.total_interventions, "violations_P": env.total_violations_P,
                              "set": cfg.set_path}
            else:
                row["cpu_s"] = min(row["cpu_s"], cpu)
    rows = [best[k] for k in kinds]
    base, base_cpu = rows[0]["wall_s"], rows[0]["cpu_s"]
    for r in rows:
        r["ratio"] = r["wall_s"] / base
        r["cpu_ratio"] = r["cpu_s"] / base_cpu
    return rows


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of ``reachsafe bench training`` (arguments of :func:`add_arguments`)."""

    import torch  # lazy: torch, kept off `bench training --help`

    from reachsafe.safeguards.bench import machine_line, resolve_device  # lazy: torch, kept off `bench training --help`

    kinds = tuple(k.strip() for k in str(args.safeguards).split(",") if k.strip())
    if int(args.repeats) < 1:
        raise UserError(f"--repeats must be >= 1, got {args.repeats}")
    if int(args.threads) < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(int(args.threads))
    device = resolve_device(str(args.device))
    line, warn = machine_line(device)
    print(line)
    if warn:
        print(warn)
    rows = bench_training(args.system, args.set_path, int(args.steps), kinds, int(args.seed), int(args.threads),
                          int(args.repeats), str(device))
    print(f"SHAC on {args.system}, {rows[0]['env_steps']} env steps per run, seed {args.seed}, set {rows[0]['set']}, "
          f"fastest of {args.repeats} interleaved rounds")
    table = [[r["safeguard"], str(r["env_steps"]), f"{r['wall_s']:.2f}", f"{r['steps_per_s']:.0f}",
              f"{r['ratio']:.2f}x", f"{r['cpu_ratio']:.2f}x", str(r["interventions"]), str(r["violations_P"])]
             for r in rows]
    print(format_table(table, ["safeguard", "env steps", "wall s", "steps/s", "vs none", "cpu vs none",
                               "interventions", "violations"]))
    worst = max(r["ratio"] for r in rows)
    print(f"largest overhead: {worst:.2f}x the unsafeguarded run (target <= 1.2x)")
    return 0
