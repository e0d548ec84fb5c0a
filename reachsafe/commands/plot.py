"""Plot set files side by side with the constraint box X.

2-D systems show the whole set; higher-dimensional ones show projections onto the
coordinate pairs of interest (quadrotor: px-vx, pz-vz, vx-phi, phi-phi_dot).

Example:
  reachsafe plot data/pendulum.json data/published/pendulum.json --out docs/pendulum.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..setfile import load_set
from ._common import check_output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("setfiles", nargs="+", help="set files of one system")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--labels", help="comma-separated legend labels (default: file names)")


def run(args: argparse.Namespace) -> int:
    out = check_output_path(args.out)
    sets = [load_set(p, check_fingerprint=False, check_certificate=False) for p in args.setfiles]
    if len({s.system for s in sets}) != 1:
        raise UserError("all set files must be for the same system; plot each system separately")
    labels = (
        args.labels.split(",") if args.labels else [Path(p).stem + f" ({Path(p).parent.name})" for p in args.setfiles]
    )
    if len(labels) != len(sets):
        raise UserError(f"--labels has {len(labels)} entries for {len(sets)} set files")
    from verification.plots import plot_sets  # lazy: verification stays off the CLI start-up path

    plot_sets(sets, labels, out, title=f"{sets[0].system}: invariant sets")
    print(f"wrote {out}")
    return 0
