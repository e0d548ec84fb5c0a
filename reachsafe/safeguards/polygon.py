"""m = 2: the safe action set as a polygon, in closed form and loop-free (structure passes, no gradient).

Rows ``g_i . a <= h_i`` (``G [B, M, 2]``, ``h [B, M]``; zero rows with a huge ``h`` are padding and
bound nothing).  Row i defines the line ``L_i = {a : n_i . a = e_i}`` (``n_i = g_i / |g_i|``,
``e_i = h_i / |g_i|``), parametrised as ``a = e_i n_i + s t_i`` with the unit tangent
``t_i = (-n_i2, n_i1)``.  Row j restricts the parameter to ``s q_ij <= r_ij``::

    q_ij = n_j . t_i = n_i x n_j,        r_ij = e_j - e_i (n_i . n_j)

so ``L_i ∩ S`` is the segment ``[s_lo_i, s_hi_i]``, ``s_lo_i = max_{q_ij < 0} r_ij / q_ij`` (attained by
row ``j_lo_i``), ``s_hi_i = min_{q_ij > 0} r_ij / q_ij`` (row ``j_hi_i``); it is empty if
``s_lo_i > s_hi_i`` or a parallel row (``q_ij = 0``) has ``r_ij < 0``.  The boundary of ``S`` is the
union of the non-empty segments; their end points are the vertices (all pairwise intersections
of rows that lie in ``S``, found without enumerating pairs explicitly).

Everything is written with the two coordinates as separate tensors and masks as arithmetic
factors: on a CPU, ``torch.where``, reductions over a last axis of length 2 and batched 2x2
matrix products cost 10-30 elementwise operations each.

* :func:`project_polygon` — the exact Euclidean projection where the clamp to the box is not
  feasible: the nearest point of each facet row's segment, the one whose KKT multipliers are
  all non-negative (module :mod:`reachsafe.safeguards.projection`).
* :func:`edge_rows` — the polygon's edges (non-empty, non-repeated segments) and the rows that
  end them, for the centroid of the ray mask (:mod:`reachsafe.safeguards.raymask`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .actionset import _BIG, Tolerances

__all__ = ["Arena", "Lines", "lines", "segment_bounds", "project_polygon", "edge_rows"]


class Lines:
    """Unit normals ``nx, ny [B, M]``, offsets ``e [B, M]``, norms ``gn`` and ``ok [B, M]`` (|g| above ``parallel``).

    Rows with ``|g| <= parallel`` (padding) get the zero normal and ``e = h``: they bound nothing.
    """

    def __init__(self, G: Tensor, h: Tensor, tol: Tolerances) -> None:
        gx, gy = G[..., 0], G[..., 1]
        gn = torch.hypot(gx, gy)
        self.ok = gn > tol.parallel
        inv = 1.0 / torch.where(self.ok, gn, 1.0)
        inv = inv * self.ok
        self.nx, self.ny = gx * inv, gy * inv
        self.e = torch.where(self.ok, h * inv, h)
        self.gn = gn


def lines(G: Tensor, h: Tensor, tol: Tolerances) -> Lines:
    """:class:`Lines` of the rows ``G [B, M, 2]``, ``h [B, M]``."""
    return Lines(G, h, tol)


_SCALARS: dict[tuple, Tensor] = {}


def _scalar(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A cached 0-d tensor (``torch.where(..., out=...)`` needs tensor operands)."""
    key = (value, dtype, device)
    t = _SCALARS.get(key)
    if t is None:
        t = _SCALARS[key] = torch.tensor(value, dtype=dtype, device=device)
    return t


class Arena:
    """Scratch buffers reused from call to call (``out=`` targets of the ``[B, I, M]`` temporaries).

    Freshly allocated arrays of a few hundred kB are returned to the operating system when freed
    and page-fault on every 4 kB when touched again, which cost more than the arithmetic on them.
    One arena per safeguard; buffers grow to the largest batch seen.
    """

    def __init__(self) -> None:
        self._bufs: dict[tuple, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        n = 1
        for d in shape:
            n *= d
        key = (name, dtype, device)
        buf = self._bufs.get(key)
        if buf is None or buf.numel() < n:
            buf = torch.empty(max(n, 1), dtype=dtype, device=device)
            self._bufs[key] = buf
        return buf[:n].view(shape)


def segment_bounds(L: Lines, I: int, tol: Tolerances, same_line: bool = False,
                   arena: Arena | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """``s_lo, s_hi, j_lo, j_hi, valid`` (each ``[B, I]``) of the segments of the first ``I`` rows.

    All M rows bound them (module docstring).  Rows that are not ``ok`` (zero, padding) bound
    nothing and have no segment.  A row never bounds its own segment (``r_ii = e_i (1 - |n_i|^2)``
    is zero up to float64 rounding, far below ``tol.geom``).  With ``same_line``, also ``[B, I, M]``
    bool: row j has the same line as row i, on the same side (else None).  ``arena``: scratch buffers
    for the ``[B, I, M]`` temporaries (the returned ``same`` lives in it).
    """
    nx, ny, e = L.nx, L.ny, L.e
    B, M = nx.shape
    dt, dev = nx.dtype, nx.device
    nxi, nyi, ei = nx[:, :I, None], ny[:, :I, None], e[:, :I, None]
    nxj, nyj, ej = nx[:, None, :], ny[:, None, :], e[:, None, :]
    shape = (B, I, M)

    def buf(name: str, dtype: torch.dtype = dt) -> Tensor | None:
        return None if arena is None else arena.get(name, shape, dtype, dev)

    q = torch.mul(nxi, nyj, out=buf("q"))
    q.addcmul_(nyi.expand(shape), nxj, value=-1.0)  # q_ij = n_i x n_j
    cc = torch.mul(nxi, nxj, out=buf("cc"))
    cc.addcmul_(nyi.expand(shape), nyj)  # n_i . n_j
    r = torch.mul(ei, cc, out=buf("r")).neg_().add_(ej)  # e_j - e_i (n_i . n_j)
    up = torch.gt(q, tol.parallel, out=buf("up", torch.bool))
    dn = torch.lt(q, -tol.parallel, out=buf("dn", torch.bool))
    ratio = torch.div(r, q, out=buf("ratio"))  # +-inf or nan where q = 0: masked out below
    big = _scalar(_BIG, dt, dev)
    s_hi, j_hi = torch.where(up, ratio, big, out=buf("w1")).min(-1)
    s_lo, j_lo = torch.where(dn, ratio, -big, out=buf("w2")).max(-1)
    par = torch.logical_or(up, dn, out=buf("par", torch.bool)).logical_not_()
    # a parallel row that the whole line violates empties the segment (padding rows: r = +_BIG)
    parallel_bad = torch.lt(r, -tol.geom, out=buf("bad", torch.bool)).logical_and_(par).any(-1)
    valid = L.ok[:, :I] & ~parallel_bad & (s_lo <= s_hi + tol.geom)
    same = None
    if same_line:
        same = torch.le(torch.abs(r, out=buf("absr")), tol.geom, out=buf("same", torch.bool))
        same.logical_and_(par).logical_and_(torch.gt(cc, 0.0, out=buf("ccpos", torch.bool)))
    return s_lo, s_hi, j_lo, j_hi, valid, same


def _cross(ux: Tensor, uy: Tensor, vx: Tensor, vy: Tensor) -> Tensor:
    return ux * vy - uy * vx


@torch.no_grad()
def project_polygon(a: Tensor, G: Tensor, h: Tensor, K: int, tol: Tolerances,
                    arena: Arena | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Exact projection of ``a [B, 2]`` onto ``{z : G z <= h}`` for states whose box clamp is infeasible.

    ``G [B, M, 2]``: K facet rows first, the box after.  If the clamp of ``a`` to the box violates a
    facet row, the projection has a facet row active, so it is the nearest point ``z_i`` of the
    segment of one of the K facet rows: ``z_i = e_i n_i + clamp(t_i . a, s_lo_i, s_hi_i) t_i``,
    active rows ``{i}`` or ``{i, j}`` (j the row ending the segment there).  The nearest candidate is
    chosen by ``|z_i|^2 - 2 a . z_i`` (``|z_i - a|^2`` without the common ``|a|^2``, so the comparison
    keeps its precision for huge ``a``); its multipliers solve ``a - z = lam_i g_i + lam_j g_j``
    (Cramer's rule), and ``ok`` is the KKT check: all multipliers ``>= -1e-10 (1 + |a|)`` (the
    candidate is then the projection: every ``z_i`` is feasible, and KKT is sufficient).

    Returns ``z [B, 2]``, ``idx [B, 2]`` (active rows, -1 empty), ``lam [B, 2]``, ``ok [B]``.
    """
    L = Lines(G, h, tol)
    s_lo, s_hi, j_lo, j_hi, valid, _ = segment_bounds(L, K, tol, arena=arena)
    nx, ny, e = L.nx[:, :K], L.ny[:, :K], L.e[:, :K]
    ax, ay = a[:, :1], a[:, 1:]
    sa = nx * ay - ny * ax  # t_i . a
    s = torch.minimum(torch.maximum(sa, s_lo), s_hi)
    zx, zy = e * nx - s * ny, e * ny + s * nx
    d = torch.where(valid, zx * (zx - 2 * ax) + zy * (zy - 2 * ay), float("inf"))
    best = d.argmin(-1, keepdim=True)
    b = a.shape[0]
    # the chosen segment's values: one stack and one gather (each gather is a few microseconds of fixed cost)
    chosen = torch.stack([sa, s_lo, s_hi, zx, zy, nx, ny, L.gn[:, :K]], 1).gather(2, best.unsqueeze(1).expand(b, 8, 1))
    sb, s_lo_b, s_hi_b, zxb, zyb, nxi, nyi, gn_i = chosen.squeeze(-1).unbind(1)
    j_lo_b, j_hi_b = torch.stack([j_lo, j_hi], 1).gather(2, best.unsqueeze(1).expand(b, 2, 1)).squeeze(-1).unbind(1)
    i = best.squeeze(-1)
    z = torch.stack([zxb, zyb], -1)
    at_lo, at_hi = sb < s_lo_b, sb > s_hi_b
    two = at_lo | at_hi
    j = torch.where(at_lo, j_lo_b, torch.where(at_hi, j_hi_b, -1))
    # multipliers of the unit normals: a - z = mu_i n_i + mu_j n_j
    ni = torch.stack([nxi, nyi], -1)
    jc = j.clamp_min(0).unsqueeze(-1)
    nxj, nyj, gn_j = torch.stack([L.nx, L.ny, L.gn], 1).gather(2, jc.unsqueeze(1).expand(b, 3, 1)).squeeze(-1).unbind(1)
    nj = torch.stack([nxj, nyj], -1)
    w = a - z
    det = torch.where(two, ni[:, 0] * nj[:, 1] - ni[:, 1] * nj[:, 0], 1.0)
    mu_i = torch.where(two, (w[:, 0] * nj[:, 1] - w[:, 1] * nj[:, 0]) / det, (w * ni).sum(-1))
    mu_j = torch.where(two, (ni[:, 0] * w[:, 1] - ni[:, 1] * w[:, 0]) / det, 0.0)
    ok = valid.any(-1) & (torch.minimum(mu_i, mu_j) >= -1e-10 * (1.0 + a.abs().amax(-1)))
    lam = torch.stack([mu_i / gn_i, mu_j / torch.where(two, gn_j, 1.0)], -1).clamp_min(0.0)
    return z, torch.stack([i, j], -1), lam, ok


@torch.no_grad()
def edge_rows(
    G: Tensor, h: Tensor, tol: Tolerances, arena: Arena | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The polygon's edges: ``edge [B, M]`` (row i's segment is non-empty and no earlier row has the
    same line), and for each row the rows ``j_lo, j_hi [B, M]`` that end its segment; plus
    ``valid [B, M]`` (non-empty segments, repeated lines included)."""
    L = Lines(G, h, tol)
    M = G.shape[1]
    s_lo, s_hi, j_lo, j_hi, valid, same = segment_bounds(L, M, tol, same_line=True, arena=arena)
    # the same line twice (same normal, same offset): only the first counts as an edge
    earlier = torch.ones(M, M, dtype=torch.bool, device=G.device).tril(-1)  # j < i
    assert same is not None  # asked for with same_line=True
    edge = valid & ~same.logical_and_(earlier).logical_and_(valid[:, None, :]).any(-1)
    return edge, j_lo, j_hi, valid
