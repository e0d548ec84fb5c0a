"""``reachsafe bench synthesis``: compute-invariant on every built-in and example system, side by side.

Runs the same loop as ``reachsafe compute-invariant`` (default options) into a temporary
folder (nothing in ``data/`` or ``sets/`` is touched) and prints one row per system: outcome,
facets, volume and its fraction of the box ``X``, the kernel estimate of ``reachsafe kernel``
(2-D grid; exit-time grid for 3-D and 4-D; none above) and the set's fraction of it, the
open-loop estimate from outside (3-D to 6-D, :mod:`verification.open_loop_bound`) and the set's
fraction of it, synthesis and certification time, cells, and the ratio to the published set where there is
one.  By default the systems are the built-ins and every model file in the repository's
``examples/`` (a file that defines ``DEFINITION``; the repository is found from the working
folder, :func:`reachsafe.repository.repository_root`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from reachsafe.commands._common import check_output_path, format_table
from reachsafe.repository import repository_root
from reachsafe.setfile import atomic_write_text
from reachsafe.systems import available_systems, get_system

from ..kernel import estimate_kernel
from ..open_loop_bound import open_loop_bound

__all__ = ["add_arguments", "run_bench", "default_systems"]

PUBLISHED_VOLUME = {"pendulum": 66.86, "quadrotor": 0.463}  # the paper's sets, for the ratio column
KERNEL_MAX_DIM = 4  # kernel estimates above this dimension take too long for a benchmark row


def default_systems() -> list[str]:
    """Built-in systems, then the model files in ``examples/`` (sorted by name)."""

    root = repository_root()
    folder = (root if root is not None else Path.cwd()) / "examples"
    files = sorted(p for p in folder.glob("*.py") if "DEFINITION" in p.read_text(encoding="utf-8")) \
        if folder.is_dir() else []
    return available_systems() + [str(p) for p in files]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--systems", default=None,
                   help="comma-separated built-in names or model files (default: the built-ins and examples/*.py)")
    p.add_argument("--time-budget", type=float, default=1200.0, help="seconds per system (default 1200)")
    p.add_argument("--no-kernel", action="store_true", help="skip the kernel estimates (grid and open-loop)")
    p.add_argument("--json", help="also write the rows as JSON here")


def _kernel_fraction(system) -> float | None:
    """Kernel estimate as a fraction of X (``reachsafe kernel`` defaults), or None above 4-D."""
    return estimate_kernel(system).fraction if system.n <= KERNEL_MAX_DIM else None


def _open_loop_fraction(system) -> float | None:
    """Open-loop estimate as a fraction of X (``reachsafe kernel`` defaults) for 3-D to 6-D systems with an
    equilibrium inside X, else None."""
    ol = open_loop_bound(system) if 3 <= system.n <= 6 else None
    return None if ol is None else ol.fraction


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def run_bench(args: argparse.Namespace) -> int:
    from .driver import compute_certified_invariant  # lazy: cvxpy, kept off `bench synthesis --help`

    if args.json:
        check_output_path(args.json, "--json")
    names = [s.strip() for s in args.systems.split(",") if s.strip()] if args.systems else default_systems()
    systems = [get_system(name) for name in names]  # bad names fail here, before any work
    rows, records = [], []
    for system in systems:
        box = float((system.constraint_hi - system.constraint_lo).prod())
        kern = None if args.no_kernel else _kernel_fraction(system)
        olb = None if args.no_kernel else _open_loop_fraction(system)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            outcome = compute_certified_invariant(system, Path(tmp) / f"{system.name}.json",
                                                  time_budget=args.time_budget, progress=True)
            total = time.monotonic() - t0
        rec = {"system": system.name, "n": system.n, "m": system.m, "certified": outcome.code == 0,
               "kernel_fraction_of_X": kern, "open_loop_fraction_of_X": olb, "total_s": round(total, 1)}
        kcol, ocol = _pct(kern), _pct(olb)
        if outcome.code != 0 or outcome.setfile is None:
            rec["message"] = outcome.message
            rows.append([system.name, f"{system.n}", "undecided", "-", "-", "-", kcol, "-", ocol, "-", "-", "-",
                         f"{total:.0f}", "-", "-"])
        else:
            sf = outcome.setfile
            vol = float(sf.volume["value"])
            cert = sf.certificate
            pub = PUBLISHED_VOLUME.get(system.name)
            of_kernel = None if kern is None else vol / box / kern
            of_open_loop = None if not olb else vol / box / olb  # a 0 % estimate has no share
            rec.update(facets=int(sf.A.shape[0]), volume=vol, fraction_of_X=vol / box,
                       fraction_of_kernel=of_kernel, fraction_of_open_loop=of_open_loop,
                       synthesis_s=sf.provenance.get("synthesis_time_s"), certify_s=cert["time_s"],
                       cells=cert["cells"])
            rows.append([system.name, f"{system.n}", "certified", f"{sf.A.shape[0]}", f"{vol:.4g}",
                         f"{100 * vol / box:.1f} %", kcol, _pct(of_kernel), ocol, _pct(of_open_loop),
                         f"{sf.provenance.get('synthesis_time_s', float('nan')):.0f}", f"{cert['time_s']:.0f}",
                         f"{total:.0f}", str(cert["cells"]), "-" if pub is None else f"{vol / pub:.3g}x"])
        records.append(rec)
    print(format_table(rows, ["system", "n", "result", "facets", "volume", "% of X", "kernel", "% of kernel",
                              "open-loop", "% of open-loop", "synthesis s", "certify s", "total s", "cells",
                              "vs published"]))
    if args.json:
        atomic_write_text(args.json, json.dumps(records, indent=1))
    return 0
