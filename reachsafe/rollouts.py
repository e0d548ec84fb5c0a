"""The rollouts contract: recorded episodes of a (guarded) policy, as one ``.npz`` file.

``E`` episodes of ``T`` steps each, for a system with ``n`` states and ``m`` actions.  The
file is a NumPy ``.npz`` archive (readable without reachsafe: ``np.load``) holding::

    states          float [E, T+1, n]  x_0 .. x_T of every episode
    actions         float [E, T, m]    executed actions a_s (after the safeguard), in [-1, 1]^m
    policy_actions  float [E, T, m]    the policy's actions a (before the safeguard)
    rewards         float [E, T]       r(x_{t+1}, a_s) of every step
    system          str                system name (built-in or of a model file)
    set_fingerprint str                reachsafe.setfile.set_fingerprint of the set in use
    model_fingerprint str              fingerprint of the model the episodes ran on
    noise           str                optional: "uniform", "adversarial", ... (default "unknown")

and, written by the trainer and kept on load when present (never required)::

    intervened      bool [E, T]        |a_s - a| > 1e-6 (reachsafe.intervention)
    outside_P       bool [E, T]        successor x_{t+1} outside the set in use
    outside_X       bool [E, T]        successor x_{t+1} outside the constraint box X
    noise_lo, noise_hi  float [p]      the noise box W
    safeguard, algo, set_path  str     how the episodes were produced

Other members (e.g. ``returns`` of older files) are ignored.  :meth:`Rollouts.load` checks
everything and refuses a bad file with one line (:class:`RolloutsError`) that names the file,
the problem and the fix: not an ``.npz`` archive (a text file, a plain ``.npy`` array),
truncated or corrupt, a missing member, a wrong dtype or shape, NaN anywhere (a recording
with NaN is broken; infinite values of a diverged run are kept, and the audit fails those
steps).  :meth:`Rollouts.save` validates the same way and writes atomically (temp file +
rename), so a crash never leaves a half-written file.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .intervention import intervened
from .setfile import atomic_write_bytes

__all__ = ["Rollouts", "RolloutsError", "ROLLOUTS_NAME", "REQUIRED_ARRAYS", "REQUIRED_META", "resolve_rollouts_path"]

ROLLOUTS_NAME = "rollouts.npz"
REQUIRED_ARRAYS = ("states", "actions", "policy_actions", "rewards")
REQUIRED_META = ("system", "set_fingerprint", "model_fingerprint")
_FLAGS = ("intervened", "outside_P", "outside_X")  # optional bool [E, T]
_EXTRA_STR = ("safeguard", "algo", "set_path")  # optional strings
_EXTRA_FLOAT = ("noise_lo", "noise_hi")  # optional float [p]
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip member header, an empty zip archive
_NPY_MAGIC = b"\x93NUMPY"


class RolloutsError(UserError):
    """A rollouts file (or object) breaks the contract; one line with the problem and the fix."""


def resolve_rollouts_path(path: str | Path) -> Path:
    """``ROLLOUTS.npz`` as given, or ``RUN_DIR/rollouts.npz`` for a run directory.

    :raises RolloutsError: the path does not exist, or the directory has no rollouts file.
    """
    p = Path(path)
    if p.is_dir():
        q = p / ROLLOUTS_NAME
        if not q.exists():
            raise RolloutsError(f"{p}: run directory has no {ROLLOUTS_NAME}; pass the rollouts file or the run "
                                "directory of a finished run")
        return q
    if not p.exists():
        raise RolloutsError(f"{p}: no such file; pass a rollouts .npz or a run directory")
    return p


@dataclass
class Rollouts:
    """``E`` complete episodes of ``T`` steps (module docstring); numeric arrays held as float64.

    Construction converts the float arrays to float64 (exactly) and records the lowest
    stored precision in ``storage_dtype``; :meth:`validate` checks shapes, NaN and metadata.
    """

    states: np.ndarray  # [E, T+1, n]
    actions: np.ndarray  # [E, T, m]   executed (after the safeguard)
    policy_actions: np.ndarray  # [E, T, m]
    rewards: np.ndarray  # [E, T]
    system: str
    set_fingerprint: str
    model_fingerprint: str
    noise: str = "unknown"
    intervened: np.ndarray | None = None  # [E, T] bool
    outside_P: np.ndarray | None = None  # [E, T] bool
    outside_X: np.ndarray | None = None  # [E, T] bool
    extra: dict[str, Any] = field(default_factory=dict)  # noise_lo, noise_hi, safeguard, algo, set_path
    fallbacks: int = 0  # safety-net fallbacks while recording (not stored in the file)
    storage_dtype: str = ""  # lowest precision of states / actions as given or stored
    path: Path | None = None

    def __post_init__(self) -> None:
        where = str(self.path) if self.path else "rollouts"
        arrays = {k: np.asarray(getattr(self, k)) for k in REQUIRED_ARRAYS}
        for k, a in arrays.items():
            if a.dtype.kind != "f":
                raise RolloutsError(f"{where}: '{k}' must be a float array, got dtype {a.dtype}; store the numbers "
                                    "as float32 or float64")
        if not self.storage_dtype:
            low = max((arrays["states"].dtype, arrays["actions"].dtype), key=lambda d: np.finfo(d).eps)
            self.storage_dtype = str(np.dtype(low))
        for k, a in arrays.items():
            setattr(self, k, a.astype(np.float64, copy=False))
        for k in _FLAGS:
            v = getattr(self, k)
            if v is not None:
                setattr(self, k, np.asarray(v))

    # ------------------------------------------------------------------ shapes
    @property
    def episodes(self) -> int:
        """``E``."""
        return int(self.states.shape[0])

    @property
    def steps(self) -> int:
        """``T``."""
        return int(self.actions.shape[1])

    @property
    def returns(self) -> np.ndarray:
        """Undiscounted return of every episode, ``[E]``."""
        return self.rewards.sum(axis=1)

    def with_meta(self, **kw: Any) -> "Rollouts":
        """A copy with metadata replaced: fields (``set_fingerprint``, ``noise``, ...) or ``extra`` keys."""
        fields = {k: v for k, v in kw.items() if k in self.__dataclass_fields__}
        extra = {**self.extra, **{k: v for k, v in kw.items() if k not in self.__dataclass_fields__}}
        return replace(self, **fields, extra=extra)

    def summary(self) -> dict[str, float]:
        """Return mean / std, interventions and violations (steps whose successor is outside P / X).

        Needs the trainer's ``outside_P`` and ``outside_X``; interventions are recomputed from the
        actions when ``intervened`` is absent.
        """
        if self.outside_P is None or self.outside_X is None:
            raise RolloutsError("these rollouts carry no outside_P / outside_X flags (only the trainer records "
                                "them); audit them with 'reachsafe audit' instead")

        iv = self.intervened if self.intervened is not None else intervened(self.policy_actions, self.actions)
        r = self.returns
        return {
            "episodes": int(r.shape[0]),
            "return_mean": float(r.mean()),
            "return_std": float(r.std()),
            "interventions": int(iv.sum()),
            "intervention_rate": float(iv.mean()),
            "violations_P": int(self.outside_P.sum()),
            "violations_X": int(self.outside_X.sum()),
            "fallbacks": int(self.fallbacks),
        }

    # -------------------------------------------------------------- validation
    def validate(self) -> "Rollouts":
        """Check the contract (module docstring); returns ``self``.

        :raises RolloutsError: one line naming the member, the problem and the fix.
        """
        where = str(self.path) if self.path else "rollouts"
        S, A, P, R = self.states, self.actions, self.policy_actions, self.rewards
        if S.ndim != 3 or A.ndim != 3:
            raise RolloutsError(f"{where}: 'states' must be [E, T+1, n] and 'actions' [E, T, m], got shapes "
                                f"{list(S.shape)} and {list(A.shape)}")
        E, T = S.shape[0], A.shape[1]
        if E == 0 or T == 0 or S.shape[2] == 0:
            raise RolloutsError(f"{where}: no steps (states {list(S.shape)}, actions {list(A.shape)}); record at least "
                                "one episode of one step")
        if A.shape[0] != E or S.shape[1] != T + 1:
            raise RolloutsError(f"{where}: 'states' {list(S.shape)} and 'actions' {list(A.shape)} disagree; expected "
                                "states [E, T+1, n] and actions [E, T, m]")
        if P.shape != A.shape:
            raise RolloutsError(f"{where}: 'policy_actions' {list(P.shape)} must have the shape of 'actions' "
                                f"{list(A.shape)}")
        if R.shape != (E, T):
            raise RolloutsError(f"{where}: 'rewards' {list(R.shape)} must be [E, T] = {[E, T]}")
        for k in _FLAGS:
            v = getattr(self, k)
            if v is not None and (v.dtype != np.bool_ or v.shape != (E, T)):
                raise RolloutsError(f"{where}: '{k}' must be a bool array [E, T] = {[E, T]}, got {v.dtype} "
                                    f"{list(v.shape)}")
        for k in REQUIRED_ARRAYS:
            a = getattr(self, k)
            bad = np.isnan(a)
            if bad.any():
                idx = [int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape)]
                at = f"episode {idx[0]}, step {idx[1]}" if len(idx) > 1 else f"episode {idx[0]}"
                raise RolloutsError(f"{where}: '{k}' holds {int(bad.sum())} NaN value(s), the first at {at}; the "
                                    "recording is broken (a NaN state, action or reward is never a valid record)")
        for k in REQUIRED_META + ("noise",):
            v = getattr(self, k)
            if not isinstance(v, str) or not v:
                raise RolloutsError(f"{where}: '{k}' must be a non-empty string; record the "
                                    f"{'system name' if k == 'system' else k.replace('_', ' ')}")
        return self

    # ------------------------------------------------------------------ saving
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The members of the ``.npz`` file (module docstring)."""
        out: dict[str, np.ndarray] = {k: getattr(self, k) for k in REQUIRED_ARRAYS}
        for k in REQUIRED_META + ("noise",):
            out[k] = np.asarray(getattr(self, k))
        for k in _FLAGS:
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        for k, v in self.extra.items():
            if k in _EXTRA_STR:
                out[k] = np.asarray("" if v is None else str(v))
            elif k in _EXTRA_FLOAT:
                out[k] = np.asarray(v, dtype=np.float64)
            else:
                raise RolloutsError(f"unknown rollouts metadata {k!r}; known: {', '.join(_EXTRA_STR + _EXTRA_FLOAT)}")
        return out

    def save(self, path: str | Path) -> Path:
        """Validate, then write ``path`` atomically (compressed ``.npz``); returns the path."""

        self.validate()
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.to_arrays())  # type: ignore[arg-type]  # numpy's stub types **kwds loosely
        atomic_write_bytes(path, buf.getvalue())
        self.path = Path(path)
        return self.path

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path) -> "Rollouts":
        """Load and validate a rollouts file (or ``RUN_DIR/rollouts.npz``).

        :raises RolloutsError: one line (module docstring).
        """
        p = resolve_rollouts_path(path)
        data = _read_npz(p)
        where = str(p)
        missing = [k for k in REQUIRED_ARRAYS + REQUIRED_META if k not in data]
        if missing:
            raise RolloutsError(f"{where}: missing member(s) {', '.join(missing)}; a rollouts file holds "
                                f"{', '.join(REQUIRED_ARRAYS + REQUIRED_META)} (README, 'File formats')")
        kw: dict[str, Any] = {k: _float_array(data, k, 2 if k == "rewards" else 3, where) for k in REQUIRED_ARRAYS}
        for k in REQUIRED_META:
            kw[k] = _meta_str(data, k, where)
        kw["noise"] = _meta_str(data, "noise", where) if "noise" in data else "unknown"
        for k in _FLAGS:
            if k in data:
                kw[k] = data[k]
        extra: dict[str, Any] = {}
        for k in _EXTRA_STR:
            if k in data:
                extra[k] = _meta_str(data, k, where, empty_ok=True)
        for k in _EXTRA_FLOAT:
            if k in data:
                extra[k] = _float_array(data, k, 1, where)
        return cls(**kw, extra=extra, path=p).validate()


def _meta_str(data: dict[str, np.ndarray], key: str, where: str, empty_ok: bool = False) -> str:
    arr = data[key]
    if arr.dtype.kind not in "US" or arr.size != 1:
        raise RolloutsError(f"{where}: '{key}' must be a string, got a {arr.dtype} array of shape {list(arr.shape)}")
    v = arr.reshape(()).item()
    s = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    if not s and not empty_ok:
        raise RolloutsError(f"{where}: '{key}' is empty; record the {key.replace('_', ' ')}")
    return s


def _float_array(data: dict[str, np.ndarray], key: str, ndim: int, where: str) -> np.ndarray:
    arr = data[key]
    if arr.dtype.kind != "f":
        raise RolloutsError(f"{where}: '{key}' must be a float array, got dtype {arr.dtype}; store the numbers as "
                            "float32 or float64")
    if arr.ndim != ndim:
        raise RolloutsError(f"{where}: '{key}' must be {ndim}-D, got shape {list(arr.shape)}")
    return arr


def _read_npz(p: Path) -> dict[str, np.ndarray]:
    """Every member of the archive, read eagerly (a truncated member fails here, not later)."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise RolloutsError(f"{p}: cannot read ({exc.strerror or type(exc).__name__}); check the path and its "
                            "permissions") from None
    if not head.startswith(_ZIP_MAGIC):
        if head.startswith(_NPY_MAGIC):
            kind = "a single .npy array"
        elif not head:
            kind = "an empty file"
        elif _looks_like_text(p):
            kind = "a text file"
        else:
            kind = "not a zip archive"
        raise RolloutsError(f"{p}: {kind}, not an .npz archive; a rollouts file is written by "
                            "reachsafe.rollouts.Rollouts.save or np.savez (README, 'File formats')")
    try:
        with np.load(p, allow_pickle=False) as npz:
            out: dict[str, np.ndarray] = {}
            for k in npz.files:
                try:
                    out[k] = np.asarray(npz[k])
                except ValueError as exc:
                    if "allow_pickle" in str(exc) or "pickled" in str(exc):
                        raise RolloutsError(f"{p}: member '{k}' is a Python object array (pickled), which is never "
                                            "loaded; store numbers and strings only") from None
                    raise
            return out
    except RolloutsError:
        raise
    except Exception as exc:  # zipfile, zlib, format errors: anything the archive reader raises is bad input
        msg = str(exc).splitlines()[0] if str(exc) else ""
        kind = "corrupt or truncated" if isinstance(exc, (zipfile.BadZipFile, EOFError, OSError, ValueError,
                                                          KeyError)) else "unreadable"
        raise RolloutsError(f"{p}: {kind} rollouts file ({type(exc).__name__}: {msg}); re-export the rollouts") \
            from None


def _looks_like_text(p: Path) -> bool:
    """True if the first kilobyte decodes as UTF-8 without control characters other than whitespace."""
    try:
        with open(p, "rb") as fh:
            chunk = fh.read(1024)
    except OSError:
        return False
    try:
        s = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of the chunk is fine, anything else is binary
        if exc.start < len(chunk) - 3:
            return False
        s = chunk[:exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\r\n" for c in s)
