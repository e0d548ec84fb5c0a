"""Measure reachsafe's components side by side.

Targets (each a small entry in TARGETS below; the implementation is imported only when run):
  safeguards   forward+backward time of every safeguard vs. a cvxpylayers projection
               (the paper's approach) and one simulator step, per batch size
  synthesis    compute-invariant on every built-in and example system: volume, % of X and kernel, times
  training     SHAC wall time with each safeguard vs. unsafeguarded (overhead ratio)
  audit        audit throughput (steps/s)

Examples:
  reachsafe bench safeguards
  reachsafe bench safeguards --set data/quadrotor.json --batches 1024 --threads 1
  reachsafe bench safeguards --batches 1024 --actions 3,4,6 --threads 1
"""

from __future__ import annotations

import argparse
import importlib
from typing import Callable

from ..errors import UserError


def _safeguards_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="sets", action="append", metavar="FILE",
                   help="set file to guard with (repeatable; default: data/<system>.json for each built-in "
                        "system if present, else data/published/<system>.json)")
    p.add_argument("--batches", default="1,64,1024,16384", help="comma-separated batch sizes (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=21,
                   help="interleaved rounds per batch size (each times the step and every safeguard once); medians are "
                        "reported; cvxpylayers gets at most this many calls (default: %(default)s)")
    p.add_argument(
        "--dtype", choices=["float32", "float64"], default="float32", help="dtype of ours (default: %(default)s)"
    )
    p.add_argument("--cvx-budget", type=float, default=60.0, metavar="SECONDS",
                   help="skip a cvxpylayers cell whose estimated time exceeds this (default: %(default)s)")
    p.add_argument("--no-cvxpylayers", action="store_true", help="do not time cvxpylayers")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default: %(default)s, comparable on a shared machine)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--actions", default="3,4,6", metavar="M,...",
                   help="also time the maps for these m on random safe-action polytopes, against cvxpylayers "
                        "(default: %(default)s; '' for none)")
    p.add_argument("--seed", type=int, default=0)


def _lazy_arguments(module: str) -> Callable[[argparse.ArgumentParser], None]:
    """``add_arguments`` of a benchmark module, imported only when the parser is built for it."""
    return lambda p: importlib.import_module(module).add_arguments(p)


# name -> (one-line help, add_arguments(parser), "module:function" run(args) -> exit code)
TARGETS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {
    "safeguards": ("safeguards vs. cvxpylayers and one simulator step (forward+backward)",
                   _safeguards_arguments, "reachsafe.safeguards.bench:run"),
    "synthesis": ("compute-invariant on the built-ins and every examples/ model: volume, share of X and "
                  "of the kernel estimate, times",
                  _lazy_arguments("verification.synthesis.bench"), "verification.synthesis.bench:run_bench"),
    "training": ("SHAC wall time with each safeguard vs. unsafeguarded (same seed, short runs)",
                 _lazy_arguments("training.bench"), "training.bench:run_bench"),
    "audit": ("audit throughput in steps per second on synthetic rollouts",
              _lazy_arguments("verification.audit.bench"), "verification.audit.bench:run_bench"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="target", metavar="TARGET", parser_class=type(p))
    for name, (help_text, add, _) in TARGETS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add(sp)


def run(args: argparse.Namespace) -> int:
    target = getattr(args, "target", None)
    if target not in TARGETS:
        raise UserError(f"choose what to benchmark: {', '.join(TARGETS)} (e.g. 'reachsafe bench safeguards')")
    module, func = TARGETS[target][2].split(":")
    return int(getattr(importlib.import_module(module), func)(args) or 0)
