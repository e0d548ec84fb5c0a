"""Which facets of P matter for ``S(x)``: the rows that cut the action box U (exact, any m).

A facet i of ``P`` gives the action constraint ``g_i . a <= h_i`` with ``g_i = (A B(x))_i``.
Its largest value over the box ``U = [lo, hi]`` is, in closed form::

    max_{a in U} g_i . a = g_i . mid + |g_i| . rad,       mid = (lo + hi) / 2,  rad = (hi - lo) / 2

If that is ``<= h_i`` the row cuts nothing from U and ``S(x)`` is the same without it: it is
dropped.  The remaining *relevant* rows (none in the interior of a typical set, up to a few
hundred of the 11,702 of the published quadrotor set near its boundary) describe ``S(x)``
exactly together with the box, for the projection, the ray exits and the centres alike.
Per state, float64, no gradient; the batch is padded to the largest count with the next
rows by ``max g_i . a - h_i`` (padding rows are implied by U, so they change nothing).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .actionset import rowdot

__all__ = ["relevant_facets", "cut_depth"]


def cut_depth(G: Tensor, h: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """``max_{a in U} g_i . a - h_i`` for every row: ``G [B, k, m]``, ``h [B, k]`` -> ``[B, k]``."""
    mid, rad = 0.5 * (hi + lo), 0.5 * (hi - lo)
    return rowdot(G.abs(), rad) + rowdot(G, mid) - h


@torch.no_grad()
def relevant_facets(G: Tensor, h: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Indices ``[B, K]`` of the rows that cut U (``cut_depth > 0``), K the largest count in the batch.

    States with fewer relevant rows are padded with rows that do not cut U.  K may be 0.
    """
    pot = cut_depth(G, h, lo, hi)
    K = int((pot > 0).sum(-1).max()) if pot.shape[0] else 0
    if K == 0:
        return torch.zeros(G.shape[0], 0, dtype=torch.long, device=G.device)
    if K == pot.shape[-1]:
        return torch.arange(K, device=G.device).expand(G.shape[0], K)
    return pot.topk(K, dim=-1, sorted=False).indices
