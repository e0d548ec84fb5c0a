"""Synthesis: proposing robust control-invariant polytopes (search, not proof).

Templates and plans (:mod:`.templates`, :mod:`.plans`, :mod:`.decomposition`), the
counterexample-guided shrinking loop (:mod:`.invariant`, with the sampled robust margins of
:mod:`.margins`), and the ``compute-invariant`` driver (:mod:`.driver`) that hands every
candidate to :mod:`verification.certification` and writes only what it proves.
"""
