"""Grid estimate of the viability kernel inside X: how much of X any invariant set could
cover.  A reference, not a proof.

2-D systems: a cell is kept while some gridded action sends its centre, under every noise
vertex, into a kept cell (fixed point).  3-D to 6-D systems: from each cell's centre, every
gridded action and noise vertex is held until the trajectory leaves the cell, and the cell is
kept while some action sends it, under every vertex, into a kept cell (an exit-time
abstraction; small time steps move a state far less than a cell).  Coarse grids in 4-D move
the estimate by several per cent between neighbouring resolutions: compare two --cells.

3-D to 6-D systems with an equilibrium inside X also get an open-loop estimate from outside:
the share of --samples uniform states of X from which the model, linearised at its
equilibrium, can stay in X for N steps with the nominal noise (one LP per state; N doubles
until the share settles; no larger N is started after 5 minutes).  No state outside it is
viable for the linearised model, so for a model close to linear it bounds what any invariant
set could cover; the grid estimate can be below it (slow drifts are rounded away on the grid)
or above it (a cell is kept when its centre can be held).

Examples:
  reachsafe kernel pendulum --cells 400 --actions 81
  reachsafe kernel examples/drifting_cart.py         # a 2-D model file of your own
  reachsafe kernel examples/cartpole.py --cells 27   # 4-D: 27^4 cells
  reachsafe kernel examples/cartpole.py --samples 0  # the grid estimate only
"""

from __future__ import annotations

import argparse
import json

from ..errors import UserError
from ..progress import progress_bar
from ..setfile import atomic_write_text
from ..systems import get_system
from ._common import check_output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("system", help="a built-in system or a model file of your own (.py), 2 to 6 states")
    p.add_argument("--cells", type=int, default=None,
                   help="cells per axis (default 400 in 2-D, else about 500,000 cells in all: 80 in 3-D, 26 in 4-D)")
    p.add_argument("--actions", type=int, default=None,
                   help="action grid: values in 2-D (default 81); per action axis in n-D "
                        "(default 9 for one action, else 5)")
    p.add_argument("--samples", type=int, default=1000,
                   help="states of X for the open-loop estimate in 3-D to 6-D (default 1000; 0: skip it)")
    p.add_argument("--json", help="write the result as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    system = get_system(args.system)
    n = system.n
    if not 2 <= n <= 6:
        raise UserError(f"kernel estimates are for 2 to 6 states; {system.name} has {n}")
    from verification.kernel import default_resolution, estimate_kernel  # lazy: verification off the CLI start-up path

    d_cells, d_actions = default_resolution(n, system.m)
    cells = args.cells if args.cells is not None else d_cells
    actions = args.actions if args.actions is not None else d_actions
    if cells < 4 or actions < 2:
        raise UserError("--cells must be >= 4 and --actions >= 2")
    if cells ** n > 20_000_000:
        raise UserError(f"--cells {cells} gives {cells ** n:,} cells in {n}-D; use at most "
                        f"{int(20_000_000 ** (1 / n))} per axis")
    if args.samples < 0:
        raise UserError("--samples must be >= 0 (0 skips the open-loop estimate)")
    if args.json:
        check_output_path(args.json, "--json")
    with progress_bar(desc="kernel", unit="trajectories", disable=args.quiet or n == 2) as bar:
        def report(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
        k = estimate_kernel(system, cells=cells, actions=actions, progress=report)
    grid = "x".join([str(cells)] * n)
    print(f"{system.name}: kernel volume {k.area:.6g} of {k.box_area:.6g} ({100 * k.fraction:.1f} % of X), "
          f"{grid} cells, {k.actions} actions, {k.iterations} iterations ({k.method})", flush=True)
    result = {"system": system.name, "area": k.area, "box_area": k.box_area, "fraction": k.fraction, "cells": cells,
              "dims": n, "actions": k.actions, "iterations": k.iterations, "method": k.method}
    if n >= 3 and args.samples:
        from verification.open_loop_bound import open_loop_bound  # lazy, as above

        with progress_bar(desc="open-loop", unit="states", disable=args.quiet) as bar:
            shown = {"N": 0}

            def report_lp(done: int, total: int, horizon: int) -> None:
                if shown["N"] != horizon:  # a new horizon: a new count of states
                    shown["N"], bar.total, bar.n = horizon, total, 0
                    bar.set_description(f"open-loop N={horizon}")
                bar.update(done - bar.n)
            ol = open_loop_bound(system, samples=args.samples, progress=report_lp)
        if ol is None:
            print(f"{system.name}: no open-loop estimate: the model has no equilibrium inside X, and a "
                  "linearisation elsewhere says nothing about its kernel")
            result["open_loop"] = None
        else:
            print(f"{system.name}: open-loop estimate {100 * ol.fraction:.1f} +- {100 * ol.stderr:.1f} % of X "
                  f"(volume {ol.fraction * k.box_area:.6g}): {round(ol.fraction * ol.samples)} of {ol.samples} uniform "
                  f"states of X from which the model linearised at its equilibrium can stay in X for {ol.horizon} "
                  "steps with the nominal noise"
                  + ("" if ol.converged else f" (still falling at {ol.horizon} steps: an upper estimate)"))
            result["open_loop"] = {"fraction": ol.fraction, "stderr": ol.stderr, "area": ol.fraction * k.box_area,
                                   "horizon": ol.horizon, "samples": ol.samples, "converged": ol.converged}
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    return 0
