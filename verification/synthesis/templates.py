"""Template facet normals for invariant-set synthesis, one family per system.

A template is a set of fixed facet normals; synthesis moves only the offsets.  The
constraint box's 2n normals are always included (so the result lies in X); the other
normals couple coordinates that the dynamics trade off:

* ``fan(i, j, K, lo, hi)``: K normals in the (x_i, x_j) plane per quadrant, evenly spread
  in angle in coordinates scaled by the box half-widths, e.g. for the pendulum
  ``theta + alpha omega <= beta``: the braking corners of the (angle, velocity) box.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_normals", "fan", "template_for"]


def box_normals(n: int) -> np.ndarray:
    """``[I; -I]``: the 2n facets of a box."""
    return np.vstack([np.eye(n), -np.eye(n)])


def fan(n: int, i: int, j: int, K: int, half_width: np.ndarray, quadrants=(0, 1, 2, 3)) -> np.ndarray:
    """K normals strictly inside each chosen quadrant of the (x_i, x_j) plane.

    In scaled coordinates ``y = x / half_width`` the normals are at angles
    ``(q + k/(K+1)) * 90 deg``, k = 1..K; mapped back they read ``cos(t)/hw_i x_i + sin(t)/hw_j x_j``.
    """
    rows = []
    for q in quadrants:
        for k in range(1, K + 1):
            t = (q + k / (K + 1)) * np.pi / 2
            r = np.zeros(n)
            r[i] = np.cos(t) / half_width[i]
            r[j] = np.sin(t) / half_width[j]
            rows.append(r / np.linalg.norm(r))
    return np.array(rows)


def template_for(system, facets: int | None = None) -> np.ndarray:
    """Fan template of the pendulum (box + angle/velocity fans); ``facets`` is a size hint.

    Other systems get their normals from :func:`verification.synthesis.plans.plan_for`.
    """
    n = system.n
    hw = 0.5 * (system.constraint_hi - system.constraint_lo)
    if system.name == "pendulum":
        K = max(1, ((facets or 36) - 2 * n) // 4)
        return np.vstack([box_normals(n), fan(n, 0, 1, K, hw)])
    raise ValueError(f"no fan template for system {system.name!r}; see verification.synthesis.plans.plan_for")


def closed_loop_normals(system, steps=(1, 2, 3, 5, 8, 12, 18, 27, 40), r_weight: float = 1.0) -> np.ndarray:
    """Normals of the maximal admissible set of the linearised closed loop.

    Linearise at the box centre ``x0`` with the action ``a0 = 0``: ``M = df/dx``,
    ``Bm = df/da``; an LQR gain ``K`` (state weight ``diag(1/hw^2)``, action weight
    ``r_weight I``) gives ``M_cl = M + Bm K``.  For a linear system the maximal admissible
    set of ``x+ = M_cl x`` under ``|x_i| <= hw_i`` and ``|K x| <= 1`` is
    ``{x : d^T M_cl^k x <= beta_d, k = 0, 1, ...}`` for those constraint normals ``d``,
    so ``(M_cl^T)^k d`` are the normals that couple a coordinate with the ones that drive
    it (position with velocity with attitude).  Returned normalised, both signs.
    """
    import scipy.linalg as sla

    n, m = system.n, system.m
    hw = 0.5 * (system.constraint_hi - system.constraint_lo)
    x0 = 0.5 * (system.constraint_hi + system.constraint_lo)
    Jx, Ja, _ = system.jacobians(x0[None], np.zeros((1, m)), np.zeros((1, system.p)))
    M, Bm = Jx[0], Ja[0]
    Q = np.diag(1.0 / hw**2)
    R = r_weight * np.eye(m)
    Pm = sla.solve_discrete_are(M, Bm, Q, R)
    K = -np.linalg.solve(R + Bm.T @ Pm @ Bm, Bm.T @ Pm @ M)
    Mcl = M + Bm @ K
    base = np.vstack([np.eye(n), K])
    rows = []
    for k in steps:
        Mk = np.linalg.matrix_power(Mcl.T, k)
        for d in base:
            v = Mk @ d
            nv = np.linalg.norm(v)
            if nv > 1e-12:
                rows += [v / nv, -v / nv]
    return np.array(rows)


def dedupe(A: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Drop normals within ``tol`` of an earlier one."""
    keep: list[np.ndarray] = []
    for r in A:
        if all(np.linalg.norm(r - q) > tol for q in keep):
            keep.append(r)
    return np.array(keep)
