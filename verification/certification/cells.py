"""Search for cell witnesses: an affine feedback and LP multipliers for one cell.

The proof obligation of a cell ``C = [lo, hi] ∩ P`` is :func:`.recheck.check_cell` (the
trusted check).  With the cell's rigorous terms (:func:`.recheck.cell_terms`: ``AJ``, ``ABm``,
``base``) and a feedback ``a = K x + k`` it requires, for every facet ``i``,

    max_{x in C} q_i x + base_i + A_i Bm k <= b_i,       q_i = A_i J + A_i Bm K,         (1)

and ``sigma (K_j x + k_j) <= 1`` on ``C``.  Each maximum is bounded by LP duality with
multipliers ``lambda_i >= 0`` on the rows ``D = [A_R; I; -I]`` that describe ``C`` (``A_R`` the
rows of ``P`` that cut the box):

    lambda_i^T D = q_i,   lambda_i^T g + base_i + A_i Bm k <= b_i,     g = (b_R, hi, -lo),

which is linear in ``(K, k, lambda)``: one LP maximises the common normalised slack ``s``
(``s ||A_i||`` added to every facet row).  The LP uses the check's second-order form of
``B(x) a(x)`` (``q_i = A_i J + A_i B(x0) K + G_i``, ``G_id = (A_i dB/dx_d)(K x0 + k)``, linear in
``(K, k)``) without its second-order remainders, which the check adds.

**Size.**  A facet that holds over the whole box for every action of twice the admissible
size (``sup_box A_i J x + base_i + 3 sum_j |A_i Bm|_j <= b_i``) gets multipliers on the box
rows only (2n variables instead of ``|R| + 2n``): it cannot be near its bound, so the
rows of ``P`` add nothing but size.  Sets with hundreds of facets (linear-feedback
candidates in 4-D) keep the LP small this way.  If the reduced LP finds no positive slack,
the full one is tried before the cell is split (where most facets are near, only the
full one is solved).

Nothing here is trusted: the witness is accepted only if :func:`.recheck.check_cell` passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sps
from scipy.optimize import linprog

from .intervals import CertModel
from .recheck import CellCheck, CellWitness, check_cell

__all__ = ["WitnessSearch", "find_witness", "relevant_rows", "cell_center", "feedback_lp"]

S_CAP = 1.0  # cap of the normalised slack (keeps the LP bounded)


@dataclass
class WitnessSearch:
    """Outcome of :func:`find_witness` for one cell."""

    witness: CellWitness | None  # accepted witness, or None
    check: CellCheck | None  # the rigorous check of the last candidate (None: no candidate)
    lp_slack: float  # slack of the last LP (normalised; < 0: no affine feedback for the linearised cell)
    failing: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # facets failing the check
    lps: int = 0
    feedback: CellWitness | None = None  # the last candidate (a hint for the cell's children)
    binding: np.ndarray | None = None  # LP duals of the facet rows [k] (which facets limit the slack)


def relevant_rows(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Rows of ``P`` that may cut the box (``max_box A_r x > b_r`` up to a relative 1e-12)."""
    mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
    return np.flatnonzero(A @ mid + np.abs(A) @ rad > b - 1e-12 * (1.0 + np.abs(b)))


def cell_center(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """Chebyshev centre of ``box ∩ {A x <= b}`` (None if empty)."""
    n = lo.size
    A2 = np.vstack([A, np.eye(n), -np.eye(n)])
    b2 = np.r_[b, hi, -lo]
    nrm = np.linalg.norm(A2, axis=1)
    res = linprog(np.r_[np.zeros(n), -1.0], A_ub=np.hstack([A2, nrm[:, None]]), b_ub=b2,
                  bounds=[(None, None)] * n + [(0, None)], method="highs")
    if res.status != 0 or res.x[-1] < 0:
        return None
    return res.x[:n]


def _block_diag(full: np.ndarray, D_full: np.ndarray, D_box: np.ndarray, starts: np.ndarray) -> sps.csr_matrix:
    """``block_diag(D_full if full[t] else D_box for t)`` built from index arrays in one go.

    ``D_box`` is the trailing columns of ``D_full``; block ``t`` occupies rows
    ``t r .. (t+1) r - 1`` (``r`` rows per block) and columns ``starts[t] ..``.
    """
    r = D_full.shape[0]
    out = []
    for D, sel in ((D_full, np.flatnonzero(full)), (D_box, np.flatnonzero(~full))):
        if sel.size == 0:
            continue
        ii, jj = np.nonzero(D)
        out.append(((sel[:, None] * r + ii[None, :]).ravel(), (starts[sel][:, None] + jj[None, :]).ravel(),
                    np.broadcast_to(D[ii, jj], (sel.size, ii.size)).ravel()))
    rows, cols, vals = (np.concatenate(z) for z in zip(*out))
    width = int(starts[-1] + (D_full.shape[1] if full[-1] else D_box.shape[1]))
    return sps.csr_matrix((vals, (rows, cols)), shape=(full.size * r, width))


def feedback_lp(A: np.ndarray, b: np.ndarray, nrm: np.ndarray, lo: np.ndarray, hi: np.ndarray, m: int,
                terms: dict, near: np.ndarray | None) -> tuple[CellWitness, float, np.ndarray] | None:
    """The LP of the module docstring. ``near``: facets given multipliers on the rows of P (None: all).

    Returns (witness, slack, duals of the facet rows [k]) or None.
    """
    k_rows, n = A.shape
    R = relevant_rows(A, b, lo, hi)
    AR, bR = A[R], b[R]
    AJ = terms["AJ"].mid
    is_near = np.ones(k_rows, dtype=bool) if near is None else np.isin(np.arange(k_rows), near)
    # blocks: facets 0..k-1, then the 2m action bounds (always with the rows of P)
    blk_near = np.r_[is_near, np.ones(2 * m, dtype=bool)]
    nb = k_rows + 2 * m
    Dfull = np.hstack([AR.T, np.eye(n), -np.eye(n)])  # n x (|R| + 2n)
    gfull = np.r_[bR, hi, -lo]
    Dbox, gbox = Dfull[:, R.size:], gfull[R.size:]
    sizes = np.where(blk_near, R.size + 2 * n, 2 * n)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    nK = m * n
    off = nK + m + 1
    nvar = off + int(sizes.sum())
    # equalities: lambda_blk^T D_blk - (coefficient of K) = rhs, n rows per block
    E1 = _block_diag(blk_near, Dfull, Dbox, starts)
    # facet rows (i, d) of q_i = A_i J + A_i B0m K + G_i with G_id = sum_j (A_i dB/dx_d)_j (K_j x0 + k_j)
    x0 = terms["x0"]
    AB0m, ADBm = terms["AB0m"].mid, terms["ADB"].mid  # [k, m], [k, m, n]
    cK = (
        -(AB0m[:, None, :, None] * np.eye(n)[None, :, None, :])
        - ADBm.transpose(0, 2, 1)[:, :, :, None] * x0[None, None, None, :]
    )
    ck = -ADBm.transpose(0, 2, 1)  # [k, n, m]
    EKf = np.concatenate([cK.reshape(k_rows * n, nK), ck.reshape(k_rows * n, m), np.zeros((k_rows * n, 1))], axis=1)
    rowsK, colsK, valsK = [], [], []
    for t in range(2 * m):
        sig = 1.0 if t % 2 == 0 else -1.0
        rowsK.append(t * n + np.arange(n))
        colsK.append((t // 2) * n + np.arange(n))
        valsK.append(np.full(n, -sig))
    EKa = sps.csr_matrix(
        (np.concatenate(valsK), (np.concatenate(rowsK), np.concatenate(colsK))), shape=(2 * m * n, off)
    )
    EK = sps.vstack([sps.csr_matrix(EKf), EKa]).tocsr()
    A_eq = sps.hstack([EK, E1]).tocsr()
    b_eq = np.r_[AJ.ravel(), np.zeros(2 * m * n)]
    # inequalities: lambda_blk^T g_blk + (A_i Bm) k + s ||A_i|| <= b_i - base_i;  mu^T g +- k_j <= 1
    G1 = _block_diag(blk_near, gfull[None, :], gbox[None, :], starts)
    Gk = np.zeros((nb, off))
    ADBx0 = ADBm @ x0  # [k, m]
    Gk[:k_rows, :nK] = -(ADBx0[:, :, None] * x0[None, None, :]).reshape(k_rows, nK)
    Gk[:k_rows, nK:nK + m] = AB0m - ADBx0
    Gk[:k_rows, nK + m] = nrm
    for t in range(2 * m):
        Gk[k_rows + t, nK + t // 2] = 1.0 if t % 2 == 0 else -1.0
    A_ub = sps.hstack([sps.csr_matrix(Gk), G1]).tocsr()
    b_ub = np.r_[b - terms["base2"], np.full(2 * m, 1.0 - 1e-9)]
    bounds = [(None, None)] * (nK + m) + [(None, S_CAP)] + [(0, None)] * int(sizes.sum())
    obj = np.zeros(nvar)
    obj[nK + m] = -1.0
    res = linprog(obj, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0:
        return None
    x = res.x
    K = x[:nK].reshape(m, n)
    kk = x[nK:nK + m]
    s = float(x[nK + m])
    lam_i, lam_r, lam_v, mu_t, mu_r, mu_v = [], [], [], [], [], []
    for blk in np.flatnonzero(blk_near):
        y = np.maximum(x[off + starts[blk]: off + starts[blk] + R.size], 0.0)
        nz = np.flatnonzero(y)
        if blk < k_rows:
            lam_i.append(np.full(nz.size, blk)), lam_r.append(R[nz]), lam_v.append(y[nz])
        else:
            mu_t.append(np.full(nz.size, blk - k_rows)), mu_r.append(R[nz]), mu_v.append(y[nz])

    def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    w = CellWitness(K, kk, cat(lam_i, np.int64), cat(lam_r, np.int64), cat(lam_v, np.float64),
                    cat(mu_t, np.int64), cat(mu_r, np.int64), cat(mu_v, np.float64))
    duals = np.maximum(-np.asarray(res.ineqlin.marginals)[:k_rows], 0.0)
    return w, s, duals


def _far_facets_slack(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, terms: dict) -> np.ndarray:
    """``b_i - (sup_box A_i J x + base_i + 3 sum_j |A_i Bm|_j)`` per facet (float)."""
    AJ, ABm = terms["AJ"].mid, terms["ABm"].mid
    sup = np.maximum(AJ * lo[None, :], AJ * hi[None, :]).sum(axis=1)
    return b - (sup + terms["base"] + 3.0 * np.abs(ABm).sum(axis=1))


def find_witness(model: CertModel, A: np.ndarray, b: np.ndarray, nrm: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, terms: dict, hint: CellWitness | None = None) -> WitnessSearch:
    """Search a witness for the cell ``[lo, hi] ∩ P`` (see module docstring).

    A ``hint`` (the parent's witness) is checked first; it passes only if its multipliers
    still bound the smaller cell, which is common.
    """
    if hint is not None:
        chk = check_cell(model, A, b, lo, hi, hint, terms)
        if chk.ok:
            return WitnessSearch(hint, chk, np.inf)
    near = np.flatnonzero(_far_facets_slack(A, b, lo, hi, terms) <= 0)
    attempts = [near, None] if near.size <= A.shape[0] // 2 else [None]
    last = WitnessSearch(None, None, -np.inf)
    lps = 0
    for sel in attempts:
        lps += 1
        out = feedback_lp(A, b, nrm, lo, hi, model.m, terms, sel)
        if out is None:
            continue
        w, s, duals = out
        if s <= 0:
            last = WitnessSearch(None, None, s, lps=lps, feedback=w, binding=duals)
            continue
        chk = check_cell(model, A, b, lo, hi, w, terms)
        if chk.ok:
            return WitnessSearch(w, chk, s, lps=lps)
        last = WitnessSearch(None, chk, s, np.flatnonzero(chk.facet_slack < 0), lps, w)
        break  # a positive LP slack that fails the rigorous check: rounding or nonlinearity, split
    last.lps = lps
    return last
