"""The safeguard base class: from (system, invariant set) to a batched torch map a -> a_s.

For a state ``x`` in the invariant set ``P = {x : A x <= b}`` and the affine model
``x+ = c(x) + B(x) a + E(x) w`` the safe action set is (DESIGN.md)::

    S(x) = {a in U : A B(x) a <= b - A c(x) - h_W(x)},
    h_W(x)_i = sum_j |(A E(x))_ij| w_r_j + (A E(x) w_c)_i

(``w_c, w_r``: centre and radius of the noise box W), i.e. ``S(x) = {a : G a <= h}`` with
``G = [A B; I; -I]`` and ``h = [b - A c - h_W; hi; -lo]``.  Every ``a`` in ``S(x)`` gives
``x+`` in ``P`` for *every* ``w`` in W, exactly (no linearisation).

One call ``safeguard(states [B, n], actions [B, m]) -> safe_actions [B, m]``:

1. float64, no gradient: ``A B(x)`` and ``h`` for all facets; states outside ``P`` are
   refused (``outside="raise"``) or let through (``outside="fallback"``); for m = 2 the
   facets are reduced exactly to those that shape ``S(x)``
   (:mod:`reachsafe.safeguards.facets`).
2. in the caller's dtype, differentiably: ``G, h`` for the kept facets, tightened by a small
   margin, and the subclass's map (:mod:`~reachsafe.safeguards.projection`,
   :mod:`~reachsafe.safeguards.raymask`).
3. float64 safety net (:mod:`reachsafe.safeguards.safetynet`): every returned action is
   checked against all facets; failures are replaced by a verified action and counted.

Large batches are processed in chunks (``chunk_entries`` bounds the float64 work arrays).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from ..intervention import INTERVENTION_TOL
from ..setfile import SetFile, load_set
from ..systems import CompiledSystem, get_system
from .actionset import Tolerances, box_rows, rowdot, tolerances
from .facets import relevant_facets
from .safetynet import centre_of, minmax_action, relevant_rows, verify

__all__ = ["Safeguard", "SafeguardInfo", "InvariantSetLike", "MAX_ACTIONS"]

MAX_ACTIONS = 8  # largest m the safeguards accept (tested at m = 1, 2, 3, 4, 6)

InvariantSetLike = Union[SetFile, str, os.PathLike, tuple]


@dataclass
class SafeguardInfo:
    """What one safeguard call did (tensors are detached).

    :param intervened: [B] bool, ``|a_s - a|_2 > 1e-6`` (:mod:`reachsafe.intervention`).
    :param distance: [B] ``|a_s - a|_2``.
    :param n_fallback: returned actions replaced by the safety net (verified safe unless ``S(x)`` is empty).
    :param n_empty: states whose ``S(x)`` is empty (the set is not invariant there, or the
        state is outside ``P``); they got the min-max-violation action.
    :param n_outside: states outside ``P`` (only possible with ``outside="fallback"``).
    :param n_unsafe: returned actions that are **not** verified safe (0 unless ``n_empty > 0``
        or the safeguard is ``"none"``).
    :param unsafe: [B] bool, which returned actions are not verified safe (``n_unsafe`` of them).
    """

    intervened: Tensor
    distance: Tensor
    n_fallback: int = 0
    n_empty: int = 0
    n_outside: int = 0
    n_unsafe: int = 0
    unsafe: Tensor | None = None

    @property
    def batch(self) -> int:
        return int(self.distance.shape[0])

    @property
    def intervention_rate(self) -> float:
        return float(self.intervened.float().mean()) if self.batch else 0.0

    @staticmethod
    def merge(parts: list["SafeguardInfo"]) -> "SafeguardInfo":
        return SafeguardInfo(
            intervened=torch.cat([p.intervened for p in parts]),
            distance=torch.cat([p.distance for p in parts]),
            n_fallback=sum(p.n_fallback for p in parts),
            n_empty=sum(p.n_empty for p in parts),
            n_outside=sum(p.n_outside for p in parts),
            n_unsafe=sum(p.n_unsafe for p in parts),
            unsafe=None if any(p.unsafe is None for p in parts) else torch.cat([p.unsafe for p in parts]),
        )


def _resolve_system(system: Union[CompiledSystem, str]) -> CompiledSystem:
    if isinstance(system, str):
        return get_system(system)
    if not isinstance(system, CompiledSystem):
        raise UserError(f"system must be a CompiledSystem or a system name, got {type(system).__name__}")
    return system


def _resolve_set(system: CompiledSystem, invariant_set: InvariantSetLike) -> tuple[np.ndarray, np.ndarray, str]:
    """``(A, b, description)`` of the invariant set, validated against ``system``."""
    if isinstance(invariant_set, (str, os.PathLike)):
        invariant_set = load_set(invariant_set)
    if isinstance(invariant_set, SetFile):
        sf = invariant_set
        where = str(sf.path) if sf.path else "set file"
        if sf.system != system.name:
            raise UserError(f"{where} is a set for {sf.system!r}, but the safeguard is for {system.name!r}; "
                            f"pass a {system.name} set file")
        if sf.model_fingerprint != system.fingerprint:
            raise UserError(f"{where} was made for another version of the {system.name} model (fingerprint "
                            f"{sf.model_fingerprint[:12]}... != {system.fingerprint[:12]}...); recompute the set")
        A, b = sf.A, sf.b
    elif isinstance(invariant_set, tuple) and len(invariant_set) == 2:
        A, b = invariant_set
        where = "(A, b)"
    elif hasattr(invariant_set, "A") and hasattr(invariant_set, "b"):  # HPolytope
        A, b = invariant_set.A, invariant_set.b
        where = type(invariant_set).__name__
    else:
        raise UserError("invariant_set must be a SetFile, a path to one, an HPolytope or a tuple (A, b); "
                        f"got {type(invariant_set).__name__}")
    A = np.asarray(A.detach().cpu() if isinstance(A, Tensor) else A, dtype=np.float64)
    b = np.asarray(b.detach().cpu() if isinstance(b, Tensor) else b, dtype=np.float64)
    if A.ndim != 2 or A.shape[1] != system.n or A.shape[0] == 0 or b.shape != (A.shape[0],):
        raise UserError(f"{where}: need A [k, {system.n}] and b [k] for {system.name}, "
                        f"got A {list(A.shape)} and b {list(b.shape)}")
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        raise UserError(f"{where}: A and b must be finite")
    norms = np.linalg.norm(A, axis=1)
    if np.any(norms == 0):
        raise UserError(f"{where}: row {int(np.argmin(norms))} of A is zero; remove it")
    return A / norms[:, None], b / norms, where


class Safeguard(torch.nn.Module):
    """Base class: maps policy actions to actions in ``S(x)`` (module docstring has the math).

    :param system: a :class:`~reachsafe.systems.CompiledSystem` or its name.
    :param invariant_set: a :class:`~reachsafe.setfile.SetFile`, a path to one, an
        :class:`~reachsafe.sets.HPolytope` or a tuple ``(A, b)`` (arrays or tensors).
    :param passthrough: straight-through gradient: the value is ``a_s`` but the gradient
        is the identity, ``a + (a_s - a).detach()`` (no gradient to the state through ``a_s``).
    :param outside: states outside ``P`` (by more than ``outside_tol``): ``"raise"`` a
        :class:`~reachsafe.errors.UserError` (default) or ``"fallback"``: map them like any
        state (``S(x)`` still gives ``x+`` in ``P``) and, if ``S(x)`` is empty, return the
        min-max-violation action (counted in the info).
    :param empty: states in ``P`` with empty ``S(x)`` (a set that is not invariant):
        ``"fallback"`` (default: min-max-violation action, counted, one warning) or ``"raise"``.
    :param tighten: margin by which ``S(x)`` is shrunk before mapping (default 1e-9 for float64,
        1e-5 for float32, in state-space distance); must exceed rounding errors.
    :param margin: the safety net's margin (must be below ``tighten``).
    :param outside_tol: distance outside ``P`` still treated as inside.
    :param chunk_entries: bound on float64 work-array entries per chunk of states.
    :param direct_facets: m = 2 sets with at most this many relevant facets skip the
        constraint-generation step.
    """

    kind: str = "base"

    def __init__(
        self,
        system: Union[CompiledSystem, str],
        invariant_set: InvariantSetLike,
        *,
        passthrough: bool = False,
        outside: str = "raise",
        empty: str = "fallback",
        tighten: float | None = None,
        margin: float = 1e-10,
        outside_tol: float = 1e-6,
        chunk_entries: int = 1 << 25,
        direct_facets: int = 24,
    ) -> None:
        super().__init__()
        self.system = _resolve_system(system)
        if self.system.m > MAX_ACTIONS:
            raise UserError(f"safeguards are exact for m <= {MAX_ACTIONS} actions (batched active sets and centres "
                            f"cost O(m^3) per state); {self.system.name} has m={self.system.m}")
        if outside not in ("raise", "fallback"):
            raise UserError(f"outside must be 'raise' or 'fallback', got {outside!r}")
        if empty not in ("raise", "fallback"):
            raise UserError(f"empty must be 'raise' or 'fallback', got {empty!r}")
        if tighten is not None and not (tighten > margin >= 0):
            raise UserError(f"need tighten > margin >= 0, got tighten={tighten}, margin={margin}")
        A, b, self.set_description = _resolve_set(self.system, invariant_set)
        self.passthrough = bool(passthrough)
        self.outside, self.empty = outside, empty
        self.tighten, self.margin, self.outside_tol = tighten, float(margin), float(outside_tol)
        self.chunk_entries, self.direct_facets = int(chunk_entries), int(direct_facets)
        w_lo, w_hi = self.system.noise_box_outer()
        f64 = torch.float64
        self.register_buffer("A", torch.tensor(A, dtype=f64), persistent=False)
        self.register_buffer("b", torch.tensor(b, dtype=f64), persistent=False)
        self.register_buffer("w_c", torch.tensor(0.5 * (w_lo + w_hi), dtype=f64), persistent=False)
        self.register_buffer("w_r", torch.tensor(0.5 * (w_hi - w_lo), dtype=f64), persistent=False)
        self.register_buffer("a_lo", torch.tensor(self.system.action_lo, dtype=f64), persistent=False)
        self.register_buffer("a_hi", torch.tensor(self.system.action_hi, dtype=f64), persistent=False)
        # h_W(x) = |A E| w_r + A E w_c is a constant vector when E does not depend on the state
        self._const_noise = not (self.system.E_exprs.free_symbols & set(self.system.definition.state))
        if self._const_noise:
            E0 = np.asarray(self.system.affine(np.zeros((1, self.system.n)))[2][0], dtype=np.float64)
            AE = A @ E0
            h_w = np.abs(AE) @ (0.5 * (w_hi - w_lo)) + AE @ (0.5 * (w_lo + w_hi))
            self.register_buffer("h_w", torch.tensor(h_w, dtype=f64), persistent=False)
        self.last_info: SafeguardInfo | None = None
        self._warned_empty = False

    # ------------------------------------------------------------------ public
    @property
    def n_facets(self) -> int:
        return int(self.A.shape[0])

    def tolerances(self, dtype: torch.dtype) -> Tolerances:
        tol = tolerances(dtype)
        return dataclasses.replace(tol, tighten=self.tighten) if self.tighten is not None else tol

    def safe_action_set(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """Exact ``S(x) = {a : G a <= h}`` for a batch: ``G [B, k + 2m, m]``, ``h [B, k + 2m]``.

        Rows: the k facets of ``P`` (normalised, ``G = A B(x)``, ``h = b - A c - h_W``), then
        ``a <= hi`` and ``-a <= -lo``.  Differentiable in ``states``; dtype of ``states``.
        """
        self._check_states(states)
        G, h = self._facet_rows(states)
        bG, bh = box_rows(self._cast(self.a_lo, states), self._cast(self.a_hi, states), states.shape[0], 0.0)
        return torch.cat([G, bG], 1), torch.cat([h, bh], 1)

    def regularizer(self, actions: Tensor, safe_actions: Tensor, lam: float) -> Tensor:
        """``lam * mean_b |a_s - a|^2``, the term training adds to its loss.

        ``a_s`` is detached: the gradient ``-2 lam (a_s - a) / B`` pulls the policy's action
        towards the safe one (with ``passthrough=True`` a non-detached ``a_s`` would cancel it).
        """
        return lam * ((safe_actions.detach() - actions) ** 2).sum(-1).mean()

    def forward(self, states: Tensor, actions: Tensor, return_info: bool = False) -> Union[Tensor, tuple[Tensor, SafeguardInfo]]:
        """Safe actions ``a_s [B, m]`` for ``states [B, n]`` and ``actions [B, m]``.

        Output dtype/device = those of ``actions``.  The info of the call is stored in
        :attr:`last_info` and returned too if ``return_info``.
        """
        self._check_inputs(states, actions)
        B = actions.shape[0]
        outs, infos = [], []
        for s in range(0, B, self._chunk_size()):
            o, i = self._forward_chunk(states[s:s + self._chunk_size()], actions[s:s + self._chunk_size()])
            outs.append(o)
            infos.append(i)
        if not outs:
            out = actions * 1.0
            info = SafeguardInfo(torch.zeros(0, dtype=torch.bool, device=actions.device),
                                 torch.zeros(0, dtype=actions.dtype, device=actions.device),
                                 unsafe=torch.zeros(0, dtype=torch.bool, device=actions.device))
        else:
            out = outs[0] if len(outs) == 1 else torch.cat(outs)
            info = SafeguardInfo.merge(infos)
        if self.passthrough:
            out = actions + (out - actions).detach()
        self.last_info = info
        return (out, info) if return_info else out

    def extra_repr(self) -> str:
        return (f"system={self.system.name!r}, facets={self.n_facets}, set={self.set_description!r}, "
                f"passthrough={self.passthrough}, outside={self.outside!r}")

    # ---------------------------------------------------------------- subclass
    def _map(self, actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
        """The safeguard's map on ``{a : G a <= h}`` (rows include the box): ``[B, m]`` -> ``[B, m]``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- internals
    def _cast(self, t: Tensor, like: Tensor) -> Tensor:
        return t.to(dtype=like.dtype, device=like.device)

    def _chunk_size(self) -> int:
        # float64 rows of all facets, plus ~8 tensors of the O(M^2) step (M: typical working-set size)
        rows = min(self.n_facets, self.direct_facets) + 2 * self.system.m + 16
        per_state = self.n_facets * (self.system.m + 2) + 8 * rows ** 2
        return max(1, self.chunk_entries // per_state)

    def _facet_rows(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``G = A B(x)`` [B, k, m] and ``h = b - A c(x) - h_W(x)`` [B, k] for all k facets.

        ``A B(x)`` is one matrix product ``[B m, n] @ [n, k]`` (a batched einsum is several
        times slower on a CPU); the result is a ``[B, k, m]`` view of a ``[B, m, k]`` tensor.
        """
        A, b, w_c, w_r = (self._cast(t, x) for t in (self.A, self.b, self.w_c, self.w_r))
        c, Bx, E = self.system.affine(x)
        B, n, m = Bx.shape
        G = (Bx.transpose(1, 2).reshape(B * m, n) @ A.T).view(B, m, -1).transpose(1, 2)
        h = b - c @ A.T
        if self._const_noise:
            return G, h - self._cast(self.h_w, x)
        p = E.shape[-1]
        AE = (E.transpose(1, 2).reshape(B * p, n) @ A.T).view(B, p, -1).transpose(1, 2)
        return G, h - rowdot(AE.abs(), w_r) - rowdot(AE, w_c)

    def _prepare(self, states: Tensor, dtype: torch.dtype) -> dict[str, Any]:
        """Steps 1-2 of the module docstring for one chunk: float64 rows, relevant facets, ``G, h``.

        The rows ``A B(x)``, ``b - A c(x) - h_W(x)`` are evaluated once, in float64 and with
        their graph: detached they feed the facet selection and the safety net; gathered for
        the relevant facets (those that cut U, :func:`~reachsafe.safeguards.facets.relevant_facets`)
        and tightened they are the differentiable ``G [B, K + 2m, m]``, ``h [B, K + 2m]`` of the
        map (the K facet rows first, then the box rows ``[I; -I]``).  The tightening is the
        one of the output ``dtype``; the map itself runs in float64.
        """
        tol = self.tolerances(dtype)
        tol64 = dataclasses.replace(tolerances(torch.float64), tighten=tol.tighten)
        x64 = states.to(torch.float64)
        B = x64.shape[0]
        A64, b64, lo64, hi64 = (self._cast(t, x64) for t in (self.A, self.b, self.a_lo, self.a_hi))
        with torch.no_grad():
            dist_out = (x64 @ A64.T - b64).amax(-1)
            outside = dist_out > self.outside_tol
            n_outside = int(outside.sum())
            if n_outside and self.outside == "raise":
                raise UserError(f"{n_outside} of {B} states lie outside the invariant set {self.set_description} "
                                f"(largest distance {float(dist_out.max()):.3g} > outside_tol={self.outside_tol:g}); the "
                                "safeguard is only defined on the set: reset such states, or pass outside='fallback'")
        AB, rhs = self._facet_rows(x64)
        AB64, rhs64 = AB.detach(), rhs.detach()
        idx = relevant_facets(AB64, rhs64 - tol.tighten, lo64, hi64)
        G, h = self._rows(AB, rhs, idx, tol.tighten, torch.float64)
        return dict(G=G, h=h, tol=tol, tol64=tol64, AB64=AB64, rhs64=rhs64, idx=idx, outside=outside,
                    n_outside=n_outside)

    def _rows(self, AB: Tensor, rhs: Tensor, idx: Tensor, tighten: float,
              dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Tightened ``G, h`` of the facets ``idx [B, K]`` plus the box rows, in ``dtype``.

        ``AB, rhs`` are the float64 rows of all facets (:meth:`_facet_rows`); they keep their
        graph, so ``G, h`` are differentiable in the states.
        """
        AB = torch.gather(AB, 1, idx.unsqueeze(-1).expand(*idx.shape, AB.shape[-1]))
        rhs = torch.gather(rhs, 1, idx)
        G, h = AB.to(dtype), rhs.to(dtype)
        bG, bh = box_rows(self.a_lo.to(dtype), self.a_hi.to(dtype), G.shape[0], tighten)
        return torch.cat([G, bG], 1), torch.cat([h - tighten, bh], 1)

    def _forward_chunk(self, states: Tensor, actions: Tensor) -> tuple[Tensor, SafeguardInfo]:
        d = self._prepare(states, actions.dtype)
        out = self._map(actions.to(torch.float64), d["G"], d["h"], d["tol"]).to(actions.dtype)
        out, counts, unsafe = self._safety_net(out, d["AB64"], d["rhs64"], d["idx"], d["tol64"], d["outside"])
        dist = (out.detach() - actions.detach()).norm(dim=-1)
        return out, SafeguardInfo(intervened=dist > INTERVENTION_TOL, distance=dist, n_outside=d["n_outside"], unsafe=unsafe,
                                  **counts)

    @torch.no_grad()
    def _fallback(self, AB64: Tensor, rhs64: Tensor, idx: Tensor, tol64: Tolerances,
                  dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Float64 centre of ``S(x)`` (rounded to ``dtype``) for the given states, and their empty flags."""
        B = AB64.shape[0]
        Gk = torch.gather(AB64, 1, idx.unsqueeze(-1).expand(*idx.shape, AB64.shape[-1]))
        hk = torch.gather(rhs64, 1, idx)
        bG, bh = box_rows(self._cast(self.a_lo, AB64), self._cast(self.a_hi, AB64), B, tol64.tighten)
        c, empty = centre_of(torch.cat([Gk, bG], 1), torch.cat([hk - tol64.tighten, bh], 1), tol64)
        return c.to(dtype).to(torch.float64), empty

    def _safety_net(self, out: Tensor, AB64: Tensor, rhs64: Tensor, idx: Tensor,
                    tol64: Tolerances, outside: Tensor) -> tuple[Tensor, dict[str, int], Tensor]:
        lo64, hi64 = self._cast(self.a_lo, AB64), self._cast(self.a_hi, AB64)
        ok = verify(AB64, rhs64, out.detach().to(torch.float64), lo64, hi64, self.margin)
        counts = {"n_fallback": 0, "n_empty": 0, "n_unsafe": 0}
        unsafe = torch.zeros_like(ok)
        if bool(ok.all()):
            return out, counts, unsafe
        with torch.no_grad():
            f = (~ok).nonzero().squeeze(-1)
            ABf, rhsf = AB64[f], rhs64[f]
            cand, empty = self._fallback(ABf, rhsf, idx[f], tol64, out.dtype)
            if bool(empty.any()):
                if self.empty == "raise" and bool((empty & ~outside[f]).any()):
                    raise UserError(f"S(x) is empty for {int((empty & ~outside[f]).sum())} states inside the set "
                                    f"{self.set_description}: the set is not invariant there (no action keeps "
                                    "x+ in P for all noise); use a certified set, or pass empty='fallback'")
                e = empty.nonzero().squeeze(-1)
                ABe, rhse = relevant_rows(ABf[e], rhsf[e], lo64, hi64, -tol64.tighten)
                a_mm, _ = minmax_action(ABe, rhse, lo64, hi64, tol64)
                cand[e] = a_mm.to(out.dtype).to(torch.float64)
                if not self._warned_empty and bool((empty & ~outside[f]).any()):
                    warnings.warn(f"safeguard: S(x) is empty for some states of {self.set_description} (the set is "
                                  "not invariant there); returning min-max-violation actions (see info.n_empty)",
                                  RuntimeWarning, stacklevel=4)
                    self._warned_empty = True
            okc = verify(ABf, rhsf, cand, lo64, hi64, self.margin)
            mask = torch.zeros(out.shape[0], dtype=torch.bool, device=out.device)
            mask[f] = True
            repl = torch.zeros_like(out.detach())
            repl[f] = cand.to(out.dtype)
        counts.update(n_fallback=int(f.numel()), n_empty=int(empty.sum()), n_unsafe=int((~okc).sum()))
        unsafe[f] = ~okc
        return torch.where(mask.unsqueeze(-1), repl, out), counts, unsafe

    # --------------------------------------------------------------- validation
    def _check_states(self, states: Any) -> None:
        n = self.system.n
        if not isinstance(states, Tensor):
            raise UserError(f"states must be a torch.Tensor [B, {n}], got {type(states).__name__}")
        if states.dim() != 2 or states.shape[1] != n:
            raise UserError(f"states must have shape [B, {n}] for {self.system.name}, got {list(states.shape)}")
        if states.dtype not in (torch.float32, torch.float64):
            raise UserError(f"states must be float32 or float64, got {states.dtype}")
        if bool(torch.isfinite(states.detach().sum())):  # NaN and inf propagate into the sum: one cheap test
            return
        bad = ~torch.isfinite(states).all(-1)
        if bool(bad.any()):
            raise UserError(f"states contain NaN or inf ({int(bad.sum())} rows, first row {int(bad.nonzero()[0])})")

    def _check_inputs(self, states: Any, actions: Any) -> None:
        self._check_states(states)
        m = self.system.m
        if not isinstance(actions, Tensor):
            raise UserError(f"actions must be a torch.Tensor [B, {m}], got {type(actions).__name__}")
        if actions.dim() != 2 or actions.shape[1] != m:
            raise UserError(f"actions must have shape [B, {m}] for {self.system.name}, got {list(actions.shape)}")
        if actions.shape[0] != states.shape[0]:
            raise UserError(f"states and actions must have the same batch size, got {states.shape[0]} and {actions.shape[0]}")
        if actions.dtype not in (torch.float32, torch.float64):
            raise UserError(f"actions must be float32 or float64, got {actions.dtype}")
        if actions.device != states.device:
            raise UserError(f"states ({states.device}) and actions ({actions.device}) must be on the same device")
        if bool(torch.isfinite(actions.detach().sum())):
            return
        bad = ~torch.isfinite(actions).all(-1)
        if bool(bad.any()):
            raise UserError(f"actions contain NaN or inf ({int(bad.sum())} rows, first row {int(bad.nonzero()[0])}); "
                            "the policy produced non-finite outputs")
