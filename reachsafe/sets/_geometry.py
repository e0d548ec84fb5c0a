"""Shared low-level helpers for the set classes (validation, RNG, small geometry).

Everything here is float64 numpy; nothing in this module knows about a
particular set representation.
"""

from __future__ import annotations

import itertools
from math import comb
from typing import Optional, Tuple, Union

import numpy as np

RngLike = Union[None, int, np.random.Generator]

__all__ = [
    "EmptySetError",
    "UnboundedSetError",
    "RngLike",
    "as_vector",
    "as_matrix",
    "as_points",
    "as_directions",
    "make_rng",
    "combinations_index",
    "generalized_cross",
    "sort_ccw",
    "shoelace_area",
]


class EmptySetError(ValueError):
    """Raised when an operation needs a non-empty set but the set is empty."""


class UnboundedSetError(ValueError):
    """Raised when an operation needs a bounded set but the set is unbounded."""


class LPFailedError(RuntimeError):
    """Raised when an LP about a set fails numerically with every method tried (HiGHS "unknown" status):
    the set is then degenerate (a sliver, nearly empty) at the LP's tolerances."""


# --------------------------------------------------------------------------- #
# validation
# --------------------------------------------------------------------------- #
def _check_finite(arr: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (got NaN or inf entries)")


def _to_float(x: object, name: str) -> np.ndarray:
    try:
        return np.array(x, dtype=np.float64)  # copy: callers may mutate theirs
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be convertible to a float64 array: {exc}") from exc


def as_vector(x: object, name: str, n: Optional[int] = None) -> np.ndarray:
    """Return ``x`` as a finite float64 vector of shape [n] (``n`` checked if given)."""
    arr = _to_float(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n}, got {arr.shape[0]}")
    _check_finite(arr, name)
    return arr


def as_matrix(x: object, name: str, rows: Optional[int] = None,
              cols: Optional[int] = None) -> np.ndarray:
    """Return ``x`` as a finite float64 matrix, checking row/column counts if given."""
    arr = _to_float(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got shape {arr.shape}")
    if cols is not None and arr.shape[1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got shape {arr.shape}")
    _check_finite(arr, name)
    return arr


def as_points(x: object, n: int, name: str = "x") -> Tuple[np.ndarray, bool]:
    """Return points as a [N, n] float64 array plus a flag telling whether the input was a single [n] point."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        if arr.shape[0] != n:
            raise ValueError(f"{name} must have shape [{n}] or [N, {n}], got {arr.shape}")
        single = True
        arr = arr[None, :]
    elif arr.ndim == 2:
        if arr.shape[1] != n:
            raise ValueError(f"{name} must have shape [{n}] or [N, {n}], got {arr.shape}")
        single = False
    else:
        raise ValueError(f"{name} must have shape [{n}] or [N, {n}], got {arr.shape}")
    _check_finite(arr, name)
    return arr, single


def as_directions(d: object, n: int) -> Tuple[np.ndarray, bool]:
    """Directions for a support function: [n] or [k, n], finite. Returns ([k, n], single)."""
    return as_points(d, n, name="d")


def make_rng(rng: RngLike) -> np.random.Generator:
    """``None`` -> fresh generator, ``int`` -> seeded generator, Generator -> itself."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


# --------------------------------------------------------------------------- #
# combinatorics / linear algebra
# --------------------------------------------------------------------------- #
def combinations_index(p: int, k: int) -> np.ndarray:
    """All k-subsets of ``range(p)`` in lexicographic order as an int array [C(p, k), k]."""
    if k < 0 or p < 0:
        raise ValueError(f"need p >= 0 and k >= 0, got p={p}, k={k}")
    count = comb(p, k)
    if k == 0:
        return np.zeros((1, 0), dtype=np.intp)
    flat = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(p), k)),
                       dtype=np.intp, count=count * k)
    return flat.reshape(count, k)


def generalized_cross(M: np.ndarray) -> np.ndarray:
    r"""Generalised cross product of n-1 vectors in R^n, batched.

    For ``M`` of shape [K, n, n-1] (columns = vectors) returns v of shape [K, n] with

        v_i = (-1)^i det(M with row i deleted),

    which is orthogonal to every column of M, has norm equal to the
    (n-1)-volume of the parallelotope spanned by the columns, and is zero iff
    rank(M) < n-1.
    """
    K, n, m = M.shape
    if m != n - 1:
        raise ValueError(f"generalized_cross expects [K, n, n-1], got {M.shape}")
    if n == 1:
        return np.ones((K, 1))
    out = np.empty((K, n))
    rows = np.arange(n)
    for i in range(n):  # n <= ~6: loop over coordinates, vectorised over K
        minor = M[:, rows != i, :]
        out[:, i] = ((-1.0) ** i) * np.linalg.det(minor)
    return out


# --------------------------------------------------------------------------- #
# planar helpers
# --------------------------------------------------------------------------- #
def sort_ccw(V: np.ndarray) -> np.ndarray:
    """Sort 2-D points counter-clockwise by angle atan2(y - ȳ, x - x̄) around their mean."""
    if V.shape[0] == 0:
        return V.reshape(0, 2)
    c = V.mean(axis=0)
    ang = np.arctan2(V[:, 1] - c[1], V[:, 0] - c[0])
    return V[np.argsort(ang, kind="stable")]


def shoelace_area(V: np.ndarray) -> float:
    r"""Area of a simple polygon with ordered vertices V [m, 2]:

        A = 1/2 |sum_i (x_i y_{i+1} - x_{i+1} y_i)|.
    """
    if V.shape[0] < 3:
        return 0.0
    x, y = V[:, 0], V[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))
