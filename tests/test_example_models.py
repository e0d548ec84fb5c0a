"""Model files in examples/: each loads as a user's would, and the 2-D ones certify with default options."""

from __future__ import annotations

from pathlib import Path

import pytest

from reachsafe import load_set
from reachsafe.cli import main
from reachsafe.systems import get_system

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODELS = [
    "cartpole",
    "mountaincar",
    "double_integrator",
    "drifting_cart",
    "docking_sled",
    "pendulum_v1",
    "lane_keeping",
    "tora",
    "cstr",
    "bicycle",
    "quadtank",
    "pvtol",
    "lateral5",
    "chain3",
    "unicycle_path",
    "rigid_body",
]


@pytest.mark.parametrize("name", MODELS)
def test_example_model_loads(name):
    s = get_system(str(EXAMPLES / f"{name}.py"))
    assert s.name == name and s.n >= 2
    lo, hi = s.constraint_box_inner()
    assert (lo < hi).all()


@pytest.mark.slow
@pytest.mark.parametrize("name, min_fraction", [("double_integrator", 0.85), ("drifting_cart", 0.85),
                                                ("docking_sled", 0.9), ("lane_keeping", 0.5),
                                                ("cartpole", 0.3), ("mountaincar", 0.65), ("tora", 0.02),
                                                ("cstr", 0.6), ("bicycle", 0.4), ("quadtank", 0.95), ("pvtol", 0.15),
                                                ("lateral5", 0.3), ("chain3", 0.35),
                                                ("unicycle_path", 0.7), ("rigid_body", 0.85)])
def test_example_certifies_with_default_options(tmp_path, name, min_fraction):
    out = tmp_path / f"{name}.json"
    assert main(["compute-invariant", str(EXAMPLES / f"{name}.py"), "--out", str(out), "--quiet"]) == 0
    sf = load_set(out)
    s = get_system(str(EXAMPLES / f"{name}.py"))
    box = float(((s.constraint_hi - s.constraint_lo)).prod())
    assert sf.certified and sf.volume["value"] >= min_fraction * box
