"""Structure from the symbolic model: split a system into weakly coupled parts.

At an operating point ``(x_e, a_e)`` (an equilibrium inside X, or the box centre) the
linearisation ``M = df/dx``, ``B = df/da`` defines a graph on the state coordinates and the
actions: ``x_i - x_j`` when ``M_ij != 0`` (``i != j``) and ``x_i - a_j`` when ``B_ij != 0``.  When
this graph falls into two or more connected components and each has an action, the
system is split along them.  For the planar quadrotor at hover the thrust drives only
``(pz, vz)`` and the roll command only ``(px, vx, phi, phi_dot)``: the tilt enters ``vz`` and the
thrust enters ``vx`` only through terms that vanish at hover.

Each part keeps its own rows of the step ``f``, with what comes from outside turned into
bounded noise, so that each part is a control-affine system of its own:

* an **action of another part** becomes a noise symbol with range ``[-1, 1]`` (exact: ``f`` is
  affine in the actions, and the other part may choose any admissible value);
* a **state of another part** is frozen at ``x_e`` and the difference
  ``nu_i = f_i(x) - f_i(x)|_{x_ext = x_e}`` becomes an additive noise bounded over the
  box ``X x U x W`` by interval arithmetic (:func:`reachsafe.systems.intervals.evaluate`);
  rows whose differences are constant multiples of one another share one noise symbol
  (``pz+ = pz + dt vz+`` carries ``dt`` times the tilt term of ``vz+``).

If ``P_k`` is robust control invariant for part ``k`` then the product ``P = P_1 x ... x P_K``
(rows embedded in the full coordinates) is robust control invariant for the full model:
at ``x in P`` each part's action keeps its coordinates in ``P_k`` for every value of the
other parts' states (which stay in X, since every ``P_k`` lies in its X) and actions.  The
product is still handed to the independent certifier, which proves it on the full model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from reachsafe.systems import CompiledSystem
from reachsafe.systems.definition import SystemDefinition, symbols
from reachsafe.systems.intervals import evaluate

from .linear_mas import find_equilibrium
from .scaling import ScaledSystem

__all__ = ["Part", "decompose", "operating_point", "embed"]

TOL = 1e-9  # relative size below which a Jacobian entry counts as zero


@dataclass
class Part:
    """One factor of the product: a system over the coordinates ``idx`` of the full state."""

    system: CompiledSystem
    idx: tuple[int, ...]
    actions: tuple[int, ...]
    coupling: list[dict] = field(default_factory=list)  # what became noise, for the set file's provenance


def operating_point(system: CompiledSystem) -> tuple[np.ndarray, np.ndarray]:
    """An equilibrium ``f(x_e, a_e, w_c) = x_e`` near the box centre, else the centre with ``a = 0``."""

    z = ScaledSystem(system)
    eq = find_equilibrium(z)
    if eq is None:
        return z.x_center.copy(), np.zeros(system.m)
    return z.to_x(eq[0]), eq[1]


def _components(M: np.ndarray, B: np.ndarray) -> list[tuple[list[int], list[int]]]:
    """Connected components of the state/action graph: [(states, actions)]."""
    n, m = B.shape
    parent = list(range(n + m))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    sm = np.abs(M - np.diag(np.diag(M)))
    for i, j in zip(*np.nonzero(sm > TOL * max(1.0, sm.max()))):
        union(int(i), int(j))
    sb = np.abs(B)
    for i, j in zip(*np.nonzero(sb > TOL * max(1.0, sb.max()))):
        union(int(i), n + int(j))
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for k in range(n + m):
        g = groups.setdefault(find(k), ([], []))
        (g[0] if k < n else g[1]).append(k if k < n else k - n)
    return sorted(groups.values(), key=lambda g: min(g[0]) if g[0] else n + min(g[1]))


def _exact(v: float, lo, hi) -> sp.Expr:
    """``v`` as an exact number: the box centre when ``v`` is it up to rounding, else its double."""
    c = (sp.sympify(lo) + sp.sympify(hi)) / 2
    if abs(v - float(c)) <= 1e-9 * (1.0 + float(sp.sympify(hi) - sp.sympify(lo))):
        return c
    return sp.Rational(float(v))


def _box_env(d: SystemDefinition, syms: list[sp.Symbol], lo: list, hi: list) -> dict:
    return {s: (np.atleast_1d(np.float64(float(l))), np.atleast_1d(np.float64(float(h))))
            for s, l, h in zip(syms, lo, hi)}


def _bound(expr: sp.Expr, env: dict, splits: int = 4) -> tuple[float, float]:
    """Rigorous bounds of ``expr`` over the box ``env``: the factored form, evaluated on a grid of
    ``splits`` sub-intervals per variable (at most 4096 sub-boxes), union of the results."""
    e = sp.factor(expr)
    syms = sorted(e.free_symbols, key=str)
    k = splits if splits ** len(syms) <= 4096 else 1
    grids = []
    for s in syms:
        lo, hi = float(env[s][0][0]), float(env[s][1][0])
        edges = np.linspace(lo, hi, k + 1)
        edges[0], edges[-1] = lo, hi
        grids.append((edges[:-1], edges[1:]))
    mesh_lo = np.meshgrid(*[g[0] for g in grids], indexing="ij")
    mesh_hi = np.meshgrid(*[g[1] for g in grids], indexing="ij")
    sub = {s: (ml.ravel(), mh.ravel()) for s, ml, mh in zip(syms, mesh_lo, mesh_hi)}
    lo, hi = evaluate(e, sub)
    return float(np.min(lo)), float(np.max(hi))


def decompose(system: CompiledSystem) -> list[Part] | None:
    """The parts of ``system`` (see module docstring), or None when it does not split."""
    d = system.definition
    x_e, a_e = operating_point(system)
    w_c = 0.5 * (system.noise_lo + system.noise_hi)
    Jx, Ja, _ = system.jacobians(x_e[None], a_e[None], w_c[None])
    comps = _components(Jx[0], Ja[0])
    if len(comps) < 2 or any(not s or not a for s, a in comps):
        return None
    f = d.step_exprs()
    X, U, Wn = list(d.state), list(d.action), list(d.noise)
    env_all = _box_env(d, X, d.constraint_lo, d.constraint_hi)
    env_all.update(_box_env(d, U, [-1] * len(U), [1] * len(U)))
    env_all.update(_box_env(d, Wn, d.noise_lo, d.noise_hi))
    parts: list[Part] = []
    for k, (sidx, aidx) in enumerate(comps):
        own_x = [X[i] for i in sidx]
        ext_x = [X[i] for i in range(d.n) if i not in sidx]
        ext_a = [U[j] for j in range(d.m) if j not in aidx]
        freeze = {s: _exact(x_e[X.index(s)], d.constraint_lo[X.index(s)], d.constraint_hi[X.index(s)]) for s in ext_x}
        nu_a = {s: symbols(f"nu_{s}")[0] for s in ext_a}
        rows = [sp.expand(f[i].xreplace(nu_a)) for i in sidx]
        frozen = [sp.expand(r.xreplace(freeze)) for r in rows]
        diffs = [sp.expand(r - fr) for r, fr in zip(rows, frozen)]
        coupling: list[dict] = []
        noise_syms = [w for w in Wn if any(w in r.free_symbols for r in rows)]
        noise_lo = [d.noise_lo[Wn.index(w)] for w in noise_syms]
        noise_hi = [d.noise_hi[Wn.index(w)] for w in noise_syms]
        for s in ext_a:
            if any(nu_a[s] in r.free_symbols for r in rows):
                noise_syms.append(nu_a[s])
                noise_lo.append(sp.Integer(-1))
                noise_hi.append(sp.Integer(1))
                coupling.append({"kind": "action", "symbol": str(s), "range": [-1.0, 1.0]})
        env = dict(env_all)
        env.update({nu_a[s]: env_all[s] for s in ext_a})
        new_rows = list(frozen)
        done = [False] * len(rows)
        for i, di in enumerate(diffs):
            if di == 0 or done[i]:
                continue
            # rows whose difference is a constant multiple of this one share its noise symbol
            group = [(i, sp.Integer(1))]
            for j in range(i + 1, len(rows)):
                if diffs[j] != 0 and not done[j]:
                    ratio = sp.simplify(diffs[j] / di)
                    if ratio.is_number:
                        group.append((j, ratio))
            lo_f, hi_f = _bound(di, env)
            if not (np.isfinite(lo_f) and np.isfinite(hi_f)):
                return None
            nu = symbols(f"nu_{X[sidx[i]]}_coupling")[0]
            for j, ratio in group:
                new_rows[j] = sp.expand(new_rows[j] + ratio * nu)
                done[j] = True
            noise_syms.append(nu)
            noise_lo.append(sp.Rational(lo_f))
            noise_hi.append(sp.Rational(hi_f))
            coupling.append({"kind": "state", "rows": [str(X[sidx[j]]) for j, _ in group],
                             "depends_on": sorted(str(s) for s in di.free_symbols & set(ext_x)),
                             "range": [lo_f, hi_f]})
        part_def = SystemDefinition(
            name=f"{d.name}[part {k}]", description=f"{d.name}: coordinates {[str(s) for s in own_x]}",
            state=tuple(own_x), action=tuple(U[j] for j in aidx), noise=tuple(noise_syms), step=tuple(new_rows),
            params={}, constraint_lo=tuple(d.constraint_lo[i] for i in sidx),
            constraint_hi=tuple(d.constraint_hi[i] for i in sidx), noise_lo=tuple(noise_lo),
            noise_hi=tuple(noise_hi), reward=sp.Integer(0), observation=tuple(own_x), dt=d.dt,
        )
        parts.append(Part(CompiledSystem(part_def), tuple(sidx), tuple(aidx), coupling))
    return parts


def embed(n: int, parts: list[tuple[tuple[int, ...], np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Product polytope: each ``(idx, A_k, b_k)`` constrains the coordinates ``idx`` of R^n."""
    rows, rhs = [], []
    for idx, A_k, b_k in parts:
        M = np.zeros((A_k.shape[0], n))
        M[:, list(idx)] = A_k
        rows.append(M)
        rhs.append(b_k)
    return np.vstack(rows), np.concatenate(rhs)
