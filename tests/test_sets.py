"""Tests for reachsafe.sets: Box, HPolytope, Zonotope."""

from __future__ import annotations

import itertools
import json
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import linprog
from scipy.spatial import ConvexHull

from reachsafe.errors import UserError
from reachsafe.sets import (
    Box,
    ConvexSet,
    EmptySetError,
    HPolytope,
    UnboundedSetError,
    UnsupportedSetError,
    VolumeEstimate,
    Zonotope,
    as_hpolytope,
)
from reachsafe.sets._geometry import combinations_index, shoelace_area, sort_ccw

PENDULUM_G = np.array([
    [0.04701349511742592, -1.1909663677215576, -0.04701349511742592, 1.1909663677215576,
     -0.0006074255798012018, 0.15574911236763, 0.003786012763157487, 0.0],
    [0.06101121008396149, 2.895580768585205, -0.06101121008396149, -2.895580768585205,
     5.667937278747559, 1.669143239269033e-05, 0.0, 0.001179025392048061],
])

PUBLISHED = pathlib.Path(__file__).resolve().parents[1] / "data" / "published" / "zonotopes.json"


def hull_polytope(points: np.ndarray) -> HPolytope:
    """H-representation of conv(points) from Qhull's facet equations (n . x + off <= 0)."""
    eq = ConvexHull(points).equations
    return HPolytope(eq[:, :-1], -eq[:, -1])


def random_zonotope(rng: np.random.Generator, n: int, p: int) -> Zonotope:
    return Zonotope(rng.normal(size=n), rng.normal(size=(n, p)))


def cube_vertices(p: int) -> np.ndarray:
    return np.array(list(itertools.product([-1.0, 1.0], repeat=p)))


# =============================================================================
# helpers
# =============================================================================
def test_combinations_index_matches_itertools():
    idx = combinations_index(7, 3)
    assert idx.shape == (35, 3)
    assert [tuple(r) for r in idx] == list(itertools.combinations(range(7), 3))


def test_shoelace_on_sorted_square():
    V = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert shoelace_area(sort_ccw(V)) == pytest.approx(1.0)


# =============================================================================
# Box
# =============================================================================
def test_box_contains_single_and_batch():
    box = Box([0.0, -1.0], [2.0, 1.0])
    assert box.contains([1.0, 0.0]) is True
    assert box.contains(np.array([2.0, 1.0])) is True
    assert box.contains([2.1, 0.0]) is False
    assert box.contains([2.1, 0.0], tol=0.2) is True
    res = box.contains(np.array([[1.0, 0.0], [3.0, 0.0], [0.0, -1.0]]))
    assert res.dtype == bool and res.tolist() == [True, False, True]


def test_box_basic_quantities():
    box = Box([0.0, -1.0, 2.0], [2.0, 1.0, 5.0])
    assert box.dim == 3
    assert box.volume() == pytest.approx(12.0)
    np.testing.assert_allclose(box.center, [1.0, 0.0, 3.5])
    np.testing.assert_allclose(box.radius, [1.0, 1.0, 1.5])
    V = box.vertices()
    assert V.shape == (8, 3)
    assert len({tuple(v) for v in V}) == 8
    assert box.contains(V).all()


def test_box_validation():
    with pytest.raises(ValueError, match="lo <= hi"):
        Box([0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        Box([0.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        Box([0.0, 0.0], [1.0, np.inf])
    with pytest.raises(ValueError, match="length"):
        Box([0.0, 0.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        Box([0.0, 0.0], [1.0, 1.0]).contains([1.0, 2.0, 3.0])


def test_box_to_hpolytope_round_trip():
    box = Box([-1.0, 0.5, 2.0], [1.0, 2.0, 2.5])
    H = as_hpolytope(box)
    assert H.n_facets == 6
    bb = H.bounding_box()
    np.testing.assert_allclose(bb.lo, box.lo, atol=1e-12)
    np.testing.assert_allclose(bb.hi, box.hi, atol=1e-12)
    assert H.volume_estimate().value == pytest.approx(box.volume(), rel=1e-12)
    pts = np.random.default_rng(0).uniform(-3, 3, size=(2000, 3))
    np.testing.assert_array_equal(H.contains(pts), box.contains(pts))


def test_box_support_matches_vertices():
    box = Box([-1.0, 0.0, 3.0], [2.0, 0.5, 4.0])
    D = np.random.default_rng(1).normal(size=(50, 3))
    expected = (D @ box.vertices().T).max(axis=1)
    np.testing.assert_allclose(box.support(D), expected, rtol=1e-12)
    assert isinstance(box.support(D[0]), float)


@settings(max_examples=30, deadline=None)
@given(
    lo=hnp.arrays(np.float64, 3, elements=st.floats(-10, 10)),
    width=hnp.arrays(np.float64, 3, elements=st.floats(0.01, 5)),
    seed=st.integers(0, 2**32 - 1),
)
def test_box_property_samples_and_support(lo, width, seed):
    box = Box(lo, lo + width)
    rng = np.random.default_rng(seed)
    X = box.sample(200, rng)
    assert box.contains(X).all()
    D = rng.normal(size=(10, 3))
    assert np.all((X @ D.T).max(axis=0) <= box.support(D) + 1e-9)


# =============================================================================
# HPolytope
# =============================================================================
def test_unit_square_volume_exact():
    sq = HPolytope.from_box([0.0, 0.0], [1.0, 1.0])
    vol = sq.volume_estimate()
    assert isinstance(vol, VolumeEstimate)
    assert vol.method == "exact" and vol.stderr == 0.0
    assert vol.value == pytest.approx(1.0, abs=1e-12)


def test_triangle_volume_and_ccw_vertices():
    # x >= 0, y >= 0, x + y <= 2  -> area 2
    tri = HPolytope([[-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]], [0.0, 0.0, 2.0])
    V = tri.vertices()
    assert V.shape == (3, 2)
    c = V.mean(axis=0)
    ang = np.arctan2(V[:, 1] - c[1], V[:, 0] - c[0])
    assert np.all(np.diff(ang) > 0)
    assert tri.volume_estimate().value == pytest.approx(2.0, rel=1e-12)


def test_3d_simplex_volume_exact():
    simplex = HPolytope(np.vstack([-np.eye(3), np.ones((1, 3))]), [0.0, 0.0, 0.0, 1.0])
    assert simplex.volume_estimate().value == pytest.approx(1.0 / 6.0, rel=1e-10)


def test_chebyshev_center_of_box():
    H = HPolytope.from_box([0.0, 0.0], [2.0, 4.0])
    c, r = H.chebyshev_center()
    assert r == pytest.approx(1.0, abs=1e-9)
    assert c[0] == pytest.approx(1.0, abs=1e-9)
    assert 1.0 - 1e-9 <= c[1] <= 3.0 + 1e-9
    cube_c, cube_r = HPolytope.from_box(-np.ones(3), 3 * np.ones(3)).chebyshev_center()
    np.testing.assert_allclose(cube_c, np.ones(3), atol=1e-9)
    assert cube_r == pytest.approx(2.0, abs=1e-9)


def test_support_matches_vertices_bruteforce():
    rng = np.random.default_rng(2)
    P = hull_polytope(rng.normal(size=(30, 3)))
    V = P.vertices()
    D = rng.normal(size=(20, 3))
    np.testing.assert_allclose(P.support(D), (D @ V.T).max(axis=1), rtol=1e-8, atol=1e-9)


def test_support_errors_unbounded_and_empty():
    half = HPolytope([[1.0, 0.0]], [1.0])
    with pytest.raises(UnboundedSetError):
        half.support([0.0, 1.0])
    assert half.support([1.0, 0.0]) == pytest.approx(1.0)
    empty = HPolytope([[1.0, 0.0], [-1.0, 0.0]], [0.0, -1.0])  # x <= 0 and x >= 1
    assert empty.is_empty()
    with pytest.raises(EmptySetError):
        empty.support([1.0, 0.0])
    with pytest.raises(EmptySetError):
        empty.chebyshev_center()
    assert empty.volume_estimate().value == 0.0
    with pytest.raises(UnboundedSetError):
        half.vertices()


def test_hpolytope_validation():
    with pytest.raises(ValueError, match="length"):
        HPolytope(np.eye(2), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        HPolytope(np.eye(2), [1.0, np.nan])
    with pytest.raises(ValueError, match="2-D"):
        HPolytope([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="method"):
        HPolytope.from_box([0, 0], [1, 1]).volume(method="magic")


def test_normalized_and_intersect():
    P = HPolytope([[2.0, 0.0], [0.0, -3.0], [-1.0, -1.0]], [2.0, 3.0, 5.0])
    Pn = P.normalized()
    np.testing.assert_allclose(np.linalg.norm(Pn.A, axis=1), 1.0)
    pts = np.random.default_rng(3).uniform(-6, 6, size=(3000, 2))
    np.testing.assert_array_equal(P.contains(pts), Pn.contains(pts))
    Q = HPolytope.from_box([0.0, 0.0], [3.0, 3.0])
    R = P.intersect(Q)
    assert R.n_facets == P.n_facets + Q.n_facets
    np.testing.assert_array_equal(R.contains(pts), P.contains(pts) & Q.contains(pts))
    assert R.volume_estimate().value == pytest.approx(3.0, rel=1e-10)  # [0,1] x [0,3]
    disjoint = Q.intersect(Box([5.0, 5.0], [6.0, 6.0]))
    assert disjoint.is_empty() and not Q.is_empty()


def test_remove_redundant_keeps_set():
    sq = HPolytope.from_box([0.0, 0.0], [1.0, 1.0])
    A = np.vstack([sq.A, [[1.0, 1.0]], [[1.0, 0.0]]])  # x + y <= 5 and duplicate x <= 1
    b = np.concatenate([sq.b, [5.0, 1.0]])
    P = HPolytope(A, b)
    R = P.remove_redundant()
    assert R.n_facets == 4
    pts = np.random.default_rng(4).uniform(-1, 2, size=(5000, 2))
    np.testing.assert_array_equal(R.contains(pts), P.contains(pts))
    assert R.volume_estimate().value == pytest.approx(1.0)


def test_monte_carlo_volume_4d_box():
    lo, hi = np.array([0.0, -1.0, 0.0, 2.0]), np.array([1.0, 1.0, 0.5, 3.0])
    cube = HPolytope.from_box(lo, hi)
    est = cube.volume_estimate(rng=0)  # axis-aligned: every bounding-box sample hits
    assert est.method == "monte-carlo"
    assert est.value == pytest.approx(1.0, rel=1e-9)
    # rotated 4-D box {x : lo <= Q^T x <= hi}: true volume 1, bounding box much larger
    Q, _ = np.linalg.qr(np.random.default_rng(11).normal(size=(4, 4)))
    rot = HPolytope(np.vstack([Q.T, -Q.T]), np.concatenate([hi, -lo]))
    est = rot.volume_estimate(rng=0)
    assert est.method == "monte-carlo" and est.stderr > 0
    assert abs(est.value - 1.0) <= 4 * est.stderr
    # diagonal cut x0 + x1 <= 1 of the axis-aligned box keeps 3/4 of it
    cut = cube.intersect(HPolytope([[1.0, 1.0, 0.0, 0.0]], [1.0]))
    assert cut.bounding_box().volume() == pytest.approx(1.0, rel=1e-9)
    est2 = cut.volume_estimate(method="monte-carlo", n_samples=100_000, rng=1)
    assert est2.stderr > 0
    assert abs(est2.value - 0.75) <= 4 * est2.stderr
    exact = cut.volume_estimate(method="exact")
    assert exact.method == "exact" and exact.value == pytest.approx(0.75, rel=1e-10)


def test_sample_inside_and_uniform():
    tri = HPolytope([[-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]], [0.0, 0.0, 2.0])
    X = tri.sample(5000, rng=5)
    assert X.shape == (5000, 2)
    assert tri.contains(X).all()
    np.testing.assert_allclose(X.mean(axis=0), [2 / 3, 2 / 3], atol=0.03)  # centroid


def test_sample_raises_for_hopeless_acceptance():
    # thin diagonal slab in a big bounding box: acceptance ~1e-6
    eps = 1e-6
    slab = HPolytope([[1.0, -1.0], [-1.0, 1.0], [1.0, 0.0], [-1.0, 0.0]], [eps, eps, 1.0, 1.0])
    with pytest.raises(ValueError, match="acceptance"):
        slab.sample(10, rng=0, min_acceptance=1e-3)


# =============================================================================
# Zonotope
# =============================================================================
def test_zonotope_support_and_bbox_closed_form():
    Z = Zonotope([1.0, -1.0], [[1.0, 0.5], [0.0, 2.0]])
    np.testing.assert_allclose(Z.support(np.array([[1.0, 0.0], [0.0, -1.0]])), [2.5, 3.0])
    bb = Z.bounding_box()
    np.testing.assert_allclose(bb.lo, [-0.5, -3.0])
    np.testing.assert_allclose(bb.hi, [2.5, 1.0])


def test_zonotope_2d_volume_equals_shoelace():
    rng = np.random.default_rng(6)
    Z = random_zonotope(rng, 2, 5)
    V = Z.to_hpolytope().vertices()
    assert V.shape[0] == 10  # 2p vertices for a 2-D zonotope in general position
    assert Z.volume() == pytest.approx(shoelace_area(V), rel=1e-10)


def test_zonotope_3d_volume_equals_convex_hull():
    rng = np.random.default_rng(7)
    Z = random_zonotope(rng, 3, 6)
    V = Z.to_hpolytope().vertices()
    assert Z.volume() == pytest.approx(ConvexHull(V).volume, rel=1e-9)
    # and directly from the generator-combination points
    P = Z.center + cube_vertices(6) @ Z.generators.T
    assert Z.volume() == pytest.approx(ConvexHull(P).volume, rel=1e-9)


@pytest.mark.parametrize("n,p,seed", [(2, 4, 0), (3, 5, 1), (4, 7, 2)])
def test_zonotope_hpolytope_vertices_contained_and_facets_tight(n, p, seed):
    Z = random_zonotope(np.random.default_rng(seed), n, p)
    H = Z.to_hpolytope()
    np.testing.assert_allclose(np.linalg.norm(H.A, axis=1), 1.0, rtol=1e-12)
    P = Z.center + cube_vertices(p) @ Z.generators.T
    assert H.contains(P, tol=1e-9).all()
    slack = H.b[:, None] - H.A @ P.T  # [facets, points]
    assert np.all(slack.min(axis=1) <= 1e-9)  # every facet touched by some vertex
    # facet count of a zonotope in general position: 2 C(p, n-1)
    from math import comb

    assert H.n_facets == 2 * comb(p, n - 1)


def test_zonotope_6d_support_matches_hpolytope_lp():
    rng = np.random.default_rng(8)
    Z = random_zonotope(rng, 6, 10)
    H = Z.to_hpolytope()
    D = rng.normal(size=(15, 6))
    hz, hh = Z.support(D), H.support(D)
    np.testing.assert_allclose(hh, hz, rtol=1e-7)


def test_zonotope_parallel_generator_merging():
    g, h = np.array([1.0, 2.0]), np.array([-1.0, 0.5])
    G = np.stack([g, -2.0 * g, h, 3.0 * g, np.zeros(2), 1e-20 * h], axis=1)
    Z = Zonotope([0.5, 0.0], G)
    Zm = Zonotope([0.5, 0.0], np.stack([6.0 * g, h], axis=1))
    assert Z.volume() == pytest.approx(Zm.volume(), rel=1e-12)
    assert Zm.volume() == pytest.approx(4 * abs(np.linalg.det(np.stack([6 * g, h], 1))), rel=1e-12)
    H = Z.to_hpolytope()
    assert H.n_facets == 4  # a parallelogram
    pts = np.random.default_rng(9).uniform(-15, 15, size=(4000, 2))
    np.testing.assert_array_equal(H.contains(pts, tol=1e-9), Zm.contains(pts, tol=1e-9))


def test_zonotope_degenerate_and_1d():
    flat = Zonotope([0.0, 0.0, 0.0], [[1.0, 2.0], [0.0, 1.0], [0.0, 0.0]])
    assert flat.volume() == 0.0
    with pytest.raises(ValueError, match="full-dimensional"):
        flat.to_hpolytope()
    coplanar = Zonotope(np.zeros(3), [[1.0, 0.0, 1.0, 2.0], [0.0, 1.0, 1.0, -1.0], [0.0] * 4])
    assert coplanar.volume() == pytest.approx(0.0, abs=1e-12)
    seg = Zonotope([1.0], [[0.5, -2.0]])
    assert seg.volume() == pytest.approx(5.0)
    H = seg.to_hpolytope()
    assert H.contains([3.5]) and not H.contains([3.6])
    assert Zonotope([0.0, 0.0], np.zeros((2, 0))).volume() == 0.0
    with pytest.raises(ValueError, match="rows"):
        Zonotope([0.0, 0.0], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        Zonotope([0.0, 0.0], [[np.inf, 0.0], [0.0, 1.0]])


def test_zonotope_sample_and_bbox_vs_lp():
    rng = np.random.default_rng(10)
    Z = random_zonotope(rng, 3, 5)
    X = Z.sample(2000, rng)
    assert Z.contains(X).all()
    H = HPolytope(Z.to_hpolytope().A, Z.to_hpolytope().b)  # fresh: LP bounding box
    bb_lp, bb = H.bounding_box(), Z.bounding_box()
    np.testing.assert_allclose(bb_lp.lo, bb.lo, atol=1e-8)
    np.testing.assert_allclose(bb_lp.hi, bb.hi, atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 3), extra=st.integers(0, 3), seed=st.integers(0, 2**32 - 1))
def test_zonotope_property_points_inside_and_support_bound(n, extra, seed):
    rng = np.random.default_rng(seed)
    Z = random_zonotope(rng, n, n + extra)
    beta = rng.uniform(-1.0, 1.0, size=(300, Z.n_generators))
    X = Z.center + beta @ Z.generators.T
    scale = 1.0 + np.abs(Z.generators).sum()
    assert Z.contains(X, tol=1e-9 * scale).all()
    D = rng.normal(size=(8, n))
    assert np.all((X @ D.T).max(axis=0) <= Z.support(D) + 1e-9 * scale)
    S = Z.sample(50, rng)
    assert Z.contains(S).all()


# =============================================================================
# published sets
# =============================================================================
def test_pendulum_zonotope_volume():
    Z = Zonotope([0.0, 0.0], PENDULUM_G)
    assert Z.volume() == pytest.approx(66.86, rel=0.005)
    # cross-check the exact volume against the H-representation's polygon area
    assert Z.to_hpolytope().volume_estimate().value == pytest.approx(Z.volume(), rel=1e-9)


def test_published_sets_file():
    sets = json.loads(PUBLISHED.read_text())["sets"]
    pend = Zonotope(sets["pendulum"]["center"], sets["pendulum"]["generators"])
    assert pend.volume() == pytest.approx(66.86, rel=0.005)

    quad = Zonotope(sets["quadrotor"]["center"], sets["quadrotor"]["generators"])
    assert quad.dim == 6 and quad.n_generators == 24
    assert quad.volume() == pytest.approx(0.463, rel=0.02)

    H = quad.to_hpolytope()  # closed form, no LP: 11,702 facets as in data/published/quadrotor.json
    assert H.A.shape == (11_702, 6) and H._bbox is not None
    c, G = quad.center, quad.generators
    pts = np.vstack([c[None, :], c + 0.999 * G.T, c - 0.999 * G.T])
    assert H.contains(pts).all()
    assert quad.contains(pts).all()
    # a point just outside along the support direction must be rejected
    d = np.ones(6) / np.sqrt(6)
    assert not quad.contains(c + 1.01 * (quad.support(d) - d @ c) * d)


# =============================================================================
# one contract for every representation (reachsafe.sets.base.ConvexSet)
# =============================================================================
def _conformance_cases() -> dict[str, ConvexSet]:
    """Two sets (2-D and 3-D) per representation; a new representation adds its own here."""
    rng = np.random.default_rng(2024)
    return {
        "box-2d": Box([-1.0, 0.5], [2.0, 1.5]),
        "box-3d": Box([-1.0, 0.0, 3.0], [2.0, 0.5, 4.0]),
        "hpolytope-2d": HPolytope([[1.0, 1.0], [-1.0, 2.0], [0.0, -1.0], [-2.0, -1.0], [3.0, -1.0]],
                                  [2.0, 3.0, 1.0, 3.0, 4.0]),
        "hpolytope-3d": hull_polytope(rng.normal(size=(25, 3))),
        "zonotope-2d": Zonotope([0.5, -1.0], [[1.0, 0.3, -0.4, 0.0], [0.2, 1.0, 0.5, 0.7]]),
        "zonotope-3d": random_zonotope(rng, 3, 5),
    }


CONFORMANCE = _conformance_cases()


def test_every_representation_has_conformance_cases():
    assert {type(s) for s in CONFORMANCE.values()} == set(ConvexSet.__subclasses__())


def _lp_support(H: HPolytope, D: np.ndarray) -> np.ndarray:
    """max d^T x s.t. A x <= b by scipy's HiGHS directly (the reference, not HPolytope.support)."""
    out = []
    for d in D:
        res = linprog(-d, A_ub=H.A, b_ub=H.b, bounds=(None, None), method="highs")
        assert res.status == 0
        out.append(float(d @ res.x))
    return np.array(out)


@pytest.mark.parametrize("name", sorted(CONFORMANCE))
def test_representation_conformance(name):
    """dim, contains, support, bounding_box, volume, sample and vertices answer the same questions
    in the same types for every representation, checked against independent references."""
    S = CONFORMANCE[name]
    rng = np.random.default_rng(7)
    assert isinstance(S, ConvexSet)
    V = S.vertices()
    n = S.dim
    assert isinstance(n, int) and V.ndim == 2 and V.shape[1] == n and V.shape[0] >= n + 1

    # sample: [N, n], every point inside
    X = S.sample(3000, rng=1)
    assert X.shape == (3000, n)
    assert S.contains(X).all() and isinstance(S.contains(X[0]), bool) and S.contains(X[0])

    # support: vs the vertices and vs a linear program on the H-representation
    D = rng.normal(size=(40, n))
    h = S.support(D)
    assert h.shape == (40,) and isinstance(S.support(D[0]), float)
    np.testing.assert_allclose(h, (D @ V.T).max(axis=1), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(h[:10], _lp_support(as_hpolytope(S), D[:10]), rtol=1e-7, atol=1e-7)

    # contains: points beyond the support hyperplane are outside
    x0 = X.mean(axis=0)
    scale = float(np.ptp(V, axis=0).max())
    t = (h - D @ x0 + 0.05 * scale * np.linalg.norm(D, axis=1)) / (D * D).sum(axis=1)
    outside = x0 + t[:, None] * D
    assert not S.contains(outside).any() and not S.contains(outside[0])

    # bounding box: a Box, contains the samples, tight (support in +-e_i)
    bb = S.bounding_box()
    assert isinstance(bb, Box) and bb.dim == n and bb.contains(X).all()
    eye = np.eye(n)
    np.testing.assert_allclose(bb.hi, S.support(eye), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bb.lo, -S.support(-eye), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bb.hi, V.max(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bb.lo, V.min(axis=0), rtol=1e-9, atol=1e-9)

    # volume: a float, equal to the hull of the vertices and to a Monte-Carlo estimate in the box
    vol = S.volume()
    assert type(vol) is float
    assert vol == pytest.approx(ConvexHull(V).volume, rel=1e-9)
    N = 200_000
    P = bb.sample(N, rng=2)
    hit = S.contains(P)
    p = hit.mean()
    se = bb.volume() * np.sqrt(p * (1 - p) / N)
    assert abs(vol - bb.volume() * p) <= 4 * se + 1e-12

    # sample is uniform: its mean is the centroid (the mean of the box points that hit)
    centroid = P[hit].mean(axis=0)
    spread = X.std(axis=0)
    assert (np.abs(X.mean(axis=0) - centroid) <= 5 * spread / np.sqrt(len(X)) + 5 * spread / np.sqrt(hit.sum())).all()

    # the H-representation describes the same set
    H = as_hpolytope(S)
    Q = bb.sample(5000, rng=3) * 1.2 - 0.1 * (bb.lo + bb.hi)  # the box, enlarged by 20 % about its centre
    np.testing.assert_array_equal(H.contains(Q), S.contains(Q))
    assert H.volume() == pytest.approx(vol, rel=1e-9)


def test_as_hpolytope_refuses_what_it_does_not_know_with_one_error():
    square = as_hpolytope((np.vstack([np.eye(2), -np.eye(2)]), np.ones(4)))
    assert isinstance(square, HPolytope) and square.volume() == pytest.approx(4.0)
    assert as_hpolytope(square) is square
    for bad in (object(), [np.eye(2), np.ones(2)], (np.eye(2),), "data/pendulum.json"):
        with pytest.raises(
            UnsupportedSetError, match=r"must be an HPolytope, a Box, a Zonotope or a tuple \(A, b\)"
        ) as exc:
            as_hpolytope(bad)
        assert isinstance(exc.value, TypeError) and isinstance(exc.value, UserError) and "\n" not in str(exc.value)
    with pytest.raises(UnsupportedSetError, match="invariant_set must be a SetFile, an HPolytope"):
        as_hpolytope(3, what="invariant_set", also="a SetFile")


def test_vertices_survive_cdds_numerical_inconsistency():
    """Regression: cdd's floating-point double description stopped with "numerical inconsistency" on
    this 13-facet polygon (a boost converter's candidate), and compute-invariant ended in a traceback,
    exit 1.  The vertices are now redone in exact rationals; Qhull's half-space intersection is the
    independent reference."""
    from scipy.spatial import HalfspaceIntersection

    A = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -0.0], [-0.0, -1.0], [0.9413683377578396, 0.337380575414534],
                  [0.8875325240794874, 0.460745069101227], [-0.798863478795321, -0.6015123791303365],
                  [-0.7237845437118899, -0.6900260388447462], [-0.6145411675044251, -0.788884752953369],
                  [-0.4583719003008858, -0.8887604857409869], [0.6897675877797718, 0.7240308521385499],
                  [-0.5972792033997903, -0.8020333865782097], [-0.5612882143745239, -0.8276204084024624]])
    b = np.array([4.999999989999999, 34.99999996, -1.0000000529847951e-08, -15.000000040000002,
                  16.406271451233838, 20.452806066742077, -9.681484700376473, -11.083451219489447,
                  -12.614720272998694, -13.937724904598147, 28.701549943102048, -12.79718074208109,
                  -13.149129021853655])
    P = HPolytope(A, b)
    V = P.vertices()
    centre, _ = P.chebyshev_center()
    ref = HalfspaceIntersection(np.hstack([A, -b[:, None]]), centre).intersections
    assert len(V) == 13
    for v in ref:  # every reference vertex is found
        assert np.min(np.linalg.norm(V - v, axis=1)) < 1e-7
    for v in V:  # and nothing else
        assert np.min(np.linalg.norm(ref - v, axis=1)) < 1e-7
    assert P.volume_estimate().method == "exact" and P.volume() > 0


MAS_3D = pathlib.Path(__file__).parent / "fixtures" / "mas_3d_548_facets.npz"


def _mas_3d() -> HPolytope:
    """A robust maximal admissible set of a linearised aircraft-pitch model (548 facets, 210 closed-loop powers:
    many nearly parallel facets), written by ``compute-invariant`` before the vertex enumeration was fixed."""
    data = np.load(MAS_3D)
    return HPolytope(data["A"], data["b"])


def test_volume_of_a_polytope_with_many_nearly_parallel_facets_matches_monte_carlo():
    """cdd's floating-point double description lost vertices of this set: its hull had 82 % of the volume
    (0.004629 instead of 0.005604), and that figure went into the set file as "exact"."""
    P = _mas_3d()
    exact = P.volume_estimate()
    mc = P.volume_estimate(method="monte-carlo", n_samples=400_000, rng=np.random.default_rng(1))
    assert exact.method == "exact"
    assert abs(exact.value - mc.value) < 5 * mc.stderr
    V = P.vertices()
    assert np.all(V @ P.A.T <= P.b + 1e-9)  # every vertex lies in P


@pytest.mark.slow
def test_volume_of_the_many_facet_polytope_equals_the_exact_rational_vertex_hull():
    """Independent reference: cdd in exact rationals (about a minute), then the hull of its vertices."""
    from reachsafe.sets.hpolytope import _vertices_exact

    P = _mas_3d()
    ref = ConvexHull(np.asarray(_vertices_exact(P.A, P.b), dtype=np.float64)).volume
    assert P.volume() == pytest.approx(ref, rel=1e-9)
