"""Grid estimate of the viability kernel inside X (2-D systems): how much of X any
invariant set could cover.  A cell is kept while some gridded action sends its centre,
under every noise vertex, into a kept cell (fixed point).  A reference, not a proof.

Examples:
  reachsafe kernel pendulum --cells 400 --actions 81
  reachsafe kernel examples/drifting_cart.py         # a 2-D model file of your own
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("system", help="a 2-D system: pendulum, or a model file of your own (.py)")
    p.add_argument("--cells", type=int, default=400, help="cells per axis (default 400)")
    p.add_argument("--actions", type=int, default=81, help="action grid size (default 81)")
    p.add_argument("--json", help="write the result as JSON here")


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import UserError
    from ..setfile import atomic_write_text
    from ..systems import get_system
    from ._common import check_output_path

    system = get_system(args.system)
    if system.n != 2:
        raise UserError(f"the grid kernel is for 2-D systems; {system.name} has {system.n} states")
    if args.cells < 4 or args.actions < 2:
        raise UserError("--cells must be >= 4 and --actions >= 2")
    if args.json:
        check_output_path(args.json, "--json")
    from verification.kernel import grid_kernel

    k = grid_kernel(system, cells=args.cells, actions=args.actions)
    print(f"{system.name}: kernel area {k.area:.2f} of {k.box_area:.2f} ({100 * k.fraction:.1f} % of X), "
          f"{args.cells}x{args.cells} cells, {k.actions} actions, {k.iterations} iterations")
    if args.json:
        atomic_write_text(args.json, json.dumps({"system": system.name, "area": k.area, "box_area": k.box_area,
                                                 "cells": args.cells, "actions": k.actions,
                                                 "iterations": k.iterations}, indent=1))
    return 0
