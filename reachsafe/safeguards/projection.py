"""Exact Euclidean projection onto the safe action set, any m, with a closed-form backward pass.

    a_s = argmin_{z in S(x)} |z - a|^2,        S(x) = {z : G z <= h}

(``G, h``: the relevant facet rows followed by the box rows ``[I; -I]``, see
:mod:`reachsafe.safeguards.base`).

Forward in two parts.  **Structure** (float64, no graph): the projection ``z``, its active rows
``N`` (at most m, linearly independent) and multipliers ``lambda >= 0`` with
``a - z = N^T lambda``:

* ``a`` is clamped to the box; where the clamped point satisfies every facet row it *is* the
  projection (the projection onto U lies in ``S(x)``), the clipped box rows are active;
* m = 1: ``S = [lo, hi]`` in closed form, ``z = clamp(a, lo, hi)``;
* m = 2: closed form on the polygon's boundary segments
  (:func:`~reachsafe.safeguards.actionset.segments`): the nearest point of segment i is
  ``z_i = p_i + clamp(t_i . a, s_lo_i, s_hi_i) t_i`` with active rows ``{i}`` (inside the
  segment) or ``{i, j}`` (an end point, j the row that ends the segment there); its
  multipliers solve ``a - z_i = lambda_i g_i (+ lambda_j g_j)`` (Cramer's rule).  Every ``z_i``
  is feasible, so the one whose multipliers are all ``>= 0`` satisfies the KKT conditions and
  *is* the projection (KKT is sufficient for a convex QP); it is chosen by the largest
  smallest multiplier, a choice that stays exact for huge actions where comparing distances
  would not;
* m >= 3, and any m = 2 state whose closed form fails its KKT check (degenerate
  geometry): the dual active-set method (:mod:`reachsafe.safeguards.activeset`), started
  from the clamped point, KKT-checked.

A state without a verified result gets NaN, which the float64 safety net can never accept: it
is replaced by a verified fallback and counted (``info.n_fallback``), never returned unproven.

**Gradient** (closed form, :class:`ProjectionTail`): the value is the structure's ``z``; the
active rows are re-evaluated with their graph (only these at most m rows, see
:meth:`reachsafe.safeguards.base.Chunk.rows_at`) and at ``z = a - N^T lambda``, ``N z = h_N``
(``K = N N^T``, ``P = I - N^T K^{-1} N``)::

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

from .actionset import Tolerances, rowdot, tolerances
from .activeset import OPTIMAL, project_active_set
from .base import Chunk, Safeguard
from .polygon import Arena, project_polygon

__all__ = ["ProjectionSafeguard", "ProjectionTail", "project", "projection_structure"]


@torch.no_grad()
def projection_structure(a: Tensor, G: Tensor, h: Tensor, tol: Tolerances | None = None,
                         arena: Arena | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(z, idx, lam, ok)`` of the projection of ``a [B, m]`` onto ``{z : G z <= h}`` (module docstring).

    The last 2m rows must be the box ``[I; -I]``.  ``idx [B, m]`` active rows (-1: empty slot),
    ``lam [B, m]`` their multipliers, ``ok [B]`` solved and checked (False also for an empty set).
    Float64 in, no gradient.
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
    ok = (lo <= hi).all(-1)
    if K == 0:
        return z, idx, lam, ok
    bad = ((rowdot(G[:, :K], z) - h[:, :K]).amax(-1) > 0) & ok
    if not bool(bad.any()):
        return z, idx, lam, ok
    redo = bad
    if m == 2:
        f = bad.nonzero().squeeze(-1)  # only these states need the polygon
        zp, ip, lp, okp = project_polygon(a[f], G[f], h[f], K, tol or tolerances(G.dtype), arena)
        z[f], idx[f], lam[f] = zp, ip, lp
        redo = torch.zeros_like(bad)
        redo[f] = ~okp
    if bool(redo.any()):
        f = redo.nonzero().squeeze(-1)
        zc = torch.minimum(torch.maximum(a[f], lo[f]), hi[f])
        res = project_active_set(G[f], h[f], a[f], start=(zc, _box_slots(a[f], zc, K), (a[f] - zc).abs()))
        z[f], idx[f], lam[f] = res.z, res.idx, res.lam
        ok[f] = res.status == OPTIMAL
    return z, idx, lam, ok


def _box_slots(a: Tensor, z: Tensor, K: int) -> Tensor:
    """Active box rows of the clamped point ``z`` of ``a`` (slot j: row ``K + j`` / ``K + m + j`` or -1)."""
    B, m = a.shape
    slot = torch.arange(m, device=a.device).expand(B, m)
    return torch.where(a > z, K + slot, torch.where(a < z, K + m + slot, torch.full_like(slot, -1)))


def _project_interval(a: Tensor, G: Tensor, h: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """m = 1 in closed form: ``S = [lo, hi]`` with ``hi = min_{g_i > 0} h_i / g_i``, ``lo = max_{g_i < 0} h_i / g_i``,
    ``z = clamp(a, lo, hi)``.

    The active row is the one attaining the violated bound, with ``lambda = (a - z) / g``.  ``ok``: the
    interval is non-empty and no row with ``g = 0`` has ``h < 0``.
    """
    g = G[..., 0]
    ratio = h / g  # +-inf or nan for g = 0: masked out below
    hi_v, hi_i = torch.where(g > 0, ratio, float("inf")).min(-1, keepdim=True)
    lo_v, lo_i = torch.where(g < 0, ratio, -float("inf")).max(-1, keepdim=True)
    z = torch.clamp(a, lo_v, hi_v)
    idx = torch.where(a > hi_v, hi_i, torch.where(a < lo_v, lo_i, -1))
    lam = torch.where(idx >= 0, (a - z) / g.gather(1, idx.clamp_min(0)), 0.0)
    ok = (lo_v <= hi_v).squeeze(-1) & (torch.where(g == 0, h, 0.0).amin(-1) >= 0)
    return z, idx, lam, ok


def _gram_solve(N: Tensor, valid: Tensor, rhs: Tensor) -> Tensor:
    """``K^{-1} rhs`` with ``K = N N^T`` on the valid slots, the identity on empty ones (closed form for q <= 2)."""
    q = N.shape[-2]
    if q == 1:
        return rhs / (N * N).sum(-1).clamp_min(1e-300) * valid.to(N.dtype)
    Kmat = N @ N.transpose(-1, -2) + torch.diag_embed((~valid).to(N.dtype))
    if q == 2:
        k11, k12, k22 = Kmat[..., 0, 0], Kmat[..., 0, 1], Kmat[..., 1, 1]
        det = k11 * k22 - k12 * k12
        r1, r2 = rhs[..., 0], rhs[..., 1]
        return torch.stack([k22 * r1 - k12 * r2, k11 * r2 - k12 * r1], -1) / det.unsqueeze(-1)
    return torch.linalg.solve(Kmat, rhs.unsqueeze(-1)).squeeze(-1)


def _vjp(N: Tensor, valid: Tensor, lam: Tensor, z: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(dL/da, dL/dN, dL/dh_N)`` for the upstream gradient ``v [B, m]`` (module docstring).

    ``N [B, q, m]`` active rows (zero in empty slots), ``valid [B, q]``, ``lam [B, q]`` (0 in empty
    slots), ``z [B, m]``; float64.
    """
    if N.shape[-1] == 1:  # m = 1: z = h_i / g_i on the active row, a elsewhere
        g = N[..., 0]
        u = v * valid.to(v.dtype) / torch.where(valid, g, 1.0)
        Pv = v - u * g
        return Pv, -(u * z).unsqueeze(-1), u  # -lam Pv - u z with Pv = 0 on the active row
    u = _gram_solve(N, valid, (N * v.unsqueeze(-2)).sum(-1))
    Pv = v - (N * u.unsqueeze(-1)).sum(-2)
    gh = u * valid.to(u.dtype)  # lam and u vanish in empty slots
    gN = -lam.unsqueeze(-1) * Pv.unsqueeze(-2) - gh.unsqueeze(-1) * z.unsqueeze(-2)
    return Pv, gN, gh


class ProjectionTail(torch.autograd.Function):
    """The projection's value with the closed-form backward of the module docstring.

    Inputs: ``a [B, m]`` (any float dtype), the active rows ``N [B, m, m]`` and ``h_N [B, m]``
    (float64; any row in an empty slot) carrying the graph, and without gradient: the structure's
    ``z [B, m]`` (float64), ``lam [B, m]``, ``valid [B, m]`` (slot holds a row) and ``ok [B]``.
    Output ``z`` in the dtype of ``a`` (NaN where not ``ok``).
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, N: Tensor, hN: Tensor, z: Tensor, lam: Tensor, valid: Tensor,
                ok: Tensor) -> Tensor:
        w = valid.to(z.dtype)
        ctx.save_for_backward(N.detach() * w.unsqueeze(-1), lam * w, valid, z, ok)
        ctx.a_dtype = a.dtype
        return torch.where(ok.unsqueeze(-1), z, torch.full_like(z, float("nan"))).to(a.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, v: Tensor) -> tuple[Tensor | None, ...]:
        N, lam, valid, z, ok = ctx.saved_tensors
        v = v.to(N.dtype) * ok.unsqueeze(-1).to(N.dtype)
        Pv, gN, gh = _vjp(N, valid, lam, z, v)
        return Pv.to(ctx.a_dtype), gN, gh, None, None, None, None


class StateProjectionTail(torch.autograd.Function):
    """:class:`ProjectionTail` for a safeguard, differentiable in ``a`` and ``cBE`` (the model's
    :meth:`~reachsafe.systems.CompiledSystem.affine_flat`): the active rows are ``N = A_q B(x)``,
    ``h_N = b_q - A_q c(x) - h_W(x)_q``, and :meth:`~reachsafe.safeguards.base.Chunk.rows_vjp` maps ``dL/dN,
    dL/dh_N`` of these rows to ``dL/dcBE``: one autograd node for the
    whole map.  Inputs ``a [B, m]``, ``cBE``, then without gradient ``z, lam, idx, ok`` as in
    :class:`ProjectionTail` (``idx [B, q]`` the active local rows, -1 empty), the active rows' values
    ``N [B, q, m]`` and the chunk (:class:`~reachsafe.safeguards.base.Chunk`).
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, cBE: Tensor, z: Tensor, lam: Tensor, idx: Tensor, ok: Tensor, N: Tensor,
                chunk: Any) -> Tensor:
        valid = idx >= 0
        w = valid.to(z.dtype)
        ctx.save_for_backward(N * w.unsqueeze(-1), lam * w, valid, z, ok, idx)
        ctx.a_dtype, ctx.chunk = a.dtype, chunk
        return torch.where(ok.unsqueeze(-1), z, torch.full_like(z, float("nan"))).to(a.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, v: Tensor) -> tuple[Tensor | None, ...]:
        N, lam, valid, z, ok, idx = ctx.saved_tensors
        v = v.to(N.dtype) * ok.unsqueeze(-1).to(N.dtype)
        Pv, gN, gh = _vjp(N, valid, lam, z, v)
        gcBE = None
        if ctx.needs_input_grad[1]:
            gcBE = ctx.chunk.rows_vjp(idx.clamp_min(0), gN, gh)  # empty slots carry zero gradients
        return Pv.to(ctx.a_dtype), gcBE, None, None, None, None, None, None


def _tail(a: Tensor, rows_at, z: Tensor, idx: Tensor, lam: Tensor, ok: Tensor) -> Tensor:
    """:class:`ProjectionTail` with the active rows ``idx`` gathered by ``rows_at(loc) -> (G_q, h_q)``."""
    N, hN = rows_at(idx.clamp_min(0))
    return ProjectionTail.apply(a, N, hN, z, lam, idx >= 0, ok)


def project(actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances | None = None) -> Tensor:
    """Euclidean projection of ``actions [B, m]`` onto ``{a : G a <= h}`` (``G [B, M, m]``, ``h [B, M]``).

    The last 2m rows must be the box rows ``[I; -I]``.  Computed in float64, returned in the
    dtype of ``actions``; differentiable in all three (closed-form backward).  NaN where the
    set is empty or the result could not be verified (module docstring).  ``tol``: geometric
    tolerances of the m = 2 structure (default: float64's).
    """
    f64 = torch.float64
    G64, h64 = G.to(f64), h.to(f64)
    z, idx, lam, ok = projection_structure(actions.detach().to(f64), G64.detach(), h64.detach(), tol)
    m = actions.shape[-1]

    def rows_at(loc: Tensor) -> tuple[Tensor, Tensor]:
        return G64.gather(1, loc.unsqueeze(-1).expand(*loc.shape, m)), h64.gather(1, loc)

    return _tail(actions, rows_at, z, idx, lam, ok)


class ProjectionSafeguard(Safeguard):
    """Safeguard by exact Euclidean projection onto ``S(x)`` (see module docstring)."""

    kind = "projection"

    def _interval(self, a: Tensor, lo_s: Tensor, hi_s: Tensor, lo: Tensor, hi: Tensor, tol: Tolerances
                  ) -> tuple[Tensor, Any]:
        """m = 1: ``a_s = clamp(a, lo_s, hi_s)``."""
        below, above = a < lo_s, a > hi_s
        return torch.where(below, lo_s, torch.where(above, hi_s, a)), (below, above)

    def _interval_vjp(self, saved: Any, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        below, above = saved
        zero = v.new_zeros(())
        return torch.where(below | above, zero, v), torch.where(below, v, zero), torch.where(above, v, zero)

    def _map(self, actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
        return project(actions, G, h, tol)

    def _solve(self, actions: Tensor, ch: Chunk) -> Tensor:
        z, idx, lam, ok = projection_structure(actions.detach().to(torch.float64), ch.G, ch.h, ch.tol64, self._arena)
        if not ch.grad:
            return torch.where(ok.unsqueeze(-1), z, torch.full_like(z, float("nan"))).to(actions.dtype)
        loc = idx.clamp_min(0)
        N = ch.G.gather(1, loc.unsqueeze(-1).expand(*loc.shape, ch.G.shape[-1]))
        return StateProjectionTail.apply(actions, ch.cBE, z, lam, idx, ok, N, ch)
