"""The compiled systems against independent hand-written implementations of the systems in docs/architecture.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reachsafe.systems import ModelError, UnknownSystemError, get_definition, get_system
from reachsafe.systems.definition import SystemDefinition, symbols

DT = 0.05
G = 9.81


def pendulum_by_hand(x, a, w):
    th, om = x[..., 0], x[..., 1]
    acc = 3 * G / 2 * np.sin(th) + 3 * 30 * a[..., 0] + w[..., 0]
    om1 = om + DT * acc
    return np.stack([th + DT * om1, om1], -1)


def quadrotor_by_hand(x, a, w):
    px, pz, phi, vx, vz, phid = np.moveaxis(x, -1, 0)
    T = G + 6 / 7 * a[..., 0]
    r = math.pi / 12 * a[..., 1]
    vx1 = vx + DT * (T * np.sin(phi) + w[..., 0])
    vz1 = vz + DT * (T * np.cos(phi) - G + w[..., 1])
    phid1 = phid + DT * (55 * r - 70 * phi - 17 * phid)
    return np.stack([px + DT * vx1, pz + DT * vz1, phi + DT * phid1, vx1, vz1, phid1], -1)


HAND = {"pendulum": pendulum_by_hand, "quadrotor": quadrotor_by_hand}


def random_inputs(sys, rng, N=256, scale=1.0):
    x = rng.uniform(sys.constraint_lo, sys.constraint_hi, (N, sys.n)) * scale
    a = rng.uniform(-1, 1, (N, sys.m))
    w = rng.uniform(sys.noise_lo, sys.noise_hi, (N, sys.p))
    return x, a, w


@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
def test_step_matches_hand_written_model(name):
    sys = get_system(name)
    x, a, w = random_inputs(sys, np.random.default_rng(0))
    np.testing.assert_allclose(sys.step_unwrapped(x, a, w), HAND[name](x, a, w), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
def test_numpy_and_torch_agree(name):
    sys = get_system(name)
    x, a, w = random_inputs(sys, np.random.default_rng(1))
    yt = sys.step(torch.tensor(x), torch.tensor(a), torch.tensor(w))
    assert isinstance(yt, torch.Tensor) and yt.dtype == torch.float64
    np.testing.assert_allclose(yt.numpy(), sys.step(x, a, w), atol=1e-12)
    for u, v in zip(sys.affine(torch.tensor(x)), sys.affine(x)):
        np.testing.assert_allclose(u.numpy(), v, atol=1e-12)
    # float32 stays float32
    y32 = sys.step(
        torch.tensor(x, dtype=torch.float32), torch.tensor(a, dtype=torch.float32), torch.tensor(w, dtype=torch.float32)
    )
    assert y32.dtype == torch.float32


@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
def test_affine_split_reproduces_step(name):
    sys = get_system(name)
    x, a, w = random_inputs(sys, np.random.default_rng(2))
    c, B, E = sys.affine(x)
    assert c.shape == (len(x), sys.n) and B.shape == (len(x), sys.n, sys.m) and E.shape == (len(x), sys.n, sys.p)
    y = c + np.einsum("kij,kj->ki", B, a) + np.einsum("kij,kj->ki", E, w)
    np.testing.assert_allclose(y, sys.step_unwrapped(x, a, w), atol=1e-13)
    # and symbolically exact
    for i, f in enumerate(sys.f_exprs):
        recon = sys.c_exprs[i] + sum(sys.B_exprs[i, j] * s for j, s in enumerate(sys.definition.action)) + sum(
            sys.E_exprs[i, j] * s for j, s in enumerate(sys.definition.noise))
        assert sp.expand(f - recon) == 0


@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
def test_jacobians_match_finite_differences_and_autograd(name):
    sys = get_system(name)
    x, a, w = random_inputs(sys, np.random.default_rng(3), N=8, scale=0.9)
    Jx, Ja, Jw = sys.jacobians(x, a, w)
    h = 1e-6
    for J, idx in ((Jx, 0), (Ja, 1), (Jw, 2)):
        args = [x, a, w]
        for j in range(args[idx].shape[1]):
            plus = [v.copy() for v in args]
            minus = [v.copy() for v in args]
            plus[idx][:, j] += h
            minus[idx][:, j] -= h
            fd = (sys.step_unwrapped(*plus) - sys.step_unwrapped(*minus)) / (2 * h)
            np.testing.assert_allclose(J[:, :, j], fd, atol=1e-7)
    # autograd through the torch step
    xt = torch.tensor(x[:1], requires_grad=True)
    jac = torch.autograd.functional.jacobian(
        lambda z: sys.step_unwrapped(z, torch.tensor(a[:1]), torch.tensor(w[:1]))[0], xt
    )
    np.testing.assert_allclose(jac[:, 0, :].numpy(), Jx[0], atol=1e-12)


def test_pendulum_wraps_theta_into_minus_pi_pi():
    sys = get_system("pendulum")
    x = np.array([[3.1, 10.0], [-3.1, -10.0], [0.5, 0.0]])
    a = np.array([[1.0], [-1.0], [0.0]])
    y = sys.step(x, a, np.zeros((3, 1)))
    assert np.all(y[:, 0] > -math.pi) and np.all(y[:, 0] <= math.pi)
    yu = sys.step_unwrapped(x, a, np.zeros((3, 1)))
    np.testing.assert_allclose(np.cos(y[:, 0]), np.cos(yu[:, 0]), atol=1e-12)
    np.testing.assert_array_equal(y[2], yu[2])  # inside X nothing changes, bit for bit
    assert sys.wrap_state(np.array([[math.pi, 0.0]]))[0, 0] == pytest.approx(math.pi)
    assert sys.wrap_state(np.array([[-math.pi, 0.0]]))[0, 0] == pytest.approx(math.pi)


def test_reward_and_observation():
    p = get_system("pendulum")
    x = np.array([[0.3, -2.0]])
    a = np.array([[0.5]])
    assert p.reward(x, a)[0] == pytest.approx(-(0.09 + 0.1 * 4 + 0.001 * 0.25))
    np.testing.assert_allclose(p.observation(x)[0], [math.sin(0.3), math.cos(0.3), -2.0])
    q = get_system("quadrotor")
    x = np.array([[1.0, 2.0, 0.1, 0.2, -0.3, 0.4]])
    a = np.array([[0.5, -0.5]])
    goal = np.array([[4.0, 6.0]])
    T, r = G + 6 / 7 * 0.5, math.pi / 12 * -0.5
    expect = -(2.5 * 5.0 + 0.1 * (0.01 + 0.04 + 0.09 + 0.16) + 0.002 * T**2 + 0.001 * r**2)
    assert q.reward(x, a, goal)[0] == pytest.approx(expect, rel=1e-12)
    assert q.observation(x, goal).shape == (1, 8)
    np.testing.assert_allclose(q.context_from_state(x), x[:, :2])
    with pytest.raises(ValueError, match="context"):
        q.reward(x, a)


def test_quadrotor_reward_gradient_is_finite_at_the_goal():
    q = get_system("quadrotor")
    x = torch.zeros(2, 6, dtype=torch.float64, requires_grad=True)
    q.reward(x, torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)).sum().backward()
    assert torch.all(torch.isfinite(x.grad))


def test_fingerprint_is_stable_and_model_sensitive():
    d = get_definition("pendulum")
    assert d.fingerprint() == get_system("pendulum").fingerprint
    assert d.fingerprint().startswith("sha256:")
    params = dict(d.params)
    key = next(k for k in params if str(k) == "tau_max")
    params[key] = sp.Integer(24)
    from dataclasses import replace

    assert replace(d, params=params).fingerprint() != d.fingerprint()
    assert get_system("quadrotor").fingerprint != d.fingerprint()


def test_unknown_system():
    with pytest.raises(UnknownSystemError, match="available: pendulum, quadrotor"):
        get_system("cartpole")


def test_non_affine_model_is_refused_naming_the_term():
    from reachsafe.systems.compiled import CompiledSystem

    (x,) = symbols("x")
    (u,) = symbols("u")
    bad = SystemDefinition(
        name="bad", description="", state=(x,), action=(u,), noise=(), step=(x + u**2,), params={},
        constraint_lo=(-1,), constraint_hi=(1,), noise_lo=(), noise_hi=(), reward=-x**2, observation=(x,),
    )
    with pytest.raises(ModelError, match="not affine in the action"):
        CompiledSystem(bad)
    with pytest.raises(ModelError, match="unknown symbol"):
        SystemDefinition(
            name="bad2",
            description="",
            state=(x,),
            action=(u,),
            noise=(),
            step=(x + sp.Symbol("k") * u,),
            params={},
            constraint_lo=(-1,),
            constraint_hi=(1,),
            noise_lo=(),
            noise_hi=(),
            reward=-(x**2),
            observation=(x,),
        )
    with pytest.raises(ModelError, match="step has 2 expressions"):
        SystemDefinition(
            name="bad3", description="", state=(x,), action=(u,), noise=(), step=(x, u), params={},
            constraint_lo=(-1,), constraint_hi=(1,), noise_lo=(), noise_hi=(), reward=-x**2, observation=(x,),
        )


# ---------------------------------------------------------------- intervals
def _sub_box(sys, data, max_width):
    lo_x, hi_x = sys.constraint_lo, sys.constraint_hi
    u = np.array(data.draw(st.lists(st.floats(0, 1), min_size=sys.n, max_size=sys.n)))
    frac = np.array(data.draw(st.lists(st.floats(1e-6, max_width), min_size=sys.n, max_size=sys.n)))
    width = (hi_x - lo_x) * frac
    lo = lo_x + u * (hi_x - lo_x - width)
    return lo, lo + width


@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_enclosures_contain_true_values(name, data):
    sys = get_system(name)
    lo, hi = _sub_box(sys, data, 1.0)
    enc = sys.enclose(lo[None], hi[None])
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    pts = lo + rng.uniform(0, 1, (400, sys.n)) * (hi - lo)
    pts = np.vstack([pts, lo, hi])  # corners included
    c, B, E = sys.affine(pts)
    assert np.all(c >= enc.c_lo) and np.all(c <= enc.c_hi)
    assert np.all(B >= enc.B_lo) and np.all(B <= enc.B_hi)
    assert np.all(E >= enc.E_lo) and np.all(E <= enc.E_hi)


@pytest.mark.parametrize("name", ["pendulum", "quadrotor"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_enclosures_shrink_with_the_box(name, data):
    sys = get_system(name)
    lo, hi = _sub_box(sys, data, 0.5)
    mid = 0.5 * (lo + hi)
    widths = []
    for s in (1.0, 0.5, 0.25, 0.01):
        enc = sys.enclose((mid - s * (mid - lo))[None], (mid + s * (hi - mid))[None])
        widths.append((enc.c_hi - enc.c_lo).max())
    assert all(w1 <= w0 * (1 + 1e-12) + 1e-15 for w0, w1 in zip(widths, widths[1:]))
    assert widths[-1] <= 0.05 * widths[0] + 1e-12


def test_enclosure_of_point_box_is_tight_and_rounded_outward():
    sys = get_system("pendulum")
    x = np.array([[0.7, -1.3]])
    enc = sys.enclose(x, x)
    c, _, _ = sys.affine(x)
    assert np.all(enc.c_lo <= c) and np.all(c <= enc.c_hi)
    assert np.all(enc.c_hi - enc.c_lo < 1e-13)
    # B = dt * dt * 90 is not a double: its enclosure is a proper interval around it
    assert enc.B_lo[0, 0, 0] < enc.B_hi[0, 0, 0]
    from fractions import Fraction

    assert Fraction(enc.B_lo[0, 0, 0]) <= Fraction(9, 40) <= Fraction(enc.B_hi[0, 0, 0])  # exact dt^2 * 3 * 30


def test_interval_sin_cos_extrema():
    from reachsafe.systems.intervals import evaluate

    t = sp.Symbol("t", real=True)
    lo, hi = evaluate(sp.sin(t), {t: (np.array([1.0, -2.0, 0.1]), np.array([2.0, -1.0, 0.2]))})
    assert hi[0] == 1.0 and lo[1] == -1.0
    assert lo[2] <= math.sin(0.1) and hi[2] >= math.sin(0.2) and hi[2] < 0.21
    lo, hi = evaluate(sp.cos(t), {t: (np.array([-0.1, 3.0]), np.array([0.1, 3.3]))})
    assert hi[0] == 1.0 and lo[1] == -1.0
    lo, hi = evaluate(sp.pi * t, {t: (np.array([1.0]), np.array([1.0]))})
    assert lo[0] <= math.pi <= hi[0] and lo[0] < hi[0]


def test_wrap_leaves_in_range_angles_bit_identical():
    """Regression: the modulo moved in-range angles by an ulp (found by the audit's check 4)."""
    sys = get_system("pendulum")
    th = np.random.default_rng(5).uniform(-3.1, 3.1, 10_000)
    x = np.stack([th, np.zeros_like(th)], -1)
    np.testing.assert_array_equal(sys.wrap_state(x), x)
    xt = torch.tensor(x, requires_grad=True)
    y = sys.wrap_state(xt)
    assert torch.equal(y, xt.detach())
    y.sum().backward()
    assert torch.all(xt.grad == 1)
