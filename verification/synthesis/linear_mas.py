"""Candidate from a linear feedback: the robust maximal admissible set of the closed loop.

In normalised coordinates (:mod:`.scaling`) take an equilibrium ``f(z_e, a_e, w_c) = z_e``
inside X and the linearisation ``M = df/dz``, ``B = df/da`` there.  An LQR gain ``K``
(state weight ``I``, action weight ``r I``) gives the closed loop ``a(z) = a_e + K (z - z_e)``
and, with ``x = z - z_e``,

    x+ = M_cl x + d(x, w),   M_cl = M + B K,
    d(x, w) = f(z_e + x, a(z), w) - z_e - M_cl x        (noise and linearisation error).

``d`` is bounded over a region ``R`` by a box ``D`` (sampled, then widened: this is a search
heuristic, the certifier proves the result).  The robust maximal admissible set of the
linear map with additive ``d in D`` under the constraints ``H x <= h`` (``z`` in X, ``|a| <= 1``,
``z`` in ``R``) is (Gilbert and Tan's construction)

    O = { x : H M_cl^t x <= h - sum_{s<t} h_D(M_cl^{s T} H^T),  t = 0 .. t* },

where ``h_D(v) = v . d_c + |v| . d_r`` is the support function of ``D`` and ``t*`` the first
step whose rows are all redundant (each checked by an LP).  ``O`` is invariant for the
nonlinear model with the feedback ``a(z)`` as long as ``d`` stays in ``D`` on ``O``, which holds
by construction when ``O ⊆ R``.  Two rounds: ``R = X``, then ``R`` = the bounding box of the
first set (tighter error bound, larger set).  The action weight ``r`` is chosen by volume.

The LQR weights shape ``O`` as much as the gain's strength does: ``O`` ends where some facet's
row (a coordinate bound or the feedback ``|a_e + K x| <= 1``) is reached by the closed loop, and
``diag(Q)`` decides which coordinates the gain spends its authority on.  A **gain search**
(``search_trials > 0``) therefore perturbs ``(log diag(Q), log r)`` of the best candidate by a seeded
random local search and keeps every perturbation whose set is larger (the planar quadrotor's
roll chain: 56 % of its X with ``Q = I``, about 80 % after 24 trials).

Used for every system whose linearisation is stabilisable at some equilibrium in X; it is
what makes slowly moving 4-D systems (cart-pole, TORA) tractable, where shrinking a template
from X loses the set.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sps
from scipy.optimize import least_squares, linprog

from reachsafe.sets import HPolytope

from .scaling import ScaledSystem
from .templates import lqr_gain

__all__ = ["FeedbackCandidate", "feedback_candidates", "find_equilibrium", "robust_mas"]

ACTION_WEIGHTS = (1.0, 10.0, 100.0)
SEARCH_TRIALS = 24  # gain search (feedback_candidates): perturbations tried ...
SEARCH_SIGMA = 0.4  # ... with this spread of log diag(Q) and log r ...
TRIAL_STEPS = 4  # ... each abandoned beyond this many times the best set's closed-loop powers
PROGRESS_S = 10.0  # seconds between two progress reports of a long construction
REGION_SCALES = (1.0, 0.6, 0.35)  # the error box is bounded over X scaled about z_e by these


@dataclass
class FeedbackCandidate:
    """A polytope ``{z : A z <= b}`` (normalised coordinates, unit rows) and its feedback."""

    A: np.ndarray
    b: np.ndarray
    K: np.ndarray  # [m, n]: a = a_e + K (z - z_e)
    z_e: np.ndarray
    a_e: np.ndarray
    action_weight: float
    volume_fraction: float  # of [-1, 1]^n, Monte-Carlo
    steps: int  # t*: powers of the closed loop used
    disturbance: np.ndarray  # [n, 2]: the box D (lo, hi)
    state_weight: np.ndarray  # [n]: diag(Q) of the LQR design (ones unless the gain search changed it)


def find_equilibrium(sys: ScaledSystem) -> tuple[np.ndarray, np.ndarray] | None:
    """``(z_e, a_e)`` with ``f(z_e, a_e, w_c) = z_e``, ``z_e`` well inside X and ``|a_e| < 0.9``.

    Least squares from the box centre with zero action; ``None`` when no such point is found.
    """
    n, m = sys.n, sys.m
    w_c = 0.5 * (sys.noise_lo + sys.noise_hi)

    def resid(v: np.ndarray) -> np.ndarray:
        z, a = v[:n], v[n:]
        return sys.step_unwrapped(z[None], a[None], w_c[None])[0] - z

    lo = np.r_[-0.9 * np.ones(n), -0.9 * np.ones(m)]
    try:
        sol = least_squares(resid, np.zeros(n + m), bounds=(lo, -lo), xtol=1e-14, ftol=1e-14, gtol=1e-14)
    except ValueError:  # the residual is not finite on the way (a singularity of the model): no equilibrium
        return None
    if not sol.success or np.max(np.abs(resid(sol.x))) > 1e-9:
        return None
    return sol.x[:n], sol.x[n:]


def _remainder_box(sys: ScaledSystem, K: np.ndarray, z_e: np.ndarray, a_e: np.ndarray, Mcl: np.ndarray,
                   E0: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator,
                   samples: int = 6000) -> np.ndarray:
    """Sampled box ``D ⊇ {d(x, w) - E_0 w}`` (the linearisation error, noise through ``E(z) - E_0``
    included) over ``z`` in ``[lo, hi]`` with ``|a(z)| <= 1`` and ``w`` at the vertices of W, widened by a quarter."""
    n = sys.n
    corners = np.array(list(itertools.product(*zip(lo, hi)))) if n <= 10 else np.empty((0, n))
    Z = np.vstack([rng.uniform(lo, hi, size=(samples, n)), corners, 0.5 * (lo + hi)[None]])
    a = a_e + (Z - z_e) @ K.T
    # the set lies where the feedback is admissible (|a| <= 1): bound d only there
    keep = np.all(np.abs(a) <= 1.0, axis=1)
    Z, a = Z[keep], a[keep]
    W = np.array(list(itertools.product(*zip(sys.noise_lo, sys.noise_hi)))) if sys.p else np.zeros((1, 0))
    d_lo = np.zeros(n)
    d_hi = np.zeros(n)
    for w in W:
        nxt = sys.step_unwrapped(Z, a, np.broadcast_to(w, (len(Z), sys.p)))
        d = nxt - z_e - (Z - z_e) @ Mcl.T - E0 @ w
        d_lo, d_hi = np.minimum(d_lo, d.min(axis=0)), np.maximum(d_hi, d.max(axis=0))
    c, r = 0.5 * (d_lo + d_hi), 0.5 * (d_hi - d_lo)
    r = 1.25 * r
    return np.stack([c - r, c + r], axis=1)


def robust_mas(Mcl: np.ndarray, H: np.ndarray, h: np.ndarray, E: np.ndarray, W: np.ndarray, D: np.ndarray,
               max_steps: int, deadline: float | None = None,
               progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Robust maximal admissible set of ``x+ = Mcl x + E w + d``, ``w in W``, ``d in D``, under ``H x <= h``.

    ``W`` [p, 2] and ``D`` [n, 2] are boxes (lo, hi); the disturbance's support function in a
    direction ``v`` is ``h(v) = v E w_c + |v E| w_r + v d_c + |v| d_r``.
    Returns ``(A, b, t*)`` (rows not yet normalised; redundant rows dropped as found) or
    ``None`` when the set is empty or the construction did not terminate within ``max_steps``
    (or by ``deadline``).  ``progress(t, rows)`` is called at most every :data:`PROGRESS_S` seconds.
    """
    last_report = time.monotonic()
    d_c, d_r = 0.5 * (D[:, 0] + D[:, 1]), 0.5 * (D[:, 1] - D[:, 0])
    w_c, w_r = 0.5 * (W[:, 0] + W[:, 1]), 0.5 * (W[:, 1] - W[:, 0])
    rows, rhs = [H.copy()], [h.copy()]
    Ht, acc = H.copy(), np.zeros(len(h))
    box_lo, box_hi = _bounding_box(H, h)
    for t in range(1, max_steps + 1):
        HE = Ht @ E
        acc = acc + HE @ w_c + np.abs(HE) @ w_r + Ht @ d_c + np.abs(Ht) @ d_r
        Ht = Ht @ Mcl
        g = h - acc
        if np.any(g < -1e-12):
            return None
        A_cur, b_cur = np.vstack(rows), np.concatenate(rhs)
        # cheap test first: the support over the box {H x <= h} rows that are coordinate bounds
        cand = np.flatnonzero(_box_support(Ht, box_lo, box_hi) > g + 1e-10 * (1 + np.abs(g)))
        keep = []
        if cand.size:
            sup = _supports(Ht[cand], A_cur, b_cur)
            if sup is None:
                return None
            keep = cand[sup > g[cand] + 1e-10 * (1 + np.abs(g[cand]))].tolist()
        if not keep:
            return np.vstack(rows), np.concatenate(rhs), t
        rows.append(Ht[keep])
        rhs.append(g[keep])
        now = time.monotonic()
        if deadline is not None and now > deadline:
            return None
        if progress is not None and now - last_report >= PROGRESS_S:
            progress(t, sum(len(r) for r in rows))
            last_report = now
    return None


def _bounding_box(H: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box of ``{H x <= h}`` (2n LPs); infinite sides where unbounded."""
    n = H.shape[1]
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    for j in range(n):
        for sign in (1.0, -1.0):
            c = np.zeros(n)
            c[j] = -sign
            res = linprog(c, A_ub=H, b_ub=h, bounds=[(None, None)] * n, method="highs")
            if res.status == 0:
                if sign > 0:
                    hi[j] = -res.fun
                else:
                    lo[j] = res.fun
    return lo, hi


def _box_support(V: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``max_{lo <= x <= hi} v_r x`` per row (inf where the box is unbounded in a used direction)."""
    with np.errstate(invalid="ignore"):
        t = np.maximum(np.where(V != 0, V * lo[None, :], 0.0), np.where(V != 0, V * hi[None, :], 0.0))
    return t.sum(axis=1)


def _supports(V: np.ndarray, A: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``max_{A x <= b} v_r x`` for every row of ``V`` [r, n], by one block LP (None if it fails)."""
    r, n = V.shape
    A_ub = sps.block_diag([sps.csr_matrix(A)] * r, format="csr")
    res = linprog(-V.ravel(), A_ub=A_ub, b_ub=np.tile(b, r), bounds=[(None, None)] * (r * n), method="highs")
    if res.status != 0:
        return None
    return (V * res.x.reshape(r, n)).sum(axis=1)


def _volume_fraction(A: np.ndarray, b: np.ndarray, n: int, rng: np.random.Generator, samples: int = 100_000) -> float:
    Z = rng.uniform(-1.0, 1.0, size=(samples, n))
    return float(np.mean(np.all(Z @ A.T <= b, axis=1)))


def _candidate(sys: ScaledSystem, K: np.ndarray, z_e: np.ndarray, a_e: np.ndarray, M: np.ndarray, B: np.ndarray,
               E0: np.ndarray, margin: float, seed: int, max_steps: int, deadline: float | None,
               report: Callable[[str, int, int], None] | None) -> tuple[np.ndarray, np.ndarray, int, np.ndarray] | None:
    """The robust MAS of one gain ``K`` (normalised coordinates, unit rows): ``(A, b, t*, D)`` or None."""
    n = sys.n
    Mcl = M + B @ K
    W = np.stack([sys.noise_lo, sys.noise_hi], axis=1)
    rng = np.random.default_rng(seed)
    best = None
    for scale in REGION_SCALES:  # largest region first; smaller regions have smaller error bounds
        lo, hi = z_e - scale * (z_e + 1.0), z_e + scale * (1.0 - z_e)
        for _round in range(2):
            D = _remainder_box(sys, K, z_e, a_e, Mcl, E0, lo, hi, rng)
            D = D + margin * np.array([-1.0, 1.0])[None, :]
            # constraints on x = z - z_e: z in [lo, hi] (⊆ X), |a_e + K x| <= 1
            H = np.vstack([np.eye(n), -np.eye(n), K, -K])
            h = np.r_[hi - z_e, z_e - lo, 1 - a_e, 1 + a_e]
            cb = None if report is None else (lambda t, nrows, sc=scale: report(f"region {sc:g}", t, nrows))
            out_mas = robust_mas(Mcl, H, h, E0, W, D, max_steps, deadline, cb)
            if out_mas is None:
                break
            Ax, bx, steps = out_mas
            b = bx + Ax @ z_e  # back to z: A (z - z_e) <= b  ->  A z <= b + A z_e
            nrm = np.linalg.norm(Ax, axis=1)
            ok = nrm > 1e-12
            A, b = Ax[ok] / nrm[ok, None], b[ok] / nrm[ok]
            best = (A, b, steps, D)
            # round 2: the error bound over the bounding box of this set (smaller, so the set grows)
            bb = HPolytope(A, b).bounding_box()
            lo, hi = np.maximum(bb.lo, lo), np.minimum(bb.hi, hi)
        if best is not None:
            break
    return best


def feedback_candidates(sys: ScaledSystem, margin: float, weights: tuple[float, ...] = ACTION_WEIGHTS,
                        seed: int = 0, max_steps: int = 4000,
                        deadline: float | None = None,
                        progress: Callable[[str], None] | None = None,
                        search_trials: int = 0) -> list[FeedbackCandidate]:
    """One candidate per action weight that yields a non-empty set, then the gain search's best.

    Once a weight has given a set, each later weight may take at most :data:`TRIAL_STEPS` times the
    largest closed-loop powers so far (a step count, like the trials'), so one slowly contracting
    design cannot use up the ``deadline`` before the others and the search have run.

    :param margin: added to the error box ``D`` in every coordinate (normalised units): every
        facet keeps at least this much room, which the certifier's rounding and cell
        enclosures consume.
    :param search_trials: trials of the gain search of the module docstring (0: none); each
        perturbs ``log diag(Q)`` and ``log r`` by ``N(0, SEARCH_SIGMA^2)``.  A trial whose
        construction needs more than :data:`TRIAL_STEPS` times the best set's closed-loop
        powers is abandoned (a step count, not a time), so the result does not depend on the
        machine's speed, unless ``deadline`` stops the search first.
    """
    eq = find_equilibrium(sys)
    if eq is None:
        return []
    z_e, a_e = eq
    n = sys.n
    w_c = 0.5 * (sys.noise_lo + sys.noise_hi)
    Jx, Ja, Jw = sys.jacobians(z_e[None], a_e[None], w_c[None])
    M, B, E0 = Jx[0], Ja[0], Jw[0]
    out: list[FeedbackCandidate] = []

    def build(r: float, q: np.ndarray, steps: int, label: str) -> FeedbackCandidate | None:
        K = lqr_gain(M, B, r, max_rho=1 - 1e-9, q=q)
        if K is None:
            return None
        report = None if progress is None else (
            lambda where, t, nrows: progress(f"{label}, {where}: step {t}, {nrows} rows"))
        best = _candidate(sys, K, z_e, a_e, M, B, E0, margin, seed, steps, deadline, report)
        if best is None:
            return None
        A, b, steps, D = best
        vol = _volume_fraction(A, b, n, np.random.default_rng(seed))
        return FeedbackCandidate(A, b, K, z_e, a_e, r, vol, steps, D, q)

    def capped(found: int) -> int:
        """Powers a later design may take: TRIAL_STEPS x those of the set found (at least 10), at most max_steps."""
        return min(max_steps, TRIAL_STEPS * max(found, 10))

    for r in weights:
        if deadline is not None and time.monotonic() > deadline:
            break
        # the first weight that gives a set bounds the powers the others may take (as for the trials below): a
        # slowly contracting closed loop (a lightly damped mode, a weak actuator) took the route's whole time share
        steps = max_steps if not out else capped(max(c.steps for c in out))
        c = build(r, np.ones(n), steps, f"action weight {r:g}")  # Q = I
        if c is not None:
            out.append(c)
    if not out or search_trials <= 0:
        return out
    best = max(out, key=lambda c: c.volume_fraction)
    rng = np.random.default_rng(seed)
    log_w = np.r_[np.log(best.state_weight), np.log(best.action_weight)]
    for trial in range(search_trials):
        if deadline is not None and time.monotonic() > deadline:
            break
        cand = log_w + rng.normal(0.0, SEARCH_SIGMA, n + 1)
        c = build(float(np.exp(cand[n])), np.exp(cand[:n]), capped(best.steps), f"gain search {trial + 1}")
        if c is not None and c.volume_fraction > best.volume_fraction:
            best, log_w = c, cand
    if not any(c is best for c in out):
        out.append(best)
    return out
