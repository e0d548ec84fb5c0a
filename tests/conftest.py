"""Shared fixtures and helpers: paths to the repository's data (the published zonotopes included),
and the two helpers every CLI test uses (run a command in-process, assert the project's error
contract: exit 2 and one line on stderr).

Determinism (issue 18, point 7: a run failed once in four, and passed with --lf):

* every test starts from the same global state, whatever ran before it: torch's thread count
  (a training run sets it to 1 and keeps it) and the global random generators of Python, numpy
  and torch are reset before each test, so a test behaves the same in the full suite and alone
  (``--lf``), and its floating-point results do not depend on the tests before it;
* Hypothesis draws the same examples in every run (``derandomize``: seeded from the test, no
  example database carried between runs).  ``HYPOTHESIS_PROFILE=explore pytest`` draws new
  random examples each run, to search wider by hand.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

_TORCH_THREADS = torch.get_num_threads()  # the process's default, restored before every test

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PUBLISHED = DATA / "published"
REFERENCE = PUBLISHED / "zonotopes.json"  # the paper's zonotopes, shipped in the repository


@pytest.fixture(autouse=True)
def _same_global_state():
    """Each test starts with torch's default thread count, freshly seeded global generators and
    no system names registered by model files that earlier tests loaded (a name such as
    ``cartpole`` resolves only after its file was loaded in the same test)."""
    from reachsafe.systems import loader

    torch.set_num_threads(_TORCH_THREADS)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    names = dict(loader._BY_NAME)
    yield
    loader._BY_NAME.clear()
    loader._BY_NAME.update(names)


@pytest.fixture
def one_torch_thread():
    """One torch thread for tests of small tensors: with two threads on a loaded 2-core machine a
    reduction over a [3, 10] tensor took 12 ms instead of 5 us (the OpenMP threads wait for each
    other).  Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


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
