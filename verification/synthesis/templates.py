"""Template facet normals for invariant-set synthesis, derived from the model alone.

All normals live in normalised coordinates ``z`` (:mod:`.scaling`: X is ``[-1, 1]^n``), so
one family fits a pendulum and a mountain car alike.  A template always contains the box
normals (the result lies in X); the other families couple coordinates that the dynamics
trade off:

* **pair fans** (:func:`fan`): for every pair ``(i, j)`` that the linearisation couples
  (``M_ij`` or ``M_ji`` non-zero), ``K`` normals strictly inside each quadrant of the
  ``(z_i, z_j)`` plane (default 48 in a 2-D system, 8 in a 2-D part of a larger one, 3 in
  3-D, 2 above), e.g. ``theta + alpha omega <= beta``, the braking corners of an (angle, velocity) box;
* **closed-loop normals** (:func:`closed_loop_normals`): with an LQR gain at an operating
  point, ``M_cl = M + B K``; for a linear system the maximal admissible set of
  ``z+ = M_cl z`` is ``{d^T M_cl^t z <= beta}``, so ``(M_cl^T)^t d`` for the box normals and
  the feedback rows ``d`` couple a coordinate with those that drive it.  ``t`` runs over a
  geometric sequence up to the closed loop's own time constant ``3 / (1 - rho(M_cl))``
  (capped), not a fixed horizon.  Where the linearisation is not stabilisable (a unicycle
  at rest) other operating points are tried, and without any this family is left out;
* **rotation planes** (:func:`rotation_normals`): for every lightly damped complex
  eigenvalue pair of ``M`` (``|lambda| > 0.9``), normals evenly spread in the plane of its
  left eigenvectors, so that a slowly rotating mode gets enough directions.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.linalg as sla

from .scaling import ScaledSystem

FAN_PER_QUADRANT_2D = 48  # default fan normals per quadrant in a plane: a polygon hugs a curved kernel boundary

__all__ = ["box_normals", "fan", "closed_loop_normals", "unreachable_modes", "rotation_normals", "dedupe", "template",
           "coupled_pairs", "linearisation"]


def box_normals(n: int) -> np.ndarray:
    """``[I; -I]``: the 2n facets of a box."""
    return np.vstack([np.eye(n), -np.eye(n)])


def fan(n: int, i: int, j: int, K: int) -> np.ndarray:
    """K unit normals strictly inside each quadrant of the ``(z_i, z_j)`` plane.

    Angles ``(q + k / (K + 1)) * 90 deg``, ``q = 0..3``, ``k = 1..K``.
    """
    rows = []
    for q in range(4):
        for k in range(1, K + 1):
            t = (q + k / (K + 1)) * np.pi / 2
            r = np.zeros(n)
            r[i], r[j] = np.cos(t), np.sin(t)
            rows.append(r)
    return np.array(rows).reshape(-1, n)


def linearisation(sys: ScaledSystem, z0: np.ndarray, a0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(M, B) = (df/dz, df/da)`` at ``(z0, a0)`` and the centre of the noise box."""
    w_c = 0.5 * (sys.noise_lo + sys.noise_hi)
    Jx, Ja, _ = sys.jacobians(z0[None], a0[None], w_c[None])
    return Jx[0], Ja[0]


def coupled_pairs(M: np.ndarray, tol: float = 1e-9) -> list[tuple[int, int]]:
    """Pairs ``i < j`` with ``M_ij`` or ``M_ji`` non-zero (relative to the largest entry)."""
    off = np.abs(M - np.diag(np.diag(M)))
    big = off > tol * max(off.max(), 1e-300)
    n = M.shape[0]
    return [(i, j) for i, j in itertools.combinations(range(n), 2) if big[i, j] or big[j, i]]


def coupling_over_box(sys: ScaledSystem, M: np.ndarray, seed: int = 0, samples: int = 64) -> np.ndarray:
    """``max |df/dz|`` over the operating point's ``M`` and random states of ``[-1, 1]^n`` ([n, n]).

    Coordinates that the linearisation at rest does not couple may be coupled away from it (a
    rigid body's rates, through their products): their pair then still gets fan normals.
    """
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1.0, 1.0, size=(samples, sys.n))
    w = np.broadcast_to(0.5 * (sys.noise_lo + sys.noise_hi), (samples, sys.p))
    Jx, _, _ = sys.jacobians(z, np.zeros((samples, sys.m)), w)
    return np.maximum(np.abs(M), np.abs(Jx).max(axis=0))


def lqr_gain(M: np.ndarray, B: np.ndarray, r: float, max_rho: float = 1.0,
             q: np.ndarray | None = None) -> np.ndarray | None:
    """Discrete LQR gain ``K = -(r I + B^T P B)^{-1} B^T P M`` (state weight ``diag(q)``, default ``I``;
    action weight ``r I``).

    ``P`` solves the discrete algebraic Riccati equation.  None where it has no finite solution
    (not stabilisable) or the closed loop's spectral radius ``rho(M + B K)`` is not below ``max_rho``.
    """
    n, m = B.shape
    Q = np.eye(n) if q is None else np.diag(np.asarray(q, dtype=np.float64))
    try:
        P = sla.solve_discrete_are(M, B, Q, r * np.eye(m))
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not np.all(np.isfinite(P)):
        return None
    K = -np.linalg.solve(r * np.eye(m) + B.T @ P @ B, B.T @ P @ M)
    if not np.all(np.isfinite(K)) or np.max(np.abs(np.linalg.eigvals(M + B @ K))) >= max_rho:
        return None
    return K


def unreachable_modes(M: np.ndarray, B: np.ndarray, tol: float = 1e-9) -> list[tuple[complex, np.ndarray]]:
    """Modes of ``z+ = M z + B a`` that are not damped and that no action reaches (the PBH test).

    An eigenvalue ``lam`` of ``M`` with ``|lam| >= 1 - tol`` and a left eigenvector ``v``
    (``v^H M = lam v^H``) with ``|v^H B| <= tol |v| |B|``: the combination ``v^H z`` evolves as
    ``lam^t v^H z_0`` whatever the actions, so ``(M, B)`` is not stabilisable.  Returns
    ``[(lam, |v| normalised to max 1)]``.
    """
    lam, V = sla.eig(M, left=True, right=False)
    scale = max(float(np.linalg.norm(B)), 1e-300)
    out = []
    for k in range(len(lam)):
        v = V[:, k]
        if abs(lam[k]) >= 1.0 - tol and np.linalg.norm(v.conj() @ B) <= tol * np.linalg.norm(v) * scale:
            mag = np.abs(v)
            out.append((complex(lam[k]), mag / mag.max()))
    return out


def closed_loop_normals(sys: ScaledSystem, points: list[tuple[np.ndarray, np.ndarray]], r: float = 1.0,
                        max_power: int = 400, per_row: int = 12) -> np.ndarray:
    """Normals ``(M_cl^T)^t d`` (see module docstring) at the first stabilisable operating point.

    :param points: operating points ``(z0, a0)`` to try in order.
    :param per_row: powers per base row, geometric from 1 to the time constant.
    :returns: unit normals [N, n] (both signs), possibly empty.
    """
    n = sys.n
    for z0, a0 in points:
        M, B = linearisation(sys, z0, a0)
        K = lqr_gain(M, B, r)
        if K is None:
            continue
        Mcl = M + B @ K
        rho = float(np.max(np.abs(np.linalg.eigvals(Mcl))))
        horizon = int(min(max_power, max(2.0, 3.0 / max(1.0 - rho, 1e-9))))
        powers = np.unique(np.round(np.geomspace(1, horizon, per_row)).astype(int))
        base = np.vstack([np.eye(n), K])
        rows = []
        for t in powers:
            V = base @ np.linalg.matrix_power(Mcl, int(t))
            rows.append(V)
        V = np.vstack(rows)
        nv = np.linalg.norm(V, axis=1)
        V = V[nv > 1e-12] / nv[nv > 1e-12, None]
        return np.vstack([V, -V])
    return np.zeros((0, n))


def rotation_normals(M: np.ndarray, K: int = 16, min_modulus: float = 0.9) -> np.ndarray:
    """``K`` unit normals in the plane of each lightly damped complex eigenpair of ``M`` (left eigenvectors)."""
    n = M.shape[0]
    lam, V = np.linalg.eig(M.T)  # left eigenvectors of M
    rows = []
    for k in range(n):
        if lam[k].imag <= 1e-9 or abs(lam[k]) < min_modulus:
            continue
        u, v = V[:, k].real, V[:, k].imag
        Q, _ = np.linalg.qr(np.c_[u, v])
        for t in np.arange(K) * 2 * np.pi / K:
            rows.append(np.cos(t) * Q[:, 0] + np.sin(t) * Q[:, 1])
    if not rows:
        return np.zeros((0, n))
    R = np.array(rows)
    return R / np.linalg.norm(R, axis=1, keepdims=True)


def dedupe(A: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Unit rows, dropping any within ``tol`` of an earlier one (order kept)."""
    A = np.asarray(A, dtype=np.float64)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    keep: list[int] = []
    for i, r in enumerate(A):
        if not keep or np.min(np.linalg.norm(A[keep] - r, axis=1)) > tol:
            keep.append(i)
    return A[keep]


def template(sys: ScaledSystem, operating: tuple[np.ndarray, np.ndarray], facets: int | None = None,
             seed: int = 0, system_dim: int | None = None) -> tuple[np.ndarray, dict]:
    """The template of a (part of a) system and a record of what went into it.

    :param operating: operating point ``(z_e, a_e)`` in normalised coordinates.
    :param facets: size hint; scales the number of fan normals per quadrant.
    :param system_dim: states of the whole system (default: the part's).  A 2-D system gets
        ``FAN_PER_QUADRANT_2D`` fan normals per quadrant; a 2-D part of a larger system 8, since
        every facet of a factor is a facet of the product the certifier refines in n dimensions.
    :returns: (unit normals [k, n], provenance dict).
    """
    n = sys.n
    z_e, a_e = operating
    M, _ = linearisation(sys, z_e, a_e)
    pairs = coupled_pairs(coupling_over_box(sys, M, seed))
    if facets is None:
        dense = (system_dim if system_dim is not None else n) <= 2
        K = (FAN_PER_QUADRANT_2D if dense else 8) if n <= 2 else 3 if n == 3 else 2
    else:
        K = max(1, (facets - 2 * n) // max(1, 4 * len(pairs)))
    rng = np.random.default_rng(seed)
    points = [(z_e, a_e)] + [(rng.uniform(-0.5, 0.5, n), np.zeros(sys.m)) for _ in range(6)]
    cl = closed_loop_normals(sys, points)
    rot = rotation_normals(M)
    parts = [box_normals(n)] + [fan(n, i, j, K) for i, j in pairs] + [cl, rot]
    A = dedupe(np.vstack([p for p in parts if len(p)]))
    info = {"box": 2 * n, "fan_pairs": [list(p) for p in pairs], "fan_per_quadrant": K,
            "closed_loop": int(len(cl)), "rotation": int(len(rot)), "rows": int(len(A))}
    return A, info
