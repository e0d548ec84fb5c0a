"""The online safeguards (reachsafe.safeguards), checked independently of their own code.

Safety is checked the way it is used: successors ``f(x, a_s, w)`` of the *returned* action
under every noise vertex (the model is affine in ``w``, so vertices suffice) must lie in
``P``; computed in float64 numpy from the compiled model, not from the safeguard's ``G, h``.

Quadrotor: ``data/published/quadrotor.json`` is not invariant (a few boundary states have an
empty ``S(x)``).  Rather than building another set, the quadrotor tests keep only states
whose ``S(x)`` contains a ball of radius ``r_min`` (checked per state by an independent
scipy LP, the Chebyshev radius of ``S(x)``).  This is legitimate for testing the *map*
(the safeguard is only required to be safe where a safe action exists); the empty case is
tested separately (fallback, counts, ``empty="raise"``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from reachsafe import UserError, get_system, load_set
from reachsafe.safeguard_kinds import SHIELDING_KIND_NAMES
from reachsafe.safeguards import (KINDS, NoSafeguard, RayMaskSafeguard, Safeguard, SafeguardInfo,
                                  TanhRayMaskSafeguard, make_safeguard)
from reachsafe.sets import Box, HPolytope, as_hpolytope

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")
PUB = ROOT / "data" / "published"
SAFE_KINDS = tuple(SHIELDING_KIND_NAMES)  # the kinds that shield, from the registry


# ------------------------------------------------------------------ helpers
@functools.lru_cache(maxsize=None)
def setfile(name: str):
    return load_set(PUB / f"{name}.json")


@functools.lru_cache(maxsize=None)
def guard(kind: str, name: str, **kw):
    return make_safeguard(kind, get_system(name), setfile(name), **kw)


def normalised(A, b):
    nr = np.linalg.norm(A, axis=1)
    return A / nr[:, None], b / nr


def noise_vertices(system) -> np.ndarray:
    lo, hi = system.noise_lo, system.noise_hi
    grids = np.meshgrid(*[[l, h] for l, h in zip(lo, hi)], indexing="ij")
    return np.stack([g.ravel() for g in grids], -1)


def action_rows(system, A, b, x):
    """Independent numpy ``G, h`` (without the box) of ``S(x)`` for states ``x [N, n]``."""
    c, B, E = system.affine(x)
    AE = np.einsum("kn,bnp->bkp", A, E)
    wc = 0.5 * (system.noise_lo + system.noise_hi)
    wr = 0.5 * (system.noise_hi - system.noise_lo)
    return np.einsum("kn,bnm->bkm", A, B), b - c @ A.T - np.abs(AE) @ wr - AE @ wc


def successors_in_P(system, A, b, x, a, tol=1e-9) -> np.ndarray:
    """[N] bool: every successor under every noise vertex satisfies ``A x+ <= b + tol`` and ``a`` in U."""
    An, bn = normalised(A, b)
    ok = np.all((a >= system.action_lo) & (a <= system.action_hi), axis=-1)
    for w in noise_vertices(system):
        xn = system.step_unwrapped(x, a, np.broadcast_to(w, (x.shape[0], len(w))))
        ok &= np.all(xn @ An.T <= bn + tol, axis=-1)
    return ok


def chebyshev_radius(G: np.ndarray, h: np.ndarray, lo, hi) -> float:
    """Radius of the largest ball in {a in [lo, hi] : G a <= h} (-1 if empty), by scipy LP."""
    m = G.shape[1]
    Gf = np.vstack([G, np.eye(m), -np.eye(m)])
    hf = np.concatenate([h, hi, -lo])
    nr = np.linalg.norm(Gf, axis=1)
    res = linprog(np.r_[np.zeros(m), -1.0], A_ub=np.c_[Gf, nr], b_ub=hf,
                  bounds=[(None, None)] * m + [(None, 1.0)], method="highs")
    return -res.fun if res.status == 0 else -1.0


def sample_states(name: str, N: int, rng: np.random.Generator, boundary: float) -> np.ndarray:
    """States of P: along random rays from the Chebyshev centre, a fraction ``boundary`` of them
    within 1e-6 of the boundary (exit distance minus U(0, 1e-6))."""
    sf = setfile(name)
    A, b = normalised(sf.A, sf.b)
    x0, _ = sf.polytope().chebyshev_center()
    d = rng.normal(size=(N, A.shape[1]))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    Ad = d @ A.T
    t = np.where(Ad > 0, (b - A @ x0) / np.where(Ad > 0, Ad, 1.0), np.inf).min(1)
    frac = rng.uniform(0.0, 1.0, N)
    near = rng.uniform(size=N) < boundary
    s = np.where(near, t - rng.uniform(0.0, 1e-6, N), frac * t)
    x = x0 + s[:, None] * d
    assert np.all(x @ A.T <= b + 1e-12)
    return x


def states_with_safe_actions(name: str, N: int, rng, boundary: float, r_min: float) -> np.ndarray:
    x = sample_states(name, N, rng, boundary)
    if name == "pendulum":  # published set, believed invariant (min slack 0.21)
        return x
    sysm, sf = get_system(name), setfile(name)
    A, b = normalised(sf.A, sf.b)
    G, h = action_rows(sysm, A, b, x)
    # rows that cannot bind in the Chebyshev LP (max_U g.a + |g| <= h, radius <= 1) are dropped first
    rows = np.abs(G).sum(-1) + np.linalg.norm(G, axis=-1) > h
    keep = [chebyshev_radius(G[i][rows[i]], h[i][rows[i]], sysm.action_lo, sysm.action_hi) > r_min for i in range(N)]
    return x[np.array(keep, dtype=bool)]


def random_actions(m: int, N: int, rng, spread: float = 1.5) -> np.ndarray:
    return rng.uniform(-spread, spread, size=(N, m))


# ---------------------------------------------------------- safety (hypothesis)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(SAFE_KINDS),
       dtype=st.sampled_from([torch.float64, torch.float32]), boundary=st.floats(0.0, 1.0),
       passthrough=st.booleans())
def test_pendulum_outputs_are_safe(seed, kind, dtype, boundary, passthrough):
    rng = np.random.default_rng(seed)
    x = sample_states("pendulum", 64, rng, boundary)
    a = random_actions(1, 64, rng)
    sg = guard(kind, "pendulum", passthrough=passthrough)
    out, info = sg(torch.tensor(x, dtype=dtype), torch.tensor(a, dtype=dtype), return_info=True)
    assert out.dtype == dtype
    a_s = out.detach().double().numpy()
    sf = setfile("pendulum")
    assert successors_in_P(get_system("pendulum"), sf.A, sf.b, x, a_s).all()
    assert info.n_unsafe == 0 and info.n_empty == 0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(SAFE_KINDS),
       dtype=st.sampled_from([torch.float64, torch.float32]), boundary=st.floats(0.0, 1.0))
def test_quadrotor_outputs_are_safe(seed, kind, dtype, boundary):
    rng = np.random.default_rng(seed)
    r_min = 1e-6 if dtype == torch.float64 else 1e-4
    x = states_with_safe_actions("quadrotor", 40, rng, boundary, r_min)
    a = random_actions(2, x.shape[0], rng)
    sg = guard(kind, "quadrotor")
    out, info = sg(torch.tensor(x, dtype=dtype), torch.tensor(a, dtype=dtype), return_info=True)
    a_s = out.detach().double().numpy()
    sf = setfile("quadrotor")
    assert successors_in_P(get_system("quadrotor"), sf.A, sf.b, x, a_s).all()
    assert info.n_unsafe == 0


# ------------------------------------------------------- projection vs. cvxpy
def cvxpy_projection(G: np.ndarray, h: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Reference QP; rows implied by the box (``|g|_1 <= h``, box rows last) are dropped first."""
    import cvxpy as cp

    keep = np.abs(G).sum(1) > h
    keep[-2 * a.shape[0]:] = True
    z = cp.Variable(a.shape[0])
    cp.Problem(cp.Minimize(cp.sum_squares(z - a)), [G[keep] @ z <= h[keep]]).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    return z.value


@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
def test_projection_matches_cvxpy(name):
    rng = np.random.default_rng(1)
    sysm = get_system(name)
    x = states_with_safe_actions(name, 12, rng, 0.5, 1e-3)[:6]
    a = random_actions(sysm.m, x.shape[0], rng, 1.3)
    sg = guard("projection", name, tighten=1e-12, margin=0.0)
    G, h = sg.safe_action_set(torch.tensor(x))
    out = sg(torch.tensor(x), torch.tensor(a)).numpy()
    for i in range(x.shape[0]):
        ref = cvxpy_projection(G[i].numpy(), h[i].numpy(), a[i])
        assert np.allclose(out[i], ref, atol=1e-6), (i, out[i], ref)


@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
def test_projection_leaves_safe_actions_unchanged(name):
    rng = np.random.default_rng(2)
    sysm = get_system(name)
    x = torch.tensor(states_with_safe_actions(name, 20, rng, 0.3, 1e-3))
    sg = guard("projection", name)
    # safe actions: the ray-mask centre pulled halfway to random points of U stays inside S(x)
    c = guard("raymask", name).centre(x)
    a = c + 0.5 * (sg(x, torch.tensor(random_actions(sysm.m, x.shape[0], rng, 1.0))) - c)
    out, info = sg(x, a, return_info=True)
    assert torch.equal(out, a)
    assert not info.intervened.any() and info.n_fallback == 0


def test_large_facet_path_equals_direct_path():
    """Constraint generation (few facets kept) gives the same result as using every facet."""
    rng = np.random.default_rng(3)
    sf = setfile("quadrotor")
    rows = rng.choice(sf.A.shape[0], 300, replace=False)
    A, b = sf.A[rows], sf.b[rows]
    x = torch.tensor(sample_states("quadrotor", 64, rng, 0.5))
    a = torch.tensor(random_actions(2, 64, rng))
    for kind in SAFE_KINDS:
        cg = make_safeguard(kind, "quadrotor", (A, b), direct_facets=4)
        full = make_safeguard(kind, "quadrotor", (A, b), direct_facets=400)
        assert torch.allclose(cg(x, a), full(x, a), atol=1e-10, rtol=0)


# ---------------------------------------------------------------- gradients
def interior_points(name: str, N: int, seed: int):
    rng = np.random.default_rng(seed)
    x = states_with_safe_actions(name, 3 * N, rng, 0.0, 1e-2)[:N]
    return torch.tensor(x), torch.tensor(random_actions(get_system(name).m, x.shape[0], rng, 1.3))


@pytest.mark.parametrize("kind", SAFE_KINDS)
def test_gradients_match_finite_differences_pendulum(kind):
    x, a = interior_points("pendulum", 6, 4)
    sg = guard(kind, "pendulum")
    assert torch.autograd.gradcheck(lambda xx, aa: sg(xx, aa), (x.requires_grad_(), a.requires_grad_()),
                                    eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("kind", SAFE_KINDS)
def test_gradients_match_finite_differences_quadrotor(kind):
    """A 300-facet subset of the published set: exercises constraint generation, stays fast."""
    rng = np.random.default_rng(5)
    sf = setfile("quadrotor")
    rows = rng.choice(sf.A.shape[0], 300, replace=False)
    sg = make_safeguard(kind, "quadrotor", (sf.A[rows], sf.b[rows]), direct_facets=4)
    x = torch.tensor(sample_states("quadrotor", 4, rng, 0.0))
    a = torch.tensor(random_actions(2, 4, rng, 1.3))
    assert torch.autograd.gradcheck(lambda xx, aa: sg(xx, aa), (x.requires_grad_(), a.requires_grad_()),
                                    eps=1e-7, atol=1e-5)


def test_projection_jacobian_on_an_edge_is_tangent_projector():
    x, a = interior_points("quadrotor", 8, 6)
    sg = guard("projection", "quadrotor")
    a = a.requires_grad_()
    sg(x, a)
    for i in range(x.shape[0]):
        J = torch.autograd.functional.jacobian(lambda aa: sg(x[i:i + 1], aa), a[i:i + 1].detach())[0, :, 0, :]
        ev = torch.linalg.eigvalsh(0.5 * (J + J.T))
        # identity (inside), rank-1 projector (edge) or zero (vertex)
        assert any(torch.allclose(ev, torch.tensor(e, dtype=ev.dtype), atol=1e-8)
                   for e in ([1.0, 1.0], [0.0, 1.0], [0.0, 0.0])), ev


@pytest.mark.parametrize("kind", SAFE_KINDS)
def test_passthrough_gradient_is_identity(kind):
    x, a = interior_points("pendulum", 16, 7)
    sg = guard(kind, "pendulum", passthrough=True)
    a = (3 * a).requires_grad_()  # mostly outside U: the map moves them
    x = x.requires_grad_()
    out = sg(x, a)
    assert not torch.equal(out, a)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    assert torch.equal(a.grad, w)
    assert x.grad is None or torch.count_nonzero(x.grad) == 0


def test_regularizer():
    sg = guard("projection", "pendulum")
    a = torch.tensor([[2.0], [0.0]], dtype=torch.float64, requires_grad=True)
    a_s = torch.tensor([[1.0], [0.0]], dtype=torch.float64, requires_grad=True)
    r = sg.regularizer(a, a_s, lam=0.5)
    assert r.item() == pytest.approx(0.5 * (1.0 + 0.0) / 2)
    r.backward()
    assert a.grad[0, 0] == pytest.approx(0.5 * 2 * (2.0 - 1.0) / 2)  # pushes a towards a_s
    assert a_s.grad is None


# ---------------------------------------------------------------- ray mask
@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
@pytest.mark.parametrize("cls", [RayMaskSafeguard, TanhRayMaskSafeguard])
def test_raymask_centre_is_fixed_point_with_finite_gradient(name, cls):
    x, _ = interior_points(name, 6, 8)
    sg = cls(name, setfile(name))
    c = sg.centre(x).detach()
    a = c.clone().requires_grad_()
    xs = x.clone().requires_grad_()
    out = sg(xs, a)
    assert torch.allclose(out, c, atol=1e-12)
    out.sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(xs.grad).all()
    assert (a.grad.abs() > 0).any()
    # strictly inside S(x): every row has positive slack
    G, h = sg.safe_action_set(x)
    assert ((G @ c.unsqueeze(-1)).squeeze(-1) < h).all()


@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
@pytest.mark.parametrize("kind", ["raymask", "raymask-tanh"])
def test_raymask_monotone_along_rays(name, kind):
    x, a = interior_points(name, 5, 9)
    sg = guard(kind, name)
    c = sg.centre(x).detach()
    d = torch.nn.functional.normalize(a - c, dim=-1)
    prev = torch.zeros(x.shape[0], dtype=x.dtype)
    for s in np.linspace(0.0, 3.0, 31):
        out = sg(x, c + s * d)
        r = (out - c).norm(dim=-1)
        assert (r >= prev - 1e-12).all()
        if s > 0:  # stays on the same ray
            assert torch.allclose((out - c) / r.clamp_min(1e-300).unsqueeze(-1), d, atol=1e-8) or s < 1e-9
        prev = r
    sf = setfile(name)
    assert successors_in_P(get_system(name), sf.A, sf.b, x.numpy(), out.numpy()).all()


def test_raymask_degenerate_set_is_a_point():
    """S(x) a single point: the mask returns that point with finite gradients, no NaN."""
    system = get_system("pendulum")
    x = torch.tensor([[0.3, -1.0]], dtype=torch.float64)
    c, B, E = system.affine(x.numpy())
    g = B[0, :, 0]
    # facets +-n.x+ <= +-n.x+(a0) + w_r with n || B: S(x) = {a0}; a0 chosen so that n.x+(a0) = n.x (x in P)
    n = g / np.linalg.norm(g)
    a0 = float(n @ (x.numpy()[0] - c[0]) / (n @ g))
    assert abs(a0) < 0.5
    wr = 0.1 * abs(n @ E[0, :, 0])
    b_hi = n @ (c[0] + g * a0) + wr
    b_lo = -n @ (c[0] + g * a0) + wr
    A = np.vstack([n, -n, np.eye(2), -np.eye(2)])
    b = np.r_[b_hi, b_lo, 10, 20, 10, 20]
    for kind in SAFE_KINDS:
        sg = make_safeguard(kind, system, (A, b), tighten=1e-12, margin=0.0)
        a = torch.tensor([[0.9]], dtype=torch.float64, requires_grad=True)
        out = sg(x.clone().requires_grad_(), a)
        assert abs(out.item() - a0) < 1e-6
        out.sum().backward()
        assert torch.isfinite(a.grad).all()


# -------------------------------------------------------------- integration
@pytest.mark.parametrize("kind", SAFE_KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_closed_loop_pendulum_stays_in_set(kind, dtype):
    """Step the simulator with what the safeguard returns (what is executed), under random and
    adversarial-vertex noise and a policy that pushes outwards, and check every state."""
    system, sf = get_system("pendulum"), setfile("pendulum")
    A, b = normalised(sf.A, sf.b)
    rng = np.random.default_rng(10)
    sg = guard(kind, "pendulum")
    x = torch.tensor(sample_states("pendulum", 256, rng, 0.5), dtype=dtype)
    for _ in range(40):
        a = torch.sign(x[:, 1:2]) * 2.0 + torch.tensor(rng.normal(0, 0.5, (x.shape[0], 1)), dtype=dtype)
        a_exec = sg(x, a)
        w = torch.tensor(rng.choice([-0.1, 0.1], size=(x.shape[0], 1)), dtype=dtype)
        x = system.step(x, a_exec, w)
        assert (x.double().numpy() @ A.T <= b + 1e-5).all()
        assert sg.last_info.n_unsafe == 0


def test_closed_loop_quadrotor_one_step():
    system = get_system("quadrotor")
    rng = np.random.default_rng(11)
    x = states_with_safe_actions("quadrotor", 64, rng, 0.5, 1e-6)
    sg = guard("projection", "quadrotor")
    a_exec = sg(torch.tensor(x), torch.tensor(random_actions(2, x.shape[0], rng, 2.0)))
    sf = setfile("quadrotor")
    A, b = normalised(sf.A, sf.b)
    for w in noise_vertices(system):
        xn = system.step(torch.tensor(x), a_exec, torch.tensor(w).expand(x.shape[0], 2))
        assert (xn.numpy() @ A.T <= b + 1e-9).all()


# ------------------------------------------------------- empty / outside
def test_state_outside_set_raises_or_falls_back():
    x = torch.tensor([[2.69, 11.9], [0.0, 0.0]], dtype=torch.float64)  # first: far outside P
    a = torch.zeros(2, 1, dtype=torch.float64)
    with pytest.raises(UserError, match="outside the invariant set") as exc:
        guard("projection", "pendulum")(x, a)
    assert "\n" not in str(exc.value)
    sg = make_safeguard("projection", "pendulum", setfile("pendulum"), outside="fallback")
    out, info = sg(x, a, return_info=True)
    assert info.n_outside == 1 and info.n_empty == 1 and info.n_unsafe == 1
    assert torch.isfinite(out).all() and (out.abs() <= 1).all()
    assert out[0, 0] == pytest.approx(-1.0)  # the min-max action brakes as hard as possible
    assert out[1, 0] == 0.0  # the state inside is handled normally


def test_empty_safe_set_inside_P_fallback_and_raise():
    """A set that is not invariant at x = (0, 5): theta+ >= 0.05 * (5 - 4.5 - 0.005) > 0 = b."""
    A = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    b = np.array([0.0, 2.7, 12.0, 12.0])
    x = torch.tensor([[0.0, 5.0]], dtype=torch.float64)
    a = torch.zeros(1, 1, dtype=torch.float64)
    with pytest.raises(UserError, match="S\\(x\\) is empty for 1 states"):
        make_safeguard("raymask", "pendulum", (A, b), empty="raise")(x, a)
    sg = make_safeguard("raymask", "pendulum", (A, b))
    with pytest.warns(RuntimeWarning, match="not invariant"):
        out, info = sg(x, a, return_info=True)
    assert info.n_empty == 1 and info.n_unsafe == 1 and info.n_fallback == 1 and info.n_outside == 0
    assert out[0, 0] == pytest.approx(-1.0)


def test_quadrotor_empty_safe_set_gets_minmax_action():
    """States outside the published set (outside='fallback') whose S(x) is empty: the returned
    action attains the LP optimum of min_a max_i (g_i . a - h_i) (m = 2 bisection path)."""
    system, sf = get_system("quadrotor"), setfile("quadrotor")
    A, b = normalised(sf.A, sf.b)
    x0, _ = sf.polytope().chebyshev_center()
    x = np.stack([x0 + [0, 0, 0, 0, 0.8, 0], x0 + [0, 0, 0.1, 0.6, 0, 0.5], x0])
    G, h = action_rows(system, A, b, x)
    sg = make_safeguard("projection", system, sf, outside="fallback")
    out, info = sg(torch.tensor(x), torch.zeros(3, 2, dtype=torch.float64), return_info=True)
    assert info.n_outside == 2 and info.n_empty == 2 and info.n_unsafe == 2
    for i in range(2):
        res = linprog(np.r_[0.0, 0.0, 1.0], A_ub=np.c_[G[i], -np.ones(len(h[i]))], b_ub=h[i],
                      bounds=[(-1, 1), (-1, 1), (None, None)], method="highs")
        assert res.fun > 0  # S(x) is empty
        got = (G[i] @ out[i].numpy() - h[i]).max()
        assert got <= res.fun + 1e-7
    assert torch.equal(out[2], torch.zeros(2, dtype=torch.float64))


# ---------------------------------------------------------------- bad input
def test_bad_inputs_raise_one_clear_error():
    sg = guard("projection", "pendulum")
    x = torch.zeros(4, 2, dtype=torch.float64)
    a = torch.zeros(4, 1, dtype=torch.float64)
    cases = [
        ((torch.zeros(4, 3, dtype=torch.float64), a), r"states must have shape \[B, 2\]"),
        ((x, torch.zeros(4, 2, dtype=torch.float64)), r"actions must have shape \[B, 1\]"),
        ((x, torch.zeros(3, 1, dtype=torch.float64)), "same batch size"),
        ((x, torch.full((4, 1), float("nan"), dtype=torch.float64)), "actions contain NaN"),
        ((x.clone().index_fill_(0, torch.tensor([2]), float("nan")), a), "states contain NaN.*first row 2"),
        ((x.numpy(), a), "must be a torch.Tensor"),
        ((x.int(), a), "float32 or float64"),
    ]
    for args, msg in cases:
        with pytest.raises(UserError, match=msg) as exc:
            sg(*args)
        assert "\n" not in str(exc.value)


def test_set_file_of_another_system_is_refused():
    with pytest.raises(UserError, match="is a set for 'quadrotor', but the safeguard is for 'pendulum'") as exc:
        make_safeguard("projection", get_system("pendulum"), setfile("quadrotor"))
    assert "\n" not in str(exc.value)
    with pytest.raises(UserError, match=r"need A \[k, 2\]"):
        make_safeguard("raymask", "pendulum", (np.ones((3, 6)), np.ones(3)))
    with pytest.raises(UserError, match="unknown safeguard kind"):
        make_safeguard("clip", "pendulum", setfile("pendulum"))


# ---------------------------------------------------------------- misc API
def test_factory_kinds_and_path_argument(published_pendulum):
    assert set(KINDS) == {"none", "projection", "raymask", "raymask-tanh"}
    sg = make_safeguard("raymask", "pendulum", str(published_pendulum))
    assert isinstance(sg, RayMaskSafeguard) and sg.n_facets == 12
    none = make_safeguard("none", "pendulum", setfile("pendulum"))
    assert isinstance(none, NoSafeguard)
    x = torch.zeros(3, 2)
    a = torch.tensor([[0.0], [5.0], [-5.0]])
    out, info = none(x, a, return_info=True)
    assert torch.equal(out, a) and info.n_unsafe == 2 and isinstance(info, SafeguardInfo)


def test_the_baseline_is_the_identity_map_of_the_abstract_base():
    """``Safeguard._map`` is abstract; ``"none"`` implements it (the identity) and overrides nothing else."""
    class NoMap(Safeguard):
        kind = "nomap"

    with pytest.raises(TypeError, match="abstract"):
        NoMap("pendulum", setfile("pendulum"))
    assert {k for k in vars(NoSafeguard) if k.startswith("_") and callable(vars(NoSafeguard)[k])} == {
        "__init__",
        "_map",
    }
    none = make_safeguard("none", "pendulum", setfile("pendulum"))
    for dtype in (torch.float32, torch.float64):
        a = torch.tensor([[0.3], [5.0]], dtype=dtype, requires_grad=True)
        out, info = none(torch.zeros(2, 2, dtype=dtype), a, return_info=True)
        out.sum().backward()
        assert out.dtype == dtype and torch.equal(out, a) and torch.equal(a.grad, torch.ones_like(a))
        assert info.n_unsafe == 1 and info.unsafe.tolist() == [False, True] and info.n_fallback == 0
        assert not info.intervened.any() and not info.distance.any() and info.distance.dtype == dtype


def test_sets_are_converted_explicitly_and_lookalikes_refused():
    sf = setfile("pendulum")
    x = torch.tensor([[0.1, -0.2], [0.5, 1.0]], dtype=torch.float64)
    a = torch.tensor([[2.0], [-2.0]], dtype=torch.float64)
    ref = make_safeguard("projection", "pendulum", (sf.A, sf.b))(x, a)
    for s in (sf.polytope(), HPolytope(sf.A, sf.b)):
        torch.testing.assert_close(make_safeguard("projection", "pendulum", s)(x, a), ref, rtol=0, atol=0)
    box = Box([-1.0, -2.0], [1.0, 2.0])
    torch.testing.assert_close(make_safeguard("raymask", "pendulum", box)(x, a),
                               make_safeguard("raymask", "pendulum", (as_hpolytope(box).A, as_hpolytope(box).b))(x, a))

    class LooksLikeAPolytope:  # has A and b, is not a set: refused, not duck-typed
        A, b = sf.A, sf.b

    with pytest.raises(UserError, match=r"invariant_set must be a SetFile, a path to one, an HPolytope, a Box, "
                                        r"a Zonotope or a tuple \(A, b\); got LooksLikeAPolytope") as exc:
        make_safeguard("projection", "pendulum", LooksLikeAPolytope())
    assert "\n" not in str(exc.value)


def test_safe_action_set_shapes_and_rows():
    sg = guard("projection", "quadrotor")
    x = torch.tensor(sample_states("quadrotor", 5, np.random.default_rng(13), 0.0))
    G, h = sg.safe_action_set(x)
    k = setfile("quadrotor").A.shape[0]
    assert G.shape == (5, k + 4, 2) and h.shape == (5, k + 4)
    sysm, sf = get_system("quadrotor"), setfile("quadrotor")
    Gn, hn = action_rows(sysm, *normalised(sf.A, sf.b), x.numpy())
    assert np.allclose(G[:, :k].numpy(), Gn) and np.allclose(h[:, :k].numpy(), hn)


def test_empty_batch_and_chunking():
    sg = make_safeguard("projection", "pendulum", setfile("pendulum"), chunk_entries=200)
    assert sg._chunk_size() < 10
    rng = np.random.default_rng(14)
    x = torch.tensor(sample_states("pendulum", 50, rng, 0.5))
    a = torch.tensor(random_actions(1, 50, rng))
    assert torch.allclose(sg(x, a), guard("projection", "pendulum")(x, a), atol=1e-14, rtol=0)
    assert sg(x[:0], a[:0]).shape == (0, 1)


@pytest.mark.slow
def test_bench_command_smoke(capsys):
    from reachsafe.cli import main

    assert main(["bench", "safeguards", "--set", str(PUB / "pendulum.json"), "--batches", "1,8", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "projection" in out and "raymask" in out


# ----------------------------------------------------------------------------- polygon geometry
def test_float32_rounded_edge_is_not_dropped():
    """Bug (former float32 structure pass): r_ii = e_i - e_i |n_i|^2 rounded below -geom and dropped a
    genuine edge.  The structure is float64 now; the rows that triggered it still give their edge."""
    from reachsafe.safeguards.actionset import tolerances
    from reachsafe.safeguards.polygon import edge_rows

    G = torch.tensor([[[0.0004046229587402195, 0.037672098726034164], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0],
                       [0.0, -1.0]]], dtype=torch.float32).double()
    h = torch.tensor([[0.03802650049328804] + [0.9999899864196777] * 4], dtype=torch.float32).double()
    edge, _, _, valid = edge_rows(G, h, tolerances(torch.float64))
    assert valid[0, 0] and edge[0, 0]  # the row cuts the corner (0.877, 1)-(1, 0.9987)
    assert edge[0].sum() == 5


def brute_force_centroid(G: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Area centroid of {a : G a <= h} (m = 2), independently: vertices as all pairwise intersections
    that satisfy every row, ordered by angle about their mean, then the shoelace formulas."""
    V = []
    for i in range(len(h)):
        for j in range(i + 1, len(h)):
            M = np.array([G[i], G[j]])
            if abs(np.linalg.det(M)) < 1e-12:
                continue
            v = np.linalg.solve(M, [h[i], h[j]])
            if (G @ v <= h + 1e-12).all():
                V.append(v)
    V = np.array(V)
    o = V.mean(0)
    V = V[np.argsort(np.arctan2(V[:, 1] - o[1], V[:, 0] - o[0]))]
    x, y = V[:, 0] - o[0], V[:, 1] - o[1]
    cr = x * np.roll(y, -1) - np.roll(x, -1) * y
    return o + np.array([((x + np.roll(x, -1)) * cr).sum(), ((y + np.roll(y, -1)) * cr).sum()]) / (3 * cr.sum())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), k=st.integers(1, 8))
def test_polygon_centroid_matches_brute_force(seed, k):
    """The ray mask's m = 2 centre is the area centroid (independent vertex enumeration), with the
    gradient of finite differences (its backward is written out, not autograd's)."""
    from reachsafe.safeguards.actionset import box_rows, tolerances
    from reachsafe.safeguards.raymask import safe_centre

    g = torch.Generator().manual_seed(seed)
    B = 4
    ang = torch.rand(B, k, generator=g, dtype=torch.float64) * 2 * torch.pi
    Gf = torch.stack([ang.cos(), ang.sin()], -1) * (0.2 + torch.rand(B, k, 1, generator=g, dtype=torch.float64))
    hf = 0.1 + torch.rand(B, k, generator=g, dtype=torch.float64)  # the origin is strictly inside
    bG, bh = box_rows(-torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), B, 0.0)
    G, h = torch.cat([Gf, bG], 1), torch.cat([hf, bh], 1)
    tol = tolerances(torch.float64)
    c = safe_centre(G, h, tol).numpy()
    for b in range(B):
        np.testing.assert_allclose(c[b], brute_force_centroid(G[b].numpy(), h[b].numpy()), atol=1e-10)
    Gr, hr = Gf[:2].clone().requires_grad_(), hf[:2].clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda Gk, hk: safe_centre(torch.cat([Gk, bG[:2]], 1), torch.cat([hk, bh[:2]], 1), tol),
        (Gr, hr),
        eps=1e-7,
        atol=1e-6,
    )


def test_degenerate_polygons_get_a_finite_centre_inside():
    """A segment (area 0) gets its midpoint with a finite gradient."""
    from reachsafe.safeguards.actionset import tolerances
    from reachsafe.safeguards.raymask import safe_centre

    tol = tolerances(torch.float64)
    # a2 <= 0 and -a2 <= 0 with a1 in [-1, 1]: the segment a2 = 0
    G = torch.tensor([[[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]]], dtype=torch.float64, requires_grad=True)
    h = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    c = safe_centre(G, h, tol)
    assert torch.allclose(c, torch.zeros(1, 2, dtype=torch.float64), atol=1e-12)
    gG, gh = torch.autograd.grad(c.sum(), (G, h))
    assert torch.isfinite(gG).all() and torch.isfinite(gh).all()
