"""Synthesis plans: which (sub)systems to synthesise, derived from the model alone.

A plan is a list of :class:`PlanPart`; the candidate is the product of the parts'
polytopes, each constraining its own coordinates of the full state (``idx``).  The parts
come from :func:`.structure.decompose` (weakly coupled chains, found on the linearisation's
dependency graph); a system that does not split is one part covering every coordinate.
No system is recognised by its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .linear_mas import find_equilibrium
from .scaling import ScaledSystem
from .structure import decompose

__all__ = ["PlanPart", "plan_for", "whole_plan"]


@dataclass
class PlanPart:
    """One factor of the product: a system over the coordinates ``idx`` of the full state."""

    system: object  # CompiledSystem of the part
    idx: tuple[int, ...]
    scaled: ScaledSystem
    operating: tuple[np.ndarray, np.ndarray]  # (z_e, a_e), normalised coordinates
    equilibrium: bool  # operating point is an equilibrium (else the box centre, a = 0)
    coupling: list[dict] = field(default_factory=list)

    @property
    def names(self) -> tuple[str, ...]:
        """The part's state names."""
        return self.system.definition.state_names or tuple(str(s) for s in self.system.definition.state)

    def describe(self) -> str:
        return "(" + ", ".join(self.names) + ")"


def _part(system, idx, coupling) -> PlanPart:
    z = ScaledSystem(system)
    eq = find_equilibrium(z)
    if eq is None:
        return PlanPart(system, tuple(idx), z, (np.zeros(z.n), np.zeros(z.m)), False, coupling)
    return PlanPart(system, tuple(idx), z, eq, True, coupling)


def whole_plan(system) -> list[PlanPart]:
    """The plan without a split: one part covering every coordinate."""
    return [_part(system, range(system.n), [])]


def plan_for(system) -> list[PlanPart]:
    """The synthesis plan of a compiled system (see module docstring)."""
    parts = decompose(system)
    if parts is None:
        return whole_plan(system)
    return [_part(p.system, p.idx, p.coupling) for p in parts]
