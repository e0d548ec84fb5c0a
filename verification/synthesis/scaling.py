"""Normalised coordinates for synthesis: every state coordinate scaled to ``[-1, 1]``.

Synthesis works in ``z = (x - x_c) / h`` with ``x_c`` the centre and ``h`` the half-widths
of the constraint box ``X``, so that margins, steps and tolerances are relative to each
coordinate's range: a velocity of range 0.14 (mountain car) and one of range 24
(pendulum) are treated alike.  The step in these coordinates is

    z+ = (f(x_c + h z, a, w) - x_c) / h = c_z(z) + B_z(z) a + E_z(z) w,
    c_z = (c(x) - x_c) / h,   B_z = B(x) / h[:, None],   E_z = E(x) / h[:, None],

still affine in ``(a, w)``.  A polytope ``{z : A_z z <= b_z}`` is the polytope
``{x : (A_z / h) x <= b_z + (A_z / h) x_c}`` in state units (:meth:`ScaledSystem.to_state`).

:func:`one_step_authority` measures how far the action can move each coordinate in one
step (``max_x sum_j |B_z(x)_ij|`` over samples of X), the scale every default margin is
tied to.
"""

from __future__ import annotations

import numpy as np

from reachsafe.sets.rows import normalize_rows

__all__ = ["ScaledSystem", "one_step_authority"]


class ScaledSystem:
    """A compiled system seen in normalised coordinates ``z`` (see module docstring).

    It offers the parts of :class:`~reachsafe.systems.CompiledSystem` that synthesis uses:
    ``n, m, p, noise_lo, noise_hi, affine, jacobians, step_unwrapped``, and the box
    ``[-1, 1]^n`` as constraint box.

    :param system: the compiled system (state units).
    :param idx: optional subset of coordinates kept as the state (a part of a product plan);
        ``None`` keeps all.
    """

    def __init__(self, system) -> None:
        self.system = system
        self.name = system.name
        self.n, self.m, self.p = system.n, system.m, system.p
        lo, hi = system.constraint_box_inner()
        # a relative 1e-9 inside X, so that P ⊆ X is provable through rounded LP bounds
        lo, hi = lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo)
        self.x_center = 0.5 * (lo + hi)
        self.half_width = 0.5 * (hi - lo)
        self.noise_lo = np.asarray(system.noise_lo, dtype=np.float64)
        self.noise_hi = np.asarray(system.noise_hi, dtype=np.float64)
        self.constraint_lo = -np.ones(self.n)
        self.constraint_hi = np.ones(self.n)

    # ------------------------------------------------------------------ maps
    def to_x(self, z: np.ndarray) -> np.ndarray:
        """``x = x_c + h z`` ([..., n])."""
        return self.x_center + self.half_width * np.asarray(z, dtype=np.float64)

    def to_z(self, x: np.ndarray) -> np.ndarray:
        """``z = (x - x_c) / h`` ([..., n])."""
        return (np.asarray(x, dtype=np.float64) - self.x_center) / self.half_width

    def constraint_box_inner(self) -> tuple[np.ndarray, np.ndarray]:
        return self.constraint_lo.copy(), self.constraint_hi.copy()

    def affine(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(c_z, B_z, E_z)`` at states ``z`` [N, n]: shapes [N, n], [N, n, m], [N, n, p]."""
        c, B, E = self.system.affine(self.to_x(z))
        h = self.half_width
        return (c - self.x_center) / h, B / h[:, None], E / h[:, None]

    def step_unwrapped(self, z: np.ndarray, a: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``z+`` for states [..., n], actions [..., m], noise [..., p]."""
        return self.to_z(self.system.step_unwrapped(self.to_x(z), a, w))

    def jacobians(self, z: np.ndarray, a: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(dz+/dz, dz+/da, dz+/dw)``: [N, n, n], [N, n, m], [N, n, p]."""
        Jx, Ja, Jw = self.system.jacobians(self.to_x(z), a, w)
        h = self.half_width
        return Jx * h[None, None, :] / h[None, :, None], Ja / h[None, :, None], Jw / h[None, :, None]

    def to_state(self, A_z: np.ndarray, b_z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``{A_z z <= b_z}`` as ``{A x <= b}`` in state units, rows scaled to unit norm."""
        A = np.asarray(A_z, dtype=np.float64) / self.half_width[None, :]
        b = np.asarray(b_z, dtype=np.float64) + A @ self.x_center
        return normalize_rows(A, b)


def one_step_authority(system: ScaledSystem, samples: int = 2048, seed: int = 0) -> np.ndarray:
    """``max_z sum_j |B_z(z)_ij|`` per coordinate ``i`` over random states of ``[-1, 1]^n`` ([n]).

    How far (in units of the half-width) the full action range can move each coordinate
    in one step; 0 for coordinates the action does not reach directly.
    """
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1.0, 1.0, size=(samples, system.n))
    _, B, _ = system.affine(z)
    return np.abs(B).sum(axis=2).max(axis=0)
