"""Batched exact Euclidean projection onto ``{z : G z <= h}`` by a dual active-set method (any m).

For every state of a batch, independently and without a loop over the batch::

    z* = argmin_z |z - a|^2 / 2    subject to    g_i . z <= h_i  (i = 1..M)

The dual active-set method of Goldfarb and Idnani (Math. Programming 27, 1983), written
here for the identity Hessian, keeps a point ``z`` that minimises the distance to ``a``
subject to the *active* rows N (``N z = h_N``) with multipliers ``lambda >= 0``::

    z = a - N^T lambda,      K = N N^T

and repeatedly adds the most violated row p (normalised violation
``(g_p . z - h_p) / |g_p|``).  Along the step that moves row p towards its bound while
keeping the active rows tight::

    r = K^{-1} N g_p,     dz = -(g_p - N^T r) = -P g_p,     lambda(t) = lambda - t r,   lambda_p(t) = t

the full step ``t_1 = (g_p . z - h_p) / |P g_p|^2`` makes p tight (p joins the active set);
the partial step ``t_2 = min_{r_i > 0} lambda_i / r_i`` is where an active multiplier reaches
zero (that row leaves and the same p continues).  If ``P g_p = 0`` and no ``r_i > 0`` the
rows are inconsistent: the set is **empty** (a certificate, not a tolerance).  Every step
increases the dual objective strictly, so the method terminates after finitely many steps
with the exact projection (up to float64 rounding); the active set never holds more than m
linearly independent rows.

The result is then checked (KKT): ``z`` satisfies every row within ``feas_tol``, every
multiplier is non-negative, and ``z = a - N^T lambda`` holds.  States that fail the check
or hit ``max_iter`` are reported (``status``); callers send them to a slower exact path.

Shapes: ``G [B, M, m]``, ``h [B, M]``, ``a [B, m]`` (float64, no gradient).  The active set
is returned as slots: ``idx [B, m]`` (row index, or -1 for an empty slot) and
``lam [B, m]`` (0 in empty slots), ready for the closed-form Jacobian
(:mod:`reachsafe.safeguards.projection`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .actionset import rowdot

__all__ = ["ActiveSetResult", "project_active_set", "RUNNING", "OPTIMAL", "EMPTY", "UNCONVERGED"]

RUNNING, OPTIMAL, EMPTY, UNCONVERGED = 0, 1, 2, 3


@dataclass
class ActiveSetResult:
    """Projection and its active set.

    :param z: ``[B, m]`` the projection (meaningless where ``status != OPTIMAL``).
    :param idx: ``[B, m]`` active row per slot, -1 for an empty slot.
    :param lam: ``[B, m]`` multiplier per slot (>= 0; 0 in empty slots).
    :param status: ``[B]`` int8: ``OPTIMAL``, ``EMPTY`` (proven empty set) or ``UNCONVERGED``.
    """

    z: Tensor
    idx: Tensor
    lam: Tensor
    status: Tensor


def _gather_rows(G: Tensor, idx: Tensor) -> Tensor:
    """``G[b, idx[b, s], :]`` with -1 giving a zero row: ``G [B, M, m]``, ``idx [B, q]`` -> ``[B, q, m]``."""
    rows = G.gather(1, idx.clamp_min(0).unsqueeze(-1).expand(*idx.shape, G.shape[-1]))
    return rows * (idx >= 0).unsqueeze(-1).to(G.dtype)


def gram_solve(N: Tensor, valid: Tensor, rhs: Tensor) -> Tensor:
    """``K^{-1} rhs`` with ``K = N N^T`` on the valid slots and the identity on empty ones.

    ``N [B, q, m]`` (zero rows in empty slots), ``valid [B, q]``, ``rhs [B, q]``; entries of
    ``rhs`` in empty slots must be 0 (then so are the solution's).
    """
    K = N @ N.transpose(-1, -2) + torch.diag_embed((~valid).to(N.dtype))
    if N.shape[-2] == 1:
        return rhs / K[..., 0]
    return torch.linalg.solve(K, rhs.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def _polish(G: Tensor, h: Tensor, a: Tensor, idx: Tensor, z: Tensor, lam: Tensor,
            ok: Tensor) -> tuple[Tensor, Tensor]:
    """Recompute ``z`` and ``lambda`` from the final active set alone, without the iterations' rounding.

    The iterates accumulate ``z <- z - t P g`` with steps ``t`` as large as ``|a|``; for ``|a| ~ 1e6``
    that leaves errors ~1e-9.  From the active rows N (``K = N N^T``)::

        lambda = K^{-1} (N a - h_N),     z = a - N^T lambda          (fewer than m rows)
        z = N^{-1} h_N                                               (m rows: a vertex, free of a)

    States not in ``ok`` keep their values.
    """
    valid = idx >= 0
    N = _gather_rows(G, idx)
    hN = torch.where(valid, h.gather(1, idx.clamp_min(0)), torch.zeros_like(lam))
    lam_p = gram_solve(N, valid, torch.where(valid, (N @ a.unsqueeze(-1)).squeeze(-1) - hN, torch.zeros_like(lam)))
    z_p = a - (N * lam_p.unsqueeze(-1)).sum(-2)
    full = valid.all(-1)
    if bool(full.any()):
        eye = torch.eye(N.shape[-1], dtype=N.dtype, device=N.device)
        Nf = torch.where(full.view(-1, 1, 1), N, eye)
        z_v, info = torch.linalg.solve_ex(Nf, hN.unsqueeze(-1))
        z_p = torch.where((full & (info == 0)).unsqueeze(-1), z_v.squeeze(-1), z_p)
    sel = ok.unsqueeze(-1)
    return torch.where(sel, z_p, z), torch.where(sel, lam_p, lam)


@torch.no_grad()
def project_active_set(G: Tensor, h: Tensor, a: Tensor, feas_tol: float = 1e-12, max_iter: int | None = None,
                       start: tuple[Tensor, Tensor, Tensor] | None = None) -> ActiveSetResult:
    """Exact projection of ``a`` onto ``{z : G z <= h}`` for a batch (module docstring).

    :param feas_tol: accepted violation ``(g_i . z - h_i) / |g_i|`` per unit of ``1 + |a|_inf`` (float64
        rounding grows with the multipliers, which grow with ``|a|``).
    :param max_iter: cap on active-set changes per state (default ``4 (M + m)``).
    :param start: optional dual-feasible start ``(z0, idx0, lam0)``: ``z0 = a - N0^T lam0`` with
        ``N0 z0 = h_N0``, ``lam0 >= 0`` and linearly independent rows ``N0`` (e.g. ``a`` clamped to
        a box whose clipped rows are active with ``lam0 = |a - z0|``); default ``(a, none, 0)``.
    """
    B, M, m = G.shape
    dt, dev = G.dtype, G.device
    gn = G.norm(dim=-1)
    zero_row = gn <= 1e-300
    gn_safe = torch.where(zero_row, torch.ones_like(gn), gn)
    if start is None:
        z = a.clone()
        idx = torch.full((B, m), -1, dtype=torch.long, device=dev)
        lam = torch.zeros(B, m, dtype=dt, device=dev)
    else:
        z, idx, lam = (t.clone() for t in start)
    status = torch.zeros(B, dtype=torch.int8, device=dev)
    # a row without action dependence (g = 0) and h < 0 cannot be met: empty
    status[(zero_row & (h < -feas_tol)).any(-1)] = EMPTY
    pend = torch.full((B,), -1, dtype=torch.long, device=dev)  # row being added, kept over partial steps
    lp = torch.zeros(B, dtype=dt, device=dev)  # its accumulated multiplier
    iters = max_iter if max_iter is not None else 4 * (M + m)
    ftol = feas_tol * (1.0 + a.abs().amax(-1))  # [B]
    running = status == RUNNING
    slots = torch.arange(m, device=dev)
    inf = torch.tensor(float("inf"), dtype=dt, device=dev)
    # every state takes the same steps on whole-batch tensors; finished ones take steps of length 0
    for _ in range(iters + 1):
        viol = ((rowdot(G, z) - h) / gn_safe).masked_fill(zero_row, -float("inf"))
        worst, arg = viol.max(-1)
        has_p = pend >= 0
        running = running & (has_p | (worst > ftol))
        if not bool(running.any()):
            break
        p = torch.where(has_p, pend, arg)
        gp = G.gather(1, p.view(-1, 1, 1).expand(-1, 1, m)).squeeze(1)
        valid = idx >= 0
        N = _gather_rows(G, idx)
        r = gram_solve(N, valid, (N @ gp.unsqueeze(-1)).squeeze(-1))
        Pg = gp - (N * r.unsqueeze(-1)).sum(-2)
        den = (Pg * Pg).sum(-1)
        gsq = (gp * gp).sum(-1)
        full_ok = den > 1e-20 * gsq
        t1 = torch.where(
            full_ok,
            viol.gather(1, p.unsqueeze(-1)).squeeze(-1)
            * gn_safe.gather(1, p.unsqueeze(-1)).squeeze(-1)
            / torch.where(full_ok, den, torch.ones_like(den)),
            inf,
        )
        pos = valid & (r > 1e-14 * gsq.sqrt().unsqueeze(-1) * N.norm(dim=-1))
        t2, l = torch.where(pos, lam / torch.where(pos, r, torch.ones_like(r)), inf).min(-1)
        empty = running & torch.isinf(t1) & torch.isinf(t2)
        status = torch.where(empty, torch.full_like(status, EMPTY), status)
        running = running & ~empty
        t = torch.where(running, torch.minimum(t1, t2), torch.zeros_like(t1))
        z = z - t.unsqueeze(-1) * Pg
        lam = lam - t.unsqueeze(-1) * r
        lpr = lp + t
        full = running & (t1 <= t2)
        part = running & ~full
        # full step: p takes the first empty slot; partial step: slot l is dropped, p stays pending
        free = (~valid).to(torch.int8).argmax(-1)
        put = full.unsqueeze(-1) & (slots == free.unsqueeze(-1))
        drop = part.unsqueeze(-1) & (slots == l.unsqueeze(-1))
        idx = torch.where(put, p.unsqueeze(-1), idx.masked_fill(drop, -1))
        lam = torch.where(put, lpr.unsqueeze(-1), lam.masked_fill(drop, 0.0)).clamp_min(0.0)
        pend = torch.where(part, p, torch.where(full, torch.full_like(p, -1), pend))
        lp = torch.where(part, lpr, torch.where(full, torch.zeros_like(lpr), lp))
    status = torch.where(running, torch.full_like(status, UNCONVERGED),
                         torch.where(status == RUNNING, torch.full_like(status, OPTIMAL), status))
    # KKT check of the states declared optimal: primal feasibility, z = a - N^T lambda
    ok = status == OPTIMAL
    if bool(ok.any()):
        z, lam = _polish(G, h, a, idx, z, lam, ok)
        N = _gather_rows(G, idx)
        resid = (z - a + (N * lam.unsqueeze(-1)).sum(-2)).abs().amax(-1)
        viol = ((rowdot(G, z) - h) / gn_safe).masked_fill(zero_row, -float("inf")).amax(-1)
        scale = 1.0 + a.abs().amax(-1) + (lam * N.norm(dim=-1)).sum(-1)
        bad = ok & ((viol > ftol) | (resid > 1e-10 * scale) | (lam < 0).any(-1))
        status[bad] = UNCONVERGED
    return ActiveSetResult(z=z, idx=idx, lam=lam, status=status)
