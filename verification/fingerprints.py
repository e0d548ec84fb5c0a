"""Fingerprints that tie a rollouts file to the exact set (and model) it was guarded with.

``set_fingerprint(setfile)`` is the value a training run stores as ``set_fingerprint`` in its
``rollouts.npz``; ``reachsafe audit`` recomputes it from the set file and compares::

    set_fingerprint = "sha256:" + sha256( bytes(A) || bytes(b) || model_fingerprint )

with ``bytes(M) = np.ascontiguousarray(M, dtype="<f8").tobytes()`` (row-major, little-endian
IEEE 754 doubles: identical to ``np.ascontiguousarray(M, np.float64)`` on every x86/ARM machine)
and ``model_fingerprint`` UTF-8 encoded.  Any change of a single bit of ``A``, ``b`` or of the
model gives another fingerprint.  Shapes are not hashed separately: ``A`` has ``n`` columns
fixed by the model, so ``len(b)`` determines the split of the byte string.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["set_fingerprint", "set_fingerprint_arrays"]


def set_fingerprint_arrays(A: Any, b: Any, model_fingerprint: str) -> str:
    """``"sha256:" + sha256(bytes(A) + bytes(b) + model_fingerprint.encode())`` (see module docstring)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(A, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(b, dtype="<f8").tobytes())
    h.update(str(model_fingerprint).encode("utf-8"))
    return "sha256:" + h.hexdigest()


def set_fingerprint(setfile: Any) -> str:
    """Fingerprint of a loaded :class:`~reachsafe.setfile.SetFile` (its ``A``, ``b``, ``model_fingerprint``)."""
    return set_fingerprint_arrays(setfile.A, setfile.b, setfile.model_fingerprint)
