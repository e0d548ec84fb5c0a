"""The ray mask for m <= 2 as one autograd node: values without a graph, the Jacobian in closed form.

:mod:`reachsafe.safeguards.raymask` has the map; this module evaluates it from the rows it depends
on, in float64 without recording a graph, and returns it through a :class:`torch.autograd.Function`
whose backward is the exact vector-Jacobian product of the same formulas (one node instead of a
hundred; on a CPU each node costs more than the arithmetic it does at these sizes).

Rows involved (``loc [B, Q]``, local row indices): the centre's rows (m = 1: the two rows that bound
the interval; m = 2: each edge's row, then the rows that end the edges, see :func:`_Centroid`) and,
last, the exit row ``e`` of ``S(x)`` along the ray.  Forward, for the centre ``C``::

    diff = a - C,  t = |diff|,  d = diff / t                   (d = e_1 when t <= tol.centre: "small")
    t_S = min(max(N / D, 0), t_U),   N = h_e - g_e . C,  D = g_e . d
    t_U = (bound_j - C_j) / d_j                                 (j: the coordinate where U ends first)
    r = min(t, t_U),   a_s = C + d phi(r, t_S, t_U)             (small: a_s = C + diff phi'(0))

with ``phi`` linear (``r t_S / t_U``) or tanh (``t_S tanh(r / t_S) / tanh(t_U / t_S)``).  Backward: the
chain rule through these formulas, branch by branch (which of ``t, t_U`` is the smaller, whether ``N / D``
was clipped), then through the centre (:func:`_centre_vjp`), giving ``dL/da`` and ``dL/dg_q, dL/dh_q``
for the involved rows.  At the measure-zero switching points the derivative of the branch taken is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .actionset import _BIG, Tolerances
from .polygon import Arena, edge_rows

__all__ = ["RayPlan", "ray_plan", "RowsRayTail", "StateRayTail", "interval_ray", "interval_ray_vjp"]


@dataclass
class RayPlan:
    """Structure and values of the ray mask for a batch (module docstring), float64, no graph."""

    out: Tensor  # [B, m] the ray mask's value
    saved: dict  # what the backward needs


def _centre_rows(G: Tensor, h: Tensor, tol: Tolerances, box_last: bool, arena: Arena | None = None
                 ) -> tuple[Tensor | None, Tensor, Tensor | None, Tensor, Tensor]:
    """Local rows of the centre (module docstring): ``(f, rows, w, G_f, h_f)``.

    m = 1: ``f = None``, ``rows [B, 2]`` (the rows of the lower and upper bound), ``w = None``.
    m = 2: the states ``f [b]`` whose polygon is not the box alone (``None``: all states), with their
    rows ``G_f, h_f``; ``rows [b, 3M]``: each slot's edge row, then the rows that end the edges;
    ``w [b, M]`` the edge weights.  With ``box_last``, the other states' facet rows are all padding
    and their polygon is the box.
    """
    B, M, m = G.shape
    if m == 1:
        g = G[..., 0]
        ratio = h / (g + (g == 0).to(g.dtype))  # up to _BIG / 1 for padding rows: masked by far larger values
        i_hi = (ratio + 1e300 * (g <= tol.parallel).to(g.dtype)).argmin(-1)
        i_lo = (ratio - 1e300 * (g >= -tol.parallel).to(g.dtype)).argmax(-1)
        return None, torch.stack([i_lo, i_hi], -1), None, G, h
    f = None
    if box_last:
        K = M - 4
        f = (G[:, :K, 0].abs() + G[:, :K, 1].abs()).amax(-1).gt(0).nonzero().squeeze(-1) if K else \
            torch.zeros(0, dtype=torch.long, device=G.device)
        G, h = G[f], h[f]
        if f.numel() == 0:
            return f, torch.zeros(0, 3 * M, dtype=torch.long, device=G.device), G.new_zeros(0, M), G, h
    edge, j_lo, j_hi, _ = edge_rows(G, h, tol, arena)
    b = G.shape[0]
    e0 = edge.to(torch.int8).argmax(-1, keepdim=True)  # slots that are not edges repeat the first edge's start
    i = torch.arange(M, device=G.device).expand(b, M)
    I = torch.where(edge, i, e0)
    J = torch.where(torch.cat([edge, edge], 1), torch.cat([j_lo, j_hi], 1), j_lo.gather(1, e0))
    return f, torch.cat([I, J], 1), edge.to(G.dtype), G, h


def _centroid(Gi: Tensor, hi: Tensor, Gj: Tensor, hj: Tensor, w: Tensor, tiny: float) -> tuple[Tensor, dict]:
    """Area centroid from the edges (see :func:`_centre_vjp`); ``[B, 2]`` and what the backward needs."""
    M = Gi.shape[1]
    # each edge row twice (start and end point); torch.cat: Tensor.repeat costs several times more on a CPU
    gi0, gi1, h1 = (torch.cat([t, t], 1) for t in (Gi[..., 0], Gi[..., 1], hi))
    gj0, gj1 = Gj[..., 0], Gj[..., 1]
    det = gi0 * gj1 - gi1 * gj0
    Vx, Vy = (h1 * gj1 - hj * gi1) / det, (gi0 * hj - gj0 * h1) / det  # [B, 2M]: start points, then end points
    nw = w.sum(-1, keepdim=True).clamp_min(1.0)
    ox = ((Vx[:, :M] + Vx[:, M:]) * w).sum(-1, keepdim=True) / (2 * nw)  # the vertex mean: a fixed origin
    oy = ((Vy[:, :M] + Vy[:, M:]) * w).sum(-1, keepdim=True) / (2 * nw)
    ux, uy, vx, vy = Vx[:, :M] - ox, Vy[:, :M] - oy, Vx[:, M:] - ox, Vy[:, M:] - oy
    cross = (ux * vy - uy * vx) * w
    area = cross.sum(-1, keepdim=True)
    big = area > 2 * tiny
    k = 1.0 / (3.0 * torch.where(big, area, 1.0))
    cx = ((ux + vx) * cross).sum(-1, keepdim=True) * k * big
    cy = ((uy + vy) * cross).sum(-1, keepdim=True) * k * big
    saved = dict(gi0=gi0, gi1=gi1, gj0=gj0, gj1=gj1, det=det, Vx=Vx, Vy=Vy, ux=ux, uy=uy, vx=vx, vy=vy,
                 cross=cross, w=w, nw=nw, k=k, big=big, cx=cx, cy=cy)
    return torch.cat([ox + cx, oy + cy], -1), saved


def _centroid_vjp(s: dict, gC: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``dL/dGi`` (two components), ``dL/dhi``, ``dL/dGj`` (two components), ``dL/dhj`` of the centroid
    for ``gC = dL/dC`` ``[B, 2]``, each ``[B, M]`` (edge rows) or ``[B, 2M]`` (end rows).

    With ``c_e = w_e (u_e x v_e)``, ``A = sum c_e``, ``k = 1/(3A)`` and ``gamma_e = gC . (u_e + v_e) -
    3 gC . (C - o)`` (C does not depend on the origin o for a closed polygon)::

        dL/du_e = k (c_e gC + gamma_e w_e (v_e2, -v_e1)),   dL/dv_e = k (c_e gC + gamma_e w_e (-u_e2, u_e1))

    (``dL/dV = w gC / (2 sum w)``, the vertex mean, where ``A <= tiny``), then through each 2x2 solve,
    ``y = [g_i; g_j]^{-T} dL/dV``: ``dL/dh_i = y_1``, ``dL/dh_j = y_2``, ``dL/dg_i = -y_1 V``, ``dL/dg_j = -y_2 V``.
    """
    M = s["ux"].shape[1]
    g0, g1 = gC[:, :1], gC[:, 1:]
    ux, uy, vx, vy, cross, w = s["ux"], s["uy"], s["vx"], s["vy"], s["cross"], s["w"]
    gamma = (g0 * (ux + vx) + g1 * (uy + vy) - 3.0 * (g0 * s["cx"] + g1 * s["cy"])) * w
    kb = s["k"] * s["big"]
    mean = (~s["big"]).to(gC.dtype) * w / (2 * s["nw"])
    gVx = torch.cat([kb * (cross * g0 + gamma * vy) + mean * g0, kb * (cross * g0 - gamma * uy) + mean * g0], 1)
    gVy = torch.cat([kb * (cross * g1 - gamma * vx) + mean * g1, kb * (cross * g1 + gamma * ux) + mean * g1], 1)
    det, gi0, gi1, gj0, gj1, Vx, Vy = s["det"], s["gi0"], s["gi1"], s["gj0"], s["gj1"], s["Vx"], s["Vy"]
    y1 = (gVx * gj1 - gj0 * gVy) / det
    y2 = (gi0 * gVy - gVx * gi1) / det
    gix, giy = -y1 * Vx, -y1 * Vy  # [b, 2M]: the edge row i of both end points
    return (gix[:, :M] + gix[:, M:], giy[:, :M] + giy[:, M:], y1[:, :M] + y1[:, M:], -y2 * Vx, -y2 * Vy, y2)


@torch.no_grad()
def ray_plan(a: Tensor, G: Tensor, h: Tensor, lo: Tensor, hi: Tensor, tol: Tolerances, mapping: str,
             box_last: bool = False, arena: Arena | None = None) -> RayPlan:
    """The ray mask's structure and value (module docstring) for ``a [B, m]``, m <= 2, float64.

    ``G [B, M, m]``, ``h [B, M]`` the rows of ``S(x)`` (box rows last when ``box_last``); ``lo, hi``
    the untightened box U; ``arena``: scratch buffers (:class:`~reachsafe.safeguards.polygon.Arena`).
    """
    B, M, m = G.shape
    if m == 1:
        return _plan_interval(a, G, h, lo, hi, tol, mapping)
    f, crow, w, Gs, hs = _centre_rows(G, h, tol, box_last, arena)
    s: dict[str, Any] = {"m": m, "mapping": mapping, "f": f, "crow": crow, "shape": (B, M, m)}
    Gc = Gs.gather(1, crow.unsqueeze(-1).expand(*crow.shape, m))
    hc = hs.gather(1, crow)
    Cs, s["cen"] = _centroid(Gc[:, :M], hc[:, :M], Gc[:, M:], hc[:, M:], w, tol.geom)  # type: ignore[arg-type]
    if f is None:
        C = Cs
    else:
        hb = h[:, M - 4:]
        C = (0.5 * (hb[:, :2] - hb[:, 2:])).index_put((f,), Cs)  # the box's centre elsewhere
    diff = a - C
    small = (diff * diff).sum(-1, keepdim=True) <= tol.centre ** 2
    e1 = torch.zeros(1, m, dtype=a.dtype, device=a.device)
    e1[0, 0] = 1.0
    dirv = torch.where(small, e1, diff)
    t = dirv.norm(dim=-1, keepdim=True)
    d = dirv / t
    # exit row of S(x) along d (rows with g . d <= parallel never bound the ray)
    gd = G[..., 0] * d[:, :1]
    slack = h - G[..., 0] * C[:, :1]
    for j in range(1, m):
        gd = gd + G[..., j] * d[:, j:j + 1]
        slack = slack - G[..., j] * C[:, j:j + 1]
    up = gd > tol.parallel
    e = torch.where(up, slack / torch.where(up, gd, 1.0), _BIG).argmin(-1, keepdim=True)
    ge = G.gather(1, e.unsqueeze(-1).expand(B, 1, m)).squeeze(1)
    he = h.gather(1, e)
    Nn = he - (ge * C).sum(-1, keepdim=True)
    Dd = (ge * d).sum(-1, keepdim=True)
    raw = Nn / Dd
    # exit from the (untightened) box U: the coordinate that reaches its bound first
    pos, neg = d > tol.parallel, d < -tol.parallel
    bound = torch.where(pos, hi, lo)
    tUj = torch.where(pos | neg, (bound - C) / torch.where(pos | neg, d, 1.0), _BIG)
    t_U, jU = tUj.min(-1, keepdim=True)
    tS = torch.minimum(raw.clamp_min(0.0), t_U)
    r = torch.minimum(t, t_U)
    s["tiny"] = tiny = tol.centre
    phi, slope, tUc = _profile(s, r, tS, t_U, mapping)
    out = torch.where(small, C + diff * slope, C + d * phi)
    s.update(C=C, diff=diff, small=small, t=t, d=d, e=e, ge=ge, Nn=Nn, Dd=Dd, raw=raw, t_U=t_U, jU=jU, tS=tS, r=r,
             tUc=tUc, slope=slope, phi=phi, tiny=tiny)
    return RayPlan(out=out, saved=s)


def _profile_partials(s: dict, r: Tensor, tS: Tensor, tUc: Tensor, uncl: Tensor, gphi: Tensor,
                      gslope: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``dL/dr, dL/dt_S, dL/dt_U`` through ``phi(r, t_S, t_U)`` (weight ``gphi``) and ``phi'(0)`` (weight
    ``gslope``)."""
    tiny = s["tiny"]
    f64 = gphi.dtype
    if s["mapping"] == "linear":
        gr = gphi * tS / tUc
        gtS = gphi * r / tUc + gslope / tUc
        gtU = -(gphi * r + gslope) * tS / (tUc * tUc) * uncl
        return gr, gtS, gtU
    ts, T1, T2 = s["ts"], s["T1"], s["T2"]
    sat = (tS > tiny).to(f64)  # ts = tS (else the constant tiny)
    s1, s2 = 1.0 - T1 * T1, 1.0 - T2 * T2
    gr = gphi * tS * s1 / (ts * T2)
    gtS = gphi * (T1 / T2 + sat * (-(r / ts) * s1 / T2 + (tUc / ts) * T1 * s2 / (T2 * T2)))
    gtU = -gphi * tS * T1 * s2 / (ts * T2 * T2) * uncl
    # slope = tS / (ts T2): 1 / T2 when ts = tS, tS / (tiny T2) otherwise
    gtS = gtS + gslope * (sat * s2 * tUc / (T2 * T2 * ts * ts) + (1.0 - sat) / (ts * T2))
    gtU = gtU - gslope * tS * s2 / (ts * ts * T2 * T2) * uncl
    return gr, gtS, gtU


def _profile(s: dict, r: Tensor, tS: Tensor, t_U: Tensor, mapping: str) -> tuple[Tensor, Tensor, Tensor]:
    """``(phi, slope, tUc)`` of the radial profile (``tUc = max(t_U, tiny)``); stores tanh terms in ``s``."""
    tiny = s["tiny"]
    tUc = t_U.clamp_min(tiny)
    if mapping == "linear":
        slope = tS / tUc
        return r * slope, slope, tUc
    ts = tS.clamp_min(tiny)
    T1, T2 = torch.tanh(r / ts), torch.tanh(tUc / ts)
    s.update(ts=ts, T1=T1, T2=T2)
    return tS * T1 / T2, tS / (ts * T2), tUc


def interval_ray(a: Tensor, lb: Tensor, ub: Tensor, lo: Tensor, hi: Tensor, mapping: str, tiny: float
                 ) -> tuple[Tensor, dict]:
    """The ray mask on an interval ``S = [l, u]`` inside ``U = [lo, hi]`` (m = 1), float64, no graph.

    Centre ``C = (l + u)/2``; along the side ``sg = +-1`` of ``a``: ``t = sg (a - C)``, ``t_S = (u - l)/2``
    (clipped to ``[0, t_U]``), ``t_U = sg (U_sg - C)`` with ``U_sg`` the bound of U on that side,
    ``a_s = C + sg phi(min(t, t_U))`` (``|a - C| <= tiny``: ``a_s = C + (a - C) phi'(0)``).
    ``a, lb, ub [B, 1]``, ``lo, hi [1]``; returns ``a_s [B, 1]`` and what :func:`interval_ray_vjp` needs.
    """
    C = 0.5 * (lb + ub)
    diff = a - C
    small = diff.abs() <= tiny
    sg = torch.where(small | (diff > 0), 1.0, -1.0)
    t = diff.abs()
    t_U = sg * (torch.where(sg > 0, hi, lo) - C)
    raw = 0.5 * (ub - lb)
    tS = torch.minimum(raw.clamp_min(0.0), t_U)
    r = torch.minimum(t, t_U)
    s: dict[str, Any] = {"m": 1, "mapping": mapping, "tiny": tiny}
    phi, slope, tUc = _profile(s, r, tS, t_U, mapping)
    out = torch.where(small, C + diff * slope, C + sg * phi)
    s.update(diff=diff, small=small, sg=sg, t=t, t_U=t_U, raw=raw, tS=tS, r=r, tUc=tUc, slope=slope, phi=phi)
    return out, s


def interval_ray_vjp(s: dict, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(dL/da, dL/dl, dL/du)``, each ``[B, 1]``, of :func:`interval_ray`'s value for ``v = dL/da_s``."""
    small, sg, tS, t_U, r, tUc, raw = (s[k] for k in ("small", "sg", "tS", "t_U", "r", "tUc", "raw"))
    zero = v.new_zeros(())
    uncl = (t_U > s["tiny"]).to(v.dtype)
    gr, gtS, gtU = _profile_partials(s, r, tS, tUc, uncl, torch.where(small, zero, v * sg),
                                     torch.where(small, v * s["diff"], zero))
    r_is_t = s["t"] < t_U  # r = min(t, t_U)
    gtU = gtU + torch.where(r_is_t, zero, gr)
    cap = raw > t_U  # t_S = min(max(raw, 0), t_U)
    graw = torch.where(cap | (raw <= 0), zero, gtS)
    gtU = gtU + torch.where(cap, gtS, zero)
    # out = C + sg phi (general) or C + diff slope (small); t = sg (a - C), t_U = sg (U - C), raw = (u - l) / 2
    ga = torch.where(small, v * s["slope"], torch.where(r_is_t, gr, zero) * sg)
    half_C, half_raw = 0.5 * (v - ga - gtU * sg), 0.5 * graw
    return ga, half_C - half_raw, half_C + half_raw


def _plan_interval(a: Tensor, G: Tensor, h: Tensor, lo: Tensor, hi: Tensor, tol: Tolerances, mapping: str) -> RayPlan:
    """m = 1 on explicit rows: ``S = [l, u]`` (``l = h_i / g_i`` of the row bounding it below, ``u`` above), then
    :func:`interval_ray`."""
    B, M, _ = G.shape
    crow = _centre_rows(G, h, tol, False)[1]
    Gc = G[..., 0].gather(1, crow)
    lu = h.gather(1, crow) / Gc  # [B, 2]: l, u
    out, s = interval_ray(a, lu[:, :1], lu[:, 1:], lo, hi, mapping, tol.centre)
    s.update(crow=crow, Gc=Gc, lu=lu, shape=(B, M, 1))
    return RayPlan(out=out, saved=s)


def _interval_vjp(s: dict, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_ray_vjp` for :func:`_plan_interval`."""
    ga, gl, gu = interval_ray_vjp(s, v)
    glu = torch.cat([gl, gu], 1)
    Gc, lu, crow = s["Gc"], s["lu"], s["crow"]
    ghc = glu / Gc  # l = h / g: dl/dh = 1/g, dl/dg = -l/g
    B, M, _ = s["shape"]
    gG = v.new_zeros(B, M).scatter_add_(1, crow, -ghc * lu).unsqueeze(-1)
    gh = v.new_zeros(B, M).scatter_add_(1, crow, ghc)
    return ga, gG, gh


def _ray_vjp(s: dict, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(dL/da [B, m], dL/dG [B, M, m], dL/dh [B, M])`` of :func:`ray_plan`'s value for ``v = dL/da_s``."""
    if s["m"] == 1:
        return _interval_vjp(s, v)
    C, diff, small, t, d, tS, t_U, r, tUc, slope, phi, tiny = (s[k] for k in (
        "C", "diff", "small", "t", "d", "tS", "t_U", "r", "tUc", "slope", "phi", "tiny"))
    f64 = v.dtype
    smallf = small.to(f64)
    gen = 1.0 - smallf
    uncl = (t_U > tiny).to(f64)  # t_U was not clamped in the profile
    # --- profile: general branch phi(r, tS, tU), small branch slope(tS, tU) = phi'(0)
    gphi = (v * d).sum(-1, keepdim=True) * gen
    gslope = (v * diff).sum(-1, keepdim=True) * smallf
    gr, gtS, gtU = _profile_partials(s, r, tS, tUc, uncl, gphi, gslope)
    # r = min(t, tU)
    r_is_t = (t < t_U).to(f64)
    gt = gr * r_is_t
    gtU = gtU + gr * (1.0 - r_is_t)
    # tS = min(max(raw, 0), tU)
    raw = s["raw"]
    cap = (raw > t_U).to(f64)
    graw = gtS * (raw > 0).to(f64) * (1.0 - cap)
    gtU = gtU + gtS * cap
    Dd, ge = s["Dd"], s["ge"]
    gN = graw / Dd
    gD = -graw * raw / Dd
    gC = v - gN * ge
    gge = -gN * C + gD * d
    ghe = gN
    gd = v * phi + gD * ge
    # tU = (bound_j - C_j) / d_j at j = jU
    jU = s["jU"]
    dj = d.gather(1, jU)
    oh = torch.zeros_like(d).scatter_(1, jU, 1.0)
    gC = gC - oh * (gtU / dj)
    gd = gd - oh * (gtU * t_U / dj)
    # d = diff / t, t = |diff| (general branch); small: a_s = C + diff slope
    gdiff = gen * ((gd - d * (d * gd).sum(-1, keepdim=True)) / t + gt * d) + smallf * v * slope
    ga = gdiff
    gC = gC - gdiff
    # centre and exit row -> gradients of the local rows G [B, M, 2], h [B, M], by component
    B, M, _ = s["shape"]
    f, crow = s["f"], s["crow"]
    e = s["e"]
    gGx = v.new_zeros(B, M).scatter_add_(1, e, gge[:, :1])
    gGy = v.new_zeros(B, M).scatter_add_(1, e, gge[:, 1:])
    gh = v.new_zeros(B, M).scatter_add_(1, e, ghe)
    if f is None or f.numel():
        gix, giy, ghi, gjx, gjy, ghj = _centroid_vjp(s["cen"], gC if f is None else gC[f])
        I, J = crow[:, :M], crow[:, M:]
        b = crow.shape[0]
        parts = []
        for gi, gj in ((gix, gjx), (giy, gjy), (ghi, ghj)):
            parts.append(gi.new_zeros(b, M).scatter_add_(1, I, gi).scatter_add_(1, J, gj))
        if f is None:
            gGx, gGy, gh = gGx + parts[0], gGy + parts[1], gh + parts[2]
        else:
            gGx, gGy, gh = gGx.index_add_(0, f, parts[0]), gGy.index_add_(0, f, parts[1]), gh.index_add_(0, f, parts[2])
    return ga, torch.stack([gGx, gGy], -1), gh


class RowsRayTail(torch.autograd.Function):
    """The ray mask's value with the closed-form backward, differentiable in ``a`` and the rows ``G, h``.

    Inputs ``a [B, m]``, ``G [B, M, m]``, ``h [B, M]`` (with their graph) and the :class:`RayPlan`.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, G: Tensor, h: Tensor, plan: RayPlan) -> Tensor:
        ctx.plan, ctx.a_dtype = plan, a.dtype
        return plan.out.to(a.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, v: Tensor) -> tuple[Tensor | None, ...]:
        ga, gG, gh = _ray_vjp(ctx.plan.saved, v.to(ctx.plan.out.dtype))
        return ga.to(ctx.a_dtype), gG, gh, None


class StateRayTail(torch.autograd.Function):
    """The ray mask's value for a safeguard, differentiable in ``a`` and ``cBE`` (the model's
    :meth:`~reachsafe.systems.CompiledSystem.affine_flat`): the local rows' gradients are mapped by
    :meth:`~reachsafe.safeguards.base.Chunk.local_vjp`."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, cBE: Tensor, plan: RayPlan, chunk: Any) -> Tensor:
        ctx.plan, ctx.a_dtype, ctx.chunk = plan, a.dtype, chunk
        return plan.out.to(a.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, v: Tensor) -> tuple[Tensor | None, ...]:
        ga, gG, gh = _ray_vjp(ctx.plan.saved, v.to(ctx.plan.out.dtype))
        return ga.to(ctx.a_dtype), ctx.chunk.local_vjp(gG, gh), None, None
