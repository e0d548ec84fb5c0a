"""Plots of invariant sets (matplotlib, Agg backend; imported only by the CLI and reports).

2-D systems: the full set.  Higher dimensions: projections onto the coordinate pairs of
interest, computed from support functions: the projection of P onto the plane of
coordinates (i, j) is the convex polygon with support ``h(d) = max_{x in P} d_i x_i + d_j x_j``;
the maximisers over many directions d are its vertices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.optimize import linprog

from reachsafe.systems import profile_of

__all__ = ["plot_sets", "projection_pairs"]


def projection_pairs(system: str, n: int) -> list[tuple[int, int]]:
    """State-index pairs to plot a set of ``system`` (``n`` coordinates) on.

    2-D: the plane itself.  Otherwise the pairs of the system's profile
    (:attr:`reachsafe.systems.SystemProfile.plot_pairs`; quadrotor: px-vx, pz-vz, vx-phi,
    phi-phi_dot), else consecutive coordinates ``(0, 1), (2, 3), ...``.
    """
    if n == 2:
        return [(0, 1)]
    pairs = profile_of(system).plot_pairs
    return [tuple(p) for p in pairs] if pairs else [(k, k + 1) for k in range(0, n - 1, 2)]


def _projection(sf, i: int, j: int, n_dirs: int = 96) -> np.ndarray:
    """Vertices (ccw) of the projection of the set onto coordinates (i, j)."""

    ang = np.linspace(0, 2 * np.pi, n_dirs, endpoint=False)
    pts = []
    if sf.zonotope:
        c = np.asarray(sf.zonotope["center"])
        G = np.asarray(sf.zonotope["generators"])
        for t in ang:
            d = np.zeros(len(c))
            d[i], d[j] = np.cos(t), np.sin(t)
            pts.append(c + G @ np.sign(G.T @ d))
    else:
        for t in ang:
            d = np.zeros(sf.A.shape[1])
            d[i], d[j] = np.cos(t), np.sin(t)
            res = linprog(-d, A_ub=sf.A, b_ub=sf.b, bounds=(None, None), method="highs")
            if res.status == 0:
                pts.append(res.x)
    P = np.array(pts)[:, [i, j]]
    order = np.argsort(np.arctan2(P[:, 1] - P[:, 1].mean(), P[:, 0] - P[:, 0].mean()))
    return P[order]


def plot_sets(setfiles: Sequence, labels: Sequence[str], out: str | Path, title: str | None = None) -> Path:
    """Draw the sets (and the constraint box X) side by side; write a PNG."""
    import matplotlib  # lazy: matplotlib only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib only when a figure is drawn
    from matplotlib.patches import Polygon, Rectangle

    sf0 = setfiles[0]
    n = sf0.n
    pairs = projection_pairs(sf0.system, n)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.6), squeeze=False)
    lo, hi = np.asarray(sf0.constraints["lo"]), np.asarray(sf0.constraints["hi"])
    names = sf0.state_names or [f"x{k}" for k in range(n)]
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for ax, (i, j) in zip(axes[0], pairs):
        ax.add_patch(Rectangle((lo[i], lo[j]), hi[i] - lo[i], hi[j] - lo[j], fill=False, ls="--", lw=1.2,
                               ec="black", label="constraint box X"))
        for k, (sf, lab) in enumerate(zip(setfiles, labels)):
            V = _projection(sf, i, j)
            ax.add_patch(Polygon(V, closed=True, alpha=0.35, fc=colors[k % 5], ec=colors[k % 5], lw=1.5, label=lab))
        pad_i, pad_j = 0.05 * (hi[i] - lo[i]), 0.05 * (hi[j] - lo[j])
        ax.set_xlim(lo[i] - pad_i, hi[i] + pad_i)
        ax.set_ylim(lo[j] - pad_j, hi[j] + pad_j)
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        ax.grid(alpha=0.3)
    handles, labs = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labs, loc="lower center", ncol=len(labs), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
