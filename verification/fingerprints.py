"""Fingerprints that tie a rollouts file to the exact set (and model) it was guarded with.

The definition lives in the core (:func:`reachsafe.setfile.set_fingerprint`), shared by
training (which records it) and the audit (which recomputes and compares it)::

    set_fingerprint = "sha256:" + sha256( bytes(A) || bytes(b) || model_fingerprint )

with ``bytes(M) = np.ascontiguousarray(M, dtype="<f8").tobytes()`` and the model
fingerprint UTF-8 encoded.  Any change of a single bit of ``A``, ``b`` or of the model gives
another fingerprint.
"""

from __future__ import annotations

from reachsafe.setfile import set_fingerprint, set_fingerprint_arrays

__all__ = ["set_fingerprint", "set_fingerprint_arrays"]
