"""Robust one-step margins of a polytope at sampled states (floating point, for search).

For ``P = {x : A x <= b}`` with unit-norm rows and a state ``x``, the robust margin is

    s(x) = max_{a in U} min_i ( b_i - A_i c(x) - h_i(x) - A_i B(x) a ),
    h_i(x) = A_i E(x) w_c + |A_i E(x)| w_r          (worst noise, closed form),

the largest distance by which every noisy successor stays inside every facet when the
best action is taken.  ``s(x) >= 0`` iff the safe action set ``S(x)`` is non-empty.
The maximisation is one LP per state; all states of a batch are solved together as one
sparse, separable LP (HiGHS), which maximises each ``s`` independently.  With one action
(m = 1) the LP is a maximisation of a concave piecewise-linear function of a scalar and is
solved exactly without a solver (:func:`one_action_margins`): several times faster on the
hundreds of template rows of a 2-D system.

This is a search tool (synthesis, kernel comparisons): it is not rigorous.  Proofs are the
certifier's job (:mod:`verification.certification.certifier`).

The LP itself is :func:`reachsafe.sets.rows.margin_lp`, the one float implementation, which
the certifier's counterexample search also uses
(:func:`verification.certification.per_state.safe_action_lp`, one state, rows scaled by
``||A_i||``, ``s`` free, with the duals); here the rows are unit-norm and ``s <= cap``.
"""

from __future__ import annotations

import numpy as np

from reachsafe.sets.rows import margin_lp, normalize_rows, safe_action_rows

# normalize_rows: re-exported from reachsafe.sets.rows
__all__ = ["robust_margins", "one_action_margins", "normalize_rows"]


def robust_margins(system, A: np.ndarray, b: np.ndarray, X: np.ndarray, cap: float = 1.0,
                   chunk: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Robust margins ``s(x)`` and maximising actions at states ``X`` ([N, n]).

    :param system: a :class:`~reachsafe.systems.CompiledSystem`.
    :param A: unit-norm facet normals [k, n].
    :param b: offsets [k].
    :param X: states [N, n].
    :param cap: upper bound on ``s`` (keeps the LP bounded; margins above it are reported as ``cap``).
    :returns: ``(s [N], a [N, m])``.
    """
    X = np.atleast_2d(X)
    s_all, a_all = [], []
    for start in range(0, len(X), chunk):
        s, a = _margins_chunk(system, A, b, X[start:start + chunk], cap)
        s_all.append(s)
        a_all.append(a)
    return np.concatenate(s_all), np.concatenate(a_all)


_FLOOR = -1e6  # lower bound of s: the LP's bound and the closed form's clip


def one_action_margins(G: np.ndarray, r: np.ndarray, cap: float, bisections: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """The robust-margin LP for one action, exactly: ``s = max_{a in [-1, 1]} min(cap, min_i (r_i - g_i a))``.

    ``phi(a) = min(C, U(a), L(a))`` with ``C = min(cap, min_{g_i = 0} r_i)`` (a constant),
    ``U(a) = min_{g_i > 0} (r_i - g_i a)`` (decreasing) and ``L(a) = min_{g_i < 0} (r_i - g_i a)``
    (increasing), so ``phi`` is concave and ``min(U, L)`` is largest where ``U - L`` changes
    sign: at ``a = -1`` if ``U(-1) <= L(-1)``, at ``a = 1`` if ``U(1) >= L(1)``, else at the
    crossing, which bisection brackets and the crossing of the two lines active there fixes.
    Vectorised over the N states; ``s`` is clipped to ``[_FLOOR, cap]``, the LP's bounds.

    :param G: ``[N, k, 1]`` rows (unit-norm facets, normalised action).
    :param r: ``[N, k]`` right-hand sides.
    :returns: ``(s [N], a [N, 1])``: the margin and a maximising action.
    """
    g = G[..., 0]
    pos, neg = g > 0, g < 0
    r_pos = np.where(pos, r, np.inf)
    r_neg = np.where(neg, r, np.inf)
    C = np.minimum(cap, np.where(pos | neg, np.inf, r).min(axis=1))

    def U(a: np.ndarray) -> np.ndarray:
        return (r_pos - g * a[:, None]).min(axis=1)

    def L(a: np.ndarray) -> np.ndarray:
        return (r_neg - g * a[:, None]).min(axis=1)

    def phi(a: np.ndarray) -> np.ndarray:
        return np.minimum(C, np.minimum(U(a), L(a)))

    N = len(r)
    lo, hi = -np.ones(N), np.ones(N)
    at_lo = U(lo) <= L(lo)
    at_hi = ~at_lo & (U(hi) >= L(hi))
    inner = ~(at_lo | at_hi)
    for _ in range(bisections if inner.any() else 0):
        mid = 0.5 * (lo + hi)
        up = U(mid) > L(mid)  # the crossing lies to the right of mid
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    mid = 0.5 * (lo + hi)
    i = np.argmin(r_pos - g * mid[:, None], axis=1)  # lines active at the bracket
    j = np.argmin(r_neg - g * mid[:, None], axis=1)
    rows = np.arange(N)
    gi, gj = g[rows, i], g[rows, j]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.clip((r[rows, i] - r[rows, j]) / np.where(inner, gi - gj, 1.0), -1.0, 1.0)
    cross = np.where(np.isfinite(cross), cross, mid)
    a = np.where(at_lo, -1.0, np.where(at_hi, 1.0, np.where(phi(cross) >= phi(mid), cross, mid)))
    return np.clip(phi(a), _FLOOR, cap), a[:, None]


def _margins_chunk(system, A, b, X, cap):
    c, B, E = system.affine(X)
    G, r = safe_action_rows(A, b, c, B, E, system.noise_lo, system.noise_hi)  # [N, k, m], [N, k]
    if G.shape[-1] == 1:
        return one_action_margins(G, r, cap)
    lp = margin_lp(G, r, None, (_FLOOR, cap))
    if lp.status != 0 or lp.s is None or lp.a is None:
        raise RuntimeError(f"robust_margins: LP failed ({lp.message})")
    return lp.s, lp.a
