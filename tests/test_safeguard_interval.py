"""The m = 1 interval path (reachsafe.safeguards.interval) against the general path of the safeguards.

For one action every shielding kind runs on the interval ``S(x) = [l, u]`` in closed form; the general
path (local rows, structure pass, closed-form tails, safety net) is the reference: values and gradients
(to states and actions) must agree to rounding, and chunks the interval path cannot finish (a state
outside ``P``, an empty ``S(x)``) must behave exactly as on the general path.  The general path is forced
by replacing ``forward_interval`` with a function that hands every chunk back.

Systems: the pendulum with its committed set (constant ``B`` and noise), and a test model whose ``B(x)``
and noise input ``E(x)`` depend on the state (the noise term of ``S(x)`` then depends on the state too).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reachsafe.safeguards.base as base_module
from reachsafe import UserError, get_system, load_set
from reachsafe.safeguard_kinds import SHIELDING_KIND_NAMES
from reachsafe.safeguards import make_safeguard
from reachsafe.safeguards.bench import sample_states
from reachsafe.safeguards.interval import forward_interval
from reachsafe.sets import HPolytope
from reachsafe.systems import CompiledSystem
from reachsafe.systems.definition import SystemDefinition, exact, symbols

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KINDS = tuple(SHIELDING_KIND_NAMES)


def varying_model() -> CompiledSystem:
    """A cart whose actuator gain and noise input depend on the state: ``B(x)``, ``E(x)`` not constant."""
    p, v = symbols("p v")
    (a,) = symbols("a")
    (w,) = symbols("w")
    import sympy as sp

    dt = exact("0.1")
    v_next = v + dt * ((1 + exact("0.3") * sp.sin(p)) * a + (exact("0.5") + exact("0.2") * sp.cos(v)) * w
                       - exact("0.4") * p - exact("0.2") * v)
    d = SystemDefinition(name="varying_cart", description="test system", state=(p, v), action=(a,), noise=(w,),
                         step=(p + dt * v, v_next), params={}, constraint_lo=(-exact(1), -exact(1)),
                         constraint_hi=(exact(1), exact(1)), noise_lo=(-exact("0.1"),), noise_hi=(exact("0.1"),),
                         reward=-(p**2), observation=(p, v), dt=dt)
    return CompiledSystem(d)


def case(name: str):
    """``(system, set)``: the pendulum's committed set, or an octagon for the varying cart."""
    if name == "pendulum":
        return get_system("pendulum"), load_set("data/pendulum.json")
    ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    A = np.c_[np.cos(ang), np.sin(ang)]
    return varying_model(), HPolytope(A, np.full(8, 0.6))


def states(name: str, N: int, rng: np.random.Generator) -> np.ndarray:
    system, sf = case(name)
    if name == "pendulum":
        return sample_states(sf, N, rng)
    return rng.uniform(-0.35, 0.35, size=(N, 2))


def run(kind: str, name: str, x: np.ndarray, a: np.ndarray, dtype: torch.dtype, general: bool, monkeypatch,
        **kw):
    """``(a_s, dL/dx, dL/da, info)`` for ``L = sum(a_s * weights)``, on the chosen path."""
    system, sf = case(name)
    if general:
        monkeypatch.setattr(base_module, "forward_interval", lambda *args: None)
    else:
        monkeypatch.setattr(base_module, "forward_interval", forward_interval)
    sg = make_safeguard(kind, system, sf, **kw)
    xs = torch.tensor(x, dtype=dtype, requires_grad=True)
    acts = torch.tensor(a, dtype=dtype, requires_grad=True)
    out, info = sg(xs, acts, return_info=True)
    wts = torch.linspace(-1.0, 2.0, out.shape[0], dtype=dtype).unsqueeze(-1)
    (out * wts).sum().backward()
    return out.detach(), xs.grad, acts.grad, info


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(KINDS), name=st.sampled_from(["pendulum", "varying"]),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_interval_path_equals_general_path(seed, kind, name, dtype, monkeypatch):
    rng = np.random.default_rng(seed)
    N = 64
    x = states(name, N, rng)
    a = np.concatenate([rng.uniform(-1.5, 1.5, N - 8), [1e6, -1e6, 0.0, 1.0, -1.0, 2.0, -2.0, 1e-9]])[:, None]
    calls = []

    def counting(*args):
        res = forward_interval(*args)
        calls.append(res is not None)
        return res

    ref = run(kind, name, x, a, dtype, True, monkeypatch)
    monkeypatch.setattr(base_module, "forward_interval", counting)
    system, sf = case(name)
    sg = make_safeguard(kind, system, sf)
    xs = torch.tensor(x, dtype=dtype, requires_grad=True)
    acts = torch.tensor(a, dtype=dtype, requires_grad=True)
    out, info = sg(xs, acts, return_info=True)
    wts = torch.linspace(-1.0, 2.0, N, dtype=dtype).unsqueeze(-1)
    (out * wts).sum().backward()
    assert calls == [True]  # the interval path ran and finished the chunk
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(out, ref[0], atol=tol, rtol=0)
    torch.testing.assert_close(xs.grad, ref[1], atol=1e-9 if dtype == torch.float64 else 1e-4, rtol=1e-6)
    torch.testing.assert_close(acts.grad, ref[2], atol=1e-9 if dtype == torch.float64 else 1e-5, rtol=1e-6)
    assert torch.equal(info.intervened, ref[3].intervened)
    assert info.n_unsafe == info.n_fallback == 0


@pytest.mark.parametrize("kind", KINDS)
def test_state_outside_is_handed_to_the_general_path(kind, monkeypatch):
    """Outside P: the same error (``outside="raise"``) and the same fallback counts as the general path."""
    system, sf = case("pendulum")
    x = np.r_[states("pendulum", 4, np.random.default_rng(0)), [[50.0, 50.0]]]
    a = np.zeros((5, 1))
    with pytest.raises(UserError, match="outside the invariant set"):
        make_safeguard(kind, system, sf)(torch.tensor(x), torch.tensor(a))
    fast = run(kind, "pendulum", x, a, torch.float64, False, monkeypatch, outside="fallback")
    ref = run(kind, "pendulum", x, a, torch.float64, True, monkeypatch, outside="fallback")
    assert fast[3].n_outside == ref[3].n_outside == 1
    torch.testing.assert_close(fast[0], ref[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_safe_set_is_handed_to_the_general_path(kind, monkeypatch):
    """A set that is not invariant (a thin slab of the varying cart's state space): ``S(x)`` empty for some
    states, so the chunk gets the general path's min-max-violation actions and counts."""
    system = varying_model()
    A = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    b = np.array([0.9, 0.9, 0.001, 0.001])
    x = np.c_[np.linspace(-0.8, 0.8, 9), np.zeros(9)]
    a = np.zeros((9, 1))
    monkeypatch.setattr(base_module, "forward_interval", forward_interval)
    with pytest.warns(RuntimeWarning, match="empty"):
        out, info = make_safeguard(kind, system, (A, b))(torch.tensor(x), torch.tensor(a), return_info=True)
    monkeypatch.setattr(base_module, "forward_interval", lambda *args: None)
    with pytest.warns(RuntimeWarning, match="empty"):
        ref, rinfo = make_safeguard(kind, system, (A, b))(torch.tensor(x), torch.tensor(a), return_info=True)
    assert info.n_empty == rinfo.n_empty > 0
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)


def test_a_subclass_that_changes_the_map_keeps_the_general_path():
    """A subclass of a kind that overrides ``_map`` but not ``_interval`` must run its own map."""
    from reachsafe.safeguards import ProjectionSafeguard
    from reachsafe.safeguards.base import _runs_on_intervals

    class Centre(ProjectionSafeguard):
        def _map(self, actions, G, h, tol):
            return super()._map(actions * 0.0, G, h, tol)

        def _solve(self, actions, ch):
            return self._map(actions.to(torch.float64), ch.G, ch.h, ch.tol64).to(actions.dtype)

    system, sf = case("pendulum")
    x = torch.tensor(states("pendulum", 16, np.random.default_rng(3)))
    out = Centre(system, sf)(x, torch.full((16, 1), 0.7, dtype=torch.float64))
    ref = make_safeguard("projection", system, sf)(x, torch.zeros(16, 1, dtype=torch.float64))
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    assert not _runs_on_intervals(Centre)
    assert all(_runs_on_intervals(make_safeguard(k, system, sf).__class__) for k in KINDS)
