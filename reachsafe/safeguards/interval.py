"""m = 1: every shielding map on the interval ``S(x) = [l(x), u(x)]``, in closed form, as one autograd node.

With one action the safe set is an interval.  For the facets ``i`` of ``P`` (rows of ``A``, normalised),
``g_i = (A B(x))_i`` and ``rhs_i = b_i - A_i c(x) - h_W(x)_i`` (:mod:`reachsafe.safeguards.base`), shrunk by
``tau = tol.tighten``::

    u = min(hi - tau, min_{g_i > p} (rhs_i - tau) / g_i),      l = max(lo + tau, max_{g_i < -p} (rhs_i - tau) / g_i)

(``p = tol.parallel``: rows with ``|g_i| <= p`` do not bound the action; the final check below covers
them).  A kind maps ``a`` into ``[l, u]`` (:meth:`~reachsafe.safeguards.base.Safeguard._interval`: the
projection clamps, the ray masks scale along the ray from the midpoint), and its backward gives
``dL/da, dL/dl, dL/du`` (:meth:`~reachsafe.safeguards.base.Safeguard._interval_vjp`).  The bound
``u = (rhs_i - tau) / g_i`` of row ``i`` has ``du/drhs_i = 1 / g_i`` and ``du/dg_i = -u / g_i`` (likewise ``l``;
a bound set by the box is a constant), and :meth:`~reachsafe.safeguards.base.Safeguard.affine_rows_vjp`
takes these to ``dL/d[c, B, E]``.

This is the general path (local rows, structure pass, safety net) specialised to an interval: the
same values and gradients (a test compares them) for a fraction of the tensor operations, which at
training batch sizes cost more than their arithmetic.  Every output is checked in float64 against
all facets and the box with the safety net's margin (:func:`~reachsafe.safeguards.safetynet.verify`);
a chunk with a state outside ``P``, an empty interval or an output that fails the check is handed
back (None) to the general path, which has the fallbacks, the counts and the errors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .actionset import _BIG, tolerances
from .safetynet import verify

__all__ = ["forward_interval", "IntervalTail"]


class IntervalTail(torch.autograd.Function):
    """The map's value on ``[l, u]``, differentiable in ``a [B, 1]`` and ``cBE`` (the model's
    :meth:`~reachsafe.systems.CompiledSystem.affine_flat`).

    Without gradient: the output ``out [B, 1]`` (dtype of ``a``), the guard, the kind's saved
    structure, the rows ``rows [B, 2]`` behind ``u`` and ``l`` (the padding facet, a zero row of ``A``,
    where the box sets the bound), their ``g_i`` (1 there), the bounds ``[u, l]`` and ``E(x)``.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, cBE: Tensor, out: Tensor, guard: Any, saved: Any, rows: Tensor,
                g_rows: Tensor, bounds: Tensor, E: Tensor) -> Tensor:
        ctx.guard, ctx.saved, ctx.a_dtype = guard, saved, a.dtype
        ctx.save_for_backward(rows, g_rows, bounds, E)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, v: Tensor) -> tuple[Tensor | None, ...]:
        rows, g_rows, bounds, E = ctx.saved_tensors
        guard = ctx.guard
        ga, gl, gu = guard._interval_vjp(ctx.saved, v.to(bounds.dtype))
        gcBE = None
        if ctx.needs_input_grad[1]:
            gh = torch.cat([gu, gl], 1) / g_rows  # d bound / d rhs_i = 1 / g_i
            Ap = guard._cast(guard.Ap, gh)  # [B, 2, n] below; zero rows where the box sets the bound
            Aq = torch.index_select(Ap, 0, rows.view(-1)).view(*rows.shape, Ap.shape[1])
            gcBE = guard.affine_rows_vjp(Aq, (-gh * bounds).unsqueeze(-1), gh, E)
        return ga.to(ctx.a_dtype), gcBE, None, None, None, None, None, None, None


def forward_interval(guard: Any, states: Tensor, actions: Tensor, grad: bool) -> tuple[Tensor, Tensor] | None:
    """One chunk through the m = 1 path (module docstring): ``(a_s [B, 1], |a_s - a| [B])``, or None to hand it
    to the general path.

    ``guard``: the :class:`~reachsafe.safeguards.base.Safeguard` (its constants and facet pass);
    ``states [B, n]``, ``actions [B, 1]``; ``grad``: attach the gradient to the states and actions.
    """
    f64 = torch.float64
    tol = guard.tolerances(actions.dtype)
    tol64 = tolerances(f64)
    tau = tol.tighten
    x64 = states.to(f64) if grad else states.detach().to(f64)
    cBE = guard.system.affine_flat(x64)
    with torch.no_grad():
        xd = x64.detach()
        c, Bx, E = guard.system.split_affine(cBE.detach())
        B = xd.shape[0]
        Ap = guard._cast(guard.Ap, xd)
        k = Ap.shape[0] - 1  # the last row is the padding facet
        ws = guard._workspace(B, k, xd.device)
        nbp = guard._cast(guard.neg_bp, xd)
        dist_out = (torch.addmm(nbp, xd, Ap.T, out=ws["xA"]) if ws else torch.addmm(nbp, xd, Ap.T)).amax(-1)
        if bool((dist_out > guard.outside_tol).any()):
            return None
        cols, rhs, _ = guard._facet_pass(c, Bx, E, ws, with_depth=False)
        g = cols[0] if cols[0].dim() == 2 else cols[0].expand(B, -1)  # [B, k + 1]
        lo, hi = guard._cast(guard.a_lo, xd), guard._cast(guard.a_hi, xd)
        lo_t, hi_t = guard._box1[0] + tau, guard._box1[1] - tau
        ratio = (rhs - tau) / g  # +-inf or nan where g = 0: masked below
        u_f, u_i = torch.where(g > tol64.parallel, ratio, _BIG).min(-1, keepdim=True)
        l_f, l_i = torch.where(g < -tol64.parallel, ratio, -_BIG).max(-1, keepdim=True)
        u, l = u_f.clamp_max(hi_t), l_f.clamp_min(lo_t)
        if bool((l > u).any()):  # empty: the general path has the fallbacks
            return None
        a64 = actions.detach().to(f64)
        out64, saved = guard._interval(a64, l, u, lo, hi, tol64)
        out = out64.to(actions.dtype)
        if not bool(verify(g.unsqueeze(-1), rhs, out.to(f64), lo, hi, guard.margin).all()):
            return None
        dist = (out - actions.detach()).norm(dim=-1)
        if grad:
            from_row = torch.cat([u_f < hi_t, l_f > lo_t], 1)
            rows = torch.where(from_row, torch.cat([u_i, l_i], 1), k)
            g_rows = torch.where(from_row, g.gather(1, rows), 1.0)
            bounds = torch.cat([u, l], 1)
    if grad:
        out = IntervalTail.apply(actions, cBE, out, guard, saved, rows, g_rows, bounds, E)
    return out, dist
