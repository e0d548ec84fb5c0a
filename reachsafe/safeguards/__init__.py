"""Online safeguards: batched, differentiable torch maps from policy actions to provably safe actions.

For a state ``x`` in a robust control-invariant set ``P = {x : A x <= b}`` every action in
``S(x) = {a in U : A (c(x) + B(x) a) + h_W(x) <= b}`` keeps the successor in ``P`` for every
noise value (exact: the models are affine in ``(a, w)``).  A safeguard maps any action to
``S(x)``::

    from reachsafe import load_set, get_system
    from reachsafe.safeguards import make_safeguard

    sg = make_safeguard("raymask", get_system("pendulum"), load_set("data/published/pendulum.json"))
    safe = sg(states, actions)           # torch tensors [B, n], [B, m] -> [B, m]
    sg.last_info.intervention_rate       # what the call did (SafeguardInfo)
    loss = loss + sg.regularizer(actions, safe, lam=0.1)

Kinds (:mod:`reachsafe.safeguard_kinds`, the one registry of them; ``KINDS`` here maps each
name to its class): ``"none"`` (identity, counts unsafe actions), ``"projection"`` (exact
Euclidean projection), ``"raymask"`` (linear ray mask), ``"raymask-tanh"`` (tanh ray mask).
All are exact for any m up to 8 (``MAX_ACTIONS``), batched without per-sample solver calls,
and followed by a float64 safety net (:mod:`reachsafe.safeguards.safetynet`).

Design in brief (details in each module's docstring).  Per call, ``c(x), B(x), E(x)`` are
evaluated once (float64, one autograd node with a closed-form backward); the structure of each
map (which facets matter, which rows are active, which rows make the centre) is found without a
graph, and the gradient is attached by one :class:`torch.autograd.Function` per map whose backward
is the exact Jacobian in closed form:

* ``baseline``   — the ``"none"`` kind (identity).
* ``base``       — the facet pass: ``max_U (A B(x)) a - rhs`` for every facet in one matrix product
  per varying action column; facets that do not cut U are dropped (exactly: every action in U
  satisfies them with slack), the others become the per-state local rows ``G, h`` (any m).
* ``polygon``    — m = 2 in closed form, loop-free: boundary segments of all rows at once, the
  exact projection (nearest segment point, KKT-checked), the polygon's edges for the centroid.
* ``activeset``  — batched exact projection by a dual active-set method (m >= 3, and any m = 2
  state whose closed form fails its KKT check), polished on its final active set.
* ``centre``     — weighted analytic centre (m >= 3) with its exact implicit derivative.
* ``projection`` — the projection (m = 1 interval, m = 2 polygon, m >= 3 active set) and its
  closed-form backward.
* ``raymask`` / ``raytail`` — the ray masks (closed-form ray exits; centre: interval midpoint,
  polygon centroid, analytic centre) and, for m <= 2, their closed-form backward.
* ``interval``   — m = 1: every shielding kind on ``S(x) = [l, u]`` in closed form (bounds from all facets,
  one autograd node, the same float64 check); chunks it cannot finish go to the general path.
* ``safetynet``  — float64 re-check of every returned action against all facets with a
  margin; failures get the float64 centre of ``S(x)``; empty ``S(x)`` gets the
  min-max-violation action (counted as unsafe in :class:`SafeguardInfo`).
* ``bench``      — ``reachsafe bench safeguards`` (cvxpylayers is imported only there).

Actions are computed on ``S(x)`` shrunk by ``tighten`` (1e-9 in float64, 1e-5 in float32, a
distance in state space after row normalisation) so that float32 outputs pass the float64
check; the projection therefore lands up to ``tighten`` inside the exact boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

from ..safeguard_kinds import SAFEGUARD_KINDS
from ..systems import CompiledSystem
from .base import InvariantSetLike, Safeguard, SafeguardInfo
from .baseline import NoSafeguard
from .projection import ProjectionSafeguard, project
from .raymask import RayMaskSafeguard, TanhRayMaskSafeguard, ray_mask

__all__ = ["make_safeguard", "KINDS", "Safeguard", "SafeguardInfo", "NoSafeguard", "ProjectionSafeguard",
           "RayMaskSafeguard", "TanhRayMaskSafeguard", "project", "ray_mask"]


KINDS: Mapping[str, type[Safeguard]] = SAFEGUARD_KINDS.classes()  # live: name -> class


def make_safeguard(kind: str, system: Union[CompiledSystem, str], setfile: InvariantSetLike,
                   passthrough: bool = False, **kw: Any) -> Safeguard:
    """Build a safeguard.

    :param kind: one of :data:`KINDS` (``"none"``, ``"projection"``, ``"raymask"``, ``"raymask-tanh"``
        and any kind registered in :data:`reachsafe.safeguard_kinds.SAFEGUARD_KINDS`).
    :param system: compiled system or its name.
    :param setfile: :class:`~reachsafe.setfile.SetFile`, path, a set (HPolytope, Box, Zonotope) or ``(A, b)``.
    :param passthrough: straight-through (identity) gradient; it ignores that the safeguard overrides the
        action, which left 1 in 5 pendulum SHAC policies stuck at the constraint (results/paper).
    :param kw: further options of :class:`~reachsafe.safeguards.base.Safeguard`
        (``outside``, ``empty``, ``tighten``, ``margin``, ...).
    :raises UserError: unknown ``kind`` (one line with the choices).
    """
    return SAFEGUARD_KINDS.load(kind)(system, setfile, passthrough=passthrough, **kw)
