"""Axis-aligned boxes B = {x : lo <= x <= hi} (interval hulls).

Units are those of the state coordinates; volume is in the product of the
coordinate units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from ._geometry import RngLike, as_directions, as_points, as_vector, make_rng
from .base import ConvexSet

__all__ = ["Box"]


@dataclass(frozen=True, eq=False)
class Box(ConvexSet):
    """Axis-aligned box B = {x in R^n : lo_i <= x_i <= hi_i for all i}.

    ``lo`` and ``hi`` are stored as read-only float64 arrays of shape [n]; a
    degenerate box (lo_i == hi_i for some i) is allowed.  Its H-representation
    ``[I; -I] x <= [hi; -lo]`` is :func:`reachsafe.sets.convert.as_hpolytope`.
    """

    lo: np.ndarray
    hi: np.ndarray

    def __post_init__(self) -> None:
        lo = as_vector(self.lo, "lo")
        hi = as_vector(self.hi, "hi", n=lo.shape[0])
        if lo.shape[0] == 0:
            raise ValueError("Box must have dimension >= 1")
        bad = np.flatnonzero(lo > hi)
        if bad.size:
            raise ValueError(f"Box requires lo <= hi; violated in coordinates {bad.tolist()}")
        lo.setflags(write=False)
        hi.setflags(write=False)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    def __repr__(self) -> str:
        return f"Box(lo={self.lo.tolist()}, hi={self.hi.tolist()})"

    # ------------------------------------------------------------------ basic
    @property
    def dim(self) -> int:
        """State dimension n."""
        return int(self.lo.shape[0])

    @property
    def center(self) -> np.ndarray:
        """Centre c = (lo + hi) / 2, shape [n]."""
        return 0.5 * (self.lo + self.hi)

    @property
    def radius(self) -> np.ndarray:
        """Half widths r = (hi - lo) / 2, shape [n]."""
        return 0.5 * (self.hi - self.lo)

    def volume(self) -> float:
        """vol(B) = prod_i (hi_i - lo_i)."""
        return float(np.prod(self.hi - self.lo))

    def bounding_box(self) -> "Box":
        """The box itself (it is its own interval hull: h_B(e_i) = hi_i, -h_B(-e_i) = lo_i)."""
        return self

    # -------------------------------------------------------------- queries
    def contains(self, x: object, tol: float = 0.0) -> Union[bool, np.ndarray]:
        """Membership lo - tol <= x <= hi + tol; x of shape [n] -> bool, [N, n] -> bool [N]."""
        pts, single = as_points(x, self.dim)
        inside = np.all((pts >= self.lo - tol) & (pts <= self.hi + tol), axis=1)
        return bool(inside[0]) if single else inside

    def support(self, d: object) -> Union[float, np.ndarray]:
        """Support function h_B(d) = max_{x in B} d^T x = sum_i max(d_i lo_i, d_i hi_i).

        d of shape [n] -> float, [k, n] -> array [k].
        """
        D, single = as_directions(d, self.dim)
        h = np.maximum(D * self.lo, D * self.hi).sum(axis=1)
        return float(h[0]) if single else h

    def vertices(self) -> np.ndarray:
        """All 2^n corners, shape [2^n, n]; corner j takes hi_i where bit i of j is set."""
        n = self.dim
        bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1
        return np.where(bits.astype(bool), self.hi, self.lo)

    def sample(self, N: int, rng: RngLike = None) -> np.ndarray:
        """N i.i.d. uniform samples in the box, shape [N, n]."""
        if int(N) != N or N < 0:
            raise ValueError(f"N must be a non-negative integer, got {N}")
        gen = make_rng(rng)
        return gen.uniform(self.lo, self.hi, size=(int(N), self.dim))
