"""Shared pieces of the safeguards: tolerances, the action box's rows, the interval of m = 1.

Every function works on a batch of B independent constraint systems ``G [B, M, m]``,
``h [B, M]`` (the M rows already include the action box U), in any float dtype, on any
device, without loops over the batch.

m = 1 — ``S`` is an interval::

    lo = max({-inf} u {h_i / g_i : g_i < 0}),   hi = min({+inf} u {h_i / g_i : g_i > 0})

(m = 2 polygons: :mod:`reachsafe.safeguards.polygon`.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["rowdot", "interval", "interval_centre", "box_rows", "Tolerances", "tolerances"]

_BIG = 1e30  # "no bound" placeholder: finite, so 0 * _BIG = 0 in every backward pass
_SMALL = 4096  # rowdot: inputs with at most this many entries use one multiply and one sum


def rowdot(X: Tensor, v: Tensor) -> Tensor:
    """``sum_j X[..., j] v[..., j]`` over a short last axis (m, p <= 2 here), ``X [B, k, q]``.

    ``v`` is ``[q]`` or ``[B, q]``.  Large inputs are written out per column because torch's
    reductions over a last axis of length 2 are several times slower than two fused
    elementwise ops; small ones (a training batch of a few environments), where the fixed
    cost per operation and per autograd node dominates, take the two-operation ``(X v).sum``.
    """
    if v.dim() == 2:
        v = v.unsqueeze(-2)
    if X.numel() <= _SMALL:
        return (X * v).sum(-1)
    out = X[..., 0] * v[..., 0]
    for j in range(1, X.shape[-1]):
        out = out + X[..., j] * v[..., j]
    return out


@dataclass(frozen=True)
class Tolerances:
    """Numerical tolerances for one dtype.

    ``tighten``: every row of ``G a <= h`` is shifted to ``h - tighten`` (state rows are
    normalised, so this is a distance in state space; for the box rows, in action space) so
    that the returned action keeps a margin larger than the dtype's rounding error.
    ``geom``: slack accepted when deciding that a segment/interval is non-empty.
    ``parallel``: ``|q_ij|`` below this counts as parallel; ``|g|`` below it as an
    action-independent row.  ``centre``: ``|a - c|`` below this is the ray-mask centre case.
    """

    tighten: float
    geom: float
    parallel: float
    centre: float


def tolerances(dtype: torch.dtype) -> Tolerances:
    """Default :class:`Tolerances` for ``dtype`` (float64 vs. lower precision)."""
    if dtype == torch.float64:
        return Tolerances(tighten=1e-9, geom=1e-12, parallel=1e-12, centre=1e-12)
    return Tolerances(tighten=1e-5, geom=1e-7, parallel=1e-6, centre=1e-6)


_BOX_CACHE: dict[tuple, tuple[Tensor, Tensor]] = {}


def box_rows(lo: Tensor, hi: Tensor, batch: int, tighten: float) -> tuple[Tensor, Tensor]:
    """Rows of the action box ``lo <= a <= hi`` as ``G [B, 2m, m]``, ``h [B, 2m]`` (shrunk by ``tighten``).

    ``G = [I; -I]``, ``h = [hi; -lo] - tighten``, expanded over the batch (read-only views).
    The few distinct boxes (one per safeguard, dtype and tightening) are built once and cached.
    """
    key = None
    if not (lo.requires_grad or hi.requires_grad):
        key = (tuple(lo.tolist()), tuple(hi.tolist()), lo.dtype, lo.device, float(tighten))
        hit = _BOX_CACHE.get(key)
        if hit is not None:
            return hit[0].expand(batch, -1, -1), hit[1].expand(batch, -1)
    m = lo.shape[0]
    eye = torch.eye(m, dtype=lo.dtype, device=lo.device)
    G1 = torch.cat([eye, -eye], 0).unsqueeze(0)
    h1 = (torch.cat([hi, -lo], 0) - tighten).unsqueeze(0)
    if key is not None and len(_BOX_CACHE) < 64:
        _BOX_CACHE[key] = (G1, h1)
    return G1.expand(batch, -1, -1), h1.expand(batch, -1)


# ------------------------------------------------------------------------ m = 1
def interval(G: Tensor, h: Tensor, tol: Tolerances) -> tuple[Tensor, Tensor, Tensor]:
    """``S = [lo, hi]`` for m = 1.  ``G [B, M, 1]``, ``h [B, M]`` -> ``lo, hi [B]``, ``empty [B]``.

    Rows with ``|g| <= tol.parallel`` do not bound ``a``; they make ``S`` empty if ``h < -tol.geom``.
    """
    g = G[..., 0]
    pos, neg = g > tol.parallel, g < -tol.parallel
    g_safe = torch.where(pos | neg, g, torch.ones_like(g))
    ratio = h / g_safe
    hi = torch.where(pos, ratio, torch.full_like(ratio, _BIG)).min(-1).values
    lo = torch.where(neg, ratio, torch.full_like(ratio, -_BIG)).max(-1).values
    bad_row = (~(pos | neg)) & (h < -tol.geom)
    empty = (lo > hi + tol.geom) | bad_row.any(-1)
    return lo, hi, empty


def interval_centre(lo: Tensor, hi: Tensor) -> Tensor:
    """Midpoint ``(lo + hi) / 2`` as ``[B, 1]``: the Chebyshev centre of the interval."""
    return (0.5 * (lo + hi)).unsqueeze(-1)
