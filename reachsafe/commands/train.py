"""Train a policy (SHAC through the differentiable simulator, or PPO / SAC from stable-baselines3)
with a safeguard inside the environment; everything goes to one run directory.

The run directory holds config.json, metrics.csv, checkpoint/, rollouts.npz (final
evaluation, uniform noise), rollouts-adversarial.npz, summary.json and curve.png.
Interrupted runs continue with --resume (same flags; --steps may grow): checkpoints hold the
networks, optimisers, the environments' state and every random state, so a resumed run
reproduces the uninterrupted one bit for bit (wall times aside).

Default --set: for a built-in system data/SYSTEM.json of the repository the current folder is in
(the nearest folder above holding pyproject.toml and data/), else sets/SYSTEM.json (what
compute-invariant writes by default), else the repository's data/published/SYSTEM.json if the
system's profile marks it invariant (the pendulum's); for a model file sets/SYSTEM.json, else
data/SYSTEM.json in the current folder.
The set's certificate is checked for its binding to the proof artifact (it exists, it is the
recorded one, it is for this A, b and model): a set whose certificate does not match is refused
(exit 2) unless --allow-unverified-set; a set that was never certified is used with a warning
on stderr.
Default budget and hyperparameters come from the system's profile (the paper's tuned values for
pendulum and quadrotor; generic defaults for a model without a profile); see config.json.

Examples:
  reachsafe train pendulum --algo shac --safeguard raymask --seed 0 --out runs/pend-rm
  reachsafe train pendulum --safeguard projection --init-set data/published/pendulum.json --seed 1 --out runs/p1
  reachsafe train pendulum --safeguard raymask --device cuda --seed 0 --out runs/pend-rm-cuda
  reachsafe train quadrotor --safeguard raymask --set data/quadrotor.json \\
      --init-set data/published/quadrotor.json --seed 0 --out runs/quad-rm
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from ..safeguard_kinds import KIND_NAMES
from ..setfile import load_set
from ..systems import get_system, is_model_path
from ._common import check_output_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("system", help="system name (see 'reachsafe systems') or the path of a model file (.py)")
    p.add_argument("--algo", default="shac", choices=["shac", "ppo", "sac"], help="learning algorithm (default shac)")
    p.add_argument("--safeguard", default="none", choices=KIND_NAMES,
                   help="safeguard applied to every action inside the environment (default none)")
    p.add_argument(
        "--passthrough", action="store_true", help="SHAC: straight-through (identity) gradient of the safeguard"
    )
    p.add_argument(
        "--regularize", type=float, default=0.0, metavar="C", help="SHAC: add C * |a_s - a|^2 to the actor loss"
    )
    p.add_argument(
        "--set",
        dest="set_path",
        metavar="FILE",
        help="invariant set in use (default data/SYSTEM.json, else sets/SYSTEM.json)",
    )
    p.add_argument("--init-set", dest="init_set_path", metavar="FILE",
                   help="draw initial states uniformly in this set intersected with --set (e.g. a published set)")
    p.add_argument("--init-sampling", default="uniform", choices=["uniform", "zonotope"],
                   help="initial states uniform in --init-set ∩ --set (default), or 'zonotope': c + G beta with beta "
                        "uniform in [-1, 1]^p from the --init-set's zonotope, restricted to --set (the paper's code)")
    p.add_argument("--seed", type=int, required=True, metavar="N", help="random seed")
    p.add_argument("--steps", type=int, metavar="N",
                   help="budget in environment steps (default: the system profile's, 100k pendulum, 200k quadrotor; "
                        "else 100k)")
    p.add_argument(
        "--out", required=True, metavar="RUN_DIR", help="run directory (must be new or empty unless --resume)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--allow-unverified-set", action="store_true",
                   help="use a --set whose certificate does not match its proof artifact (refused by default; "
                        "the safeguard then guarantees nothing)")
    p.add_argument(
        "--eval-every", type=int, metavar="N", help="evaluate and checkpoint every N env steps (default steps/10)"
    )
    p.add_argument("--eval-episodes", type=int, default=16, metavar="N", help="evaluation episodes (default 16)")
    p.add_argument(
        "--threads", type=int, default=1, metavar="N", help="torch CPU threads (default 1: fastest for these sizes)"
    )
    p.add_argument("--device", default="cpu", metavar="DEV",
                   help="SHAC: cpu, cuda or cuda:N for the training simulator, safeguard and networks (default cpu; "
                        "evaluations and their rollouts are computed on the CPU in float64)")
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                   help="no progress (a bar on a terminal, plain lines in logs)")


def _fmt(s: dict) -> str:
    return (f"return {s['return_mean']:.2f} +- {s['return_std']:.2f} over {s['episodes']} episodes, "
            f"interventions {100 * s['intervention_rate']:.1f}% of steps, "
            f"violations {s['violations_P']} (outside set) / {s['violations_X']} (outside X)")


def _user_system(args: argparse.Namespace) -> str:
    """Resolve a model-file SYSTEM to its name (registered for this process) and check --set against it.

    Run directories store the name; the set file records the model file, where
    'reachsafe evaluate' finds the model again.  A user system's default --set is
    data/NAME.json in the current folder (where 'reachsafe compute-invariant PATH' writes).
    """

    if not is_model_path(args.system):
        return args.system
    system = get_system(args.system)
    if args.set_path is None:  # where compute-invariant writes by default, else a data/ folder here
        found = [p for p in (Path("sets") / f"{system.name}.json", Path("data") / f"{system.name}.json") if p.exists()]
        if not found:
            raise UserError(f"{system.name} needs --set FILE: neither sets/{system.name}.json nor "
                            f"data/{system.name}.json exists; compute one with "
                            f"'reachsafe compute-invariant {args.system}' (writes sets/{system.name}.json)")
        args.set_path = str(found[0])
    for path in (args.set_path, args.init_set_path):
        if path:
            load_set(path, system=args.system, check_certificate=False)  # another model version is refused
    return system.name


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.out, "--out")  # before any work
    from training.runner import make_config, train  # lazy: training (torch) stays off the CLI start-up path

    args.system = _user_system(args)
    cfg, notes = make_config(
        args.system,
        args.algo,
        args.safeguard,
        set_path=args.set_path,
        init_set_path=args.init_set_path,
        init_sampling=args.init_sampling,
        seed=args.seed,
        steps=args.steps,
        passthrough=args.passthrough,
        regularize=args.regularize,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        threads=args.threads,
        allow_unverified_set=args.allow_unverified_set,
        device=args.device,
    )
    for n in notes:
        print(n)
    if cfg.init_set_path and cfg.init_sampling == "zonotope":
        print(f"initial states c + G beta (beta uniform) from the zonotope of {cfg.init_set_path}, restricted to "
              f"{cfg.set_path}")
    elif cfg.init_set_path:
        print(f"initial states uniform in {cfg.init_set_path} intersected with {cfg.set_path}")
    sys.stdout.flush()
    summary = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    print(f"run {summary['run_dir']}: {summary['env_steps']} env steps in {summary['wall_time_s']:.1f} s")
    print(f"  eval (uniform noise)     {_fmt(summary['uniform'])}")
    print(f"  eval (adversarial noise) {_fmt(summary['adversarial'])}")
    t = summary["train"]
    print(f"  training: {t['interventions']} interventions, {t['violations_P']} violations (outside set), "
          f"{t['violations_X']} (outside X), {t['fallbacks']} safety-net fallbacks")
    bad = summary["uniform"]["violations_P"] + summary["adversarial"]["violations_P"]
    return 1 if (cfg.safeguard != "none" and bad) else 0
