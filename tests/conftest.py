"""Shared fixtures: paths to the repository's data and the shared reference folder."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PUBLISHED = DATA / "published"
REFERENCE = ROOT.parent / "shared" / "reference" / "published_sets.json"


@pytest.fixture
def published_pendulum() -> Path:
    return PUBLISHED / "pendulum.json"


@pytest.fixture
def published_quadrotor() -> Path:
    return PUBLISHED / "quadrotor.json"
