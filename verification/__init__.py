"""Everything that proves, in three subpackages with one job each:

* :mod:`verification.synthesis`: propose a robust control-invariant polytope;
* :mod:`verification.certification`: prove or refute it, independently of synthesis;
* :mod:`verification.audit`: check recorded rollouts step by step, and report.

plus :mod:`verification.kernel` (grid viability-kernel estimates) and
:mod:`verification.plots`.
"""
