"""Grid estimate of the robust viability kernel of a 2-D system inside its constraint box.

The box X is split into ``cells x cells`` equal cells.  A cell is kept while some action of
a grid of ``actions`` values in U sends the cell's centre, under every vertex of the noise
box W, into a kept cell:

    K_{j+1} = { cell in K_j : exists a in U_grid, for all w in vert(W): cell(f(centre, a, w)) in K_j },

iterated to a fixed point (K_0 = all cells).  The kept area is the estimate.  It is a
reference for how much of X any invariant set could cover, not a proof (only cell
centres are propagated).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["KernelEstimate", "grid_kernel", "exit_time_kernel", "estimate_kernel", "default_resolution",
           "DEFAULT_CELLS"]

DEFAULT_CELLS = {2: 400, 3: 80, 4: 26, 5: 14, 6: 9}  # per axis: 400^2 in 2-D, else about 500,000 cells


def _viable_fixed_point(succ: np.ndarray, max_iters: int,
                        progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
    """Greatest fixed point ``K = { c in K : exists k, for all v: succ[c, k, v] in K }``.

    :param succ: ``[C, K, V]`` successor cell of cell ``c`` under action ``k`` and noise vertex
        ``v``; the value ``C`` stands for "outside X" (never viable).
    :returns: ``(viable [C] bool, iterations)``; ``progress(iteration, kept)`` after each sweep.
    """
    C = succ.shape[0]
    viable = np.ones(C + 1, dtype=bool)
    viable[C] = False
    iterations = 0
    while iterations < max_iters:
        iterations += 1
        new = viable.copy()
        new[:C] &= viable[succ].all(axis=2).any(axis=1)
        changed = bool((new != viable).any())
        viable = new
        if progress:
            progress(iterations, int(viable[:C].sum()))
        if not changed:
            break
    return viable[:C], iterations


@dataclass
class KernelEstimate:
    area: float
    box_area: float
    cells: int
    actions: int
    iterations: int
    viable: np.ndarray  # bool [cells] * n, indexed [i_x0, i_x1, ...]
    lo: np.ndarray
    hi: np.ndarray
    method: str = "centre map"  # or "exit-time"

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
    acts = _action_grid(system.m, actions if system.m == 1 else max(2, int(round(actions ** (1 / system.m)))))
    noise = _noise_vertices(np.asarray(system.noise_lo, float), np.asarray(system.noise_hi, float), None, None)
    C = len(centres)
    nxt = system.step_unwrapped(centres[:, None, None, :], acts[None, :, None, :], noise[None, None, :, :])  # [C,K,V,2]
    idx = np.floor((nxt - lo) / h).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < cells), axis=-1)
    flat = np.where(inside, idx[..., 0] * cells + idx[..., 1], C)  # C = "outside" sentinel
    flat = flat.astype(np.int32)
    viable, it = _viable_fixed_point(flat, max_iters, progress)
    box_area = float(np.prod(hi - lo))
    kept = viable.reshape(cells, cells)
    return KernelEstimate(area=float(kept.mean() * box_area), box_area=box_area, cells=cells,
                          actions=len(acts),
                          iterations=it, viable=kept, lo=lo, hi=hi)


# ------------------------------------------------------------------ n-D: exit-time abstraction
def _action_grid(m: int, per_axis: int) -> np.ndarray:
    """``per_axis**m`` normalised actions in ``[-1, 1]^m`` (a product grid), shape ``[K, m]``
    (one empty action when ``m = 0``)."""
    if m == 0:
        return np.zeros((1, 0))
    g = np.linspace(-1.0, 1.0, per_axis)
    return np.array(list(itertools.product(g, repeat=m))).reshape(-1, m)


def _noise_vertices(lo: np.ndarray, hi: np.ndarray, cap: int | None,
                    rng: np.random.Generator | None) -> np.ndarray:
    """The vertices of the noise box ``W`` (all when ``cap`` is None or ``2^p <= cap``, else
    ``cap`` of them: the two opposite corners and random others from ``rng``), shape ``[V, p]``."""
    p = lo.size
    if p == 0:
        return np.zeros((1, 0))
    if cap is None or 2 ** p <= cap:
        return np.array(list(itertools.product(*zip(lo, hi))))
    assert rng is not None, "a random generator is needed to pick some of the vertices"
    bits = rng.random((cap, p)) < 0.5
    bits[0], bits[1] = False, True
    return np.where(bits, hi, lo)


def exit_time_kernel(system, cells: int, actions_per_axis: int = 5, horizon: int = 200,
                     noise_cap: int = 8, chunk: int = 400_000, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> KernelEstimate:
    """Grid estimate of the robust viability kernel for any state dimension ``n``.

    With small time steps a state moves far less than a cell per step, so mapping cell
    centres one step ahead (:func:`grid_kernel`) keeps almost every cell.  Here each cell
    ``c`` (``cells^n`` equal cells of the box ``X``) starts a trajectory at its centre for
    every gridded action ``a`` and every noise vertex ``w``, both held constant, until the
    trajectory first leaves ``c``:

        t*(c, a, w) = min { t <= horizon : f^t(centre_c, a, w) not in c },
        succ(c, a, w) = cell of f^t*(centre_c, a, w)   (c itself if it never leaves; "out" if it leaves X),

    and the kernel estimate is the fixed point

        K_{j+1} = { c in K_j : exists a, for all w: succ(c, a, w) in K_j },  K_0 = all cells.

    It is an estimate in both directions (held actions restrict the controller, held noise
    weakens the adversary, only centres are followed), for stating how much of ``X`` a set
    covers; it is not a proof.  Cost: ``cells^n * actions * vertices`` trajectories of
    typically a few steps each.

    :param cells: cells per axis.
    :param actions_per_axis: grid points per action axis in ``[-1, 1]`` (``K = per_axis^m``).
    :param horizon: longest trajectory (steps) before a cell counts as holding itself.
    :param noise_cap: at most this many noise vertices (all of them when ``2^p`` is smaller).
    :param progress: called as ``progress(trajectories_done, trajectories_total)`` after each chunk.
    """
    n = system.n
    lo, hi = np.asarray(system.constraint_lo, float), np.asarray(system.constraint_hi, float)
    h = (hi - lo) / cells
    C = cells ** n
    rng = np.random.default_rng(seed)
    acts = _action_grid(system.m, actions_per_axis)
    noise = _noise_vertices(np.asarray(system.noise_lo, float), np.asarray(system.noise_hi, float), noise_cap, rng)
    K, V = len(acts), len(noise)
    total = C * K * V
    strides = cells ** np.arange(n - 1, -1, -1)  # row-major flat index
    succ = np.empty(total, dtype=np.int64)
    for start in range(0, total, chunk):
        ids = np.arange(start, min(total, start + chunk))
        cell, rest = np.divmod(ids, K * V)
        ia, iw = np.divmod(rest, V)
        idx0 = (cell[:, None] // strides[None, :]) % cells  # [N, n]
        x = lo + (idx0 + 0.5) * h
        a, w = acts[ia], noise[iw]
        out = np.full(ids.size, -1, dtype=np.int64)
        live = np.arange(ids.size)
        for _ in range(horizon):
            x = np.asarray(system.step_unwrapped(x, a, w), float).reshape(live.size, n)
            idx = np.floor((x - lo) / h).astype(np.int64)
            outside = ~np.all((idx >= 0) & (idx < cells), axis=1) | ~np.all(np.isfinite(x), axis=1)
            moved = outside | np.any(idx != idx0[live], axis=1)
            out[live[outside]] = C
            keep = moved & ~outside
            out[live[keep]] = (np.clip(idx[keep], 0, cells - 1) * strides).sum(axis=1)
            stay = ~moved
            live, x = live[stay], x[stay]
            a, w = a[stay], w[stay]
            if live.size == 0:
                break
        out[live] = cell[live]  # never left its cell within the horizon
        succ[ids] = out
        if progress:
            progress(int(min(total, start + chunk)), int(total))
    viable, it = _viable_fixed_point(succ.reshape(C, K, V), 100_000)
    box = float(np.prod(hi - lo))
    kept = viable.reshape((cells,) * n)
    return KernelEstimate(area=float(kept.mean() * box), box_area=box, cells=cells, actions=K,
                          iterations=it, viable=kept, lo=lo, hi=hi, method="exit-time")


def default_resolution(n: int, m: int) -> tuple[int, int]:
    """``(cells per axis, actions)`` of ``reachsafe kernel`` for ``n`` states and ``m`` actions:
    2-D 400 cells and 81 actions; else :data:`DEFAULT_CELLS` and 9 values per action axis for
    one action, 5 for more."""
    return DEFAULT_CELLS[n], (81 if n == 2 else (9 if m == 1 else 5))


def estimate_kernel(system, cells: int | None = None, actions: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> KernelEstimate:
    """The kernel estimate ``reachsafe kernel`` prints: :func:`grid_kernel` in 2-D, else
    :func:`exit_time_kernel`; unset ``cells`` / ``actions`` from :func:`default_resolution`.
    ``progress(done, total)`` reports the n-D trajectories (the 2-D estimate is quick)."""
    d_cells, d_actions = default_resolution(system.n, system.m)
    cells = d_cells if cells is None else cells
    actions = d_actions if actions is None else actions
    if system.n == 2:
        return grid_kernel(system, cells=cells, actions=actions)
    return exit_time_kernel(system, cells=cells, actions_per_axis=actions, progress=progress)
