"""User systems: model files loaded by path and models installed as entry points.

A user system is one Python file of the user's own that builds a
:class:`~reachsafe.systems.definition.SystemDefinition` and binds it to the module-level
name ``DEFINITION`` (exactly like ``reachsafe/systems/pendulum.py``).  It is found either

* by path: any system argument that ends in ``.py`` or contains a path separator
  (``reachsafe compute-invariant models/cart.py``, ``get_system("models/cart.py")``), or
* by name, through an installed distribution that declares an entry point in the group
  :data:`ENTRY_POINT_GROUP` (``reachsafe.systems``) whose value is the model module
  (``cart = "mypkg.cart"``) or the definition itself (``"mypkg.cart:DEFINITION"``).

Loading refuses, with one line naming the file (and line) and the offending part, a file
that does not run (syntax error, failing import, any exception), that has no
``DEFINITION``, whose symbols are inconsistent or whose constraint box is missing
(:meth:`SystemDefinition.validate`), whose step is not affine in ``(a, w)`` (the compiler's
exact check), whose dynamics use an operation the rigorous interval arithmetic cannot
bound (:func:`check_certifiable`), or whose dynamics are not finite at some sampled state of
the constraint box (:func:`check_defined_on_box`).

A system loaded by path is registered under its ``DEFINITION.name`` for the rest of the
process, so set files and run directories, which store the name, find it again.  Each
lookup re-reads the file and recompiles it when its bytes changed: an edited model gets a
new fingerprint and every set made for the old one is refused.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from .compiled import CompiledSystem
from .definition import ModelError, SystemDefinition
from .intervals import ELEMENTARY

__all__ = [
    "ENTRY_POINT_GROUP",
    "is_model_path",
    "load_model_file",
    "registered_source",
    "source_of",
    "installed_systems",
    "load_installed",
    "check_certifiable",
    "check_defined_on_box",
]

ENTRY_POINT_GROUP = "reachsafe.systems"
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass
class _Loaded:
    sha256: str
    compiled: CompiledSystem


_BY_PATH: dict[Path, _Loaded] = {}  # resolved model file -> last compiled version
_BY_NAME: dict[str, Path] = {}  # system name -> model file it was last loaded from


def is_model_path(spec: str) -> bool:
    """True if a system argument names a model file rather than a registered system."""
    s = str(spec)
    return s.endswith(".py") or "/" in s or os.sep in s


def registered_source(name: str) -> Path | None:
    """The model file the system ``name`` was loaded from in this process, if any."""
    return _BY_NAME.get(name)


def source_of(system: CompiledSystem) -> Path | None:
    """The model file a compiled system was loaded from (None for built-in and installed systems)."""
    for path, hit in _BY_PATH.items():
        if hit.compiled is system:
            return path
    return None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _user_line(path: Path, exc: BaseException) -> str:
    """``path:LINE`` of the deepest traceback frame inside the model file (``path`` if none)."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{path}:{exc.lineno}"
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            if Path(frame.filename).resolve() == path:
                line = frame.lineno
        except OSError:
            continue
    return f"{path}:{line}" if line else str(path)


def _module_name(digest: str) -> str:
    return f"reachsafe_user_model_{digest[:16]}"


def _execute(path: Path, digest: str) -> SystemDefinition:
    """Run the model file as a fresh module and return its ``DEFINITION``."""
    mod_name = _module_name(digest)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"{path}: cannot be loaded as a Python module; a model file is a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look the module up by name
    sys.path.insert(0, str(path.parent))  # the model may import helper modules beside it
    try:
        spec.loader.exec_module(module)
    except ModelError as exc:  # SystemDefinition.validate() inside the file
        sys.modules.pop(mod_name, None)
        raise ModelError(f"{_user_line(path, exc)}: {_one_line(exc)}") from None
    except SyntaxError as exc:
        sys.modules.pop(mod_name, None)
        raise ModelError(f"{_user_line(path, exc)}: syntax error: {_one_line(exc.msg)}") from None
    except ImportError as exc:
        sys.modules.pop(mod_name, None)
        raise ModelError(f"{_user_line(path, exc)}: import failed: {_one_line(exc)}") from None
    except TypeError as exc:
        sys.modules.pop(mod_name, None)
        msg = _one_line(exc)
        if "constraint_lo" in msg or "constraint_hi" in msg:
            msg = ("no constraint box: SystemDefinition(...) needs constraint_lo and constraint_hi "
                   f"(the safety box X) [{msg}]")
        raise ModelError(f"{_user_line(path, exc)}: {msg}") from None
    except Exception as exc:  # noqa: BLE001 - any failure of user code is bad input, reported in one line
        sys.modules.pop(mod_name, None)
        raise ModelError(f"{_user_line(path, exc)}: {type(exc).__name__}: {_one_line(exc)}") from None
    finally:
        try:
            sys.path.remove(str(path.parent))
        except ValueError:
            pass
    d = getattr(module, "DEFINITION", None)
    if d is None:
        raise ModelError(f"{path}: defines no DEFINITION; a model file must set "
                         "DEFINITION = SystemDefinition(...) (see examples/drifting_cart.py)")
    if not isinstance(d, SystemDefinition):
        raise ModelError(f"{path}: DEFINITION is a {type(d).__name__}, not a reachsafe.systems.SystemDefinition")
    return d


_CERTIFIABLE = (sp.Add, sp.Mul, sp.sin, sp.cos, *ELEMENTARY)


def check_certifiable(compiled: CompiledSystem, where: str) -> None:
    """Refuse dynamics the rigorous interval arithmetic cannot bound.

    The certifier and the interval enclosures evaluate ``c(x)``, ``B(x)``, ``E(x)`` and
    ``dc/dx`` with ``+``, ``*``, integer and rational powers (``sqrt``), ``sin``, ``cos``,
    ``tan``, ``exp``, ``log``, ``tanh``, ``atan``, ``sinh``, ``asinh``, ``cosh``, numbers and
    ``pi`` (outward rounded); any other function (``Abs``, ``sign``, ``Min``, ``atan2``,
    irrational exponents) would fail in the middle of a proof, so it is refused up front,
    naming the term.
    """
    exprs = list(compiled.c_exprs) + list(compiled.B_exprs) + list(compiled.E_exprs)
    state = compiled.definition.state
    exprs += list(sp.Matrix(compiled.c_exprs).jacobian(list(state)))
    for e in exprs:
        for node in sp.preorder_traversal(e):
            if node.is_Symbol or node.is_number:
                continue
            if node.is_Pow and node.args[1].is_Rational:
                continue
            if isinstance(node, _CERTIFIABLE):
                continue
            row = next((i for i, f in enumerate(compiled.f_exprs) if f.has(node)), None)
            at = f"step[{row}]" if row is not None else "the dynamics"
            raise ModelError(
                f"{where}: {at} uses {node} ({type(node).__name__}), which the certifier cannot bound rigorously; "
                "write the dynamics with +, *, rational powers, sin, cos, tan, exp, log, tanh, atan, sinh, asinh "
                "and cosh (reward and observation may use anything)"
            )


def _box_points(lo: np.ndarray, hi: np.ndarray, budget: int = 20000, extra: int = 2000,
                seed: int = 0) -> np.ndarray:
    """Points of the box ``[lo, hi]`` (n-D): a grid with an odd number k of points per axis (its
    centre, its corners and the midpoints of its faces among them; ``k^n <= budget``, at least 2 when
    ``2^n <= budget``) and ``extra`` uniform random points (seeded); ``[N, n]``."""
    n = len(lo)
    k = 1
    while (k + 2) ** n <= budget:
        k += 2
    if k == 1 and 2 ** n <= budget:
        k = 2
    axes = [np.linspace(a, b, k) if k > 1 else np.array([0.5 * (a + b)]) for a, b in zip(lo, hi)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, n)
    rng = np.random.default_rng(seed)
    return np.vstack([grid, 0.5 * (lo + hi)[None], rng.uniform(lo, hi, size=(extra, n))])


def check_defined_on_box(compiled: CompiledSystem, where: str) -> None:
    """Refuse dynamics that are not finite somewhere in the constraint box X.

    ``c(x)``, ``B(x)``, ``E(x)`` (``f(x, a, w) = c + B a + E w``) are evaluated in float64 at the
    points of :func:`_box_points` (a grid with the centre, corners and face midpoints of X, and
    random points); a non-finite value there (``1/x`` with ``x = 0`` in X, ``log`` or ``sqrt`` of a
    negative number) is refused with one line naming the step expression and the state.  A
    singularity between the points is not caught here; there the certifier's interval
    enclosures are unbounded and no set that contains it can be proven.
    """
    lo, hi = compiled.constraint_box_inner()
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return  # validate() refuses such boxes; nothing to sample
    X = _box_points(lo, hi)
    with np.errstate(all="ignore"):
        cBE = np.asarray(compiled.affine_flat(X), dtype=np.float64)
    bad = ~np.isfinite(cBE)
    if not bad.any():
        return
    r, col = (int(v[0]) for v in np.nonzero(bad))
    n, m = compiled.n, compiled.m
    row = col if col < n else (col - n) // m if col < n + n * m else (col - n - n * m) // max(compiled.p, 1)
    part = "its value" if col < n else "its action coefficient" if col < n + n * m else "its noise coefficient"
    state = ", ".join(f"{name} = {v:.6g}" for name, v in zip(compiled.state_names, X[r]))
    raise ModelError(
        f"{where}: step[{row}] is not finite at the state {state} inside X ({part} is {cBE[r, col]}: a division by "
        "zero, or log or sqrt of a negative number); move the constraint box away from it or rewrite the model"
    )


def _check_user_name(d: SystemDefinition, where: str, builtin: set[str], taken: set[str]) -> None:
    if not _NAME_RE.match(d.name):
        raise ModelError(f"{where}: system name {d.name!r} must start with a letter and use only letters, "
                         "digits, '_' and '-' (it names files such as data/NAME.json)")
    if d.name in builtin or d.name in taken:
        raise ModelError(f"{where}: system name {d.name!r} is already taken by a "
                         f"{'built-in' if d.name in builtin else 'installed'} system; choose another name")


def load_model_file(path: str | os.PathLike, builtin: set[str]) -> CompiledSystem:
    """Compile the model file ``path`` (cached while its bytes are unchanged) and register its name.

    :param path: the user's ``.py`` file defining ``DEFINITION``.
    :param builtin: names reserved by the built-in systems.
    :raises ModelError: one line naming the file and what is wrong with it.
    """
    p = Path(path)
    try:
        resolved = p.resolve(strict=True)
        data = resolved.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model file {p} not found; give the path of a .py file that defines DEFINITION") from None
    except (IsADirectoryError, PermissionError, OSError) as exc:
        raise ModelError(f"model file {p} cannot be read ({type(exc).__name__}); give the path of a .py file") from None
    if resolved.suffix != ".py":
        raise ModelError(f"model file {p} must be a Python file ending in .py")
    digest = hashlib.sha256(data).hexdigest()
    hit = _BY_PATH.get(resolved)
    if hit is not None and hit.sha256 == digest:
        _BY_NAME[hit.compiled.name] = resolved
        return hit.compiled
    try:
        d = _execute(resolved, digest)
        _check_user_name(d, str(p), builtin, set(installed_systems()))
        try:
            compiled = CompiledSystem(d)
        except ModelError as exc:
            raise ModelError(f"{p}: {_one_line(exc)}") from None
        check_certifiable(compiled, str(p))
        check_defined_on_box(compiled, str(p))
    except ModelError:
        sys.modules.pop(_module_name(digest), None)  # a refused model leaves nothing behind
        raise
    _BY_PATH[resolved] = _Loaded(digest, compiled)
    _BY_NAME[d.name] = resolved
    return compiled


# ----------------------------------------------------------------------------- entry points
def _entry_points() -> dict[str, object]:
    from importlib.metadata import entry_points  # lazy: slow to import, needed only to list plug-ins

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def installed_systems() -> list[str]:
    """Names of the systems installed through the ``reachsafe.systems`` entry-point group."""
    return sorted(_entry_points())


def load_installed(name: str, builtin: set[str]) -> CompiledSystem | None:
    """Compile the installed system ``name`` (None if no entry point has that name)."""
    ep = _entry_points().get(name)
    if ep is None:
        return None
    where = f"entry point {name!r} ({ep.value})"  # type: ignore[attr-defined]
    try:
        obj = ep.load()  # type: ignore[attr-defined]
    except ModelError as exc:
        raise ModelError(f"{where}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - a broken installed model is bad input
        raise ModelError(f"{where}: {type(exc).__name__}: {_one_line(exc)}") from None
    d = getattr(obj, "DEFINITION", obj)
    if not isinstance(d, SystemDefinition):
        raise ModelError(f"{where}: must point to a module with DEFINITION or to a SystemDefinition")
    if d.name != name:
        raise ModelError(f"{where}: defines system {d.name!r}; the entry point must be named after it")
    if name in builtin:
        raise ModelError(f"{where}: system name {name!r} is already taken by a built-in system")
    try:
        compiled = CompiledSystem(d)
    except ModelError as exc:
        raise ModelError(f"{where}: {_one_line(exc)}") from None
    check_certifiable(compiled, where)
    check_defined_on_box(compiled, where)
    return compiled
