"""Symbolic system definitions: the single source of truth for every model.

A system is a discrete-time map

    x+ = f(x, a, w),        x in R^n (state), a in U = [-1, 1]^m (action), w in W (noise box),

written once in sympy.  Every numeric artefact (simulator, Jacobians, affine split,
interval enclosures, reward, observation, model fingerprint) is generated from a
:class:`SystemDefinition` by :mod:`reachsafe.systems.compiled` and
:mod:`reachsafe.systems.intervals`; nothing numeric about a model is written twice.

Parameters are kept as exact sympy numbers (``sympy.Rational``) so that the rigorous
interval code sees their exact values (``g = 981/100``, not the nearest double).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import sympy as sp

from .profile import SystemProfile

__all__ = ["SystemDefinition", "ModelError", "exact"]


class ModelError(ValueError):
    """A symbolic model is malformed (inconsistent symbols, non-affine in (a, w), ...)."""


def exact(value: str | int | float | sp.Expr) -> sp.Expr:
    """Exact sympy number for a parameter: ``exact("9.81") == Rational(981, 100)``.

    Strings are parsed as exact decimals; floats are converted through their shortest
    decimal representation (``repr``), which is what a person typing the number meant.
    """
    if isinstance(value, sp.Expr):
        return value
    if isinstance(value, float):
        value = repr(value)
    return sp.Rational(value) if isinstance(value, str) else sp.Integer(value)


@dataclass(frozen=True)
class SystemDefinition:
    """A dynamical system written once, symbolically.

    :param name: registry name (``pendulum``).
    :param description: one line for ``reachsafe systems``.
    :param state: state symbols ``x`` (n).
    :param action: action symbols ``a`` (m); actions are normalised to ``[-1, 1]^m``.
    :param noise: noise symbols ``w`` (p), bounded by ``noise_lo <= w <= noise_hi``.
    :param step: the successor expressions ``f(x, a, w)`` (n), in the symbols above and
        the parameter symbols.
    :param params: parameter symbol -> exact value (substituted at compile time).
    :param constraint_lo: lower corner of the safety constraint box ``X``.
    :param constraint_hi: upper corner of ``X``.
    :param noise_lo: lower corner of the noise box ``W``.
    :param noise_hi: upper corner of ``W``.
    :param reward: reward ``r(x, a, g)`` (to be maximised), ``g`` the context symbols.
    :param observation: observation expressions ``o(x, g)``.
    :param context: extra symbols the reward/observation depend on (e.g. a goal), never
        the dynamics.
    :param context_from_state: for each context symbol, the state index whose *initial*
        value sets it (``goal = initial position``), or ``None``.
    :param wrap: state index -> (lower end, period): the simulator maps that coordinate
        into ``(lower, lower + period]`` after each step (angles).
    :param dt: integration step [s] (documentation; already inside ``step``).
    :param units: unit of each state coordinate, for plots and tables.
    :param profile: optional defaults of the tools for this model (training budget,
        hyper-parameters, plot pairs; :class:`~reachsafe.systems.profile.SystemProfile`); not part
        of the fingerprint.  None: the generic defaults.
    """

    name: str
    description: str
    state: tuple[sp.Symbol, ...]
    action: tuple[sp.Symbol, ...]
    noise: tuple[sp.Symbol, ...]
    step: tuple[sp.Expr, ...]
    params: Mapping[sp.Symbol, sp.Expr]
    constraint_lo: tuple[sp.Expr, ...]
    constraint_hi: tuple[sp.Expr, ...]
    noise_lo: tuple[sp.Expr, ...]
    noise_hi: tuple[sp.Expr, ...]
    reward: sp.Expr
    observation: tuple[sp.Expr, ...]
    context: tuple[sp.Symbol, ...] = ()
    context_from_state: tuple[int | None, ...] = ()
    wrap: Mapping[int, tuple[sp.Expr, sp.Expr]] = field(default_factory=dict)
    dt: sp.Expr = sp.Rational(1, 20)
    units: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    action_names: tuple[str, ...] = ()
    profile: SystemProfile | None = None

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Refuse inconsistent models with one line naming the offending part."""
        n, m, p = len(self.state), len(self.action), len(self.noise)
        if n == 0 or m == 0:
            raise ModelError(f"system {self.name!r}: needs at least one state and one action symbol")
        if len(self.step) != n:
            raise ModelError(
                f"system {self.name!r}: step has {len(self.step)} expressions but there are {n} state symbols"
            )
        for label, seq, size in (
            ("constraint_lo", self.constraint_lo, n),
            ("constraint_hi", self.constraint_hi, n),
            ("noise_lo", self.noise_lo, p),
            ("noise_hi", self.noise_hi, p),
        ):
            if len(seq) != size:
                raise ModelError(f"system {self.name!r}: {label} has {len(seq)} entries, expected {size}")
        all_syms = list(self.state) + list(self.action) + list(self.noise) + list(self.context)
        if len(set(all_syms)) != len(all_syms):
            raise ModelError(f"system {self.name!r}: state, action, noise and context symbols must be distinct")
        known = set(all_syms) | set(self.params)
        dyn_known = set(self.state) | set(self.action) | set(self.noise) | set(self.params)
        for i, e in enumerate(self.step):
            extra = sp.sympify(e).free_symbols - dyn_known
            if extra:
                raise ModelError(
                    f"system {self.name!r}: step[{i}] uses unknown symbol(s) {sorted(map(str, extra))}; "
                    "declare them as state, action, noise or parameter"
                )
        for label, exprs in (("reward", [self.reward]), ("observation", list(self.observation))):
            for e in exprs:
                extra = sp.sympify(e).free_symbols - known
                if extra:
                    raise ModelError(
                        f"system {self.name!r}: {label} uses unknown symbol(s) {sorted(map(str, extra))}"
                    )
        for lo, hi, label in (
            (self.constraint_lo, self.constraint_hi, "constraint"),
            (self.noise_lo, self.noise_hi, "noise"),
        ):
            for i, (l, h) in enumerate(zip(lo, hi)):
                if not (sp.sympify(l).is_number and sp.sympify(h).is_number):
                    raise ModelError(f"system {self.name!r}: {label} box entry {i} is not a number")
                if not (sp.sympify(l).is_finite and sp.sympify(h).is_finite and sp.sympify(l).is_real
                        and sp.sympify(h).is_real):
                    raise ModelError(f"system {self.name!r}: {label} box entry {i} is not a finite real number; "
                                     f"the {label} box must be bounded")
                if sp.sympify(l) > sp.sympify(h):
                    raise ModelError(f"system {self.name!r}: {label} box entry {i} has lower > upper")
        if self.context and len(self.context_from_state) not in (0, len(self.context)):
            raise ModelError(f"system {self.name!r}: context_from_state must have one entry per context symbol")
        for idx in self.wrap:
            if not 0 <= idx < n:
                raise ModelError(f"system {self.name!r}: wrap index {idx} is not a state index")
        if self.profile is not None:
            self._validate_profile(self.profile)

    def _validate_profile(self, prof: SystemProfile) -> None:
        if not isinstance(prof, SystemProfile):
            raise ModelError(f"system {self.name!r}: profile must be a SystemProfile, got {type(prof).__name__}")
        if isinstance(prof.steps, bool) or not isinstance(prof.steps, int) or prof.steps <= 0:
            raise ModelError(f"system {self.name!r}: profile steps must be a positive integer, got {prof.steps!r}")
        for algo, hp in prof.hyperparameters.items():
            if not isinstance(algo, str) or not isinstance(hp, Mapping):
                raise ModelError(f"system {self.name!r}: profile hyperparameters must map an algorithm name to a "
                                 f"mapping of settings, got {algo!r}: {type(hp).__name__}")
        for pair in prof.plot_pairs:
            if len(pair) != 2 or not all(isinstance(k, int) and 0 <= k < self.n for k in pair):
                raise ModelError(f"system {self.name!r}: profile plot_pairs must be pairs of state indices "
                                 f"0..{self.n - 1}, got {pair!r}")

    # ------------------------------------------------------------ derived data
    @property
    def n(self) -> int:
        return len(self.state)

    @property
    def m(self) -> int:
        return len(self.action)

    @property
    def p(self) -> int:
        return len(self.noise)

    def substituted(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every parameter replaced by its exact value."""
        return sp.sympify(expr).xreplace(dict(self.params))

    def step_exprs(self) -> list[sp.Expr]:
        """``f(x, a, w)`` with parameters substituted, expanded (canonical form)."""
        return [sp.expand(self.substituted(e)) for e in self.step]

    def fingerprint(self) -> str:
        """sha256 of the canonical model: expanded step, reward, observation, boxes, params.

        A certificate holds only for the model it was made for; set files store this value
        and refuse to load under another model.
        """
        payload = {
            "name": self.name,
            "state": [str(s) for s in self.state],
            "action": [str(s) for s in self.action],
            "noise": [str(s) for s in self.noise],
            "context": [str(s) for s in self.context],
            "step": [sp.srepr(e) for e in self.step_exprs()],
            "reward": sp.srepr(sp.expand(self.substituted(self.reward))),
            "observation": [sp.srepr(sp.expand(self.substituted(e))) for e in self.observation],
            "constraint": [
                [sp.srepr(sp.sympify(v)) for v in self.constraint_lo],
                [sp.srepr(sp.sympify(v)) for v in self.constraint_hi],
            ],
            "noise_box": [
                [sp.srepr(sp.sympify(v)) for v in self.noise_lo],
                [sp.srepr(sp.sympify(v)) for v in self.noise_hi],
            ],
            "params": sorted((str(k), sp.srepr(sp.sympify(v))) for k, v in self.params.items()),
            "wrap": sorted(
                (int(k), sp.srepr(sp.sympify(v[0])), sp.srepr(sp.sympify(v[1]))) for k, v in self.wrap.items()
            ),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()


def symbols(names: str | Sequence[str]) -> tuple[sp.Symbol, ...]:
    """Real symbols, always returned as a tuple."""
    out = sp.symbols(names, real=True)
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)
