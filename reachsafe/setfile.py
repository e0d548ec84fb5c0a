"""The set-file contract: a robust control-invariant set as plain JSON.

A set file describes the polytope ``P = {x : A x <= b}`` for one system and is readable
without reachsafe (MATLAB, Julia, ``json.load``).  Fields (``format_version`` 1)::

    format_version   1
    system           registry name, e.g. "pendulum"
    model_fingerprint  sha256 of the symbolic model the set was made for
    state_names      names of the state coordinates (order of A's columns)
    constraints      {"lo": [...], "hi": [...]}  safety box X (doubles, nearest)
    noise            {"lo": [...], "hi": [...]}  noise box W
    actions          {"lo": [...], "hi": [...]}  action box U
    A, b             H-representation, A: [k][n], b: [k]
    zonotope         optional {"center": [n], "generators": [n][p]}
    volume           {"value": v, "method": "exact" | "monte-carlo", "stderr": s}
    certificate      null, or {"status": "certified", "method", "min_slack", "cells",
                     "time_s", "tool_version", "artifact", "artifact_sha256", ...}
    provenance       free-form dict: how the set was made (command, source, date)
    model_file       only for a system loaded from a model file of the user's own: the
                     absolute path of that file, where load_set finds the model again

Loading validates everything and refuses with one line (:class:`SetFileError`) that
names the problem and the fix.  That includes the certificate's binding to its proof artifact
(:mod:`reachsafe.certificate`: the artifact exists, its hash is the recorded one, and it is for
this ``A``, ``b`` and model); a load that does not rely on the certificate (``certify``, the
audit, ``info``, ``plot``) passes ``check_certificate=False`` and reads the finding from
:attr:`SetFile.certificate_problem`.  Writing is atomic: a temporary file in the same folder
is written, flushed, fsync'ed and renamed over the target, so a crash never leaves a
half-written set file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .certificate import artifact_path, certificate_problem
from .systems import UnknownSystemError, available_systems, get_system, installed_systems, is_model_path, model_file_of

__all__ = ["SetFile", "SetFileError", "FORMAT_VERSION", "load_set", "atomic_write_text", "atomic_write_bytes",
           "set_fingerprint", "set_fingerprint_arrays", "install_certified_set"]

FORMAT_VERSION = 1


class SetFileError(ValueError):
    """A set file cannot be used; the message is one line with the problem and the fix."""


@dataclass
class SetFile:
    """An invariant-set candidate or certified set, as stored on disk (see module docstring)."""

    system: str
    model_fingerprint: str
    A: np.ndarray
    b: np.ndarray
    constraints: dict[str, list[float]]
    noise: dict[str, list[float]]
    actions: dict[str, list[float]]
    state_names: list[str] = field(default_factory=list)
    zonotope: dict[str, Any] | None = None
    volume: dict[str, Any] | None = None
    certificate: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    model_file: str | None = None
    path: Path | None = None
    certificate_problem: str | None = None  # set by load_set: why the certificate does not bind, if it does not

    # ---------------------------------------------------------- convenience
    @property
    def n(self) -> int:
        return int(self.A.shape[1])

    @property
    def certified(self) -> bool:
        """The file records a certificate and (when loaded from disk) it binds to its proof artifact."""
        return (bool(self.certificate) and (self.certificate or {}).get("status") == "certified"
                and self.certificate_problem is None)

    @property
    def certificate_status(self) -> str:
        """``"certified"``, ``"none"`` (never certified) or ``"mismatch"`` (the certificate does not bind)."""
        if self.certificate_problem is not None:
            return "mismatch"
        return "certified" if self.certified else "none"

    def polytope(self):
        """The set as :class:`reachsafe.sets.HPolytope`."""
        from .sets import HPolytope  # lazy: reachsafe.sets needs scipy, off `import reachsafe`


        return HPolytope(self.A, self.b)

    @classmethod
    def for_system(cls, system, A: np.ndarray, b: np.ndarray, **kw: Any) -> "SetFile":
        """A set file for a :class:`~reachsafe.systems.CompiledSystem` (boxes filled in from the model)."""

        src = model_file_of(system)
        kw.setdefault("model_file", str(src) if src is not None else None)
        return cls(
            system=system.name,
            model_fingerprint=system.fingerprint,
            A=np.asarray(A, dtype=np.float64),
            b=np.asarray(b, dtype=np.float64),
            constraints={"lo": system.constraint_lo.tolist(), "hi": system.constraint_hi.tolist()},
            noise={"lo": system.noise_lo.tolist(), "hi": system.noise_hi.tolist()},
            actions={"lo": system.action_lo.tolist(), "hi": system.action_hi.tolist()},
            state_names=list(system.state_names),
            **kw,
        )

    def to_json(self) -> dict[str, Any]:
        out = {
            "format_version": self.format_version,
            "system": self.system,
            "model_fingerprint": self.model_fingerprint,
            "state_names": list(self.state_names),
            "constraints": self.constraints,
            "noise": self.noise,
            "actions": self.actions,
            "A": np.asarray(self.A).tolist(),
            "b": np.asarray(self.b).tolist(),
            "zonotope": self.zonotope,
            "volume": self.volume,
            "certificate": self.certificate,
            "provenance": self.provenance,
        }
        if self.model_file is not None:
            out["model_file"] = str(self.model_file)
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Validate, then write atomically (temp file + rename). Returns the path."""
        _validate_arrays(self.A, self.b, str(path))
        text = json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n"
        atomic_write_text(path, text)
        self.path = Path(path)
        return self.path


def set_fingerprint_arrays(A: Any, b: Any, model_fingerprint: str) -> str:
    """``"sha256:" + sha256(A as little-endian float64, C order ++ b likewise ++ model fingerprint UTF-8)``.

    Identifies exactly which set (and model) guarded a run; rollouts record it and the
    audit compares it with the set file it is given.
    """

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(A, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(b, dtype="<f8").tobytes())
    h.update(str(model_fingerprint).encode("utf-8"))
    return "sha256:" + h.hexdigest()


def set_fingerprint(setfile: "SetFile") -> str:
    """Fingerprint of a loaded set file (see :func:`set_fingerprint_arrays`)."""
    return set_fingerprint_arrays(setfile.A, setfile.b, setfile.model_fingerprint)


def install_certified_set(candidate: str | os.PathLike, out: str | os.PathLike) -> bool:
    """Move a certified set file and its proof artifact (from a work folder) to ``out``; False if kept.

    When ``out`` already holds the same set -- same ``A``, ``b`` and model fingerprint
    (:func:`set_fingerprint`), with a certificate bound to its proof artifact -- nothing is
    moved and the existing files stay untouched (bytes and timestamps), so recomputing a
    committed set leaves the working tree clean.  Otherwise the artifact, then the set file,
    are renamed into ``out``'s folder (each rename atomic; same file system).

    :returns: True if the new files were installed, False if the existing ones were kept.
    """

    cand, out = Path(candidate), Path(out)
    new = load_set(cand)
    if not new.certified:
        raise SetFileError(f"{cand}: not certified; only a certified set is installed")
    if out.is_file():
        try:
            old = load_set(out)
        except SetFileError:  # unreadable, another model, a certificate that does not bind: replace it
            old = None
        if old is not None and old.certified and set_fingerprint(old) == set_fingerprint(new):
            return False
    art = artifact_path(cand, new.certificate)
    art.replace(out.parent / art.name)
    cand.replace(out)
    return True


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise SetFileError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------- loading
def _fail(path: str, msg: str) -> SetFileError:
    return SetFileError(f"{path}: {msg}")


def _validate_arrays(A: np.ndarray, b: np.ndarray, where: str) -> None:
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise _fail(
            where, f"'A' must be a non-empty 2-D matrix [k][n], got shape {list(A.shape)}; regenerate the set file"
        )
    if b.shape != (A.shape[0],):
        raise _fail(
            where,
            f"'b' must have one entry per row of 'A' ({A.shape[0]}), got shape {list(b.shape)}; "
            "regenerate the set file",
        )
    if not np.all(np.isfinite(A)):
        raise _fail(where, "'A' contains NaN or infinite entries; regenerate the set file")
    if not np.all(np.isfinite(b)):
        raise _fail(where, "'b' contains NaN or infinite entries; regenerate the set file")


def _float_matrix(path: str, data: dict, key: str, ndim: int) -> np.ndarray:
    if key not in data:
        raise _fail(path, f"missing field '{key}'; the file is not a reachsafe set file or is truncated")
    try:
        arr = np.array(data[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(
            path,
            f"field '{key}' is not a numeric {'matrix' if ndim == 2 else 'vector'} (ragged or non-numeric entries)",
        ) from None
    if arr.ndim != ndim:
        raise _fail(path, f"field '{key}' must be {ndim}-D, got shape {list(arr.shape)}")
    return arr


def _box(path: str, data: dict, key: str, dim: int) -> dict[str, list[float]]:
    box = data.get(key)
    if not isinstance(box, dict) or "lo" not in box or "hi" not in box:
        raise _fail(path, f"field '{key}' must be an object with 'lo' and 'hi' lists")
    lo = np.array(box["lo"], dtype=np.float64)
    hi = np.array(box["hi"], dtype=np.float64)
    if lo.shape != (dim,) or hi.shape != (dim,):
        raise _fail(path, f"field '{key}' must have {dim} entries in 'lo' and 'hi', got {lo.shape} and {hi.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))) or np.any(lo > hi):
        raise _fail(path, f"field '{key}' must be finite with lo <= hi")
    return {"lo": lo.tolist(), "hi": hi.tolist()}


def _reject_constant(token: str) -> float:
    raise ValueError(f"non-finite number {token}")


def _model_file_or_name(compiled) -> str:
    src = model_file_of(compiled)
    return str(src) if src is not None else compiled.name


def _model_of(p: str, name: str, model_file: str | None, system: str | None):
    """The compiled model a set file is checked against.

    An explicit ``system`` that is a model file wins; else the set's recorded
    ``model_file`` (relative paths are relative to the set file's folder) if it exists;
    else the system registered under ``name`` (built-in, installed, or loaded by path
    earlier in this process).
    """

    if system is not None and is_model_path(system):
        return get_system(system)
    if system is not None and system != name:
        raise _fail(p, f"is a set for {name!r}, not for {system!r}; pass a {system} set file")
    if model_file is not None:
        mf = Path(model_file)
        if not mf.is_absolute():
            mf = Path(p).parent / mf
        if mf.exists():
            compiled = get_system(str(mf))
            if compiled.name != name:
                raise _fail(p, f"model file {mf} defines system {compiled.name!r}, but the set is for {name!r}")
            return compiled
    try:
        return get_system(name)
    except UnknownSystemError:
        if model_file is not None:
            raise _fail(p, f"model file {model_file} of system {name!r} not found; restore it, or set 'model_file' "
                           "in the set file to where the model file now lives (the model fingerprint is still "
                           "checked)") from None
        known = available_systems() + installed_systems()
        raise _fail(p, f"unknown system {name!r}; available: {', '.join(known)}") from None


def load_set(
    path: str | os.PathLike,
    system: str | None = None,
    check_fingerprint: bool = True,
    check_certificate: bool = True,
) -> SetFile:
    """Load and validate a set file.

    :param path: the JSON file.
    :param system: if given, the set must be for this system (a name, or the path of a model
        file, which is then used instead of the set's recorded ``model_file``).
    :param check_fingerprint: refuse a set made for another version of the model (default).
    :param check_certificate: refuse a set whose certificate does not bind to its proof
        artifact (default; :mod:`reachsafe.certificate`).  With False the finding is kept in
        :attr:`SetFile.certificate_problem` and the set counts as not certified.
    :raises SetFileError: one line naming the problem and the fix.
    """
    p = str(path)
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(p, "no such file; check the path (committed sets live in data/)") from None
    except IsADirectoryError:
        raise _fail(p, "is a directory, not a set file") from None
    except UnicodeDecodeError:
        raise _fail(p, "is not a UTF-8 text file; a set file is JSON") from None
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _fail(
            p, f"malformed JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); the file is corrupt or truncated"
        ) from None
    except ValueError as exc:
        raise _fail(p, f"{exc} in JSON; set files hold finite numbers only") from None
    if not isinstance(data, dict):
        raise _fail(p, "top level must be a JSON object; this is not a reachsafe set file")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise _fail(
            p,
            f"unsupported format_version {version!r} (this reachsafe reads {FORMAT_VERSION}); "
            "upgrade reachsafe or regenerate the file",
        )
    name = data.get("system")
    if not isinstance(name, str):
        raise _fail(p, "missing field 'system'; the file is not a reachsafe set file")
    model_file = data.get("model_file")
    if model_file is not None and not isinstance(model_file, str):
        raise _fail(p, "field 'model_file' must be a path (string)")
    compiled = _model_of(p, name, model_file, system)
    if system is not None and name != compiled.name:
        raise _fail(p, f"is a set for {name!r}, not for {compiled.name!r}; pass a {compiled.name} set file")
    A = _float_matrix(p, data, "A", 2)
    b = _float_matrix(p, data, "b", 1)
    _validate_arrays(A, b, p)
    if A.shape[1] != compiled.n:
        raise _fail(p, f"'A' has {A.shape[1]} columns but {name} has {compiled.n} states")
    fp = data.get("model_fingerprint")
    if check_fingerprint and fp != compiled.fingerprint:
        raise _fail(
            p,
            f"model fingerprint {str(fp)[:19]}... does not match the current {name} model "
            f"({compiled.fingerprint[:19]}...): the set was made for another model; recompute it "
            f"(reachsafe compute-invariant {_model_file_or_name(compiled)} --out {p})",
        )
    sf = SetFile(
        system=name,
        model_fingerprint=str(fp),
        A=A,
        b=b,
        constraints=_box(p, data, "constraints", compiled.n),
        noise=_box(p, data, "noise", compiled.p),
        actions=_box(p, data, "actions", compiled.m),
        state_names=list(data.get("state_names") or compiled.state_names),
        zonotope=data.get("zonotope"),
        volume=data.get("volume"),
        certificate=data.get("certificate"),
        provenance=dict(data.get("provenance") or {}),
        format_version=version,
        path=Path(path),
        model_file=model_file,
    )
    if sf.zonotope is not None:
        z = sf.zonotope
        if not isinstance(z, dict):
            raise _fail(p, "field 'zonotope' must be an object with 'center' and 'generators'")
        c = _float_matrix(p, z, "center", 1)
        G = _float_matrix(p, z, "generators", 2)
        if (
            c.shape != (compiled.n,)
            or G.shape[0] != compiled.n
            or not (np.all(np.isfinite(c)) and np.all(np.isfinite(G)))
        ):
            raise _fail(p, f"zonotope must have a finite center [{compiled.n}] and generators [{compiled.n}][p]")
    if sf.certificate is not None and not isinstance(sf.certificate, dict):
        raise _fail(p, "field 'certificate' must be an object or null")
    for key in ("constraints", "noise"):
        stored = getattr(sf, key)
        lo_ref = compiled.constraint_lo if key == "constraints" else compiled.noise_lo
        hi_ref = compiled.constraint_hi if key == "constraints" else compiled.noise_hi
        if check_fingerprint and not (
            np.allclose(stored["lo"], lo_ref, rtol=0, atol=1e-12)
            and np.allclose(stored["hi"], hi_ref, rtol=0, atol=1e-12)
        ):
            raise _fail(
                p, f"'{key}' box differs from the {name} model's; the file was edited or made for another model"
            )
    if volume := sf.volume:
        if (
            not isinstance(volume, dict)
            or not isinstance(volume.get("value"), (int, float))
            or not math.isfinite(volume["value"])
        ):
            raise _fail(p, "field 'volume' must be an object with a finite 'value'")

    sf.certificate_problem = certificate_problem(sf)
    if check_certificate and sf.certificate_problem is not None:
        raise _fail(p, f"certificate does not match: {sf.certificate_problem}; re-certify it with "
                       f"'reachsafe certify {p}' (or restore the set file and its proof artifact)")
    return sf
