"""Which facets of P matter for ``S(x)``: exact pruning for sets with many facets (m = 2).

A facet i of ``P`` gives the action constraint ``g_i . a <= h_i`` with ``g_i = (A B(x))_i``.
The projection and the ray mask cost O(M^2) per state in the number M of rows (see
:mod:`reachsafe.safeguards.actionset`), so for sets with hundreds or thousands of facets
(the published quadrotor set has 11,702) the rows are reduced first, per state, in float64
and without gradients, by two exact steps:

1. **Implied by U.**  ``max_{a in U} g_i . a = |g_i|_1 <= h_i`` (U = [-1, 1]^m) means the row
   cuts nothing from U; drop it.  The remaining rows are the *relevant* ones (up to ~900 of
   11,702 near the boundary of the published quadrotor set, typically 0 in its interior).
2. **Constraint generation (cutting planes).**  Start with the ``init`` relevant rows that cut
   deepest into U; build the polygon ``S_W`` of the working set W (plus the box); evaluate
   every relevant row at every vertex of ``S_W``; add the ``add`` most violated rows; repeat
   until no vertex violates any row.  Then ``S_W`` (an outer approximation, ``S ⊆ S_W``) has all
   its vertices in ``S``, hence ``S_W = S``: the reduced polygon is exactly ``S(x)``, with the
   same vertices, edges, projection and ray exits.  If ``S_W`` becomes empty, ``S`` is empty.

The differentiable pass then recomputes only the rows in W, in the caller's dtype.  If the
iteration does not settle within ``max_rounds`` the chunk falls back to all relevant rows
(still exact, only slower).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .actionset import Tolerances, segments

__all__ = ["select_facets"]


def _gather_rows(x: Tensor, idx: Tensor) -> Tensor:
    """``x[b, idx[b, j], ...]`` for ``x [B, k, ...]`` and ``idx [B, K]``."""
    if x.dim() == 2:
        return torch.gather(x, 1, idx)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(*idx.shape, x.shape[-1]))


@torch.no_grad()
def select_facets(
    AB: Tensor,
    rhs: Tensor,
    box_G: Tensor,
    box_h: Tensor,
    tol: Tolerances,
    direct: int = 24,
    init: int = 12,
    add: int = 6,
    max_rounds: int = 40,
    budget: int = 1 << 23,
) -> Tensor | None:
    """Facet indices ``W [B, K]`` whose rows, with the box, describe ``S(x)`` exactly (m = 2).

    :param AB: ``A B(x)`` for all k facets, ``[B, k, 2]`` (float64).
    :param rhs: ``b - A c(x) - h_W(x)`` tightened, ``[B, k]``.
    :param box_G: box rows ``[B, 4, 2]``; ``box_h``: ``[B, 4]``.
    :param direct: if at most this many rows are relevant, return them all (no iteration).
    :param init: working-set size at the start; ``add``: rows added per round.
    :param budget: max entries of the [states, rows, vertices] violation tensor per sub-batch.
    :returns: None when ``k <= direct`` (use every facet), else ``[B, K]`` indices into the facets;
        rows may repeat (duplicates are harmless).
    """
    B, k, _ = AB.shape
    if k <= direct:
        return None
    pot = AB.abs().sum(-1) - rhs  # max over U = [-1, 1]^2 of g_i . a - h_i
    n_rel = int((pot > -tol.geom).sum(-1).max().item()) if B else 0
    K_rel = max(n_rel, 1)
    top = pot.topk(K_rel, dim=-1).indices  # relevant rows first
    if K_rel <= direct:
        return top
    ABr, rhsr, potr = _gather_rows(AB, top), _gather_rows(rhs, top), _gather_rows(pot, top)
    depth = potr / ABr.norm(dim=-1).clamp_min(tol.parallel)
    W = depth.topk(min(init, K_rel), dim=-1).indices  # local indices into `top`
    active = torch.ones(B, dtype=torch.bool, device=AB.device)
    for _ in range(max_rounds):
        ia = active.nonzero().squeeze(-1)
        Wa = W[ia]
        G = torch.cat([_gather_rows(ABr[ia], Wa), box_G[ia]], 1)
        h = torch.cat([_gather_rows(rhsr[ia], Wa), box_h[ia]], 1)
        seg = segments(G, h, tol)
        # every vertex is the start (s_lo end) of exactly one edge when walking round the polygon
        V = seg.p + seg.s_lo.unsqueeze(-1) * seg.t
        has = seg.valid.any(-1)
        first = seg.valid.to(torch.int8).argmax(-1)
        V0 = V.gather(1, first.view(-1, 1, 1).expand(-1, 1, 2))
        V = torch.where(seg.valid.unsqueeze(-1), V, V0)  # invalid slots repeat a vertex: no masking below
        worst = torch.empty(ia.shape[0], K_rel, dtype=AB.dtype, device=AB.device)
        step = max(1, budget // max(1, K_rel * V.shape[1]))
        for s in range(0, ia.shape[0], step):
            sl = slice(s, s + step)
            worst[sl] = (ABr[ia[sl]] @ V[sl].transpose(-1, -2)).amax(-1) - rhsr[ia[sl]]
        worst[~has] = -float("inf")  # S_W empty, hence S(x) empty: nothing to add
        still = (worst > tol.geom).any(-1)
        if not bool(still.any()):
            return torch.gather(top, 1, W)
        new = worst.topk(min(add, K_rel), dim=-1).indices
        fill = W[:, :1].expand(B, new.shape[1]).clone()  # inactive states: duplicate rows
        fill[ia] = new
        W = torch.cat([W, fill], 1)
        active[ia] = still
    return top
