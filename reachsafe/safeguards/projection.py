"""Exact Euclidean projection onto the safe action set, any m, with a closed-form backward pass.

    a_s = argmin_{z in S(x)} |z - a|^2,        S(x) = {z : G z <= h}

(``G, h``: the relevant facet rows followed by the box rows ``[I; -I]``, see
:mod:`reachsafe.safeguards.base`).

Forward (float64, no graph): ``a`` is clamped to the box; where the clamped point already
satisfies every facet row it *is* the projection (the projection onto U lies in ``S(x)``).
Elsewhere the dual active-set method (:mod:`reachsafe.safeguards.activeset`) starts from
the clamped point with the clipped box rows active and returns the exact projection, its
active rows ``N`` (at most m, linearly independent) and multipliers ``lambda >= 0``,
checked by the KKT conditions.  A state whose result fails that check gets NaN, which the
float64 safety net can never accept: it is replaced by a verified fallback and counted
(``info.n_fallback``), never returned unproven.

Backward (closed form, :class:`ProjectionFunction`): at the solution ``z = a - N^T lambda``,
``N z = h_N``.  Differentiating both (``K = N N^T``, ``P = I - N^T K^{-1} N``)::

    dz = P (da - dN^T lambda) + N^T K^{-1} (dh_N - dN z)

so for an upstream gradient ``v`` (``u = K^{-1} N v``)::

    dL/da = P v,      dL/dh_i = u_i,      dL/dg_i = -lambda_i P v - u_i z      (i active; 0 otherwise)

i.e. ``I`` inside ``S``, the projector onto the active facets' tangent space on the boundary,
and the exact derivative with respect to the state through ``G(x), h(x)`` (the box rows are
constants).  A facet that is active with ``lambda_i = 0`` (a measure-zero set of actions) gets
the one-sided derivative of the active set found.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .actionset import Tolerances, rowdot
from .activeset import OPTIMAL, _gather_rows, gram_solve, project_active_set
from .base import Safeguard

__all__ = ["ProjectionSafeguard", "ProjectionFunction", "project", "project_with_active_set"]


@torch.no_grad()
def project_with_active_set(a: Tensor, G: Tensor, h: Tensor, m_box: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(z, idx, lam, ok)`` of the projection of ``a [B, m]`` onto ``{z : G z <= h}``.

    The last 2m rows must be the box ``[I; -I]`` (``m_box``).  ``idx [B, m]`` active rows
    (-1: empty slot), ``lam [B, m]`` their multipliers, ``ok [B]`` solved and KKT-checked
    (False also for an empty set).
    """
    B, M, m = G.shape
    K = M - 2 * m
    if m == 1:
        return _project_interval(a, G, h)
    hi, lo = h[:, K:K + m], -h[:, K + m:]
    z = torch.minimum(torch.maximum(a, lo), hi)
    slot = torch.arange(m, device=a.device).expand(B, m)
    idx = torch.where(a > hi, K + slot, torch.where(a < lo, K + m + slot, torch.full_like(slot, -1)))
    lam = (a - z).abs()
    ok = torch.ones(B, dtype=torch.bool, device=a.device)
    if K == 0:
        return z, idx, lam, ok & (lo <= hi).all(-1)
    bad = ((rowdot(G[:, :K], z) - h[:, :K]) > 0).any(-1) | (lo > hi).any(-1)
    if bool(bad.any()):
        f = bad.nonzero().squeeze(-1)
        res = project_active_set(G[f], h[f], a[f], start=(z[f], idx[f], lam[f]))
        z[f], idx[f], lam[f] = res.z, res.idx, res.lam
        ok[f] = res.status == OPTIMAL
    return z, idx, lam, ok


def _project_interval(a: Tensor, G: Tensor, h: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """m = 1 in closed form: ``S = [lo, hi]`` (:func:`~reachsafe.safeguards.actionset.interval`), ``z = clamp(a, lo, hi)``.

    The active row is the one attaining the violated bound, with ``lambda = (a - z) / g``.
    """
    g = G[..., 0]
    pos, neg = g > 0, g < 0
    ratio = h / torch.where(pos | neg, g, torch.ones_like(g))
    hi_v, hi_i = ratio.masked_fill(~pos, float("inf")).min(-1)
    lo_v, lo_i = ratio.masked_fill(~neg, -float("inf")).max(-1)
    x = a[:, 0]
    z = torch.minimum(torch.maximum(x, lo_v), hi_v)
    idx = torch.where(x > hi_v, hi_i, torch.where(x < lo_v, lo_i, torch.full_like(hi_i, -1)))
    gi = g.gather(1, idx.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    lam = torch.where(idx >= 0, (x - z) / gi, torch.zeros_like(x))
    ok = (lo_v <= hi_v) & ~((g == 0) & (h < 0)).any(-1)
    return z.unsqueeze(-1), idx.unsqueeze(-1), lam.unsqueeze(-1), ok


class ProjectionFunction(torch.autograd.Function):
    """``z = proj_{G z <= h}(a)`` with the closed-form backward of the module docstring.

    Inputs ``a [B, m]``, ``G [B, M, m]``, ``h [B, M]`` (float64; the last 2m rows are the
    box); output ``[B, m]`` (NaN where unsolved).
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, G: Tensor, h: Tensor) -> Tensor:
        z, idx, lam, ok = project_with_active_set(a.detach(), G.detach(), h.detach())
        N = _gather_rows(G.detach(), idx)
        ctx.save_for_backward(N, idx, lam, z, ok)
        ctx.M = G.shape[1]
        return torch.where(ok.unsqueeze(-1), z, torch.full_like(z, float("nan")))

    @staticmethod
    def backward(ctx: Any, v: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        N, idx, lam, z, ok = ctx.saved_tensors
        v = torch.where(ok.unsqueeze(-1), v, torch.zeros_like(v))
        valid = idx >= 0
        u = gram_solve(N, valid, (N @ v.unsqueeze(-1)).squeeze(-1))
        Pv = v - (N * u.unsqueeze(-1)).sum(-2)
        gG = gh = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            B, m = v.shape
            tgt = idx.clamp_min(0)
            w = valid.to(v.dtype)
            gh = torch.zeros(B, ctx.M, dtype=v.dtype, device=v.device).scatter_add_(1, tgt, u * w)
            dg = -(lam * w).unsqueeze(-1) * Pv.unsqueeze(-2) - (u * w).unsqueeze(-1) * z.unsqueeze(-2)
            gG = torch.zeros(B, ctx.M, m, dtype=v.dtype, device=v.device).scatter_add_(
                1, tgt.unsqueeze(-1).expand(B, m, m), dg)
        return Pv, gG, gh


def project(actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances | None = None) -> Tensor:
    """Euclidean projection of ``actions [B, m]`` onto ``{a : G a <= h}`` (``G [B, M, m]``, ``h [B, M]``).

    The last 2m rows must be the box rows ``[I; -I]``.  Computed in float64, returned in the
    dtype of ``actions``; differentiable in all three (closed-form backward).  NaN where the
    set is empty or the result could not be verified (module docstring).
    """
    f64 = torch.float64
    return ProjectionFunction.apply(actions.to(f64), G.to(f64), h.to(f64)).to(actions.dtype)


class ProjectionSafeguard(Safeguard):
    """Safeguard by exact Euclidean projection onto ``S(x)`` (see module docstring)."""

    kind = "projection"

    def _map(self, actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
        return project(actions, G, h, tol)
