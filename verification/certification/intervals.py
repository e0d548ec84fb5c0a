"""Outward-rounded interval arithmetic for the RCI certifier (independent of
:mod:`reachsafe.systems.intervals`).

An interval ``Iv(lo, hi)`` holds numpy arrays with ``lo <= v <= hi`` for the *real* value
``v`` it stands for.  Every operation returns an interval that contains the exact real
result:

* ``+ - *`` and ``1/x`` on doubles are rounded to nearest by IEEE 754, i.e. the exact
  result lies within half an ulp of the computed one, so stepping one double outward
  (``np.nextafter``) encloses it (this also holds in the subnormal range);
* sums of many terms use the a-priori bound of floating-point summation
  ``|fl(sum y_k) - sum y_k| <= gamma_{N-1} sum |y_k|``, ``gamma_N = N u / (1 - N u)``,
  ``u = 2^-53`` (valid for numpy's pairwise summation too), enlarged by a factor > 2;
* ``sin``/``cos`` are evaluated with :func:`math.sin`/``cos`` (glibc, < 1 ulp) and widened
  by 8 ulps relative plus the smallest subnormal; interior extrema are detected with a
  margin that errs towards including them;
* ``exp``, ``log``, ``tan``, ``tanh``, ``atan``, ``sinh``, ``asinh`` (increasing) and ``cosh``
  (least at 0) are evaluated with :mod:`math` at the interval's ends and widened by 16 ulps
  relative; rational powers ``u^(p/q)`` with :func:`math.pow` and the rounded exponent, widened
  also by ``|p/q| |ln u|`` ulps (the exponent's rounding).  Where the function is not defined
  on the whole interval (``log`` or a rational power reaching below 0, ``1/u`` or ``tan``
  across a pole) the enclosure is ``[-inf, inf]``, true for every real: a proof that needs it fails;
* exact constants (``981/100``, ``pi``) become the tightest enclosing double intervals;
* overflow never produces NaN: the endpoints bound finite reals, so an endpoint product
  ``0 * inf`` is 0, rounding a lower bound ``+inf`` down gives the largest finite double
  (``[-1.6e218]^2 = [1.797e308, inf]``), an upper bound ``-inf`` up the most negative one, a sum
  with an infinite term is infinite in that direction, and any NaN left becomes ``-inf``
  (lower bound) / ``+inf`` (upper bound), which are always valid.

:class:`CertModel` derives ``f(x, a, w) = c(x) + B(x) a + E(x) w`` from the symbolic
:class:`~reachsafe.systems.definition.SystemDefinition` by differentiating ``step_exprs()``
(checking affinity symbolically), together with the Jacobian ``dc/dx``, and encloses all of
them over batches of boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np
import sympy as sp

__all__ = ["Iv", "point", "add", "sub", "mul", "fmul", "neg", "sum_iv", "fdot", "number_interval",
           "ivdot", "CertModel", "CertModelError", "fraction_up", "fraction_down"]

_TINY = float(np.nextafter(0.0, 1.0))
_EPS = float(np.finfo(np.float64).eps)
_MAX = float(np.finfo(np.float64).max)
_TWO_PI_LO = 2.0 * math.pi  # 2*math.pi < 2 pi (exact scaling of math.pi < pi)


class CertModelError(ValueError):
    """The symbolic model cannot be handled (not affine in (a, w), unsupported function)."""


@dataclass(frozen=True)
class Iv:
    """Interval array: ``lo <= value <= hi`` elementwise."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def mid(self) -> np.ndarray:
        """A finite double inside the interval where one exists (not an enclosure of anything)."""
        lo = np.clip(self.lo, -_MAX, _MAX)
        hi = np.clip(self.hi, -_MAX, _MAX)
        return np.clip(0.5 * lo + 0.5 * hi, lo, hi)

    @property
    def mag(self) -> np.ndarray:
        """Upper bound of ``|v|``."""
        return np.maximum(np.abs(self.lo), np.abs(self.hi))

    def __getitem__(self, idx) -> "Iv":
        return Iv(self.lo[idx], self.hi[idx])

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self.lo)


def _down(v: np.ndarray) -> np.ndarray:
    """Next double below ``v`` (``+inf`` -> largest finite double; NaN -> ``-inf``, always a lower bound)."""
    with np.errstate(over="ignore"):
        r = np.nextafter(v, -np.inf)
    return np.where(np.isnan(r), -np.inf, r)


def _up(v: np.ndarray) -> np.ndarray:
    """Next double above ``v`` (``-inf`` -> most negative double; NaN -> ``+inf``, always an upper bound)."""
    with np.errstate(over="ignore"):
        r = np.nextafter(v, np.inf)
    return np.where(np.isnan(r), np.inf, r)


def _prod(x, y) -> np.ndarray:
    """Endpoint product ``x * y`` with ``0 * (+-inf) = 0`` (an endpoint bounds finite reals)."""
    with np.errstate(over="ignore", invalid="ignore"):
        p = np.multiply(x, y)
    nan = np.isnan(p)
    if np.any(nan):
        xb, yb = np.broadcast_arrays(x, y)
        p = np.where(nan & ((xb == 0) | (yb == 0)), 0.0, p)
    return p


def point(x) -> Iv:
    """Degenerate interval of doubles (exact)."""
    x = np.asarray(x, dtype=np.float64)
    return Iv(x, x)


def neg(a: Iv) -> Iv:
    return Iv(-a.hi, -a.lo)


def add(a: Iv, b: Iv) -> Iv:
    with np.errstate(over="ignore", invalid="ignore"):
        return Iv(_down(a.lo + b.lo), _up(a.hi + b.hi))


def sub(a: Iv, b: Iv) -> Iv:
    with np.errstate(over="ignore", invalid="ignore"):
        return Iv(_down(a.lo - b.hi), _up(a.hi - b.lo))


def mul(a: Iv, b: Iv) -> Iv:
    """Product of intervals: min/max of the four corner products, rounded outward."""
    p1, p2, p3, p4 = _prod(a.lo, b.lo), _prod(a.lo, b.hi), _prod(a.hi, b.lo), _prod(a.hi, b.hi)
    lo = np.minimum(np.minimum(p1, p2), np.minimum(p3, p4))
    hi = np.maximum(np.maximum(p1, p2), np.maximum(p3, p4))
    return Iv(_down(lo), _up(hi))


def fmul(f, a: Iv) -> Iv:
    """Exact double array ``f`` times interval ``a`` (broadcast), rounded outward."""
    f = np.asarray(f, dtype=np.float64)
    p1, p2 = _prod(f, a.lo), _prod(f, a.hi)
    return Iv(_down(np.minimum(p1, p2)), _up(np.maximum(p1, p2)))


def _sum_bound(X: np.ndarray, axis: int, up: bool) -> np.ndarray:
    """Rigorous upper (``up``) or lower bound of the exact sum of the doubles ``X`` along ``axis``."""
    N = X.shape[axis]
    if N == 0:
        return np.zeros(np.delete(np.array(X.shape), axis % X.ndim).tolist())
    with np.errstate(over="ignore", invalid="ignore"):
        s = X.sum(axis=axis)
        t = np.abs(X).sum(axis=axis)
        err = t * ((4.0 * N + 4.0) * 2.0**-53) + 1e-300
        if up:  # a +inf term makes the sum unbounded above (and +inf + -inf must not turn into NaN)
            return np.where(np.any(X == np.inf, axis=axis), np.inf, _up(s + err))
        return np.where(np.any(X == -np.inf, axis=axis), -np.inf, _down(s - err))


def sum_iv(a: Iv, axis: int = -1) -> Iv:
    """Enclosure of the sum of the interval entries along ``axis``."""
    return Iv(_sum_bound(a.lo, axis, up=False), _sum_bound(a.hi, axis, up=True))


def fdot(f, a: Iv, axis: int = -1) -> Iv:
    """Enclosure of ``sum_k f_k a_k`` along ``axis`` (``f`` exact doubles, broadcast)."""
    return sum_iv(fmul(f, a), axis)


def ivdot(a: Iv, b: Iv, axis: int = -1) -> Iv:
    """Enclosure of ``sum_k a_k b_k`` along ``axis`` for intervals."""
    return sum_iv(mul(a, b), axis)


def _widen(lo: np.ndarray, hi: np.ndarray, ulps: float) -> Iv:
    with np.errstate(over="ignore", invalid="ignore"):
        wlo = np.where(lo == np.inf, _MAX, lo - (np.abs(lo) * (ulps * _EPS) + _TINY))
        whi = np.where(hi == -np.inf, -_MAX, hi + (np.abs(hi) * (ulps * _EPS) + _TINY))
    return Iv(np.where(np.isnan(wlo), -np.inf, wlo), np.where(np.isnan(whi), np.inf, whi))


# ------------------------------------------------------------------ exact constants
def number_interval(value) -> tuple[float, float]:
    """Tightest double interval ``[lo, hi]`` containing the real sympy number ``value``.

    Deliberately a second implementation beside :func:`reachsafe.systems.intervals.number_interval`
    (which rounds the constants of the compiled models that synthesis and the safeguards use): the
    certifier's trusted base shares no numeric code with what produced the set, so one bug cannot
    make a wrong set and its wrong proof agree.  This one is tight for every constant (irrational
    ones from 80 digits); the core one is tight for rationals and ``pi``, one ulp wider on each side on
    other constants.  The audit rounds ``X`` and ``W`` with this one only.
    """
    value = sp.sympify(value)
    if value.is_Rational:
        frac = Fraction(int(value.p), int(value.q))
        return fraction_down(frac), fraction_up(frac)
    if value.is_Float:
        return number_interval(sp.Rational(value))
    if value is sp.pi:
        return math.pi, float(np.nextafter(math.pi, np.inf))  # math.pi < pi < next double
    v = sp.N(value, 80)  # evalf: relative error far below 1e-70
    if not v.is_real:
        raise CertModelError(f"constant {value} is not real")
    q = Fraction(int(sp.Rational(v).p), int(sp.Rational(v).q))
    delta = abs(q) * Fraction(1, 10**60) + Fraction(1, 10**300)
    return fraction_down(q - delta), fraction_up(q + delta)


def fraction_up(q: Fraction) -> float:
    """Smallest double >= q."""
    f = float(q)
    return f if Fraction(f) >= q else float(_up(f))


def fraction_down(q: Fraction) -> float:
    """Largest double <= q."""
    f = float(q)
    return f if Fraction(f) <= q else float(_down(f))


# ------------------------------------------------------------------ elementary functions
def _ipow(a: Iv, k: int) -> Iv:
    if k == 0:
        return Iv(np.ones_like(a.lo), np.ones_like(a.hi))
    if k < 0:
        return _recip(_ipow(a, -k))
    r = a
    for _ in range(k - 1):
        r = mul(r, a)
    if k % 2 == 0:  # even power: non-negative, and 0 when the interval straddles 0
        lo = np.where((a.lo <= 0) & (a.hi >= 0), 0.0, np.maximum(r.lo, 0.0))
        r = Iv(lo, r.hi)
    return r


def _recip(a: Iv) -> Iv:
    """``1 / u``; ``[-inf, inf]`` where the interval contains 0 (undefined there, so never proven)."""
    lo, hi = np.broadcast_arrays(np.asarray(a.lo, float), np.asarray(a.hi, float))
    with np.errstate(invalid="ignore"):
        zero = ~((lo > 0) | (hi < 0))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rlo, rhi = _down(1.0 / np.where(zero, 1.0, hi)), _up(1.0 / np.where(zero, 1.0, lo))
    return Iv(np.where(zero, -np.inf, rlo), np.where(zero, np.inf, rhi))


def _may_contain(lo: np.ndarray, hi: np.ndarray, phase: float) -> np.ndarray:
    """True where [lo, hi] may contain ``phase + 2 k pi`` (margin errs towards True)."""
    k_hi = np.floor((hi - phase) / _TWO_PI_LO + 1e-9)
    k_lo = np.ceil((lo - phase) / _TWO_PI_LO - 1e-9)
    return k_hi >= k_lo


_msin = np.frompyfunc(math.sin, 1, 1)
_mcos = np.frompyfunc(math.cos, 1, 1)


def _trig(a: Iv, which: str) -> Iv:
    """Range of sin or cos over [lo, hi]: endpoint values widened, +-1 where an extremum may lie inside."""
    lo, hi = np.broadcast_arrays(np.asarray(a.lo, float), np.asarray(a.hi, float))
    with np.errstate(invalid="ignore"):
        wide = ~((hi - lo) < 6.0) | ~(np.abs(lo) < 1e6) | ~(np.abs(hi) < 1e6)  # also true for inf and NaN
    lo, hi = np.where(wide, 0.0, lo), np.where(wide, 0.0, hi)  # math.sin(inf) raises; wide ones are [-1, 1]
    fn = _msin if which == "sin" else _mcos
    ylo = np.asarray(fn(lo), dtype=np.float64)
    yhi = np.asarray(fn(hi), dtype=np.float64)
    r = _widen(np.minimum(ylo, yhi), np.maximum(ylo, yhi), 8.0)
    pmax, pmin = (math.pi / 2, -math.pi / 2) if which == "sin" else (0.0, math.pi)
    rhi = np.where(wide | _may_contain(lo, hi, pmax), 1.0, np.minimum(r.hi, 1.0))
    rlo = np.where(wide | _may_contain(lo, hi, pmin), -1.0, np.maximum(r.lo, -1.0))
    return Iv(rlo, rhi)


def _safe(fn: Callable[[float], float]) -> Callable[[float], float]:
    """``fn`` with an overflow returning an infinity of the right sign (``math.exp(1e3)`` raises)."""
    def g(v: float) -> float:
        try:
            return fn(v)
        except OverflowError:
            return math.copysign(math.inf, v) if fn is not math.cosh else math.inf
    return g


_MONOTONE = {"exp": math.exp, "log": math.log, "tan": math.tan, "tanh": math.tanh, "atan": math.atan,
             "sinh": math.sinh, "asinh": math.asinh}
_MONO_ULPS = 16.0


def _mono(a: Iv, name: str) -> Iv:
    """Range of an increasing elementary function (``cosh``: least at 0) over [lo, hi], see module docstring."""
    lo, hi = np.broadcast_arrays(np.asarray(a.lo, float), np.asarray(a.hi, float))
    with np.errstate(invalid="ignore"):
        if name == "log":
            bad = ~(lo > 0) | ~(hi < np.inf)
        elif name == "tan":
            bad = ~((hi - lo) < 3.0) | ~(np.abs(lo) < 1e6) | ~(np.abs(hi) < 1e6)
            bad = bad | _may_contain(np.where(bad, 0.0, lo), np.where(bad, 0.0, hi), math.pi / 2) \
                | _may_contain(np.where(bad, 0.0, lo), np.where(bad, 0.0, hi), -math.pi / 2)
        else:
            bad = np.isnan(lo) | np.isnan(hi)
    lo_s, hi_s = np.where(bad, 1.0, lo), np.where(bad, 1.0, hi)
    fn = np.frompyfunc(_safe(math.cosh if name == "cosh" else _MONOTONE[name]), 1, 1)
    ylo, yhi = np.asarray(fn(lo_s), dtype=np.float64), np.asarray(fn(hi_s), dtype=np.float64)
    if name == "cosh":
        ylo, yhi = np.where((lo_s <= 0) & (hi_s >= 0), 1.0, np.minimum(ylo, yhi)), np.maximum(ylo, yhi)
    r = _widen(ylo, yhi, _MONO_ULPS)
    rlo, rhi = r.lo, r.hi
    if name == "cosh":
        rlo = np.maximum(rlo, 1.0)
    elif name == "tanh":
        rlo, rhi = np.maximum(rlo, -1.0), np.minimum(rhi, 1.0)
    return Iv(np.where(bad, -np.inf, rlo), np.where(bad, np.inf, rhi))


def _rpow(a: Iv, e: Fraction) -> Iv:
    """``u^e`` for a non-integer rational ``e`` over [lo, hi] (``[-inf, inf]`` where ``lo < 0``)."""
    lo, hi = np.broadcast_arrays(np.asarray(a.lo, float), np.asarray(a.hi, float))
    ef = float(e)
    with np.errstate(invalid="ignore"):
        bad = ~(lo >= 0) | np.isnan(hi)
    lo_s, hi_s = np.where(bad, 1.0, lo), np.where(bad, 1.0, hi)

    def pw(u: float) -> float:
        if u == 0.0:
            return 0.0 if ef > 0 else math.inf
        if u == math.inf:
            return math.inf if ef > 0 else 0.0
        try:
            return math.pow(u, ef)
        except OverflowError:
            return math.inf

    f = np.frompyfunc(pw, 1, 1)
    p1, p2 = np.asarray(f(lo_s), dtype=np.float64), np.asarray(f(hi_s), dtype=np.float64)
    vlo, vhi = np.minimum(p1, p2), np.maximum(p1, p2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lnmax = np.maximum(np.abs(np.log(np.maximum(lo_s, _TINY))), np.abs(np.log(np.maximum(hi_s, _TINY))))
        ulps = _MONO_ULPS + abs(ef) * lnmax
        wlo = np.where(vlo == 0.0, 0.0, vlo - np.abs(vlo) * ulps * _EPS - _TINY)
        whi = vhi + np.abs(vhi) * ulps * _EPS + _TINY
    return Iv(np.where(bad, -np.inf, np.maximum(wlo, 0.0)), np.where(bad, np.inf, whi))


# ------------------------------------------------------------------ expression evaluation
def _compile(expr: sp.Expr) -> Callable[[dict], Iv]:
    """Closure evaluating ``expr`` on an environment {symbol: Iv}."""
    if expr.is_Symbol:
        return lambda env, s=expr: env[s]
    if expr.is_number:
        lo, hi = number_interval(expr)
        return lambda env: Iv(np.asarray(lo), np.asarray(hi))
    args = [_compile(a) for a in expr.args]
    if expr.is_Add:
        def f_add(env):
            r = args[0](env)
            for g in args[1:]:
                r = add(r, g(env))
            return r
        return f_add
    if expr.is_Mul:
        def f_mul(env):
            r = args[0](env)
            for g in args[1:]:
                r = mul(r, g(env))
            return r
        return f_mul
    if expr.is_Pow:
        base, ex = expr.args
        if ex.is_Integer:
            k = int(ex)
            return lambda env: _ipow(args[0](env), k)
        if ex.is_Rational:
            q = Fraction(int(ex.p), int(ex.q))
            return lambda env: _rpow(args[0](env), q)
        raise CertModelError(f"unsupported power {expr} (only rational exponents)")
    if isinstance(expr, sp.sin):
        return lambda env: _trig(args[0](env), "sin")
    if isinstance(expr, sp.cos):
        return lambda env: _trig(args[0](env), "cos")
    name = expr.func.__name__
    if name in _MONOTONE or name == "cosh":
        return lambda env: _mono(args[0](env), name)
    raise CertModelError(f"unsupported function {expr.func.__name__} in {expr}")


class CertModel:
    """Affine split of a symbolic system with rigorous enclosures.

    ``f(x, a, w) = c(x) + B(x) a + E(x) w`` with ``c = f(x, 0, 0)``, ``B = df/da``,
    ``E = df/dw`` (checked: ``B``, ``E`` free of ``a``, ``w`` and ``f - (c + B a + E w)``
    expands to 0), and ``Jc = dc/dx``.  :meth:`enclose` bounds all of them over boxes.
    """

    def __init__(self, definition) -> None:
        d = definition
        self.definition = d
        self.name = d.name
        self.x, self.a, self.w = list(d.state), list(d.action), list(d.noise)
        self.n, self.m, self.p = len(self.x), len(self.a), len(self.w)
        f = [sp.expand(e) for e in d.step_exprs()]
        zero = {s: 0 for s in self.a + self.w}
        c = [sp.expand(e.xreplace(zero)) for e in f]
        F = sp.Matrix(f)
        B = F.jacobian(self.a).applyfunc(sp.expand)
        E = F.jacobian(self.w).applyfunc(sp.expand) if self.w else sp.zeros(self.n, 0)
        self._check_affine(f, c, B, E)
        Jc = sp.Matrix(c).jacobian(self.x).applyfunc(sp.expand)
        DB = [sp.expand(sp.diff(B[i, j], xd)) for i in range(self.n) for j in range(self.m) for xd in self.x]
        self.c_exprs, self.B_exprs, self.E_exprs, self.Jc_exprs, self.DB_exprs = c, B, E, Jc, DB
        self._fc = [_compile(e) for e in c]
        self._fB = [_compile(e) for e in B]
        self._fE = [_compile(e) for e in E]
        self._fJ = [_compile(e) for e in Jc]
        self._fDB = [_compile(e) for e in DB]
        nonlin = set()
        for e in list(Jc) + list(B) + list(E):
            nonlin |= e.free_symbols
        self.nonlinear_dims = [i for i, s in enumerate(self.x) if s in nonlin]
        xl = [number_interval(v) for v in d.constraint_lo]
        xh = [number_interval(v) for v in d.constraint_hi]
        self.X_inner_lo = np.array([v[1] for v in xl])  # >= exact lower bound
        self.X_inner_hi = np.array([v[0] for v in xh])  # <= exact upper bound
        wl = [number_interval(v) for v in d.noise_lo]
        wh = [number_interval(v) for v in d.noise_hi]
        self.W = Iv(np.array([v[0] for v in wl]), np.array([v[1] for v in wh]))  # contains exact W
        self.W_lo_iv = Iv(np.array([v[0] for v in wl]), np.array([v[1] for v in wl]))  # encloses exact lower corner
        self.W_hi_iv = Iv(np.array([v[0] for v in wh]), np.array([v[1] for v in wh]))  # encloses exact upper corner

    def _check_affine(self, f, c, B, E) -> None:
        aw = set(self.a) | set(self.w)
        for i in range(self.n):
            for M, what in ((B, "action"), (E, "noise")):
                for j in range(M.shape[1]):
                    if M[i, j].free_symbols & aw:
                        raise CertModelError(f"system {self.name!r}: step[{i}] is not affine in the {what}")
            rec = (
                c[i] + sum(B[i, j] * self.a[j] for j in range(self.m)) + sum(E[i, j] * self.w[j] for j in range(self.p))
            )
            if sp.expand(f[i] - rec) != 0:
                raise CertModelError(f"system {self.name!r}: step[{i}] != c + B a + E w")

    def fingerprint(self) -> str:
        return self.definition.fingerprint()

    def _env(self, lo: np.ndarray, hi: np.ndarray) -> dict:
        return {s: Iv(lo[:, i], hi[:, i]) for i, s in enumerate(self.x)}

    @staticmethod
    def _stack(fns: Sequence[Callable], env: dict, N: int, shape: tuple[int, ...]) -> Iv:
        if not fns:
            z = np.zeros((N,) + shape)
            return Iv(z, z.copy())
        vals = [fn(env) for fn in fns]
        lo = np.stack([np.broadcast_to(v.lo, (N,)) for v in vals], axis=-1).reshape((N,) + shape)
        hi = np.stack([np.broadcast_to(v.hi, (N,)) for v in vals], axis=-1).reshape((N,) + shape)
        return Iv(lo, hi)

    def enclose(self, lo, hi, jacobian: bool = True) -> dict[str, Iv]:
        """Enclosures over N boxes ``[lo_k, hi_k]`` ([N, n]): ``c`` [N,n], ``B`` [N,n,m], ``E`` [N,n,p], and with
        ``jacobian`` also ``Jc = dc/dx`` [N,n,n] and ``DB = dB/dx`` [N,n,m,n] (``DB[k, i, j, d] = dB_ij/dx_d``)."""
        lo = np.atleast_2d(np.asarray(lo, dtype=np.float64))
        hi = np.atleast_2d(np.asarray(hi, dtype=np.float64))
        N, n, m, p = lo.shape[0], self.n, self.m, self.p
        env = self._env(lo, hi)
        out = {
            "c": self._stack(self._fc, env, N, (n,)),
            "B": self._stack(self._fB, env, N, (n, m)),
            "E": self._stack(self._fE, env, N, (n, p)),
        }
        if jacobian:
            out["Jc"] = self._stack(self._fJ, env, N, (n, n))
            out["DB"] = self._stack(self._fDB, env, N, (n, m, n))
        return out

    def at_points(self, x) -> dict[str, Iv]:
        """Enclosures of ``c, B, E`` at exact double points ``x`` ([N, n])."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        return self.enclose(x, x, jacobian=False)
