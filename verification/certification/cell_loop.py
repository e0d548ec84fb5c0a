"""The certifier's adaptive cell loop: cover the root box with proven cells, in parallel.

Cells are boxes.  Each is settled by one of

* an emptiness proof (one row ``r`` with ``min_box A_r x > b_r``),
* a witness (:func:`.cells.find_witness`, accepted only by :func:`.recheck.check_cell`),

or split in two.  Where to split is read off the failed check:

* if the nonlinear terms of the failing facets (mean-value remainder and the spread of
  ``B``, :func:`.recheck.cell_terms`) are at least half of the deficit, the coordinate
  whose halving shrinks them most (measured on the 2n candidate children, enclosed in
  one batched call);
* otherwise one affine feedback is too weak for the cell: the coordinate along which the
  facets that limit the LP's slack (weighted by their duals ``y_i``) vary most over the cell,
  at the state or at its successor: ``argmax_d sum_i y_i max(|A_id|, |(A_i J)_d|) (hi_d - lo_d)``
  with ``J = df/dx`` on the cell, or its widest side relative to the root box when the LP
  gives no duals.  (``|A_id|`` alone misses a facet such as ``v <= v_max`` whose successor
  value depends on the position through the dynamics: such cells were split along ``v``
  forever; ``|A_i J|`` alone proved 15 % fewer cart-pole cells in the same time.)

Cells are processed generation by generation in a fixed order; a generation is spread
over worker processes (``fork``), and its results are taken in cell order, so the proof
artifact is the same whatever the number of workers.  Small failing cells (at most 1/32 of the
root box along every side, or 1/8 in geometric mean) are tested for a counterexample (a
state whose safe-action set is empty, proven by Farkas): the cell's centre, then a descent
of the per-state LP value from it, which finds thin slivers without safe actions that no
centre hits.

Progress: cells proven and queued, the fraction of the root box settled, and an estimate
of the time left from the rate at which the box is settled (an estimate, not a bound).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import intervals as ia
from .cells import WitnessSearch, cell_center, find_witness, neighbour_rows
from .intervals import CertModel
from .per_state import Counterexample, local_search, prove_no_safe_action
from .recheck import CellWitness, cell_terms

__all__ = ["Cell", "CellOutcome", "prove_cells", "default_workers"]

MIN_REL_WIDTH = 1e-7  # a cell narrower than this (relative to the root box) ends the search: undecided
POINT_TEST_WIDTH = 1.0 / 32  # failing cells at most this wide are tested for a counterexample
POINT_TEST_MEAN_WIDTH = 1.0 / 8  # ... and failing cells whose geometric-mean relative width is at most this
LOCAL_SEARCH_ITERS = 12  # descent steps of the per-state LP value from such a cell's centre
NEIGHBOURS_PER_DIM = 6  # a near facet's first LP uses the rows of this many x n nearest normals (cells.neighbour_rows)
NEIGHBOURS_MIN_FACETS = 40  # ... for sets with more facets than this (smaller LPs are cheap in full)


@dataclass
class Cell:
    lo: np.ndarray
    hi: np.ndarray
    depth: int = 0
    hint: CellWitness | None = None  # the parent's witness, tried first


@dataclass
class CellOutcome:
    """What processing one cell produced (plain data, sent back from a worker)."""

    record: dict | None  # proven cell (artifact entry) or None
    slack: float  # normalised minimum facet slack of a proven cell
    split: int  # coordinate to bisect (-1: none)
    hint: CellWitness | None
    counterexample: Counterexample | None
    lps: int
    too_small: bool = False


def default_workers() -> int:
    """Worker processes for the cell loop: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _quick_empty(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> int | None:
    """A row r with ``min_{box} A_r x > b_r`` (rigorous), proving ``box ∩ P`` empty."""
    inf_box = ia.fdot(A, ia.Iv(lo[None, :], hi[None, :]), axis=-1).lo
    bad = np.flatnonzero(inf_box > b)
    return int(bad[0]) if bad.size else None


def _nonlinear_terms(model: CertModel, A: np.ndarray, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Float estimate of the nonlinear terms of facets ``rows`` over boxes [N, n]: [N, len(rows)].

    ``|A_i (Jint - mid)| |x - x0| + |A_i (Bint - mid)| 1``, as in :func:`.recheck.cell_terms`.
    """
    enc = model.enclose(lo, hi)
    J, Bv = enc["Jc"], enc["B"]
    Jr = 0.5 * (J.hi - J.lo)  # [N, n, n]
    Br = 0.5 * (Bv.hi - Bv.lo)  # [N, n, m]
    dx = 0.5 * (hi - lo)  # [N, n]
    Ar = np.abs(A[rows])  # [r, n]
    rem = np.einsum("rk,Nkj,Nj->Nr", Ar, Jr, dx)
    bsp = np.einsum("rk,Nkm->Nr", Ar, Br)
    return rem + bsp


def _split_dim(model: CertModel, A: np.ndarray, nrm: np.ndarray, cell: Cell, root_w: np.ndarray,
               failing: np.ndarray, deficit: float, terms: dict, binding: np.ndarray | None = None) -> int:
    """Coordinate to bisect (see module docstring)."""
    n = cell.lo.size
    rel = (cell.hi - cell.lo) / np.where(root_w > 0, root_w, 1.0)
    widest = int(np.argmax(rel))
    if failing.size == 0 and binding is not None and binding.sum() > 0:
        grad = np.maximum(np.abs(A), terms["AJ"].mag) / nrm[:, None]  # max(|A_i|, |A_i df/dx|) per coordinate
        score = (binding[:, None] * grad).sum(axis=0) * (cell.hi - cell.lo)
        if np.max(score) > 0:
            return int(np.argmax(score))
    if failing.size == 0 or not np.isfinite(deficit):
        return widest
    nl_parent = float(np.max(terms["nonlinear"][failing] / nrm[failing]))
    if nl_parent < 0.5 * deficit:
        return widest
    lo_c, hi_c = [], []
    for d in range(n):
        t = 0.5 * cell.lo[d] + 0.5 * cell.hi[d]
        l1, h1 = cell.lo.copy(), cell.hi.copy()
        h1[d] = t
        l2, h2 = cell.lo.copy(), cell.hi.copy()
        l2[d] = t
        lo_c += [l1, l2]
        hi_c += [h1, h2]
    nl = _nonlinear_terms(model, A, failing, np.array(lo_c), np.array(hi_c)) / nrm[failing][None, :]
    score = nl.max(axis=1).reshape(n, 2).max(axis=1)
    score = np.where(rel > 0, score, np.inf)
    best = float(score.min())
    if not np.isfinite(best) or best >= 0.999 * nl_parent:
        return widest
    # among coordinates that are (nearly) as good, the widest
    good = np.flatnonzero(score <= best + 1e-3 * nl_parent)
    return int(good[np.argmax(rel[good])])


# ------------------------------------------------------------------ worker
_STATE: dict[str, Any] = {}


def _worker_signals() -> None:
    """Workers leave Ctrl-C and SIGTERM to the parent, which stops the pool (no worker tracebacks)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _setup(model, compiled, A, b, root_w, point_tests: bool, interior: np.ndarray | None = None) -> None:
    _STATE.update(model=model, compiled=compiled, A=A, b=b, nrm=np.linalg.norm(A, axis=1), root_w=root_w,
                  point_tests=point_tests, interior=interior,
                  neighbours=neighbour_rows(A, NEIGHBOURS_PER_DIM * A.shape[1]) if len(A) > NEIGHBOURS_MIN_FACETS
                  else None)


def _point_test(cell: Cell) -> Counterexample | None:
    """Look for a state without a safe action from a failing cell's centre (Farkas-proven, or None).

    The centre itself, then a descent of the per-state LP value (:func:`.per_state.local_search`):
    a thin sliver of P without safe actions (a candidate that is not RCI there) is rarely hit by a
    centre, and the cells around it would otherwise be split forever.
    """
    model, compiled, A, b = _STATE["model"], _STATE["compiled"], _STATE["A"], _STATE["b"]
    x = cell_center(A, b, cell.lo, cell.hi)
    if x is None:
        return None
    ce = prove_no_safe_action(model, compiled, A, b, x)
    if ce is not None or _STATE["interior"] is None:
        return ce
    xs, val = local_search(compiled, A, b, x, _STATE["interior"], _STATE["root_w"], iters=LOCAL_SEARCH_ITERS)
    return prove_no_safe_action(model, compiled, A, b, xs) if val < 0 else None


def _process(cell: Cell) -> CellOutcome:
    model, A, b, nrm, root_w = _STATE["model"], _STATE["A"], _STATE["b"], _STATE["nrm"], _STATE["root_w"]
    r = _quick_empty(A, b, cell.lo, cell.hi)
    if r is not None:
        rec = {"lo": cell.lo.tolist(), "hi": cell.hi.tolist(), "kind": "empty", "rows": [r], "y": [1.0]}
        return CellOutcome(rec, np.inf, -1, None, None, 0)
    terms = cell_terms(model, A, cell.lo, cell.hi)
    if _bounded(terms):
        search = find_witness(model, A, b, nrm, cell.lo, cell.hi, terms, hint=cell.hint,
                              neighbours=_STATE["neighbours"])
    else:  # an enclosure is unbounded on the cell (a pole of the model, log near 0): no witness; split the widest side
        search = WitnessSearch(None, None, -np.inf)
    if search.witness is not None:
        slack = float(np.min(search.check.facet_slack / nrm))
        rec = {"lo": cell.lo.tolist(), "hi": cell.hi.tolist(), "kind": "witness",
               "witness": search.witness.to_json(), "min_slack": slack}
        return CellOutcome(rec, slack, -1, None, None, search.lps)
    rel_w = (cell.hi - cell.lo) / np.where(root_w > 0, root_w, 1.0)
    rel = float(np.max(rel_w))
    # geometric mean over the coordinates the root box spans (a flat one would make every cell "small")
    mean_w = float(np.exp(np.mean(np.log(np.maximum(rel_w[root_w > 0], 1e-300))))) if np.any(root_w > 0) else 0.0
    if _STATE["point_tests"] and (rel <= POINT_TEST_WIDTH or mean_w <= POINT_TEST_MEAN_WIDTH):
        ce = _point_test(cell)
        if ce is not None:
            return CellOutcome(None, np.nan, -1, None, ce, search.lps)
    if rel < MIN_REL_WIDTH:
        return CellOutcome(None, np.nan, -1, None, None, search.lps, too_small=True)
    deficit = (float(-np.min(search.check.facet_slack / nrm)) if search.check is not None
               else float(-search.lp_slack) if np.isfinite(search.lp_slack) else np.inf)
    d = _split_dim(model, A, nrm, cell, root_w, search.failing, deficit, terms, search.binding)
    return CellOutcome(None, np.nan, d, search.feedback, None, search.lps)


def _bounded(terms: dict) -> bool:
    """Whether the cell's enclosures (:func:`.recheck.cell_terms`) are finite: a model with a pole or a ``log``
    near 0 inside the cell has unbounded ones, which no witness can use (the LP refuses infinite data)."""
    parts = (terms["J"], terms["Bm"], terms["base"], terms["base2"], terms["nonlinear"], terms["AJ"].lo, terms["AJ"].hi,
             terms["AB0m"].lo, terms["AB0m"].hi, terms["ADB"].lo, terms["ADB"].hi)
    return all(bool(np.all(np.isfinite(v))) for v in parts)


def _split(cell: Cell, d: int, hint: CellWitness | None) -> tuple[Cell, Cell]:
    t = 0.5 * cell.lo[d] + 0.5 * cell.hi[d]
    left_hi, right_lo = cell.hi.copy(), cell.lo.copy()
    left_hi[d], right_lo[d] = t, t
    return Cell(cell.lo, left_hi, cell.depth + 1, hint), Cell(right_lo, cell.hi, cell.depth + 1, hint)


def initial_cells(lo: np.ndarray, hi: np.ndarray, nonlinear: list[int], splits: int) -> list[Cell]:
    """The root box cut into ``splits`` slabs along each coordinate that enters nonlinearly."""
    cells = [Cell(lo.copy(), hi.copy())]
    for d in nonlinear:
        if hi[d] <= lo[d]:
            continue
        cuts = [lo[d] + (hi[d] - lo[d]) * q / splits for q in range(1, splits)]
        edges = [lo[d]] + [c for c in cuts if lo[d] < c < hi[d]] + [hi[d]]
        new = []
        for c in cells:
            for a, z in zip(edges[:-1], edges[1:]):
                l2, h2 = c.lo.copy(), c.hi.copy()
                l2[d], h2[d] = a, z
                new.append(Cell(l2, h2))
        cells = new
    return cells


# ------------------------------------------------------------------ progress
class _Progress:
    """One status line: rewritten in place on a terminal, plain lines every few seconds otherwise."""

    WINDOW = 30.0  # seconds of history behind the rate estimate

    def __init__(self, enabled: bool, every: float = 5.0) -> None:
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.every = every
        self.last = 0.0
        self.t0 = time.monotonic()
        self.history: deque[tuple[float, float, int]] = deque([(self.t0, 0.0, 0)])

    def eta(self, now: float, frac: float, proven: int, queued: int) -> str:
        """Time left: the larger of two estimates from the last ``WINDOW`` seconds.

        * volume: ``(1 - settled) / (rate the box was settled)``;
        * queue: ``queued / (rate cells were proven)``, a lower bound while cells still split.

        The last fraction of a box is often the slowest (the cells shrink where the set is
        tight), so recent rates are used, not averages since the start, and the queue term
        keeps a tail of many small cells from reading as "a few seconds left".
        """
        self.history.append((now, frac, proven))
        while len(self.history) > 2 and now - self.history[1][0] >= self.WINDOW:
            self.history.popleft()
        t_old, f_old, p_old = self.history[0]
        if now - t_old < 1.0 or frac <= 0.02 or frac >= 1:
            return ""
        rate = (frac - f_old) / (now - t_old)
        cell_rate = (proven - p_old) / (now - t_old)
        if rate <= 0 or cell_rate <= 0:
            return ", no estimate (no progress recently)"
        return f", about {_fmt(max((1 - frac) / rate, queued / cell_rate))} left"

    def update(self, proven: int, queued: int, frac: float, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < (0.5 if self.tty else self.every):
            return
        self.last = now
        eta = self.eta(now, frac, proven, queued)
        pct = f"{100 * frac:.1f}" if frac < 0.999 or frac >= 1 else f"{100 * frac:.4f}"  # 99.9xxx: the tail shows
        msg = f"certify: {proven} cells proven, {queued} queued, {pct} % of the box settled{eta}"
        if self.tty:
            sys.stderr.write("\r\033[K" + msg)
        else:
            sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _fmt(s: float) -> str:
    if s > 86_400:
        return "more than a day"
    s = int(round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


# ------------------------------------------------------------------ loop
def prove_cells(model: CertModel, compiled, A: np.ndarray, b: np.ndarray, root: dict, deadline: float | None,
                budget: int, progress: bool, init_splits: int, stats: dict,
                workers: int | None = None) -> tuple[list[dict], float, Counterexample | None, bool]:
    """Cover the root box. Returns (proven cells, min slack, counterexample, complete)."""
    lo0, hi0 = np.array(root["lo"]), np.array(root["hi"])
    root_w = hi0 - lo0
    vol0 = float(np.prod(np.where(root_w > 0, root_w, 1.0)))
    queue: deque[Cell] = deque(initial_cells(lo0, hi0, model.nonlinear_dims, init_splits))
    done: list[dict] = []
    min_slack = np.inf
    settled = 0.0
    lps = 0
    workers = default_workers() if workers is None else max(1, int(workers))
    bar = _Progress(progress)
    _setup(model, compiled, A, b, root_w, True, cell_center(A, b, lo0, hi0))
    pool = None
    try:
        if workers > 1:
            pool = mp.get_context("fork").Pool(workers, initializer=_worker_signals)
        while queue:
            if lps >= budget or (deadline is not None and time.monotonic() > deadline):
                stats["queued"] = len(queue)
                stats["open_region"] = {"lo": np.min([c.lo for c in queue], axis=0).tolist(),
                                        "hi": np.max([c.hi for c in queue], axis=0).tolist()}
                stats["open_cells"] = [[c.lo.tolist(), c.hi.tolist()] for c in list(queue)[:200]]
                return done, min_slack, None, False
            batch = [queue.popleft() for _ in range(min(len(queue), max(8, 16 * workers)))]
            outs = pool.map(_process, batch, chunksize=4) if pool is not None else [_process(c) for c in batch]
            for cell, out in zip(batch, outs):
                lps += out.lps
                if out.counterexample is not None:
                    return done, min_slack, out.counterexample, False
                if out.too_small:
                    stats["too_small"] = stats.get("too_small", 0) + 1
                    return done, min_slack, None, False
                if out.record is not None:
                    done.append(out.record)
                    min_slack = min(min_slack, out.slack)
                    w = np.where(root_w > 0, cell.hi - cell.lo, 1.0)
                    settled += float(np.prod(w)) / vol0
                    continue
                stats["failed_cells"] = stats.get("failed_cells", 0) + 1
                queue.extend(_split(cell, out.split, out.hint))
            bar.update(len(done), len(queue), min(settled, 1.0))
    finally:
        stats["cell_lps"] = lps
        stats["workers"] = workers
        if pool is not None:
            pool.terminate()
        bar.close()
    return done, min_slack, None, True
