"""Rigorous certifier for robust control-invariant (RCI) polytopes.

Claim for ``P = {x : A x <= b}`` (set file) and the symbolic model ``x+ = f(x, a, w)``:

    (i)  P ⊆ X;
    (ii) for all x in P there is a in U = [-1, 1]^m with f(x, a, w) in P for all w in W.

Method (the proof obligations are those of :mod:`verification.certification.recheck`, which checks every
cell during the search and again, independently of the search, with ``--recheck``):

1. **Counterexample search first** (cheap): boundary states of P (rays from the Chebyshev
   centre, vertices for small polytopes, zonotope vertices ``c + G sign(G^T d)``) are
   screened with a one-facet bound, the most critical get the per-state LP, and a few
   are refined by sequential-LP descent of the LP value.  A state ``x*`` in P whose safe-
   action set ``S(x*)`` is proven empty by a Farkas certificate
   (:mod:`verification.certification.per_state`) ends the run: **not invariant**.
2. **Root box and (i)**: for each coordinate an LP over P gives its range; its dual
   multipliers, with their residuals bounded rigorously (:func:`verification.certification.recheck.root_bounds`),
   give a box containing P.  The box must lie in the inward-rounded X; otherwise a point of
   P outside X is sought.
3. **Cells**: the root box is split into slabs along the coordinates that enter the model
   nonlinearly, then bisected adaptively (widest relative side, nonlinear coordinates
   preferred).  In each cell one LP searches an affine feedback ``a = K x + k`` and duals
   ``lambda`` maximising the minimum facet slack (see :mod:`verification.certification.recheck` for the
   inequalities); the candidate is accepted only if the outward-rounded interval check
   passes.  Cells whose box misses P get a one-row Farkas proof.
4. On success the proof artifact ``<stem>.proof.json`` (root-box proofs, cells, witnesses)
   is written next to the set file and the set file's ``certificate`` is updated
   (both atomically).  A budget (cells, seconds) that runs out gives **undecided**.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from scipy.optimize import linprog

from reachsafe import __version__
from reachsafe.setfile import SetFile, atomic_write_text, load_set
from reachsafe.sets import HPolytope
from reachsafe.systems import CompiledSystem, get_definition, get_system

from . import intervals as ia
from .cell_loop import prove_cells
from .intervals import CertModel
from .per_state import Counterexample, find_counterexample, in_polytope, local_search, prove_no_safe_action, pull_inside
from .recheck import ARTIFACT_FORMAT, file_sha256, root_bounds, set_hash

__all__ = ["CertifyResult", "certify", "artifact_path_for", "METHOD"]

METHOD = "cells + affine feedback LP + outward-rounded interval check (reachsafe certify)"


@dataclass
class CertifyResult:
    """Outcome of :func:`certify`.

    ``status`` is ``"certified"``, ``"not_invariant"`` or ``"undecided"``; ``min_slack`` is the
    smallest rigorous facet slack ``(b_i - bound_i) / ||A_i||`` over all cells (certified only).
    """

    status: str
    message: str
    counterexample: Counterexample | None = None
    min_slack: float | None = None
    cells: int = 0
    time_s: float = 0.0
    artifact: Path | None = None
    certificate: dict[str, Any] | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return {"certified": 0, "not_invariant": 1, "undecided": 3}[self.status]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "min_slack": self.min_slack,
                "cells": self.cells, "time_s": round(self.time_s, 3),
                "counterexample": self.counterexample.to_json() if self.counterexample else None,
                "artifact": str(self.artifact) if self.artifact else None,
                "certificate": self.certificate, "stats": self.stats}


def artifact_path_for(setfile_path: str | Path) -> Path:
    """``dir/name.json`` -> ``dir/name.proof.json``."""
    p = Path(setfile_path)
    return p.with_name(p.stem + ".proof.json")


# =========================================================================== helpers
class _Clock:
    def __init__(self, time_budget: float | None):
        self.t0 = time.monotonic()
        self.deadline = None if time_budget is None else self.t0 + float(time_budget)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return np.inf if self.deadline is None else self.deadline - time.monotonic()

    def until(self, fraction: float, cap: float) -> float:
        """A sub-deadline: ``fraction`` of the remaining time, at most ``cap`` seconds."""
        return time.monotonic() + min(cap, fraction * max(self.left(), 0.0))


def _chebyshev(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    nrm = np.linalg.norm(A, axis=1)
    n = A.shape[1]
    res = linprog(np.r_[np.zeros(n), -1.0], A_ub=np.hstack([A, nrm[:, None]]), b_ub=b,
                  bounds=[(None, None)] * n + [(0, None)], method="highs")
    if res.status != 0:
        return np.zeros(n), -1.0
    return res.x[:n], float(res.x[-1])


# =========================================================================== phase 1: candidates
def _lp_vertices(A: np.ndarray, b: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """Vertices of P maximising ``c^T x`` for ``count`` random directions ``c`` (and +-e_j).

    States with no safe action sit at vertices more often than anywhere else (every facet
    constrains the action there at once); where enumerating all vertices is out of reach,
    these are a sample of them.
    """
    n = A.shape[1]
    C = np.vstack([np.eye(n), -np.eye(n), rng.normal(size=(count, n))])
    out = []
    for c in C:
        res = linprog(-c, A_ub=A, b_ub=b, bounds=[(None, None)] * n, method="highs")
        if res.status == 0:
            out.append(res.x)
    return np.array(out).reshape(-1, n)


def _candidates(sf, A: np.ndarray, b: np.ndarray, xc: np.ndarray, rng: np.random.Generator,
                n_rays: int = 1000, n_vertex_lps: int = 300) -> np.ndarray:
    """Boundary states of P (ray exits and vertices) pulled inward by a relative 1e-9 towards ``xc``."""
    k, n = A.shape
    pts: list[np.ndarray] = []
    D = rng.normal(size=(n_rays, n))
    AD = D @ A.T
    slack = b - A @ xc
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(AD > 0, slack[None, :] / AD, np.inf).min(axis=1)
    ok = np.isfinite(t)
    pts.append(xc + t[ok, None] * D[ok])
    if n <= 3 or k <= 40:
        try:
            V = HPolytope(A, b).vertices()
            if len(V):
                pts.append(V)
        except Exception:  # vertex enumeration is only a heuristic source here
            pass
    else:  # too many vertices to enumerate: the vertices that LPs in random directions reach
        pts.append(_lp_vertices(A, b, rng, min(n_vertex_lps, 100_000 // k)))  # bounded work for huge k
    if sf is not None and sf.zonotope:
        c = np.asarray(sf.zonotope["center"], float)
        G = np.asarray(sf.zonotope["generators"], float)
        Dz = rng.normal(size=(n_rays // 2, n))
        pts.append(c + np.sign(Dz @ G) @ G.T)
    return pull_inside(A, b, np.vstack(pts), xc)


def _search_counterexample(model, compiled, A, b, X, xc, scale, deadline, n_lp=24, n_local=3) -> Counterexample | None:
    """Screen, LP, Farkas; then sequential-LP descent from the most critical LP states."""
    if len(X) == 0:
        return None
    ce, tried = find_counterexample(model, compiled, A, b, X, n_lp=n_lp, deadline=deadline)
    if ce is not None:
        return ce
    for _, idx in tried[:n_local]:
        if time.monotonic() > deadline:
            break
        x, val = local_search(compiled, A, b, X[idx], xc, scale, deadline=deadline)
        if val < 0:
            ce = prove_no_safe_action(model, compiled, A, b, x)
            if ce is not None:
                return ce
    return None


# =========================================================================== phase 2: root box
def _bound_proof(A: np.ndarray, b: np.ndarray, j: int, sign: int) -> tuple[dict, np.ndarray] | str:
    """LP ``max sign x_j`` over P; its dual is the multiplier of the root-box proof."""
    n = A.shape[1]
    obj = np.zeros(n)
    obj[j] = -sign
    res = linprog(obj, A_ub=A, b_ub=b, bounds=[(None, None)] * n, method="highs")
    if res.status == 2:
        return "P is empty"
    if res.status == 3:
        return f"P is unbounded in coordinate {j}"
    if res.status != 0:
        return f"LP for the range of coordinate {j} failed ({res.message})"
    y = np.maximum(-np.asarray(res.ineqlin.marginals), 0.0)
    rows = np.flatnonzero(y)
    proof = {"dim": j, "sign": sign, "rows": rows.tolist(), "lambda": y[rows].tolist()}
    # Prefer a single row that is exactly a positive multiple of sign*e_j and attains the optimum:
    # its proof has (almost) no residual, so a set touching X is not lost to rounding.
    other = np.delete(A, j, axis=1)
    single = np.flatnonzero((sign * A[:, j] > 0) & np.all(other == 0, axis=1))
    if single.size:
        vals = b[single] / (sign * A[single, j])
        r = int(single[np.argmin(vals)])
        if vals.min() <= -res.fun + 1e-9 * (1.0 + abs(res.fun)):
            proof = {"dim": j, "sign": sign, "rows": [r], "lambda": [1.0 / (sign * A[r, j])]}
    return proof, res.x


def _root_box(model: CertModel, A: np.ndarray, b: np.ndarray, xc: np.ndarray) -> dict[str, Any]:
    """Rigorous root box; ``{"root": ...}``, ``{"error": msg}`` or ``{"outside": Counterexample|None, "dim": j}``."""
    n = A.shape[1]
    proofs, argmax = [], {}
    for j in range(n):
        for sign in (1, -1):
            out = _bound_proof(A, b, j, sign)
            if isinstance(out, str):
                return {"error": out}
            proofs.append(out[0])
            argmax[(j, sign)] = out[1]
    box = root_bounds(A, b, proofs)
    if isinstance(box, str):
        return {"error": box}
    lo, hi = box
    for j in range(n):
        for sign, bad in ((1, hi[j] > model.X_inner_hi[j]), (-1, lo[j] < model.X_inner_lo[j])):
            if bad:
                return {"outside": _outside_point(model, A, b, argmax[(j, sign)], xc, j, sign), "dim": j}
    return {"root": {"lo": lo.tolist(), "hi": hi.tolist(), "proofs": proofs}}


def _outside_point(model: CertModel, A, b, xmax, xc, j: int, sign: int) -> Counterexample | None:
    """A state rigorously in P with ``x_j`` strictly beyond the exact X bound, if one is found.

    Candidates: the LP maximiser pulled towards the centre, and the maximiser of ``sign x_j``
    over P with every row tightened by 1e-9 except the rows parallel to ``e_j`` (so a set whose
    float bound exceeds an exact bound like 2.7 by half an ulp is still refuted).
    """

    d = model.definition
    limit = sp.sympify(d.constraint_hi[j] if sign > 0 else d.constraint_lo[j])
    lim = ia.number_interval(limit)

    def beyond(v: float) -> bool:  # exact comparison of the double v with the exact bound
        q = sp.Rational(*float(v).as_integer_ratio())
        return bool(q > limit) if sign > 0 else bool(q < limit)

    cands = [pull_inside(A, b, xmax, xc, rel) for rel in (1e-9, 1e-12, 1e-15, 0.0)]
    parallel = np.all(np.delete(A, j, axis=1) == 0, axis=1) & (sign * A[:, j] > 0)
    tight = b - np.where(parallel, 0.0, 1e-9 * (1.0 + np.abs(b)))
    obj = np.zeros(A.shape[1])
    obj[j] = -sign
    res = linprog(obj, A_ub=A, b_ub=tight, bounds=[(None, None)] * A.shape[1], method="highs")
    if res.status == 0:
        x = res.x.copy()
        rows = np.flatnonzero(parallel)
        if rows.size:
            ratio = b[rows] / A[rows, j]  # x_j <= ratio (sign > 0) or x_j >= ratio (sign < 0)
            x[j] = ratio.min() if sign > 0 else ratio.max()
        cands.append(x)
    for x in cands:
        if beyond(x[j]) and in_polytope(A, b, x):
            margin = float(x[j] - lim[0]) if sign > 0 else float(lim[1] - x[j])
            return Counterexample(x=x, reason="outside_constraints", margin=margin,
                                  detail={"coordinate": j})
    return None


# =========================================================================== main entry
def _load(setfile_or_path):
    if isinstance(setfile_or_path, SetFile):
        return setfile_or_path
    return load_set(setfile_or_path, check_certificate=False)  # certifying does not rely on an old certificate


def certify(setfile_or_path, budget: int = 200_000, time_budget: float | None = 900.0, progress: bool = False,
            write: bool = True, definition=None, init_splits: int = 8, seed: int = 0,
            workers: int | None = None) -> CertifyResult:
    """Certify (or refute) that the set file's polytope is RCI for its model.

    :param setfile_or_path: a :class:`~reachsafe.setfile.SetFile` or a path to one.
    :param budget: maximum number of cell LPs.
    :param time_budget: seconds (None: unlimited).
    :param progress: tqdm progress bar on stderr.
    :param write: on success write ``<stem>.proof.json`` and the set file's certificate.
    :param definition: override the symbolic model (tests: mutated models); nothing is written
        when its fingerprint differs from the set file's.
    :param workers: processes for the cell loop (default: the usable cores); the artifact does
        not depend on it.
    """

    clock = _Clock(time_budget)
    sf = _load(setfile_or_path)
    d = definition or get_definition(sf.system)
    model = CertModel(d)
    compiled = get_system(sf.system) if definition is None else CompiledSystem(d)
    if d.fingerprint() != sf.model_fingerprint:
        write = False
    A, b = np.asarray(sf.A, float), np.asarray(sf.b, float)
    stats: dict[str, Any] = {"facets": int(A.shape[0])}

    def result(status: str, msg: str, **kw) -> CertifyResult:
        return CertifyResult(status, msg, time_s=clock.elapsed(), stats=stats, **kw)

    xc, radius = _chebyshev(A, b)
    if radius < 0:
        return result("undecided", "P is empty or its Chebyshev LP failed; nothing to certify")
    rng = np.random.default_rng(seed)
    X = _candidates(sf, A, b, xc, rng)
    scale = np.ptp(X, axis=0) + 1e-12
    ce = _search_counterexample(model, compiled, A, b, X, xc, scale, clock.until(0.2, 60.0))
    stats["search_s"] = round(clock.elapsed(), 3)
    if ce is not None:
        return result("not_invariant", "a state in P has no safe action (Farkas proof)", counterexample=ce)
    rb = _root_box(model, A, b, xc)
    if "error" in rb:
        return result("undecided", rb["error"])
    if "outside" in rb:
        if rb["outside"] is not None:
            j = rb["dim"]
            bound = (model.definition.constraint_lo[j], model.definition.constraint_hi[j])
            return result("not_invariant", f"P is not inside the constraint box X: it reaches "
                          f"{float(rb['outside'].x[j])!r} in coordinate {j}, beyond the exact bound in {bound} "
                          "(build sets from CompiledSystem.constraint_box_inner())", counterexample=rb["outside"])
        return result("undecided", f"P reaches the boundary of X in coordinate {rb['dim']} within rounding")
    root = rb["root"]
    cells, min_slack, ce, complete = prove_cells(model, compiled, A, b, root, clock.deadline, budget, progress,
                                                 init_splits, stats, workers)
    if ce is not None:
        return result("not_invariant", "a state in P has no safe action (Farkas proof)", counterexample=ce,
                      cells=len(cells))
    if not complete:
        why = ("a cell became too small to split further" if stats.get("too_small")
               else f"budget exhausted with {len(cells)} cells proven and {stats.get('queued', 0)} queued")
        return result("undecided", why + "; try a larger --time-budget, or a set with more margin", cells=len(cells))
    min_slack = float(min_slack) if np.isfinite(min_slack) else None
    art = {"format": ARTIFACT_FORMAT, "system": sf.system, "model_fingerprint": model.fingerprint(),
           "set_sha256": set_hash(A, b), "tool_version": __version__, "method": METHOD,
           "root": root, "cells": cells, "min_slack": min_slack}
    res = result("certified", f"P is robust control invariant ({len(cells)} cells)", min_slack=min_slack,
                 cells=len(cells))
    if write and sf.path is not None:
        res.artifact, res.certificate = _write(sf, art, res, __version__)
    return res


def _write(sf, art: dict, res: CertifyResult, version: str) -> tuple[Path, dict]:
    """Write the artifact, then the set file's certificate (each atomically)."""

    path = artifact_path_for(sf.path)
    atomic_write_text(path, json.dumps(art, separators=(",", ":"), allow_nan=False) + "\n")
    cert = {"status": "certified", "method": METHOD, "min_slack": res.min_slack, "cells": res.cells,
            "time_s": round(res.time_s, 3), "tool_version": version, "artifact": path.name,
            "artifact_sha256": file_sha256(path), "model_fingerprint": art["model_fingerprint"]}
    sf.certificate = cert
    sf.save(sf.path)
    return path, cert
