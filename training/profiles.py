"""The training defaults a system's profile sets (:mod:`reachsafe.systems.profile`), checked against an algorithm.

The generic defaults stay with each algorithm (:class:`training.shac.SHACConfig`,
:func:`training.baselines.default_hyperparameters`); a profile only replaces some of them.
"""

from __future__ import annotations

from typing import Any, Collection

from reachsafe.errors import UserError
from reachsafe.systems import profile_of

__all__ = ["profile_overrides"]


def profile_overrides(system: str, algo: str, known: Collection[str]) -> dict[str, Any]:
    """The hyper-parameters the profile of ``system`` sets for ``algo`` (empty without a profile).

    :param known: the algorithm's hyper-parameter names; a profile key outside them is refused.
    :raises UserError: the profile sets a hyper-parameter ``algo`` does not have.
    """
    hp = profile_of(system).overrides(algo)
    unknown = sorted(set(hp) - set(known))
    if unknown:
        raise UserError(f"the profile of system {system!r} sets unknown {algo} hyperparameter(s) "
                        f"{', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return hp
