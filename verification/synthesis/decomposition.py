"""Decomposed synthesis for the planar quadrotor: two small subsystems, one product set.

The quadrotor's state splits into a horizontal chain ``(px, vx, phi, phi_dot)`` driven by the
roll command ``a2`` and a vertical chain ``(pz, vz)`` driven by the thrust ``a1``; they
interact only through the thrust ``T = g + c_T a1`` in ``vx_dot = T sin(phi)`` and the
tilt in ``vz_dot = T cos(phi) - g``.  Each chain is made robust to the other's influence by
turning it into noise:

* horizontal chain, the thrust action becomes noise ``nu in [-1, 1]``::

      vx_dot = (g + c_T nu) sin(phi) + w1         (affine in the noise (w1, nu));

* vertical chain, the tilt becomes noise: with ``cos(phi) = 1 - kappa``,
  ``0 <= kappa <= 1 - cos(phi_max)`` on X, ``T cos(phi) - g = c_T a1 - kappa T``, and since
  ``0 < T <= g + c_T``, the term ``kappa T`` lies in ``[0, (1 - cos(phi_max)) (g + c_T)]``::

      vz_dot = c_T a1 - nu2 + w2,  nu2 in [0, (1 - cos phi_max)(g + c_T)].

If ``P_h`` is robust control invariant for the horizontal chain and ``P_v`` for the vertical
one, the product ``P = P_h x P_v`` (rows embedded in the full coordinates) is robust control
invariant for the quadrotor: at ``x in P`` take ``a2`` from ``P_h`` (safe for every thrust)
and ``a1`` from ``P_v`` (safe for every tilt allowed in X, and ``P_h`` keeps the tilt in X).
The product is still handed to the independent certifier, which proves it on the full
nonlinear model.

The subsystems are generated from the quadrotor's own symbolic definition (same symbols,
parameters and step expressions), so the model stays written once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from reachsafe.systems import CompiledSystem, get_definition
from reachsafe.systems.definition import SystemDefinition, symbols

__all__ = ["QuadrotorParts", "quadrotor_parts", "embed"]

H_IDX = (0, 3, 2, 5)  # px, vx, phi, phi_dot in the full state
V_IDX = (1, 4)  # pz, vz


@dataclass
class QuadrotorParts:
    horizontal: CompiledSystem
    vertical: CompiledSystem
    h_idx: tuple[int, ...] = H_IDX
    v_idx: tuple[int, ...] = V_IDX


def _param(d: SystemDefinition, name: str) -> sp.Expr:
    return next(v for k, v in d.params.items() if str(k) == name)


def quadrotor_parts() -> QuadrotorParts:
    """The two chains as systems of their own (see module docstring)."""
    d = get_definition("quadrotor")
    px, pz, phi, vx, vz, phid = d.state
    a1, a2 = d.action
    w1, w2 = d.noise
    (nu,) = symbols("nu_thrust")
    (nu2,) = symbols("nu_tilt")
    f = d.step_exprs()  # px+, pz+, phi+, vx+, vz+, phid+ with parameters substituted
    g, cT = _param(d, "g"), _param(d, "thrust_gain")
    phi_max = d.constraint_hi[2]
    # horizontal chain: a1 -> nu
    fh = [sp.expand(f[i].xreplace({a1: nu})) for i in H_IDX]
    horizontal = SystemDefinition(
        name="quadrotor-horizontal", description="px, vx, phi, phi_dot; thrust as noise",
        state=(px, vx, phi, phid), action=(a2,), noise=(w1, nu), step=tuple(fh), params={},
        constraint_lo=tuple(d.constraint_lo[i] for i in H_IDX), constraint_hi=tuple(d.constraint_hi[i] for i in H_IDX),
        noise_lo=(d.noise_lo[0], -1), noise_hi=(d.noise_hi[0], 1),
        reward=sp.Integer(0), observation=(px,),
    )
    # vertical chain: T cos(phi) - g  ->  cT a1 - nu2
    dt = d.dt
    vz_next = vz + dt * (cT * a1 - nu2 + w2)
    pz_next = pz + dt * vz_next
    kappa_T_max = (1 - sp.cos(phi_max)) * (g + cT)
    vertical = SystemDefinition(
        name="quadrotor-vertical", description="pz, vz; tilt as noise",
        state=(pz, vz), action=(a1,), noise=(w2, nu2), step=(pz_next, vz_next), params={},
        constraint_lo=(d.constraint_lo[1], d.constraint_lo[4]), constraint_hi=(d.constraint_hi[1], d.constraint_hi[4]),
        noise_lo=(d.noise_lo[1], 0), noise_hi=(d.noise_hi[1], kappa_T_max),
        reward=sp.Integer(0), observation=(pz,),
    )
    return QuadrotorParts(CompiledSystem(horizontal), CompiledSystem(vertical))


def embed(n: int, parts: list[tuple[tuple[int, ...], np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Product polytope: each ``(idx, A_k, b_k)`` constrains the coordinates ``idx`` of R^n."""
    rows, rhs = [], []
    for idx, A_k, b_k in parts:
        M = np.zeros((A_k.shape[0], n))
        M[:, list(idx)] = A_k
        rows.append(M)
        rhs.append(b_k)
    return np.vstack(rows), np.concatenate(rhs)
