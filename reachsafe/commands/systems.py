"""List the built-in systems with their dimensions, safety constraint box X and noise box W.

Example:
  reachsafe systems
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from ..systems import available_systems, get_system
    from ._common import fmt_box, format_table

    rows = []
    for name in available_systems():
        s = get_system(name)
        rows.append([name, str(s.n), str(s.m), str(s.p), ",".join(s.state_names),
                     fmt_box(s.constraint_lo, s.constraint_hi), fmt_box(s.noise_lo, s.noise_hi)])
    print(format_table(rows, ["system", "n", "m", "p", "state", "constraint box X", "noise box W"]))
    for name in available_systems():
        print(f"{name}: {get_system(name).definition.description}")
    return 0
