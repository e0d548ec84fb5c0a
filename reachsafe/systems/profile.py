"""Per-system defaults as data: the optional :class:`SystemProfile` a model carries beside its definition.

A profile holds what the tools choose *for* a model rather than what the model *is*: the
training budget, the tuned hyper-parameters per learning algorithm, the coordinate pairs worth
plotting, and whether the paper's published set is invariant (so it may serve as the default
set).  It is not part of the model fingerprint: changing a profile never invalidates a set or a
certificate.

A built-in model passes its profile to its :class:`~reachsafe.systems.definition.SystemDefinition`
(``profile=PROFILE``, see :mod:`reachsafe.systems.quadrotor`); a model file of the user's own
may do the same.  A model without one gets :data:`GENERIC`, the empty profile: the training
code's generic defaults (:class:`training.shac.SHACConfig`,
:func:`training.baselines.default_hyperparameters`), :data:`GENERIC_STEPS` environment steps,
coordinate pairs ``(0, 1), (2, 3), ...`` in plots, and no published default set.

>>> from reachsafe.systems import profile_of
>>> profile_of("quadrotor").steps
200000
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["SystemProfile", "GENERIC", "GENERIC_STEPS"]

GENERIC_STEPS = 100_000  # training budget in environment steps of a model without a profile


@dataclass(frozen=True)
class SystemProfile:
    """Optional defaults of the tools for one model (module docstring).

    :param steps: default training budget in environment steps (``reachsafe train`` without
        ``--steps``; an experiment without ``steps``).
    :param hyperparameters: algorithm (``"shac"``, ``"ppo"``, ``"sac"``) -> hyper-parameters
        that replace the generic defaults of that algorithm, e.g.
        ``{"ppo": {"gamma": 0.95}}``; a key the algorithm does not know is refused when it is used.
    :param plot_pairs: state-index pairs ``(i, j)`` onto which plots project a set of more
        than two dimensions (empty: ``(0, 1), (2, 3), ...``).
    :param published_set_is_invariant: ``data/published/NAME.json`` is robust control-invariant
        for this model, so training may fall back to it when no set of our own exists.

    :meth:`SystemDefinition.validate <reachsafe.systems.definition.SystemDefinition.validate>`
    checks a model's profile (types, positive steps, pairs of state indices).
    """

    steps: int = GENERIC_STEPS
    hyperparameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    plot_pairs: tuple[tuple[int, int], ...] = ()
    published_set_is_invariant: bool = False

    def overrides(self, algo: str) -> dict[str, Any]:
        """The hyper-parameters this profile sets for ``algo`` (a copy; empty if none)."""
        return dict(self.hyperparameters.get(algo, {}))


GENERIC = SystemProfile()
