"""Facet rows in floating point: unit-norm normalisation and the rows of the safe action set.

For a polytope ``P = {x : A x <= b}`` and a system ``x+ = c(x) + B(x) a + E(x) w`` with noise in
the box ``W = [w_lo, w_hi]``, the actions that keep every successor in ``P`` are

    S(x) = {a : G(x) a <= r(x)},   G = A B(x),   r = b - A c(x) - h_W(x),
    h_W(x)_i = max_{w in W} A_i E(x) w = A_i E w_c + |A_i E| w_r

(``w_c``, ``w_r`` centre and radius of ``W``).  These are plain float64 numpy evaluations, the
one implementation of them for the offline tools (synthesis margins, the certifier's
counterexample search, the audit benchmark); none of them is a proof.  The online safeguards
compute the same rows in torch (:mod:`reachsafe.safeguards.base`), and the certifier's proofs
use its own outward-rounded arithmetic.

:func:`margin_lp` is the robust-margin LP over these rows (``max s`` with ``G a + s <= r``), the
one float implementation for the synthesis search and the certifier's counterexample search.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sps
from scipy.optimize import linprog

__all__ = ["normalize_rows", "noise_support", "safe_action_rows", "margin_lp", "MarginLP"]


def normalize_rows(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale each inequality ``A_i x <= b_i`` to a unit-norm normal: ``(A_i / ||A_i||, b_i / ||A_i||)``.

    :param A: normals [k, n], no zero row (callers that accept user input check that first).
    :param b: offsets [k].
    :returns: ``(A / ||A_i||, b / ||A_i||)``.
    """
    nrm = np.linalg.norm(A, axis=1)
    return A / nrm[:, None], b / nrm


def noise_support(AE: np.ndarray, w_lo: np.ndarray, w_hi: np.ndarray) -> np.ndarray:
    """Support function ``h_i = max_{w in [w_lo, w_hi]} (A E)_i w = (A E)_i w_c + |A E|_i w_r``.

    :param AE: ``A E(x)`` [..., k, p].
    :returns: ``h`` [..., k].
    """
    w_c = 0.5 * (w_lo + w_hi)
    w_r = 0.5 * (w_hi - w_lo)
    return AE @ w_c + np.abs(AE) @ w_r


def safe_action_rows(A: np.ndarray, b: np.ndarray, c: np.ndarray, B: np.ndarray, E: np.ndarray,
                     w_lo: np.ndarray, w_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``G a <= r`` of ``S(x)`` at a batch of states (module docstring), without the action box.

    :param A: facet normals [k, n].
    :param b: offsets [k].
    :param c: drift ``c(x)`` [N, n].
    :param B: action input ``B(x)`` [N, n, m].
    :param E: noise input ``E(x)`` [N, n, p].
    :param w_lo: lower corner of the noise box [p].
    :param w_hi: upper corner of the noise box [p].
    :returns: ``(G [N, k, m], r [N, k])``.
    """
    AE = np.einsum("kn,Nnp->Nkp", A, E)
    G = np.einsum("kn,Nnm->Nkm", A, B)
    r = b[None, :] - c @ A.T - noise_support(AE, w_lo, w_hi)
    return G, r


class MarginLP(NamedTuple):
    """Solution of :func:`margin_lp`: ``status`` 0 if solved (else ``s``, ``a``, ``y`` are None)."""

    status: int
    message: str
    s: np.ndarray | None  # [N]
    a: np.ndarray | None  # [N, m]
    y: np.ndarray | None  # [N, k], duals of the rows (>= 0)


def margin_lp(G: np.ndarray, r: np.ndarray, scale: np.ndarray | None = None,
              s_bounds: tuple[float | None, float | None] = (None, None)) -> MarginLP:
    """The robust-margin LP ``max s`` s.t. ``G a + s scale <= r``, ``a in [-1, 1]^m``, at each of ``N`` states.

    The states are independent, so they are solved together as one sparse, separable LP (HiGHS)
    whose variables are ``(a_j, s_j)`` per state.  The synthesis search uses unit-norm rows and a
    cap on ``s``; the certifier's counterexample search one state, ``scale = ||A_i||`` and the duals.

    :param G: rows ``A B(x)`` from :func:`safe_action_rows` [N, k, m].
    :param r: right-hand sides [N, k].
    :param scale: coefficient of ``s`` in row ``i`` [k] (None: 1, for unit-norm rows).
    :param s_bounds: bounds of each ``s`` (None: unbounded on that side).
    :returns: :class:`MarginLP`.
    """
    N, k, m = G.shape
    nv = m + 1  # per state: a (m), s
    # constraint rows: state j, facet i:  G[j,i,:] a_j + scale_i s_j <= r[j,i]
    rows = np.repeat(np.arange(N * k), nv)
    var_base = np.repeat(np.arange(N) * nv, k)  # [N*k]
    cols = (var_base[:, None] + np.arange(nv)[None, :]).ravel()
    sc = np.ones((N * k, 1)) if scale is None else np.tile(np.asarray(scale, dtype=np.float64), N)[:, None]
    vals = np.concatenate([G.reshape(N * k, m), sc], axis=1).ravel()
    M = sps.csr_matrix((vals, (rows, cols)), shape=(N * k, N * nv))
    cost = np.zeros(N * nv)
    cost[m::nv] = -1.0
    lo, hi = (-np.inf if s_bounds[0] is None else s_bounds[0]), (np.inf if s_bounds[1] is None else s_bounds[1])
    bounds = np.tile(np.array([[-1.0, 1.0]] * m + [[lo, hi]]), (N, 1))
    res = linprog(cost, A_ub=M, b_ub=r.ravel(), bounds=bounds, method="highs")
    if res.status != 0:
        return MarginLP(int(res.status), str(res.message), None, None, None)
    z = res.x.reshape(N, nv)
    y = np.maximum(-np.asarray(res.ineqlin.marginals), 0.0).reshape(N, k)
    return MarginLP(0, str(res.message), z[:, m], z[:, :m], y)
