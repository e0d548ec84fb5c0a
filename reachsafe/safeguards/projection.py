"""Exact Euclidean projection onto the safe action set (closed form, m <= 2).

    a_s = argmin_{a' in S(x)} |a' - a|^2,        S(x) = {a' : G a' <= h}

m = 1: ``S(x) = [lo, hi]`` and ``a_s = min(max(a, lo), hi)``.

m = 2: if ``a`` is in ``S`` then ``a_s = a``; otherwise ``a_s`` lies on the boundary, the
union of the segments ``{p_i + s t_i : s in [s_lo_i, s_hi_i]}`` (one per row, see
:mod:`reachsafe.safeguards.actionset`).  The nearest point of segment i is
``p_i + clamp(t_i . a, s_lo_i, s_hi_i) t_i`` (the projection onto the line
``a - (n_i . a - e_i) n_i`` or one of its end points, the vertices); ``a_s`` is the nearest
over all non-empty segments.  O(M^2) per state for M rows; sets with many facets are first
reduced exactly to the facets of ``S(x)`` (:mod:`reachsafe.safeguards.facets`).

Jacobian (from autograd on the selected formula): ``I`` inside ``S``, ``I - n_i n_i^T`` on an
edge, ``0`` at a vertex (with respect to ``a``); the exact derivative of the same formula
with respect to the state through ``G(x), h(x)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .actionset import Tolerances, feasible, interval, segments
from .base import Safeguard

__all__ = ["ProjectionSafeguard", "project"]


def project(actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
    """Euclidean projection of ``actions [B, m]`` onto ``{a : G a <= h}`` (``G [B, M, m]``, ``h [B, M]``, m <= 2).

    An empty set gives an arbitrary point (the safety net replaces it).
    """
    if actions.shape[-1] == 1:
        lo, hi, _ = interval(G, h, tol)
        return torch.minimum(torch.maximum(actions[:, 0], lo), hi).unsqueeze(-1)
    seg = segments(G, h, tol)
    sa = (seg.t * actions.unsqueeze(-2)).sum(-1)
    s = torch.minimum(torch.maximum(sa, seg.s_lo), seg.s_hi)
    cand = seg.p + s.unsqueeze(-1) * seg.t  # [B, M, 2]
    dist = ((cand - actions.unsqueeze(-2)) ** 2).sum(-1)
    best = torch.where(seg.valid, dist, torch.full_like(dist, float("inf"))).argmin(-1)
    proj = cand.gather(1, best.view(-1, 1, 1).expand(-1, 1, 2)).squeeze(1)
    return torch.where(feasible(G, h, actions).unsqueeze(-1), actions, proj)


class ProjectionSafeguard(Safeguard):
    """Safeguard by exact Euclidean projection onto ``S(x)`` (see module docstring)."""

    kind = "projection"

    def _map(self, actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
        return project(actions, G, h, tol)
