"""Evaluate a trained run: load its last checkpoint, run N episodes with the deterministic
policy, print return mean +- std, interventions and violations, and write the rollouts file
RUN_DIR/evaluate-NOISE.npz (replacing an earlier evaluation; audit it with
'reachsafe audit RUN_DIR/evaluate-uniform.npz --set SETFILE').

The run's final rollouts written by training (RUN_DIR/rollouts.npz, rollouts-adversarial.npz:
what 'reachsafe audit RUN_DIR' reads) are never replaced unless named with --out and
--overwrite; any other existing --out file needs --overwrite too.

Exit code 1 if a safeguarded run left the set (a violation), 0 otherwise.

Examples:
  reachsafe evaluate runs/pend-rm
  reachsafe evaluate runs/pend-rm --episodes 64 --noise adversarial
  reachsafe evaluate runs/pend-rm --out runs/pend-rm/eval-64.npz --episodes 64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserError
from ._common import check_output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out of a 'reachsafe train' run")
    p.add_argument("--episodes", type=int, default=16, metavar="N", help="episodes (default 16)")
    p.add_argument(
        "--noise", default="uniform", choices=["uniform", "adversarial"], help="noise mode (default uniform)"
    )
    p.add_argument("--out", metavar="FILE", help="rollouts file (default RUN_DIR/evaluate-NOISE.npz)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (the run's own rollouts.npz included: the audit's input)")


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.json); pass the --out of a 'reachsafe train' run")
    target = Path(args.out) if args.out else run_dir / f"evaluate-{args.noise}.npz"
    check_output_path(target, "--out")
    if args.out and target.exists() and not args.overwrite:
        what = " (the run's final rollouts: the audit's input)" if target.name.startswith("rollouts") else ""
        raise UserError(f"--out {target} exists{what}; choose another --out, or replace it with --overwrite")
    from training.runner import evaluate_run  # lazy: training (torch) stays off the CLI start-up path

    s, path = evaluate_run(args.run_dir, args.episodes, args.noise, target, overwrite=args.overwrite)
    cfg = json.loads((Path(args.run_dir) / "config.json").read_text())
    print(f"{cfg['system']} {cfg['algo']} safeguard={cfg['safeguard']}, {args.noise} noise, {s['episodes']} episodes")
    print(f"return        {s['return_mean']:.2f} +- {s['return_std']:.2f}")
    print(f"interventions {s['interventions']} of {s['episodes'] * 240} steps ({100 * s['intervention_rate']:.1f}%)")
    print(f"violations    {s['violations_P']} outside the set, {s['violations_X']} outside X")
    print(f"rollouts      {path}")
    return 1 if (cfg["safeguard"] != "none" and s["violations_P"]) else 0
