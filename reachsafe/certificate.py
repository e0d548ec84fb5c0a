"""The binding of a set file's certificate to its proof artifact, checked at every load.

A set file's ``certificate`` field claims that the proof artifact it names (``<stem>.proof.json``
beside the set file, written by ``reachsafe certify``) proves ``P = {x : A x <= b}`` robust
control invariant for the model with the set file's fingerprint.  Re-checking the proof
(``reachsafe certify --recheck``, the audit's check 1) re-runs every cell check; the *binding*
costs milliseconds and no search, so :func:`reachsafe.setfile.load_set` checks it every time:

1. the artifact the certificate names exists beside the set file;
2. its bytes hash to the certificate's ``artifact_sha256``;
3. the artifact's ``set_sha256`` equals :func:`artifact_set_hash` of the set file's ``A``
   and ``b`` (the set was not edited after certification), and its ``model_fingerprint``
   (and the certificate's) equals the set file's.

A set file whose certificate fails any of these is *not* certified: :func:`certificate_problem`
names the failure in one phrase.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["artifact_set_hash", "artifact_path", "certificate_problem"]


def artifact_set_hash(A: Any, b: Any) -> str:
    """``"sha256:" + sha256(shape of A as little-endian int64 ++ A ++ b as little-endian float64)``.

    The proof artifact records it as ``set_sha256``; the certifier's re-checker compares the
    same hash (:func:`verification.certification.recheck.set_hash`).
    """
    A = np.asarray(A, dtype=np.float64)
    h = hashlib.sha256()
    h.update(np.asarray(A.shape, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(A, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(b, dtype="<f8").tobytes())
    return "sha256:" + h.hexdigest()


def artifact_path(setfile_path: str | Path, certificate: dict[str, Any] | None = None) -> Path:
    """The proof artifact of a set file: the certificate's ``artifact`` name beside it, else ``<stem>.proof.json``.

    :raises ValueError: the certificate names something that is not a plain file name.
    """
    p = Path(setfile_path)
    name = (certificate or {}).get("artifact")
    if name is None:
        return p.with_name(p.stem + ".proof.json")
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"the certificate's artifact {name!r} is not a file name beside the set file")
    return p.with_name(name)


def certificate_problem(setfile: Any) -> str | None:
    """Why the set file's certificate does not bind to its proof artifact, or None (bound, or no certificate).

    :param setfile: a loaded :class:`reachsafe.setfile.SetFile` (its ``path`` locates the artifact).
    """
    cert = setfile.certificate
    if not cert or cert.get("status") != "certified":
        return None
    if setfile.path is None:
        return "the certificate cannot be checked: the set has no file path to find its proof artifact"
    try:
        art = artifact_path(setfile.path, cert)
    except ValueError as exc:
        return str(exc)
    if not art.is_file():
        return f"the certificate's proof artifact {art.name} is missing beside the set file"
    raw = art.read_bytes()
    if cert.get("artifact_sha256") != hashlib.sha256(raw).hexdigest():
        return f"proof artifact {art.name} differs from the one the certificate records (sha256)"
    try:
        head = json.loads(raw)
    except ValueError:
        return f"proof artifact {art.name} is not valid JSON"
    if not isinstance(head, dict):
        return f"proof artifact {art.name} is not a proof artifact"
    if head.get("set_sha256") != artifact_set_hash(setfile.A, setfile.b):
        return (f"proof artifact {art.name} proves another set: A or b changed after certification "
                "(the set was edited)")
    fps = {head.get("model_fingerprint"), cert.get("model_fingerprint", setfile.model_fingerprint)}
    if fps != {setfile.model_fingerprint}:
        return "the certificate was made for another model fingerprint"
    return None
