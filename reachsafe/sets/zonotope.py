r"""Zonotopes Z = {c + G beta : ||beta||_inf <= 1}, c in R^n, G in R^{n x p}.

Closed forms used here:

* support function   h_Z(d) = d^T c + ||G^T d||_1
* interval hull      c ± sum_j |G_{:, j}|
* volume             vol(Z) = 2^n sum_{S subset {1..p}, |S| = n} |det G_S|
* halfspace form     one facet pair per (n-1)-subset of (non-parallel) generators,
                     with normal orthogonal to that subset.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from ._geometry import (
    RngLike,
    as_directions,
    as_matrix,
    as_vector,
    combinations_index,
    generalized_cross,
)
from .base import ConvexSet
from .box import Box
from .hpolytope import HPolytope

__all__ = ["Zonotope"]

_ZERO_REL_TOL = 1e-14     # generator dropped if ||g|| < this * max ||g||
_PARALLEL_TOL = 1e-12     # parallel if | |cos angle| - 1 | <= this
_NORMAL_RANK_TOL = 1e-10  # (n-1)-subset of unit generators skipped if ||cross|| <= this
_NORMAL_DEDUP_TOL = 1e-10 # normals equal (up to sign) if they agree on this grid
_COMBO_CHUNK = 50_000     # subsets processed per vectorised chunk


def _reduce_generators(G: np.ndarray) -> np.ndarray:
    r"""Drop ~zero generators and merge parallel ones (same zonotope, fewer columns).

    Columns with ||g_j|| < 1e-14 max_k ||g_k|| are removed.  Columns whose
    normalised dot product is ±1 within 1e-12 are summed after sign alignment,
    g = sum_j sign(cos(g_i, g_j)) g_j, which leaves Z unchanged because
    {a g beta_1 + b g beta_2} = {(|a| + |b|) g beta}.
    """
    n, p = G.shape
    if p == 0:
        return G.copy()
    norms = np.linalg.norm(G, axis=0)
    gmax = float(norms.max())
    if gmax == 0.0:
        return np.zeros((n, 0))
    keep = norms >= _ZERO_REL_TOL * gmax
    G, norms = G[:, keep], norms[keep]
    U = G / norms
    C = U.T @ U  # cosines between generators, [p, p]
    parallel = np.abs(C) >= 1.0 - _PARALLEL_TOL
    assigned = np.zeros(G.shape[1], dtype=bool)
    merged = []
    for i in range(G.shape[1]):  # p is small (<= a few dozen)
        if assigned[i]:
            continue
        members = parallel[i] & ~assigned
        members[i] = True
        signs = np.where(C[i, members] >= 0.0, 1.0, -1.0)
        merged.append(G[:, members] @ signs)
        assigned |= members
    return np.stack(merged, axis=1)


class Zonotope(ConvexSet):
    r"""Zonotope Z = {c + G beta : beta in [-1, 1]^p} with centre c [n] and generators G [n, p].

    ``center`` and ``generators`` are stored as read-only float64 copies; the
    H-representation is computed lazily and cached.
    """

    __slots__ = ("center", "generators", "_hpoly")

    def __init__(self, center: object, generators: object) -> None:
        c = as_vector(center, "center")
        n = c.shape[0]
        if n == 0:
            raise ValueError("Zonotope must have dimension n >= 1")
        G = np.asarray(generators, dtype=np.float64)
        if G.size == 0 and G.ndim <= 2:  # no generators given: Z = {c}
            G = np.zeros((n, 0))
        G = as_matrix(G, "generators", rows=n)
        c.setflags(write=False)
        G.setflags(write=False)
        self.center: np.ndarray = c
        self.generators: np.ndarray = G
        self._hpoly: Optional[HPolytope] = None

    def __repr__(self) -> str:
        return f"Zonotope(dim={self.dim}, n_generators={self.n_generators})"

    # ------------------------------------------------------------------ basic
    @property
    def dim(self) -> int:
        """State dimension n."""
        return int(self.center.shape[0])

    @property
    def n_generators(self) -> int:
        """Number of generator columns p (as given, before any reduction)."""
        return int(self.generators.shape[1])

    def support(self, d: object) -> Union[float, np.ndarray]:
        r"""Support function h_Z(d) = d^T c + ||G^T d||_1.

        d of shape [n] -> float, [k, n] -> array [k].
        """
        D, single = as_directions(d, self.dim)
        h = D @ self.center + np.abs(D @ self.generators).sum(axis=1)
        return float(h[0]) if single else h

    def bounding_box(self) -> Box:
        r"""Interval hull: c_i ± sum_j |G_ij|."""
        r = np.abs(self.generators).sum(axis=1)
        return Box(self.center - r, self.center + r)

    # ---------------------------------------------------------------- volume
    def volume(self) -> float:
        r"""Exact volume  vol(Z) = 2^n  sum_{|S| = n} |det G_S|  over all n-subsets S of columns.

        Computed on the reduced generator set (zero columns dropped, parallel
        columns merged: both leave the sum unchanged, since det is linear in
        each column) with batched determinants over chunks of subsets.
        Returns 0.0 when rank(G) < n (e.g. fewer than n generators).
        """
        n = self.dim
        G = _reduce_generators(self.generators)
        p = G.shape[1]
        if p < n:
            return 0.0
        idx = combinations_index(p, n)
        total = 0.0
        for s in range(0, idx.shape[0], _COMBO_CHUNK):
            blocks = G[:, idx[s:s + _COMBO_CHUNK]].transpose(1, 0, 2)  # [K, n, n]
            total += float(np.abs(np.linalg.det(blocks)).sum())
        return (2.0 ** n) * total

    # ----------------------------------------------------------- conversions
    def to_hpolytope(self) -> HPolytope:
        r"""Exact halfspace representation of a full-dimensional zonotope (cached).

        After reducing the generators (drop zero, merge parallel), for every
        (n-1)-subset S of generators of rank n-1 the unit normal n_S ⟂ span(G_S)
        (generalised cross product of the normalised columns) defines the facet pair

            n_S^T x <=  n_S^T c + ||G^T n_S||_1,
           -n_S^T x <= -n_S^T c + ||G^T n_S||_1.

        Normals are de-duplicated up to sign (tolerance 1e-10).  All rows have
        unit norm.  Every row is a supporting halfspace of Z, so round-off can
        only make the result a (negligibly) outer approximation.  For n == 1,
        Z = [c - sum|g|, c + sum|g|].  Raises ValueError if rank(G) < n.
        """
        if self._hpoly is None:
            self._hpoly = self._build_hpolytope()
        return self._hpoly

    def _build_hpolytope(self) -> HPolytope:
        n, c, G0 = self.dim, self.center, self.generators
        if n == 1:
            r = float(np.abs(G0).sum())
            if r <= 0.0:
                raise ValueError("to_hpolytope: zonotope is not full-dimensional (all generators zero)")
            return HPolytope(np.array([[1.0], [-1.0]]), np.array([c[0] + r, -c[0] + r]))
        G = _reduce_generators(G0)
        if G.shape[1] < n or np.linalg.matrix_rank(G) < n:
            raise ValueError(
                f"to_hpolytope: zonotope is not full-dimensional (rank(G) < n = {n}); "
                "an H-representation would need equality constraints")
        U = G / np.linalg.norm(G, axis=0)
        idx = combinations_index(U.shape[1], n - 1)
        normals = []
        for s in range(0, idx.shape[0], _COMBO_CHUNK):
            M = U[:, idx[s:s + _COMBO_CHUNK]].transpose(1, 0, 2)  # [K, n, n-1]
            N = generalized_cross(M)
            nrm = np.linalg.norm(N, axis=1)
            ok = nrm > _NORMAL_RANK_TOL
            N = N[ok] / nrm[ok, None]
            normals.append(N)
        N = np.concatenate(normals, axis=0)
        # canonical sign: largest-magnitude component positive (exact under negation)
        j = np.argmax(np.abs(N), axis=1)
        N = N * np.sign(N[np.arange(N.shape[0]), j])[:, None]
        _, first = np.unique(np.round(N / _NORMAL_DEDUP_TOL), axis=0, return_index=True)
        N = N[np.sort(first)]
        offset = N @ c
        radius = np.abs(N @ G0).sum(axis=1)
        A = np.vstack([N, -N])
        b = np.concatenate([offset + radius, -offset + radius])
        hp = HPolytope(A, b)
        # the closed-form interval hull is exact; seed the cache to avoid 2n large LPs
        hp._bbox = self.bounding_box()
        return hp

    # -------------------------------------------------------------- queries
    def contains(self, x: object, tol: float = 0.0) -> Union[bool, np.ndarray]:
        """Membership via the cached H-representation: A x <= b + tol (x [n] or [N, n])."""
        return self.to_hpolytope().contains(x, tol=tol)

    def sample(self, N: int, rng: RngLike = None) -> np.ndarray:
        """N uniform samples in Z (rejection from the interval hull via the H-representation)."""
        return self.to_hpolytope().sample(N, rng)

    def vertices(self) -> np.ndarray:
        r"""Vertices [V, n] of a full-dimensional Z, from its H-representation (double description).

        Every vertex is a corner c + G beta with beta in {-1, 1}^p (for the beta = sign(G^T d) of any
        d in its normal cone); ordering and de-duplication as :meth:`HPolytope.vertices` (counter-
        clockwise for n == 2).  Raises ValueError if rank(G) < n, like :meth:`to_hpolytope`.
        """
        return self.to_hpolytope().vertices()
