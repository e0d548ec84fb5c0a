"""Synthesis building blocks: margins, template shrinking, kernel estimate, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import linprog

from reachsafe import get_system, load_set
from reachsafe.sets import HPolytope
from verification.synthesis.invariant import (SynthesisConfig, boundary_samples, refine_boundary, shrink_to_invariant,
                                              vertex_samples)
from verification.kernel import exit_time_kernel, grid_kernel
from verification.synthesis.margins import normalize_rows, one_action_margins, robust_margins
from verification.synthesis.plans import plan_for
from verification.synthesis.scaling import ScaledSystem
from verification.synthesis.templates import box_normals, closed_loop_normals, fan, template

from .conftest import ROOT


def _margin_by_linprog(system, A, b, x):
    """Reference: one LP per state, written out directly."""
    c, B, E = system.affine(x[None])
    c, B, E = c[0], B[0], E[0]
    w_c = 0.5 * (system.noise_lo + system.noise_hi)
    w_r = 0.5 * (system.noise_hi - system.noise_lo)
    AE = A @ E
    r = b - A @ c - AE @ w_c - np.abs(AE) @ w_r
    m = system.m
    res = linprog(np.r_[np.zeros(m), -1.0], A_ub=np.c_[A @ B, np.ones(len(b))], b_ub=r,
                  bounds=[(-1, 1)] * m + [(None, 1.0)], method="highs")
    return res.x[m]


@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
def test_batched_margins_match_per_state_lp(name):
    system = get_system(name)
    lo, hi = system.constraint_lo, system.constraint_hi
    A, b = normalize_rows(box_normals(system.n), np.r_[hi, -lo])
    X = np.random.default_rng(0).uniform(lo, hi, (40, system.n))
    s, a = robust_margins(system, A, b, X)
    ref = np.array([_margin_by_linprog(system, A, b, x) for x in X])
    np.testing.assert_allclose(s, ref, atol=1e-7)
    assert np.all(np.abs(a) <= 1 + 1e-9)


@pytest.mark.parametrize("case", ["mixed", "all_up", "all_down", "flat", "capped"])
def test_one_action_margins_match_an_lp_per_state(case):
    """m = 1 closed form vs. HiGHS, one LP per state: max s s.t. g_i a + s <= r_i, |a| <= 1, s in [-1e6, cap]."""
    rng = np.random.default_rng(len(case))
    N, k = 60, 12
    g = rng.normal(size=(N, k))
    g[:, :2] = 0.0  # rows the action cannot move
    g[:, 2] *= 1e-9  # nearly flat rows
    r = rng.uniform(-0.5, 2.0, (N, k))
    if case == "all_up":
        g = -np.abs(g)
    elif case == "all_down":
        g = np.abs(g)
    elif case == "flat":
        g[:] = 0.0
    cap = 0.05 if case == "capped" else 1.0
    s, a = one_action_margins(g[..., None], r, cap)
    for n in range(N):
        res = linprog([0.0, -1.0], A_ub=np.c_[g[n], np.ones(k)], b_ub=r[n], bounds=[(-1, 1), (-1e6, cap)],
                      method="highs")
        assert s[n] == pytest.approx(res.x[1], abs=1e-9)
    assert np.all(np.abs(a) <= 1.0)
    achieved = np.minimum(cap, (r - g * a).min(axis=1))  # the returned action attains the margin
    np.testing.assert_allclose(achieved, s, atol=1e-12)


def test_published_pendulum_margin_matches_reference_figure(published_pendulum):
    sf = load_set(published_pendulum)
    A, b = normalize_rows(sf.A, sf.b)
    X = sf.polytope().sample(2000, 0)
    s, _ = robust_margins(get_system("pendulum"), A, b, X)
    assert s.min() > 0.2  # docs/architecture.md: every sampled state has a safe action, min slack 0.21


def test_boundary_samples_lie_on_the_boundary():
    P = HPolytope.from_box([-1, -2], [1, 2])
    pts = boundary_samples(P, np.zeros(2), 200, np.random.default_rng(0), np.array([1.0, 2.0]))
    assert np.all(P.contains(pts))
    assert np.allclose(np.max(pts @ P.A.T - P.b, axis=1), 0, atol=1e-8)


def test_pendulum_shrinking_converges_to_a_large_candidate():
    system = get_system("pendulum")
    (part,) = plan_for(system)
    z = part.scaled
    A0, info = template(z, part.operating, facets=20)
    assert info["fan_pairs"] == [[0, 1]]
    cfg = SynthesisConfig(margin=1e-3, n_interior=500, n_boundary=1200, step=5e-4, seed=1)
    res = shrink_to_invariant(z, A0, config=cfg)
    assert res.converged and not res.empty
    A, b = z.to_state(res.A, res.b)
    P = HPolytope(A, b)
    lo, hi = system.constraint_box_inner()
    assert np.all(P.bounding_box().lo >= lo - 1e-12) and np.all(P.bounding_box().hi <= hi + 1e-12)
    assert P.volume_estimate().value > 110  # the published set has 66.9
    # fresh samples: robust margins essentially all positive
    pts = P.sample(3000, np.random.default_rng(7))
    s, _ = robust_margins(system, A, b, pts)
    assert np.mean(s >= 0) > 0.999


def test_templates_shapes():
    q = plan_for(get_system("quadrotor"))[0]
    T = closed_loop_normals(q.scaled, [q.operating])
    assert T.shape[1] == 4 and len(T) > 0 and np.allclose(np.linalg.norm(T, axis=1), 1)
    F = fan(2, 0, 1, 3)
    assert F.shape == (12, 2) and np.allclose(np.linalg.norm(F, axis=1), 1)
    A, info = template(ScaledSystem(get_system("pendulum")), (np.zeros(2), np.zeros(1)), facets=36)
    assert info["fan_per_quadrant"] == 8 and A.shape[1] == 2


def test_closed_loop_normals_fall_back_when_not_stabilisable():
    """A unicycle at rest: y is not stabilisable at heading 0; no LinAlgError, other points are tried."""
    from reachsafe.systems.compiled import CompiledSystem
    from reachsafe.systems.definition import SystemDefinition, exact, symbols
    import sympy as sp

    px, py, th = symbols("px py th")
    v, om = symbols("v om")
    dt = exact("0.1")
    d = SystemDefinition(name="uni_test", description="", state=(px, py, th), action=(v, om), noise=(),
                         step=(px + dt * v * sp.cos(th), py + dt * v * sp.sin(th), th + dt * om), params={},
                         constraint_lo=(-1, -1, -1), constraint_hi=(1, 1, 1), noise_lo=(), noise_hi=(),
                         reward=sp.Integer(0), observation=(px,))
    z = ScaledSystem(CompiledSystem(d))
    A, info = template(z, (np.zeros(3), np.zeros(2)))
    assert A.shape[1] == 3 and info["box"] == 6


def test_kernel_estimate_matches_reference():
    k = grid_kernel(get_system("pendulum"), cells=120, actions=41)
    assert k.area == pytest.approx(125.5, abs=2.5)  # docs/architecture.md: about 125.5 of 129.6
    assert k.box_area == pytest.approx(129.6)


@pytest.mark.parametrize("name", ["pendulum", "examples/double_integrator.py", "examples/mountaincar.py"])
def test_exit_time_kernel_agrees_with_the_2d_grid_kernel(name):
    """The n-D estimate, run on 2-D systems, lands within 1 % of X of the 2-D grid estimate."""
    system = get_system(str(ROOT / name) if name.endswith(".py") else name)
    ref = grid_kernel(system, cells=200, actions=41)
    est = exit_time_kernel(system, cells=100, actions_per_axis=9)
    assert abs(est.fraction - ref.fraction) < 0.01, (est.fraction, ref.fraction)


def test_kernel_cli_in_3d(tmp_path, capsys):
    from reachsafe.cli import main

    out = tmp_path / "k.json"
    assert main(["kernel", str(ROOT / "examples" / "lane_keeping.py"), "--cells", "20", "--samples", "60",
                 "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "exit-time" in printed and "open-loop estimate" in printed
    rec = json.loads(out.read_text())
    assert rec["dims"] == 3 and rec["cells"] == 20 and 0.5 < rec["fraction"] < 0.95
    ol = rec["open_loop"]
    assert ol["samples"] == 60 and ol["horizon"] >= 100 and 0.0 < ol["fraction"] <= 1.0
    assert ol["area"] == pytest.approx(ol["fraction"] * rec["box_area"])


def test_kernel_cli_refuses_negative_samples(capsys):
    from reachsafe.cli import main

    assert main(["kernel", str(ROOT / "examples" / "lane_keeping.py"), "--samples", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--samples must be >= 0" in err[0]


def test_plot_writes_png(tmp_path, published_pendulum):
    from reachsafe.cli import main

    out = tmp_path / "p.png"
    assert main(["plot", str(published_pendulum), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_margin_fits_dimension_and_actuation():
    """2-D systems get a 1e-4 cap, larger ones 1e-3; slow actuation lowers it further (normalised units)."""
    from verification.synthesis.driver import MARGIN_CAP, MARGIN_CAP_2D, default_margin
    from verification.synthesis.scaling import one_step_authority

    pend = plan_for(get_system("pendulum"))[0]
    assert default_margin(pend, 2) == MARGIN_CAP_2D == 1e-4
    quad = plan_for(get_system("quadrotor"))[0]  # a 4-D part of a 6-D system
    assert default_margin(quad, 6) == min(MARGIN_CAP, 0.05 * one_step_authority(quad.scaled).max())
    assert MARGIN_CAP == 1e-3
    mc = plan_for(get_system(str(ROOT / "examples" / "mountaincar.py")))[0]
    auth = one_step_authority(mc.scaled).max()
    assert default_margin(mc, 2) == pytest.approx(min(MARGIN_CAP_2D, 0.05 * auth))


def test_dense_plane_fans_only_for_two_dimensional_systems():
    """48 fan normals per quadrant when the whole system is 2-D; a 2-D part of a 6-D system keeps 8."""
    parts = plan_for(get_system("quadrotor"))
    plane = next(p for p in parts if p.scaled.n == 2)
    _, whole = template(plane.scaled, plane.operating)
    _, part = template(plane.scaled, plane.operating, system_dim=6)
    assert whole["fan_per_quadrant"] == 48 and part["fan_per_quadrant"] == 8


def test_boundary_refinement_finds_the_thin_slivers_that_few_rays_miss():
    """``data/pendulum.json`` with one facet pushed out by 0.05: some pushed facets leave a thin
    sliver without margin.  From 64 rays, refining the 8 worst reaches the minimum margin that
    100,000 rays find, and finds slivers that the 64 rays miss."""
    sf = load_set(ROOT / "data" / "pendulum.json")
    system = get_system("pendulum")
    A, b0 = np.asarray(sf.A), np.asarray(sf.b)
    scale = np.asarray(system.constraint_hi) - np.asarray(system.constraint_lo)
    missed_then_found = 0
    for i in range(len(b0)):
        b = b0.copy()
        b[i] += 0.05 * np.linalg.norm(A[i])
        P = HPolytope(A, b)
        c, _ = P.chebyshev_center()
        rng = np.random.default_rng(0)
        X = boundary_samples(P, c, 64, rng, scale)
        s, _ = robust_margins(system, A, b, X)
        Xr, sr = refine_boundary(system, P, c, X, s, rng, scale, keep=8)
        assert np.all(P.contains(Xr)) and Xr.shape == (8, 2)
        np.testing.assert_allclose(sr, robust_margins(system, A, b, Xr)[0])  # the margins of the returned states
        dense, _ = robust_margins(system, A, b, boundary_samples(P, c, 100_000, np.random.default_rng(1), scale))
        assert sr.min() <= dense.min() + 1e-3, (i, sr.min(), dense.min())
        missed_then_found += bool(s.min() > 0 > sr.min())
    assert missed_then_found >= 1


def test_vertex_samples_are_the_vertices_pulled_inside_and_skipped_where_enumeration_is_out_of_reach():
    square = HPolytope(np.vstack([np.eye(2), -np.eye(2)]), np.array([1.0, 2.0, 1.0, 2.0]))
    centre = np.array([0.0, 0.0])
    V = vertex_samples(square, centre)
    corners = np.array([[1.0, 2.0], [1.0, -2.0], [-1.0, 2.0], [-1.0, -2.0]])
    assert len(V) == 4 and np.all(square.contains(V))
    for c in corners:  # each corner, moved towards the centre by a relative 1e-9
        assert np.min(np.linalg.norm(V - c * (1 - 1e-9), axis=1)) < 1e-12
    cube5 = HPolytope(np.vstack([np.eye(5), -np.eye(5)]), np.ones(10))
    assert vertex_samples(cube5, np.zeros(5)).shape == (0, 5)  # 5-D: not enumerated
    many = HPolytope(fan(2, 0, 1, 120), np.ones(4 * 120))
    assert len(many.b) > 400 and vertex_samples(many, centre).shape == (0, 2)


def test_pairs_coupled_away_from_rest_get_fan_normals():
    """Regression: fan pairs came from the linearisation at the operating point alone.  A rigid
    body's rates are uncoupled at rest (the gyroscopic terms are products), so its template was the
    box, and the certified set a box of 29 % of X; with the pairs coupled anywhere in X it is 94 %."""
    from verification.synthesis.plans import whole_plan
    from verification.synthesis.templates import coupled_pairs, linearisation

    system = get_system(str(ROOT / "examples" / "rigid_body.py"))
    part = whole_plan(system)[0]
    M, _ = linearisation(part.scaled, *part.operating)
    assert coupled_pairs(M) == []
    _, info = template(part.scaled, part.operating)
    assert info["fan_pairs"] == [[0, 1], [0, 2], [1, 2]]
