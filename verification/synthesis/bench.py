"""``reachsafe bench synthesis``: synthesis and certification time per system, side by side.

Runs the same loop as ``reachsafe compute-invariant`` into a temporary folder (nothing in
``data/`` is touched) and prints, per system: synthesis iterations and time,
certification time, cells, volume, and the ratio of the volume to the published set's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

__all__ = ["add_arguments", "run_bench"]

PUBLISHED_VOLUME = {"pendulum": 66.86, "quadrotor": 0.463}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--systems", default="pendulum,quadrotor", help="comma-separated systems (default both)")
    p.add_argument("--time-budget", type=float, default=1200.0, help="seconds per system (default 1200)")


def run_bench(args: argparse.Namespace) -> int:
    from reachsafe.commands._common import format_table
    from reachsafe.systems import get_system

    from .driver import compute_certified_invariant

    rows = []
    for name in [s.strip() for s in args.systems.split(",") if s.strip()]:
        system = get_system(name)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{name}.json"
            t0 = time.monotonic()
            outcome = compute_certified_invariant(system, out, time_budget=args.time_budget, progress=True)
            total = time.monotonic() - t0
            if outcome.code != 0 or outcome.setfile is None:
                rows.append([name, "not certified", "-", "-", "-", "-", f"{total:.1f}", "-"])
                continue
            sf = outcome.setfile
            vol = sf.volume["value"]
            cert = sf.certificate
            rows.append([name, f"{sf.A.shape[0]}", f"{vol:.4g}", f"{vol / PUBLISHED_VOLUME.get(name, float('nan')):.3g}x",
                         f"{sf.provenance.get('synthesis_time_s', float('nan')):.1f}", f"{cert['time_s']:.1f}",
                         f"{total:.1f}", str(cert["cells"])])
    print(format_table(rows, ["system", "facets", "volume", "vs published", "synthesis s", "certify s", "total s", "cells"]))
    return 0
