"""The open-loop estimate of the viability kernel (verification/open_loop_bound.py) against exact answers."""

from __future__ import annotations

import numpy as np
import pytest

from reachsafe import get_system
from verification.open_loop_bound import open_loop_bound

MODEL = '''"""x1 unstable (1.2 per step) with a weak action; x2, x3 stable.  The viable x1 are |x1| <= 0.1 / 0.2."""
from reachsafe.systems.definition import SystemDefinition, exact, symbols
x1, x2, x3 = symbols("x1 x2 x3"); (a,) = symbols("a"); (w,) = symbols("w")
DEFINITION = SystemDefinition(name="NAME", description="open-loop bound test", state=(x1, x2, x3), action=(a,),
    noise=(w,), step=(exact("1.2") * x1 + exact("0.1") * a, exact("0.9") * x2 + x1 / 100, exact("0.9") * x3 + w),
    params={}, constraint_lo=(-exact(1),) * 3, constraint_hi=(exact(1),) * 3, noise_lo=(-exact("0.01"),),
    noise_hi=(exact("0.01"),), reward=-x1**2, observation=(x1, x2, x3), dt=exact("0.1"))
'''


@pytest.fixture
def unstable_3d(tmp_path):
    def make(name: str, shift: str = "") -> object:
        path = tmp_path / f"{name}.py"
        text = MODEL.replace("NAME", name)
        if shift:  # an offset that moves the equilibrium action
            text = text.replace('exact("0.1") * a,', f'exact("0.1") * a + exact("{shift}"),')
        path.write_text(text)
        return get_system(str(path))
    return make


def test_fraction_is_the_exact_viable_share(unstable_3d):
    """x1 can be held iff |x1| <= 0.5 (1.2 x1 + 0.1 a stays in [-1, 1] forever): half of X."""
    r = open_loop_bound(unstable_3d("olb_a"), samples=600, seed=1)
    assert r is not None and r.converged and r.horizon >= 100
    assert abs(r.fraction - 0.5) <= 4 * r.stderr + 1e-9


def test_an_offset_moves_the_viable_interval(unstable_3d):
    """x1+ = 1.2 x1 + 0.1 a + 0.02: held iff -0.6 <= x1 <= 0.4 (the fixed points under a = +1 and a = -1):
    still half of X, but shifted."""
    system = unstable_3d("olb_b", shift="0.02")
    r = open_loop_bound(system, samples=600, seed=2)
    assert r is not None
    assert abs(r.fraction - 0.5) <= 4 * r.stderr + 1e-9
    from verification.open_loop_bound import _equalities, _feasible, _linearisation
    from verification.synthesis.plans import whole_plan

    S = whole_plan(system)[0].scaled
    lin = _linearisation(S)
    assert lin is not None
    M, B, c0 = lin
    A_eq = _equalities(M, B, 200)
    for x1, viable in ((0.39, True), (-0.59, True), (0.41, False), (-0.61, False)):
        assert _feasible(A_eq, M, c0, 200, np.array([x1, 0.0, 0.0])) is viable, x1


DRIFTING = '''"""Always drifts forward (no equilibrium inside X)."""
import sympy as sp
from reachsafe.systems.definition import SystemDefinition, exact, symbols
x, y, th = symbols("x y theta"); (a,) = symbols("a"); (w,) = symbols("w")
dt = exact("0.05")
DEFINITION = SystemDefinition(name="olb_dubins", description="Dubins car", state=(x, y, th), action=(a,),
    noise=(w,), step=(x + dt * sp.cos(th), y + dt * sp.sin(th), th + dt * (a + w)), params={},
    constraint_lo=(-exact(5), -exact(5), -exact(3)), constraint_hi=(exact(5), exact(5), exact(3)),
    noise_lo=(-exact("0.05"),), noise_hi=(exact("0.05"),), reward=-x**2, observation=(x, y, th), dt=dt)
'''


def test_no_equilibrium_gives_no_estimate(tmp_path, capsys):
    """A linearisation away from an equilibrium says nothing about the kernel: no number, and the command says why."""
    from reachsafe.cli import main

    path = tmp_path / "olb_dubins.py"
    path.write_text(DRIFTING)
    assert open_loop_bound(get_system(str(path)), samples=20) is None
    assert main(["kernel", str(path), "--cells", "6", "--samples", "20", "--quiet"]) == 0
    assert "no open-loop estimate: the model has no equilibrium inside X" in capsys.readouterr().out


def test_the_time_cap_stops_after_the_first_horizon(unstable_3d):
    """No larger N is started after the time cap: one horizon, not converged (two settled doublings are needed)."""
    r = open_loop_bound(unstable_3d("olb_c"), samples=50, seed=3, time_cap=0.0)
    assert r is not None and r.horizon == 50 and not r.converged
