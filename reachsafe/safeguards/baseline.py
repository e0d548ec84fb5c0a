"""The ``"none"`` kind: the unsafeguarded baseline (the identity map, unsafe actions counted)."""

from __future__ import annotations

from typing import Any, Union

from torch import Tensor

from ..systems import CompiledSystem
from .actionset import Tolerances
from .base import InvariantSetLike, Safeguard

__all__ = ["NoSafeguard"]


class NoSafeguard(Safeguard):
    """The unsafeguarded baseline: returns the actions unchanged.

    The float64 check still runs, so ``info.n_unsafe`` counts actions outside ``S(x)``
    (nothing is replaced: ``shields = False``); states outside the set are counted, never refused.
    """

    kind = "none"
    shields = False

    def __init__(self, system: Union[CompiledSystem, str], invariant_set: InvariantSetLike, **kw: Any) -> None:
        kw.setdefault("outside", "fallback")
        super().__init__(system, invariant_set, **kw)

    def _map(self, actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
        """The identity: ``a_s = a`` (values and gradient)."""
        return actions
