"""Robust one-step margins of a polytope at sampled states (floating point, for search).

For ``P = {x : A x <= b}`` with unit-norm rows and a state ``x``, the robust margin is

    s(x) = max_{a in U} min_i ( b_i - A_i c(x) - h_i(x) - A_i B(x) a ),
    h_i(x) = A_i E(x) w_c + |A_i E(x)| w_r          (worst noise, closed form),

the largest distance by which every noisy successor stays inside every facet when the
best action is taken.  ``s(x) >= 0`` iff the safe action set ``S(x)`` is non-empty.
The maximisation is one LP per state; all states of a batch are solved together as one
sparse, separable LP (HiGHS), which maximises each ``s`` independently.

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

__all__ = ["robust_margins", "normalize_rows"]  # normalize_rows: re-exported from reachsafe.sets.rows


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


def _margins_chunk(system, A, b, X, cap):
    c, B, E = system.affine(X)
    G, r = safe_action_rows(A, b, c, B, E, system.noise_lo, system.noise_hi)  # [N, k, m], [N, k]
    lp = margin_lp(G, r, None, (-1e6, cap))
    if lp.status != 0 or lp.s is None or lp.a is None:
        raise RuntimeError(f"robust_margins: LP failed ({lp.message})")
    return lp.s, lp.a
