"""Open-loop estimate of the viability kernel from outside: how much of X the linearised model can
hold for N steps with the nominal noise.

For a state ``x0`` of X it solves the feasibility LP, in the normalised coordinates ``z`` of X
(``z in [-1, 1]^n``, :class:`~verification.synthesis.scaling.ScaledSystem`)::

    find a_0 .. a_{N-1} in [-1, 1]^m, z_1 .. z_N in [-1, 1]^n
    s.t.  z_{k+1} = M z_k + B a_k + c_0,   k = 0 .. N-1                        (1)

with ``M = df/dz``, ``B = df/da`` at the model's equilibrium ``(z_e, a_e)`` and
``c_0 = f(z_e, a_e, w_c) - M z_e - B a_e``, ``w_c`` the centre of the noise box.  A model without an
equilibrium inside X gets no estimate: a linearisation elsewhere (a Dubins car's at the centre of
X drifts out of every state) says nothing about its kernel.

A state of the (robust) viability kernel of the *linearised* model has a feasible (1) for every N,
since the nominal noise ``w_c`` is one of the noise values the kernel must tolerate; so
the fraction of X whose (1) is feasible bounds that kernel from above, and it only falls as N
grows.  For the nonlinear model it is an estimate, close where the linearisation error over X
is small; it is not a proof either way.

The fraction is measured on ``samples`` uniform states of X (standard error
``sqrt(p (1 - p) / samples)``); N doubles from ``first`` while the fraction still falls by more
than one standard error; it stops when two doublings in a row changed it by no more (only the
states feasible at N are tried at 2N), or at ``max_horizon``.

It complements the grid estimates of :mod:`verification.kernel`, which replace every cell by its
centre: in 3 to 6 dimensions these can miss slow drifts (a coordinate that moves less than a cell
before the trajectory leaves through another face is rounded back every step: an aircraft-pitch
model's grid estimate was 2.5 % of X while a certified set covers 14 %) or keep cells that only
their centre can hold (cart-pole: 81 % of X on the grid, 61 % here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sps
from scipy.optimize import linprog

from .synthesis.linear_mas import find_equilibrium
from .synthesis.plans import whole_plan
from .synthesis.scaling import ScaledSystem
from .synthesis.templates import linearisation

__all__ = ["OpenLoopBound", "open_loop_bound", "TIME_CAP_S"]

TIME_CAP_S = 300.0  # default time cap: no larger horizon is started after this many seconds (the result says so)


@dataclass(frozen=True)
class OpenLoopBound:
    """Result of :func:`open_loop_bound`.

    :param fraction: share of X whose LP (1) is feasible for ``horizon`` steps.
    :param stderr: its standard error from the sampling.
    :param horizon: N, the steps of the last LPs.
    :param samples: states of X tried.
    :param converged: the last two doublings of N changed the fraction by at most one standard error each.
    """

    fraction: float
    stderr: float
    horizon: int
    samples: int
    converged: bool


def _linearisation(S: ScaledSystem) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(M, B, c_0)`` of (1) in normalised coordinates, or None without an equilibrium inside X."""
    eq = find_equilibrium(S)
    if eq is None:
        return None
    z, a = eq
    M, B = linearisation(S, z, a)
    w_c = 0.5 * (S.noise_lo + S.noise_hi)
    c0 = S.step_unwrapped(z[None], a[None], w_c[None])[0] - M @ z - B @ a
    return M, B, c0


def _equalities(M: np.ndarray, B: np.ndarray, N: int) -> sps.csr_matrix:
    """The left-hand side of (1) over the variables ``[z_1 .. z_N, a_0 .. a_{N-1}]``: row block k holds
    ``z_{k+1} - M z_k - B a_k`` (``z_0`` is data, moved to the right-hand side)."""
    n, m = B.shape
    eye = sps.identity(N * n, format="csr")
    sub = sps.kron(sps.eye(N, k=-1), sps.csr_matrix(M), format="csr")
    act = sps.kron(sps.identity(N), sps.csr_matrix(B), format="csr")
    return sps.hstack([eye - sub, -act], format="csr")


def _feasible(A_eq: sps.csr_matrix, M: np.ndarray, c0: np.ndarray, N: int, z0: np.ndarray) -> bool:
    n, m = M.shape[0], A_eq.shape[1] // N - M.shape[0]
    b_eq = np.tile(c0, N)
    b_eq[:n] += M @ z0
    res = linprog(np.zeros(N * (n + m)), A_eq=A_eq, b_eq=b_eq, bounds=(-1.0, 1.0), method="highs")
    return res.status == 0


def open_loop_bound(system, samples: int = 1000, seed: int = 0, first: int = 50, max_horizon: int = 1600,
                    time_cap: float | None = TIME_CAP_S,
                    progress: Callable[[int, int, int], None] | None = None) -> OpenLoopBound | None:
    """The fraction of X whose LP (1) is feasible (module docstring); None without an equilibrium inside X.

    :param samples: uniform states of X (seeded by ``seed``).
    :param first: the first horizon N; it doubles up to ``max_horizon``.
    :param time_cap: seconds from the call after which no larger N is started (the result then says
        ``converged=False``); None: no limit.
    :param progress: ``progress(done, total, N)`` after each state.
    """
    deadline = None if time_cap is None else time.monotonic() + time_cap
    S = whole_plan(system)[0].scaled
    lin = _linearisation(S)
    if lin is None:
        return None
    M, B, c0 = lin
    rng = np.random.default_rng(seed)
    Z = rng.uniform(-1.0, 1.0, size=(samples, S.n))
    alive = np.arange(samples)
    N, prev, converged, settled = first, None, False, 0
    while True:
        A_eq = _equalities(M, B, N)
        keep = []
        for i, k in enumerate(alive):
            if _feasible(A_eq, M, c0, N, Z[k]):
                keep.append(k)
            if progress is not None:
                progress(i + 1, len(alive), N)
        alive = np.asarray(keep, dtype=np.int64)
        frac = len(alive) / samples
        err = float(np.sqrt(max(frac * (1.0 - frac), 1.0 / samples) / samples))
        settled = settled + 1 if prev is not None and prev - frac <= err else 0
        if settled >= 2:  # two doublings in a row changed nothing: a slow mode has had 4x the steps to show
            converged = True
            break
        prev = frac
        if 2 * N > max_horizon or (deadline is not None and time.monotonic() > deadline):
            break
        N *= 2
    return OpenLoopBound(frac, float(np.sqrt(frac * (1.0 - frac) / samples)), N, samples, converged)
