"""Ray mask: scale the action along the ray from a safe centre (linear or tanh profile).

With a centre ``c(x)`` strictly inside ``S(x)``, an action ``a`` is written as
``a = c + t d`` (``t = |a - c|``, unit ``d``).  Along ``d`` the box U ends at distance ``t_U``
and ``S(x)`` at ``t_S`` (both closed form: the first row the ray meets)::

    t_K = min_{i : g_i . d > 0} (h_i - g_i . c) / (g_i . d)

and with ``r = min(t, t_U)`` (actions outside U are first pulled back to U along the ray)::

    linear:  a_s = c + d r t_S / t_U
    tanh:    a_s = c + d t_S tanh(r / t_S) / tanh(t_U / t_S)

Both map ``[0, t_U]`` monotonically onto ``[0, t_S]``, so ``a_s`` is in ``S(x)``.

Centre (strictly inside ``S(x)`` when it has an interior, continuous in ``x``):
m = 1 the midpoint of ``S = [lo, hi]``; m = 2 the area centroid of the polygon ``S(x)``; m >= 3
the weighted analytic centre (:mod:`reachsafe.safeguards.centre`, Newton's method with an
exact implicit derivative).  A state whose analytic centre cannot be found (``S(x)`` without
interior) gets NaN, which the float64 safety net replaces by a verified action and counts.

Evaluation.  m <= 2 (:mod:`reachsafe.safeguards.raytail`): structure and value without a graph,
then one autograd node with the closed-form Jacobian; the rows that matter are m = 1 the two
that bound the interval, m = 2 every edge's row of the polygon (a non-empty, non-repeated
boundary segment, :func:`~reachsafe.safeguards.polygon.edge_rows`) and the two rows that end it,
and the exit row of ``S(x)`` along ``d``.  The polygon's vertices are 2x2 solves of an edge row and
an end row, its centroid the shoelace sums over the edges::

    2 area = sum_e u_e x v_e,      centroid = o + sum_e (u_e + v_e) (u_e x v_e) / (6 area)

(``u_e, v_e``: the edge's end points minus any fixed ``o``, here the vertex mean: the sums do not
depend on ``o`` for a closed polygon).  m >= 3: the centre's rows are all rows; autograd on the
implicit-derivative formula and the mask.

Special cases, handled explicitly so that values and gradients stay finite:

* ``t <= tol.centre`` (the action is the centre): ``a_s = c + (a - c) phi'(0)``, with the
  slope ``phi'(0)`` of the profile along the fixed direction ``e_1`` (``t_S / t_U`` linear,
  ``1 / tanh(t_U / t_S)`` tanh): value ``c``, finite gradient.
* ``t_S ~ 0`` (``S(x)`` a point or a sliver): ``a_s -> c`` with zero gradient in ``a``.
* a polygon of area ~ 0 (a segment or a point): the centre is the mean of its edges' end points.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .actionset import _BIG, Tolerances, tolerances
from .base import Chunk, Safeguard
from .centre import analytic_centre, differentiable_centre, row_weights
from .raytail import (RowsRayTail, StateRayTail, _centre_rows, _centroid, _centroid_vjp, interval_ray,
                      interval_ray_vjp, ray_plan)

__all__ = ["RayMaskSafeguard", "TanhRayMaskSafeguard", "ray_mask", "safe_centre"]

RowsAt = Callable[..., "tuple[Tensor, Tensor]"]


def _gather(G: Tensor, h: Tensor) -> RowsAt:
    """``rows_at(loc, sub=None)`` for explicit rows ``G [B, M, m]``, ``h [B, M]`` (gradients flow into them)."""
    m = G.shape[-1]

    def rows_at(loc: Tensor, sub: Tensor | None = None) -> tuple[Tensor, Tensor]:
        Gs, hs = (G, h) if sub is None else (G[sub], h[sub])
        return Gs.gather(1, loc.unsqueeze(-1).expand(*loc.shape, m)), hs.gather(1, loc)

    return rows_at


def _centre(G: Tensor, h: Tensor, rows_at: RowsAt, tol: Tolerances, box_last: bool = False) -> Tensor:
    """The centre ``[B, m]`` of ``{a : G a <= h}`` (module docstring); structure from the float64 ``G, h``,
    values from ``rows_at``.  NaN where an analytic centre (m >= 3) does not exist.  ``box_last``: the
    last 2m rows are the box (always so for m >= 3; for m = 2 it enables a shortcut).

    m <= 2: the rows that fix the centre are those of the safeguard's ray tail
    (:func:`reachsafe.safeguards.raytail._centre_rows`), only their values come from ``rows_at``."""
    B, M, m = G.shape
    if m <= 2:
        with torch.no_grad():
            f, rows, w, _, _ = _centre_rows(G, h, tol, box_last)
        if m == 1:  # the midpoint of [lo, hi]: rows of the lower and upper bound
            Gq, hq = rows_at(rows)
            return 0.5 * (hq[:, :1] / Gq[:, :1, 0] + hq[:, 1:] / Gq[:, 1:, 0])
        return _polygon_centroid(h, rows_at, f, rows, w, tol)
    return _analytic(rows_at(torch.arange(M, device=G.device).expand(B, M)), G, h)


def _polygon_centroid(h: Tensor, rows_at: RowsAt, f: Tensor | None, rows: Tensor, w: Tensor | None,
                      tol: Tolerances) -> Tensor:
    """Area centroid ``[B, 2]`` of the polygon ``{a : G a <= h}`` from its edges (module docstring).

    ``f, rows, w``: the states with a polygon other than the box, each slot's edge row and the rows that
    end the edges ``[b, 3M]``, and the edge weights (:func:`~reachsafe.safeguards.raytail._centre_rows`).
    ``f`` is given only when the last four rows are the box ``[I; -I]`` (``box_last``): the other states
    (their remaining rows are all padding) have the box as their polygon and get its centre without the
    edge formula.
    """
    M = rows.shape[1] // 3

    def centroid(sub: Tensor | None) -> Tensor:
        Gq, hq = rows_at(rows, sub)
        return _Centroid.apply(Gq[:, :M], hq[:, :M], Gq[:, M:], hq[:, M:], w, tol.geom)

    if f is None:
        return centroid(None)
    box_centre = 0.5 * (h[:, -4:-2] - h[:, -2:]).detach()  # the box rows are constants: no gradient
    return box_centre if f.numel() == 0 else box_centre.index_put((f,), centroid(f))


class _Centroid(torch.autograd.Function):
    """Area centroid of a polygon from its edges with its closed-form backward (one autograd node).

    Inputs: edge rows ``Gi [b, M, 2]``, ``hi [b, M]``; end rows ``Gj [b, 2M, 2]``, ``hj [b, 2M]`` (edge e
    runs from the intersection of rows ``i_e, j_e`` to that of ``i_e, j_{M+e}``); edge weights
    ``w [b, M]``; ``tiny``.  Formulas: :func:`reachsafe.safeguards.raytail._centroid_vjp`.
    """

    @staticmethod
    def forward(ctx, Gi: Tensor, hi: Tensor, Gj: Tensor, hj: Tensor, w: Tensor, tiny: float) -> Tensor:
        C, ctx.saved = _centroid(Gi, hi, Gj, hj, w, tiny)
        return C

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gC: Tensor) -> tuple[Tensor | None, ...]:
        gix, giy, ghi, gjx, gjy, ghj = _centroid_vjp(ctx.saved, gC)
        return torch.stack([gix, giy], -1), ghi, torch.stack([gjx, gjy], -1), ghj, None, None


def _analytic(rows: tuple[Tensor, Tensor], G: Tensor, h: Tensor) -> Tensor:
    """Weighted analytic centre with its implicit derivative (rows: facets, then the box)."""
    Gg, hg = rows
    B, M, m = G.shape
    K = M - 2 * m
    hb = h[:, K:]
    lo, hi = -hb[:, m:], hb[:, :m]
    w = torch.cat([row_weights(Gg[:, :K], hg[:, :K], lo, hi) if K else Gg.new_zeros(B, 0),
                   torch.ones(B, 2 * m, dtype=G.dtype, device=G.device)], 1)
    with torch.no_grad():
        c_star, ok = analytic_centre(G, h, w.detach(), 0.5 * (lo + hi))
        c_star = torch.where(ok.unsqueeze(-1), c_star, 0.5 * (lo + hi))
    c = differentiable_centre(c_star, Gg, hg, w)
    return torch.where(ok.unsqueeze(-1), c, torch.full_like(c, float("nan")))


def safe_centre(G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
    """A point strictly inside ``{a : G a <= h}`` when it has an interior, ``[B, m]`` (module docstring).

    The last 2m rows must be the box ``[I; -I]``.  Float64, differentiable in ``G, h``.  NaN
    where an analytic centre (m >= 3) does not exist.
    """
    G64, h64 = G.to(torch.float64), h.to(torch.float64)
    return _centre(G64.detach(), h64.detach(), _gather(G64, h64), _tol64(tol)).to(G.dtype)


def _tol64(tol: Tolerances) -> Tolerances:
    """Float64 geometric tolerances, keeping ``tol.tighten``."""
    t64 = tolerances(torch.float64)
    return Tolerances(tighten=tol.tighten, geom=t64.geom, parallel=t64.parallel, centre=t64.centre)


def _profile(r: Tensor, t_S: Tensor, t_U: Tensor, mapping: str, tiny: float) -> tuple[Tensor, Tensor]:
    """``phi(r)`` and the slope ``phi'(0)`` of the radial profile."""
    t_U = t_U.clamp_min(tiny)
    if mapping == "linear":
        slope = t_S / t_U
        return r * slope, slope
    ts = t_S.clamp_min(tiny)  # t_S normally; the factor t_S / ts -> 0 as t_S -> 0 so that a_s -> c
    den = torch.tanh(t_U / ts)
    return t_S * torch.tanh(r / ts) / den, t_S / (ts * den)


def _mask(a: Tensor, G: Tensor, h: Tensor, rows_at: RowsAt, lo: Tensor, hi: Tensor, tol: Tolerances,
          mapping: str, box_last: bool = False) -> Tensor:
    """The ray mask in float64 (module docstring): ``a [B, m]`` float64; ``G, h`` the float64 rows
    without gradient (box rows last), ``rows_at`` the same rows with their graph."""
    B, m = a.shape
    c = _centre(G, h, rows_at, tol, box_last)
    diff = a - c
    with torch.no_grad():  # masks and the exit row: nothing to differentiate
        cd, dd = c.detach(), diff.detach()
        small = (dd * dd).sum(-1, keepdim=True) <= tol.centre ** 2
        e1 = torch.zeros(1, m, dtype=a.dtype, device=a.device)
        e1[0, 0] = 1.0
        dir0 = torch.where(small, e1, dd)
        dir0 = dir0 / dir0.norm(dim=-1, keepdim=True)
        gd = (G @ dir0.unsqueeze(-1)).squeeze(-1)
        slack = h - (G @ cd.unsqueeze(-1)).squeeze(-1)
        up = gd > tol.parallel
        e = torch.where(up, slack / torch.where(up, gd, torch.ones_like(gd)), torch.full_like(gd, _BIG)).argmin(-1)
    diff_safe = torch.where(small, e1, diff)
    t = diff_safe.norm(dim=-1, keepdim=True)
    d = diff_safe / t
    ge, he = rows_at(e.unsqueeze(-1))
    ge = ge[:, 0]
    t_S = ((he - (ge * c).sum(-1, keepdim=True)) / (ge * d).sum(-1, keepdim=True)).clamp_min(0.0)
    # exit from the (untightened) box U: the coordinate that reaches its bound first
    pos = d > tol.parallel
    neg = d < -tol.parallel
    bound = torch.where(pos, hi, lo)
    d_safe = torch.where(pos | neg, d, torch.ones_like(d))
    t_U = torch.where(pos | neg, (bound - c) / d_safe, torch.full_like(d, _BIG)).amin(-1, keepdim=True)
    t_S = torch.minimum(t_S, t_U)
    phi, slope = _profile(torch.minimum(t, t_U), t_S, t_U, mapping, tol.centre)
    return torch.where(small, c + diff * slope, c + d * phi)


def ray_mask(actions: Tensor, G: Tensor, h: Tensor, lo: Tensor, hi: Tensor, tol: Tolerances,
             mapping: str = "linear") -> Tensor:
    """Ray-mask ``actions [B, m]`` into ``{a : G a <= h}`` (rows include the box, last); U = [lo, hi].

    Computed in float64, returned in the dtype of ``actions``; differentiable in ``actions``,
    ``G`` and ``h``.
    """
    f64 = torch.float64
    G64, h64 = G.to(f64), h.to(f64)
    if G.shape[-1] <= 2:
        plan = ray_plan(actions.detach().to(f64), G64.detach(), h64.detach(), lo.to(f64), hi.to(f64), _tol64(tol),
                        mapping)
        return RowsRayTail.apply(actions, G64, h64, plan)
    out = _mask(actions.to(f64), G64.detach(), h64.detach(), _gather(G64, h64), lo.to(f64), hi.to(f64), _tol64(tol),
                mapping)
    return out.to(actions.dtype)


class RayMaskSafeguard(Safeguard):
    """Ray mask with the linear profile ``a_s = c + d r t_S / t_U`` (see module docstring)."""

    kind = "raymask"
    mapping = "linear"

    def centre(self, states: Tensor) -> Tensor:
        """The centre ``c(x)`` the mask uses, ``[B, m]`` (dtype of ``states``, differentiable)."""
        self._check_states(states)
        grad = torch.is_grad_enabled() and states.requires_grad
        outs = []
        for s in range(0, states.shape[0], self._chunk_size()):
            ch = self._prepare(states[s:s + self._chunk_size()], states.dtype, grad)
            outs.append(_centre(ch.G, ch.h, ch.rows_at, ch.tol64, box_last=True).to(states.dtype))
        return torch.cat(outs) if outs else states.new_zeros(0, self.system.m)

    def _map(self, actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
        lo, hi = self._cast(self.a_lo, actions), self._cast(self.a_hi, actions)
        return ray_mask(actions, G, h, lo, hi, tol, self.mapping)

    def _interval(self, a: Tensor, lo_s: Tensor, hi_s: Tensor, lo: Tensor, hi: Tensor, tol: Tolerances
                  ) -> tuple[Tensor, dict]:
        """m = 1: :func:`~reachsafe.safeguards.raytail.interval_ray` (centre: the midpoint of ``S(x)``)."""
        return interval_ray(a, lo_s, hi_s, lo, hi, self.mapping, tol.centre)

    def _interval_vjp(self, saved: dict, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return interval_ray_vjp(saved, v)

    def _solve(self, actions: Tensor, ch: Chunk) -> Tensor:
        if self.system.m <= 2:
            a64 = actions.detach().to(torch.float64)
            lo, hi = self._cast(self.a_lo, a64), self._cast(self.a_hi, a64)
            plan = ray_plan(a64, ch.G, ch.h, lo, hi, ch.tol64, self.mapping, box_last=True, arena=self._arena)
            if not ch.grad:
                return plan.out.to(actions.dtype)
            return StateRayTail.apply(actions, ch.cBE, plan, ch)
        a64 = actions.to(torch.float64) if ch.grad else actions.detach().to(torch.float64)
        lo, hi = self._cast(self.a_lo, a64), self._cast(self.a_hi, a64)
        return _mask(a64, ch.G, ch.h, ch.rows_at, lo, hi, ch.tol64, self.mapping, box_last=True).to(actions.dtype)


class TanhRayMaskSafeguard(RayMaskSafeguard):
    """Ray mask with the tanh profile ``a_s = c + d t_S tanh(r / t_S) / tanh(t_U / t_S)``."""

    kind = "raymask-tanh"
    mapping = "tanh"
