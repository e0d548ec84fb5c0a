"""The safety net: float64 verification of every returned action, and verified fallbacks.

Check (per state, float64, all k facets and the box)::

    (A B(x)) a - (b - A c(x) - h_W(x)) <= -margin      and      lo <= a <= hi

``A, b`` are the row-normalised facets of ``P`` (so ``margin`` is a distance in state space)
and the rows are computed in float64 from the float64 state, independently of the dtype the
safeguard computed in.  The safeguard's facet pass (:meth:`reachsafe.safeguards.base.Safeguard._prepare`)
has already shown, in float64, that every facet it did not keep satisfies
``max_{a in U} (A B(x)) a - rhs <= -margin - 1e-10``; so for an action in the box only the kept
facets are evaluated here (:meth:`~reachsafe.safeguards.base.Safeguard._verify`).  Actions that fail (numerical edge
cases, float32 rounding) are
replaced by

1. a point of ``S(x)`` computed in float64 (m = 1: the interval midpoint; m >= 2: the exact
   projection of the centre of U onto ``S(x)`` by the active-set method of
   :mod:`reachsafe.safeguards.activeset`, which also proves emptiness), rounded to the
   output dtype and checked again; or, if ``S(x)`` is empty,
2. the **min-max-violation action** ``argmin_{a in U} max_i (g_i . a - h_i)``: the action whose
   worst-case successor violates the worst facet of ``P`` least (by bisection on the level
   ``s`` of ``{a in U : G a <= h + s}``, each level tested in closed form).  It is *not*
   safe (no safe action exists) and is counted as unsafe.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from .actionset import Tolerances, box_rows, interval, interval_centre, rowdot
from .activeset import EMPTY, OPTIMAL, project_active_set

__all__ = ["verify", "centre_of", "minmax_action", "relevant_rows"]


@torch.no_grad()
def verify(AB: Tensor, rhs: Tensor, a: Tensor, lo: Tensor, hi: Tensor, margin: float) -> Tensor:
    """[B] bool: ``AB a - rhs <= -margin`` on every facet and ``lo <= a <= hi``.

    ``AB [B, k, m]``, ``rhs [B, k]`` (untightened, float64), ``a [B, m]`` (float64).
    """
    viol = torch.maximum(a - hi, lo - a).amax(-1)  # > 0: outside the box
    if AB.shape[1]:
        viol = torch.maximum(viol, (rowdot(AB, a) - rhs).amax(-1) + margin)
    return viol <= 0


@torch.no_grad()
def centre_of(G: Tensor, h: Tensor, tol: Tolerances) -> tuple[Tensor, Tensor]:
    """A point inside ``{a : G a <= h}`` (rows include the box) and the [B] empty flags.

    m = 1: interval midpoint; m >= 2: the projection of the centre of the rows' bounding
    box (the last 2m rows are the box ``[I; -I]``) onto the set, exact (active set); the
    active-set method proves emptiness.  States whose projection did not converge get the
    box centre (the caller's check rejects it if it is not inside).
    """
    if G.shape[-1] == 1:
        lo, hi, empty = interval(G, h, tol)
        return interval_centre(lo, hi), empty
    m = G.shape[-1]
    hb = h[:, -2 * m:]
    mid = 0.5 * (hb[:, :m] - hb[:, m:])
    res = project_active_set(G, h, mid)
    ok = res.status == OPTIMAL
    return torch.where(ok.unsqueeze(-1), res.z, mid), res.status == EMPTY


@torch.no_grad()
def relevant_rows(AB: Tensor, rhs: Tensor, lo: Tensor, hi: Tensor, level: float) -> tuple[Tensor, Tensor]:
    """Rows that some ``a`` in the box can violate by more than ``level``: ``max_a g.a - h > level``.

    Returns the gathered ``AB [B, K, m]``, ``rhs [B, K]`` (K = the largest count in the
    batch, padded with the next most relevant rows; at least 1).
    """
    umax = rowdot(AB.clamp(min=0), hi) + rowdot(AB.clamp(max=0), lo)
    pot = umax - rhs
    K = max(1, int((pot > level).sum(-1).max().item()))
    idx = pot.topk(min(K, pot.shape[-1]), dim=-1).indices
    return (torch.gather(AB, 1, idx.unsqueeze(-1).expand(*idx.shape, AB.shape[-1])),
            torch.gather(rhs, 1, idx))


@torch.no_grad()
def _minmax_bisect(AB: Tensor, rhs: Tensor, lo: Tensor, hi: Tensor, tol: Tolerances, iters: int) -> Tensor:
    """Bisection for ``min_{a in U} max_i (g_i . a - h_i)`` over the given rows; returns ``a [B, m]``."""
    B = AB.shape[0]
    umax = rowdot(AB.clamp(min=0), hi) + rowdot(AB.clamp(max=0), lo)
    umin = rowdot(AB.clamp(min=0), lo) + rowdot(AB.clamp(max=0), hi)
    s_lo = (umin - rhs).amax(-1)
    s_hi = (umax - rhs).amax(-1)
    exact = dataclasses.replace(tol, tighten=0.0)
    bG, bh = box_rows(lo, hi, B, 0.0)
    G = torch.cat([AB, bG], 1)
    for _ in range(iters):
        s = 0.5 * (s_lo + s_hi)
        _, empty = centre_of(G, torch.cat([rhs + s.unsqueeze(-1), bh], 1), exact)
        s_hi = torch.where(empty, s_hi, s)
        s_lo = torch.where(empty, s, s_lo)
    a, _ = centre_of(G, torch.cat([rhs + s_hi.unsqueeze(-1), bh], 1), exact)
    return torch.minimum(torch.maximum(a, lo), hi)


@torch.no_grad()
def minmax_action(AB: Tensor, rhs: Tensor, lo: Tensor, hi: Tensor, tol: Tolerances, iters: int = 60,
                  init: int = 8, add: int = 8, max_rounds: int = 50) -> tuple[Tensor, Tensor]:
    """``a* = argmin_{a in [lo, hi]} max_i (g_i . a - h_i)`` and its value ``s*`` ([B, m], [B]).

    Bisection on ``s``: the set ``{a in U : G a <= h + s}`` is non-empty iff ``s >= s*``, with
    ``max_i min_U (g_i . a - h_i) <= s* <= max_i max_U (g_i . a - h_i)``; each level is tested
    in closed form (:func:`centre_of`), and after ``iters`` halvings the point returned is the
    centre of the level set at the upper bound.  Rows enter by constraint generation: solve on
    a working set W (a lower bound ``s_W <= s*``), evaluate every row at ``a_W``; if none exceeds
    ``s_W`` then ``a_W`` is optimal for all rows, otherwise the ``add`` worst rows join W.
    """
    B, K, _ = AB.shape
    pot = rowdot(AB.clamp(min=0), hi) + rowdot(AB.clamp(max=0), lo) - rhs
    W = pot.topk(min(init, K), dim=-1).indices
    for _ in range(max_rounds):
        Gw = torch.gather(AB, 1, W.unsqueeze(-1).expand(*W.shape, AB.shape[-1]))
        a = _minmax_bisect(Gw, torch.gather(rhs, 1, W), lo, hi, tol, iters)
        viol = rowdot(AB, a) - rhs
        worst = viol.amax(-1)
        level = (rowdot(Gw, a) - torch.gather(rhs, 1, W)).amax(-1)
        if bool((worst <= level + tol.geom).all()) or W.shape[1] >= K:
            break
        W = torch.cat([W, viol.topk(min(add, K), dim=-1).indices], 1)
    return a, worst
