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

__all__ = ["KernelEstimate", "grid_kernel"]


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
    if system.m == 1:
        acts = np.linspace(-1, 1, actions)[:, None]
    else:
        per = max(2, int(round(actions ** (1 / system.m))))
        acts = np.array(list(itertools.product(np.linspace(-1, 1, per), repeat=system.m)))
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
