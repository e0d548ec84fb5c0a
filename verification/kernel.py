"""Grid estimates of the robust viability kernel inside the constraint box: how much of X any
robust control-invariant set could cover.  References, not proofs.

**2-D** (:func:`grid_kernel`): the box X is split into ``cells x cells`` equal cells.  A cell is kept while some action of
a grid of ``actions`` values in U sends the cell's centre, under every vertex of the noise
box W, into a kept cell:

    K_{j+1} = { cell in K_j : exists a in U_grid, for all w in vert(W): cell(f(centre, a, w)) in K_j },

iterated to a fixed point (K_0 = all cells).  The kept area is the estimate (only cell
centres are propagated).

**3-D to 6-D** (:func:`interpolated_kernel`): cell-centre rounding keeps every cell whose
centre moves less than a cell per step, which in higher dimensions (coarser grids, slow
coordinates) makes the estimate meaningless.  Instead a value function on the grid nodes,
``V_0(x) = min_i min(x_i - lo_i, hi_i - x_i) / h_i`` (normalised distance to the boundary of
X), is iterated with multilinear interpolation between nodes (a semi-Lagrangian scheme):

    V_{k+1}(x) = min( V_0(x),  max_{a in U_grid} min_{w in vert(W)} V_k(f(x, a, w)) ),

with ``V = -1`` outside X.  The estimate is the volume fraction of ``{V >= 0}`` at the fixed
point, measured on the nodes.  Interpolation smooths the kernel's boundary, so the estimate
is good to about a grid cell, which the command's output states.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["KernelEstimate", "grid_kernel", "interpolated_kernel", "action_grid"]


@dataclass
class KernelEstimate:
    area: float
    box_area: float
    cells: int
    actions: int
    iterations: int
    viable: np.ndarray  # bool [cells, cells], indexed [i_x0, i_x1]
    lo: np.ndarray
    hi: np.ndarray

    @property
    def fraction(self) -> float:
        return self.area / self.box_area


def grid_kernel(system, cells: int = 400, actions: int = 81, max_iters: int = 10_000,
                progress: Callable[[int, int], None] | None = None) -> KernelEstimate:
    """Fixed-point iteration of the grid kernel (see module docstring); 2-D systems only."""
    if system.n != 2:
        raise ValueError(f"grid kernel estimates are for 2-D systems; {system.name} has n={system.n}")
    lo, hi = system.constraint_lo, system.constraint_hi
    h = (hi - lo) / cells
    g0 = lo[0] + (np.arange(cells) + 0.5) * h[0]
    g1 = lo[1] + (np.arange(cells) + 0.5) * h[1]
    centres = np.stack(np.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 2)  # [C, 2]
    acts = action_grid(system.m, actions)
    noise = np.array(list(itertools.product(*zip(system.noise_lo, system.noise_hi))))  # [V, p]
    C, K, V = len(centres), len(acts), len(noise)
    nxt = system.step_unwrapped(centres[:, None, None, :], acts[None, :, None, :], noise[None, None, :, :])  # [C,K,V,2]
    idx = np.floor((nxt - lo) / h).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < cells), axis=-1)
    flat = np.where(inside, idx[..., 0] * cells + idx[..., 1], C)  # C = "outside" sentinel
    flat = flat.astype(np.int32)
    viable = np.ones(C + 1, dtype=bool)
    viable[C] = False
    it = 0
    for it in range(1, max_iters + 1):
        ok = viable[flat].all(axis=2).any(axis=1)
        new = viable.copy()
        new[:C] &= ok
        changed = int((new != viable).sum())
        viable = new
        if progress:
            progress(it, int(viable[:C].sum()))
        if changed == 0:
            break
    box_area = float(np.prod(hi - lo))
    kept = viable[:C].reshape(cells, cells)
    return KernelEstimate(area=float(kept.mean() * box_area), box_area=box_area, cells=cells, actions=K,
                          iterations=it, viable=kept, lo=lo, hi=hi)


def action_grid(m: int, actions: int) -> np.ndarray:
    """About ``actions`` points of ``U = [-1, 1]^m``: a regular grid with ``round(actions^(1/m))`` (>= 2) per axis."""
    if m == 1:
        return np.linspace(-1, 1, actions)[:, None]
    per = max(2, int(round(actions ** (1 / m))))
    return np.array(list(itertools.product(np.linspace(-1, 1, per), repeat=m)))


@dataclass
class InterpolatedKernel:
    """Result of :func:`interpolated_kernel`."""

    fraction: float  # of X, on the grid nodes
    volume: float
    box_volume: float
    nodes: int  # per axis
    actions: int
    iterations: int
    converged: bool


def _stencil(pts: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multilinear interpolation stencil at grid coordinates ``pts`` [N, n] (0 .. nodes-1):
    node indices [N, 2^n] (int32), weights [N, 2^n] (float32), inside [N] (bool)."""
    n = pts.shape[1]
    inside = np.all((pts >= 0) & (pts <= nodes - 1), axis=1)
    p = np.clip(pts, 0, nodes - 1 - 1e-6)
    i0 = np.floor(p).astype(np.int64)
    t = p - i0
    strides = np.array([nodes ** (n - 1 - d) for d in range(n)], dtype=np.int64)
    base = i0 @ strides
    corners = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1  # [2^n, n]
    idx = (base[:, None] + corners @ strides).astype(np.int32)
    w = np.ones((len(pts), 2 ** n), dtype=np.float32)
    for d in range(n):
        w *= np.where(corners[None, :, d] == 1, t[:, d:d + 1], 1.0 - t[:, d:d + 1]).astype(np.float32)
    return idx, w, inside


def interpolated_kernel(system, nodes: int | None = None, actions: int = 9, max_iters: int = 5000,
                        tol: float = 1e-6, progress: Callable[[int, float], None] | None = None,
                        chunk: int = 200_000) -> InterpolatedKernel:
    """Semi-Lagrangian kernel estimate for 3-D to 6-D systems (see module docstring).

    :param nodes: grid nodes per axis (default 61 for 3-D, 25 for 4-D, 13 for 5-D, 9 for 6-D).
    :param actions: about this many grid actions (per axis ``round(actions^(1/m))``).
    """
    n = system.n
    nodes = nodes or {3: 61, 4: 25, 5: 13, 6: 9}.get(n, 9)
    lo, hi = system.constraint_lo, system.constraint_hi
    h = (hi - lo) / (nodes - 1)
    axes = [lo[d] + h[d] * np.arange(nodes) for d in range(n)]
    X = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, n)
    acts = action_grid(system.m, actions)
    noise = np.array(list(itertools.product(*zip(system.noise_lo, system.noise_hi)))) if system.p else np.zeros((1, 0))
    N = len(X)
    V0 = np.min(np.minimum(X - lo, hi - X) / (0.5 * (hi - lo)), axis=1)
    # interpolation stencils of every successor (the dynamics are fixed): [N * K * V, 2^n]
    KV = len(acts) * len(noise)
    idx = np.empty((N * KV, 2 ** n), dtype=np.int32)
    wts = np.empty((N * KV, 2 ** n), dtype=np.float32)
    inside = np.empty(N * KV, dtype=bool)
    for s in range(0, N, chunk):
        xs = X[s:s + chunk]
        pts = np.empty((len(xs), len(acts), len(noise), n))
        for ka, a in enumerate(acts):
            for kv, w in enumerate(noise):
                nxt = system.step_unwrapped(xs, np.broadcast_to(a, (len(xs), system.m)),
                                            np.broadcast_to(w, (len(xs), system.p)))
                pts[:, ka, kv] = (nxt - lo) / h
        sl = slice(s * KV, (s + len(xs)) * KV)
        idx[sl], wts[sl], inside[sl] = _stencil(pts.reshape(-1, n), nodes)
    V = V0.copy()
    it, converged = 0, False
    for it in range(1, max_iters + 1):
        vals = np.where(inside, np.einsum("pc,pc->p", V[idx].astype(np.float32), wts), -1.0)
        new = np.minimum(V0, vals.reshape(N, len(acts), len(noise)).min(axis=2).max(axis=1))
        change = float(np.max(np.abs(new - V)))
        V = new
        if progress:
            progress(it, float(np.mean(V >= 0)))
        if change < tol:
            converged = True
            break
    frac = float(np.mean(V >= 0))
    box = float(np.prod(hi - lo))
    return InterpolatedKernel(frac, frac * box, box, nodes, len(acts), it, converged)
