"""Sets with many facets are refuted too: quadrotor mutants under the committed 66-facet set.

Each mutant weakens the quadrotor (less thrust per unit action, a weaker roll command, a
stiffer roll spring), so that states of ``data/quadrotor.json`` lose every safe action
(minimum robust slack at the set's vertices about -1.5e-3, -3.8e-3 and -9e-3).  The
certifier must say so with a Farkas proof, not end "undecided": vertex enumeration is out of
reach for 66 facets in 6-D, so its candidates include the vertices that LPs in random
directions reach.
"""

from __future__ import annotations

import numpy as np
import pytest

from reachsafe.setfile import SetFile, load_set
from reachsafe.systems import get_system
from verification.certification.certifier import certify
from verification.certification import cell_loop
from verification.certification.cells import cell_center
from verification.certification.per_state import prove_no_safe_action, safe_action_lp
from verification.certification.intervals import CertModel

from .conftest import DATA

MUTANTS = {
    "weak_thrust": "params={**PARAMS, thrust_gain: sp.Rational(5, 7)}",
    "weak_roll": "params={**PARAMS, k_r: exact(35)}",
    "stiff_roll": "params={**PARAMS, k_phi: exact(120)}",
}


def _mutant(tmp_path, name: str):
    src = (
        "import dataclasses\nimport sympy as sp\nfrom reachsafe.systems.definition import exact\n"
        "from reachsafe.systems.quadrotor import DEFINITION as Q, PARAMS, k_r, k_phi, thrust_gain\n"
        f"DEFINITION = dataclasses.replace(Q, name='quadrotor_{name}', {MUTANTS[name]})\n"
    )
    path = tmp_path / f"quadrotor_{name}.py"
    path.write_text(src)
    return get_system(str(path))


def _refute(tmp_path, name: str) -> None:
    committed = load_set(DATA / "quadrotor.json")
    assert committed.A.shape[0] > 40  # the case the old vertex search skipped
    system = _mutant(tmp_path, name)
    sf = SetFile.for_system(system, np.asarray(committed.A), np.asarray(committed.b), volume=committed.volume,
                            provenance={})
    r = certify(sf, time_budget=120, write=False, progress=False)
    assert r.status == "not_invariant", (name, r.status, r.message)
    # the counterexample is a state of P whose safe-action set is empty, proven again here
    x = np.asarray(r.counterexample.x, dtype=np.float64)
    assert np.all(np.asarray(committed.A) @ x <= np.asarray(committed.b))
    assert prove_no_safe_action(CertModel(system.definition), system, np.asarray(committed.A),
                                np.asarray(committed.b), x) is not None


def test_a_quadrotor_mutant_is_refuted(tmp_path):
    _refute(tmp_path, "stiff_roll")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["weak_thrust", "weak_roll"])
def test_more_quadrotor_mutants_are_refuted(tmp_path, name):
    _refute(tmp_path, name)


def _pendulum_with_a_sliver():
    """``data/pendulum.json`` with one facet pushed out until a thin sliver has no safe action.

    Returns (system, A, b, a state of the sliver); None if no facet gives one.
    """
    sf = load_set(DATA / "pendulum.json")
    system = get_system("pendulum")
    A0, b0 = np.asarray(sf.A), np.asarray(sf.b)
    lo, hi = np.asarray(system.constraint_lo, float), np.asarray(system.constraint_hi, float)
    X = np.random.default_rng(0).uniform(lo, hi, size=(40_000, 2))
    for i in range(len(b0)):
        b = b0.copy()
        b[i] += 0.05 * np.linalg.norm(A0[i])
        inside = X[np.all(X @ A0.T <= b, axis=1)]
        for x in inside[np.argsort(-(inside @ A0[i]))[:200]]:
            c, B, E = system.affine(x)
            if safe_action_lp(A0, b, c, B, E, system.noise_lo, system.noise_hi).slack < 0:
                return system, A0, b, x
    return None


def test_a_cell_whose_centre_is_safe_still_finds_the_sliver_without_safe_actions():
    """The small-cell point test descends from the centre (per-state LP value), so cells
    around a thin unsafe sliver end in a Farkas-proven counterexample instead of splitting forever."""
    found = _pendulum_with_a_sliver()
    assert found is not None
    system, A, b, x_bad = found
    model = CertModel(system.definition)
    lo0, hi0 = np.asarray(system.constraint_lo, float), np.asarray(system.constraint_hi, float)
    cell_loop._setup(model, system, A, b, hi0 - lo0, True, cell_center(A, b, lo0, hi0))
    half = 0.1 * (hi0 - lo0)
    cell = cell_loop.Cell(x_bad - half, x_bad + half)
    centre = cell_center(A, b, cell.lo, cell.hi)
    c, B, E = system.affine(centre)
    assert safe_action_lp(A, b, c, B, E, system.noise_lo, system.noise_hi).slack > 0  # the centre alone misses it
    assert prove_no_safe_action(model, system, A, b, centre) is None
    ce = cell_loop._point_test(cell)
    assert ce is not None and ce.reason == "no_safe_action" and ce.margin > 0
    assert np.all(A @ ce.x <= b)
    assert prove_no_safe_action(model, system, A, b, ce.x) is not None
