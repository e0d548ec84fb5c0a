"""Compute a robust control-invariant polytope for SYSTEM and certify it.

Synthesis shrinks a template polytope inside the constraint box X until every sampled
state keeps all noisy successors inside (verification/synthesis/invariant.py); the independent
certifier (verification/certification/certifier.py) then proves invariance for the nonlinear model and
every noise value.  If the proof fails, the margin is raised and synthesis continues.
The set file (and its proof artifact) is written only when certified; otherwise nothing
is written and the exit code is 1 (3 when the time budget ran out undecided).

Example:
  reachsafe compute-invariant pendulum                 # -> data/pendulum.json
  reachsafe compute-invariant quadrotor --time-budget 1200
  reachsafe compute-invariant examples/drifting_cart.py --out data/drifting_cart.json   # your own model
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("system", help="system name (see 'reachsafe systems') or the path of a model file (.py)")
    p.add_argument("--out", help="set file to write (default data/SYSTEM.json)")
    p.add_argument("--facets", type=int, default=None, help="template size hint (default per system)")
    p.add_argument("--time-budget", type=float, default=1200.0, help="seconds for synthesis + certification (default 1200)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sampling (default 0)")
    p.add_argument("--margin", type=float, default=None, help="starting robust margin (default per system)")
    p.add_argument("--quiet", action="store_true", help="no progress (bars on a terminal, plain lines in logs)")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..errors import UserError
    from ..systems import get_system
    from ._common import check_output_path

    system = get_system(args.system)
    out = check_output_path(args.out or f"data/{system.name}.json", "--out")
    if args.time_budget <= 0:
        raise UserError("--time-budget must be positive (seconds)")
    if args.facets is not None and args.facets < 2 * system.n:
        raise UserError(f"--facets must be at least {2 * system.n} (the constraint box) for {system.name}")
    from verification.synthesis.driver import compute_certified_invariant

    outcome = compute_certified_invariant(system, out, facets=args.facets, time_budget=args.time_budget,
                                          seed=args.seed, margin=args.margin, progress=not args.quiet)
    print(outcome.message, file=sys.stdout if outcome.code == 0 else sys.stderr)
    return outcome.code
