"""Compile a :class:`~reachsafe.systems.definition.SystemDefinition` into batched callables.

From the symbolic step ``f(x, a, w)`` this module derives, once per process:

* the affine split (exact, checked symbolically)::

      x+ = c(x) + B(x) a + E(x) w,   c = f(x, 0, 0),  B = df/da,  E = df/dw,

  refusing a model that is not affine in ``(a, w)`` with the offending term named;
* batched numpy and torch callables for ``f``, ``c``, ``B``, ``E``, the Jacobians
  ``df/dx, df/da, df/dw``, the reward and the observation (torch ones are differentiable
  and run on any device/dtype);
* rigorous interval enclosures of ``c``, ``B``, ``E`` over boxes of states
  (:mod:`reachsafe.systems.intervals`);
* the model fingerprint.

Every function takes arrays with a leading batch shape ``[..., n]`` and dispatches on
the input type: ``torch.Tensor`` in, ``torch.Tensor`` out; anything else is numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp

from .definition import ModelError, SystemDefinition
from .intervals import enclose, number_interval

__all__ = ["CompiledSystem", "AffineEnclosure"]

_TORCH_FUNCS = {
    "sin": "sin", "cos": "cos", "tan": "tan", "exp": "exp", "log": "log", "sqrt": "sqrt",
    "Abs": "abs", "tanh": "tanh", "atan2": "atan2", "sign": "sign", "atan": "atan", "sinh": "sinh",
    "cosh": "cosh", "asinh": "asinh",
}


def _lambdify(args: Sequence[sp.Symbol], exprs: Sequence[sp.Expr], backend: str) -> Callable:
    if backend == "numpy":
        np_mod = {"sqrt": lambda u: np.sqrt(np.maximum(u, 1e-30))}
        return sp.lambdify(list(args), list(exprs), modules=[np_mod, "numpy"], cse=True)
    import torch  # lazy: torch; `import reachsafe` stays torch-free

    mod: dict[str, Any] = {k: getattr(torch, v) for k, v in _TORCH_FUNCS.items()}
    mod["pi"] = math.pi
    # sqrt(u) with u clamped at 1e-30: finite value and zero gradient at u = 0 (a distance
    # to a goal the agent starts on), instead of the NaN of d sqrt(u)/du * 0.
    mod["sqrt"] = lambda u: (torch.sqrt(torch.clamp(u, min=1e-30)) if isinstance(u, torch.Tensor)
                             else math.sqrt(max(float(u), 1e-30)))
    return sp.lambdify(list(args), list(exprs), modules=[mod, "math"], cse=True)


class _Batched:
    """``k`` expressions in ``args`` evaluated on batches, stacked on the last axis.

    Each group of arguments is passed as one array ``[..., len(group)]``; the result has
    shape ``[..., *shape]`` (``shape`` defaults to ``(k,)``).

    Expressions without free symbols (the zeros and constants that fill most of ``B``
    and ``E``) are not evaluated per call: only the ``q`` varying ones are lambdified
    (with common subexpressions shared), stacked into ``[..., q]`` and placed into their
    columns, and the constant entries are added from a cached vector (exactly: each
    column receives either its value or ``+ 0``).
    """

    def __init__(
        self,
        groups: Sequence[Sequence[sp.Symbol]],
        exprs: Sequence[sp.Expr],
        shape: tuple[int, ...] | None = None,
        vjp: bool = False,
    ):
        self.groups = [list(g) for g in groups]
        self.vjp = bool(vjp) and len(self.groups) == 1
        self.exprs = [sp.sympify(e) for e in exprs]
        self.shape = shape if shape is not None else (len(self.exprs),)
        self.k = len(self.exprs)
        self.varying = [i for i, e in enumerate(self.exprs) if e.free_symbols]
        self.constants = np.zeros(self.k)
        for i, e in enumerate(self.exprs):
            if not e.free_symbols:
                self.constants[i] = float(e)
        self._has_constants = bool(np.any(self.constants != 0.0))
        self._fns: dict[str, Any] = {}  # lambdified callables per backend, and the "lin" split
        self._torch_cache: dict[Any, Any] = {}

    def _fn(self, backend: str) -> Callable:
        if backend not in self._fns:
            flat = [s for g in self.groups for s in g]
            self._fns[backend] = _lambdify(flat, [self.exprs[i] for i in self.varying], backend)
        return self._fns[backend]

    def _placement(self, dtype: Any, device: Any) -> Any:
        """``P [q, k]`` with ``P[j, varying[j]] = 1``: ``var @ P`` puts the varying columns in their places (exact)."""
        key = ("placement", dtype, device)
        if key not in self._torch_cache:
            import torch  # lazy: torch; `import reachsafe` stays torch-free

            P = torch.zeros(len(self.varying), self.k, dtype=dtype, device=device)
            P[torch.arange(len(self.varying), device=device), torch.tensor(self.varying, device=device)] = 1.0
            self._torch_cache[key] = P
        return self._torch_cache[key]

    def _linear_in_atoms(self) -> dict:
        """The expressions (of one argument group x) as ``out = c0 + x L + a(x) N``, exactly in symbols.

        Each expression is expanded into terms ``coefficient * monomial``; monomials that are an
        argument itself go to ``L [n, k]``, the other distinct monomials (``sin(phi)``, ``x1 x2``, ...) are
        the atoms ``a(x) [..., T]`` with coefficients ``N [T, k]``, constants to ``c0 [k]``.  Evaluation is
        then the T atoms and two matrix products (the quadrotor's 30 entries: ``sin``, ``cos`` and two
        products instead of 26 operations), and the vector-Jacobian product is
        ``g L^T + (g N^T) da/dx`` with the atoms' symbolic derivatives.
        """
        if "lin" not in self._fns:
            xs = self.groups[0]
            n, k = len(xs), self.k
            index = {x: i for i, x in enumerate(xs)}
            c0, L = np.zeros(k), np.zeros((n, k))
            atoms: list[sp.Expr] = []
            rows: list[np.ndarray] = []
            for j, e in enumerate(self.exprs):
                for term in sp.Add.make_args(sp.expand(e)):
                    coeff, mono = term.as_independent(*xs, as_Add=False)  # sqrt(2) x -> (sqrt(2), x)
                    if not mono.free_symbols:
                        c0[j] += float(coeff * mono)
                    elif mono in index:
                        L[index[mono], j] += float(coeff)
                    else:
                        if mono not in atoms:
                            atoms.append(mono)
                            rows.append(np.zeros(k))
                        rows[atoms.index(mono)][j] += float(coeff)
            N = np.stack(rows) if rows else np.zeros((0, k))
            gs = [sp.Dummy(f"g{t}") for t in range(len(atoms))]
            dep = [i for i, x in enumerate(xs) if any(x in a.free_symbols for a in atoms)]
            self._fns["lin"] = dict(
                c0=c0,
                L=L,
                N=N,
                dep=dep,
                atoms=_lambdify(xs, atoms, "torch") if atoms else None,
                datoms=_lambdify(
                    list(xs) + gs, [sp.Add(*[g * sp.diff(a, xs[i]) for g, a in zip(gs, atoms)]) for i in dep], "torch"
                )
                if atoms
                else None,
            )
        return self._fns["lin"]

    def _lin_tensors(self, dtype: Any, device: Any) -> tuple[Any, Any, Any]:
        key = ("lin", dtype, device)
        if key not in self._torch_cache:
            import torch  # lazy: torch; `import reachsafe` stays torch-free

            lin = self._linear_in_atoms()
            self._torch_cache[key] = tuple(
                torch.tensor(lin[name], dtype=dtype, device=device) for name in ("c0", "L", "N")
            )
        return self._torch_cache[key]

    def _torch_linear(self, x: Any) -> Any:
        """Forward of :meth:`_linear_in_atoms` for ``x [B, n]`` (torch), ``[B, k]``."""
        import torch  # lazy: torch; `import reachsafe` stays torch-free

        lin = self._linear_in_atoms()
        c0, L, N = self._lin_tensors(x.dtype, x.device)
        out = torch.addmm(c0, x, L)
        if lin["atoms"] is not None:
            B = x.shape[0]
            vals = [v if isinstance(v, torch.Tensor) and v.shape == (B,) else torch.as_tensor(v, dtype=x.dtype,
                    device=x.device).expand(B) for v in lin["atoms"](*x.unbind(-1))]
            out = out.addmm_(torch.stack(vals, -1), N)
        return out

    def _torch_linear_vjp(self, x: Any, g: Any) -> Any:
        """``dL/dx`` for ``g = dL/dout`` ``[B, k]`` (see :meth:`_linear_in_atoms`)."""
        import torch  # lazy: torch; `import reachsafe` stays torch-free

        lin = self._linear_in_atoms()
        _, L, N = self._lin_tensors(x.dtype, x.device)
        gx = g @ L.T
        if lin["atoms"] is not None:
            B = x.shape[0]
            ga = g @ N.T
            vals = lin["datoms"](*x.unbind(-1), *ga.unbind(-1))
            cols = [v if isinstance(v, torch.Tensor) and v.shape == (B,) else torch.as_tensor(v, dtype=x.dtype,
                    device=x.device).expand(B) for v in vals]
            gx = gx.index_add_(1, torch.tensor(lin["dep"], device=x.device), torch.stack(cols, -1))
        return gx

    def _torch_consts(self, dtype: Any, device: Any) -> tuple[Any, Any]:
        """Cached ``(constant vector [k], index of the varying columns [q])`` for a dtype/device."""
        key = (dtype, device)
        if key not in self._torch_cache:
            import torch  # lazy: torch; `import reachsafe` stays torch-free

            self._torch_cache[key] = (torch.tensor(self.constants, dtype=dtype, device=device),
                                      torch.tensor(self.varying, dtype=torch.long, device=device))
        return self._torch_cache[key]

    def __call__(self, *arrays: Any) -> Any:
        if len(arrays) != len(self.groups):
            raise TypeError(f"expected {len(self.groups)} array arguments, got {len(arrays)}")
        is_torch = any(type(a).__module__.startswith("torch") for a in arrays)
        if is_torch:
            import torch  # lazy: torch; `import reachsafe` stays torch-free

            ref = next(a for a in arrays if isinstance(a, torch.Tensor))
            if self.vjp and ref.dim() == 2 and len(self.shape) == 1:
                if ref.requires_grad and torch.is_grad_enabled():
                    return _BatchedVJP.apply(ref, self)
                return self._torch_linear(ref)
            if len(arrays) == 1:  # the common case (c, B, E of a state batch): no conversion needed
                batch = ref.shape[:-1]
            else:
                arrays = [torch.as_tensor(a, dtype=ref.dtype, device=ref.device) for a in arrays]  # type: ignore[assignment]
                batch = torch.broadcast_shapes(*[a.shape[:-1] for a in arrays])
            const, idx = self._torch_consts(ref.dtype, ref.device)
            if not self.varying:
                return const.expand(*batch, self.k).clone().reshape(*batch, *self.shape)
            # unbind: one autograd node for all columns instead of one per column
            cols = [c for a, g in zip(arrays, self.groups) if len(g) for c in a.unbind(-1)[:len(g)]]
            vals = [v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=ref.dtype, device=ref.device)
                    for v in self._fn("torch")(*cols)]
            var = torch.stack([v.expand(batch) if v.shape != batch else v for v in vals], dim=-1)
            if len(self.varying) == self.k:
                out = var
            elif len(batch) == 1:  # constants plus the varying columns in their places, one matrix product
                out = torch.addmm(const, var, self._placement(ref.dtype, ref.device))
            else:
                out = var.new_zeros(*batch, self.k).index_copy(-1, idx, var)
                if self._has_constants:
                    out = out + const
            return out.reshape(*batch, *self.shape)
        arrays = [np.asarray(a, dtype=np.float64) for a in arrays]  # type: ignore[assignment]
        batch = np.broadcast_shapes(  # type: ignore[assignment]
            *[a.shape[:-1] for a in arrays])
        out = np.broadcast_to(self.constants, (*batch, self.k)).copy()
        if self.varying:
            cols = [a[..., i] for a, g in zip(arrays, self.groups) for i in range(len(g))]
            vals = self._fn("numpy")(*cols)
            out[..., self.varying] = np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), batch) for v in vals],
                                              axis=-1)
        return out.reshape(*batch, *self.shape)


def _make_vjp_function() -> Any:
    import torch  # lazy: torch; `import reachsafe` stays torch-free

    class _BatchedVJPFn(torch.autograd.Function):
        """``_Batched`` of one argument ``x [B, n]`` with its closed-form vector-Jacobian product
        (:meth:`_Batched._linear_in_atoms`)."""

        @staticmethod
        def forward(ctx: Any, x: Any, batched: "_Batched") -> Any:
            ctx.save_for_backward(x)
            ctx.batched = batched
            with torch.no_grad():
                return batched._torch_linear(x.detach())

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx: Any, g: Any) -> tuple[Any, None]:
            (x,) = ctx.saved_tensors
            return ctx.batched._torch_linear_vjp(x, g), None

    return _BatchedVJPFn


class _LazyVJP:
    """The autograd Function of :class:`_Batched` with ``vjp=True``, built on first use (torch imported lazily)."""

    _fn: Any = None

    @classmethod
    def apply(cls, x: Any, batched: "_Batched") -> Any:
        if cls._fn is None:
            cls._fn = _make_vjp_function()
        return cls._fn.apply(x, batched)


_BatchedVJP = _LazyVJP


@dataclass(frozen=True)
class AffineEnclosure:
    """Rigorous bounds of ``c``, ``B``, ``E`` over a batch of N state boxes.

    ``c_lo <= c(x) <= c_hi`` ([N, n]), ``B_lo <= B(x) <= B_hi`` ([N, n, m]) and
    ``E_lo <= E(x) <= E_hi`` ([N, n, p]) elementwise, for every real ``x`` in the box.
    """

    c_lo: np.ndarray
    c_hi: np.ndarray
    B_lo: np.ndarray
    B_hi: np.ndarray
    E_lo: np.ndarray
    E_hi: np.ndarray


class CompiledSystem:
    """Numeric face of a symbolic system (see module docstring).

    :param definition: the symbolic model.
    """

    def __init__(self, definition: SystemDefinition):
        self.definition = definition
        d = definition
        self.name = d.name
        self.n, self.m, self.p = d.n, d.m, d.p
        self.dt = float(d.dt)
        x, a, w, ctx = list(d.state), list(d.action), list(d.noise), list(d.context)
        self._x, self._a, self._w, self._ctx = x, a, w, ctx

        f = [sp.expand(e) for e in d.step_exprs()]
        zero = {s: 0 for s in a + w}
        c = [sp.expand(e.xreplace(zero)) for e in f]
        B = sp.Matrix(f).jacobian(a).applyfunc(sp.expand)
        E = sp.Matrix(f).jacobian(w).applyfunc(sp.expand) if w else sp.zeros(len(f), 0)
        self._check_affine(f, c, B, E)
        self.f_exprs, self.c_exprs = f, c
        self.B_exprs, self.E_exprs = B, E
        self.reward_expr = d.substituted(d.reward)
        self.observation_exprs = [d.substituted(e) for e in d.observation]

        n, m, p = self.n, self.m, self.p
        self._step = _Batched([x, a, w], f)
        # one pass, shared subexpressions; its gradient in closed form (one node, see _Batched._linear_in_atoms)
        self._cBE = _Batched([x], list(c) + list(B) + list(E), vjp=True)
        Fm = sp.Matrix(f)
        self._dfdx = _Batched([x, a, w], list(Fm.jacobian(x)), (n, n))
        self._dfda = _Batched([x, a, w], list(B), (n, m))
        self._dfdw = _Batched([x, a, w], list(E), (n, p))
        self._reward = _Batched([x, a, ctx] if ctx else [x, a], [self.reward_expr], ())
        self._obs = _Batched([x, ctx] if ctx else [x], self.observation_exprs)

        self.constraint_lo = np.array([float(v) for v in d.constraint_lo])
        self.constraint_hi = np.array([float(v) for v in d.constraint_hi])
        self.noise_lo = np.array([float(v) for v in d.noise_lo])
        self.noise_hi = np.array([float(v) for v in d.noise_hi])
        self.action_lo = -np.ones(m)
        self.action_hi = np.ones(m)
        self.wrap = {int(i): (float(lo), float(per)) for i, (lo, per) in d.wrap.items()}

    # ----------------------------------------------------------------- checks
    def _check_affine(self, f: list, c: list, B: sp.Matrix, E: sp.Matrix) -> None:
        a_w = set(self._a) | set(self._w)
        for i in range(len(f)):
            for j in range(B.shape[1]):
                bad = B[i, j].free_symbols & a_w
                if bad:
                    raise ModelError(
                        f"system {self.definition.name!r}: step[{i}] is not affine in the action: "
                        f"d/d{self._a[j]} = {B[i, j]} still depends on {sorted(map(str, bad))}"
                    )
            for j in range(E.shape[1]):
                bad = E[i, j].free_symbols & a_w
                if bad:
                    raise ModelError(
                        f"system {self.definition.name!r}: step[{i}] is not affine in the noise: "
                        f"d/d{self._w[j]} = {E[i, j]} still depends on {sorted(map(str, bad))}"
                    )
            recon = c[i] + sum(B[i, j] * self._a[j] for j in range(B.shape[1])) + sum(
                E[i, j] * self._w[j] for j in range(E.shape[1])
            )
            if sp.expand(f[i] - recon) != 0:
                raise ModelError(
                    f"system {self.definition.name!r}: step[{i}] = c + B a + E w does not hold exactly "
                    f"(residual {sp.expand(f[i] - recon)})"
                )

    # ------------------------------------------------------------- metadata
    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the canonical symbolic model (see :meth:`SystemDefinition.fingerprint`)."""
        return self.definition.fingerprint()

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.definition.state_names or tuple(str(s) for s in self._x)

    def constraint_box_inner(self) -> tuple[np.ndarray, np.ndarray]:
        """Doubles ``lo >= X_lo``, ``hi <= X_hi`` (rounded inward): the box they span lies in the exact X."""
        iv = [number_interval(v) for v in self.definition.constraint_lo]
        jv = [number_interval(v) for v in self.definition.constraint_hi]
        return np.array([i[1] for i in iv]), np.array([j[0] for j in jv])

    def noise_box_outer(self) -> tuple[np.ndarray, np.ndarray]:
        """Doubles ``lo <= W_lo``, ``hi >= W_hi`` (rounded outward): the box they span contains the exact W."""
        iv = [number_interval(v) for v in self.definition.noise_lo]
        jv = [number_interval(v) for v in self.definition.noise_hi]
        return np.array([i[0] for i in iv]), np.array([j[1] for j in jv])

    # ----------------------------------------------------------- simulation
    def step_unwrapped(self, x: Any, a: Any, w: Any) -> Any:
        """``f(x, a, w)`` without angle wrapping: the map every proof is about."""
        return self._step(x, a, w)

    def wrap_state(self, x: Any) -> Any:
        """Map wrapped coordinates into ``(lo, lo + period]`` (identity for others).

        ``y = hi - ((hi - x) mod period)`` with ``hi = lo + period``, applied only where
        ``x`` lies outside ``(lo, hi]`` so that coordinates already in range are returned
        bit for bit (the modulo would move them by an ulp); the gradient is 1.
        """
        if not self.wrap:
            return x
        if type(x).__module__.startswith("torch"):
            import torch  # lazy: torch; `import reachsafe` stays torch-free

            cols = list(torch.unbind(x, dim=-1))
            for i, (lo, per) in self.wrap.items():
                hi = lo + per
                v = cols[i]
                cols[i] = torch.where((v > hi) | (v <= lo), hi - torch.remainder(hi - v, per), v)
            return torch.stack(cols, dim=-1)
        x = np.array(x, dtype=np.float64, copy=True)
        for i, (lo, per) in self.wrap.items():
            hi = lo + per
            v = x[..., i]
            x[..., i] = np.where((v > hi) | (v <= lo), hi - np.mod(hi - v, per), v)
        return x

    def step(self, x: Any, a: Any, w: Any) -> Any:
        """One simulator step ``x+ = wrap(f(x, a, w))``.

        For the pendulum, wrapping changes nothing for a successor that stays inside X
        (``|theta| <= 2.7 < pi``), so on a certified set ``step == step_unwrapped``.
        """
        return self.wrap_state(self._step(x, a, w))

    def affine(self, x: Any) -> tuple[Any, Any, Any]:
        """``(c(x), B(x), E(x))`` with ``f(x, a, w) = c + B a + E w`` exactly; shapes [..., n], [..., n, m], [..., n,
        p]."""
        return self.split_affine(self._cBE(x))

    def affine_flat(self, x: Any) -> Any:
        """``[c(x), B(x), E(x)]`` flattened into one array ``[..., n + n m + n p]`` (B and E row-major).

        For torch inputs ``[B, n]`` it is evaluated as constants, a linear part and the model's
        nonlinear atoms (:meth:`_Batched._linear_in_atoms`); when they require a gradient it is one
        autograd node whose backward is the closed-form vector-Jacobian product; split it with
        :meth:`split_affine`.
        """
        return self._cBE(x)

    def split_affine(self, cBE: Any) -> tuple[Any, Any, Any]:
        """Views ``(c, B, E)`` of an :meth:`affine_flat` array."""
        n, m, p = self.n, self.m, self.p
        batch = cBE.shape[:-1]
        return (cBE[..., :n], cBE[..., n:n + n * m].reshape(*batch, n, m),
                cBE[..., n + n * m:].reshape(*batch, n, p))

    def jacobians(self, x: Any, a: Any, w: Any) -> tuple[Any, Any, Any]:
        """``(df/dx, df/da, df/dw)`` at ``(x, a, w)``; shapes [..., n, n], [..., n, m], [..., n, p]."""
        return self._dfdx(x, a, w), self._dfda(x, a, w), self._dfdw(x, a, w)

    def reward(self, x: Any, a: Any, context: Any = None) -> Any:
        """Reward ``r(x, a[, g])``, shape [...]."""
        if self._ctx:
            if context is None:
                raise ValueError(f"system {self.name!r}: reward needs the context {[str(s) for s in self._ctx]}")
            return self._reward(x, a, context)
        return self._reward(x, a)

    def observation(self, x: Any, context: Any = None) -> Any:
        """Observation ``o(x[, g])``, shape [..., k]."""
        if self._ctx:
            if context is None:
                raise ValueError(f"system {self.name!r}: observation needs the context {[str(s) for s in self._ctx]}")
            return self._obs(x, context)
        return self._obs(x)

    def context_from_state(self, x0: Any) -> Any:
        """Episode context from the initial state (``goal = initial position``); None if the system has none."""
        if not self._ctx:
            return None
        idx = list(self.definition.context_from_state)
        return x0[..., idx]

    @property
    def observation_dim(self) -> int:
        return len(self.observation_exprs)

    # ------------------------------------------------------------- intervals
    def enclose(self, lo: np.ndarray, hi: np.ndarray, mean_value: bool = True) -> AffineEnclosure:
        """Rigorous enclosures of ``c``, ``B``, ``E`` over each state box ``[lo_k, hi_k]`` ([N, n])."""
        lo = np.atleast_2d(np.asarray(lo, dtype=np.float64))
        hi = np.atleast_2d(np.asarray(hi, dtype=np.float64))
        N, n, m, p = lo.shape[0], self.n, self.m, self.p
        exprs = list(self.c_exprs) + list(self.B_exprs) + list(self.E_exprs)
        elo, ehi = enclose(exprs, self._x, lo, hi, mean_value=mean_value)
        k1, k2 = n, n + n * m
        return AffineEnclosure(
            c_lo=elo[:, :k1], c_hi=ehi[:, :k1],
            B_lo=elo[:, k1:k2].reshape(N, n, m), B_hi=ehi[:, k1:k2].reshape(N, n, m),
            E_lo=elo[:, k2:].reshape(N, n, p), E_hi=ehi[:, k2:].reshape(N, n, p),
        )

    def __repr__(self) -> str:
        return f"CompiledSystem({self.name!r}, n={self.n}, m={self.m}, p={self.p})"
