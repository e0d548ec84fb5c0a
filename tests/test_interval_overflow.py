"""Interval enclosures stay valid bounds under overflow, in both interval arithmetics
(reachsafe.systems.intervals for the models, verification.certification.intervals for the
certifier): never NaN, lo <= hi, and every exact result inside, checked against exact rational
arithmetic (fractions.Fraction) and 200-bit mpmath for sin/cos."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from reachsafe.systems import intervals as core
from verification.certification import intervals as cert

MAX = float(np.finfo(np.float64).max)
INF = math.inf

# every finite double, with the overflow-prone magnitudes and the zeros made likely
_finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([0.0, -0.0, 1.0, -1.0, MAX, -MAX, 1.6e218, -1.6e218, 1e154, -1e154, 5e-324]))


@st.composite
def intervals(draw) -> tuple[float, float]:
    """An interval of finite reals; a bound may be infinite (unbounded on that side)."""
    lo, hi = sorted([draw(_finite), draw(_finite)])
    if draw(st.integers(0, 5)) == 0:
        lo = -INF
    if draw(st.integers(0, 5)) == 0:
        hi = INF
    return lo, hi


def _points(iv: tuple[float, float]) -> list[Fraction]:
    """Exact finite reals in the interval: its finite ends (or +-MAX for an infinite end) and a middle."""
    lo = iv[0] if math.isfinite(iv[0]) else -MAX
    hi = iv[1] if math.isfinite(iv[1]) else MAX
    lo, hi = min(lo, hi), max(lo, hi)
    return [Fraction(lo), Fraction(hi), (Fraction(lo) + Fraction(hi)) / 2]


def _encloses(lo: float, hi: float, exact) -> None:
    assert not (math.isnan(lo) or math.isnan(hi)), (lo, hi)
    assert lo <= hi, (lo, hi)
    for v in exact:
        assert lo == -INF or Fraction(lo) <= v, (lo, float(v))
        assert hi == INF or v <= Fraction(hi), (hi, float(v))


def _core_op(op, a, b=None):
    A = (np.array([a[0]]), np.array([a[1]]))
    r = op(A) if b is None else op(A, (np.array([b[0]]), np.array([b[1]])))
    return float(np.asarray(r[0]).ravel()[0]), float(np.asarray(r[1]).ravel()[0])


def _cert_op(op, a, b=None):
    A = cert.Iv(np.array([a[0]]), np.array([a[1]]))
    r = op(A) if b is None else op(A, cert.Iv(np.array([b[0]]), np.array([b[1]])))
    return float(np.asarray(r.lo).ravel()[0]), float(np.asarray(r.hi).ravel()[0])


# ----------------------------------------------------------------------------- the reported case
def test_square_of_a_huge_number_is_max_double_to_inf_in_both_arithmetics():
    a = (-1.6e218, -1.6e218)
    assert _core_op(lambda x: core._int_pow(x, 2), a) == (MAX, INF)
    assert _cert_op(lambda x: cert._ipow(x, 2), a) == (MAX, INF)
    assert _cert_op(cert.mul, a, a) == (MAX, INF)
    # a dot product with such a term is a valid bound too (the certifier's fdot)
    sq = cert._ipow(cert.Iv(np.array([[-1.6e218, 1.0]]), np.array([[-1.6e218, 2.0]])), 2)
    d = cert.fdot(np.array([[1.0, -1.0]]), sq, axis=-1)
    assert float(d.lo[0]) >= MAX * 0.5 and float(d.hi[0]) == INF


def test_zero_times_an_unbounded_interval_is_zero_not_nan():
    zero, unbounded = (0.0, 0.0), (MAX, INF)
    lo, hi = _core_op(core._mul, zero, unbounded)
    assert lo <= 0 <= hi and math.isfinite(lo) and math.isfinite(hi)
    lo, hi = _cert_op(cert.mul, zero, unbounded)
    assert lo <= 0 <= hi and math.isfinite(lo) and math.isfinite(hi)
    f = cert.fmul(np.array([0.0]), cert.Iv(np.array([-INF]), np.array([INF])))
    assert float(f.lo[0]) <= 0 <= float(f.hi[0])


def test_expression_evaluation_never_returns_nan():
    x, y = sp.symbols("x y")
    expr = x**4 * y + sp.sin(x**2) - x**3
    env = {x: (np.array([-1e100, 1e80]), np.array([-1e100, 1e300])), y: (np.array([0.0, -1.0]), np.array([0.0, 1.0]))}
    lo, hi = core.evaluate(expr, env)
    assert not np.isnan(lo).any() and not np.isnan(hi).any() and np.all(lo <= hi)
    model_env = {x: cert.Iv(*env[x]), y: cert.Iv(*env[y])}
    r = cert._compile(expr)(model_env)
    assert not np.isnan(r.lo).any() and not np.isnan(r.hi).any() and np.all(r.lo <= r.hi)


# ----------------------------------------------------------------------------- exact references
@settings(max_examples=300, deadline=None)
@given(intervals(), intervals())
def test_products_enclose_the_exact_products(a, b):
    exact = [p * q for p in _points(a) for q in _points(b)]
    _encloses(*_core_op(core._mul, a, b), exact)
    _encloses(*_cert_op(cert.mul, a, b), exact)


@settings(max_examples=300, deadline=None)
@given(intervals(), intervals())
def test_sums_and_differences_enclose_the_exact_results(a, b):
    _encloses(*_core_op(core._add, a, b), [p + q for p in _points(a) for q in _points(b)])
    _encloses(*_cert_op(cert.add, a, b), [p + q for p in _points(a) for q in _points(b)])
    _encloses(*_cert_op(cert.sub, a, b), [p - q for p in _points(a) for q in _points(b)])


@settings(max_examples=300, deadline=None)
@given(intervals(), st.integers(0, 7))
def test_integer_powers_enclose_the_exact_powers(a, k):
    exact = [p**k for p in _points(a)]
    _encloses(*_core_op(lambda x: core._int_pow(x, k), a), exact)
    _encloses(*_cert_op(lambda x: cert._ipow(x, k), a), exact)


@settings(max_examples=200, deadline=None)
@given(st.lists(intervals(), min_size=1, max_size=5), st.lists(_finite, min_size=5, max_size=5))
def test_dot_products_enclose_the_exact_sums(ivs, f):
    f = f[: len(ivs)]
    lo = np.array([[iv[0] for iv in ivs]])
    hi = np.array([[iv[1] for iv in ivs]])
    d = cert.fdot(np.array([f]), cert.Iv(lo, hi), axis=-1)
    pts = [_points(iv) for iv in ivs]
    exact = [sum(Fraction(fk) * p[j] for fk, p in zip(f, pts)) for j in range(3)]
    _encloses(float(d.lo[0]), float(d.hi[0]), exact)
    s = cert.sum_iv(cert.Iv(lo, hi), axis=-1)
    _encloses(float(s.lo[0]), float(s.hi[0]), [sum(p[j] for p in pts) for j in range(3)])


@settings(max_examples=200, deadline=None)
@given(intervals(), st.sampled_from(["sin", "cos"]))
def test_sin_and_cos_enclose_the_exact_values(a, which):
    mpmath.mp.prec = 200
    fn = mpmath.sin if which == "sin" else mpmath.cos
    pts = [p for p in _points(a) if abs(p) < 1e6]  # 200 bits reduce arguments this large exactly
    core_r = _core_op(lambda x: core._sin(x, 0.0 if which == "sin" else math.pi / 2), a)
    cert_r = _cert_op(lambda x: cert._trig(x, which), a)
    for lo, hi in (core_r, cert_r):
        assert not (math.isnan(lo) or math.isnan(hi)) and -1.0 <= lo <= hi <= 1.0, (lo, hi)
        for p in pts:
            v = fn(mpmath.mpf(p.numerator) / p.denominator)
            assert mpmath.mpf(lo) <= v <= mpmath.mpf(hi), (a, float(p), lo, hi)


@pytest.mark.parametrize("bad", [(-INF, INF), (INF, INF), (-INF, -INF)])
def test_unbounded_trig_arguments_give_the_whole_range(bad):
    assert _core_op(lambda x: core._sin(x), bad) == (-1.0, 1.0)
    assert _cert_op(lambda x: cert._trig(x, "cos"), bad) == (-1.0, 1.0)
