"""List the systems with their dimensions, safety constraint box X and noise box W.

Lists the built-in systems and those installed through the 'reachsafe.systems' entry-point
group.  Model files of your own given as arguments are loaded and checked (runs, defines
DEFINITION, consistent symbols, bounded constraint box, affine in action and noise,
certifiable operations) and listed too; a broken one is refused with one line (exit 2).

Examples:
  reachsafe systems
  reachsafe systems examples/drifting_cart.py
"""

from __future__ import annotations

import argparse

from ..systems import available_systems, get_system, installed_systems, model_file_of
from ._common import fmt_box, format_table


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL.py", help="model files of your own to check and list")


def run(args: argparse.Namespace) -> int:
    systems = [get_system(spec) for spec in list(args.models) + available_systems() + installed_systems()]
    rows = []
    for s in systems:
        rows.append([s.name, str(s.n), str(s.m), str(s.p), ",".join(s.state_names),
                     fmt_box(s.constraint_lo, s.constraint_hi), fmt_box(s.noise_lo, s.noise_hi)])
    print(format_table(rows, ["system", "n", "m", "p", "state", "constraint box X", "noise box W"]))
    for s in systems:
        src = model_file_of(s)
        print(f"{s.name}: {s.definition.description}" + (f" ({src})" if src is not None else ""))
    return 0
