"""Search for cell witnesses: an affine feedback and LP multipliers for one cell.

The proof obligation of a cell ``C = [lo, hi] ∩ P`` is :func:`.recheck.check_cell` (the
trusted check).  With the cell's rigorous terms (:func:`.recheck.cell_terms`: ``AJ``, ``ABm``,
``base``) and a feedback ``a = K x + k`` it requires, for every facet ``i``,

    max_{x in C} q_i x + base_i + A_i Bm k <= b_i,       q_i = A_i J + A_i Bm K,         (1)

and ``sigma (K_j x + k_j) <= 1`` on ``C``.  Each maximum is bounded by LP duality with
multipliers ``lambda_i >= 0`` on the rows ``D = [A_R; I; -I]`` that describe ``C`` (``A_R`` the
rows of ``P`` that cut the box):

    lambda_i^T D = q_i,   lambda_i^T g + base_i + A_i Bm k <= b_i,     g = (b_R, hi, -lo),

which is linear in ``(K, k, lambda)``: one LP maximises a common slack ``s`` weighted per
facet by what the check will add to that facet: ``s rho_i`` is added to every facet row, with
``rho_i = sup A_i (Jint - J)(x - x0) + sum_j |A_i (Bint - Bm)|_j`` (the cell's nonlinear term)
plus ``1e-9 (1 + max |x|) ||A_i||`` (the LP solver's tolerance on ``lambda_i^T D = q_i``, a
residual the check bounds over the box), and a fixed ``1e-12 (1 + |b_i|)`` for rounding.
``s >= 1`` then leaves each facet room for its own remainder.  Facets whose dynamics are
affine need little; a common slack in units of ``||A_i||`` would spend on them what the
nonlinear ones lack (the committed cart-pole set: 81 cells instead of 289; a cart-pole with
a wider box: certified in 69 cells, where the unweighted LP left it undecided after 800 s).
The LP uses the check's second-order form of ``B(x) a(x)`` (``q_i = A_i J + A_i B(x0) K +
G_i``, ``G_id = (A_i dB/dx_d)(K x0 + k)``, linear in ``(K, k)``) without its second-order
remainders, which the check adds.

**Size.**  A facet that holds over the whole box for every action of twice the admissible
size (``sup_box A_i J x + base_i + 3 sum_j |A_i Bm|_j <= b_i``) gets multipliers on the box
rows only (2n variables instead of ``|R| + 2n``): it cannot be near its bound, so the
rows of ``P`` add nothing but size.  Sets with hundreds of facets (linear-feedback
candidates in 4-D) keep the LP small this way.  A near facet ``i`` of a set with many facets
first gets multipliers only on the rows of its neighbours (:func:`neighbour_rows`: ``q_i`` is
close to ``A_i`` for a short time step, so the maximum over ``C`` lies on facet ``i``'s face,
where only rows with nearby normals are active): a 335-facet cart-pole cell's LP drops from
about 2 s to 0.2 s.  If a reduced LP finds no positive slack, the larger ones are tried before
the cell is split (where most facets are near, only the full one is solved).

Nothing here is trusted: the witness is accepted only if :func:`.recheck.check_cell` passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sps
from scipy.optimize import linprog

from .intervals import CertModel
from .recheck import CellCheck, CellWitness, check_cell

__all__ = ["WitnessSearch", "find_witness", "relevant_rows", "cell_center", "feedback_lp", "neighbour_rows"]

S_CAP = 1e3  # cap of the weighted slack s (keeps the LP bounded where no facet has a remainder)
LP_TOLERANCE = 1e-9  # feasibility tolerance of the LP solver on its equality rows, relative
ROUNDING_ROOM = 1e-12  # slack every facet keeps, relative to 1 + |b_i|, for the check's outward rounding


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


def _blocks(rows: list[np.ndarray], A: np.ndarray, b: np.ndarray, lo: np.ndarray,
            hi: np.ndarray) -> tuple[sps.csr_matrix, sps.csr_matrix, np.ndarray]:
    """Multiplier blocks: ``D_t = [A_{rows_t}^T, I, -I]`` (n rows) and ``g_t = (b_{rows_t}, hi, -lo)``.

    Returns ``block_diag(D_t)`` [T n, sum |rows_t| + 2n], ``block_diag(g_t^T)`` [T, same] and each
    block's first column [T], all built from index arrays in one go.
    """
    n = A.shape[1]
    T = len(rows)
    cnt = np.array([r.size for r in rows], dtype=np.int64)
    sizes = cnt + 2 * n
    starts = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    width = int(sizes.sum())
    flat = np.concatenate(rows).astype(np.int64) if cnt.sum() else np.zeros(0, dtype=np.int64)
    blk = np.repeat(np.arange(T), cnt)
    col = starts[blk] + (np.arange(flat.size) - np.repeat(np.r_[0, np.cumsum(cnt)[:-1]], cnt))
    d = np.arange(n)
    box_col = (starts + cnt)[:, None] + d[None, :]  # [T, n]: the +I columns; the -I ones follow
    box_rows = (np.arange(T)[:, None] * n + d[None, :]).ravel()  # row t n + d of both I and -I
    e_rows = np.concatenate([(blk[:, None] * n + d[None, :]).ravel(), box_rows, box_rows])
    e_cols = np.concatenate([np.repeat(col, n), box_col.ravel(), (box_col + n).ravel()])
    e_vals = np.concatenate([A[flat].ravel(), np.ones(T * n), -np.ones(T * n)])
    E = sps.csr_matrix((e_vals, (e_rows, e_cols)), shape=(T * n, width))
    g_rows = np.concatenate([blk, np.repeat(np.arange(T), 2 * n)])
    g_cols = np.concatenate([col, np.concatenate([box_col, box_col + n], axis=1).ravel()])
    g_vals = np.concatenate([b[flat], np.tile(np.r_[hi, -lo], T)])
    G = sps.csr_matrix((g_vals, (g_rows, g_cols)), shape=(T, width))
    return E, G, starts


def neighbour_rows(A: np.ndarray, count: int) -> np.ndarray:
    """Per facet ``i``, itself and the ``count`` facets whose normals are closest to ``A_i`` [k, <= count + 1].

    Where the next state's facet direction ``q_i = A_i J + A_i Bm K`` is close to ``A_i`` (a short
    time step), ``max_{x in C} q_i x`` is attained on facet ``i``'s face, and LP duality needs
    only the rows active there: facet ``i`` and its neighbours, whose normals are near ``A_i``.
    A heuristic that only shrinks the LP; a witness still has to pass the rigorous check.
    """
    k = A.shape[0]
    U = A / np.linalg.norm(A, axis=1, keepdims=True)
    cos = U @ U.T
    np.fill_diagonal(cos, 2.0)  # the facet itself first
    c = min(count + 1, k)
    return np.argsort(-cos, axis=1, kind="stable")[:, :c]


def feedback_lp(A: np.ndarray, b: np.ndarray, nrm: np.ndarray, lo: np.ndarray, hi: np.ndarray, m: int,
                terms: dict, near: np.ndarray | None,
                neighbours: np.ndarray | None = None) -> tuple[CellWitness, float, np.ndarray] | None:
    """The LP of the module docstring. ``near``: facets given multipliers on the rows of P (None: all).

    ``neighbours`` [k, c] (:func:`neighbour_rows`): a near facet ``i`` then gets multipliers only
    on the rows of P among ``neighbours[i]`` that cut the cell (a smaller LP whose slack is at most
    the full one's).  Returns (witness, slack, duals of the facet rows [k]) or None.
    """
    k_rows, n = A.shape
    R = relevant_rows(A, b, lo, hi)
    AJ = terms["AJ"].mid
    is_near = np.ones(k_rows, dtype=bool) if near is None else np.isin(np.arange(k_rows), near)
    empty = np.zeros(0, dtype=np.int64)
    if neighbours is None:
        facet_rows = [R if is_near[i] else empty for i in range(k_rows)]
    else:
        cuts = np.zeros(k_rows, dtype=bool)
        cuts[R] = True
        facet_rows = [nb_i[cuts[nb_i]] if is_near[i] else empty for i, nb_i in enumerate(neighbours)]
    # blocks: facets 0..k-1, then the 2m action bounds (always with every row of P that cuts the cell)
    block_rows = facet_rows + [R] * (2 * m)
    nb = k_rows + 2 * m
    nK = m * n
    off = nK + m + 1
    # equalities: lambda_blk^T D_blk - (coefficient of K) = rhs, n rows per block
    E1, G1, starts = _blocks(block_rows, A, b, lo, hi)
    nvar = off + E1.shape[1]
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
    # inequalities: lambda_blk^T g_blk + (A_i Bm) k + s rho_i <= b_i - base_i - room_i;  mu^T g +- k_j <= 1
    Gk = np.zeros((nb, off))
    ADBx0 = ADBm @ x0  # [k, m]
    Gk[:k_rows, :nK] = -(ADBx0[:, :, None] * x0[None, None, :]).reshape(k_rows, nK)
    Gk[:k_rows, nK:nK + m] = AB0m - ADBx0
    # slack weights: the facet's nonlinear remainder over the cell (what the check adds to the LP's bound)
    # and the LP solver's tolerance on lambda^T D = q (a residual the check bounds over the box)
    scale = 1.0 + float(np.max(np.maximum(np.abs(lo), np.abs(hi))))
    weight = np.asarray(terms["nonlinear"], dtype=np.float64) + LP_TOLERANCE * scale * nrm
    Gk[:k_rows, nK + m] = weight
    for t in range(2 * m):
        Gk[k_rows + t, nK + t // 2] = 1.0 if t % 2 == 0 else -1.0
    A_ub = sps.hstack([sps.csr_matrix(Gk), G1]).tocsr()
    room = ROUNDING_ROOM * (1.0 + np.abs(b))
    b_ub = np.r_[b - terms["base2"] - room, np.full(2 * m, 1.0 - 1e-9)]
    bounds = [(None, None)] * (nK + m) + [(None, S_CAP)] + [(0, None)] * E1.shape[1]
    obj = np.zeros(nvar)
    obj[nK + m] = -1.0
    res = linprog(obj, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0:
        return None
    x = res.x
    K = x[:nK].reshape(m, n)
    kk = x[nK:nK + m]
    s_w = float(x[nK + m])
    ratio = weight / nrm  # > 0; back to normalised units: the least (s > 0) or most (s < 0) normalised slack
    s = s_w * float(ratio.min() if s_w > 0 else ratio.max())
    lam_i, lam_r, lam_v, mu_t, mu_r, mu_v = [], [], [], [], [], []
    for blk, rows in enumerate(block_rows):
        if rows.size == 0:
            continue
        y = np.maximum(x[off + starts[blk]: off + starts[blk] + rows.size], 0.0)
        nz = np.flatnonzero(y)
        if blk < k_rows:
            lam_i.append(np.full(nz.size, blk)), lam_r.append(rows[nz]), lam_v.append(y[nz])
        else:
            mu_t.append(np.full(nz.size, blk - k_rows)), mu_r.append(rows[nz]), mu_v.append(y[nz])

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
                 hi: np.ndarray, terms: dict, hint: CellWitness | None = None,
                 neighbours: np.ndarray | None = None) -> WitnessSearch:
    """Search a witness for the cell ``[lo, hi] ∩ P`` (see module docstring).

    A ``hint`` (the parent's witness) is checked first; it passes only if its multipliers
    still bound the smaller cell, which is common.  With ``neighbours`` (:func:`neighbour_rows`)
    the LP whose near facets use only their neighbours' rows is solved first; the larger
    LPs follow only where its slack is not positive.
    """
    if hint is not None:
        chk = check_cell(model, A, b, lo, hi, hint, terms)
        if chk.ok:
            return WitnessSearch(hint, chk, np.inf)
    near = np.flatnonzero(_far_facets_slack(A, b, lo, hi, terms) <= 0)
    attempts: list[tuple[np.ndarray | None, np.ndarray | None]] = (
        [(near, None), (None, None)] if near.size <= A.shape[0] // 2 else [(None, None)])
    if neighbours is not None:
        attempts.insert(0, (near, neighbours))
    last = WitnessSearch(None, None, -np.inf)
    lps = 0
    for sel, nbrs in attempts:
        lps += 1
        out = feedback_lp(A, b, nrm, lo, hi, model.m, terms, sel, nbrs)
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
