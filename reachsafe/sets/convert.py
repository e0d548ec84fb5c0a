r"""Conversions between set representations: the one place that knows every representation.

The representation modules import one another in one direction only
(``box`` <- ``hpolytope`` <- ``zonotope``; all three <- this module), so none of them needs
the others' conversions:

* :func:`as_hpolytope` -- the H-representation ``{x : A x <= b}`` of any set this package
  represents, or of a pair ``(A, b)``; anything else is refused with one
  :class:`UnsupportedSetError`, never accepted by the attributes it happens to have:

  - :class:`~reachsafe.sets.HPolytope`: itself;
  - :class:`~reachsafe.sets.Box`: ``[I; -I] x <= [hi; -lo]`` (exact);
  - :class:`~reachsafe.sets.Zonotope`: one facet pair per (n-1)-subset of generators
    (exact; :meth:`~reachsafe.sets.Zonotope.to_hpolytope`, cached on the zonotope);
  - a tuple ``(A, b)``: ``HPolytope(A, b)`` (validated there).

* the interval hull of any representation is its own ``bounding_box()``
  (:class:`~reachsafe.sets.base.ConvexSet`).
"""

from __future__ import annotations

from typing import Union

from ..errors import UserError
from .box import Box
from .hpolytope import HPolytope
from .zonotope import Zonotope

__all__ = ["as_hpolytope", "box_to_hpolytope", "UnsupportedSetError", "HPolytopeLike"]

HPolytopeLike = Union[HPolytope, Box, Zonotope, tuple]


class UnsupportedSetError(UserError, TypeError):
    """An object that is not a set this package can convert (a :class:`UserError` and a :class:`TypeError`)."""


def box_to_hpolytope(box: Box) -> HPolytope:
    """``B = {lo <= x <= hi}`` as ``[I; -I] x <= [hi; -lo]`` (2n rows, exact)."""
    return HPolytope.from_box(box.lo, box.hi)


def as_hpolytope(obj: object, what: str = "the set", also: str = "") -> HPolytope:
    """The H-representation of ``obj`` (module docstring: which types, and how).

    :param obj: an :class:`HPolytope`, a :class:`Box`, a :class:`Zonotope` or a tuple ``(A, b)``.
    :param what: how the caller's error message names ``obj`` (e.g. ``"invariant_set"``).
    :param also: further forms the *caller* accepts before calling this (e.g. ``"a SetFile"``),
        listed first in the error message so that it names everything the caller takes.
    :raises UnsupportedSetError: ``obj`` is none of these (one line: what was given, what is accepted).
    """
    if isinstance(obj, HPolytope):
        return obj
    if isinstance(obj, Box):
        return box_to_hpolytope(obj)
    if isinstance(obj, Zonotope):
        return obj.to_hpolytope()
    if isinstance(obj, tuple) and len(obj) == 2:
        return HPolytope(*obj)
    forms = ([also] if also else []) + ["an HPolytope, a Box, a Zonotope or a tuple (A, b)"]
    raise UnsupportedSetError(f"{what} must be {', '.join(forms)}; got {type(obj).__name__}")
