"""Safeguards for any number of actions (m = 1, 2, 3, 4, 6), checked independently of their code.

Two levels:

* the maps on random polytopes ``S = {z : G z <= h}`` (random facets plus the box
  ``[-1, 1]^m``), not only on committed sets: the projection against the exact projection
  (candidate active sets proposed by cvxpy, the one that satisfies the KKT conditions exactly
  in rational arithmetic), to 1e-9 also for actions of size 1e6; membership checked row by row in numpy, the interior
  (Chebyshev radius) by an LP written here (scipy linprog), gradients by finite differences
  (``torch.autograd.gradcheck``, float64);
* whole safeguards of a small m-action system built in the test (a cart driven by m
  thrusters of different gains, with a noise input), whose executed actions must keep
  every noisy successor inside P.

Actions include corners of U, huge values (1e6) and actions already in ``S``.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from itertools import combinations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from reachsafe import UserError
from reachsafe.safeguard_kinds import KIND_NAMES, SHIELDING_KIND_NAMES
from reachsafe.safeguards import make_safeguard
from reachsafe.safeguards.actionset import tolerances
from reachsafe.safeguards.projection import project
from reachsafe.safeguards.raymask import ray_mask, safe_centre

MS = [1, 2, 3, 4, 6]


pytestmark = pytest.mark.usefixtures("one_torch_thread")
HYP = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def chebyshev(G: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and radius of the largest ball in ``{z : G z <= h}`` (LP), radius -1 if empty."""
    m = G.shape[1]
    nrm = np.linalg.norm(G, axis=1)
    res = linprog(np.r_[np.zeros(m), -1.0], A_ub=np.c_[G, nrm], b_ub=h, bounds=[(None, None)] * m + [(None, None)],
                  method="highs")
    return (res.x[:m], -res.fun) if res.status == 0 else (np.zeros(m), -1.0)


def random_polytope(
    rng: np.random.Generator, m: int, B: int, K: int, r_min: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """``G [B, K + 2m, m]``, ``h [B, K + 2m]``: K random facets through the box, each set with an interior."""
    Gs, hs = [], []
    box_G = np.vstack([np.eye(m), -np.eye(m)])
    while len(Gs) < B:
        G = rng.normal(size=(K, m)) * rng.choice([0.3, 1.0, 5.0], size=(K, 1))
        p = rng.uniform(-0.6, 0.6, m)
        h = G @ p + rng.uniform(0.0, 1.0, K) * np.linalg.norm(G, axis=1)
        Gf, hf = np.vstack([G, box_G]), np.r_[h, np.ones(2 * m)]
        if chebyshev(Gf, hf)[1] >= r_min:
            Gs.append(Gf)
            hs.append(hf)
    return np.stack(Gs), np.stack(hs)


def actions_for(rng: np.random.Generator, G: np.ndarray, h: np.ndarray, kind: str) -> np.ndarray:
    B, _, m = G.shape
    if kind == "uniform":
        return rng.uniform(-1.5, 1.5, (B, m))
    if kind == "corner":
        return rng.choice([-1.0, 1.0], size=(B, m)) * rng.choice([1.0, 1.3], size=(B, 1))
    if kind == "huge":
        return rng.choice([-1e6, 1e6], size=(B, m)) * rng.uniform(0.5, 1.0, (B, m))
    # "safe": points of S (convex combination of the Chebyshev centre and a random direction, clipped)
    out = np.empty((B, m))
    for b in range(B):
        c, r = chebyshev(G[b], h[b])
        d = rng.normal(size=m)
        out[b] = c + 0.9 * r * d / np.linalg.norm(d)
    return out


def _solve_rational(K: list, rhs: list) -> list | None:
    """Gaussian elimination over the rationals (exact); None if ``K`` is singular."""
    n = len(rhs)
    rows = [list(r) + [v] for r, v in zip(K, rhs)]
    for col in range(n):
        piv = next((r for r in range(col, n) if rows[r][col] != 0), None)
        if piv is None:
            return None
        rows[col], rows[piv] = rows[piv], rows[col]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                f = rows[r][col] / rows[col][col]
                rows[r] = [x - f * y for x, y in zip(rows[r], rows[col])]
    return [rows[i][n] / rows[i][i] for i in range(n)]


def exact_kkt_point(G: np.ndarray, h: np.ndarray, a: np.ndarray, active: tuple) -> np.ndarray | None:
    """The point ``z = a - N^T lam`` with ``N z = h_N`` (N = rows ``active``), if it satisfies KKT *exactly*.

    Rational arithmetic on the exact values of the doubles: ``lam`` solves ``N N^T lam = N a - h_N``;
    the point is returned (rounded to float64) only if ``lam >= 0`` and ``G z <= h`` hold exactly,
    i.e. if it is the exact projection of ``a`` onto ``{z : G z <= h}`` (KKT is sufficient for this
    convex QP, and its minimiser is unique).
    """
    Gq = [[Fraction(float(v)) for v in row] for row in G]
    hq = [Fraction(float(v)) for v in h]
    aq = [Fraction(float(v)) for v in a]
    N = [Gq[i] for i in active]
    lam = []
    if N:
        K = [[sum(x * y for x, y in zip(r1, r2)) for r2 in N] for r1 in N]
        lam = _solve_rational(K, [sum(x * y for x, y in zip(r, aq)) - hq[i] for r, i in zip(N, active)])
        if lam is None or any(v < 0 for v in lam):
            return None
    z = [aq[j] - sum(v * r[j] for v, r in zip(lam, N)) for j in range(len(aq))]
    if any(sum(x * y for x, y in zip(row, z)) > hi for row, hi in zip(Gq, hq)):
        return None
    return np.array([float(v) for v in z])


def reference_projection(G: np.ndarray, h: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The exact projection of ``a`` onto ``{z : G z <= h}``, independent of reachsafe's solvers.

    Candidate active sets are subsets of at most m rows among those nearly active at a cvxpy
    (Clarabel) solution, screened by their float64 KKT residual; the first candidate that passes
    the *exact* rational KKT check (:func:`exact_kkt_point`) is the projection.  The cvxpy answer
    only proposes rows (it may be off by 1e-3 for ``|a| ~ 1e6``): the threshold for "nearly active"
    grows until a candidate is confirmed, up to all rows.
    """
    import cvxpy as cp

    M, m = G.shape
    if (G @ a <= h).all():
        z = exact_kkt_point(G, h, a, ())
        if z is not None:
            return z
    scale = max(1.0, float(np.abs(a).max()))
    zv = cp.Variable(m)
    try:  # |z - a|^2 up to a constant, scaled for huge a
        cp.Problem(cp.Minimize((cp.sum_squares(zv) - 2 * a @ zv) / scale), [G @ zv <= h]).solve(
            solver=cp.CLARABEL, tol_gap_abs=1e-13, tol_gap_rel=1e-13, tol_feas=1e-13)
        zc = zv.value
    except cp.error.SolverError:
        zc = None
    nrm = np.linalg.norm(G, axis=1)
    slack = (h - G @ zc) / nrm if zc is not None else np.zeros(M)
    tried: set = set()
    for thr in (1e-8, 1e-5, 1e-3, 1e-1, np.inf):
        rows = [int(i) for i in np.argsort(slack) if slack[i] < thr][:12]
        cands = []
        for q in range(1, m + 1):
            for act in combinations(rows, q):
                act = tuple(sorted(act))
                if act in tried:
                    continue
                tried.add(act)
                N = G[list(act)]
                if np.linalg.matrix_rank(N) < q:
                    continue
                lam = np.linalg.solve(N @ N.T, N @ a - h[list(act)])
                z = a - N.T @ lam
                score = max(float((G @ z - h).max()), float(-lam.min())) / scale
                if score < 1e-6:
                    cands.append((score, act))
        for _, act in sorted(cands):
            z = exact_kkt_point(G, h, a, act)
            if z is not None:
                return z
    raise AssertionError("no exact KKT point found")


def in_set(G: np.ndarray, h: np.ndarray, z: np.ndarray, tol: float = 0.0) -> np.ndarray:
    return (np.einsum("bkm,bm->bk", G, z) - h <= tol).all(-1)


# ------------------------------------------------------------------ the maps
@pytest.mark.parametrize("m", MS)
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["uniform", "corner", "huge", "safe"]))
@HYP
def test_projection_is_the_exact_projection(m, seed, kind):
    rng = np.random.default_rng(seed)
    G, h = random_polytope(rng, m, 6, K=int(rng.integers(1, 3 * m + 2)))
    a = actions_for(rng, G, h, kind)
    z = project(torch.tensor(a), torch.tensor(G), torch.tensor(h), tolerances(torch.float64)).numpy()
    assert np.isfinite(z).all()
    assert in_set(G, h, z, 1e-12 * (1 + np.abs(a).max())).all()  # float64 rounding grows with |a|
    for b in range(G.shape[0]):
        ref = reference_projection(G[b], h[b], a[b])  # exact (rational KKT check), also for |a| ~ 1e6
        assert np.abs(z[b] - ref).max() <= 1e-9, (b, z[b], ref)
    if kind == "safe":
        np.testing.assert_array_equal(z, a)


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("mapping", ["linear", "tanh"])
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["uniform", "corner", "huge", "safe"]))
@HYP
def test_ray_mask_lands_in_the_set(m, mapping, seed, kind):
    rng = np.random.default_rng(seed)
    G, h = random_polytope(rng, m, 6, K=int(rng.integers(1, 3 * m + 2)))
    a = actions_for(rng, G, h, kind)
    Gt, ht, tol = torch.tensor(G), torch.tensor(h), tolerances(torch.float64)
    lo, hi = -torch.ones(m, dtype=torch.float64), torch.ones(m, dtype=torch.float64)
    c = safe_centre(Gt, ht, tol).numpy()
    assert in_set(G, h, c, -1e-9).all(), "centre not strictly inside"
    z = ray_mask(torch.tensor(a), Gt, ht, lo, hi, tol, mapping).numpy()
    assert np.isfinite(z).all() and in_set(G, h, z, 1e-12).all()
    # the ray mask keeps the direction from the centre
    d_in, d_out = a - c, z - c
    cos = (d_in * d_out).sum(-1) / (np.linalg.norm(d_in, axis=-1) * np.linalg.norm(d_out, axis=-1) + 1e-300)
    assert ((cos > 1 - 1e-9) | (np.linalg.norm(d_out, axis=-1) < 1e-9)).all()


@pytest.mark.parametrize("m", [1, 2, 3, 4, 6])
def test_analytic_centre_matches_an_independent_newton(m):
    """m >= 3: the centre is the weighted analytic centre; checked by its optimality condition."""
    if m < 3:
        pytest.skip("closed-form centres for m <= 2 are tested in test_safeguards.py")
    from reachsafe.safeguards.centre import row_weights

    rng = np.random.default_rng(m)
    G, h = random_polytope(rng, m, 20, K=2 * m)
    Gt, ht = torch.tensor(G), torch.tensor(h)
    c = safe_centre(Gt, ht, tolerances(torch.float64)).numpy()
    K = G.shape[1] - 2 * m
    lo, hi = -torch.ones(m, dtype=torch.float64), torch.ones(m, dtype=torch.float64)
    w = np.c_[row_weights(Gt[:, :K], ht[:, :K], lo, hi).numpy(), np.ones((20, 2 * m))]
    s = h - np.einsum("bkm,bm->bk", G, c)
    assert (s[w > 0] > 0).all()
    grad = np.einsum("bk,bkm->bm", np.where(w > 0, w / np.where(w > 0, s, 1.0), 0.0), G)  # = 0 at the centre
    scale = np.einsum("bk,bkm->bm", np.where(w > 0, w / np.where(w > 0, s, 1.0), 0.0), np.abs(G))
    assert (np.abs(grad) <= 1e-8 * (1 + scale)).all()


@pytest.mark.parametrize("m", [1, 2, 3, 4, 6])
def test_projection_gradients_match_finite_differences(m):
    rng = np.random.default_rng(100 + m)
    G, h = random_polytope(rng, m, 3, K=m + 2, r_min=0.1)
    a = rng.uniform(-1.6, 1.6, (3, m))
    K = G.shape[1] - 2 * m
    box_G, box_h = torch.tensor(G[:, K:]), torch.tensor(h[:, K:])

    def f(a_, Gk, hk):
        return project(a_, torch.cat([Gk, box_G], 1), torch.cat([hk, box_h], 1))

    args = (torch.tensor(a, requires_grad=True), torch.tensor(G[:, :K], requires_grad=True),
            torch.tensor(h[:, :K], requires_grad=True))
    assert torch.autograd.gradcheck(f, args, eps=1e-7, atol=1e-6)


@pytest.mark.parametrize(
    "m, states", [(1, 3), (2, 3), (3, 3), (4, 3), (6, 1), pytest.param(6, 3, marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("mapping", ["linear", "tanh"])
def test_ray_mask_gradients_match_finite_differences(m, states, mapping):
    rng = np.random.default_rng(200 + m)
    G, h = random_polytope(rng, m, states, K=m + 1, r_min=0.1)
    a = rng.uniform(-1.6, 1.6, (states, m))
    K = G.shape[1] - 2 * m
    box_G, box_h = torch.tensor(G[:, K:]), torch.tensor(h[:, K:])
    lo, hi = -torch.ones(m, dtype=torch.float64), torch.ones(m, dtype=torch.float64)
    tol = tolerances(torch.float64)

    def f(a_, Gk, hk):
        return ray_mask(a_, torch.cat([Gk, box_G], 1), torch.cat([hk, box_h], 1), lo, hi, tol, mapping)

    args = (torch.tensor(a, requires_grad=True), torch.tensor(G[:, :K], requires_grad=True),
            torch.tensor(h[:, :K], requires_grad=True))
    assert torch.autograd.gradcheck(f, args, eps=1e-7, atol=1e-5)


# ------------------------------------------------------- whole safeguards, m actions
@functools.lru_cache(maxsize=None)
def thruster_cart(m: int):
    """A cart on a rail driven by m thrusters with gains 1, -0.5, 0.8, ... and a noisy push (built here)."""
    from reachsafe.systems.compiled import CompiledSystem
    from reachsafe.systems.definition import SystemDefinition, exact, symbols

    p, v = symbols("p v")
    acts = symbols(" ".join(f"a{i}" for i in range(m)))
    acts = acts if isinstance(acts, tuple) else (acts,)
    (w,) = symbols("w")
    gains = [exact(g) for g in ("1", "-0.5", "0.8", "0.3", "-0.7", "0.6")[:m]]
    dt = exact("0.1")
    v_next = v + dt * (sum(g * a for g, a in zip(gains, acts)) - exact("0.2") * v + w)
    d = SystemDefinition(name=f"thruster_cart_{m}", description="test system", state=(p, v), action=acts,
                         noise=(w,), step=(p + dt * v_next, v_next), params={}, constraint_lo=(-exact(1), -exact(1)),
                         constraint_hi=(exact(1), exact(1)), noise_lo=(-exact("0.1"),), noise_hi=(exact("0.1"),),
                         reward=-(p**2), observation=(p, v), dt=dt)
    return CompiledSystem(d)


def successors_inside(system, A, b, x, a_s, tol=1e-9) -> np.ndarray:
    """[B] bool: ``x+ = f(x, a_s, w)`` is in ``{A x <= b}`` for every vertex ``w`` of the noise box W.

    ``f`` is affine in ``w``, so every facet's worst case over W is at a vertex: this is the exact
    membership of ``a_s`` in ``S(x)``, from the model's step alone (no safeguard code)."""
    from itertools import product

    nr = np.linalg.norm(A, axis=1)
    A, b = A / nr[:, None], b / nr
    ok = np.ones(len(x), dtype=bool)
    for w in product(*zip(system.noise_lo, system.noise_hi)):
        xn = system.step(x, a_s, np.broadcast_to(np.asarray(w, dtype=float), (len(x), system.p)))
        ok &= (xn @ A.T - b <= tol).all(-1)
    return ok


@pytest.mark.parametrize("m", [3, 4, 6])
@pytest.mark.parametrize("kind", tuple(KIND_NAMES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_whole_safeguard_executes_safe_actions(m, kind, dtype):
    system = thruster_cart(m)
    # a polytope in the state box with slanted facets (invariance is not needed: empty S(x) is counted)
    A = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    b = np.array([0.9, 0.9, 0.9, 0.9, 1.2, 1.2])
    sg = make_safeguard(kind, system, (A, b))
    rng = np.random.default_rng(m)
    x = rng.uniform(-0.9, 0.9, (400, 2))
    x = x[(x @ A.T <= b).all(-1)]
    a = np.concatenate([rng.uniform(-1.5, 1.5, (len(x) - 20, m)), np.full((20, m), 1e6)])
    out, info = sg(torch.tensor(x, dtype=dtype), torch.tensor(a, dtype=dtype), return_info=True)
    unsafe = info.unsafe.numpy()
    ok = successors_inside(system, A, b, x, out.double().numpy())
    if kind == "none":
        assert (ok | unsafe).all() and unsafe.any()
        return
    assert (ok | unsafe).all() and ok[~unsafe].all()
    assert info.n_unsafe == info.n_empty  # only states without any safe action are not safe
    # a safe action is returned unchanged by the projection (up to rounding to dtype at the boundary)
    if kind == "projection":
        x_in = torch.tensor(x[ok], dtype=dtype)
        again = sg(x_in, out[torch.tensor(ok)])
        torch.testing.assert_close(again, out[torch.tensor(ok)], rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("m", [3, 4])
def test_whole_safeguard_gradients_reach_the_state(m):
    system = thruster_cart(m)
    A = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    b = np.array([0.9, 0.9, 0.9, 0.9])
    x = torch.tensor([[0.85, 0.5], [0.0, 0.88], [-0.5, -0.8]], dtype=torch.float64, requires_grad=True)
    a = torch.tensor(np.random.default_rng(m).uniform(-1.5, 1.5, (3, m)), requires_grad=True)
    for kind in SHIELDING_KIND_NAMES:
        sg = make_safeguard(kind, system, (A, b))
        assert torch.autograd.gradcheck(lambda xx, aa: sg(xx, aa), (x, a), eps=1e-7, atol=1e-5), kind


@pytest.mark.parametrize("m", [3, 6])
def test_nan_and_inf_actions_are_refused_with_one_line(m):
    system = thruster_cart(m)
    sg = make_safeguard("projection", system, (np.eye(2), np.ones(2)))
    x = torch.zeros(3, 2)
    for bad in (float("nan"), float("inf"), -float("inf")):
        a = torch.zeros(3, m)
        a[1, m - 1] = bad
        with pytest.raises(UserError, match="actions contain NaN or inf") as exc:
            sg(x, a)
        assert "\n" not in str(exc.value)


def test_more_than_eight_actions_are_refused_with_one_line():
    from reachsafe.systems.compiled import CompiledSystem
    from reachsafe.systems.definition import SystemDefinition, exact, symbols

    (p,) = symbols("p")
    acts = symbols(" ".join(f"a{i}" for i in range(9)))
    d = SystemDefinition(
        name="nine",
        description="test",
        state=(p,),
        action=acts,
        noise=(),
        step=(p + sum(acts) / 100,),
        params={},
        constraint_lo=(-exact(1),),
        constraint_hi=(exact(1),),
        noise_lo=(),
        noise_hi=(),
        reward=-(p**2),
        observation=(p,),
        dt=exact("0.1"),
    )
    with pytest.raises(UserError, match="m <= 8") as exc:
        make_safeguard("projection", CompiledSystem(d), (np.eye(1), np.ones(1)))
    assert "\n" not in str(exc.value)


def test_docking_sled_example_every_safeguard_is_safe():
    """The m = 3 example model file: every safeguard's executed action keeps all noisy successors in P."""
    from pathlib import Path

    from reachsafe import get_system

    system = get_system(str(Path(__file__).resolve().parents[1] / "examples" / "docking_sled.py"))
    assert system.m == 3
    A = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.3, 1.0], [-0.3, -1.0]])
    b = np.array([1.0, 1.0, 0.4, 0.4, 0.35, 0.35])
    rng = np.random.default_rng(5)
    x = rng.uniform([-1, -0.4], [1, 0.4], (300, 2))
    x = x[(x @ A.T <= b).all(-1)]
    a = rng.uniform(-1.5, 1.5, (len(x), 3))
    for kind in SHIELDING_KIND_NAMES:
        out, info = make_safeguard(kind, system, (A, b), empty="fallback")(torch.tensor(x), torch.tensor(a),
                                                                           return_info=True)
        ok = successors_inside(system, A, b, x, out.numpy())
        assert (ok | info.unsafe.numpy()).all() and info.n_unsafe == info.n_empty, kind


# ------------------------------------------------------------------ devices
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["pendulum", "quadrotor", "thruster_cart_3"])
def test_safeguards_and_simulator_run_on_cuda(name):
    """Every safeguard and the simulator on a CUDA device: same values and gradients as on the CPU
    (float64), outputs and gradients on the device (no hidden CPU tensors)."""
    from pathlib import Path

    from reachsafe import get_system, load_set

    root = Path(__file__).resolve().parents[1]
    if name == "thruster_cart_3":
        system = thruster_cart(3)
        A = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
        sset = (A, np.array([0.9, 0.9, 0.9, 0.9, 1.2, 1.2]))
        x = np.random.default_rng(0).uniform(-0.4, 0.4, (64, 2))
    else:
        system, sset = get_system(name), load_set(root / "data" / f"{name}.json")
        from reachsafe.safeguards.bench import states_with_safe_actions

        x = states_with_safe_actions(sset, system, 64, np.random.default_rng(0), torch.float64).numpy()
    rng = np.random.default_rng(1)
    a = rng.uniform(-1.5, 1.5, (len(x), system.m))
    w = rng.uniform(system.noise_lo, system.noise_hi, (len(x), system.p))
    for kind in KIND_NAMES:
        res = {}
        for dev in ("cpu", "cuda"):
            sg = make_safeguard(kind, system, sset, outside="fallback").to(dev)
            xs = torch.tensor(x, device=dev, requires_grad=True)
            as_ = torch.tensor(a, device=dev, requires_grad=True)
            out = sg(xs, as_)
            nxt = system.step(xs, out, torch.tensor(w, device=dev))
            (out.sum() + nxt.sum()).backward()
            assert out.device.type == dev and nxt.device.type == dev and xs.grad.device.type == dev
            res[dev] = [t.detach().cpu() for t in (out, nxt, xs.grad, as_.grad)]
        for c, g in zip(res["cpu"], res["cuda"]):
            torch.testing.assert_close(g, c, rtol=0, atol=1e-9)
