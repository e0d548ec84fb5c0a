"""Batched closed-form geometry of the safe action set ``S(x) = {a : G a <= h}`` for m <= 2.

Every function works on a batch of B independent constraint systems ``G [B, M, m]``,
``h [B, M]`` (the M rows already include the action box U), in any float dtype, on any
device, differentiably (torch autograd), without loops over the batch.

m = 1 — ``S`` is an interval::

    lo = max({-inf} u {h_i / g_i : g_i < 0}),   hi = min({+inf} u {h_i / g_i : g_i > 0})

m = 2 — ``S`` is a convex polygon.  Each row i defines the line ``L_i = {a : n_i . a = e_i}``
(``n_i = g_i / |g_i|``, ``e_i = h_i / |g_i|``), parametrised as ``a = p_i + s t_i`` with
``p_i = e_i n_i`` and the unit tangent ``t_i = (-n_i2, n_i1)``.  Row j restricts the
parameter to ``s q_ij <= r_ij`` with ``q_ij = n_j . t_i`` and ``r_ij = e_j - n_j . p_i``, so
``L_i ∩ S`` is the segment ``[s_lo_i, s_hi_i]``::

    s_lo_i = max_{q_ij < 0} r_ij / q_ij,      s_hi_i = min_{q_ij > 0} r_ij / q_ij

(empty if ``s_lo_i > s_hi_i`` or some parallel row has ``r_ij < 0``).  The boundary of ``S``
is the union of the non-empty segments, its vertices are their end points.  This costs
O(M^2) per state; callers keep M small (see :mod:`reachsafe.safeguards.facets`).

Gradients: the formulas are evaluated in torch, so autograd returns the exact Jacobian of
the piecewise-smooth map that is selected (projection onto a line: ``I - n n^T``; a vertex:
0 with respect to the action, its exact dependence on ``G, h`` with respect to the state).
Every masked-out branch is computed from finite placeholders, so no NaN can leak into the
gradient through ``torch.where``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["rowdot", "Segments", "interval", "segments", "vertices", "polygon_centre", "interval_centre",
           "ccw_vertex_rows", "centroid_from_rows",
           "ray_exit", "box_rows", "feasible", "Tolerances", "tolerances"]

_BIG = 1e30  # "no bound" placeholder: finite, so 0 * _BIG = 0 in every backward pass
_SMALL = 4096  # rowdot: inputs with at most this many entries use one multiply and one sum


def rowdot(X: Tensor, v: Tensor) -> Tensor:
    """``sum_j X[..., j] v[..., j]`` over a short last axis (m, p <= 2 here), ``X [B, k, q]``.

    ``v`` is ``[q]`` or ``[B, q]``.  Large inputs are written out per column because torch's
    reductions over a last axis of length 2 are several times slower than two fused
    elementwise ops; small ones (a training batch of a few environments), where the fixed
    cost per operation and per autograd node dominates, take the two-operation ``(X v).sum``.
    """
    if v.dim() == 2:
        v = v.unsqueeze(-2)
    if X.numel() <= _SMALL:
        return (X * v).sum(-1)
    out = X[..., 0] * v[..., 0]
    for j in range(1, X.shape[-1]):
        out = out + X[..., j] * v[..., j]
    return out


@dataclass(frozen=True)
class Tolerances:
    """Numerical tolerances for one dtype.

    ``tighten``: every row of ``G a <= h`` is shifted to ``h - tighten`` (state rows are
    normalised, so this is a distance in state space; for the box rows, in action space) so
    that the returned action keeps a margin larger than the dtype's rounding error.
    ``geom``: slack accepted when deciding that a segment/interval is non-empty.
    ``parallel``: ``|q_ij|`` below this counts as parallel; ``|g|`` below it as an
    action-independent row.  ``centre``: ``|a - c|`` below this is the ray-mask centre case.
    """

    tighten: float
    geom: float
    parallel: float
    centre: float


def tolerances(dtype: torch.dtype) -> Tolerances:
    """Default :class:`Tolerances` for ``dtype`` (float64 vs. lower precision)."""
    if dtype == torch.float64:
        return Tolerances(tighten=1e-9, geom=1e-12, parallel=1e-12, centre=1e-12)
    return Tolerances(tighten=1e-5, geom=1e-7, parallel=1e-6, centre=1e-6)


_BOX_CACHE: dict[tuple, tuple[Tensor, Tensor]] = {}


def box_rows(lo: Tensor, hi: Tensor, batch: int, tighten: float) -> tuple[Tensor, Tensor]:
    """Rows of the action box ``lo <= a <= hi`` as ``G [B, 2m, m]``, ``h [B, 2m]`` (shrunk by ``tighten``).

    ``G = [I; -I]``, ``h = [hi; -lo] - tighten``, expanded over the batch (read-only views).
    The few distinct boxes (one per safeguard, dtype and tightening) are built once and cached.
    """
    key = None
    if not (lo.requires_grad or hi.requires_grad):
        key = (tuple(lo.tolist()), tuple(hi.tolist()), lo.dtype, lo.device, float(tighten))
        hit = _BOX_CACHE.get(key)
        if hit is not None:
            return hit[0].expand(batch, -1, -1), hit[1].expand(batch, -1)
    m = lo.shape[0]
    eye = torch.eye(m, dtype=lo.dtype, device=lo.device)
    G1 = torch.cat([eye, -eye], 0).unsqueeze(0)
    h1 = (torch.cat([hi, -lo], 0) - tighten).unsqueeze(0)
    if key is not None and len(_BOX_CACHE) < 64:
        _BOX_CACHE[key] = (G1, h1)
    return G1.expand(batch, -1, -1), h1.expand(batch, -1)


def feasible(G: Tensor, h: Tensor, a: Tensor) -> Tensor:
    """``all_i (G a)_i <= h_i`` per state: ``G [B, M, m]``, ``h [B, M]``, ``a [B, m]`` -> [B] bool."""
    return (rowdot(G, a) <= h).all(-1)


# ------------------------------------------------------------------------ m = 1
def interval(G: Tensor, h: Tensor, tol: Tolerances) -> tuple[Tensor, Tensor, Tensor]:
    """``S = [lo, hi]`` for m = 1.  ``G [B, M, 1]``, ``h [B, M]`` -> ``lo, hi [B]``, ``empty [B]``.

    Rows with ``|g| <= tol.parallel`` do not bound ``a``; they make ``S`` empty if ``h < -tol.geom``.
    """
    g = G[..., 0]
    pos, neg = g > tol.parallel, g < -tol.parallel
    g_safe = torch.where(pos | neg, g, torch.ones_like(g))
    ratio = h / g_safe
    hi = torch.where(pos, ratio, torch.full_like(ratio, _BIG)).min(-1).values
    lo = torch.where(neg, ratio, torch.full_like(ratio, -_BIG)).max(-1).values
    bad_row = (~(pos | neg)) & (h < -tol.geom)
    empty = (lo > hi + tol.geom) | bad_row.any(-1)
    return lo, hi, empty


def interval_centre(lo: Tensor, hi: Tensor) -> Tensor:
    """Midpoint ``(lo + hi) / 2`` as ``[B, 1]``: the Chebyshev centre of the interval."""
    return (0.5 * (lo + hi)).unsqueeze(-1)


# ------------------------------------------------------------------------ m = 2
@dataclass
class Segments:
    """``L_i ∩ S`` for every row i: points ``p + s t`` with ``s`` in ``[s_lo, s_hi]``.

    Shapes: ``p, t [B, M, 2]``; ``s_lo, s_hi [B, M]``; ``valid [B, M]`` (segment non-empty);
    ``n [B, M, 2]`` unit normals; ``q, r [B, M, M]`` as in the module docstring.
    Walking from ``s_lo`` to ``s_hi`` goes counter-clockwise round the polygon.
    """

    p: Tensor
    t: Tensor
    s_lo: Tensor
    s_hi: Tensor
    valid: Tensor
    n: Tensor
    q: Tensor
    r: Tensor
    parallel: float
    geom: float

    @property
    def first(self) -> Tensor:
        """[B, M] bool: valid and not a repeat of an earlier row's line (same line, same side)."""
        same = (self.q.abs() <= self.parallel) & (self.r.abs() <= self.geom) & ((self.n @ self.n.transpose(-1, -2)) > 0)
        M = self.q.shape[-1]
        earlier = torch.ones(M, M, dtype=torch.bool, device=self.q.device).tril(-1)  # j < i
        return self.valid & ~(same & earlier).any(-1)

    @property
    def empty(self) -> Tensor:
        """[B] bool: no segment is non-empty, i.e. ``S`` is empty."""
        return ~self.valid.any(-1)


def segments(G: Tensor, h: Tensor, tol: Tolerances) -> Segments:
    """The boundary segments of the polygon ``{a : G a <= h}`` (m = 2; see module docstring)."""
    gn = G.norm(dim=-1)
    ok = gn > tol.parallel
    gs = torch.where(ok, gn, torch.ones_like(gn))
    n = torch.where(ok.unsqueeze(-1), G / gs.unsqueeze(-1), torch.zeros_like(G))
    e = h / gs
    t = torch.stack([-n[..., 1], n[..., 0]], -1)
    p = e.unsqueeze(-1) * n
    q = t @ n.transpose(-1, -2)  # q[b, i, j] = n_j . t_i
    r = e.unsqueeze(-2) - p @ n.transpose(-1, -2)  # r[b, i, j] = e_j - n_j . p_i
    up, down = q > tol.parallel, q < -tol.parallel
    par = ~(up | down)
    ratio = r / q.masked_fill(par, 1.0)
    s_hi = ratio.masked_fill(~up, _BIG).min(-1).values
    s_lo = ratio.masked_fill(~down, -_BIG).max(-1).values
    # a row is never "parallel and violated" by itself: r_ii = e_i - e_i |n_i|^2 is zero up to
    # rounding, which in float32 can fall below -tol.geom and would drop a genuine edge
    M = G.shape[-2]
    not_self = ~torch.eye(M, dtype=torch.bool, device=G.device)
    parallel_bad = (par & not_self & (r < -tol.geom)).any(-1)
    valid = ok & ~parallel_bad & (s_lo <= s_hi + tol.geom)
    return Segments(p=p, t=t, s_lo=s_lo, s_hi=s_hi, valid=valid, n=n, q=q, r=r, parallel=tol.parallel, geom=tol.geom)


def vertices(seg: Segments) -> tuple[Tensor, Tensor]:
    """End points of all segments: ``V [B, 2M, 2]`` and ``mask [B, 2M]`` (end points of valid segments)."""
    v_lo = seg.p + seg.s_lo.unsqueeze(-1) * seg.t
    v_hi = seg.p + torch.maximum(seg.s_lo, seg.s_hi).unsqueeze(-1) * seg.t
    V = torch.cat([v_lo, v_hi], -2)
    mask = torch.cat([seg.valid, seg.valid], -1)
    V = torch.where(mask.unsqueeze(-1), V, torch.zeros_like(V))
    return V, mask


def polygon_centre(seg: Segments, tiny: float = 1e-12) -> Tensor:
    """Area centroid of the polygon, ``[B, 2]``; the vertex average if its area is below ``tiny``.

    Each counter-clockwise edge ``u -> v`` (a non-repeated segment) contributes independently of
    the others (no vertex ordering needed), with ``o`` the vertex average as origin::

        2 area = sum (u - o) x (v - o),    centroid = o + sum ((u - o) + (v - o)) ((u - o) x (v - o)) / (6 area)

    The centroid of a convex polygon with an interior is strictly inside it and moves
    continuously with its facets (unlike the vertex average, which jumps when a vertex
    appears).  For a point or a segment (area 0) the average of the end points is used.
    Empty polygons give 0 (callers check :attr:`Segments.empty`).
    """
    V, mask = vertices(seg)
    w = mask.to(V.dtype)
    o = (V * w.unsqueeze(-1)).sum(-2) / w.sum(-1, keepdim=True).clamp_min(1.0)
    M = seg.p.shape[-2]
    u, v = V[:, :M] - o.unsqueeze(-2), V[:, M:] - o.unsqueeze(-2)
    cross = (u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]) * seg.first.to(V.dtype)
    area2 = cross.sum(-1)
    big = area2 > 2 * tiny
    den = torch.where(big, 3.0 * area2, torch.ones_like(area2))
    centroid = o + ((u + v) * cross.unsqueeze(-1)).sum(-2) / den.unsqueeze(-1)
    return torch.where(big.unsqueeze(-1), centroid, o)


@torch.no_grad()
def ccw_vertex_rows(seg: Segments, min_turn: float = 1e-9) -> tuple[Tensor, Tensor, Tensor]:
    """The polygon's vertices as pairs of rows, counter-clockwise: ``idx_a, idx_b [B, K]``, ``regular [B]``.

    The edges (non-repeated non-empty segments) sorted by the angle of their outward normal
    go round a convex polygon counter-clockwise, and consecutive edges meet in a vertex::

        v_k = L_{e_k} ∩ L_{e_(k+1 mod K)}

    States with fewer than ``K_max`` edges repeat their last vertex ``v_(K-1)`` (zero-length
    edges, which add nothing to the shoelace sums).  ``regular`` is False where the polygon has
    fewer than three edges or two consecutive normals turn by less than ``min_turn``
    (``n_a x n_b``): an ill-conditioned vertex, for which callers use the general formulas.
    A regular structure can still have area 0 (a segment whose end caps are edges);
    :func:`centroid_from_rows` returns the vertex mean then.  Structure only: no gradient is recorded.
    """
    edge = seg.first
    B, M = edge.shape
    ang = torch.atan2(seg.n[..., 1], seg.n[..., 0]).masked_fill(~edge, float("inf"))
    order = ang.argsort(-1)
    K = edge.sum(-1)
    Kmax = max(int(K.max()) if B else 1, 1)
    Kc = K.clamp_min(1).unsqueeze(-1)
    pos = torch.minimum(torch.arange(Kmax, device=order.device).expand(B, Kmax), Kc - 1)
    idx_a, idx_b = order.gather(1, pos), order.gather(1, (pos + 1) % Kc)
    na = seg.n.gather(1, idx_a.unsqueeze(-1).expand(B, Kmax, 2))
    nb = seg.n.gather(1, idx_b.unsqueeze(-1).expand(B, Kmax, 2))
    turn = na[..., 0] * nb[..., 1] - na[..., 1] * nb[..., 0]
    regular = (K >= 3) & (turn > min_turn).all(-1)
    return idx_a, idx_b, regular


def centroid_from_rows(G: Tensor, h: Tensor, idx_a: Tensor, idx_b: Tensor, tiny: float = 1e-12) -> Tensor:
    """Area centroid ``[B, 2]`` of the polygon whose k-th vertex solves rows ``idx_a[k]``, ``idx_b[k]``.

    ``v_k = [g_a; g_b]^{-1} [h_a; h_b]`` (one batched 2x2 solve), then the shoelace formulas
    about the vertex mean ``o`` with ``u_k = v_k - o``::

        2 area = sum_k u_k x u_(k+1),     centroid = o + sum_k (u_k + u_(k+1)) (u_k x u_(k+1)) / (6 area)

    The same centroid as :func:`polygon_centre` for a regular polygon
    (:func:`ccw_vertex_rows`), and the vertex mean ``o`` where ``2 area <= 2 tiny``, differentiable in ``G`` and ``h`` with far fewer autograd
    nodes (the vertex structure is fixed by the no-grad pass).
    """
    B, K = idx_a.shape
    ga = G.gather(1, idx_a.unsqueeze(-1).expand(B, K, 2))
    gb = G.gather(1, idx_b.unsqueeze(-1).expand(B, K, 2))
    V = torch.linalg.solve(torch.stack([ga, gb], -2), torch.stack([h.gather(1, idx_a), h.gather(1, idx_b)], -1))
    o = V.mean(-2, keepdim=True)
    u = V - o
    w = u.roll(-1, 1)
    cross = u[..., 0] * w[..., 1] - u[..., 1] * w[..., 0]
    area2 = cross.sum(-1, keepdim=True)
    big = area2 > 2 * tiny
    den = torch.where(big, 3.0 * area2, torch.ones_like(area2))
    o = o.squeeze(-2)
    return torch.where(big, o + ((u + w) * cross.unsqueeze(-1)).sum(-2) / den, o)


def ray_exit(G: Tensor, h: Tensor, c: Tensor, d: Tensor, tiny: float) -> Tensor:
    """Distance from ``c`` along unit ``d`` to the boundary of ``{a : G a <= h}``, ``[B]``::

        t = min_{i : g_i . d > 0} (h_i - g_i . c) / (g_i . d)

    ``G [B, M, m]``, ``h [B, M]``, ``c, d [B, m]``.  Rows with ``g_i . d <= tiny`` never bound the ray.
    """
    gd = rowdot(G, d)
    slack = h - rowdot(G, c)
    up = gd > tiny
    gd_safe = torch.where(up, gd, torch.ones_like(gd))
    return torch.where(up, slack / gd_safe, torch.full_like(gd, _BIG)).min(-1).values
