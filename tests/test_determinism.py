"""The suite's determinism (issue 18, point 7; see tests/conftest.py): tests see the same global
state in the full run and alone, and Hypothesis draws the same examples in every run."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from . import conftest

_DRAWN: list[int] = []


def test_a_test_that_changes_global_state():
    torch.set_num_threads(1)  # what every in-process training run does, and keeps
    torch.rand(7), np.random.rand(7), random.random()


def test_the_next_test_starts_from_the_default_state():
    assert torch.get_num_threads() == conftest._TORCH_THREADS
    t, n, r = torch.rand(3), np.random.rand(3), random.random()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    assert torch.equal(t, torch.rand(3)) and np.array_equal(n, np.random.rand(3)) and r == random.random()


@settings(max_examples=5)
@given(st.integers(0, 2**62))
def _draw(i):
    _DRAWN.append(i)


def test_hypothesis_draws_the_same_examples_every_time():
    if os.environ.get("HYPOTHESIS_PROFILE", "deterministic") != "deterministic":
        pytest.skip("HYPOTHESIS_PROFILE asks for new examples")
    assert settings.default.derandomize and settings.default.database is None
    _draw()
    first = list(_DRAWN)
    _DRAWN.clear()
    _draw()
    assert _DRAWN == first and len(set(first)) > 1
