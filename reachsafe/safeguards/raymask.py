"""Ray mask: scale the action along the ray from a safe centre (linear or tanh profile).

With a centre ``c(x)`` strictly inside ``S(x)``, an action ``a`` is written as
``a = c + t d`` (``t = |a - c|``, unit ``d``).  Along ``d`` the box U ends at distance ``t_U``
and ``S(x)`` at ``t_S`` (both closed form, :func:`~reachsafe.safeguards.actionset.ray_exit`)::

    t_K = min_{i : g_i . d > 0} (h_i - g_i . c) / (g_i . d)

and with ``r = min(t, t_U)`` (actions outside U are first pulled back to U along the ray)::

    linear:  a_s = c + d r t_S / t_U
    tanh:    a_s = c + d t_S tanh(r / t_S) / tanh(t_U / t_S)

Both map ``[0, t_U]`` monotonically onto ``[0, t_S]``, so ``a_s`` is in ``S(x)``.

Centre (strictly inside ``S(x)`` when it has an interior, continuous in ``x``):
m = 1 the midpoint of ``S = [lo, hi]``; m = 2 the area centroid of the polygon ``S(x)``
(closed form, :mod:`reachsafe.safeguards.actionset`); m >= 3 the weighted analytic centre
(:mod:`reachsafe.safeguards.centre`, Newton's method with an exact implicit derivative).
A state whose analytic centre cannot be found (``S(x)`` without interior) gets NaN, which
the float64 safety net replaces by a verified action and counts.

Special cases, handled explicitly so that values and gradients stay finite:

* ``t <= tol.centre`` (the action is the centre): ``a_s = c + (a - c) phi'(0)``, with the
  slope ``phi'(0)`` of the profile along the fixed direction ``e_1`` (``t_S / t_U`` linear,
  ``1 / tanh(t_U / t_S)`` tanh): value ``c``, finite gradient.
* ``t_S ~ 0`` (``S(x)`` a point or a sliver): ``a_s -> c`` with zero gradient in ``a``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .actionset import (Tolerances, box_rows, ccw_vertex_rows, centroid_from_rows, interval, interval_centre,
                        polygon_centre, ray_exit, segments)
from .base import Safeguard
from .centre import analytic_centre, differentiable_centre, row_weights

__all__ = ["RayMaskSafeguard", "TanhRayMaskSafeguard", "ray_mask", "safe_centre"]


def safe_centre(G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
    """A point strictly inside ``{a : G a <= h}`` when it has an interior, ``[B, m]`` (see module docstring).

    m = 2: the polygon's vertex structure is found once without gradient (float64); if
    every polygon of the batch is regular the centroid is evaluated from its vertex rows
    alone (:func:`~reachsafe.safeguards.actionset.centroid_from_rows`, a fraction of the
    autograd nodes), otherwise by the general formula on all segments.

    m >= 3: the weighted analytic centre (:mod:`reachsafe.safeguards.centre`); the last 2m
    rows must be the box ``[I; -I]`` (weight 1), the others get the cut-depth weights.
    NaN where it does not exist (no interior).
    """
    if G.shape[-1] == 1:
        lo, hi, _ = interval(G, h, tol)
        return interval_centre(lo, hi)
    if G.shape[-1] >= 3:
        return _analytic(G, h)
    with torch.no_grad():
        idx_a, idx_b, regular = ccw_vertex_rows(segments(G.detach().double(), h.detach().double(), tol))
    if bool(regular.all()):
        return centroid_from_rows(G, h, idx_a, idx_b, tol.geom)
    return polygon_centre(segments(G, h, tol), tol.geom)


def _analytic(G: Tensor, h: Tensor) -> Tensor:
    """Weighted analytic centre with its implicit derivative (rows: facets, then the box)."""
    B, M, m = G.shape
    K = M - 2 * m
    hb = h[:, K:].detach()
    lo, hi = -hb[:, m:], hb[:, :m]
    w_facets = row_weights(G[:, :K], h[:, :K], lo, hi) if K else G.new_zeros(B, 0)
    w = torch.cat([w_facets, torch.ones(B, 2 * m, dtype=G.dtype, device=G.device)], 1)
    with torch.no_grad():
        c_star, ok = analytic_centre(G.detach(), h.detach(), w.detach(), 0.5 * (lo + hi))
        c_star = torch.where(ok.unsqueeze(-1), c_star, 0.5 * (lo + hi))
    c = differentiable_centre(c_star, G, h, w)
    return torch.where(ok.unsqueeze(-1), c, torch.full_like(c, float("nan")))


def _profile(r: Tensor, t_S: Tensor, t_U: Tensor, mapping: str, tiny: float) -> tuple[Tensor, Tensor]:
    """``phi(r)`` and the slope ``phi'(0)`` of the radial profile."""
    t_U = t_U.clamp_min(tiny)
    if mapping == "linear":
        return r * t_S / t_U, t_S / t_U
    ts = t_S.clamp_min(tiny)  # t_S normally; the factor t_S / ts -> 0 as t_S -> 0 so that a_s -> c
    den = torch.tanh(t_U / ts)
    return t_S * torch.tanh(r / ts) / den, t_S / (ts * den)


def ray_mask(actions: Tensor, G: Tensor, h: Tensor, lo: Tensor, hi: Tensor, tol: Tolerances,
             mapping: str = "linear") -> Tensor:
    """Ray-mask ``actions [B, m]`` into ``{a : G a <= h}`` (rows include the box); U = [lo, hi]."""
    B, m = actions.shape
    c = safe_centre(G, h, tol)
    diff = actions - c
    with torch.no_grad():  # a mask: nothing to differentiate
        dd = diff.detach()
        small = (dd * dd).sum(-1) <= tol.centre ** 2
        e1 = torch.zeros(1, m, dtype=diff.dtype, device=diff.device)
        e1[0, 0] = 1.0
    diff_safe = torch.where(small.unsqueeze(-1), e1, diff)
    t = diff_safe.norm(dim=-1)
    d = diff_safe / t.unsqueeze(-1)
    bG, bh = box_rows(lo, hi, B, 0.0)
    t_U = ray_exit(bG, bh, c, d, tol.parallel)
    t_S = torch.minimum(ray_exit(G, h, c, d, tol.parallel).clamp_min(0.0), t_U)
    phi, slope = _profile(torch.minimum(t, t_U), t_S, t_U, mapping, tol.centre)
    general = c + d * phi.unsqueeze(-1)
    at_centre = c + diff * slope.unsqueeze(-1)
    return torch.where(small.unsqueeze(-1), at_centre, general)


class RayMaskSafeguard(Safeguard):
    """Ray mask with the linear profile ``a_s = c + d r t_S / t_U`` (see module docstring)."""

    kind = "raymask"
    mapping = "linear"

    def centre(self, states: Tensor) -> Tensor:
        """The centre ``c(x)`` the mask uses, ``[B, m]`` (dtype of ``states``, differentiable)."""
        self._check_states(states)
        outs = []
        for s in range(0, states.shape[0], self._chunk_size()):
            d = self._prepare(states[s:s + self._chunk_size()], states.dtype)
            outs.append(safe_centre(d["G"], d["h"], d["tol"]))
        return torch.cat(outs) if outs else states.new_zeros(0, self.system.m)

    def _map(self, actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
        lo, hi = self._cast(self.a_lo, actions), self._cast(self.a_hi, actions)
        return ray_mask(actions, G, h, lo, hi, tol, self.mapping)


class TanhRayMaskSafeguard(RayMaskSafeguard):
    """Ray mask with the tanh profile ``a_s = c + d t_S tanh(r / t_S) / tanh(t_U / t_S)``."""

    kind = "raymask-tanh"
    mapping = "tanh"
