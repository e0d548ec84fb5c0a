"""Shared fixtures and helpers: paths to the repository's data (the published zonotopes included),
and the two helpers every CLI test uses (run a command in-process, assert the project's error
contract: exit 2 and one line on stderr)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PUBLISHED = DATA / "published"
REFERENCE = PUBLISHED / "zonotopes.json"  # the paper's zonotopes, shipped in the repository


@pytest.fixture
def published_pendulum() -> Path:
    return PUBLISHED / "pendulum.json"


@pytest.fixture
def published_quadrotor() -> Path:
    return PUBLISHED / "quadrotor.json"


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """Run ``reachsafe ARGS`` in-process; ``(exit code, stdout, stderr)``."""
    from reachsafe.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> None:
    """Exit code 2, exactly one non-empty line on stderr, no traceback, containing every needle."""
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]
