"""Rigorous interval evaluation of sympy expressions over batches of boxes.

For an expression ``e(x)`` and a box ``[lo, hi]`` the evaluator returns ``[e_lo, e_hi]``
with ``e_lo <= e(x) <= e_hi`` for every *real* ``x`` in the box, the real-number value of
``e`` (exact parameters, exact ``pi``), not a floating-point approximation of it.

Floating point is handled conservatively:

* every ``+``, ``-``, ``*``, ``/`` result is rounded outward by one ulp
  (``nextafter``); IEEE 754 round-to-nearest errs by at most half an ulp, so the
  widened bound contains the exact result;
* integer powers, ``sin`` and ``cos`` are widened by a relative ``8 k eps``
  plus the smallest subnormal, far above the documented error of the C library
  (< 1 ulp for glibc's ``sin``/``cos``);
* the monotone elementary functions ``exp``, ``log``, ``tan``, ``tanh``, ``atan``, ``sinh``,
  ``asinh``, ``cosh`` (:func:`_elementary`) and rational powers ``u^(p/q)`` such as ``sqrt``
  (:func:`_rational_pow`) are evaluated at the interval's ends (``cosh`` also at 0) and
  widened by a relative ``16 eps`` (rational powers also by ``|p/q| |ln u| eps`` for the
  rounding of the exponent); where the function is not defined on the whole interval
  (``log`` or a rational power of an interval reaching below 0, ``1/u`` or ``tan`` across
  a pole) the enclosure is ``[-inf, inf]``: true for every real, so a proof that needs a
  bound there fails instead of using a wrong one;
* rational constants that are not doubles (``981/100``, ``1/12``) and ``pi`` become
  enclosing intervals one ulp wide;
* overflow keeps every bound valid, never NaN: an interval stands for finite reals, so an
  endpoint product ``0 * inf`` is 0, a lower bound that overflowed to ``+inf`` becomes the
  largest finite double (``[-1.6e218]^2 = [1.797e308, inf]``), an upper bound at ``-inf`` the
  most negative one, and any NaN that could still arise becomes ``-inf`` (lower) / ``+inf``
  (upper), which are always valid.

Two enclosures are combined where it helps (:func:`enclose`): the natural interval
extension ``e([x])`` and the mean-value form

    e(x) in e(m) + sum_j  de/dx_j([x]) * ([x_j] - m_j),     m = midpoint of the box,

which is second-order tight on small boxes; their intersection is returned.

All arrays broadcast: a box batch has shape ``[N]`` per coordinate.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Mapping, Sequence

import numpy as np
import sympy as sp

__all__ = ["Interval", "evaluate", "enclose", "number_interval", "ELEMENTARY"]

Interval = tuple[np.ndarray, np.ndarray]

_EPS = np.finfo(np.float64).eps
_MAX = float(np.finfo(np.float64).max)
_TINY = np.nextafter(0.0, 1.0)  # smallest positive subnormal


def _down(v: np.ndarray) -> np.ndarray:
    """The next double below ``v`` (``+inf`` -> largest finite double; NaN -> ``-inf``, always a lower bound)."""
    with np.errstate(over="ignore"):
        r = np.nextafter(v, -np.inf)
    return np.where(np.isnan(r), -np.inf, r)


def _up(v: np.ndarray) -> np.ndarray:
    """The next double above ``v`` (``-inf`` -> most negative double; NaN -> ``+inf``, always an upper bound)."""
    with np.errstate(over="ignore"):
        r = np.nextafter(v, np.inf)
    return np.where(np.isnan(r), np.inf, r)


def _prod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Endpoint product ``x * y`` with ``0 * (+-inf) = 0`` (endpoints bound finite reals)."""
    with np.errstate(over="ignore", invalid="ignore"):
        p = np.multiply(x, y)
    nan = np.isnan(p)
    if np.any(nan):
        xb, yb = np.broadcast_arrays(x, y)
        p = np.where(nan & ((xb == 0) | (yb == 0)), 0.0, p)
    return p


def _widen(lo: np.ndarray, hi: np.ndarray, ulps: float) -> Interval:
    """Widen by a relative ``ulps * eps`` plus the smallest subnormal on each side (overflow-safe)."""
    with np.errstate(over="ignore", invalid="ignore"):
        wlo = np.where(lo == np.inf, _MAX, lo - (np.abs(lo) * ulps * _EPS + _TINY))
        whi = np.where(hi == -np.inf, -_MAX, hi + (np.abs(hi) * ulps * _EPS + _TINY))
    return np.where(np.isnan(wlo), -np.inf, wlo), np.where(np.isnan(whi), np.inf, whi)


def number_interval(value: sp.Expr) -> tuple[float, float]:
    """Tightest double interval containing the real number ``value`` (a sympy number).

    Rationals and ``pi`` get the tightest interval; any other constant is evaluated to 50 digits
    and widened by one ulp on each side.  The certifier keeps its own implementation
    (:func:`verification.certification.intervals.number_interval`) on purpose: the proof check
    shares no numeric code with the compiled models that synthesis uses, and the audit uses only
    the certifier's.
    """
    value = sp.sympify(value)
    if value.is_Rational:
        frac = Fraction(int(value.p), int(value.q))
        f = float(frac)
        if Fraction(f) == frac:
            return f, f
        return (f, float(np.nextafter(f, np.inf))) if Fraction(f) < frac else (float(np.nextafter(f, -np.inf)), f)
    if value is sp.pi:
        return math.pi, float(np.nextafter(math.pi, np.inf))  # math.pi < pi < next double
    if value.is_Float:
        return number_interval(sp.Rational(value))
    # Any other closed-form constant (E, sqrt(2), ...): evaluate with 50 digits, widen.
    v = sp.N(value, 50)
    if not v.is_real:
        raise ValueError(f"interval evaluation: constant {value} is not real")
    r = sp.Rational(v)
    lo, hi = number_interval(r)
    return float(np.nextafter(lo, -np.inf)), float(np.nextafter(hi, np.inf))


def _mul(a: Interval, b: Interval) -> Interval:
    p = np.stack(np.broadcast_arrays(_prod(a[0], b[0]), _prod(a[0], b[1]), _prod(a[1], b[0]), _prod(a[1], b[1])))
    return _down(p.min(axis=0)), _up(p.max(axis=0))


def _add(a: Interval, b: Interval) -> Interval:
    with np.errstate(over="ignore", invalid="ignore"):
        return _down(a[0] + b[0]), _up(a[1] + b[1])


def _int_pow(a: Interval, k: int) -> Interval:
    lo, hi = np.broadcast_arrays(*a)
    if k == 0:
        return np.ones_like(lo), np.ones_like(hi)
    with np.errstate(over="ignore"):
        plo, phi = lo**k, hi**k
    if k % 2 == 1:
        return _widen(plo, phi, 8 * k)
    rlo = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(plo, phi))
    rhi = np.maximum(plo, phi)
    rlo, rhi = _widen(rlo, rhi, 8 * k)
    return np.maximum(rlo, 0.0), rhi


def _reciprocal(a: Interval) -> Interval:
    """``1 / u``; ``[-inf, inf]`` where the interval contains 0 (undefined there)."""
    lo, hi = np.broadcast_arrays(*a)
    zero = (lo <= 0) & (hi >= 0) | np.isnan(lo) | np.isnan(hi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rlo, rhi = _down(1.0 / np.where(zero, 1.0, hi)), _up(1.0 / np.where(zero, 1.0, lo))
    return np.where(zero, -np.inf, rlo), np.where(zero, np.inf, rhi)


_INCREASING = {sp.exp: np.exp, sp.log: np.log, sp.tanh: np.tanh, sp.atan: np.arctan, sp.sinh: np.sinh,
               sp.asinh: np.arcsinh, sp.tan: np.tan}
ELEMENTARY = (*_INCREASING, sp.cosh)  # the one-argument functions :func:`evaluate` bounds besides sin and cos
_ELEMENTARY_ULPS = 16.0  # numpy's SIMD exp/log/tanh/... err by a few ulps at most


def _elementary(func: type, a: Interval) -> Interval:
    """Range of ``exp``, ``log``, ``tan``, ``tanh``, ``atan``, ``sinh``, ``asinh`` or ``cosh`` over ``[lo, hi]``.

    All but ``cosh`` increase on their domain, so ``[f(lo), f(hi)]`` widened outward bounds the
    range; ``cosh`` decreases to 1 at 0 and increases after.  ``[-inf, inf]`` where ``log``'s
    interval reaches 0 or below, or ``tan``'s may contain a pole ``pi/2 + k pi`` (checked with a
    margin towards "contains").
    """
    lo, hi = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(*a))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if func is sp.cosh:
            clo, chi = np.cosh(lo), np.cosh(hi)
            rlo = np.where((lo <= 0) & (hi >= 0), 1.0, np.minimum(clo, chi))
            rlo, rhi = _widen(rlo, np.maximum(clo, chi), _ELEMENTARY_ULPS)
            return np.maximum(rlo, 1.0), rhi
        fn = _INCREASING[func]
        rlo, rhi = _widen(fn(lo), fn(hi), _ELEMENTARY_ULPS)
    undefined = np.zeros(lo.shape, dtype=bool)
    if func is sp.log:
        undefined = ~(lo > 0)
    elif func is sp.tan:
        with np.errstate(invalid="ignore"):
            undefined = ~((hi - lo) < math.pi) | _contains_point(lo, hi, math.pi / 2) \
                | _contains_point(lo, hi, -math.pi / 2) | ~np.isfinite(lo) | ~np.isfinite(hi)
    if func is sp.tanh:
        rlo, rhi = np.maximum(rlo, -1.0), np.minimum(rhi, 1.0)
    return np.where(undefined, -np.inf, rlo), np.where(undefined, np.inf, rhi)


def _rational_pow(a: Interval, e: sp.Rational) -> Interval:
    """``u^(p/q)`` (``q > 1``) over ``[lo, hi]``, defined for ``u >= 0`` (``[-inf, inf]`` where ``lo < 0``).

    Monotone in ``u``; ``np.power`` with the rounded exponent ``fl(p/q)`` differs from the exact
    power by a relative ``|p/q - fl(p/q)| |ln u| <= |p/q| eps |ln u|``, which the widening covers.
    """
    lo, hi = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(*a))
    ef = float(e)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        plo, phi = np.power(np.maximum(lo, 0.0), ef), np.power(np.maximum(hi, 0.0), ef)
        vlo, vhi = np.minimum(plo, phi), np.maximum(plo, phi)
        ulps = _ELEMENTARY_ULPS + abs(ef) * np.maximum(np.abs(np.log(np.maximum(lo, _TINY))),
                                                       np.abs(np.log(np.maximum(hi, _TINY))))
        wlo = np.where(vlo == 0.0, 0.0, vlo - np.abs(vlo) * ulps * _EPS - _TINY)
        whi = vhi + np.abs(vhi) * ulps * _EPS + _TINY
    undefined = ~(lo >= 0) | np.isnan(wlo) | np.isnan(whi)
    return np.where(undefined, -np.inf, np.maximum(wlo, 0.0)), np.where(undefined, np.inf, whi)


def _contains_point(lo: np.ndarray, hi: np.ndarray, phase: float) -> np.ndarray:
    """True where ``[lo, hi]`` may contain ``phase + 2 k pi`` for some integer k.

    Decided with a margin in the inclusive direction (a false "yes" only widens the
    enclosure, a false "no" would be unsound).
    """
    two_pi = 2.0 * math.pi
    k_hi = np.floor((hi - phase) / two_pi + 1e-9)
    k_lo = np.ceil((lo - phase) / two_pi - 1e-9)
    return k_hi >= k_lo


def _sin(a: Interval, phase_shift: float = 0.0) -> Interval:
    """Range of ``sin(x + phase_shift)`` over ``[lo, hi]``; ``cos`` uses ``phase_shift = pi/2``."""
    lo, hi = np.broadcast_arrays(*a)
    finite = np.isfinite(lo) & np.isfinite(hi)
    lo_f, hi_f = np.where(finite, lo, 0.0), np.where(finite, hi, 0.0)
    fn = np.cos if phase_shift else np.sin
    slo, shi = fn(lo_f), fn(hi_f)
    rlo, rhi = _widen(np.minimum(slo, shi), np.maximum(slo, shi), 8)
    # maxima of sin(y) at y = pi/2 + 2 k pi, i.e. x = pi/2 - shift + 2 k pi
    has_max = _contains_point(lo_f, hi_f, math.pi / 2 - phase_shift)
    has_min = _contains_point(lo_f, hi_f, -math.pi / 2 - phase_shift)
    wide = ~finite | ((hi_f - lo_f) >= 2.0 * math.pi)
    rhi = np.where(has_max | wide, 1.0, np.minimum(rhi, 1.0))
    rlo = np.where(has_min | wide, -1.0, np.maximum(rlo, -1.0))
    return rlo, rhi


def evaluate(expr: sp.Expr, env: Mapping[sp.Symbol, Interval], _memo: dict | None = None) -> Interval:
    """Natural interval extension of ``expr`` with symbol ranges ``env``.

    :param expr: a sympy expression built from + * ** (integer or rational exponents), sin,
        cos, sqrt, exp, log, tan, tanh, atan, sinh, asinh, cosh, numbers and ``pi``; parameters
        must already be substituted.
    :param env: symbol -> (lo, hi) arrays (broadcastable).
    :raises NotImplementedError: for an operation the evaluator cannot bound rigorously.
    """
    memo = {} if _memo is None else _memo
    if expr in memo:
        return memo[expr]
    if expr.is_Symbol:
        if expr not in env:
            raise KeyError(f"interval evaluation: no range given for symbol {expr}")
        lo, hi = env[expr]
        out = (np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))
    elif expr.is_number:
        clo, chi = number_interval(expr)
        out = (np.float64(clo), np.float64(chi))
    elif expr.is_Add:
        args = [evaluate(t, env, memo) for t in expr.args]
        out = args[0]
        for t in args[1:]:
            out = _add(out, t)
    elif expr.is_Mul:
        args = [evaluate(t, env, memo) for t in expr.args]
        out = args[0]
        for t in args[1:]:
            out = _mul(out, t)
    elif expr.is_Pow:
        base, ex = expr.args
        b = evaluate(base, env, memo)
        if ex.is_Integer and int(ex) >= 0:
            out = _int_pow(b, int(ex))
        elif ex.is_Integer:
            out = _reciprocal(_int_pow(b, -int(ex)))
        elif ex.is_Rational:
            out = _rational_pow(b, ex)
        else:
            raise NotImplementedError(f"interval evaluation: exponent {ex} is not supported in {expr}")
    elif isinstance(expr, sp.sin):
        out = _sin(evaluate(expr.args[0], env, memo))
    elif isinstance(expr, sp.cos):
        out = _sin(evaluate(expr.args[0], env, memo), phase_shift=math.pi / 2)
    elif expr.func in ELEMENTARY:
        out = _elementary(expr.func, evaluate(expr.args[0], env, memo))
    else:
        raise NotImplementedError(f"interval evaluation: {type(expr).__name__} is not supported ({expr})")
    memo[expr] = out
    return out


def enclose(
    exprs: Sequence[sp.Expr],
    variables: Sequence[sp.Symbol],
    lo: np.ndarray,
    hi: np.ndarray,
    mean_value: bool = True,
) -> Interval:
    """Rigorous enclosure of each expression over each box ``[lo, hi]``.

    :param exprs: k expressions in ``variables`` (parameters substituted).
    :param variables: the n variables.
    :param lo: lower box corners, shape ``[N, n]``.
    :param hi: upper box corners, shape ``[N, n]``.
    :param mean_value: also use the mean-value form and intersect (tighter on small boxes).
    :returns: ``(e_lo, e_hi)`` of shape ``[N, k]``.
    """
    lo = np.atleast_2d(np.asarray(lo, dtype=np.float64))
    hi = np.atleast_2d(np.asarray(hi, dtype=np.float64))
    if lo.shape != hi.shape or lo.shape[-1] != len(variables):
        raise ValueError(f"enclose: boxes must have shape [N, {len(variables)}], got {lo.shape} and {hi.shape}")
    if np.any(lo > hi) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("enclose: boxes must be finite with lo <= hi")
    env = {v: (lo[:, j], hi[:, j]) for j, v in enumerate(variables)}
    N = lo.shape[0]
    out_lo = np.empty((N, len(exprs)))
    out_hi = np.empty((N, len(exprs)))
    memo: dict = {}
    for i, e in enumerate(exprs):
        elo, ehi = evaluate(sp.sympify(e), env, memo)
        out_lo[:, i], out_hi[:, i] = np.broadcast_to(elo, (N,)), np.broadcast_to(ehi, (N,))
    if not mean_value:
        return out_lo, out_hi
    mid = 0.5 * (lo + hi)
    env_mid = {v: (mid[:, j], mid[:, j]) for j, v in enumerate(variables)}
    dev = [(_down(lo[:, j] - mid[:, j]), _up(hi[:, j] - mid[:, j])) for j in range(len(variables))]
    memo_mid: dict = {}
    grads = _gradients(tuple(sp.sympify(e) for e in exprs), tuple(variables))
    for i, e in enumerate(exprs):
        acc = evaluate(sp.sympify(e), env_mid, memo_mid)
        for j, d in enumerate(grads[i]):
            if d == 0:
                continue
            acc = _add(acc, _mul(evaluate(d, env, memo), dev[j]))
        mlo, mhi = np.broadcast_to(acc[0], (N,)), np.broadcast_to(acc[1], (N,))
        out_lo[:, i] = np.maximum(out_lo[:, i], mlo)
        out_hi[:, i] = np.minimum(out_hi[:, i], mhi)
    return out_lo, out_hi


@functools.lru_cache(maxsize=256)
def _gradients(exprs: tuple[sp.Expr, ...], variables: tuple[sp.Symbol, ...]) -> list[list[sp.Expr]]:
    """Symbolic gradients ``de_i/dx_j``, computed once per expression tuple."""
    return [[sp.diff(e, v) for v in variables] for e in exprs]

