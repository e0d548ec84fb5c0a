"""Small, search-free checker for RCI proof artifacts (the trusted kernel of ``certify``).

It uses no LP solver: only exact rational arithmetic (``fractions.Fraction``) and
outward-rounded interval arithmetic (:mod:`verification.certification.intervals`) on the stored
witnesses.  :mod:`verification.certification.certifier` calls the same cell checks during the search, so a
cell counts as proven only if this module accepts it.

**Claim.**  For ``P = {x : A x <= b}``: (i) ``P`` lies in the constraint box ``X``; (ii) for
every ``x`` in ``P`` some ``a`` in ``U = [-1, 1]^m`` keeps ``f(x, a, w)`` in ``P`` for all
``w`` in ``W``.

**Root box.**  For each coordinate ``j`` and side ``sigma = +-1`` the artifact holds rows and
multipliers ``lambda >= 0`` with ``A^T lambda ~ sigma e_j``; :func:`root_bounds` turns them into
a rigorous box ``R ⊇ P`` (residuals included), which, compared with the inward-rounded ``X``,
proves (i).

**Coverage.**  The cells are boxes; they must cover ``R``.  Checked by recursive cutting:
a region is covered if one cell contains it, or if some hyperplane ``x_d = t`` strictly
inside it crosses no cell's interior and both sides are covered (cells from bisection
always admit such a cut).

**Cell witness.**  In cell ``C = box ∩ P`` (box ``[lo, hi]``, ``x0`` its midpoint) the action is
``a(x) = K x + k``.  With ``Jint ⊇ dc/dx(box)``, ``J = mid(Jint)``, ``Bint ⊇ B(box)``,
``Bm = mid(Bint)``, ``Eint ⊇ E(box)``, mean value form gives for facet ``i`` and ``x in C``::

    A_i f(x, a(x), w) <= q_i x + A_i c(x0) - A_i J x0 + A_i Bm k + sup A_i R
                         + sum_j |A_i (Bint - Bm)|_j + sup_{E in Eint, w in W} A_i E w,
    q_i = A_i J + A_i Bm K,  R = (Jint - J)([lo, hi] - x0),

using ``|a_j(x)| <= 1``.  The spread of ``B`` over the cell costs first order in the cell's
width there; the **second-order form** avoids it.  With ``B0 ⊇ B(x0)``, ``B0m = mid(B0)``,
``DB ⊇ dB/dx(box)`` and ``a0 = K x0 + k``, the mean value form of ``B`` gives

    A_i B(x) a(x) <= (A_i B0m K + G_i) x - G_i x0 + A_i B0m k + sum_j |A_i (B0 - B0m)|_j
                     + sum_d |A_i DB_d a0 - G_id| |x_d - x0_d| + sum_{d,e} |A_i DB_d K|_e |x_d - x0_d| |x_e - x0_e|,

``G_id = mid(A_i DB_d a0)``: a linear part (bounded by the same multipliers as ``q_i``) and
remainders of second order.  The check evaluates both forms and keeps the smaller bound
per facet (both are upper bounds of the same quantity).  With the stored multipliers ``lambda_i >= 0`` (on rows of
``A``),
``max_{x in C} q_i x <= lambda_i^T b + sup_{x in box} (q_i - lambda_i^T A) x``.  The cell
passes iff every right-hand side is ``<= b_i``, and likewise ``+-(K_j x + k_j) <= 1`` on C
with multipliers ``mu``, all evaluated with outward rounding.

**Empty cell.**  ``y >= 0`` with ``inf_{x in box} (y^T A) x > y^T b`` proves ``box ∩ P = {}``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reachsafe.certificate import artifact_set_hash
from reachsafe.progress import progress_bar
from reachsafe.systems import get_definition

from . import intervals as ia
from .intervals import CertModel, Iv

__all__ = ["ARTIFACT_FORMAT", "set_hash", "CellWitness", "CellCheck", "check_cell", "check_empty", "cell_enclosures",
           "check_root_bounds", "check_coverage", "RecheckResult", "recheck_artifact", "file_sha256",
           "root_bounds"]

ARTIFACT_FORMAT = "reachsafe-rci-proof/1"


def set_hash(A: np.ndarray, b: np.ndarray) -> str:
    """sha256 of the exact doubles of ``A`` and ``b`` (little-endian, with the shape).

    One definition with the binding check every set-file load makes
    (:func:`reachsafe.certificate.artifact_set_hash`).
    """
    return artifact_set_hash(A, b)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- witnesses
@dataclass
class CellWitness:
    """Affine feedback ``a = K x + k`` and sparse multipliers.

    ``lam``: (facet i, row r, value) triplets; ``mu``: (bound index t, row r, value) with
    ``t = 2 j`` for ``K_j x + k_j <= 1`` and ``t = 2 j + 1`` for ``-(K_j x + k_j) <= 1``.
    """

    K: np.ndarray
    k: np.ndarray
    lam_i: np.ndarray
    lam_r: np.ndarray
    lam_v: np.ndarray
    mu_t: np.ndarray
    mu_r: np.ndarray
    mu_v: np.ndarray

    def to_json(self) -> dict[str, Any]:
        return {"K": self.K.tolist(), "k": self.k.tolist(),
                "lam": {"i": self.lam_i.tolist(), "r": self.lam_r.tolist(), "v": self.lam_v.tolist()},
                "mu": {"t": self.mu_t.tolist(), "r": self.mu_r.tolist(), "v": self.mu_v.tolist()}}

    @classmethod
    def from_json(cls, d: dict[str, Any], m: int, n: int) -> "CellWitness":
        K = np.array(d["K"], dtype=np.float64).reshape(m, n)
        k = np.array(d["k"], dtype=np.float64).reshape(m)
        lam, mu = d["lam"], d["mu"]
        return cls(K, k, np.array(lam["i"], dtype=np.int64), np.array(lam["r"], dtype=np.int64),
                   np.array(lam["v"], dtype=np.float64), np.array(mu["t"], dtype=np.int64),
                   np.array(mu["r"], dtype=np.int64), np.array(mu["v"], dtype=np.float64))


@dataclass
class CellCheck:
    """Outcome of a rigorous cell check: ``ok`` iff every slack is ``>= 0``."""

    ok: bool
    facet_slack: np.ndarray  # b_i - (rigorous bound), per facet
    action_slack: np.ndarray  # 1 - (rigorous bound), per action bound
    reason: str = ""

    @property
    def min_slack(self) -> float:
        return float(np.min(self.facet_slack)) if self.facet_slack.size else np.inf


def _dense(
    idx_a: np.ndarray, idx_r: np.ndarray, val: np.ndarray, rows_a: int, kP: int
) -> tuple[np.ndarray, np.ndarray]:
    """Dense multiplier matrix [rows_a, len(R)] over the used rows R (sorted unique)."""
    R = np.unique(idx_r)
    pos = np.searchsorted(R, idx_r)
    M = np.zeros((rows_a, R.size))
    np.add.at(M, (idx_a, pos), val)  # duplicates add (any lambda >= 0 is valid)
    return M, R


def _validate_witness(w: CellWitness, k_rows: int, m: int, n: int) -> str:
    if w.K.shape != (m, n) or w.k.shape != (m,):
        return "witness K/k has the wrong shape"
    for name, arr in (("K", w.K), ("k", w.k), ("lambda", w.lam_v), ("mu", w.mu_v)):
        if not np.all(np.isfinite(arr)):
            return f"witness {name} is not finite"
    if np.any(w.lam_v < 0) or np.any(w.mu_v < 0):
        return "negative multiplier"
    if not (w.lam_i.shape == w.lam_r.shape == w.lam_v.shape and w.mu_t.shape == w.mu_r.shape == w.mu_v.shape):
        return "multiplier triplets of unequal length"
    for arr, hi in ((w.lam_i, k_rows), (w.lam_r, k_rows), (w.mu_r, k_rows), (w.mu_t, 2 * m)):
        if arr.size and (arr.min() < 0 or arr.max() >= hi):
            return "multiplier index out of range"
    return ""


def _box_sup(coef: Iv, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Upper bound of ``max_{x in [lo, hi], q in coef} q x`` per row of ``coef`` ([r, n])."""
    return ia.ivdot(coef, Iv(lo[None, :], hi[None, :]), axis=-1).hi


def cell_enclosures(model: CertModel, lo: np.ndarray, hi: np.ndarray) -> dict[str, Iv]:
    """The model's enclosures a cell check needs, for N cells at once (``lo, hi`` [N, n]).

    ``Jc, B, E, DB`` over each box and ``c0, B0`` at its midpoint ``x0 = lo/2 + hi/2``; every
    entry is an elementwise interval evaluation, so a batch gives exactly the per-cell values.
    """
    enc = model.enclose(lo, hi)
    at0 = model.at_points(0.5 * lo + 0.5 * hi)
    return {"Jc": enc["Jc"], "B": enc["B"], "E": enc["E"], "DB": enc["DB"], "c0": at0["c"], "B0": at0["B"]}


def cell_terms(model: CertModel, A: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               enc: dict[str, Iv] | None = None) -> dict[str, Any]:
    """Witness-independent rigorous quantities of a cell (see module docstring).

    :param enc: this cell's entries of :func:`cell_enclosures` (computed here when None).
    """
    n = model.n
    x0 = 0.5 * lo + 0.5 * hi
    if enc is None:
        enc = {key: v[0] for key, v in cell_enclosures(model, lo[None], hi[None]).items()}
    Jint, Bint, Eint, DBint = enc["Jc"], enc["B"], enc["E"], enc["DB"]
    c0, B0 = enc["c0"], enc["B0"]
    J, Bm, B0m = Jint.mid, Bint.mid, B0.mid
    dx = ia.sub(ia.point(lo), ia.point(x0)), ia.sub(ia.point(hi), ia.point(x0))
    dx = Iv(dx[0].lo, dx[1].hi)
    R = ia.ivdot(ia.sub(Jint, ia.point(J)), Iv(dx.lo[None, :], dx.hi[None, :]), axis=-1)  # [n]
    A3 = A[:, :, None]
    AJ = ia.fdot(A3, ia.point(J)[None], axis=1)  # [k, n]
    ABm = ia.fdot(A3, ia.point(Bm)[None], axis=1)  # [k, m]
    AdB = ia.fdot(A3, ia.sub(Bint, ia.point(Bm))[None], axis=1)  # [k, m]
    AE = ia.fdot(A3, Eint[None], axis=1)  # [k, p]
    W = model.W
    Ac0 = ia.fdot(A, c0[None, :], axis=-1)
    AJx0 = ia.ivdot(AJ, ia.point(x0)[None, :], axis=-1)
    AR = ia.fdot(A, R[None, :], axis=-1)
    noise = ia.ivdot(AE, Iv(W.lo[None, :], W.hi[None, :]), axis=-1).hi
    bdev = ia._sum_bound(AdB.mag, -1, up=True) if model.m else np.zeros(len(A))
    common = ia.sub(ia.add(Ac0, AR), AJx0).hi  # A_i c(x0) - A_i J x0 + sup A_i R
    base = ia._sum_bound(np.stack([common, noise, bdev], axis=-1), -1, up=True)
    # second-order form of B(x) a(x) (module docstring): B(x0) and dB/dx over the cell
    AB0m = ia.fdot(A3, ia.point(B0m)[None], axis=1)  # [k, m]
    AdB0 = ia.fdot(A3, ia.sub(B0, ia.point(B0m))[None], axis=1)  # rounding width of B(x0)
    b0dev = ia._sum_bound(AdB0.mag, -1, up=True) if model.m else np.zeros(len(A))
    ADB = ia.fdot(A[:, :, None, None], DBint[None], axis=1)  # [k, m, n]
    base2 = ia._sum_bound(np.stack([common, noise, b0dev], axis=-1), -1, up=True)
    return {"x0": x0, "J": J, "Bm": Bm, "AJ": AJ, "ABm": ABm, "base": base, "n": n,
            "nonlinear": AR.hi + bdev, "AB0m": AB0m, "ADB": ADB, "base2": base2, "dx": dx}


def _second_order_bound(t: dict[str, Any], w: CellWitness, lam_part: np.ndarray, lo: np.ndarray,
                        hi: np.ndarray, LA: Iv, Lb: np.ndarray) -> np.ndarray:
    """Upper bound of ``A_i f(x, K x + k, w)`` on the cell in the second-order form of B (module docstring)."""
    x0, dx, ADB, AJ = t["x0"], t["dx"], t["ADB"], t["AJ"]
    m = w.K.shape[0]
    a0 = ia.add(ia.ivdot(ia.point(w.K), ia.point(x0)[None, :], axis=-1), ia.point(w.k))  # [m]
    # G_id = sum_j (A_i dB/dx_d)_j a0_j  -> [k, n]
    ADBt = Iv(np.swapaxes(ADB.lo, 1, 2), np.swapaxes(ADB.hi, 1, 2))  # [k, n(d), m]
    G = ia.ivdot(ADBt, Iv(a0.lo[None, None, :], a0.hi[None, None, :]), axis=-1)
    Gm = G.mid
    ABK = ia.ivdot(Iv(t["AB0m"].lo[:, :, None], t["AB0m"].hi[:, :, None]), ia.point(w.K)[None], axis=1)  # [k, n]
    q2 = ia.add(ia.add(AJ, ABK), ia.point(Gm))
    lin = ia._sum_bound(np.stack([Lb, _box_sup(ia.sub(q2, LA), lo, hi)], -1), -1, up=True)
    ABk = ia.ivdot(t["AB0m"], ia.point(w.k)[None, :], axis=-1).hi
    Gx0 = ia.ivdot(ia.point(Gm), ia.point(x0)[None, :], axis=-1).lo  # subtracted: its lower bound
    dmag = dx.mag  # [n]
    T1 = ia._sum_bound(ia.sub(G, ia.point(Gm)).mag * dmag[None, :], -1, up=True)
    # T2 = sum_{d,e} |(A_i dB/dx_d K)_e| |dx_d| |dx_e|
    DK = ia.ivdot(Iv(ADBt.lo[:, :, :, None], ADBt.hi[:, :, :, None]), ia.point(w.K)[None, None], axis=2)  # [k, n, n]
    T2 = ia._sum_bound((DK.mag * dmag[None, :, None] * dmag[None, None, :]).reshape(len(Lb), -1), -1, up=True)
    if m == 0:
        T1 = T2 = np.zeros(len(Lb))
    return ia._sum_bound(np.stack([lin, t["base2"], ABk, -Gx0, T1, T2], -1), -1, up=True)


def check_cell(model: CertModel, A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               w: CellWitness, terms: dict[str, Any] | None = None) -> CellCheck:
    """Rigorous check of one cell witness (see module docstring); never raises on bad data."""
    k_rows, n = A.shape
    m = model.m
    bad = _validate_witness(w, k_rows, m, n)
    if bad:
        return CellCheck(False, np.full(k_rows, -np.inf), np.full(2 * m, -np.inf), bad)
    t = terms or cell_terms(model, A, lo, hi)
    AJ, ABm = t["AJ"], t["ABm"]
    ABK = ia.ivdot(Iv(ABm.lo[:, :, None], ABm.hi[:, :, None]), ia.point(w.K)[None], axis=1)  # [k, n]
    q = ia.add(AJ, ABK)
    ABk = ia.ivdot(ABm, ia.point(w.k)[None, :], axis=-1).hi
    Lam, R = _dense(w.lam_i, w.lam_r, w.lam_v, k_rows, k_rows)
    AR, bR = A[R], b[R]
    LA = ia.fdot(Lam[:, :, None], ia.point(AR)[None], axis=1)  # [k, n]
    Lb = ia.fdot(Lam, ia.point(bR)[None, :], axis=-1).hi
    lin = ia._sum_bound(np.stack([Lb, _box_sup(ia.sub(q, LA), lo, hi)], -1), -1, up=True)
    total = ia._sum_bound(np.stack([lin, t["base"], ABk], -1), -1, up=True)
    # both forms bound the same quantity; the smaller bound is kept (fmin skips a NaN bound)
    total = np.fmin(total, _second_order_bound(t, w, Lam, lo, hi, LA, Lb))
    fslack = np.nextafter(b - total, -np.inf)
    aslack = _action_slack(w, A, b, lo, hi, m)
    ok = bool(np.all(fslack >= 0) and np.all(aslack >= 0))
    return CellCheck(ok, np.where(np.isnan(fslack), -np.inf, fslack), aslack, "" if ok else "bound violated")


def _action_slack(w: CellWitness, A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, m: int) -> np.ndarray:
    """``1 - sup_{x in C} sigma (K_j x + k_j)`` for the 2m bounds, rigorously."""
    if m == 0:
        return np.zeros(0)
    sgn = np.where(np.arange(2 * m) % 2 == 0, 1.0, -1.0)
    Ks = sgn[:, None] * np.repeat(w.K, 2, axis=0)  # exact (sign flip)
    ks = sgn * np.repeat(w.k, 2)
    Mu, R = _dense(w.mu_t, w.mu_r, w.mu_v, 2 * m, A.shape[0])
    MA = ia.fdot(Mu[:, :, None], ia.point(A[R])[None], axis=1)
    Mb = ia.fdot(Mu, ia.point(b[R])[None, :], axis=-1).hi
    sup = ia._sum_bound(np.stack([Mb, _box_sup(ia.sub(ia.point(Ks), MA), lo, hi), ks], -1), -1, up=True)
    s = np.nextafter(1.0 - sup, -np.inf)
    return np.where(np.isnan(s), -np.inf, s)


def check_empty(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, rows: np.ndarray, y: np.ndarray) -> bool:
    """Farkas: ``y >= 0`` on ``rows`` with ``inf_{box} (y^T A) x > sup y^T b`` proves ``box ∩ P`` empty."""
    rows = np.asarray(rows, dtype=np.int64)
    y = np.asarray(y, dtype=np.float64)
    if rows.shape != y.shape or rows.size == 0 or np.any(y < 0) or not np.all(np.isfinite(y)):
        return False
    if rows.min() < 0 or rows.max() >= A.shape[0]:
        return False
    yA = ia.fdot(y[:, None], ia.point(A[rows]), axis=0)
    inf_box = ia.ivdot(yA, Iv(lo, hi), axis=-1).lo
    yb = ia.fdot(y, ia.point(b[rows]), axis=-1).hi
    return bool(inf_box > yb)


# --------------------------------------------------------------------------- root box
def root_bounds(A: np.ndarray, b: np.ndarray, proofs: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray] | str:
    """Rigorous box ``[lo, hi]`` containing P from multipliers ``lambda_{j,sigma} >= 0``.

    With ``r = sigma e_j - A^T lambda``, ``beta = lambda^T b``, ``rho = ||r||_1`` (all exact, in
    rationals) and ``x in P``: ``sigma x_j = lambda^T A x + r^T x <= beta + rho ||x||_inf``.  If
    every ``rho < 1`` then P is bounded (a recession direction d would satisfy
    ``||d||_inf <= rho ||d||_inf``), ``U = max(max beta, 0) / (1 - max rho)`` bounds
    ``||x||_inf`` on P, and ``sigma x_j <= beta + rho U`` (rounded outward to doubles).
    Returns the box or a message.
    """
    k, n = A.shape
    beta: dict[tuple[int, int], Fraction] = {}
    rho: dict[tuple[int, int], Fraction] = {}
    for pr in proofs:
        j, sign = int(pr["dim"]), int(pr["sign"])
        rows = [int(r) for r in pr["rows"]]
        lam = [float(v) for v in pr["lambda"]]
        if not (0 <= j < n and sign in (1, -1)) or len(rows) != len(lam) or not rows or len(rows) > 10 * n:
            return f"root-box proof for coordinate {j} malformed"
        if min(rows) < 0 or max(rows) >= k or not all(np.isfinite(v) and v >= 0 for v in lam):
            return f"root-box proof for coordinate {j} has invalid rows or multipliers"
        lq = [Fraction(v) for v in lam]
        res = [
            Fraction(sign if d == j else 0) - sum((q * Fraction(float(A[r, d])) for r, q in zip(rows, lq)), Fraction(0))
            for d in range(n)
        ]
        rho[(j, sign)] = sum((abs(v) for v in res), Fraction(0))
        beta[(j, sign)] = sum((q * Fraction(float(b[r])) for r, q in zip(rows, lq)), Fraction(0))
    if len(rho) != 2 * n:
        return "root-box proofs missing for some coordinate"
    rmax = max(rho.values())
    if not rmax < 1:
        return "cannot prove P bounded (multiplier residuals too large)"
    U = max(max(beta.values()), Fraction(0)) / (1 - rmax)
    lo = np.array([-ia.fraction_up(beta[(j, -1)] + rho[(j, -1)] * U) for j in range(n)])
    hi = np.array([ia.fraction_up(beta[(j, 1)] + rho[(j, 1)] * U) for j in range(n)])
    return lo, hi


def check_root_bounds(A: np.ndarray, b: np.ndarray, root: dict[str, Any], X_lo: np.ndarray, X_hi: np.ndarray) -> str:
    """Verify the root-box proofs, that the stored box contains their bounds, and ``root ⊆ X``."""
    n = A.shape[1]
    lo = np.asarray(root["lo"], dtype=np.float64)
    hi = np.asarray(root["hi"], dtype=np.float64)
    if lo.shape != (n,) or hi.shape != (n,) or np.any(~(lo <= hi)):
        return "root box malformed"
    out = root_bounds(A, b, root["proofs"])
    if isinstance(out, str):
        return out
    if np.any(out[0] < lo) or np.any(out[1] > hi):
        return "root box does not contain the proven range of P"
    if np.any(lo < X_lo) or np.any(hi > X_hi):
        return "root box is not inside the constraint box X"
    return ""


# --------------------------------------------------------------------------- coverage
def check_coverage(root_lo: np.ndarray, root_hi: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> str:
    """"" if the boxes ``[lo_k, hi_k]`` cover ``[root_lo, root_hi]``, else the uncovered region."""
    stack = [(np.asarray(root_lo, float), np.asarray(root_hi, float), np.arange(len(lo)))]
    while stack:
        rlo, rhi, idx = stack.pop()
        idx = idx[np.all(lo[idx] < rhi, axis=1) & np.all(hi[idx] > rlo, axis=1)] if np.all(rlo < rhi) else idx
        if idx.size == 0:
            return f"region {rlo.tolist()} .. {rhi.tolist()} is covered by no cell"
        contains = np.all(lo[idx] <= rlo, axis=1) & np.all(hi[idx] >= rhi, axis=1)
        if np.any(contains):
            continue
        cut = _find_cut(rlo, rhi, lo[idx], hi[idx])
        if cut is None:
            return f"cannot verify coverage of region {rlo.tolist()} .. {rhi.tolist()}"
        d, t = cut
        left, right = idx[hi[idx, d] <= t], idx[lo[idx, d] >= t]
        lhi, rlo2 = rhi.copy(), rlo.copy()
        lhi[d], rlo2[d] = t, t
        stack.append((rlo, lhi, left))
        stack.append((rlo2, rhi, right))
    return ""


def _find_cut(rlo: np.ndarray, rhi: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[int, float] | None:
    """A coordinate ``d`` and ``t`` in ``(rlo_d, rhi_d)`` such that no cell has ``lo_d < t < hi_d``
    (candidates: the cells' sides; the most balanced cut by cell count is returned)."""
    best: tuple[int, float, float] | None = None
    N = lo.shape[0]
    for d in range(len(rlo)):
        keep = lo[:, d] < hi[:, d]  # zero-width cells never cross a cut
        ls, hs = np.sort(lo[keep, d]), np.sort(hi[keep, d])
        cand = np.unique(np.r_[lo[:, d], hi[:, d]])
        cand = cand[(cand > rlo[d]) & (cand < rhi[d])]
        if cand.size == 0:
            continue
        crossing = np.searchsorted(ls, cand, side="left") - np.searchsorted(hs, cand, side="right")
        ok = crossing == 0
        if np.any(ok):
            left = np.searchsorted(hs, cand[ok], side="right")
            bal = np.abs(left - N / 2.0)
            i = int(np.argmin(bal))
            if best is None or bal[i] < best[2]:
                best = (d, float(cand[ok][i]), float(bal[i]))
    return None if best is None else (best[0], best[1])


# --------------------------------------------------------------------------- artifact
@dataclass
class RecheckResult:
    """``valid`` iff the artifact proves the claim for this set file and model."""

    valid: bool
    message: str
    cells: int = 0
    min_slack: float = float("nan")
    bad_cell: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def recheck_artifact(setfile, artifact_path: str | Path, definition=None, progress: bool = False) -> RecheckResult:
    """Validate a proof artifact against a loaded set file (see module docstring)."""

    d = definition or get_definition(setfile.system)
    model = CertModel(d)
    A, b = np.asarray(setfile.A, float), np.asarray(setfile.b, float)
    try:
        art = json.loads(Path(artifact_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return RecheckResult(False, f"artifact {artifact_path} unreadable: {exc}")
    try:
        return _recheck(model, A, b, art, progress)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return RecheckResult(False, f"artifact malformed: {type(exc).__name__}: {exc}")


def _recheck(model: CertModel, A: np.ndarray, b: np.ndarray, art: dict, progress: bool) -> RecheckResult:
    if art.get("format") != ARTIFACT_FORMAT:
        return RecheckResult(False, f"unknown artifact format {art.get('format')!r}")
    if art.get("set_sha256") != set_hash(A, b):
        return RecheckResult(False, "artifact is for another set (A, b hash differs)")
    if art.get("model_fingerprint") != model.fingerprint():
        return RecheckResult(False, "artifact is for another model (fingerprint differs)")
    err = check_root_bounds(A, b, art["root"], model.X_inner_lo, model.X_inner_hi)
    if err:
        return RecheckResult(False, err)
    cells = art["cells"]
    n, m = model.n, model.m
    lo = np.array([c["lo"] for c in cells], dtype=np.float64).reshape(len(cells), n)
    hi = np.array([c["hi"] for c in cells], dtype=np.float64).reshape(len(cells), n)
    err = check_coverage(np.array(art["root"]["lo"], float), np.array(art["root"]["hi"], float), lo, hi)
    if err:
        return RecheckResult(False, f"coverage: {err}")
    it = range(len(cells))
    if progress:
        it = progress_bar(it, desc="recheck", unit="cell")
    min_slack = np.inf
    chunk = 256  # the model's enclosures are evaluated for this many cells at once
    enc: dict[str, Iv] = {}
    for ci in it:
        if ci % chunk == 0:
            enc = cell_enclosures(model, lo[ci:ci + chunk], hi[ci:ci + chunk])
        c = cells[ci]
        if c["kind"] == "empty":
            if not check_empty(A, b, lo[ci], hi[ci], np.array(c["rows"]), np.array(c["y"], float)):
                return RecheckResult(False, f"cell {ci}: emptiness proof invalid", bad_cell=ci)
            continue
        if c["kind"] != "witness":
            return RecheckResult(False, f"cell {ci}: unknown kind {c['kind']!r}", bad_cell=ci)
        w = CellWitness.from_json(c["witness"], m, n)
        terms = cell_terms(model, A, lo[ci], hi[ci], {key: v[ci % chunk] for key, v in enc.items()})
        chk = check_cell(model, A, b, lo[ci], hi[ci], w, terms)
        if not chk.ok:
            return RecheckResult(False, f"cell {ci}: witness invalid ({chk.reason}, min slack {chk.min_slack:.3g})",
                                 bad_cell=ci)
        nrm = np.linalg.norm(A, axis=1)
        min_slack = min(min_slack, float(np.min(chk.facet_slack / nrm)))
    return RecheckResult(True, "artifact valid", cells=len(cells), min_slack=float(min_slack))
