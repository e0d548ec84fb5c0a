"""Set representations for reachability: boxes, H-polytopes and zonotopes (numpy, float64)."""

from ._geometry import EmptySetError, UnboundedSetError
from .box import Box
from .hpolytope import HPolytope, VolumeEstimate
from .zonotope import Zonotope

__all__ = [
    "Box",
    "HPolytope",
    "VolumeEstimate",
    "Zonotope",
    "EmptySetError",
    "UnboundedSetError",
]
