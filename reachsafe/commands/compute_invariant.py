"""Compute a robust control-invariant polytope for SYSTEM and certify it.

One route for every system (verification/synthesis/driver.py): the state is split along the
model's dependency graph where it decouples; each part gets a linear-feedback candidate
(robust maximal admissible set of an LQR loop) and a template polytope shrunk until every
sampled state keeps all noisy successors inside; the larger wins.  The independent certifier
(verification/certification/) then proves invariance for the nonlinear model and every noise
value.  Refuted or undecided: the margins grow and synthesis repeats.  The set file (and its
proof artifact) is written only when certified; otherwise nothing is written, one line says
what happened, and the exit code is 3.

The default output is sets/SYSTEM.json in the current folder; the sets shipped in data/ (which
the committed experiments were run with) are never touched unless --out names them.

Example:
  reachsafe compute-invariant pendulum                 # -> sets/pendulum.json
  reachsafe compute-invariant quadrotor --time-budget 1800
  reachsafe compute-invariant examples/cartpole.py     # a model file of your own -> sets/cartpole.json
"""

from __future__ import annotations

import argparse
import math
import sys

from ..errors import UserError
from ..systems import get_system
from ._common import check_output_dir, check_output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("system", help="system name (see 'reachsafe systems') or the path of a model file (.py)")
    p.add_argument("--out", help="set file to write (default sets/SYSTEM.json)")
    p.add_argument(
        "--facets",
        type=int,
        default=None,
        help="template size hint for the shrinking route (default from the dimension)",
    )
    p.add_argument(
        "--time-budget", type=float, default=1200.0, help="seconds for synthesis + certification (default 1200)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the sampling (default 0)")
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="starting robust margin in units of each coordinate's half-range in X "
        "(default: from how far the action moves the state in one step)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress (bars on a terminal, plain lines in logs)")


def run(args: argparse.Namespace) -> int:
    system = get_system(args.system)
    if args.out is None:  # the default folder is created (sets/ in the current folder)
        check_output_dir("sets", "the default output folder").mkdir(exist_ok=True)
    out = check_output_path(args.out or f"sets/{system.name}.json", "--out")
    if not args.time_budget > 0:  # NaN too
        raise UserError(f"--time-budget must be positive (seconds), got {args.time_budget}")
    if args.margin is not None and not (0 < args.margin < math.inf):
        raise UserError(f"--margin must be a positive number (a fraction of each coordinate's half-range, e.g. "
                        f"1e-3), got {args.margin}")
    if args.facets is not None and args.facets < 2 * system.n:
        raise UserError(f"--facets must be at least {2 * system.n} (the constraint box) for {system.name}")
    from verification.synthesis.driver import compute_certified_invariant  # lazy: off the CLI start-up path

    outcome = compute_certified_invariant(system, out, facets=args.facets, time_budget=args.time_budget,
                                          seed=args.seed, margin=args.margin, progress=not args.quiet)
    print(outcome.message, file=sys.stdout if outcome.code == 0 else sys.stderr)
    return outcome.code
