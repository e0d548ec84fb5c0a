r"""The one contract every set representation meets (:class:`ConvexSet`).

A representation (:class:`~reachsafe.sets.Box`, :class:`~reachsafe.sets.HPolytope`,
:class:`~reachsafe.sets.Zonotope`) describes a closed convex set ``S`` in ``R^n`` and answers the
same questions, in the same types, in float64::

    dim                 n
    contains(x, tol)    x in S (up to tol in the representation's own inequalities);
                        x [n] -> bool, x [N, n] -> bool [N]
    support(d)          h_S(d) = max_{x in S} d^T x;  d [n] -> float, d [k, n] -> [k]
    bounding_box()      the smallest axis-aligned box containing S, a Box with
                        hi_i = h_S(e_i) and lo_i = -h_S(-e_i)
    volume()            vol(S) as a float (the Lebesgue measure in R^n; 0 for flat sets)
    sample(N, rng)      N i.i.d. points uniform in S, [N, n]
    vertices()          the extreme points of S, [V, n]

``tests/test_sets.py::test_representation_conformance`` holds every subclass to this contract
(docs/extending.md: adding a representation).  Conversions between representations live in
:mod:`reachsafe.sets.convert`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Union

import numpy as np

from ._geometry import RngLike

__all__ = ["ConvexSet"]


class ConvexSet(ABC):
    """A closed convex set in ``R^n`` (module docstring); subclasses implement every method."""

    __slots__ = ()

    @property
    @abstractmethod
    def dim(self) -> int:
        """State dimension n."""

    @abstractmethod
    def contains(self, x: object, tol: float = 0.0) -> Union[bool, np.ndarray]:
        """Membership of ``x [n]`` (-> bool) or of each row of ``x [N, n]`` (-> bool ``[N]``)."""

    @abstractmethod
    def support(self, d: object) -> Union[float, np.ndarray]:
        """Support function ``h_S(d) = max_{x in S} d^T x``; ``d [n]`` -> float, ``d [k, n]`` -> ``[k]``."""

    @abstractmethod
    def bounding_box(self) -> "ConvexSet":
        """The interval hull, a :class:`~reachsafe.sets.Box`: ``hi_i = h_S(e_i)``, ``lo_i = -h_S(-e_i)``."""

    @abstractmethod
    def volume(self) -> float:
        """``vol(S)`` in the product of the coordinate units, as a float (0.0 for a flat set)."""

    @abstractmethod
    def sample(self, N: int, rng: RngLike = None) -> np.ndarray:
        """``N`` i.i.d. points uniform in ``S``, shape ``[N, n]``."""

    @abstractmethod
    def vertices(self) -> np.ndarray:
        """The extreme points of ``S``, shape ``[V, n]``."""
