"""The linear-feedback route's search over LQR weights (verification/synthesis/linear_mas.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.linalg as sla

from reachsafe import get_system
from verification.synthesis.linear_mas import feedback_candidates
from verification.synthesis.plans import plan_for
from verification.synthesis.templates import linearisation, lqr_gain

from .conftest import ROOT


def test_lqr_gain_state_weight_is_the_riccati_design():
    """``q`` is diag(Q): the gain equals the one written out from scipy's Riccati solution."""
    rng = np.random.default_rng(0)
    M = np.array([[1.0, 0.1, 0.0], [0.0, 1.0, 0.1], [0.0, 0.05, 0.98]])
    B = rng.normal(size=(3, 2))
    q = np.array([0.3, 2.0, 5.0])
    P = sla.solve_discrete_are(M, B, np.diag(q), 0.7 * np.eye(2))
    ref = -np.linalg.solve(0.7 * np.eye(2) + B.T @ P @ B, B.T @ P @ M)
    np.testing.assert_allclose(lqr_gain(M, B, 0.7, q=q), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lqr_gain(M, B, 0.7), lqr_gain(M, B, 0.7, q=np.ones(3)), rtol=1e-12)


def _part(spec: str, k: int = 0):
    return plan_for(get_system(spec))[k].scaled


def test_search_keeps_the_best_and_never_loses_volume():
    """With a search the best candidate is at least as large as without, and it records its weights."""
    sys_ = _part(str(ROOT / "examples" / "double_integrator.py"))
    base = feedback_candidates(sys_, 1e-4, seed=0)
    searched = feedback_candidates(sys_, 1e-4, seed=0, search_trials=4)
    assert base and searched
    best0 = max(c.volume_fraction for c in base)
    best = max(searched, key=lambda c: c.volume_fraction)
    assert best.volume_fraction >= best0
    assert best.state_weight.shape == (sys_.n,) and np.all(best.state_weight > 0)
    for c in base:
        np.testing.assert_array_equal(c.state_weight, np.ones(sys_.n))
    # the recorded weights reproduce the recorded gain
    M, B = linearisation(sys_, best.z_e, best.a_e)
    K = lqr_gain(M, B, best.action_weight, max_rho=1 - 1e-9, q=best.state_weight)
    np.testing.assert_allclose(K, best.K, rtol=1e-9, atol=1e-12)


def test_search_is_deterministic_for_a_seed():
    sys_ = _part(str(ROOT / "examples" / "double_integrator.py"))
    a = max(feedback_candidates(sys_, 1e-4, seed=3, search_trials=4), key=lambda c: c.volume_fraction)
    b = max(feedback_candidates(sys_, 1e-4, seed=3, search_trials=4), key=lambda c: c.volume_fraction)
    np.testing.assert_array_equal(a.A, b.A)
    np.testing.assert_array_equal(a.b, b.b)
    np.testing.assert_array_equal(a.state_weight, b.state_weight)


def test_search_stops_at_the_deadline():
    sys_ = _part(str(ROOT / "examples" / "double_integrator.py"))
    t0 = time.monotonic()
    out = feedback_candidates(sys_, 1e-4, seed=0, search_trials=1000, deadline=t0 + 3.0)
    assert time.monotonic() - t0 < 3.0 + 5.0  # a construction under way ends at its next step
    assert out


@pytest.mark.slow
def test_search_enlarges_the_quadrotor_roll_chain():
    """Q = I gives 56 % of the roll chain's box; the search finds weights giving more than 70 %."""
    sys_ = _part("quadrotor")
    base = max(c.volume_fraction for c in feedback_candidates(sys_, 1e-4, seed=0))
    best = max(c.volume_fraction for c in feedback_candidates(sys_, 1e-4, seed=0, search_trials=24))
    assert base < 0.6 and best > 0.7


def test_later_action_weights_are_capped_by_the_powers_of_the_sets_found(monkeypatch):
    """After the first set, a base weight may take at most TRIAL_STEPS x the largest powers so far (pitch-like
    models: weight 10 ran 2,000+ powers and took the route's whole 300 s before the search could start)."""
    import verification.synthesis.linear_mas as lm

    calls: list[tuple[int, int | None]] = []
    real = lm._candidate

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append((args[9], None if out is None else out[2]))  # (max_steps given, powers used)
        return out

    monkeypatch.setattr(lm, "_candidate", spy)
    sys_ = _part(str(ROOT / "examples" / "double_integrator.py"))
    assert feedback_candidates(sys_, 1e-4, seed=0, max_steps=4000)
    assert len(calls) == len(lm.ACTION_WEIGHTS) and calls[0][0] == 4000
    found: list[int] = []
    for given, used in calls:
        if found:
            assert given == min(4000, lm.TRIAL_STEPS * max(max(found), 10))
        if used is not None:
            assert used <= given
            found.append(used)


def test_unreachable_modes_are_the_pbh_rank_defects():
    """Each reported mode is an eigenvalue |lam| >= 1 where rank [M - lam I, B] < n (independent rank test), and
    every such eigenvalue is reported; a damped unreachable mode and a reachable unstable one are not."""
    from verification.synthesis.templates import unreachable_modes

    # kinematic unicycle at heading 0: x moves with v, theta with omega, y with nothing (eigenvalue 1)
    M = np.eye(3)
    B = np.array([[0.1, 0.0], [0.0, 0.0], [0.0, 0.1]])
    modes = unreachable_modes(M, B)
    assert len(modes) >= 1 and all(abs(lam - 1.0) < 1e-12 for lam, _ in modes)
    np.testing.assert_allclose(modes[0][1], [0.0, 1.0, 0.0], atol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = 4
        M = rng.normal(size=(n, n))
        B = rng.normal(size=(n, 1))
        if rng.uniform() < 0.5:  # make one mode unreachable: B in the span of the other right eigenvectors
            lam, R = np.linalg.eig(M)
            B = np.real(R[:, 1:] @ rng.normal(size=(n - 1, 1)).astype(complex)) if np.all(np.isreal(lam)) else B
        got = {complex(round(lam.real, 6), round(lam.imag, 6)) for lam, _ in unreachable_modes(M, B, tol=1e-7)}
        want = set()
        for lam in np.linalg.eigvals(M):
            if abs(lam) >= 1 - 1e-7 and np.linalg.matrix_rank(np.hstack([M - lam * np.eye(n), B]), tol=1e-6) < n:
                want.add(complex(round(lam.real, 6), round(lam.imag, 6)))
        assert got == want


UNICYCLE = '''"""Kinematic unicycle with noise on both positions: at heading 0 no action moves y to first order."""
import sympy as sp
from reachsafe.systems.definition import SystemDefinition, exact, symbols
x, y, th = symbols("x y theta"); v, om = symbols("v omega"); w1, w2 = symbols("w1 w2")
dt = exact("0.1")
DEFINITION = SystemDefinition(name="unicycle_pbh", description="unicycle", state=(x, y, th), action=(v, om),
    noise=(w1, w2), step=(x + dt * (v * sp.cos(th) + w1), y + dt * (v * sp.sin(th) + w2), th + dt * om), params={},
    constraint_lo=(-exact(2), -exact(2), -exact(1)), constraint_hi=(exact(2), exact(2), exact(1)),
    noise_lo=(-exact("0.05"),) * 2, noise_hi=(exact("0.05"),) * 2, reward=-x**2, observation=(x, y, th), dt=dt)
'''


def test_linear_route_names_the_coordinate_no_action_reaches(tmp_path):
    from verification.synthesis.driver import _linear, _Log

    model = tmp_path / "unicycle_pbh.py"
    model.write_text(UNICYCLE)
    (part,) = plan_for(get_system(str(model)))
    why = _linear(part, 1e-4, 0, time.monotonic() + 60, _Log(False, "unicycle_pbh"))
    assert isinstance(why, str) and "no action moves y to first order" in why
