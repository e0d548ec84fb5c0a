"""Halfspace-represented polytopes P = {x in R^n : A x <= b}.

LP-based queries (support function, bounding box, Chebyshev centre,
redundancy removal) use ``scipy.optimize.linprog(method="highs")``; vertex
enumeration uses pypoman / pycddlib (double-description method).  Volumes are
exact for n <= 3 and Monte-Carlo (with a binomial standard error) above:
:meth:`HPolytope.volume` returns the value as a float (like every representation),
:meth:`HPolytope.volume_estimate` the value with its standard error and method.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.optimize import linprog

from ._geometry import (
    EmptySetError,
    LPFailedError,
    RngLike,
    UnboundedSetError,
    as_directions,
    as_matrix,
    as_points,
    as_vector,
    make_rng,
    shoelace_area,
    sort_ccw,
)
from .base import ConvexSet
from .box import Box
from .rows import normalize_rows

__all__ = ["HPolytope", "VolumeEstimate"]

# Memory budget (number of float64 entries) for one chunk of A @ x products.
_CHUNK_ENTRIES = 4_000_000


class VolumeEstimate(NamedTuple):
    """A volume together with its uncertainty.

    ``value``  : volume estimate (product of coordinate units).
    ``stderr`` : one-sigma standard error (0.0 for exact computations).
    ``method`` : "exact" or "monte-carlo".
    """

    value: float
    stderr: float
    method: str


_LP_METHODS = ("highs", "highs-ipm", "highs-ds")  # HiGHS's choice first; the others when it fails numerically


def _linprog(c: np.ndarray, A: np.ndarray, b: np.ndarray,
             bounds: Union[Tuple, Sequence[Tuple]] = (None, None)):
    """minimise c^T x s.t. A x <= b (free variables by default); returns the scipy result.

    A numerical failure (status 4: HiGHS ended with an unknown model status, as on nearly degenerate
    polytopes) is retried with HiGHS's interior-point and dual simplex methods; the last result is returned.
    """
    for method in _LP_METHODS:
        res = linprog(c, A_ub=A, b_ub=b, bounds=bounds, method=method)
        if res.status != 4:
            break
    return res


class HPolytope(ConvexSet):
    r"""Polyhedron P = {x in R^n : A x <= b} with A of shape [k, n] and b of shape [k].

    Most methods assume P is bounded (a polytope); those that need it raise
    :class:`UnboundedSetError` / :class:`EmptySetError` with an explanation
    otherwise.  ``A`` and ``b`` are stored as read-only float64 copies.
    """

    __slots__ = ("A", "b", "_bbox")

    def __init__(self, A: object, b: object) -> None:
        A_arr = as_matrix(A, "A")
        k, n = A_arr.shape
        if n == 0:
            raise ValueError("HPolytope must have dimension n >= 1 (A has 0 columns)")
        if k == 0:
            raise ValueError("HPolytope needs at least one constraint row (A has 0 rows)")
        b_arr = np.asarray(b, dtype=np.float64)
        if b_arr.ndim == 2 and b_arr.shape[1] == 1:
            b_arr = b_arr[:, 0]
        b_arr = as_vector(b_arr, "b")
        if b_arr.shape[0] != k:
            raise ValueError(f"b must have length {k} (rows of A), got {b_arr.shape[0]}")
        A_arr.setflags(write=False)
        b_arr.setflags(write=False)
        self.A: np.ndarray = A_arr
        self.b: np.ndarray = b_arr
        self._bbox: Optional[Box] = None

    def __repr__(self) -> str:
        return f"HPolytope(dim={self.dim}, n_facets={self.n_facets})"

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_box(cls, lo: object, hi: object) -> "HPolytope":
        """Box {lo <= x <= hi} as [I; -I] x <= [hi; -lo]."""
        box = Box(lo, hi)  # type: ignore[arg-type]  # Box validates any array-like
        n = box.dim
        eye = np.eye(n)
        return cls(np.vstack([eye, -eye]), np.concatenate([box.hi, -box.lo]))

    # ------------------------------------------------------------------ basic
    @property
    def dim(self) -> int:
        """State dimension n."""
        return int(self.A.shape[1])

    @property
    def n_facets(self) -> int:
        """Number of constraint rows k (an upper bound on the number of true facets)."""
        return int(self.A.shape[0])

    def contains(self, x: object, tol: float = 0.0) -> Union[bool, np.ndarray]:
        """Membership test A x <= b + tol; x of shape [n] -> bool, [N, n] -> bool [N].

        Evaluated in chunks of points so memory stays bounded for many facets.
        """
        pts, single = as_points(x, self.dim)
        N = pts.shape[0]
        out = np.empty(N, dtype=bool)
        step = max(1, _CHUNK_ENTRIES // self.n_facets)
        bound = self.b + tol
        for s in range(0, N, step):
            out[s:s + step] = np.all(pts[s:s + step] @ self.A.T <= bound, axis=1)
        return bool(out[0]) if single else out

    def normalized(self) -> "HPolytope":
        r"""Equivalent polytope with unit-norm rows: (A_i / ||A_i||) x <= b_i / ||A_i||.

        Zero rows 0 <= b_i are dropped when b_i >= 0 (always satisfied); an
        infeasible zero row (b_i < 0) is kept as 0 <= -1 so emptiness is preserved.
        """
        norms = np.linalg.norm(self.A, axis=1)
        zero = norms <= 0.0
        A = np.empty_like(self.A)
        b = np.empty_like(self.b)
        A[~zero], b[~zero] = normalize_rows(self.A[~zero], self.b[~zero])
        A[zero] = 0.0
        b[zero] = np.where(self.b[zero] < 0.0, -1.0, 0.0)
        keep = ~zero | (self.b < 0.0)
        if not np.any(keep):  # all rows trivially true: keep one harmless row
            keep[0] = True
        return HPolytope(A[keep], b[keep])

    def intersect(self, other: Union["HPolytope", Box]) -> "HPolytope":
        """P ∩ Q = {x : A_P x <= b_P, A_Q x <= b_Q} (rows stacked, no redundancy removal)."""
        if isinstance(other, Box):
            other = HPolytope.from_box(other.lo, other.hi)
        if not isinstance(other, HPolytope):
            raise ValueError(f"can only intersect with HPolytope or Box, got {type(other).__name__}")
        if other.dim != self.dim:
            raise ValueError(f"dimension mismatch: {self.dim} vs {other.dim}")
        return HPolytope(np.vstack([self.A, other.A]), np.concatenate([self.b, other.b]))

    # ------------------------------------------------------------------- LPs
    def _raise_for_status(self, res, what: str) -> None:
        """Translate a non-optimal linprog result into a clear exception."""
        if res.status == 0:
            return
        if res.status in (2, 3):
            # HiGHS may report 'infeasible or unbounded'; disambiguate with a feasibility LP.
            if self.is_empty():
                raise EmptySetError(f"{what}: the polytope A x <= b is empty (infeasible)")
            raise UnboundedSetError(
                f"{what}: the polyhedron A x <= b is unbounded in the requested direction")
        raise RuntimeError(f"{what}: LP solver failed (status {res.status}): {res.message}")

    def is_empty(self) -> bool:
        """True iff {x : A x <= b} has no point (feasibility LP with zero objective)."""
        res = _linprog(np.zeros(self.dim), self.A, self.b)
        if res.status == 0:
            return False
        if res.status == 2:
            return True
        if res.status == 3:  # zero objective cannot be unbounded; treat as feasible
            return False
        raise RuntimeError(f"feasibility LP failed (status {res.status}): {res.message}")

    def support(self, d: object) -> Union[float, np.ndarray]:
        r"""Support function h_P(d) = max_{x in P} d^T x, one LP per direction.

        d of shape [n] -> float, [k, n] -> array [k].  Raises
        :class:`UnboundedSetError` if P is unbounded in direction d and
        :class:`EmptySetError` if P is empty.
        """
        D, single = as_directions(d, self.dim)
        h = np.empty(D.shape[0])
        for j, dj in enumerate(D):
            res = _linprog(-dj, self.A, self.b)
            self._raise_for_status(res, "support")
            h[j] = float(dj @ res.x)
        return float(h[0]) if single else h

    def bounding_box(self) -> Box:
        """Tightest axis-aligned box: hi_i = h_P(e_i), lo_i = -h_P(-e_i) (2n LPs, cached)."""
        if self._bbox is None:
            eye = np.eye(self.dim)
            h = np.asarray(self.support(np.vstack([eye, -eye])))
            hi, lo = h[: self.dim], -h[self.dim:]
            # LP round-off can make lo exceed hi by ~1e-12 for flat sets
            lo = np.minimum(lo, hi)
            self._bbox = Box(lo, hi)
        return self._bbox

    def chebyshev_center(self) -> Tuple[np.ndarray, float]:
        r"""Centre and radius of the largest inscribed ball (Chebyshev centre).

        Solves  max_{x, r} r  s.t.  A_i x + r ||A_i||_2 <= b_i,  r >= 0.
        Returns (x [n], r).  Raises EmptySetError if P is empty,
        UnboundedSetError if arbitrarily large balls fit, and LPFailedError if the LP fails
        numerically with every method (:func:`_linprog`).
        """
        n = self.dim
        norms = np.linalg.norm(self.A, axis=1)
        A_ext = np.hstack([self.A, norms[:, None]])
        c = np.zeros(n + 1)
        c[-1] = -1.0
        bounds = [(None, None)] * n + [(0.0, None)]
        res = _linprog(c, A_ext, self.b, bounds=bounds)
        if res.status == 2:
            raise EmptySetError("chebyshev_center: the polytope A x <= b is empty")
        if res.status == 3:
            raise UnboundedSetError("chebyshev_center: inscribed-ball radius is unbounded")
        if res.status != 0:
            raise LPFailedError(f"chebyshev_center: LP failed (status {res.status}) with "
                                f"{', '.join(_LP_METHODS)}: {res.message}")
        return np.asarray(res.x[:n], dtype=np.float64), float(res.x[n])

    def remove_redundant(self, tol: float = 1e-9) -> "HPolytope":
        r"""Drop redundant rows, one LP per row, testing against the rows kept so far.

        Row i (normalised to unit norm) is redundant iff
            max { a_i^T x : a_j^T x <= b_j (j kept, j != i),  a_i^T x <= b_i + 1 } <= b_i + tol.
        The relaxed copy of row i keeps each LP bounded.  Rows are removed one at a
        time, so of several identical rows exactly one survives.  An empty
        polytope is returned unchanged.
        """
        if self.is_empty():
            return HPolytope(self.A, self.b)
        norms = np.linalg.norm(self.A, axis=1)
        keep = np.ones(self.n_facets, dtype=bool)
        zero = norms <= 0.0
        keep[zero] = False  # zero rows here have b >= 0 (else empty): always satisfied
        An = np.zeros_like(self.A)
        bn = np.zeros_like(self.b)
        An[~zero] = self.A[~zero] / norms[~zero, None]
        bn[~zero] = self.b[~zero] / norms[~zero]
        for i in np.flatnonzero(keep):
            others = keep.copy()
            others[i] = False
            A_lp = np.vstack([An[others], An[i][None, :]])
            b_lp = np.concatenate([bn[others], [bn[i] + 1.0]])
            res = _linprog(-An[i], A_lp, b_lp)
            if res.status != 0:
                raise RuntimeError(
                    f"remove_redundant: LP for row {i} failed (status {res.status}): {res.message}")
            if float(An[i] @ res.x) <= bn[i] + tol:
                keep[i] = False
        if not np.any(keep):  # cannot happen for a non-empty set with >= 1 nonzero row
            keep[np.argmax(norms)] = True
        return HPolytope(self.A[keep], self.b[keep])

    # -------------------------------------------------------------- vertices
    def vertices(self) -> np.ndarray:
        """Vertices [m, n]: Qhull's halfspace intersection about the Chebyshev centre, else double
        description (pypoman / cdd, floating point, then exact rationals).

        Qhull first: cdd's floating-point double description silently lost vertices of
        polytopes with many nearly parallel facets (a 548-facet maximal admissible set in 3-D
        came out with 82 % of its volume); the halfspace intersection (the dual convex hull of
        the points ``A_i / (b_i - A_i c)``) keeps them.  A flat polytope (no interior ball) or a
        Qhull failure goes to cdd.  For n == 2 they are sorted counter-clockwise by angle around
        their mean; for n == 1 they are [lo], [hi].  Duplicates (within 1e-10 relative) are
        removed.  An empty polytope gives an array of shape [0, n].
        """
        n = self.dim
        if n == 1:
            if self.is_empty():
                return np.empty((0, 1))
            bb = self.bounding_box()
            return np.unique(np.array([[bb.lo[0]], [bb.hi[0]]]), axis=0)
        verts = self._vertices_qhull()
        if verts is None:
            verts = self._vertices_cdd()
        if len(verts) == 0:
            return np.empty((0, n))
        V = np.asarray(verts, dtype=np.float64).reshape(-1, n)
        scale = max(1.0, float(np.max(np.abs(V))))
        _, idx = np.unique(np.round(V / (scale * 1e-10)), axis=0, return_index=True)
        V = V[np.sort(idx)]
        if n == 2:
            V = sort_ccw(V)
        return V

    def _vertices_qhull(self) -> Optional[np.ndarray]:
        """Vertices by :class:`scipy.spatial.HalfspaceIntersection` (None: no interior ball, or Qhull failed)."""
        from scipy.spatial import HalfspaceIntersection, QhullError  # lazy: scipy.spatial only for vertices

        try:
            c, r = self.chebyshev_center()
        except EmptySetError:
            return np.empty((0, self.dim))
        except (UnboundedSetError, LPFailedError):
            return None  # cdd says so in its words, or tries a degenerate set its own way
        bb = self.bounding_box()  # raises UnboundedSetError for a polyhedron with a ray (Qhull would not)
        scale = max(1.0, float(np.max(np.abs(bb.lo))), float(np.max(np.abs(bb.hi))))
        if not r > 1e-9 * scale:  # flat or nearly so: Qhull needs a strictly interior point
            return None
        A, b = normalize_rows(np.asarray(self.A, dtype=np.float64), np.asarray(self.b, dtype=np.float64))
        try:
            V = HalfspaceIntersection(np.hstack([A, -b[:, None]]), c).intersections
        except (QhullError, ValueError):
            return None
        if not np.all(np.isfinite(V)) or np.any(V @ A.T - b > 1e-7 * (1.0 + np.abs(b))):
            return None
        return V

    def _vertices_cdd(self) -> np.ndarray:
        """Vertices by double description: cdd in floating point, in exact rationals where it fails."""
        import pypoman  # lazy: pypoman is optional

        try:
            verts = pypoman.compute_polytope_vertices(np.array(self.A), np.array(self.b))
        except ValueError as exc:
            if "not a polytope" in str(exc):
                raise UnboundedSetError("vertices: the polyhedron A x <= b is unbounded") from exc
            raise
        except RuntimeError:
            # cdd's floating-point double description can stop with "numerical inconsistency"
            # (a 13-facet polygon of a boost converter did): redo it in exact rationals
            verts = _vertices_exact(np.asarray(self.A, dtype=np.float64), np.asarray(self.b, dtype=np.float64))
        return np.asarray(verts, dtype=np.float64).reshape(-1, self.dim)

    # ---------------------------------------------------------------- volume
    def volume(self, method: str = "auto", n_samples: int = 200_000, rng: RngLike = None) -> float:
        """vol(P) as a float: the ``value`` of :meth:`volume_estimate` (same arguments, same number)."""
        return self.volume_estimate(method, n_samples, rng).value

    def volume_estimate(self, method: str = "auto", n_samples: int = 200_000,
                        rng: RngLike = None) -> VolumeEstimate:
        r"""Volume of P with its uncertainty (:class:`VolumeEstimate`).

        method="auto": exact for n <= 3, Monte-Carlo otherwise.
        method="exact": vertices + convex hull (shoelace in 2-D,
            scipy.spatial.ConvexHull (Qhull) for n >= 3).  Works for any n but
            vertex enumeration can be very slow for n > 3 with many facets.
        method="monte-carlo": hit-or-miss in the bounding box B:
            p̂ = hits / N,  vol ≈ vol(B) p̂,  stderr = vol(B) sqrt(p̂ (1 - p̂) / N).
        An empty or lower-dimensional polytope has volume 0.
        """
        if method not in ("auto", "exact", "monte-carlo"):
            raise ValueError(f"method must be 'auto', 'exact' or 'monte-carlo', got {method!r}")
        if method == "auto":
            method = "exact" if self.dim <= 3 else "monte-carlo"
        if method == "exact":
            return VolumeEstimate(self._exact_volume(), 0.0, "exact")
        return self._mc_volume(int(n_samples), rng)

    def _exact_volume(self) -> float:
        n = self.dim
        if self.is_empty():
            return 0.0
        if n == 1:
            bb = self.bounding_box()
            return float(bb.hi[0] - bb.lo[0])
        V = self.vertices()
        if n == 2:
            return shoelace_area(V)
        if V.shape[0] < n + 1:
            return 0.0
        from scipy.spatial import ConvexHull, QhullError  # lazy: scipy.spatial only for hulls

        try:
            return float(ConvexHull(V).volume)
        except QhullError:  # flat (lower-dimensional) vertex set
            return 0.0

    def _mc_volume(self, n_samples: int, rng: RngLike) -> VolumeEstimate:
        if n_samples <= 0:
            raise ValueError(f"n_samples must be positive, got {n_samples}")
        if self.is_empty():
            return VolumeEstimate(0.0, 0.0, "monte-carlo")
        gen = make_rng(rng)
        box = self.bounding_box()
        vbox = box.volume()
        if vbox <= 0.0:
            return VolumeEstimate(0.0, 0.0, "monte-carlo")
        hits = 0
        step = max(1024, min(n_samples, 200_000))
        for s in range(0, n_samples, step):
            m = min(step, n_samples - s)
            hits += int(np.count_nonzero(self.contains(box.sample(m, gen))))
        p = hits / n_samples
        return VolumeEstimate(vbox * p, vbox * float(np.sqrt(p * (1.0 - p) / n_samples)),
                              "monte-carlo")

    # -------------------------------------------------------------- sampling
    def sample(self, N: int, rng: RngLike = None, min_acceptance: float = 1e-4,
               max_chunk: int = 500_000) -> np.ndarray:
        r"""N i.i.d. uniform samples in P by rejection from the bounding box, shape [N, n].

        Candidates are drawn in vectorised chunks sized from the running
        acceptance rate.  Raises ValueError once at least 10 / min_acceptance
        candidates have been drawn and the empirical acceptance rate is still
        below ``min_acceptance`` (rejection would be hopeless; use MCMC instead).
        """
        if int(N) != N or N < 0:
            raise ValueError(f"N must be a non-negative integer, got {N}")
        N = int(N)
        n = self.dim
        if N == 0:
            return np.empty((0, n))
        if not (0.0 < min_acceptance < 1.0):
            raise ValueError(f"min_acceptance must be in (0, 1), got {min_acceptance}")
        if self.is_empty():
            raise EmptySetError("sample: cannot sample from an empty polytope")
        gen = make_rng(rng)
        box = self.bounding_box()
        pilot = int(np.ceil(10.0 / min_acceptance))
        chunks = []
        got = drawn = 0
        batch = int(min(max_chunk, max(1024, 2 * N)))
        while got < N:
            X = box.sample(batch, gen)
            inside = self.contains(X)
            acc = X[inside]
            chunks.append(acc)
            got += acc.shape[0]
            drawn += batch
            rate = got / drawn
            if drawn >= pilot and rate < min_acceptance:
                raise ValueError(
                    f"sample: rejection acceptance rate {rate:.2e} from the bounding box is "
                    f"below min_acceptance={min_acceptance:.1e} after {drawn} candidates; the "
                    "polytope fills a negligible part of its bounding box (flat or thin set)")
            need = N - got
            batch = int(min(max_chunk, max(1024, np.ceil(1.2 * need / max(rate, min_acceptance)))))
        return np.concatenate(chunks, axis=0)[:N]


def _vertices_exact(A: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Vertices of ``{x : A x <= b}`` by cdd's double description in exact rational arithmetic.

    Every double is converted to the rational it represents, so the result is the exact vertex
    set of the given floating-point polytope (rounded back to doubles).
    :raises UnboundedSetError: when the polyhedron has a ray.
    """
    import cdd  # lazy, as pypoman: vertex enumeration is optional

    rows = [[Fraction(float(bi))] + [Fraction(-float(a)) for a in Ai] for Ai, bi in zip(A, b)]
    mat = cdd.Matrix(rows, number_type="fraction")
    mat.rep_type = cdd.RepType.INEQUALITY
    gen = cdd.Polyhedron(mat).get_generators()
    out = []
    for i, row in enumerate(gen):
        if row[0] == 0 or i in gen.lin_set:
            raise UnboundedSetError("vertices: the polyhedron A x <= b is unbounded")
        out.append(np.array([float(v) for v in row[1:]]))
    return out
