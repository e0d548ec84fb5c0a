"""Synthesis: proposing robust control-invariant polytopes (search, not proof).

Templates and plans (:mod:`.templates`, :mod:`.plans`, :mod:`.structure`: automatic decomposition), the
linear-feedback candidates (:mod:`.linear_mas`), the
counterexample-guided shrinking loop (:mod:`.invariant`, with the sampled robust margins of
:mod:`.margins`), and the ``compute-invariant`` driver (:mod:`.driver`) that hands every
candidate to :mod:`verification.certification` and writes only what it proves.
"""
