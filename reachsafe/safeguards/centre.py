"""A safe interior point of ``S(x) = {a : G a <= h}`` in m dimensions: the weighted analytic centre.

The ray mask (:mod:`reachsafe.safeguards.raymask`) scales actions along rays from a centre
strictly inside ``S(x)``.  For m >= 3 the centre is the minimiser of the weighted log barrier
over the rows (normalised: ``|g_i| = 1``, slack ``s_i = h_i - g_i . c`` a distance)::

    c(x) = argmin_c  - sum_i w_i log s_i(c),        w_i = min(1, depth_i / ramp)  (facet rows),  w = 1 (box rows)

where ``depth_i = max_{a in U} g_i . a - h_i`` is how far row i cuts into U (rows that cut
nothing have weight 0 and are dropped).  The weights ramp up continuously as a facet starts
to cut U, so ``c(x)`` moves continuously with the state; every row with ``w_i > 0`` is a
barrier, so ``c`` is strictly inside ``S(x)`` whenever ``S(x)`` has an interior, and the box
rows make the minimiser unique.

Newton's method from the centre of U, which may lie outside ``S(x)``: ``-log s`` is
extended below ``s = eps`` by its second-order Taylor polynomial (convex, twice
differentiable, finite everywhere), which changes nothing where every slack is at least
``eps``.  So once Newton has converged with every weighted slack ``>= eps`` the point *is*
the analytic centre; otherwise ``eps`` is divided by 10 and Newton continues.  With
``psi(s)`` the extended ``-log``, ``se = max(s, eps)``::

    psi'(s) = -1/se + min(s - eps, 0)/eps^2,    psi''(s) = 1/se^2
    grad = -sum_i w_i psi'(s_i) g_i,   H = sum_i w_i psi''(s_i) g_i g_i^T,   c <- c - t H^{-1} grad

and a backtracking line search (Armijo: the largest step length ``2^-k``, k = 0..15, with enough decrease;
the full step first, all shorter ones at once only for the states the full step does not serve);
``lambda^2 = grad . H^{-1} grad`` (the Newton decrement) below ``tol`` is convergence.

Gradient (implicit function theorem): at the centre ``F(c; G, h) = sum_i w_i g_i / s_i = 0``,
so ``dc = -H^{-1} dF``; :func:`differentiable_centre` evaluates
``c = c* - H^{-1} F(c*; G, h)`` with ``c*`` and ``H^{-1}`` fixed, whose value is ``c*`` and
whose autograd derivative is exactly that.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .actionset import rowdot

__all__ = ["row_weights", "analytic_centre", "differentiable_centre", "RAMP"]

RAMP = 0.1  # depth (action units, U = [-1, 1]^m) over which a facet's weight grows from 0 to 1


def row_weights(G: Tensor, h: Tensor, lo: Tensor, hi: Tensor, ramp: float = RAMP) -> Tensor:
    """``w_i = clamp(depth_i / ramp, 0, 1)`` with ``depth_i = (max_{a in U} g_i . a - h_i) / |g_i|``.

    ``G [B, K, m]``, ``h [B, K]``, ``lo, hi [m]`` -> ``[B, K]``.  Differentiable.
    """
    mid, rad = 0.5 * (hi + lo), 0.5 * (hi - lo)
    top = rowdot(G.abs(), rad) + rowdot(G, mid) - h
    return (top / (G.norm(dim=-1).clamp_min(1e-300) * ramp)).clamp(0.0, 1.0)


def _psi(s: Tensor, e: Tensor) -> Tensor:
    """The extended ``-log``: ``-log s`` for ``s >= eps``, its second-order Taylor polynomial below."""
    se = torch.maximum(s, e)
    d = torch.clamp(s - e, max=0.0)
    return -torch.log(se) - d / e + 0.5 * (d / e) ** 2


_STEPS = 2.0 ** -torch.arange(0, 16, dtype=torch.float64)  # line-search candidates t = 1, 1/2, ..., 2^-15


@torch.no_grad()
def analytic_centre(G: Tensor, h: Tensor, w: Tensor, c0: Tensor, max_iter: int = 100,
                    eps0: float = 1e-4, tol: float = 1e-20) -> tuple[Tensor, Tensor]:
    """Weighted analytic centre of ``{c : G c <= h}`` (module docstring); ``(c [B, m], converged [B])``.

    ``G [B, M, m]`` (rows with ``w > 0`` must have ``|g| > 0``), ``h [B, M]``, ``w [B, M]``,
    ``c0 [B, m]`` start.  Each Newton step takes the largest ``t`` in ``1, 1/2, ..., 2^-15`` with
    the Armijo decrease ``f(c + t d) <= f(c) - t lambda^2 / 4`` (``t = 1`` for all states first, the
    other candidates at once for the states where it fails).
    ``converged`` is False where the set has no interior (or Newton did not settle in
    ``max_iter`` steps); ``c`` is then not guaranteed to be inside.
    """
    B, M, m = G.shape
    gn = G.norm(dim=-1)
    on = w > 0
    gs = torch.where(on, gn, torch.ones_like(gn))
    Gn, hn = G / gs.unsqueeze(-1), h / gs
    wn = torch.where(on, w, torch.zeros_like(w))
    c = c0.clone()
    eps = torch.full((B, 1), eps0, dtype=G.dtype, device=G.device)
    done = torch.zeros(B, dtype=torch.bool, device=G.device)
    steps = _STEPS.to(dtype=G.dtype, device=G.device)
    for _ in range(max_iter):
        s = hn - rowdot(Gn, c)
        se = torch.maximum(s, eps)
        d1 = wn * (1.0 / se - torch.clamp(s - eps, max=0.0) / (eps * eps))  # -w psi'(s)
        d2 = wn / (se * se)
        grad = (Gn * d1.unsqueeze(-1)).sum(-2)
        H = (Gn.transpose(-1, -2) * d2.unsqueeze(-2)) @ Gn
        step = torch.linalg.solve(H, grad.unsqueeze(-1)).squeeze(-1)  # c <- c - t step
        lam2 = (grad * step).sum(-1).clamp_min(0.0)
        small = lam2 <= tol
        inside = ((s >= eps) | ~on).all(-1)
        done = done | (small & inside)
        shrink = small & ~inside & ~done
        eps = torch.where(shrink.unsqueeze(-1), eps * 1e-3, eps)
        if bool((done | (eps[:, 0] < 1e-15)).all()):
            break
        # line search on f(c - t step) = sum w psi(s + t Gn.step): the full step t = 1 for every state,
        # then all candidates at once only for the states that t = 1 does not satisfy (the same choice,
        # the largest passing t, as trying every candidate everywhere, at a fraction of the [B, T, M] work)
        gd = rowdot(Gn, step)  # [B, M]
        f0 = (wn * _psi(s, eps)).sum(-1)
        f1 = (wn * _psi(s + gd, eps)).sum(-1)
        first = torch.zeros_like(lam2, dtype=torch.long)
        rest = (f1 > f0 - 0.25 * lam2).nonzero().squeeze(-1)
        if rest.numel():
            st = s[rest].unsqueeze(1) + steps.view(1, -1, 1) * gd[rest].unsqueeze(1)  # [b, T, M]
            ft = (wn[rest].unsqueeze(1) * _psi(st, eps[rest].unsqueeze(1))).sum(-1)
            okt = ft <= f0[rest].unsqueeze(-1) - 0.25 * steps * lam2[rest].unsqueeze(-1)
            first[rest] = torch.where(okt.any(-1), okt.to(torch.int8).argmax(-1), len(steps) - 1)
        t = steps[first]
        t = torch.where(done | shrink, torch.zeros_like(t), t)
        c = c - t.unsqueeze(-1) * step
    s = hn - rowdot(Gn, c)
    done = done & ((s > 0) | ~on).all(-1)
    return c, done


def differentiable_centre(c_star: Tensor, G: Tensor, h: Tensor, w: Tensor) -> Tensor:
    """``c* - H^{-1} F(c*; G, h)`` with ``F = sum_i w_i g_i / (h_i - g_i . c*)`` (module docstring).

    Value ``c*`` (``F = 0`` there); autograd gives ``dc/d(G, h) = -H^{-1} dF/d(G, h)``, the exact
    derivative of the analytic centre.  ``c_star`` must be detached; ``G, h, w`` carry the graph.
    """
    on = w.detach() > 0
    with torch.no_grad():
        s0 = torch.where(on, h.detach() - rowdot(G.detach(), c_star), torch.ones_like(h))
        q = w.detach() / (s0 * s0)
        H = (G.detach().transpose(-1, -2) * q.unsqueeze(-2)) @ G.detach()
        Hinv = torch.linalg.inv(H)
    s = torch.where(on, h - rowdot(G, c_star), torch.ones_like(h))
    F = (G * (w / s).unsqueeze(-1)).sum(-2)
    return c_star - (Hinv @ F.unsqueeze(-1)).squeeze(-1)
