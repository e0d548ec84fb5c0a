r"""Post-hoc safety audit of recorded rollouts against a certified invariant set.

Given a rollouts file (the contract :mod:`reachsafe.rollouts`: states ``x[e, t]`` ``[E, T+1, n]``,
executed actions ``a[e, t]`` ``[E, T, m]``, policy actions, rewards, fingerprints) and the set file
``P = {x : A x <= b}`` the run was guarded with, the audit decides, for every episode and step
at once (numpy, no Python loop over steps):

1. **Certificate** (:func:`recheck_certificate`, :func:`_certificate_items`).  The set file
   carries a certificate whose proof artifact ``<stem>.proof.json`` re-checks, and the model and
   set fingerprints of set file, current model and rollouts agree.
2. **States** (:func:`check_states`): every ``x[e, t]``, ``t = 0..T``, lies in ``X`` and in ``P``.
3. **Actions** (:func:`check_actions`): every executed ``a = a[e, t]`` lies in ``U = [-1, 1]^m``
   and in the robust one-step safe set at ``x = x[e, t]``::

       S(x) = {a in U : A (c(x) + B(x) a) + h_W(x) <= b},
       h_W(x)_i = max_{w in W} A_i E(x) w = |A_i E(x)| w_r + A_i E(x) w_c,

   i.e. the successor ``f(x, a, w) = c(x) + B(x) a + E(x) w`` is in ``P`` for *every* noise
   ``w`` in ``W`` (``w_c``, ``w_r``: centre and radius of the box ``W``).
4. **Transitions** (:func:`check_transitions`): every recorded successor is explained by the
   model and the noise bound: with ``r = x[e, t+1] - c(x) - B(x) a`` (wrapped coordinates taken
   modulo their period), some ``w`` in ``W`` has ``|r - E(x) w| <= delta`` elementwise.

Checks 2 and 3 are exact (tolerance 0 by default): an item passes only if its inequality is
*proven* for the exact real numbers the stored doubles denote.  Check 4 needs a tolerance
``delta`` for the simulator's floating-point rounding, and a pass there is never wrong either.
The argument for each lives beside the code it justifies: the rounding bound of the facet
products in :func:`facet_bound`, the enclosures of ``c, B, E`` and of ``b - h_W`` in
:func:`_successor_interval` and :func:`_noise_rhs`, the boxes in :func:`_geometry`, and the
decision rules in :func:`check_states`, :func:`check_actions` and :func:`check_transitions`.

Each failing item carries a reason (:class:`StateReason`, :class:`ActionReason`,
:class:`TransitionReason`: integer enums, so the per-item ``code`` arrays stay integer arrays),
which also words the failure for the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from reachsafe import __version__
from reachsafe.errors import UserError
from reachsafe.intervention import intervened
from reachsafe.rollouts import Rollouts
from reachsafe.setfile import SetFile, load_set, set_fingerprint
from reachsafe.systems import get_definition, get_system

from ..certification import intervals as ia
from ..certification.certifier import artifact_path_for
from ..certification.intervals import CertModel
from ..certification.recheck import file_sha256, recheck_artifact

__all__ = ["CheckResult", "CertificateItem", "AuditResult", "audit", "recheck_certificate", "Reason", "StateReason",
           "ActionReason", "TransitionReason"]

U64 = 2.0**-53
TINY = 1e-300  # absorbs underflow in the rounding bounds



# =================================================================== reason codes
@dataclass(frozen=True)
class Wording:
    """What the reasons need to word a failure: state names and the boxes ``X`` and ``W`` of the set file."""

    state_names: list[str]
    x_lo: list[float]
    x_hi: list[float]
    w_lo: list[float]
    w_hi: list[float]

    @classmethod
    def of(cls, setfile: Any, n: int) -> "Wording":
        """The wording context of a set file for ``n`` state coordinates (names ``x0, x1, ...`` if it has none)."""
        return cls(list(setfile.state_names or [f"x{k}" for k in range(n)]), list(setfile.constraints["lo"]),
                   list(setfile.constraints["hi"]), list(setfile.noise["lo"]), list(setfile.noise["hi"]))


class Reason(IntEnum):
    """Reason codes of one check; ``0`` (``PASS``) means passed.

    Integer-valued, so the per-item ``code`` arrays of :class:`CheckResult` stay ``int8`` arrays
    that compare with the members directly (``code == StateReason.OUTSIDE_P``).  Each member
    carries its ``label`` (the name in the JSON report) and the ``wording`` of a failure, a
    format string over ``index`` (the facet or coordinate), ``value`` (the offending number),
    ``name`` (the state coordinate's name) and the box ends ``x_lo``, ``x_hi``, ``w_lo``, ``w_hi``
    at ``index`` (:meth:`explain`).
    """

    label: str
    wording: str

    def __new__(cls, value: int, label: str, wording: str) -> "Reason":
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.label = label
        obj.wording = wording
        return obj

    def explain(self, index: int, value: float, words: Wording) -> str:
        """One line for a failing item: ``index`` is the facet or coordinate, ``value`` the offending number."""

        def at(seq: list) -> Any:  # a facet index may exceed the coordinates: only coordinate reasons use these
            return seq[index] if 0 <= index < len(seq) else float("nan")

        return self.wording.format(index=index, value=value, name=at(words.state_names), x_lo=at(words.x_lo),
                                   x_hi=at(words.x_hi), w_lo=at(words.w_lo), w_hi=at(words.w_hi))


class StateReason(Reason):
    """Why a state fails check 2; :func:`check_states` reports the first that applies, in this order."""

    PASS = 0, "pass", "passed"
    NON_FINITE = 4, "non_finite", "state is not finite"
    OUTSIDE_X = 1, "outside_X", "state outside X: {name} = {value:.17g} not in [{x_lo:g}, {x_hi:g}]"
    OUTSIDE_P = 2, "outside_P", "state outside P: facet {index} violated by {value:.3g} (normalised)"
    NOT_PROVABLE = 3, "not_provable", ("state in P not provable within rounding: facet {index} within the error "
                                       "bound {value:.3g}")


class ActionReason(Reason):
    """Why an action fails check 3; :func:`check_actions` reports the first that applies, in this order."""

    PASS = 0, "pass", "passed"
    NON_FINITE = 4, "non_finite", "state or action is not finite"
    OUTSIDE_U = 1, "outside_U", "executed action outside U: a[{index}] = {value:.17g} not in [-1, 1]"
    UNSAFE = 2, "unsafe", ("unsafe action: a successor can leave P for some noise in W (facet {index}, by "
                           "{value:.3g} normalised)")
    NOT_PROVABLE = 3, "not_provable", ("safety of the action not provable within rounding: facet {index} within "
                                       "the error bound {value:.3g}")


class TransitionReason(Reason):
    """Why a transition fails check 4; :func:`check_transitions` reports the first that applies, in this order."""

    PASS = 0, "pass", "passed"
    NON_FINITE = 4, "non_finite", "transition involves non-finite values"
    NOISE_OUTSIDE_W = 1, "noise_outside_W", ("transition not explained: estimated noise w[{index}] = {value:.6g} "
                                             "outside W = [{w_lo:g}, {w_hi:g}] (not from this model and noise bound)")
    NOT_MODEL_SUCCESSOR = 2, "not_model_successor", (
        "transition not explained by the model: x+ - c(x) - B(x) a - E w has {name} residual {value:.3g} beyond "
        "the tolerance for every w in W (another model or simulator?)")


def first_reason(rules: list[tuple[np.ndarray, Reason]], otherwise: Reason) -> np.ndarray:
    """Per item the reason of the first rule whose condition holds (``rules`` in priority order), else ``otherwise``.

    ``rules`` are ``(condition [N] bool, reason)``; returns the ``int8`` code array [N].
    """
    conds = [np.asarray(c, bool) for c, _ in rules]
    return np.select(conds, [int(r) for _, r in rules], default=int(otherwise)).astype(np.int8)


# =================================================================== rollouts file
def _check_shapes(ro: Rollouts, system) -> None:
    where = str(ro.path) if ro.path else "rollouts"
    if ro.states.shape[2] != system.n:
        raise UserError(f"{where}: states have {ro.states.shape[2]} coordinates but {system.name} has {system.n}")
    if ro.actions.shape[2] != system.m:
        raise UserError(f"{where}: actions have {ro.actions.shape[2]} components but {system.name} has {system.m}")


# =================================================================== check 1
@dataclass
class CertificateItem:
    """One item of check 1: ``name``, pass/fail and a one-line message."""

    name: str
    ok: bool
    message: str


def recheck_certificate(setfile, recheck: bool = True) -> tuple[bool, str]:
    """Check 1, certificate item: an adapter around the certifier's re-check
    (:func:`verification.certification.recheck.recheck_artifact`).

    Valid iff the set file records a certificate, its artifact exists beside the set file,
    matches the recorded sha256 and the current model fingerprint, and (``recheck``) the
    search-free checker accepts it.  Mirrors ``reachsafe certify --recheck``.

    Why it is sound: checks 2-4 only show that the recorded steps stayed in ``P``; that ``P``
    is robust control-invariant (so the safeguard could always keep them there) rests on the
    proof artifact, which the checker re-verifies for this ``A``, ``b`` and model without trusting
    the search that produced it.  With ``recheck=False`` the artifact is trusted by its sha256
    only, and the message says so.
    """

    cert = setfile.certificate or {}
    if getattr(setfile, "certificate_problem", None):
        return False, f"certificate does not match: {setfile.certificate_problem}; run 'reachsafe certify SETFILE'"
    if not setfile.certified:
        return False, "set file has no certificate; run 'reachsafe certify SETFILE' first"
    if setfile.path is None:
        return False, "set file has no path, so its proof artifact cannot be found"
    art = Path(setfile.path).with_name(cert["artifact"]) if cert.get("artifact") else artifact_path_for(setfile.path)
    if not art.exists():
        return False, f"proof artifact {art.name} missing beside the set file; run 'reachsafe certify SETFILE'"
    if cert.get("artifact_sha256") and cert["artifact_sha256"] != file_sha256(art):
        return False, f"proof artifact {art.name} differs from the one recorded in the set file (sha256)"
    current = get_system(setfile.system).fingerprint
    if cert.get("model_fingerprint") not in (None, current):
        return False, "certificate was made for another model fingerprint"
    if not recheck:
        return True, f"certificate recorded, artifact {art.name} sha256 matches (not re-checked: --no-recheck)"
    res = recheck_artifact(setfile, art)
    return bool(res.valid), f"proof artifact {art.name}: {res.message}" + (f" ({res.cells} cells)" if res.valid else "")


def _certificate_items(ro: Rollouts, sf, system, recheck: bool) -> list[CertificateItem]:
    """Check 1: the certificate (:func:`recheck_certificate`) and three fingerprint items.

    The fingerprints bind the three inputs together: a certificate holds only for the model it
    was made for (the set's ``model_fingerprint`` must be the current model's), the rollouts must
    come from that model, and they must have been guarded with this very set
    (:func:`reachsafe.setfile.set_fingerprint`, a hash of ``A``, ``b`` and the model fingerprint).
    """
    ok, msg = recheck_certificate(sf, recheck)
    items = [CertificateItem("certificate", ok, msg)]
    fp = system.fingerprint
    items.append(
        CertificateItem(
            "set_model_fingerprint",
            sf.model_fingerprint == fp,
            "set file made for the current model"
            if sf.model_fingerprint == fp
            else f"set file's model fingerprint {sf.model_fingerprint[:19]}... differs from the current "
            f"{system.name} model {fp[:19]}...",
        )
    )
    items.append(
        CertificateItem(
            "rollouts_model_fingerprint",
            ro.model_fingerprint == fp,
            "rollouts recorded with the current model"
            if ro.model_fingerprint == fp
            else f"rollouts' model_fingerprint {ro.model_fingerprint[:19]}... differs from the current "
            f"{system.name} model {fp[:19]}...",
        )
    )
    sfp = set_fingerprint(sf)
    items.append(CertificateItem(
        "rollouts_set_fingerprint", ro.set_fingerprint == sfp,
        "rollouts guarded with this set file" if ro.set_fingerprint == sfp else
        f"rollouts' set_fingerprint {ro.set_fingerprint[:19]}... differs from this set file's {sfp[:19]}... "
        "(guarded with another set)"))
    return items


# =================================================================== geometry
@dataclass
class _Geometry:
    """Normalised facets, rigorous noise terms and boxes, computed once per audit (:func:`_geometry`)."""

    nu: np.ndarray  # [k]      fl(||A_i||_2) (any positive scale would do)
    An: np.ndarray  # [k, n]   fl(A_i / nu_i)
    bn: np.ndarray  # [k]      fl(b_i / nu_i)
    L1: float  # >= max_i ||A_i / nu_i||_1
    k_err: float  # k_n u
    dn: np.ndarray | None  # [k] fl(d_i / nu_i), d_i <= b_i - h_W,i (state-independent E), else None
    x_lo: np.ndarray  # inward-rounded X
    x_hi: np.ndarray
    u_lo: np.ndarray  # U (exact doubles)
    u_hi: np.ndarray
    w_lo: np.ndarray  # outward-rounded W
    w_hi: np.ndarray
    w_c: np.ndarray
    w_r: np.ndarray
    E: np.ndarray | None  # [n, p] constant noise input (midpoint of its tight enclosure), or None
    E_pinv: np.ndarray | None  # [p, n]
    wrap: dict[int, tuple[float, float]]


def _noise_rhs(model, A: np.ndarray, b: np.ndarray, E_iv) -> np.ndarray:
    """Rigorous lower bound ``d_i <= b_i - h_W,i`` of the noise-tightened right-hand side of check 3.

    ``h_W,i = max_{w in W} A_i E w`` over every ``E`` in the enclosure ``E_iv`` ([..., n, p]).
    Why it is sound: ``A_i E`` is enclosed by outward-rounded dot products of the exact doubles
    ``A_i`` with the interval ``E`` (:func:`verification.certification.intervals.fdot`), its
    maximum over the box ``W`` (the certifier's outward-rounded ``W``) by the upper end of the
    outward-rounded interval product with ``W``, and ``b_i - h`` is rounded downward (lower end of
    the interval difference).  So ``d_i`` is at most the exact ``b_i - h_W,i``, and an action
    proven against ``d`` is safe for every ``w`` in ``W``.
    """

    lead = E_iv.lo.shape[:-2]
    Elo = E_iv.lo.reshape(lead + (1,) + E_iv.lo.shape[-2:])
    Ehi = E_iv.hi.reshape(lead + (1,) + E_iv.hi.shape[-2:])
    AE = ia.fdot(A[..., :, :, None], ia.Iv(Elo, Ehi), axis=-2)  # [..., k, p]
    h = ia.ivdot(AE, ia.Iv(model.W.lo, model.W.hi), axis=-1).hi  # [..., k]
    return ia.sub(ia.point(b), ia.Iv(h, h)).lo


def _geometry(sf, system, model) -> _Geometry:
    """Normalised facets and the boxes of the checks, each rounded in the direction that keeps a pass sound.

    * ``X`` rounded inward (``X_inner_lo``, ``X_inner_hi`` of the certifier's
      :class:`~verification.certification.intervals.CertModel`): no double lies between it and
      the exact bound, so comparing a stored double with it decides membership in the exact ``X``.
    * ``U = [-1, 1]^m`` has double bounds: compared exactly.
    * ``W`` rounded outward (the certifier's ``CertModel.W``): the box the witnesses of check 4
      may use; it contains the exact ``W``.  Every exact constant of the audit (``X``, ``W`` and the
      model's enclosures) is thus rounded by one function, the certifier's
      :func:`~verification.certification.intervals.number_interval`.
    * Facets normalised, ``A~_i = fl(A_i / nu_i)``, ``b~_i = fl(b_i / nu_i)`` with ``nu_i > 0``, so the
      sign of a facet residual is unchanged and its value is a distance in state space; the
      rounding of this normalisation is part of the error bound of :func:`facet_bound`
      (``k_err``, ``L1``).
    * With a constant noise input ``E`` (no state in ``E(x)``), ``d~ = fl(d / nu)`` of
      :func:`_noise_rhs` and ``pinv(E)`` are computed once here.
    """

    A = np.ascontiguousarray(sf.A, dtype=np.float64)
    b = np.ascontiguousarray(sf.b, dtype=np.float64)
    n = A.shape[1]
    nu = np.linalg.norm(A, axis=1)
    nu = np.where(nu > 0, nu, 1.0)
    An, bn = A / nu[:, None], b / nu
    L1 = float(np.abs(An).sum(axis=1).max()) * (1.0 + 1e-12)
    const_E = all(sp.sympify(e).is_number for e in model.E_exprs)
    dn, E, E_pinv = None, None, None
    if const_E:
        E_iv = model.at_points(np.zeros((1, n)))["E"][0]
        dn = _noise_rhs(model, A, b, E_iv) / nu
        E = E_iv.mid
        E_pinv = np.linalg.pinv(E) if E.size else np.zeros((0, n))
    x_lo, x_hi = model.X_inner_lo.copy(), model.X_inner_hi.copy()
    w_lo, w_hi = model.W.lo.copy(), model.W.hi.copy()
    return _Geometry(nu=nu, An=An, bn=bn, L1=L1, k_err=(4.0 * (n + 3) + 8.0) * U64, dn=dn, x_lo=x_lo, x_hi=x_hi,
                     u_lo=np.asarray(system.action_lo, float), u_hi=np.asarray(system.action_hi, float),
                     w_lo=w_lo, w_hi=w_hi, w_c=0.5 * (system.noise_lo + system.noise_hi),
                     w_r=0.5 * (system.noise_hi - system.noise_lo), E=E, E_pinv=E_pinv, wrap=dict(system.wrap))


# =================================================================== rigorous facet test
def facet_bound(
    Y: np.ndarray, Yr: np.ndarray | None, rhs: np.ndarray, g: _Geometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worst normalised facet residual of ``A y <= d`` for ``y in Y +- Yr`` ([N, n]), with a rigorous error bound.

    ``rhs`` is ``d~`` ([k] or [N, k]).  Returns ``(r, i, err)``: ``r = max_i fl(A~_i Y - d~_i)``
    (the negative normalised slack), the maximising facet ``i`` and the rounding bound ``err``:
    the exact inequality holds for every facet if ``r + err <= 0``.

    Why it is sound: the facet products are evaluated in floating point and bounded a priori::

        nu_i = fl(||A_i||_2),  A~_i = fl(A_i / nu_i),  d~_i = fl(d_i / nu_i),
        (A_i y - d_i) / nu_i  <=  fl(A~_i y_m - d~_i) + err,
        err = k_n u (L ||y_m||_inf + max_i |d~_i|) + L ||y_r||_inf,

    for every ``y`` in the interval ``y_m +- y_r`` (``Y +- Yr``), where ``L >= max_i ||A~_i||_1``,
    ``u = 2^-53`` and ``k_n = 4 (n + 3) + 8`` covers the ``gamma_{n+1}`` bound of any summation
    order, FMA or not, the rounding of the normalisation and of the bound itself (``g.k_err``;
    ``TINY`` absorbs underflow).  Since ``nu_i > 0`` the sign is that of ``A_i y - d_i``, and
    ``fl(A~_i y_m - d~_i)`` is the normalised slack (a distance in state space) up to rounding.
    """
    R = Y @ g.An.T
    R -= rhs
    i = np.argmax(R, axis=1)
    r = R[np.arange(len(R)), i]
    rhs_mag = np.abs(rhs).max(axis=-1)
    err = g.k_err * (g.L1 * np.abs(Y).max(axis=1) + rhs_mag) + TINY
    if Yr is not None:
        err = err + g.L1 * (1.0 + 1e-12) * Yr.max(axis=1)
    return r, i, err


# =================================================================== checks 2-4
@dataclass
class CheckResult:
    """Per-item outcome of one check (items: states [E, T+1] or steps [E, T]).

    ``ok``: passed (proven); ``slack``: normalised distance to failing (> 0 safe; for
    transitions: ``1 - max_j |w*_j - w_c| / w_r``, the unused fraction of the noise box);
    ``code``: ``int8`` codes of ``reasons`` (0: passed); ``index``: facet / coordinate of the
    reason; ``value``: the offending number (a coordinate, an excess, an estimate) for the
    reason text; ``reasons``: the check's :class:`Reason` enum, which labels and words the codes.
    """

    name: str
    ok: np.ndarray
    slack: np.ndarray
    code: np.ndarray
    index: np.ndarray
    value: np.ndarray
    reasons: type[Reason]
    tolerance: str

    @classmethod
    def from_flat(cls, name: str, flat: dict[str, np.ndarray], shape: tuple[int, int], reasons: type[Reason],
                  tolerance: str) -> "CheckResult":
        """The result of a check function's flat arrays (:func:`_empty`), reshaped to ``shape``."""
        return cls(name, flat["ok"].reshape(shape), flat["slack"].reshape(shape), flat["code"].reshape(shape),
                   flat["index"].reshape(shape), flat["value"].reshape(shape), reasons, tolerance)

    @property
    def codes(self) -> dict[int, str]:
        """Code -> label of every reason of this check."""
        return {int(r): r.label for r in self.reasons}

    def reason(self, j: int) -> Reason:
        """The reason of the flat item ``j``."""
        return self.reasons(int(self.code.flat[j]))

    def explain(self, j: int, words: Wording) -> str:
        """One line for the failing flat item ``j`` (its reason's wording)."""
        return self.reason(j).explain(int(self.index.flat[j]), float(self.value.flat[j]), words)

    @property
    def total(self) -> int:
        return int(self.ok.size)

    @property
    def failed(self) -> int:
        return int(self.ok.size - np.count_nonzero(self.ok))

    def worst(self) -> tuple[float, tuple[int, int]]:
        """Smallest slack (non-finite counts as -inf) and its (episode, step)."""
        s = np.where(np.isnan(self.slack), -np.inf, self.slack)
        j = int(np.argmin(s))
        e, t = np.unravel_index(j, s.shape)
        return float(s.flat[j]), (int(e), int(t))

    def by_reason(self) -> dict[str, int]:
        vals, counts = np.unique(self.code[~self.ok], return_counts=True)
        return {self.reasons(int(v)).label: int(c) for v, c in zip(vals, counts)}


def _empty(N: int) -> dict[str, np.ndarray]:
    """Flat per-item arrays of one check (the fields of :class:`CheckResult`), all items failing."""
    return {"ok": np.zeros(N, bool), "slack": np.full(N, np.nan), "code": np.zeros(N, np.int8),
            "index": np.zeros(N, np.int32), "value": np.full(N, np.nan)}


def check_states(S: np.ndarray, g: _Geometry, tol: float, chunk: int) -> dict[str, np.ndarray]:
    """Check 2 on flat states ``S`` [N, n]: in ``X`` (exact) and in ``P`` (rigorous, tolerance ``tol``).

    Why a pass is sound: the stored double ``x`` is the datum.  ``X`` is compared with its
    inward-rounded box (:func:`_geometry`), which decides membership in the exact ``X``.  For
    ``P``, :func:`facet_bound` with ``y = x`` (no radius) and ``d = b`` gives
    ``(A_i x - b_i) / nu_i <= r + err`` for every facet, so ``r + err <= tol`` proves ``x in P``
    (``tol = 0`` unless ``--tol``; a positive ``tol`` accepts violations of at most ``tol`` in
    normalised units and the report states it).

    Reasons (:class:`StateReason`), the first that applies: not finite; outside ``X``; outside
    ``P`` (``r > tol + err``: the violation exceeds ``tol`` whatever the rounding); not provable
    (within ``err`` of the boundary: neither proven nor refuted).
    """
    N = len(S)
    out = _empty(N)
    for s in range(0, N, chunk):
        X = S[s:s + chunk]
        sl = slice(s, s + len(X))
        finite = np.isfinite(X).all(axis=1)
        Xf = np.where(finite[:, None], X, 0.0)
        r, i, err = facet_bound(Xf, None, g.bn, g)
        dx = np.minimum(X - g.x_lo, g.x_hi - X)  # exact sign; > = 0 inside X
        jx = np.argmin(np.where(np.isnan(dx), -np.inf, dx), axis=1)
        mx = dx[np.arange(len(X)), jx]
        in_x = (X >= g.x_lo).all(axis=1) & (X <= g.x_hi).all(axis=1)
        in_p = r + err <= tol
        code = first_reason([(~finite, StateReason.NON_FINITE), (~in_x, StateReason.OUTSIDE_X),
                             (r > tol + err, StateReason.OUTSIDE_P), (~in_p, StateReason.NOT_PROVABLE)],
                            StateReason.PASS)
        out["ok"][sl] = finite & in_x & in_p
        out["slack"][sl] = np.where(finite, np.minimum(-r, mx), np.nan)
        out["code"][sl] = code
        out["index"][sl] = np.where(code == StateReason.OUTSIDE_X, jx, i)
        out["value"][sl] = np.select([code == StateReason.OUTSIDE_X, code == StateReason.NOT_PROVABLE],
                                     [X[np.arange(len(X)), jx], err], default=r)
    return out


def _successor_interval(enc: dict, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint/radius of the rigorous enclosure of ``y = c(x) + B(x) a`` ([N, n] each).

    Why it is sound: ``enc`` holds the certifier's outward-rounded enclosures of the exact real
    ``c(x)`` and ``B(x)`` at the stored doubles ``x``
    (:meth:`verification.certification.intervals.CertModel.at_points`); ``B a`` is formed with
    outward-rounded products and sums of the exact doubles ``a``, then added to ``c`` (outward).
    The radius is rounded up (``nextafter``), so ``ym +- yr`` still contains that interval.
    """

    c, B = enc["c"], enc["B"]
    Ba = (
        ia.sum_iv(ia.fmul(a[:, None, :], B), axis=-1) if a.shape[1] else ia.Iv(np.zeros_like(c.lo), np.zeros_like(c.hi))
    )
    y = ia.add(c, Ba)
    ym = y.mid
    yr = np.nextafter(np.maximum(y.hi - ym, ym - y.lo), np.inf)
    return ym, yr


def check_actions(X: np.ndarray, a: np.ndarray, ym: np.ndarray, yr: np.ndarray, rhs: np.ndarray,
                  g: _Geometry, tol: float) -> dict[str, np.ndarray]:
    """Check 3 on one chunk: ``a in U`` (exact) and ``a in S(x)`` (rigorous, tolerance ``tol``).

    Why a pass is sound: ``U = [-1, 1]^m`` has double bounds, so ``a in U`` is an exact
    comparison.  For ``S(x)``, ``ym +- yr`` encloses ``y = c(x) + B(x) a`` of the exact model at
    the stored ``x`` and ``a`` (:func:`_successor_interval`) and ``rhs = d~`` has
    ``d_i <= b_i - h_W,i(x)`` (:func:`_noise_rhs`); :func:`facet_bound` bounds
    ``(A_i y - d_i) / nu_i <= r + err`` over the whole enclosure.  So ``r + err <= 0`` gives
    ``A_i (c(x) + B(x) a) + h_W,i(x) <= b_i`` for every facet: the successor
    ``c + B a + E w`` lies in ``P`` for every ``w`` in ``W``.

    Reasons (:class:`ActionReason`), the first that applies: not finite; outside ``U``; unsafe
    (``r > tol + err``: the worst-case successor's bound fails by more than its rounding error);
    not provable (within ``err`` of the boundary).
    """
    N = len(X)
    out = _empty(N)
    finite = np.isfinite(X).all(axis=1) & np.isfinite(a).all(axis=1) & np.isfinite(ym).all(axis=1)
    Yf = np.where(finite[:, None], ym, 0.0)
    Yr = np.where(finite[:, None], yr, 0.0)
    rhs_f = rhs if rhs.ndim == 1 else np.where(finite[:, None], rhs, 0.0)
    r, i, err = facet_bound(Yf, Yr, rhs_f, g)
    du = np.minimum(a - g.u_lo, g.u_hi - a) if a.shape[1] else np.zeros((N, 1))
    ju = np.argmin(np.where(np.isnan(du), -np.inf, du), axis=1)
    in_u = (a >= g.u_lo).all(axis=1) & (a <= g.u_hi).all(axis=1)
    safe = r + err <= tol
    code = first_reason([(~finite, ActionReason.NON_FINITE), (~in_u, ActionReason.OUTSIDE_U),
                         (r > tol + err, ActionReason.UNSAFE), (~safe, ActionReason.NOT_PROVABLE)],
                        ActionReason.PASS)
    out["ok"][:] = finite & in_u & safe
    out["slack"][:] = np.where(finite, -r, np.nan)
    out["code"][:] = code
    out["index"][:] = np.where(code == ActionReason.OUTSIDE_U, ju, i)
    av = a[np.arange(N), ju] if a.shape[1] else np.zeros(N)
    out["value"][:] = np.select([code == ActionReason.OUTSIDE_U, code == ActionReason.NOT_PROVABLE], [av, err],
                                default=r)
    return out


def tolerance_witness(r: np.ndarray, delta: np.ndarray, E: np.ndarray, w_lo: np.ndarray,
                      w_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noise witnesses for ``|r - E w| <= delta`` (elementwise), per row of a batch.

    ``r``, ``delta``: [K, n]; ``E``: [K, n, p]; ``w_lo``, ``w_hi``: [p].  Returns
    ``(w_in, w_free)`` [K, p]: a candidate in ``[w_lo, w_hi]`` and one without that bound.
    Where every row ``i`` of ``E`` has at most one non-zero ``E_ij``, the constraints separate:
    ``w_j`` must lie in ``[(r_i - delta_i) / E_ij, (r_i + delta_i) / E_ij]`` (ordered) for every
    ``i`` with ``E_ij != 0``; the candidate is the midpoint of the intersection of these
    intervals (and of ``[w_lo_j, w_hi_j]`` for ``w_in``), so a feasible ``w`` is found whenever
    one exists (up to the rounding of the midpoint).  Otherwise the delta-weighted least-squares
    estimate ``pinv(E / delta) (r / delta)``, clipped for ``w_in``.  The caller checks the
    candidates; they are not proofs by themselves.
    """
    nz = E != 0
    sep = (nz.sum(axis=2) <= 1).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        q1 = (r - delta)[:, :, None] / E
        q2 = (r + delta)[:, :, None] / E
    lo = np.where(nz, np.minimum(q1, q2), -np.inf).max(axis=1)  # [K, p]
    hi = np.where(nz, np.maximum(q1, q2), np.inf).min(axis=1)
    unconstrained = ~nz.any(axis=1)  # noise coordinates that move nothing: any value, take 0 / W's centre
    centre = 0.5 * (w_lo + w_hi)
    w_free = np.where(unconstrained, 0.0, 0.5 * (lo + hi))
    lo_in, hi_in = np.maximum(lo, w_lo), np.minimum(hi, w_hi)
    w_in = np.where(unconstrained, centre, np.where(lo_in <= hi_in, 0.5 * (lo_in + hi_in), np.clip(w_free, w_lo, w_hi)))
    if not sep.all():
        j = np.flatnonzero(~sep)
        Ew = E[j] / delta[j][:, :, None]
        wls = np.einsum("Kpn,Kn->Kp", np.linalg.pinv(Ew), r[j] / delta[j])
        w_free[j], w_in[j] = wls, np.clip(wls, w_lo, w_hi)
    return np.clip(w_in, w_lo, w_hi), w_free


def check_transitions(X: np.ndarray, Xn: np.ndarray, a: np.ndarray, ym: np.ndarray, yr: np.ndarray,
                      Bm: np.ndarray, E: np.ndarray, E_pinv: np.ndarray, g: _Geometry,
                      rtol: float) -> dict[str, np.ndarray]:
    """Check 4 on one chunk: ``r = x+ - c - B a`` in ``E W`` up to ``delta``.

    ``E`` is [n, p] (constant) or [N, n, p]; ``E_pinv`` likewise [p, n] or [N, p, n].

    The tolerance: a rollout is produced by a floating-point simulator, so the check allows
    ``delta = rtol * s + y_r`` with the magnitude ``s = |x[t+1]| + |x[t]| + |c| + |B| |a| + |E| |w|_max``
    of the terms the simulator adds (elementwise), the radius ``y_r`` of the enclosure of
    ``c + B a`` (:func:`_successor_interval`) and ``rtol = 32 u_s`` (``u_s`` the unit round-off of the
    stored dtype: ``2^-53`` for float64, ``2^-24`` for float32).  A wrapped coordinate adds
    ``2 (|lo| + period)`` to ``s``, because the simulator's wrap ``hi - ((hi - x) mod period)`` is
    not an exact identity inside ``X`` (it moves theta by up to half an ulp of pi, about 2e-16);
    its residual is compared modulo the period (outside ``X`` only, where check 2 has failed).

    Why a pass is sound: a transition passes only when a witness ``w`` in the outward-rounded
    ``W`` is exhibited with ``|r - E w| <= delta``, so a passing step is explained by the model
    and a noise value in ``W`` up to the stated tolerance.  First witness: the least-squares
    estimate ``w* = pinv(E) r`` clipped to ``W``.  It spreads the rounding of a large coordinate
    over the small ones (quadrotor: ``px ~ 4`` rounds by ~4e-16, which ``w*`` carries into
    ``vx ~ 1e-3`` with its delta of ~5e-17), so a step it leaves unexplained gets a second
    witness that respects the tolerances (:func:`tolerance_witness`).  A step may fail although
    a witness exists (a false alarm: a noise input ``E`` whose rows mix noise coordinates, or the
    rounding of the second witness), never pass without one.

    Reasons (:class:`TransitionReason`), the first that applies: not finite; noise outside ``W``
    (a witness without the ``W`` bound explains the step); not a successor under this model.
    """
    N = len(X)
    out = _empty(N)
    finite = (np.isfinite(X).all(axis=1) & np.isfinite(Xn).all(axis=1) & np.isfinite(a).all(axis=1)
              & np.isfinite(ym).all(axis=1))
    r = np.where(finite[:, None], Xn - ym, 0.0)
    for j, (_, per) in g.wrap.items():
        r[:, j] -= per * np.round(r[:, j] / per)  # subtracts exactly 0 unless |r_j| > per / 2
    batched = E.ndim == 3
    w = np.einsum("Npn,Nn->Np", E_pinv, r) if batched else r @ E_pinv.T

    def times_E(wv: np.ndarray) -> np.ndarray:
        return np.einsum("Nnp,Np->Nn", E, wv) if batched else wv @ E.T

    wmag = np.maximum(np.abs(g.w_lo), np.abs(g.w_hi))
    noise_mag = np.einsum("Nnp,p->Nn", np.abs(E), wmag) if batched else np.abs(E) @ wmag
    scale = np.abs(Xn) + np.abs(X) + np.abs(ym) + np.einsum("Nnm,Nm->Nn", np.abs(Bm), np.abs(a)) + noise_mag
    for j, (lo, per) in g.wrap.items():  # the simulator's wrap hi - ((hi - x) mod per) rounds at the scale of per
        scale[:, j] += 2.0 * (abs(lo) + abs(per))
    delta = rtol * np.where(finite[:, None], scale, 0.0) + yr + TINY
    wc = np.clip(w, g.w_lo, g.w_hi)
    res_c = r - times_E(wc)
    explained = finite & (np.abs(res_c) <= delta).all(axis=1)
    free_ok = (np.abs(r - times_E(w)) <= delta).all(axis=1)  # the unclipped estimate explains the step
    k = np.flatnonzero(finite & ~explained)  # rare: the second, tolerance-aware witness
    if k.size and w.shape[1]:
        Ek = E[k] if batched else np.broadcast_to(E, (k.size,) + E.shape)
        w_in, w_free = tolerance_witness(r[k], delta[k], Ek, g.w_lo, g.w_hi)
        res_in = r[k] - np.einsum("Knp,Kp->Kn", Ek, w_in)
        ok2 = (np.abs(res_in) <= delta[k]).all(axis=1)
        free2 = (np.abs(r[k] - np.einsum("Knp,Kp->Kn", Ek, w_free)) <= delta[k]).all(axis=1)
        explained[k] |= ok2
        free_ok[k] |= free2
        # report the witness that explains the step (or the free one that shows w outside W)
        w[k] = np.where(ok2[:, None], w_in, np.where(free2[:, None], w_free, w[k]))
        res_c[k] = np.where(ok2[:, None], res_in, res_c[k])
    rows = np.arange(N)
    excess_w = np.maximum(w - g.w_hi, g.w_lo - w)  # > 0 outside W
    jw = np.argmax(excess_w, axis=1) if w.shape[1] else np.zeros(N, int)
    ratio = np.abs(w - g.w_c) / np.where(g.w_r > 0, g.w_r, 1.0)
    jr = np.argmax(np.abs(res_c) / delta, axis=1)
    code = first_reason([(~finite, TransitionReason.NON_FINITE), (explained, TransitionReason.PASS),
                         (free_ok, TransitionReason.NOISE_OUTSIDE_W)], TransitionReason.NOT_MODEL_SUCCESSOR)
    out["ok"][:] = explained
    out["slack"][:] = np.where(finite, 1.0 - (ratio.max(axis=1) if w.shape[1] else 0.0), np.nan)
    out["code"][:] = code
    outside_w = code == TransitionReason.NOISE_OUTSIDE_W
    out["index"][:] = np.where(outside_w, jw, jr)
    wv = w[rows, jw] if w.shape[1] else np.zeros(N)
    out["value"][:] = np.where(outside_w, wv, res_c[rows, jr])
    return out


# =================================================================== result
@dataclass
class AuditResult:
    """Everything the audit found; :meth:`to_json` is the machine-readable summary."""

    rollouts: Rollouts
    setfile: Any
    certificate: list[CertificateItem]
    states: CheckResult
    actions: CheckResult
    transitions: CheckResult
    intervened: np.ndarray  # [E, T] bool: |executed - policy action| > 1e-6 (reachsafe.intervention)
    tolerances: dict[str, Any]
    time_s: float = 0.0
    max_failures: int = 1000
    set_fp: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def certificate_ok(self) -> bool:
        return all(it.ok for it in self.certificate)

    @property
    def steps_ok(self) -> bool:
        return self.states.failed == 0 and self.actions.failed == 0 and self.transitions.failed == 0

    @property
    def ok(self) -> bool:
        return self.certificate_ok and self.steps_ok

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def checks(self) -> list[CheckResult]:
        return [self.states, self.actions, self.transitions]

    def failures(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Failing items (episode, step, check, reason), ordered by episode and step, at most ``limit``."""
        limit = self.max_failures if limit is None else limit
        rows: list[tuple[int, int, int, dict]] = []
        words = Wording.of(self.setfile, self.rollouts.states.shape[2])
        for order, chk in enumerate(self.checks):
            bad = np.flatnonzero(~chk.ok.ravel())
            # the first `limit` in (episode, step) order of every check cover the merged first `limit`
            for j in bad[:limit]:
                e, t = np.unravel_index(int(j), chk.ok.shape)
                rows.append((int(e), int(t), order, {
                    "check": chk.name, "episode": int(e), "step": int(t),
                    "reason": chk.explain(int(j), words), "code": chk.reason(int(j)).label,
                    "slack": _finite_or_none(float(chk.slack.flat[j]))}))
        rows.sort(key=lambda r: r[:3])
        return [r[3] for r in rows[:limit]]

    def summary(self) -> dict[str, Any]:
        """Per-check counts and worst slacks (the JSON's ``checks``)."""
        out: dict[str, Any] = {"certificate": {"passed": self.certificate_ok,
                                               "items": [{"name": i.name, "ok": i.ok, "message": i.message}
                                                         for i in self.certificate]}}
        for chk in self.checks:
            worst, (e, t) = chk.worst()
            out[chk.name] = {"total": chk.total, "passed": chk.total - chk.failed, "failed": chk.failed,
                             "failed_by_reason": chk.by_reason(), "worst_slack": _finite_or_none(worst),
                             "worst_slack_at": {"episode": e, "step": t}, "tolerance": chk.tolerance}
        return out

    def to_json(self) -> dict[str, Any]:
        ro, sf = self.rollouts, self.setfile
        fails = self.failures()
        total_fail = sum(c.failed for c in self.checks)
        n_int = int(np.count_nonzero(self.intervened))
        return {
            "tool": f"reachsafe audit {__version__}",
            "verdict": "certified" if self.ok else "violations",
            "exit_code": self.exit_code,
            "rollouts": {
                "path": str(ro.path) if ro.path else None,
                "system": ro.system,
                "episodes": ro.episodes,
                "steps": ro.steps,
                "noise": ro.noise,
                "storage_dtype": ro.storage_dtype,
                "set_fingerprint": ro.set_fingerprint,
                "model_fingerprint": ro.model_fingerprint,
                "mean_return": _finite_or_none(float(ro.rewards.sum(1).mean())) if ro.rewards is not None else None,
            },
            "set": {
                "path": str(sf.path) if sf.path else None,
                "system": sf.system,
                "facets": int(sf.A.shape[0]),
                "certified": bool(sf.certified),
                "model_fingerprint": sf.model_fingerprint,
                "set_fingerprint": self.set_fp,
            },
            "tolerances": self.tolerances,
            "checks": self.summary(),
            "interventions": {
                "count": n_int,
                "steps": int(self.intervened.size),
                "rate": n_int / max(1, self.intervened.size),
            },
            "failures": {
                "total": total_fail,
                "listed": len(fails),
                "truncated": total_fail > len(fails),
                "items": fails,
            },
            "time_s": round(self.time_s, 4),
        }


def _finite_or_none(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


# =================================================================== driver
def _chunk_rows(k: int, n: int) -> int:
    """Rows per chunk so that the [rows, k] facet matrix stays around 16 MB."""
    return int(max(256, min(1 << 18, (1 << 21) // max(k, 1))))


def audit(rollouts: Rollouts | str | Path, setfile, *, recheck: bool = True, tol: float = 0.0,
          model_rtol: float | None = None, max_failures: int = 1000, chunk: int | None = None) -> AuditResult:
    """Audit rollouts against a set file (checks 1-4 of the module docstring).

    :param rollouts: a :class:`reachsafe.rollouts.Rollouts` or a path (``.npz`` or run directory).
    :param setfile: a :class:`~reachsafe.setfile.SetFile` or a path (loaded without refusing a
        fingerprint mismatch: check 1 reports it).
    :param recheck: re-run the proof checker on the artifact (else trust its sha256).
    :param tol: accepted violation of checks 2 and 3 in normalised units (default 0: proven).
    :param model_rtol: relative tolerance of check 4 (default ``32 u`` of the stored dtype).
    :param max_failures: cap of the failure list (counts are always complete).
    :raises UserError: bad input (shapes, system mismatch).
    """

    t0 = time.perf_counter()
    ro = rollouts.validate() if isinstance(rollouts, Rollouts) else Rollouts.load(rollouts)
    sf = setfile if isinstance(setfile, SetFile) else \
        load_set(setfile, check_fingerprint=False, check_certificate=False)  # check 1 reports both
    if not (tol >= 0 and np.isfinite(tol)):
        raise UserError(f"--tol must be a finite number >= 0, got {tol}")
    if ro.system != sf.system:
        raise UserError(f"system mismatch: rollouts are for {ro.system!r} but the set file is for {sf.system!r}; "
                        f"pass the {ro.system} set the run was guarded with")
    system = get_system(sf.system)
    _check_shapes(ro, system)
    model = CertModel(get_definition(sf.system))
    timings: dict[str, float] = {}
    cert_items = _certificate_items(ro, sf, system, recheck)
    timings["certificate_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    g = _geometry(sf, system, model)
    E_, T = ro.episodes, ro.steps
    n, m = system.n, system.m
    u_s = float(np.finfo(np.dtype(ro.storage_dtype)).eps) / 2.0
    rtol = float(model_rtol) if model_rtol is not None else 32.0 * u_s
    chunk = chunk or _chunk_rows(len(g.bn), n)
    st = check_states(ro.states.reshape(-1, n), g, tol, chunk)

    X = ro.states[:, :-1].reshape(-1, n)
    Xn = ro.states[:, 1:].reshape(-1, n)
    A_ = ro.actions.reshape(-1, m)
    N = len(X)
    act, tr = _empty(N), _empty(N)
    for s in range(0, N, chunk):
        sl = slice(s, min(N, s + chunk))
        Xc = X[sl]
        Xsafe = np.where(np.isfinite(Xc), Xc, 0.0)
        enc = model.at_points(Xsafe)
        ym, yr = _successor_interval(enc, np.where(np.isfinite(A_[sl]), A_[sl], 0.0))
        if g.dn is not None:
            rhs, E, E_pinv = g.dn, g.E, g.E_pinv
        else:  # state-dependent E(x): noise term and pseudo-inverse per step
            rhs = _noise_rhs(model, np.asarray(sf.A, float), np.asarray(sf.b, float), enc["E"]) / g.nu
            E = enc["E"].mid
            E_pinv = np.linalg.pinv(E)
        for dst, part in ((act, check_actions(Xc, A_[sl], ym, yr, rhs, g, tol)),
                          (tr, check_transitions(Xc, Xn[sl], A_[sl], ym, yr, enc["B"].mid, E, E_pinv, g, rtol))):
            for key in dst:
                dst[key][sl] = part[key]
    timings["steps_s"] = time.perf_counter() - t1

    tol_txt = ("0 (proven for the exact reals: outward-rounded error bound)" if tol == 0 else
               f"{tol:g} (normalised distance; violations up to {tol:g} are accepted)")
    res = AuditResult(
        rollouts=ro, setfile=sf, certificate=cert_items,
        states=CheckResult.from_flat("states", st, (E_, T + 1), StateReason, f"X exact; P: {tol_txt}"),
        actions=CheckResult.from_flat("actions", act, (E_, T), ActionReason, f"U exact; S(x): {tol_txt}"),
        transitions=CheckResult.from_flat("transitions", tr, (E_, T), TransitionReason,
                                          f"|x+ - c - B a - E w| <= {rtol:.3g} * magnitude + enclosure radius"),
        intervened=intervened(ro.policy_actions, ro.actions),
        tolerances={"state_and_action": tol, "transition_rtol": rtol, "storage_dtype": ro.storage_dtype,
                    "rounding_coefficient": g.k_err, "description": tol_txt},
        max_failures=max_failures, set_fp=set_fingerprint(sf), timings=timings)
    res.time_s = time.perf_counter() - t0
    return res
