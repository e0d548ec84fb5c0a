"""Set representations for reachability: boxes, H-polytopes and zonotopes (numpy, float64).

Every representation is a :class:`ConvexSet` (``dim``, ``contains``, ``support``,
``bounding_box``, ``volume`` as a float, ``sample``, ``vertices``); conversions between them
are in :mod:`reachsafe.sets.convert` (:func:`as_hpolytope`).
"""

from ._geometry import EmptySetError, LPFailedError, UnboundedSetError
from .base import ConvexSet
from .box import Box
from .convert import UnsupportedSetError, as_hpolytope
from .hpolytope import HPolytope, VolumeEstimate
from .zonotope import Zonotope

__all__ = [
    "ConvexSet",
    "Box",
    "HPolytope",
    "VolumeEstimate",
    "Zonotope",
    "as_hpolytope",
    "EmptySetError",
    "LPFailedError",
    "UnboundedSetError",
    "UnsupportedSetError",
]
