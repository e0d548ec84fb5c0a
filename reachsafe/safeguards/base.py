"""The safeguard base class: from (system, invariant set) to a batched torch map a -> a_s.

For a state ``x`` in the invariant set ``P = {x : A x <= b}`` and the affine model
``x+ = c(x) + B(x) a + E(x) w`` the safe action set is (docs/architecture.md)::

    S(x) = {a in U : A B(x) a <= b - A c(x) - h_W(x)},
    h_W(x)_i = sum_j |(A E(x))_ij| w_r_j + (A E(x) w_c)_i

(``w_c, w_r``: centre and radius of the noise box W), i.e. ``S(x) = {a : G a <= h}`` with
``G = [A B; I; -I]`` and ``h = [b - A c - h_W; hi; -lo]``.  Every ``a`` in ``S(x)`` gives
``x+`` in ``P`` for *every* ``w`` in W, exactly (no linearisation).

One call ``safeguard(states [B, n], actions [B, m]) -> safe_actions [B, m]``:

1. ``c(x), B(x), E(x)`` once, in float64 (one autograd node when a gradient is needed).
2. Facet pass, float64, no gradient (:meth:`Safeguard._prepare`): states outside ``P`` are
   refused (``outside="raise"``) or let through (``outside="fallback"``); the facets that cut U
   become the local rows ``G, h`` of each state (they and the box describe ``S(x)`` exactly).
3. The subclass's map (:mod:`~reachsafe.safeguards.projection`, :mod:`~reachsafe.safeguards.raymask`):
   its structure and value without a graph, then one autograd node whose backward is the exact
   Jacobian in closed form (with respect to the action and, through ``c, B, E``, the state).
4. float64 safety net (:mod:`reachsafe.safeguards.safetynet`): every returned action is
   checked against all facets; failures are replaced by a verified action and counted
   (a kind with ``shields = False``, the ``"none"`` baseline, only counts them).

Large batches are processed in chunks (``chunk_entries`` bounds the float64 work arrays).

A subclass (a *kind*, registered in :mod:`reachsafe.safeguard_kinds`) sets ``kind`` and
implements the abstract :meth:`Safeguard._map` (the map on the local rows ``{a : G a <= h}``);
it may also override :meth:`Safeguard._solve` (the map on a prepared :class:`Chunk`, for a
gradient to the state).  docs/extending.md walks through one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from ..intervention import INTERVENTION_TOL
from ..sets.base import ConvexSet
from ..sets.convert import as_hpolytope
from ..sets.rows import normalize_rows
from ..setfile import SetFile, load_set
from ..systems import CompiledSystem, get_system
from .actionset import _BIG, Tolerances, box_rows, rowdot, tolerances
from .interval import forward_interval
from .polygon import Arena
from .safetynet import centre_of, minmax_action, relevant_rows, verify

__all__ = ["Safeguard", "SafeguardInfo", "InvariantSetLike", "MAX_ACTIONS", "regularizer"]

MAX_ACTIONS = 8  # largest m the safeguards accept (tested at m = 1, 2, 3, 4, 6)

InvariantSetLike = Union[SetFile, str, os.PathLike, tuple, ConvexSet]


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
            unsafe=None if any(p.unsafe is None for p in parts)
            else torch.cat([p.unsafe for p in parts if p.unsafe is not None]),
        )


@dataclass(frozen=True)
class Chunk:
    """One chunk of states prepared for a map (:meth:`Safeguard._prepare`); float64 throughout.

    :param cBE: ``[c(x), B(x), E(x)]`` flattened (:meth:`~reachsafe.systems.CompiledSystem.affine_flat`),
        with its graph iff ``grad``; ``c, Bx, E`` are views of it.
    :param c: ``c(x) [B, n]``.
    :param Bx: ``B(x) [B, n, m]``, likewise.
    :param E: ``E(x) [B, n, p]``, likewise.
    :param idx: ``[B, K]`` the facets that cut U (K: the largest count in the chunk); slots of
        states with fewer hold ``k`` (padding: a zero row with a huge right-hand side).
    :param G: ``[B, K + 2m, m]`` the local rows of ``S(x)``: facets ``idx``, then the box ``[I; -I]``;
        together they describe ``S(x)`` exactly (the other facets cut nothing from U).
    :param h: ``[B, K + 2m]`` their right-hand sides, tightened by ``tol.tighten``.
    :param rhs: ``[B, K]`` the facets' right-hand sides ``b - A c(x) - h_W(x)``, not tightened.
    :param tol: tolerances of the output dtype; ``tol64``: float64 tolerances with the same ``tighten``.
    :param outside: ``[B]`` states outside ``P``; ``n_outside`` their number.
    :param guard: the safeguard that prepared the chunk (its constants: ``A``, the noise box).
    :param grad: whether ``cBE`` carries the graph to the states (a gradient is needed).
    """

    cBE: Tensor
    c: Tensor
    Bx: Tensor
    E: Tensor
    idx: Tensor
    G: Tensor
    h: Tensor
    rhs: Tensor
    tol: Tolerances
    tol64: Tolerances
    outside: Tensor
    n_outside: int
    guard: "Safeguard"
    grad: bool

    @property
    def K(self) -> int:
        return int(self.idx.shape[1])

    def rows_at(self, loc: Tensor, sub: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Local rows ``loc [b, q]`` (indices into the ``K + 2m`` rows, all valid), with their graph.

        ``sub [b]``: the states (default: all).  The values are exactly ``G, h`` gathered at ``loc``;
        when ``grad`` the gradient is attached through the zero-valued terms ``A_q (B(x) - [B(x)])``
        and ``-A_q (c(x) - [c(x)])`` (``[.]``: detached), so only these q rows enter the graph and
        ``d G_q = A_q dB``, ``d h_q = -A_q dc - d h_W(x)_q`` exactly.
        """
        b, q = loc.shape
        m = self.Bx.shape[-1]
        G, h = (self.G, self.h) if sub is None else (self.G[sub], self.h[sub])
        G = G.gather(1, loc.unsqueeze(-1).expand(b, q, m))
        h = h.gather(1, loc)
        if not self.grad:
            return G, h
        idx, Bx, c = (self.idx, self.Bx, self.c) if sub is None else (self.idx[sub], self.Bx[sub], self.c[sub])
        Aq = self._A_rows(idx, loc)  # [b, q, n]
        G = G + Aq @ (Bx - Bx.detach())
        h = h - (Aq @ (c - c.detach()).unsqueeze(-1)).squeeze(-1)
        if not self.guard._const_noise:
            E = self.E if sub is None else self.E[sub]
            w_r, w_c = self.guard._cast(self.guard.w_r, h), self.guard._cast(self.guard.w_c, h)
            AE, AEd = Aq @ E, Aq @ E.detach()
            h = h - rowdot(AE.abs() - AEd.abs(), w_r) - rowdot(AE - AEd, w_c)
        return G, h

    def local_vjp(self, gG: Tensor, gh: Tensor) -> Tensor:
        """``dL/dcBE`` from the gradients ``gG [B, M, m]``, ``gh [B, M]`` of the local rows ``G, h``.

        The facet rows are ``G_k = A_k B(x)``, ``h_k = b_k - A_k c(x) - h_W(x)_k`` (the box rows and
        the padding are constants), so with ``A_loc [B, K, n]`` the facets' rows of ``A``::

            dL/dB = A_loc^T dL/dG_k,    dL/dc = -A_loc^T dL/dh_k,
            dL/dE = -A_loc^T (dL/dh_k (sign(A_k E) w_r + w_c)^T)      (state-dependent noise only)

        returned flattened like :meth:`~reachsafe.systems.CompiledSystem.affine_flat`
        (:meth:`Safeguard.affine_rows_vjp`).
        """
        B, K = self.idx.shape
        n = self.Bx.shape[1]
        if K == 0:
            return gh.new_zeros(B, self.cBE.shape[-1])
        Ap = self.guard._cast(self.guard.Ap, gh)
        A_loc = torch.index_select(Ap, 0, self.idx.reshape(-1),
                                   out=self.guard._arena.get("A_loc", (B * K, n), Ap.dtype, Ap.device)).view(B, K, n)
        return self._vjp_rows(A_loc, gG[:, :K], gh[:, :K])

    def rows_vjp(self, loc: Tensor, gG: Tensor, gh: Tensor) -> Tensor:
        """``dL/dcBE`` from the gradients ``gG [B, q, m]``, ``gh [B, q]`` of the local rows ``loc [B, q]`` (all
        valid indices; any number of them, repeats add up): :meth:`local_vjp` restricted to these rows, without
        the ``[B, K + 2m, m]`` scatter (the box rows and the padding have zero rows of ``A``)."""
        return self._vjp_rows(self.A_rows(loc), gG, gh)

    def _vjp_rows(self, Aq: Tensor, gG: Tensor, gh: Tensor) -> Tensor:
        """:meth:`Safeguard.affine_rows_vjp` with this chunk's ``E(x)``."""
        return self.guard.affine_rows_vjp(Aq, gG, gh, self.E.detach())

    def A_rows(self, loc: Tensor) -> Tensor:
        """Rows of the set's ``A`` behind local rows ``loc [B, q]`` of all states (zero for the box and padding)."""
        return self._A_rows(self.idx, loc)

    def _A_rows(self, idx: Tensor, loc: Tensor) -> Tensor:
        """Rows of the set's ``A`` behind local rows ``loc [b, q]`` (zero rows for the box and padding)."""
        K = idx.shape[1]
        Ap = self.guard._cast(self.guard.Ap, self.c)
        if K == 0:
            return Ap.new_zeros(*loc.shape, Ap.shape[1])
        fi = torch.where(loc < K, idx.gather(1, loc.clamp_max(K - 1)), Ap.shape[0] - 1)
        return Ap[fi]


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
    else:  # a set representation (HPolytope, Box, Zonotope); anything else: one UserError
        poly = as_hpolytope(invariant_set, what="invariant_set", also="a SetFile, a path to one")
        A, b = poly.A, poly.b
        where = type(invariant_set).__name__
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
    A, b = normalize_rows(A, b)
    return A, b, where


_ON_INTERVALS: dict[type, bool] = {}


def _runs_on_intervals(cls: type) -> bool:
    """Whether a kind takes the m = 1 interval path: it implements :meth:`Safeguard._interval`, in a class
    that also defines (or inherits unchanged) its ``_map`` and ``_solve``; a subclass that changes the map
    of a kind without changing ``_interval`` keeps the general path, which runs its map."""
    hit = _ON_INTERVALS.get(cls)
    if hit is None:
        def owner(name: str) -> type:
            return next(k for k in cls.__mro__ if name in vars(k))

        o = owner("_interval")
        hit = o is not Safeguard and issubclass(o, owner("_map")) and issubclass(o, owner("_solve"))
        _ON_INTERVALS[cls] = hit
    return hit


def regularizer(actions: Tensor, safe_actions: Tensor, lam: float) -> Tensor:
    """``lam * mean_b |a_s - a|^2`` for policy actions ``a`` and safe actions ``a_s`` ([B, m]).

    ``a_s`` is detached: the gradient ``-2 lam (a_s - a) / B`` pulls the policy's action towards the
    safe one (with a passthrough gradient a non-detached ``a_s`` would cancel it).  The one
    implementation of the regulariser: :meth:`Safeguard.regularizer` and SHAC's actor loss
    (:mod:`training.shac`) both call it.
    """
    return lam * ((safe_actions.detach() - actions) ** 2).sum(-1).mean()


class Safeguard(torch.nn.Module, metaclass=ABCMeta):
    """Base class: maps policy actions to actions in ``S(x)`` (module docstring has the math).

    Class attributes of a kind: ``kind`` (its name in :mod:`reachsafe.safeguard_kinds`, the CLI and
    experiment files) and ``shields`` (``True``: every returned action is verified safe or counted
    as unsafe and replaced; ``False``: actions are returned as the map gives them and unsafe ones
    only counted); both must agree with the kind's registry entry, which adds the display name.

    :param system: a :class:`~reachsafe.systems.CompiledSystem` or its name.
    :param invariant_set: a :class:`~reachsafe.setfile.SetFile`, a path to one, a set
        (:class:`~reachsafe.sets.HPolytope`, :class:`~reachsafe.sets.Box`,
        :class:`~reachsafe.sets.Zonotope`) or a tuple ``(A, b)`` (arrays or tensors).
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

    kind: ClassVar[str] = "base"
    shields: ClassVar[bool] = True

    # float64 buffers registered in __init__ (declared so that type checkers see tensors, not Modules)
    A: Tensor
    b: Tensor
    w_c: Tensor
    w_r: Tensor
    a_lo: Tensor
    a_hi: Tensor
    h_w: Tensor
    Ap: Tensor
    AB0: Tensor
    bhp: Tensor
    neg_bp: Tensor
    top0: Tensor
    a_mid: Tensor
    a_rad: Tensor

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
        self._box1 = (float(self.system.action_lo[0]), float(self.system.action_hi[0]))  # U for m = 1
        # h_W(x) = |A E| w_r + A E w_c is a constant vector when E does not depend on the state
        self._const_noise = not (self.system.E_exprs.free_symbols & set(self.system.definition.state))
        if self._const_noise:
            x_mid = 0.5 * (self.system.constraint_lo + self.system.constraint_hi)  # where the model is defined
            E0 = np.asarray(self.system.affine(np.asarray(x_mid, dtype=np.float64)[None])[2][0], dtype=np.float64)
            AE = A @ E0
            h_w = np.abs(AE) @ (0.5 * (w_hi - w_lo)) + AE @ (0.5 * (w_lo + w_hi))
            self.register_buffer("h_w", torch.tensor(h_w, dtype=f64), persistent=False)
        self._facet_pass_constants(A, b)
        self._ws: dict[str, Tensor] = {}
        self._ws_key: tuple | None = None
        self._consts: dict[tuple, Tensor] = {}
        self._cast_cache: dict[tuple, tuple[Tensor, Tensor]] = {}
        self._arena = Arena()  # scratch buffers of the structure passes
        self.last_info: SafeguardInfo | None = None
        self._warned_empty = False

    def _facet_pass_constants(self, A: np.ndarray, b: np.ndarray) -> None:
        """Constants of the facet pass (:meth:`_prepare`).

        The entries of ``B(x)`` that do not depend on the state are folded into ``A B_0`` once, so
        ``A B(x)`` costs one small matrix product per action column with state-dependent entries
        (none for the pendulum, one for the quadrotor).  Every per-facet array gets one extra
        *padding* facet k: a zero row of ``A`` with right-hand side ``+_BIG`` and depth ``-_BIG``,
        which is never selected and fills the slots of states with fewer relevant facets.
        """
        n, m = self.system.n, self.system.m
        k = A.shape[0]
        state = set(self.system.definition.state)
        B0 = np.zeros((n, m))
        self._var_rows: list[list[int]] = []
        for j in range(m):
            rows = []
            for i in range(n):
                e = self.system.B_exprs[i, j]
                if e.free_symbols & state:
                    rows.append(i)
                else:
                    B0[i, j] = float(e)
            self._var_rows.append(rows)
        f64 = torch.float64
        Ap = np.vstack([A, np.zeros((1, n))])
        AB0 = Ap @ B0  # [k + 1, m]
        self.register_buffer("Ap", torch.tensor(Ap, dtype=f64), persistent=False)
        self.register_buffer("AB0", torch.tensor(AB0, dtype=f64), persistent=False)
        # column j's state-dependent rows of B(x) as one strided slice r0:r1 (a view, no gather); rows of the
        # slice whose entry is constant get a zero row of A_var (their value is in A B_0: adding 0 B_0 is exact)
        self._var_span: list[tuple[int, int]] = []
        for j, rows in enumerate(self._var_rows):
            r0, r1 = (min(rows), max(rows) + 1) if rows else (0, 0)
            A_var = np.zeros((r1 - r0, k + 1))
            for i in rows:
                A_var[i - r0] = Ap[:, i]
            self._var_span.append((r0, r1))
            self.register_buffer(f"A_var{j}", torch.tensor(A_var, dtype=f64), persistent=False)
        lo, hi = self.system.action_lo, self.system.action_hi
        mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
        self._box_symmetric = bool(np.all(mid == 0))
        # b - h_W (constant noise term) or b, and the constant columns' part of max_{a in U} g . a
        bh = b - (self.h_w.numpy() if self._const_noise else 0.0)
        const_cols = [j for j in range(m) if not self._var_rows[j]]
        top0 = sum((np.abs(AB0[:k, j]) * rad[j] + AB0[:k, j] * mid[j] for j in const_cols), np.zeros(k))
        self.register_buffer("bhp", torch.tensor(np.r_[bh, _BIG], dtype=f64), persistent=False)
        self.register_buffer("neg_bp", torch.tensor(-np.r_[b, _BIG], dtype=f64), persistent=False)
        self.register_buffer("top0", torch.tensor(np.r_[top0, 0.0], dtype=f64), persistent=False)
        self.register_buffer("a_mid", torch.tensor(mid, dtype=f64), persistent=False)
        self.register_buffer("a_rad", torch.tensor(rad, dtype=f64), persistent=False)

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
        The same term as the module function :func:`regularizer`, which SHAC calls.
        """
        return regularizer(actions, safe_actions, lam)

    def forward(
        self, states: Tensor, actions: Tensor, return_info: bool = False
    ) -> Union[Tensor, tuple[Tensor, SafeguardInfo]]:
        """Safe actions ``a_s [B, m]`` for ``states [B, n]`` and ``actions [B, m]``.

        Output dtype/device = those of ``actions``.  The info of the call is stored in
        :attr:`last_info` and returned too if ``return_info``.
        """
        self._check_inputs(states, actions)
        B = actions.shape[0]
        outs, infos = [], []
        step = self._chunk_size()
        for s in range(0, B, step):
            # one chunk: the tensors themselves (a slice would add a node to the graph)
            o, i = self._forward_chunk(*((states, actions) if B <= step else (states[s:s + step], actions[s:s + step])))
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
    @abstractmethod
    def _map(self, actions: Tensor, G: Tensor, h: Tensor, tol: Tolerances) -> Tensor:
        """The safeguard's map on ``S(x) = {a : G a <= h}``: ``actions [B, m]`` -> ``[B, m]`` in ``S(x)``.

        ``G [B, M, m]``, ``h [B, M]`` (float64) are the local rows of :class:`Chunk`: the facets that
        cut U, then the box rows ``[I; -I]``; ``tol`` the float64 tolerances.  Differentiable in
        ``actions`` (autograd); the result is re-checked by the safety net.
        """

    def _interval(self, a: Tensor, lo_s: Tensor, hi_s: Tensor, lo: Tensor, hi: Tensor, tol: Tolerances
                  ) -> tuple[Tensor, Any]:
        """m = 1 (optional): the map on the interval ``S(x) = [lo_s, hi_s]`` (tightened) inside ``U = [lo, hi]``.

        ``a, lo_s, hi_s [B, 1]`` float64, no graph; returns ``a_s [B, 1]`` and what :meth:`_interval_vjp`
        needs.  A kind that implements it (with :meth:`_interval_vjp`) is run on intervals by
        :mod:`reachsafe.safeguards.interval`, which must then give what :meth:`_map` gives.
        """
        raise NotImplementedError

    def _interval_vjp(self, saved: Any, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(dL/da, dL/dlo_s, dL/dhi_s)``, each ``[B, 1]``, of :meth:`_interval` for ``v = dL/da_s``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- internals
    def _cast(self, t: Tensor, like: Tensor) -> Tensor:
        """The constant ``t`` (a buffer) in the dtype and on the device of ``like``.

        Conversions are cached per buffer, dtype and device (the cache entry holds the source tensor
        and is used only while the buffer is that very tensor, e.g. not after ``.to(device)``); a buffer
        that already matches is returned as is.  Either way no ``aten::to`` dispatch per call.
        """
        if t.dtype == like.dtype and t.device == like.device:
            return t
        key = (id(t), like.dtype, like.device)
        hit = self._cast_cache.get(key)
        if hit is not None and hit[0] is t:
            return hit[1]
        out = t.to(dtype=like.dtype, device=like.device)
        if not t.requires_grad:
            if len(self._cast_cache) > 256:
                self._cast_cache.clear()
            self._cast_cache[key] = (t, out)
        return out

    def _chunk_size(self) -> int:
        # float64 rows of all facets, plus ~8 tensors of the O(M^2) step (M: typical working-set size)
        rows = min(self.n_facets, self.direct_facets) + 2 * self.system.m + 16
        per_state = self.n_facets * (self.system.m + 2) + 8 * rows ** 2
        return max(1, self.chunk_entries // per_state)

    def affine_rows_vjp(self, Aq: Tensor, gG: Tensor, gh: Tensor, E: Tensor) -> Tensor:
        """``[dL/dc, dL/dB, dL/dE]`` flattened like :meth:`~reachsafe.systems.CompiledSystem.affine_flat`,
        ``[B, n + n m + n p]``, from rows ``Aq [B, q, n]`` of ``A`` (zero rows for the box and the padding) and
        the gradients ``gG [B, q, m]``, ``gh [B, q]`` of ``G_q = A_q B(x)``, ``h_q = b_q - A_q c(x) - h_W(x)_q``::

            dL/dB = A_q^T dL/dG_q,    dL/dc = -A_q^T dL/dh_q,
            dL/dE = -A_q^T (dL/dh_q (sign(A_q E) w_r + w_c)^T)      (state-dependent noise only)

        (one batched product ``A_q^T [dL/dh_q, dL/dG_q]``, ``[n, q] @ [q, 1 + m]``); ``E [B, n, p]`` detached.
        """
        B, q, n = Aq.shape
        m, p = gG.shape[-1], E.shape[-1]
        AT = Aq.transpose(1, 2)
        if self._const_noise:
            o = AT @ torch.cat([gh.unsqueeze(-1), gG], -1)  # [B, n, 1 + m]
            return torch.cat([-o[..., 0], o[..., 1:].reshape(B, n * m), gh.new_zeros(B, n * p)], -1)
        w_r, w_c = self._cast(self.w_r, gh), self._cast(self.w_c, gh)
        dh = torch.sign(Aq @ E) * w_r + w_c  # d h_W(x)_q / d (A_q E), [B, q, p]
        o = AT @ torch.cat([gh.unsqueeze(-1), gG, gh.unsqueeze(-1) * dh], -1)  # [B, n, 1 + m + p]
        return torch.cat([-o[..., 0], o[..., 1:1 + m].reshape(B, n * m), -o[..., 1 + m:].reshape(B, n * p)], -1)

    def _facet_rows(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``G = A B(x)`` [B, k, m] and ``h = b - A c(x) - h_W(x)`` [B, k] for all k facets.

        ``A B(x)`` is one matrix product ``[B m, n] @ [n, k]`` (a batched einsum is several
        times slower on a CPU); the result is a ``[B, k, m]`` view of a ``[B, m, k]`` tensor.
        """
        return self._rows_from_affine(*self.system.affine(x))

    def _rows_from_affine(self, c: Tensor, Bx: Tensor, E: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`_facet_rows` from ``c(x) [B, n]``, ``B(x) [B, n, m]``, ``E(x) [B, n, p]`` (same dtype)."""
        A, b = self._cast(self.A, c), self._cast(self.b, c)
        B, n, m = Bx.shape
        G = (Bx.transpose(1, 2).reshape(B * m, n) @ A.T).view(B, m, -1).transpose(1, 2)
        if self._const_noise:
            return G, (b - self._cast(self.h_w, c)) - c @ A.T
        p = E.shape[-1]
        AE = (E.transpose(1, 2).reshape(B * p, n) @ A.T).view(B, p, -1).transpose(1, 2)
        return G, b - c @ A.T - rowdot(AE.abs(), self._cast(self.w_r, c)) - rowdot(AE, self._cast(self.w_c, c))

    def _prepare(self, states: Tensor, dtype: torch.dtype, grad: bool) -> "Chunk":
        """Steps 1-2 of the module docstring for one chunk of states (see :class:`Chunk`).

        ``c(x), B(x), E(x)`` are evaluated once, in float64 (with their graph iff ``grad``).  The
        facet pass, float64 without gradient, computes for every facet i and state::

            depth_i = max_{a in U} (A B(x))_i . a - rhs_i = |A B(x)|_i . rad + (A B(x))_i . mid - rhs_i

        (``rhs = b - A c(x) - h_W(x)``; ``A B(x)`` from the constant ``A B_0`` and one product per action
        column with state-dependent entries).  Facets with ``depth_i <= theta`` cut nothing from U:
        every action in U satisfies them with slack ``-theta``, where ``theta = min(-tighten, -margin -
        1e-10)``, so they are neither needed by the maps nor re-checked by the safety net (the float64
        rounding of ``depth``, ~1e-14 relative, is far below 1e-10).  The others (K per state at most,
        none in the interior of a typical set) become the local rows ``G, h``, compacted per state by
        a prefix sum and a binary search per slot (no sort, no scatter).
        """
        tol = self.tolerances(dtype)
        tol64 = dataclasses.replace(tolerances(torch.float64), tighten=tol.tighten)
        x64 = states.to(torch.float64) if grad else states.detach().to(torch.float64)
        cBE = self.system.affine_flat(x64)
        c, Bx, E = self.system.split_affine(cBE)
        B = x64.shape[0]
        with torch.no_grad():
            xd = x64.detach()
            cd, Bd, _ = self.system.split_affine(cBE.detach())
            A = self._cast(self.A, xd)
            k = A.shape[0]
            ws = self._workspace(B, k, xd.device)
            Ap, nbp = self._cast(self.Ap, xd), self._cast(self.neg_bp, xd)
            dist_out = (torch.addmm(nbp, xd, Ap.T, out=ws["xA"]) if ws else torch.addmm(nbp, xd, Ap.T)).amax(-1)
            outside = dist_out > self.outside_tol
            n_outside = int(outside.sum())
            if n_outside and self.outside == "raise":
                raise UserError(
                    f"{n_outside} of {B} states lie outside the invariant set {self.set_description} "
                    f"(largest distance {float(dist_out.max()):.3g} > outside_tol={self.outside_tol:g}); the "
                    "safeguard is only defined on the set: reset such states, or pass outside='fallback'"
                )
            cols, rhs, depth = self._facet_pass(cd, Bd, E.detach(), ws)
            assert depth is not None
            theta = min(-tol.tighten, -self.margin - 1e-10)
            # pos[:, i]: how many of facets 0..i are selected (float64 counts, exact; no bool-to-long copy); the s-th
            # selected facet of a state is the first i with pos[:, i] >= s (a binary search per slot: no scatter, no
            # sort); missing slots get k (padding)
            pos = torch.gt(depth, theta, out=ws["pos"]) if ws else (depth > theta).to(depth.dtype)
            pos = pos.cumsum_(-1)
            K = int(pos[:, -1].max()) if B else 0
            idx = torch.searchsorted(pos, self._slots(B, K, pos.dtype, xd.device)).clamp_max_(k)
            # (a constant column is gathered from a batch view: advanced indexing col[idx] costs several gathers)
            Gk = torch.stack([(col if col.dim() == 2 else col.expand(B, -1)).gather(1, idx) for col in cols], -1)
            rhs_k = rhs.gather(1, idx)
            bG, bh = box_rows(self._cast(self.a_lo, xd), self._cast(self.a_hi, xd), B, tol.tighten)
            G, h = torch.cat([Gk, bG], 1), torch.cat([rhs_k - tol.tighten, bh], 1)
        return Chunk(cBE=cBE, c=c, Bx=Bx, E=E, idx=idx, G=G, h=h, rhs=rhs_k, tol=tol, tol64=tol64, outside=outside,
                     n_outside=n_outside, guard=self, grad=grad)

    def _workspace(self, B: int, k: int, device: torch.device) -> dict[str, Tensor]:
        """Buffers ``[B, k]`` of the facet pass, kept between calls (empty dict if too large).

        Fresh ``[B, k]`` float64 temporaries (0.5 MB for the quadrotor set at B = 1024) are returned
        to the operating system when freed and cost a page fault per 4 kB when touched again: on
        this kind of machine that was most of the facet pass.  Kept only up to ``2^20`` entries.
        """
        if B * k > (1 << 20):
            self._ws = {}
            return self._ws
        key = (B, k, device)
        if self._ws_key != key:
            f64 = torch.float64
            kp = k + 1
            self._ws = {name: torch.empty(B, kp, dtype=f64, device=device) for name in ("xA", "rhs", "depth", "tmp")}
            self._ws["pos"] = torch.empty(B, kp, dtype=f64, device=device)
            for j, rows in enumerate(self._var_rows):
                if rows:
                    self._ws[f"col{j}"] = torch.empty(B, kp, dtype=f64, device=device)
            self._ws_key = key
        return self._ws

    def _slots(self, B: int, K: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """``[B, K]``, row ``[1, 2, ..., K]`` in every state (contiguous: :func:`torch.searchsorted` values)."""
        key = ("slots", B, K, dtype, device)
        if key not in self._consts:
            if len(self._consts) > 64:
                self._consts.clear()
            self._consts[key] = torch.arange(1, K + 1, dtype=dtype, device=device).expand(B, K).contiguous()
        return self._consts[key]

    @torch.no_grad()
    def _facet_pass(self, c: Tensor, Bx: Tensor, E: Tensor, ws: dict[str, Tensor] | None = None,
                    with_depth: bool = True) -> tuple[list[Tensor], Tensor, Tensor | None]:
        """``(cols, rhs, depth)`` for the k facets and the padding facet (:meth:`_prepare`), float64, no gradient.

        ``cols[j]``: column j of ``A B(x)``, ``[B, k + 1]`` (or ``[k + 1]`` when it does not depend on the
        state); ``rhs = b - A c(x) - h_W(x)`` ``[B, k + 1]`` (``+_BIG`` for the padding facet);
        ``depth = max_U (A B(x)) a - rhs = top0 + sum_j (|col_j| rad_j + col_j mid_j) - rhs`` ``[B, k + 1]``
        (``top0``: the constant columns' part; the sum over the state-dependent columns).  With ``ws``
        (:meth:`_workspace`) the results live in its buffers (valid until the next call).  ``with_depth=False``:
        ``depth`` is not computed (None).
        """
        ws = ws or {}
        Ap = self._cast(self.Ap, c)
        if self._const_noise:  # rhs = (b - h_W) - A c(x): one product
            bhp = self._cast(self.bhp, c)
            rhs = torch.addmm(bhp, c, Ap.T, alpha=-1.0, out=ws["rhs"]) if ws else torch.addmm(bhp, c, Ap.T, alpha=-1.0)
        else:
            p, n = E.shape[-1], Ap.shape[1]
            AE = (E.transpose(1, 2).reshape(-1, n) @ Ap.T).view(E.shape[0], p, -1).transpose(1, 2)
            Ac = c @ Ap.T + rowdot(AE.abs(), self._cast(self.w_r, c)) + rowdot(AE, self._cast(self.w_c, c))
            rhs = self._cast(self.bhp, c) - Ac
        depth = None
        if with_depth:
            top0 = self._cast(self.top0, c)
            depth = torch.sub(top0, rhs, out=ws["depth"]) if ws else top0 - rhs
        cols: list[Tensor] = []
        AB0 = self._cast(self.AB0, c)
        for j, rows in enumerate(self._var_rows):
            if not rows:
                cols.append(AB0[:, j])
                continue
            r0, r1 = self._var_span[j]
            Bv, Av = Bx[:, r0:r1, j], self._cast(getattr(self, f"A_var{j}"), c)
            col = torch.addmm(AB0[:, j], Bv, Av, out=ws[f"col{j}"]) if ws else torch.addmm(AB0[:, j], Bv, Av)
            cols.append(col)
            if depth is None:
                continue
            term = torch.abs(col, out=ws["tmp"]) if ws else col.abs()
            depth.add_(term, alpha=float(self.a_rad[j]))
            if not self._box_symmetric:
                depth.add_(col, alpha=float(self.a_mid[j]))
        return cols, rhs, depth

    def _forward_chunk(self, states: Tensor, actions: Tensor) -> tuple[Tensor, SafeguardInfo]:
        """Steps 1-4 of the module docstring on one chunk: prepare, map, safety net (or, for a kind
        that does not shield, only the count of unsafe actions)."""
        grad = (self.shields and not self.passthrough and torch.is_grad_enabled()
                and (states.requires_grad or actions.requires_grad))
        if self.system.m == 1 and self.shields and _runs_on_intervals(type(self)):
            fast = forward_interval(self, states, actions, grad)
            if fast is not None:
                out, dist = fast
                return out, SafeguardInfo(intervened=dist > INTERVENTION_TOL, distance=dist,
                                          unsafe=torch.zeros_like(dist, dtype=torch.bool))
        ch = self._prepare(states, actions.dtype, grad)
        out = self._solve(actions, ch)
        if self.shields:
            out, counts, unsafe = self._safety_net(out, ch)
        else:
            with torch.no_grad():
                unsafe = ~self._verify(ch, out.detach().to(torch.float64))
            counts = {"n_unsafe": int(unsafe.sum())}
        dist = (out.detach() - actions.detach()).norm(dim=-1)
        return out, SafeguardInfo(
            intervened=dist > INTERVENTION_TOL, distance=dist, n_outside=ch.n_outside, unsafe=unsafe, **counts
        )

    def _solve(self, actions: Tensor, ch: "Chunk") -> Tensor:
        """The map on one prepared chunk: ``[B, m]`` in the dtype of ``actions``.

        Differentiable in ``actions`` and (through ``ch``) in the states iff ``ch.grad``.
        Default: :meth:`_map` on the local rows (no gradient to the states).
        """
        return self._map(actions.to(torch.float64), ch.G, ch.h, ch.tol64).to(actions.dtype)

    def _verify(self, ch: "Chunk", a: Tensor) -> Tensor:
        """[B] bool: ``a`` (float64) in U and ``(A B(x) a)_i - rhs_i <= -margin`` on every local facet row.

        The other facets hold with slack ``> margin`` for every action in U (:meth:`_prepare`), so
        this is the float64 check of all facets (:func:`~reachsafe.safeguards.safetynet.verify`).
        """
        lo, hi = self._cast(self.a_lo, a), self._cast(self.a_hi, a)
        return verify(ch.G[:, :ch.K], ch.rhs, a, lo, hi, self.margin)

    def _safety_net(self, out: Tensor, ch: "Chunk") -> tuple[Tensor, dict[str, int], Tensor]:
        ok = self._verify(ch, out.detach().to(torch.float64))
        counts = {"n_fallback": 0, "n_empty": 0, "n_unsafe": 0}
        unsafe = torch.zeros_like(ok)
        if bool(ok.all()):
            return out, counts, unsafe
        with torch.no_grad():
            f = (~ok).nonzero().squeeze(-1)
            lo64, hi64 = self._cast(self.a_lo, ch.G), self._cast(self.a_hi, ch.G)
            # float64 centre of S(x) (tightened), from the local rows, which describe it exactly
            cand, empty = centre_of(ch.G[f], ch.h[f], ch.tol64)
            cand = cand.to(out.dtype).to(torch.float64)
            if bool(empty.any()):
                outside = ch.outside[f]
                if self.empty == "raise" and bool((empty & ~outside).any()):
                    raise UserError(f"S(x) is empty for {int((empty & ~outside).sum())} states inside the set "
                                    f"{self.set_description}: the set is not invariant there (no action keeps "
                                    "x+ in P for all noise); use a certified set, or pass empty='fallback'")
                e = f[empty]
                ce = ch.c.detach()[e]
                cols, rhs_e, _ = self._facet_pass(ce, ch.Bx.detach()[e], ch.E.detach()[e])
                k = self.n_facets
                AB = torch.stack([col[:, :k] if col.dim() == 2 else col[:k].expand(len(e), -1) for col in cols], -1)
                rhs = rhs_e[:, :k]
                ABe, rhse = relevant_rows(AB, rhs, lo64, hi64, -ch.tol64.tighten)
                a_mm, _ = minmax_action(ABe, rhse, lo64, hi64, ch.tol64)
                cand[empty] = a_mm.to(out.dtype).to(torch.float64)
                if not self._warned_empty and bool((empty & ~outside).any()):
                    warnings.warn(f"safeguard: S(x) is empty for some states of {self.set_description} (the set is "
                                  "not invariant there); returning min-max-violation actions (see info.n_empty)",
                                  RuntimeWarning, stacklevel=4)
                    self._warned_empty = True
            okc = verify(ch.G[f, :ch.K], ch.rhs[f], cand, lo64, hi64, self.margin)
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
        if math.isfinite(float(states.detach().sum())):  # NaN and inf propagate into the sum: one cheap test
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
            raise UserError(
                f"states and actions must have the same batch size, got {states.shape[0]} and {actions.shape[0]}"
            )
        if actions.dtype not in (torch.float32, torch.float64):
            raise UserError(f"actions must be float32 or float64, got {actions.dtype}")
        if actions.device != states.device:
            raise UserError(f"states ({states.device}) and actions ({actions.device}) must be on the same device")
        if math.isfinite(float(actions.detach().sum())):
            return
        bad = ~torch.isfinite(actions).all(-1)
        if bool(bad.any()):
            raise UserError(f"actions contain NaN or inf ({int(bad.sum())} rows, first row {int(bad.nonzero()[0])}); "
                            "the policy produced non-finite outputs")
