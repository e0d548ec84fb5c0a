"""Certification: the independent proof that a polytope is robust control invariant.

* :mod:`.certifier` searches a proof (cells, affine feedback witnesses) or a refutation;
* :mod:`.recheck` is the small trusted checker of the proof artifact (no search, no LP);
* :mod:`.per_state` refutes: a state whose safe-action set is empty, by a Farkas certificate;
* :mod:`.intervals` is the certifier's own outward-rounded interval arithmetic.

Nothing here imports :mod:`verification.synthesis` (checked by a test), so a proof does not
depend on the code that proposed the set.
"""

from .certifier import METHOD, CertifyResult, artifact_path_for, certify

__all__ = ["certify", "CertifyResult", "artifact_path_for", "METHOD"]
