"""Per-state safe-action LP and rigorous proofs that a state has no safe action.

For a polytope ``P = {x : A x <= b}`` and a state ``x`` the set of safe actions is

    S(x) = {a in U : A B(x) a <= b - A c(x) - h_W(x)},
    h_W(x)_i = max_{w in W} A_i E(x) w = A_i E w_c + |A_i E| w_r,

(``U = [-1, 1]^m``, ``w_c``, ``w_r`` centre and radius of the noise box).  The float LP

    s*(x) = max_{a in U, s} s   s.t.  A B a + s ||A_i|| <= b - A c - h_W

measures the normalised worst-case margin; ``s* < 0`` iff ``S(x)`` is empty.

**Farkas proof of emptiness.**  If some ``y >= 0`` satisfies

    min_{a in U} sum_i y_i (A_i c + A_i B a + A_i E w_i - b_i) > 0

for noise vertices ``w_i in W`` (one per facet), then no ``a in U`` keeps every successor
in ``P``: any ``a in S(x)`` would make each bracket ``<= 0``.  The minimum over the box
``U`` of an affine function ``v^T a + k`` is ``k - sum_j |v_j|``.  :func:`farkas_margin`
evaluates this bound in outward-rounded interval arithmetic at the exact double ``x``,
with ``c, B, E`` enclosed from the symbolic model (:class:`CertModel`); ``y`` comes from the
LP duals (any ``y >= 0`` is valid, the LP only makes it good).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.optimize import linprog

from reachsafe.sets.rows import margin_lp, safe_action_rows

from . import intervals as ia
from .intervals import CertModel, Iv

__all__ = ["SafeActionLP", "safe_action_lp", "farkas_margin", "in_polytope", "Counterexample",
           "prove_no_safe_action", "screen_states", "find_counterexample", "local_search", "pull_inside"]


@dataclass
class SafeActionLP:
    """Result of the float per-state LP: normalised margin ``slack``, best ``action``, dual ``y`` (>= 0)."""

    slack: float
    action: np.ndarray
    y: np.ndarray
    status: int


@dataclass
class Counterexample:
    """A state ``x`` in P with no safe action (``reason="no_safe_action"``, Farkas ``y`` and its
    rigorous ``margin > 0``), or a state in P outside X (``reason="outside_constraints"``)."""

    x: np.ndarray
    reason: str
    margin: float
    lp_slack: float | None = None
    y: np.ndarray | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"x": self.x.tolist(), "reason": self.reason, "margin": self.margin,
                               "lp_slack": self.lp_slack}
        if self.y is not None:
            nz = np.flatnonzero(self.y)
            out["farkas_y"] = {"rows": nz.tolist(), "values": self.y[nz].tolist()}
        out.update(self.detail)
        return out


def safe_action_lp(A: np.ndarray, b: np.ndarray, c: np.ndarray, B: np.ndarray, E: np.ndarray,
                   w_lo: np.ndarray, w_hi: np.ndarray) -> SafeActionLP:
    """Float LP ``max s`` s.t. ``A B a + s ||A_i|| <= b - A c - h_W``, ``a in [-1,1]^m`` (see module doc).

    The LP is the core's :func:`reachsafe.sets.rows.margin_lp` (the one float implementation,
    also the synthesis search's), at one state, with ``s`` free; its duals ``y`` only guide
    the proof (:func:`farkas_margin` re-checks them in outward-rounded arithmetic).
    """
    M, r = safe_action_rows(A, b, c[None], B[None], E[None], w_lo, w_hi)
    lp = margin_lp(M, r, np.linalg.norm(A, axis=1))
    if lp.status != 0 or lp.s is None or lp.a is None or lp.y is None:
        return SafeActionLP(-np.inf, np.zeros(M.shape[2]), np.zeros(len(b)), lp.status)
    return SafeActionLP(float(lp.s[0]), np.asarray(lp.a[0]), lp.y[0], 0)


def in_polytope(A: np.ndarray, b: np.ndarray, x: np.ndarray) -> bool:
    """Rigorous ``A x <= b`` for the exact double ``x``: outward-rounded bounds, and exact rational
    arithmetic for the rows the rounded bound cannot decide."""
    Ax = ia.fdot(A, ia.point(x)[None, :], axis=-1)
    unsure = np.flatnonzero(~(Ax.hi <= b))
    if unsure.size == 0:
        return True
    if unsure.size > 1000 or not np.all(Ax.lo[unsure] <= b[unsure]):
        return False

    xq = [Fraction(float(v)) for v in x]
    return all(sum((Fraction(float(a)) * q for a, q in zip(A[i], xq)), Fraction(0)) <= Fraction(float(b[i]))
               for i in unsure)


def farkas_margin(model: CertModel, A: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Rigorous lower bound of ``min_{a in U} sum_i y_i (A_i c + A_i B a + A_i E w_i - b_i)`` at ``x``.

    ``> 0`` proves ``S(x)`` empty.  ``w_i`` is the noise-box corner maximising ``A_i E w`` for
    the float ``E``; every corner is a valid choice, so this choice affects tightness only.
    """
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    rows = np.flatnonzero(y)
    if rows.size == 0:
        return -np.inf
    As, bs, ys = A[rows], b[rows], y[rows]
    enc = model.at_points(x[None, :])
    c, B, E = enc["c"][0], enc["B"][0], enc["E"][0]  # [n], [n,m], [n,p]
    Ac = ia.fdot(As, c[None, :], axis=-1)  # [r]
    AB = ia.fdot(As[:, :, None], Iv(B.lo[None], B.hi[None]), axis=1)  # [r, m]
    AE = ia.fdot(As[:, :, None], Iv(E.lo[None], E.hi[None]), axis=1)  # [r, p]
    pos = AE.mid >= 0
    W = model.W_hi_iv, model.W_lo_iv
    w_lo = np.where(pos, W[0].lo[None, :], W[1].lo[None, :])
    w_hi = np.where(pos, W[0].hi[None, :], W[1].hi[None, :])
    AEw = ia.ivdot(AE, Iv(w_lo, w_hi), axis=-1)  # [r]
    term = ia.sub(ia.add(Ac, AEw), ia.point(bs))  # A_i c + A_i E w_i - b_i
    const = ia.fdot(ys, term, axis=-1)
    v = ia.fdot(ys[:, None], AB, axis=0)  # [m]
    vmag = ia._sum_bound(v.mag, 0, up=True)
    return float(np.nextafter(const.lo - vmag, -np.inf))


def prove_no_safe_action(model: CertModel, compiled, A: np.ndarray, b: np.ndarray,
                         x: np.ndarray) -> Counterexample | None:
    """Counterexample at ``x`` if ``x`` is rigorously in P and a Farkas proof of ``S(x) = {}`` succeeds."""
    x = np.asarray(x, dtype=np.float64)
    if not in_polytope(A, b, x):
        return None
    c, B, E = compiled.affine(x)
    w_lo, w_hi = compiled.noise_lo, compiled.noise_hi
    lp = safe_action_lp(A, b, c, B, E, w_lo, w_hi)
    if lp.status != 0 or not lp.slack < 0:
        return None
    margin = farkas_margin(model, A, b, x, lp.y)
    if not margin > 0:
        return None
    return Counterexample(x=x.copy(), reason="no_safe_action", margin=margin, lp_slack=lp.slack, y=lp.y)


def screen_states(compiled, A: np.ndarray, b: np.ndarray, X: np.ndarray, chunk: int = 128) -> np.ndarray:
    """Cheap upper bound of the per-state LP value for each row of ``X``.

    Each facet alone gives ``s*(x) <= (r_i + ||(A B)_i||_1) / ||A_i||`` (the best action for that
    facet only); the minimum over facets ranks candidates for the exact LP.
    """
    nrm = np.linalg.norm(A, axis=1)
    out = np.empty(len(X))
    for s in range(0, len(X), chunk):
        xs = X[s:s + chunk]
        c, B, E = compiled.affine(xs)
        M, r = safe_action_rows(A, b, c, B, E, compiled.noise_lo, compiled.noise_hi)  # [N, k, m], [N, k]
        out[s:s + len(xs)] = ((r + np.abs(M).sum(2)) / nrm[None]).min(axis=1)
    return out


def find_counterexample(model: CertModel, compiled, A: np.ndarray, b: np.ndarray, X: np.ndarray,
                        n_lp: int = 64, rng: np.random.Generator | None = None,
                        deadline: float | None = None, score: np.ndarray | None = None,
                        ) -> tuple[Counterexample | None, list[tuple[float, int]]]:
    """Screen candidate states ``X`` (in P), run the exact LP on the ``n_lp`` worst and a few random
    ones; return the first rigorously proven counterexample (or None) and the (LP value, index)
    pairs tried, most critical first."""

    tried: list[tuple[float, int]] = []
    if len(X) == 0:
        return None, tried
    rng = rng or np.random.default_rng(0)
    score = screen_states(compiled, A, b, X) if score is None else score
    order = list(np.argsort(score)[:n_lp])
    rest = np.setdiff1d(np.arange(len(X)), order)
    if rest.size:
        order += list(rng.choice(rest, size=min(rest.size, max(8, n_lp // 4)), replace=False))
    for idx in order:
        if deadline is not None and time.monotonic() > deadline:
            break
        x = X[idx]
        c, B, E = compiled.affine(x)
        lp = safe_action_lp(A, b, c, B, E, compiled.noise_lo, compiled.noise_hi)
        tried.append((lp.slack, int(idx)))
        if lp.status == 0 and lp.slack < 0:
            ce = prove_no_safe_action(model, compiled, A, b, x)
            if ce is not None:
                return ce, sorted(tried)
    return None, sorted(tried)


def pull_inside(A: np.ndarray, b: np.ndarray, X: np.ndarray, interior: np.ndarray, rel: float = 1e-9) -> np.ndarray:
    """Move states ``X`` ([N, n] or [n]) towards the interior point onto ``P`` shrunk by ``rel``:
    ``x' = z + t (x - z)`` with the largest ``t <= 1`` keeping ``A x' <= b`` (floats), times ``1 - rel``."""
    X = np.asarray(X, dtype=np.float64)
    one = X.ndim == 1
    X = np.atleast_2d(X)
    slack = b - A @ interior
    AD = (X - interior) @ A.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(AD > 0, slack[None, :] / AD, np.inf).min(axis=1)
    t = np.minimum(t, 1.0) * (1.0 - rel)
    out = interior + t[:, None] * (X - interior)
    return out[0] if one else out


def local_search(compiled, A: np.ndarray, b: np.ndarray, x: np.ndarray, interior: np.ndarray,
                 scale: np.ndarray, iters: int = 25, deadline: float | None = None) -> tuple[np.ndarray, float]:
    """Heuristic descent of the per-state LP value ``s*(x)`` over ``P`` (sequential LP).

    By the envelope theorem ``grad s*(x) ~ -sum_i y_i A_i df/dx(x, a*, w_c)`` (``y`` the LP dual,
    ``a*`` the LP action); each step minimises this linearisation over ``P`` intersected with a
    trust box of half-width ``delta`` (halved on failure).  Returns the best state and value.
    Not rigorous: its output is only a candidate for :func:`prove_no_safe_action`.
    """

    wc = 0.5 * (compiled.noise_lo + compiled.noise_hi)

    def value(z: np.ndarray) -> SafeActionLP:
        c, B, E = compiled.affine(z)
        return safe_action_lp(A, b, c, B, E, compiled.noise_lo, compiled.noise_hi)

    cur = value(x)
    delta = 0.05 * scale
    for _ in range(iters):
        if deadline is not None and time.monotonic() > deadline or cur.status != 0 or np.all(delta < 1e-9 * scale):
            break
        Jx = compiled.jacobians(x, cur.action, wc)[0]
        g = -(cur.y @ A) @ Jx
        res = linprog(g, A_ub=A, b_ub=b, bounds=list(zip(x - delta, x + delta)), method="highs")
        if res.status != 0:
            delta = delta * 0.5
            continue
        xn = pull_inside(A, b, res.x, interior)
        new = value(xn)
        if new.status == 0 and new.slack < cur.slack:
            x, cur = xn, new
        else:
            delta = delta * 0.5
    return x, cur.slack
