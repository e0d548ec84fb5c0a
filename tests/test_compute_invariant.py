"""`reachsafe compute-invariant`: certified output or nothing; committed sets reproducible."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from reachsafe import get_system, load_set
from reachsafe.cli import main
from verification.synthesis.structure import decompose, embed
from verification.synthesis.margins import robust_margins

from .conftest import DATA


def test_pendulum_set_is_computed_certified_and_large(tmp_path, capsys):
    out = tmp_path / "pendulum.json"
    shutil.copy(DATA / "published" / "pendulum.json", out)  # another set at --out is replaced
    assert main(["compute-invariant", "pendulum", "--out", str(out), "--time-budget", "300"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}")
    sf = load_set(out)
    assert sf.certified and sf.certificate["cells"] > 0
    assert sf.volume["value"] >= 115  # published: 66.86
    assert (tmp_path / "pendulum.proof.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pendulum.json", "pendulum.proof.json"]  # no temp left
    assert main(["certify", str(out), "--recheck"]) == 0


def test_recomputing_a_certified_set_keeps_its_files_untouched(tmp_path, capsys):
    """README command (a) once rewrote a tracked set file (only its time stamps changed), which broke
    every finished experiment run; the same A, b and model now keep the existing files."""
    out = tmp_path / "pendulum.json"
    assert main(["compute-invariant", "pendulum", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert main(["compute-invariant", "pendulum", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"kept (same A, b and model) {out}")
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before
    # a set whose certificate no longer binds (artifact gone) is not kept: it is replaced by a valid one
    (tmp_path / "pendulum.proof.json").unlink()
    assert main(["compute-invariant", "pendulum", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("wrote") and load_set(out).certified


def test_default_output_is_sets_in_the_current_folder(tmp_path, monkeypatch, capsys):
    """The shipped sets in data/ are never the default target (the committed experiments use them)."""
    monkeypatch.chdir(tmp_path)
    assert main(["compute-invariant", "pendulum", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "sets").iterdir()) == ["pendulum.json", "pendulum.proof.json"]


UNCONTROLLABLE = """
from reachsafe.systems.definition import SystemDefinition, exact, symbols
x, = symbols("x"); a, = symbols("a"); w, = symbols("w")
DEFINITION = SystemDefinition(
    name="pushed_cart", description="noise stronger than the action: no invariant set",
    state=(x,), action=(a,), noise=(w,), step=(x + exact("0.1") * (a + w),), params={},
    constraint_lo=(-exact(1),), constraint_hi=(exact(1),),
    noise_lo=(-exact(2),), noise_hi=(exact(2),), reward=-x**2, observation=(x,), dt=exact("0.1"))
"""


def test_failure_writes_nothing(tmp_path, capsys):
    """Noise twice the actuation: every candidate is refuted; exit 3, one line, no file."""
    model = tmp_path / "model" / "pushed_cart.py"
    model.parent.mkdir()
    model.write_text(UNCONTROLLABLE)
    out = tmp_path / "out" / "p.json"
    out.parent.mkdir()
    code = main(["compute-invariant", str(model), "--out", str(out), "--time-budget", "60"])
    assert code == 3
    assert list(out.parent.iterdir()) == []
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert "nothing written" in err.splitlines()[-1]


def test_bad_flags(tmp_path, capsys):
    assert main(["compute-invariant", "cartpole", "--out", str(tmp_path / "x.json")]) == 2
    assert main(["compute-invariant", "pendulum", "--out", str(tmp_path / "no" / "x.json")]) == 2
    assert main(["compute-invariant", "pendulum", "--time-budget", "-1", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len([l for l in err.splitlines() if "error" in l]) == 3


def test_quadrotor_splits_into_its_two_chains_from_the_model():
    """Found on the linearisation's graph, not by name: each chain's step equals the full model's
    rows when the other chain's action is its noise and the tilt term lies in its coupling box."""
    q = get_system("quadrotor")
    parts = decompose(q)
    assert parts is not None and [p.idx for p in parts] == [(0, 2, 3, 5), (1, 4)]
    H, V = parts
    assert H.actions == (1,) and V.actions == (0,)
    rng = np.random.default_rng(0)
    x = rng.uniform(q.constraint_lo, q.constraint_hi, (200, 6))
    a = rng.uniform(-1, 1, (200, 2))
    w = rng.uniform(-0.1, 0.1, (200, 2))
    full = q.step_unwrapped(x, a, w)
    h = H.system.step_unwrapped(x[:, list(H.idx)], a[:, 1:2], np.c_[w[:, 0], a[:, 0]])
    np.testing.assert_allclose(h, full[:, list(H.idx)], atol=1e-12)
    # vertical: the tilt enters as nu = dt (g + c_T a1)(cos(phi) - 1), inside its noise box
    T = 9.81 + 6 / 7 * a[:, 0]
    nu = 0.05**2 * T * (np.cos(x[:, 2]) - 1)
    assert np.all(nu >= V.system.noise_lo[1]) and np.all(nu <= V.system.noise_hi[1])
    assert V.system.noise_lo[1] == pytest.approx(-(0.05**2) * (9.81 + 6 / 7) * (1 - np.cos(np.pi / 12)), rel=1e-6)
    v = V.system.step_unwrapped(x[:, list(V.idx)], a[:, :1], np.c_[w[:, 1], nu])
    np.testing.assert_allclose(v, full[:, list(V.idx)], atol=1e-12)


def test_systems_without_structure_are_not_split():
    assert decompose(get_system("pendulum")) is None


def test_embed_builds_the_product():
    A, b = embed(3, [((0, 2), np.array([[1.0, 1.0]]), np.array([1.0])), ((1,), np.array([[1.0]]), np.array([2.0]))])
    np.testing.assert_array_equal(A, [[1, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(b, [1, 2])


@pytest.mark.parametrize("name, target", [("pendulum", 115.0), ("quadrotor", 200.0)])
def test_committed_sets_are_certified_and_meet_targets(name, target):
    path = DATA / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} not committed yet")
    sf = load_set(path)
    assert sf.certified
    assert sf.volume["value"] >= target
    assert (DATA / f"{name}.proof.json").exists()
    # sampled states all have a safe action (the proof says all of them do)
    A = sf.A / np.linalg.norm(sf.A, axis=1, keepdims=True)
    b = sf.b / np.linalg.norm(sf.A, axis=1)
    s, _ = robust_margins(get_system(name), A, b, sf.polytope().sample(1000, 0))
    assert s.min() >= 0


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    "pendulum",
    pytest.param("quadrotor", marks=pytest.mark.xfail(
        strict=True, reason="the general route certifies a larger set (1033) than the committed 962.9, which the "
                            "earlier per-system template made and every committed experiment ran with")),
])
def test_committed_set_is_reproduced(name, tmp_path):
    committed = load_set(DATA / f"{name}.json")
    out = tmp_path / f"{name}.json"
    assert main(["compute-invariant", name, "--out", str(out), "--time-budget", "2400"]) == 0
    fresh = load_set(out)
    assert fresh.volume["value"] == pytest.approx(committed.volume["value"], rel=0.01)
    assert main(["certify", str(out)]) == 0
    json.loads((tmp_path / f"{name}.proof.json").read_text())


@pytest.mark.slow
def test_quadrotor_general_route_certifies_within_ten_minutes(tmp_path):
    """No per-system code: the split comes from the model, and the first candidate certifies
    (1033 in 255 s at load 2 when this was written; issue 17's targets are >= 900 in <= 5 min)."""
    out = tmp_path / "quadrotor.json"
    t0 = time.monotonic()
    assert main(["compute-invariant", "quadrotor", "--out", str(out), "--time-budget", "600"]) == 0
    assert time.monotonic() - t0 < 600
    fresh = load_set(out)
    assert fresh.certified and fresh.volume["value"] >= 900


def test_undecided_says_cells_proven_and_queued(capsys):
    """A budget too small to settle every cell: exit 3, and the verdict says how far it got."""
    assert main(["certify", str(DATA / "quadrotor.json"), "--time-budget", "1", "--no-write", "--quiet"]) == 3
    out = capsys.readouterr().out
    assert "UNDECIDED: budget exhausted with" in out and "cells proven and" in out and "queued" in out


DRIFTER = """
import sympy as sp
from reachsafe.systems.definition import SystemDefinition, exact, symbols
x, th = symbols("x theta")
(a,) = symbols("a")
(w,) = symbols("w")
DEFINITION = SystemDefinition(
    name="drifter", description="always moving forward: no equilibrium, no convex invariant set",
    state=(x, th), action=(a,), noise=(w,),
    step=(x + exact("0.1") * (1 + exact("0.5") * sp.sin(th) + w), th + exact("0.1") * a), params={},
    constraint_lo=(-exact(2), -exact(1)), constraint_hi=(exact(2), exact(1)),
    noise_lo=(-exact("0.01"),), noise_hi=(exact("0.01"),), reward=-x**2, observation=(x, th), dt=exact("0.1"))
"""


def _undecided_line(tmp_path, capsys, text: str, *options: str) -> str:
    """Run compute-invariant on the model ``text`` (120 s budget): exit 3, nothing written; the last stderr line."""
    model = tmp_path / "model.py"
    model.write_text(text)
    out = tmp_path / "out" / "set.json"
    out.parent.mkdir()
    code = main(["compute-invariant", str(model), "--out", str(out), "--time-budget", "120", *options, "--quiet"])
    assert code == 3 and list(out.parent.iterdir()) == []
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_no_equilibrium_says_to_model_relative_to_a_path(tmp_path, capsys):
    """A system that can never stay put (a unicycle at constant speed): exit 3, nothing written, and
    the line says why no convex set exists and what to model instead."""
    last = _undecided_line(tmp_path, capsys, DRIFTER, "--facets", "12")
    assert "no equilibrium inside X" in last and "relative to a path" in last and "lane_keeping" in last


STOPPER = """
from reachsafe.systems.definition import SystemDefinition, exact, symbols
x, y = symbols("x y"); (a,) = symbols("a")
DEFINITION = SystemDefinition(name="stopper", description="zero-room corners", state=(x, y), action=(a,), noise=(),
    step=(x + a / 10, y + a / 10), params={}, constraint_lo=(-exact(1), -exact(1)),
    constraint_hi=(exact(1), exact(1)), noise_lo=(), noise_hi=(), reward=-x**2, observation=(x, y), dt=exact("0.1"))
"""


def test_states_held_only_in_place_are_named_when_the_candidate_empties(tmp_path, capsys):
    """One action moves x and y alike, so X's corners (1, -1) and (-1, 1) can only be held exactly where they are:
    every state has a safe action but none leaves the room a proof needs (a unicycle that stops at a corner).
    The line says so and what to change, instead of only 'try a smaller --margin'."""
    last = _undecided_line(tmp_path, capsys, STOPPER, "--margin", "0.05")
    assert "became empty" in last and "every sampled state had a safe action" in last and "way inward" in last


GYRO = """
from reachsafe.systems.definition import SystemDefinition, exact, symbols
p, q = symbols("p q")
a1, a2 = symbols("a1 a2")
w1, w2 = symbols("w1 w2")
dt = exact("0.1")
DEFINITION = SystemDefinition(
    name="gyro", description="p driven by q^2 as a rigid body's rates are by their products", state=(p, q),
    action=(a1, a2), noise=(w1, w2),
    step=(p + dt * (2 * q**2 + exact("0.5") * a1 + w1), q + dt * (exact("0.5") * a2 + w2)),
    params={}, constraint_lo=(-exact("0.5"), -exact("0.5")), constraint_hi=(exact("0.5"), exact("0.5")),
    noise_lo=(-exact("0.02"),) * 2, noise_hi=(exact("0.02"),) * 2, reward=-p**2, observation=(p, q), dt=dt)
"""


def test_a_split_that_leaves_a_part_without_a_set_is_dropped(tmp_path, capsys):
    """Regression: at the origin the linearisation does not couple p and q, so the plan split them and
    bounded the coupling 2 q^2 over all of X: [0, 0.5], the whole authority of a1, and the (p) part got
    no set (exit 3; a rigid body's rates, coupled by their products, ended the same way).  The split is
    now dropped and the whole system certifies."""
    model = tmp_path / "gyro.py"
    model.write_text(GYRO)
    out = tmp_path / "gyro.json"
    code = main(["compute-invariant", str(model), "--out", str(out), "--time-budget", "240"])
    err = capsys.readouterr().err
    assert "split into (p) x (q)" in err and "the split is dropped" in err
    assert code == 0 and load_set(out).certified
