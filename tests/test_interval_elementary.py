"""Elementary functions in models (exp, log, tan, tanh, atan, sinh, asinh, cosh, rational powers):
both interval arithmetics (reachsafe.systems.intervals for the models,
verification.certification.intervals for the certifier) enclose the exact real value,
checked against 200-bit mpmath at the interval's ends and at interior points, and give
[-inf, inf] where the function is not defined on the whole interval."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from reachsafe.systems import intervals as core
from verification.certification import intervals as cert

mpmath.mp.prec = 200
u = sp.Symbol("u", real=True)

# (sympy expression, mpmath reference, range of the argument drawn)
FUNCS = {
    "exp": (sp.exp(u), mpmath.exp, (-700.0, 700.0)),
    "log": (sp.log(u), mpmath.log, (1e-300, 1e300)),
    "tan": (sp.tan(u), mpmath.tan, (-1.5, 1.5)),
    "tanh": (sp.tanh(u), mpmath.tanh, (-30.0, 30.0)),
    "atan": (sp.atan(u), mpmath.atan, (-1e6, 1e6)),
    "sinh": (sp.sinh(u), mpmath.sinh, (-700.0, 700.0)),
    "asinh": (sp.asinh(u), mpmath.asinh, (-1e6, 1e6)),
    "cosh": (sp.cosh(u), mpmath.cosh, (-700.0, 700.0)),
    "cbrt": (u ** sp.Rational(1, 3), lambda v: mpmath.cbrt(v), (0.0, 1e6)),
    "pow3/2": (u ** sp.Rational(3, 2), lambda v: mpmath.mpf(v) ** mpmath.mpf(1.5), (0.0, 1e6)),
    "pow-2/3": (u ** sp.Rational(-2, 3), lambda v: mpmath.mpf(v) ** (mpmath.mpf(-2) / 3), (1e-6, 1e6)),
    "sqrt": (sp.sqrt(u), mpmath.sqrt, (0.0, 1e6)),
}


def _both(expr: sp.Expr, lo: float, hi: float) -> list[tuple[float, float]]:
    a = core.evaluate(expr, {u: (np.array([lo]), np.array([hi]))})
    f = cert._compile(expr)
    b = f({u: cert.Iv(np.array([lo]), np.array([hi]))})
    return [(float(np.ravel(a[0])[0]), float(np.ravel(a[1])[0])), (float(np.ravel(b.lo)[0]), float(np.ravel(b.hi)[0]))]


@pytest.mark.parametrize("name", sorted(FUNCS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_elementary_enclosures_contain_the_exact_value(name: str, data) -> None:
    expr, ref, (rlo, rhi) = FUNCS[name]
    x = sorted(data.draw(st.lists(st.floats(rlo, rhi), min_size=2, max_size=2)))
    lo, hi = x
    pts = [lo, hi] + [lo + t * (hi - lo) for t in (0.25, 0.5, 0.75)]
    if lo <= 0.0 <= hi:
        pts.append(0.0)
    for elo, ehi in _both(expr, lo, hi):
        assert not (math.isnan(elo) or math.isnan(ehi)) and elo <= ehi, (elo, ehi)
        for p in pts:
            v = ref(mpmath.mpf(p))
            assert mpmath.mpf(elo) <= v <= mpmath.mpf(ehi), (name, lo, hi, p, elo, ehi, float(v))


@pytest.mark.parametrize("expr, lo, hi", [
    (sp.log(u), -1.0, 2.0),  # log of an interval reaching below 0
    (sp.log(u), 0.0, 2.0),
    (sp.tan(u), 1.0, 2.0),  # contains pi/2
    (sp.tan(u), -5.0, -4.0),  # contains -3 pi/2
    (sp.tan(u), -1.0, 10.0),  # wider than pi
    (sp.sqrt(u) * u ** sp.Rational(1, 3), -1e-9, 1.0),  # a root of a negative number
])
def test_undefined_somewhere_gives_no_information(expr: sp.Expr, lo: float, hi: float) -> None:
    for elo, ehi in _both(expr, lo, hi):
        assert elo == -math.inf and ehi == math.inf


def test_tan_away_from_poles_is_tight() -> None:
    for elo, ehi in _both(sp.tan(u), 4.0, 4.5):  # between the poles at 3 pi/2 - pi and 3 pi/2
        assert math.tan(4.0) - 1e-12 <= elo <= math.tan(4.0) and math.tan(4.5) <= ehi <= math.tan(4.5) + 1e-12


def test_cosh_minimum_inside() -> None:
    for elo, ehi in _both(sp.cosh(u), -1.0, 2.0):
        assert elo == 1.0 and math.cosh(2.0) <= ehi <= math.cosh(2.0) * (1 + 1e-14)


def test_model_with_elementary_functions_is_accepted_and_enclosed(tmp_path) -> None:
    """A kinematic bicycle (tan of the steering angle) loads, and both enclosures of its step
    contain sampled successors."""
    from reachsafe.systems.loader import load_model_file
    from verification.certification.intervals import CertModel

    src = tmp_path / "bike.py"
    src.write_text(
        "import sympy as sp\n"
        "from reachsafe.systems.definition import SystemDefinition, exact, symbols\n"
        "e, psi, delta = symbols('e psi delta')\n(a,) = symbols('a')\n(w,) = symbols('w')\n"
        "DEFINITION = SystemDefinition(name='bike_t', description='t', state=(e, psi, delta), action=(a,),"
        " noise=(w,), step=(e + exact('0.05') * (5 * sp.sin(psi) + w),"
        " psi + exact('0.1') * sp.tan(delta) + exact('0.01') * sp.tanh(e) * sp.exp(-psi**2),"
        " delta + exact('0.025') * a), params={},"
        " constraint_lo=(-1, -exact('0.4'), -exact('0.3')), constraint_hi=(1, exact('0.4'), exact('0.3')),"
        " noise_lo=(-exact('0.1'),), noise_hi=(exact('0.1'),), reward=-e**2, observation=(e, psi, delta),"
        " dt=exact('0.05'))\n")
    system = load_model_file(src, builtin=set())
    model = CertModel(system.definition)
    rng = np.random.default_rng(0)
    lo = rng.uniform(-0.3, 0.0, size=(64, 3))
    hi = lo + rng.uniform(0.0, 0.2, size=(64, 3))
    enc = model.enclose(lo, hi)
    t = rng.uniform(size=(64, 3))
    x = lo + t * (hi - lo)
    c, _, _ = system.affine(x)
    assert np.all(enc["c"].lo <= c) and np.all(c <= enc["c"].hi)
    clo, chi = core.enclose(list(system.c_exprs), list(system.definition.state), lo, hi)
    assert np.all(clo <= c) and np.all(c <= chi)


def test_division_by_an_interval_containing_zero_gives_no_information() -> None:
    for elo, ehi in _both(1 / u, -1.0, 2.0):
        assert elo == -math.inf and ehi == math.inf
    for elo, ehi in _both(1 / u, 2.0, 4.0):
        assert elo <= 0.25 <= elo + 1e-15 and ehi >= 0.5 >= ehi - 1e-15


def test_compiled_torch_step_with_irrational_constants_and_safeguard(tmp_path) -> None:
    """Torch and numpy steps agree in float64 on a model with ``sqrt(2 g h)`` (the atom carried the
    constant ``sqrt(218)``, which the torch ``sqrt`` refused) and ``exp(-E/T)``; a safeguard is
    built without evaluating the model outside X (``exp(-E/0)``)."""
    import warnings

    import torch

    from reachsafe.safeguards import make_safeguard
    from reachsafe.setfile import SetFile
    from reachsafe.systems.loader import load_model_file

    src = tmp_path / "tank.py"
    src.write_text(
        "import sympy as sp\n"
        "from reachsafe.systems.definition import SystemDefinition, exact, symbols\n"
        "h, T = symbols('h T')\n(a,) = symbols('a')\n(w,) = symbols('w')\n"
        "DEFINITION = SystemDefinition(name='tank_t', description='t', state=(h, T), action=(a,), noise=(w,),"
        " step=(h + exact('0.1') * (-sp.sqrt(2 * 981 * h) / 50 + 1 + exact('0.5') * a + w),"
        " T + exact('0.01') * (350 - T + 10**6 * sp.exp(-exact(5000) / T) + 5 * a)), params={},"
        " constraint_lo=(1, 340), constraint_hi=(4, 360), noise_lo=(-exact('0.01'),), noise_hi=(exact('0.01'),),"
        " reward=-h**2, observation=(h, T), dt=exact('0.1'))\n")
    system = load_model_file(src, builtin=set())
    rng = np.random.default_rng(1)
    x = np.c_[rng.uniform(1, 4, 32), rng.uniform(340, 360, 32)]
    a = rng.uniform(-1, 1, (32, 1))
    w = rng.uniform(-0.01, 0.01, (32, 1))
    ref = system.step_unwrapped(x, a, w)
    out = system.step(torch.tensor(x), torch.tensor(a), torch.tensor(w)).numpy()
    assert np.allclose(out, ref, rtol=1e-13, atol=1e-12)
    sf = SetFile.for_system(system, np.vstack([np.eye(2), -np.eye(2)]), np.array([3.0, 355.0, -2.0, -345.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sg = make_safeguard("projection", system, sf)
    xs = torch.tensor(np.c_[rng.uniform(2, 3, 8), rng.uniform(345, 355, 8)])
    assert torch.isfinite(sg(xs, torch.zeros(8, 1, dtype=torch.float64))).all()
