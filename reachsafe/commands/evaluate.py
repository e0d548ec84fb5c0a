"""Evaluate a trained run: load its last checkpoint, run N episodes with the deterministic
policy, print return mean +- std, interventions and violations, and write the rollouts file
(RUN_DIR/rollouts.npz for uniform noise, RUN_DIR/rollouts-adversarial.npz for adversarial).

Exit code 1 if a safeguarded run left the set (a violation), 0 otherwise.

Examples:
  reachsafe evaluate runs/pend-rm
  reachsafe evaluate runs/pend-rm --episodes 64 --noise adversarial
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out of a 'reachsafe train' run")
    p.add_argument("--episodes", type=int, default=16, metavar="N", help="episodes (default 16)")
    p.add_argument("--noise", default="uniform", choices=["uniform", "adversarial"], help="noise mode (default uniform)")
    p.add_argument("--out", metavar="FILE", help="rollouts file (default inside RUN_DIR)")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from training.runner import evaluate_run

    s, path = evaluate_run(args.run_dir, args.episodes, args.noise, args.out)
    cfg = json.loads((Path(args.run_dir) / "config.json").read_text())
    print(f"{cfg['system']} {cfg['algo']} safeguard={cfg['safeguard']}, {args.noise} noise, {s['episodes']} episodes")
    print(f"return        {s['return_mean']:.2f} +- {s['return_std']:.2f}")
    print(f"interventions {s['interventions']} of {s['episodes'] * 240} steps ({100 * s['intervention_rate']:.1f}%)")
    print(f"violations    {s['violations_P']} outside the set, {s['violations_X']} outside X")
    print(f"rollouts      {path}")
    return 1 if (cfg["safeguard"] != "none" and s["violations_P"]) else 0
