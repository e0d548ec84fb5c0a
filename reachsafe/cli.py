"""The ``reachsafe`` command line.

Each subcommand lives in a small module under :mod:`reachsafe.commands`; this file only
wires them up.  Heavy packages (``verification``, ``training``, matplotlib, cvxpy) are
imported inside the subcommand that needs them, so ``reachsafe --help`` is instant.

Exit codes: 0 success, 1 a negative verdict (e.g. "not invariant", violations found),
2 bad input (one line on stderr: what is wrong and how to fix it), 3 undecided; 130 after
Ctrl-C, 143 after SIGTERM.

SIGTERM is handled like Ctrl-C: it raises :class:`Terminated` (a ``KeyboardInterrupt``) in the
main thread, so every ``finally`` block runs and temporary files and work folders
(:mod:`reachsafe.workdir`) are removed before the process exits.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from typing import Iterator, Sequence

from . import __version__
from .errors import UserError
from .setfile import SetFileError
from .systems import ModelError, UnknownSystemError

# (name, module under reachsafe.commands, one-line help) in the order --help lists them
COMMANDS: list[tuple[str, str, str]] = [
    ("systems", "systems", "list the systems (built-in, installed, model files given): dimensions, X, W"),
    ("info", "info", "validate a set file and print its summary (volume, facets, certificate)"),
    (
        "import-zonotope",
        "import_zonotope",
        "convert a published zonotope (JSON) into a set file with its H-representation",
    ),
    ("bench", "bench", "measure components side by side (bench safeguards: ours vs. cvxpylayers vs. a simulator step)"),
    (
        "compute-invariant",
        "compute_invariant",
        "compute a robust control-invariant polytope, certify it, write the set file",
    ),
    ("certify", "certify", "prove (or refute) that a set file is robust control invariant; write the proof artifact"),
    ("kernel", "kernel", "grid estimate of the viability kernel inside X (2-D systems): the reference area"),
    ("plot", "plot", "plot set files side by side with the constraint box X (PNG)"),
    (
        "train",
        "train",
        "train a policy (SHAC, PPO, SAC) with a safeguard inside the environment; writes a run directory",
    ),
    ("evaluate", "evaluate", "evaluate a trained run: return, interventions, violations; writes rollouts"),
    (
        "audit",
        "audit",
        "audit recorded rollouts against a certified set: states, actions, transitions; JSON/HTML report",
    ),
    (
        "experiment",
        "experiment",
        "run a grid of training runs from a TOML file (local processes or Ray), audit and aggregate them",
    ),
    (
        "demo",
        "demo",
        "the whole pipeline on the pendulum in minutes: certified set, safeguarded SHAC, audit, HTML report",
    ),
]


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind like Ctrl-C (``finally`` blocks run), then exit with 143."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; restored afterwards)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a one-line error (argparse's default prints usage first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="reachsafe",
        description=(
            "Reachability-backed safety for reinforcement learning: compute and certify robust "
            "control-invariant sets, guard policy actions with them, train, and audit."
        ),
        epilog="Exit codes: 0 ok, 1 negative verdict, 2 bad input, 3 undecided. "
        "Run 'reachsafe COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"reachsafe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module, help_text in COMMANDS:
        mod = importlib.import_module(f"reachsafe.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``reachsafe`` console script; returns the exit code."""

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        with sigterm_as_interrupt():
            return int(args._run(args) or 0)
    except (UserError, SetFileError, ModelError, UnknownSystemError) as exc:
        sys.stderr.write(f"reachsafe {args.command}: error: {exc}\n")
        return 2
    except Terminated:
        sys.stderr.write(f"reachsafe {args.command}: terminated (SIGTERM); temporary files removed\n")
        return 143  # 128 + SIGTERM
    except KeyboardInterrupt:
        sys.stderr.write(f"reachsafe {args.command}: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``reachsafe ... | head``): stop quietly, as Unix
        # tools do, and keep Python from complaining again when it flushes stdout at exit.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # stdout without a file descriptor
            pass
        return 141  # 128 + SIGPIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
