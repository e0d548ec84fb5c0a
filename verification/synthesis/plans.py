"""Synthesis plans: which (sub)systems to shrink, with which template normals.

A plan is a list of :class:`Part`; the invariant candidate is the product of the parts'
polytopes, each constraining its own coordinates of the full state (``idx``).  A single
part covering every coordinate is the plain case (pendulum, user systems); the quadrotor
uses its two chains (:mod:`verification.synthesis.decomposition`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .templates import box_normals, closed_loop_normals, dedupe, fan, template_for

__all__ = ["Part", "plan_for"]


@dataclass
class Part:
    """One polytope of the product: normals over ``system``'s state, placed at ``idx``."""

    system: object
    normals: np.ndarray
    idx: tuple[int, ...]
    n_interior: int = 1500
    n_boundary: int = 3000


def plan_for(system, facets: int | None = None) -> list[Part]:
    """The synthesis plan of a system (see module docstring)."""
    if system.name == "quadrotor":
        from .decomposition import quadrotor_parts

        parts = quadrotor_parts()
        H, V = parts.horizontal, parts.vertical
        hw_h = 0.5 * (H.constraint_hi - H.constraint_lo)
        hw_v = 0.5 * (V.constraint_hi - V.constraint_lo)
        K = 3 if facets is None else max(1, facets // 40)
        # Only normals that reach the actuated end of the chain px -> vx -> phi -> phi_dot: a
        # facet in (px, vx) or (vx, phi) alone, once active, cannot be defended while the roll
        # rate still drives the wrong way.  The closed-loop normals couple all four.
        A_h = dedupe(np.vstack([box_normals(4), closed_loop_normals(H), fan(4, 2, 3, K, hw_h)]))
        A_v = np.vstack([box_normals(2), fan(2, 0, 1, 8, hw_v)])
        return [Part(H, A_h, parts.h_idx, n_interior=2000, n_boundary=6000), Part(V, A_v, parts.v_idx)]
    if system.name == "pendulum":
        return [Part(system, template_for(system, facets), tuple(range(system.n)))]
    A = dedupe(np.vstack([box_normals(system.n), closed_loop_normals(system)]))
    return [Part(system, A, tuple(range(system.n)))]
