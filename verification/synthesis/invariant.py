"""Robust control-invariant polytope synthesis by counterexample-guided template shrinking.

Template polyhedra: the facet normals ``A`` (unit rows) are fixed per system
(:mod:`verification.synthesis.templates`: the constraint box plus directions coupling the
coordinates that must trade off, e.g. angle with angular velocity); only the offsets
``b`` move.  Starting from ``P_0 = T-hull(X)`` (every offset at the support of the
constraint box) the loop

1. samples states in ``P_k`` (uniform inside, and on the boundary along random rays from
   the Chebyshev centre, where invariance is decided; when none lacks margin, the boundary
   samples of least margin and the vertices (:func:`vertex_samples`) are refined by a random
   descent along the boundary, :func:`refine_boundary`, since thin slivers without margin
   slip between the rays in 4-D),
2. computes the robust margin ``s(x)`` of each (:func:`verification.synthesis.margins.robust_margins`),
3. cuts every bad state (``s(x) < margin``) out of ``P_k`` by moving one facet inward
   (:func:`_cheapest_cuts`): along the normal where it sticks out furthest beyond the
   good states when there is one (no good state is lost), otherwise the cut just past
   it that loses the fewest good sampled states (a volume proxy),

and stops when no sampled state is bad in ``confirm`` consecutive iterations.  The result is only a candidate: it is
written
only after the independent certifier (:mod:`verification.certification.certifier`) proves it invariant
for the nonlinear model and every noise value.  When certification fails, the margin is
raised and the loop continues from the current set (sets only shrink, so the work is
monotone and resumable from any intermediate polytope).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from reachsafe.sets import EmptySetError, HPolytope, LPFailedError

from .margins import normalize_rows, robust_margins

__all__ = ["SynthesisConfig", "SynthesisResult", "shrink_to_invariant", "boundary_samples", "initial_offsets",
           "refine_boundary", "vertex_samples"]


@dataclass
class SynthesisConfig:
    """Knobs of the shrinking loop.

    :param margin: required robust margin of sampled states (state units, unit normals).
    :param n_interior: uniform samples inside the polytope per iteration.
    :param n_boundary: boundary samples per iteration.
    :param step: extra inward distance of a cut beyond the bad state, relative to the
        constraint box's extent along that normal.
    :param max_iters: iteration cap (the driver sets it from the time budget through ``deadline``).
    :param confirm: consecutive iterations without a bad sample needed to stop.
    :param seed: random seed (the result is deterministic for a seed).
    :param refine_keep: boundary samples of least margin refined when an iteration finds no bad
        state (:func:`refine_boundary`; 0: off).
    :param refine_rounds: refinement rounds (the perturbation halves every round).
    :param refine_draws: perturbed directions per kept sample and round.
    """

    margin: float = 2e-3
    n_interior: int = 1500
    n_boundary: int = 3000
    step: float = 2e-3
    max_iters: int = 200
    confirm: int = 2
    seed: int = 0
    refine_keep: int = 64
    refine_rounds: int = 8
    refine_draws: int = 16


@dataclass
class SynthesisResult:
    A: np.ndarray
    b: np.ndarray
    iterations: int
    converged: bool
    min_margin: float
    time_s: float
    history: list[dict] = field(default_factory=list)
    empty: bool = False  # the polytope became empty (no invariant set with this template and margin)

    def polytope(self) -> HPolytope:
        return HPolytope(self.A, self.b)


def initial_offsets(A: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Support function of the box ``[lo, hi]``: ``h(d) = sum_j max(d_j lo_j, d_j hi_j)``."""
    return np.maximum(A * lo[None, :], A * hi[None, :]).sum(axis=1)


def boundary_samples(P: HPolytope, center: np.ndarray, N: int, rng: np.random.Generator,
                     scale: np.ndarray) -> np.ndarray:
    """Points on the boundary of ``P`` along random rays from an interior ``center``.

    Directions are drawn uniformly on the sphere in coordinates scaled by ``scale`` (so
    thin and wide coordinates are hit alike); the ray ``center + t d`` leaves ``P`` at
    ``t = min_{i: A_i d > 0} (b_i - A_i center) / (A_i d)``.  Points are pulled in by a
    relative ``1e-9`` so they lie in ``P``.
    """
    return _ray_exits(P, center, rng.standard_normal((N, P.dim)) * scale[None, :])


def _ray_exits(P: HPolytope, center: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``center + t d`` with ``t`` where the ray leaves ``P`` (pulled in by a relative 1e-9) [N, n]."""
    Ad = d @ P.A.T
    gap = (P.b - P.A @ center)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(Ad > 1e-15, gap / Ad, np.inf).min(axis=1)
    return center[None, :] + (t * (1 - 1e-9))[:, None] * d


VERTEX_MAX_DIM = 4  # vertices are enumerated for polytopes of at most this dimension ...
VERTEX_MAX_FACETS = 400  # ... and this many facets (double description grows fast beyond)


def vertex_samples(P: HPolytope, center: np.ndarray) -> np.ndarray:
    """The vertices of ``P`` pulled towards ``center`` by a relative 1e-9 ([V, n]; empty if skipped).

    States without margin sit at vertices more often than anywhere else (every facet there
    constrains the action at once): the quadrotor's 4-D roll chain had 11 of its 241
    vertices below zero margin after 3000 rays found none.  Enumerated (floating-point double
    description) only for small polytopes; a failure only skips this source of samples.
    """
    n = P.dim
    if n > VERTEX_MAX_DIM or len(P.b) > VERTEX_MAX_FACETS:
        return np.zeros((0, n))
    try:
        V = P.vertices()
    except Exception:  # a heuristic source of samples: cdd may fail on degenerate input
        return np.zeros((0, n))
    return center[None, :] + (1 - 1e-9) * (V - center[None, :])


def refine_boundary(system, P: HPolytope, center: np.ndarray, X: np.ndarray, s: np.ndarray,
                    rng: np.random.Generator, scale: np.ndarray, keep: int = 64, rounds: int = 8,
                    draws: int = 16, sigma: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Descend the robust margin along the boundary from the ``keep`` samples of least margin.

    States without margin often fill a thin sliver of the boundary that a few thousand rays
    miss (the quadrotor's 4-D roll chain: 3000 rays found none, the certifier then found
    states with no safe action).  Each kept boundary state ``x = center + t d`` moves to
    the best of ``draws`` neighbours ``exit(d' / |d'|)``, ``d' = d / |d| + sigma_r z``
    (``z`` standard normal in coordinates scaled by ``scale``, ``sigma_r = sigma 2^-r``),
    when that lowers its margin.  Random search, no gradient: the margin is a
    max-min of LP values and only piecewise smooth.

    :param X: boundary states [N, n]; ``s``: their margins [N].
    :returns: the refined states [keep, n] and their margins [keep].
    """
    n = X.shape[1]
    idx = np.argsort(s, kind="stable")[:keep]
    D = (X[idx] - center[None, :]) / scale[None, :]
    D /= np.maximum(np.linalg.norm(D, axis=1, keepdims=True), 1e-300)
    best_x, best_s = X[idx].copy(), s[idx].copy()
    k = len(idx)
    for r in range(rounds):
        cand = D[:, None, :] + sigma * 0.5 ** r * rng.standard_normal((k, draws, n))
        cand /= np.maximum(np.linalg.norm(cand, axis=2, keepdims=True), 1e-300)
        Xc = _ray_exits(P, center, (cand * scale[None, None, :]).reshape(-1, n))
        sc, _ = robust_margins(system, P.A, P.b, Xc)
        sc = sc.reshape(k, draws)
        j = sc.argmin(axis=1)
        better = sc[np.arange(k), j] < best_s
        D[better] = cand[np.arange(k), j][better]
        best_s[better] = sc[np.arange(k), j][better]
        best_x[better] = Xc.reshape(k, draws, n)[np.arange(k), j][better]
    return best_x, best_s


def _cheapest_cuts(bad_proj: np.ndarray, good_proj: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each bad state, a facet cut that removes it at the least cost in good states.

    Where the bad state ``x`` sticks out beyond every good state along some normal
    (``A_i x > H_i = max_{good y} A_i y``), the cut is along the normal where it sticks out
    furthest relative to the step, to ``max(H_i, A_i x - step_i)``: no good state is lost.
    Otherwise the cut ``A_i x - step_i`` that loses the fewest good states is taken.

    :param bad_proj: ``A x`` of the bad states [nb, k].
    :param good_proj: ``A y`` of the good states [ng, k].
    :returns: (cut offsets [nb], chosen facet [nb]).
    """
    nb = len(bad_proj)
    cuts = bad_proj - step[None, :]
    lost = np.empty_like(cuts)
    for i in range(cuts.shape[1]):  # k facets, vectorised over states
        srt = np.sort(good_proj[:, i])
        lost[:, i] = len(srt) - np.searchsorted(srt, cuts[:, i], side="right")
    cheapest = lost.argmin(axis=1)
    if len(good_proj) == 0:
        return cuts[np.arange(nb), cheapest], cheapest
    H = good_proj.max(axis=0)
    excess = (bad_proj - H[None, :]) / step[None, :]
    outward = excess.argmax(axis=1)
    sticks_out = excess[np.arange(nb), outward] > 0
    choice = np.where(sticks_out, outward, cheapest)
    cut = np.where(sticks_out, np.maximum(H[choice], cuts[np.arange(nb), choice]), cuts[np.arange(nb), choice])
    return cut, choice


def shrink_to_invariant(
    system,
    A: np.ndarray,
    b: np.ndarray | None = None,
    config: SynthesisConfig | None = None,
    progress: Callable[[dict], None] | None = None,
    deadline: float | None = None,
    extra_points: np.ndarray | None = None,
) -> SynthesisResult:
    """Shrink the template polytope ``{A x <= b}`` until every sampled state has margin.

    :param system: compiled system.
    :param A: template normals [k, n] (normalised here).
    :param b: starting offsets (default: the constraint box's support, i.e. ``P_0 ⊇ X``
        clipped to ``X`` by the box rows of the template).
    :param progress: called after each iteration with a dict (iteration, bad, volume proxy).
    :param deadline: ``time.monotonic()`` value after which the loop stops (not converged).
    :param extra_points: states tested in every iteration while they lie in the polytope
        (e.g. counterexamples the certifier found in an earlier candidate).
    """
    cfg = config or SynthesisConfig()
    rng = np.random.default_rng(cfg.seed)
    lo, hi = system.constraint_box_inner()
    # a relative 1e-9 inside X, so that P ⊆ X is provable through rounded LP bounds
    lo, hi = lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo)
    A = np.asarray(A, dtype=np.float64)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    b = initial_offsets(A, lo, hi) if b is None else np.asarray(b, dtype=np.float64).copy()
    A, b = normalize_rows(A, b)
    extent = initial_offsets(A, lo, hi) + initial_offsets(-A, lo, hi)  # width of X along each normal
    scale = hi - lo
    t0 = time.monotonic()
    history: list[dict] = []
    converged = False
    min_margin = -np.inf
    it = 0
    clean = 0
    for it in range(1, cfg.max_iters + 1):
        P = HPolytope(A, b)
        try:
            center, radius = P.chebyshev_center()
        except (EmptySetError, LPFailedError):  # LPFailedError: a sliver at the LP's tolerances, no room left
            radius = -1.0
        if radius <= 0:
            return SynthesisResult(A=A, b=b, iterations=it, converged=False, min_margin=min_margin,
                                   time_s=time.monotonic() - t0, history=history, empty=True)
        pts = [P.sample(cfg.n_interior, rng), boundary_samples(P, center, cfg.n_boundary, rng, scale)]
        nb0, nb1 = len(pts[0]), len(pts[0]) + len(pts[1])  # the boundary samples' slice
        if extra_points is not None and len(extra_points):
            pts.append(extra_points[P.contains(extra_points)])
        pts = np.vstack(pts)
        s, _ = robust_margins(system, A, b, pts)
        bad = s < cfg.margin
        if not bad.any() and cfg.refine_keep > 0:
            V = vertex_samples(P, center)
            sv = robust_margins(system, A, b, V)[0] if len(V) else np.zeros(0)
            Xr, sr = refine_boundary(system, P, center, np.vstack([pts[nb0:nb1], V]), np.r_[s[nb0:nb1], sv],
                                     rng, scale, cfg.refine_keep, cfg.refine_rounds, cfg.refine_draws)
            pts, s = np.vstack([pts, V, Xr]), np.r_[s, sv, sr]
            bad = s < cfg.margin
        min_margin = float(s.min())
        info = {"iteration": it, "bad": int(bad.sum()), "min_margin": min_margin, "time_s": time.monotonic() - t0}
        history.append(info)
        if progress:
            progress(info)
        clean = clean + 1 if not bad.any() else 0
        if clean >= cfg.confirm:
            converged = True
            break
        if not bad.any():
            continue
        cut, choice = _cheapest_cuts(pts[bad] @ A.T, pts[~bad] @ A.T, cfg.step * extent)
        new_b = b.copy()
        np.minimum.at(new_b, choice, cut)
        b = new_b
        if deadline is not None and time.monotonic() > deadline:
            break
    return SynthesisResult(A=A, b=b, iterations=it, converged=converged, min_margin=min_margin,
                           time_s=time.monotonic() - t0, history=history)
