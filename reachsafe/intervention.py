"""What counts as an intervention of a safeguard: one definition for training, evaluation and audit.

A step is an intervention when the executed action differs from the policy's action by
more than ``INTERVENTION_TOL`` in Euclidean norm::

    intervened = |a_s - a|_2 > 1e-6        (actions normalised to [-1, 1]^m)

The tolerance ignores rounding (a float32 policy action stored in float64, a safeguard
that returns its input up to an ulp); every real change of the action is counted, so a
ray mask, which rescales almost every action, intervenes in almost every step, and a
projection only where the policy's action leaves ``S(x)``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["INTERVENTION_TOL", "intervened"]

INTERVENTION_TOL = 1e-6


def intervened(policy_actions: Any, executed_actions: Any, tol: float = INTERVENTION_TOL) -> Any:
    """``|a_s - a|_2 > tol`` over the last axis; numpy arrays or torch tensors ``[..., m]`` -> bool ``[...]``."""
    diff = executed_actions - policy_actions
    return (diff * diff).sum(-1) > tol * tol
