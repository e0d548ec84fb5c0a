"""Vectorised, differentiable environment generated from the symbolic model (batched torch).

One :class:`SafeEnv` holds ``N`` copies of a system (:func:`reachsafe.systems.get_system`)
and steps them together.  One call of :meth:`SafeEnv.step` does, for policy actions
``a [N, m]`` in ``[-1, 1]^m``::

    a_s  = safeguard(x, a)                 executed action (a_s = a without a safeguard)
    w    ~ W                               noise: uniform in the box W, "adversarial" or "zero"
    x+   = step(x, a_s, w)                 the system's step (angle wrapping included)
    r    = reward(x+, a_s[, goal])         [N], of the successor (as in the paper's code, SafeGBPO)
    o+   = observation(x+[, goal])         [N, k]

Everything from ``a`` to ``r`` and ``x+`` is differentiable torch, so SHAC backpropagates
through the safeguard and the dynamics; the noise is sampled without gradient (it does
not depend on the parameters, except through the adversarial choice of a vertex, which
is piecewise constant).

Adversarial noise (evaluation): for the *executed* action choose, per environment, the
vertex ``w`` of W that pushes hardest towards leaving ``P = {x : A x <= b}``::

    w* = argmax_{w in vert(W)} max_i (A_i f(x, a_s, w) - b_i)      (rows of A normalised)

(``f`` is affine in ``w``, so the worst case over W of each facet is attained at a vertex.)

Counted every step (detached, float64): interventions (the safeguard changed the action,
``|a_s - a| > 1e-6``), successors outside ``P`` (``max_i (A_i x+ - b_i) > violation_tol``)
and successors outside the constraint box X.

Episodes last ``episode_length`` (240) steps; an environment whose episode ends is reset
at once (initial state uniform in ``P``, or in ``P ∩ I`` for an initial set ``I``, or the
paper's ``c + G beta`` for a zonotope ``I``: :class:`InitialStateSampler`), and the step reports the successor's
observation before the reset in ``terminal_obs``.

Device: every tensor of the environment (states, observations, counters' masks, the set's
rows, the noise) lives on ``device`` (CPU by default, or a CUDA device); give it a safeguard
on the same device (``safeguard.to(device)``).  Random numbers are drawn on the CPU (numpy for
initial states, a CPU ``torch.Generator`` for the noise) and then moved, so the streams, the
checkpoints and a resumed run are the same on every device.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor

from reachsafe.errors import UserError
from reachsafe.setfile import SetFile
from reachsafe.sets import ConvexSet, HPolytope, as_hpolytope
from reachsafe.sets.rows import normalize_rows
from reachsafe.systems import CompiledSystem, get_system

__all__ = ["SafeEnv", "EnvStep", "InitialStateSampler", "NOISE_MODES", "INIT_SAMPLING", "polytope_arrays"]

NOISE_MODES = ("uniform", "adversarial", "zero")
INIT_SAMPLING = ("uniform", "zonotope")

SetLike = Union[SetFile, ConvexSet, tuple]


def polytope_arrays(invariant_set: SetLike) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` of a set file, a set (HPolytope, Box, Zonotope) or an ``(A, b)`` pair, rows normalised
    to unit length (float64)."""
    if isinstance(invariant_set, SetFile):
        A, b = invariant_set.A, invariant_set.b
    elif isinstance(invariant_set, (tuple, list)):
        A, b = invariant_set
    else:
        poly = as_hpolytope(invariant_set, also="a SetFile")
        A, b = poly.A, poly.b
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(A, axis=1)
    if np.any(norms == 0):
        raise UserError("the set has a zero row in A; remove it")
    return normalize_rows(A, b)


class InitialStateSampler:
    """I.i.d. initial states in ``P`` (or ``P ∩ I``), drawn in blocks.

    ``mode="uniform"`` (default): uniform in ``P ∩ I`` by rejection from the bounding box.
    ``mode="zonotope"``: the paper's distribution (SafeGBPO), for an initial set given as a
    zonotope ``I = {c + G beta : beta in [-1, 1]^p}``: ``x0 = c + G beta`` with ``beta``
    uniform in the cube, which concentrates states near the centre (not uniform in ``I``);
    samples outside ``P`` are rejected, so every initial state is in the set in use.

    Rejection costs one batch of candidates per call whatever ``N`` is, so samples are
    drawn ``block`` at a time and handed out in order (still i.i.d.).

    :param P: the set in use ``(A, b)``.
    :param init: optional initial set ``(A, b)``; states are drawn in ``P ∩ I``.
    :param rng: numpy generator (the only source of randomness).
    :param zonotope: ``(c [n], G [n, p])`` of the initial set, needed for ``mode="zonotope"``.
    :param mode: ``"uniform"`` or ``"zonotope"``.
    """

    def __init__(self, P: tuple[np.ndarray, np.ndarray], init: Optional[tuple[np.ndarray, np.ndarray]],
                 rng: np.random.Generator, block: int = 256,
                 zonotope: Optional[tuple[np.ndarray, np.ndarray]] = None, mode: str = "uniform"):
        if mode not in INIT_SAMPLING:
            raise UserError(f"unknown initial-state sampling {mode!r}; choose one of {', '.join(INIT_SAMPLING)}")
        if mode == "zonotope" and zonotope is None:
            raise UserError("initial-state sampling 'zonotope' needs an initial set with a zonotope "
                            "(a published set, e.g. --init-set data/published/pendulum.json)")
        self.mode = mode
        self.P = HPolytope(*P)
        poly = self.P
        if init is not None:
            poly = poly.intersect(HPolytope(*init))
        self.polytope = poly
        self.zonotope = None if zonotope is None else (np.asarray(zonotope[0], float), np.asarray(zonotope[1], float))
        self.rng = rng
        self.block = int(block)
        self._buf = np.empty((0, poly.dim))
        try:
            empty = poly.is_empty()
        except Exception:  # pragma: no cover - LP failure
            empty = False
        if empty:
            raise UserError("the initial set does not intersect the set in use: no initial state exists; "
                            "pass an --init-set that overlaps --set")

    def _draw(self, N: int) -> np.ndarray:
        """At least ``N`` new samples of the sampler's distribution."""
        if self.mode == "uniform":
            return self.polytope.sample(N, self.rng)
        c, G = self.zonotope
        out, drawn = [], 0
        got = 0
        while got < N:
            beta = self.rng.uniform(-1.0, 1.0, size=(max(N, 256), G.shape[1]))
            x = c + beta @ G.T
            x = x[self.P.contains(x)]
            out.append(x)
            got += x.shape[0]
            drawn += beta.shape[0]
            if got == 0 and drawn >= 100_000:
                raise ValueError("no zonotope sample of the initial set lies in the set in use (100,000 tried)")
        return np.concatenate(out)

    def clear(self) -> None:
        """Drop buffered samples (after reseeding ``rng``)."""
        self._buf = np.empty((0, self.polytope.dim))

    def __call__(self, N: int) -> np.ndarray:
        """``N`` samples, shape [N, n]."""
        if self._buf.shape[0] < N:
            try:
                new = self._draw(max(self.block, N - self._buf.shape[0]))
            except ValueError as exc:
                raise UserError(f"cannot sample initial states: {exc}") from None
            self._buf = np.concatenate([self._buf, new])
        out, self._buf = self._buf[:N], self._buf[N:]
        return out


@dataclass
class EnvStep:
    """Result of :meth:`SafeEnv.step` (tensors keep their graph unless said otherwise).

    :param obs: [N, k] observation after the step (of the new initial state where ``done``).
    :param reward: [N] ``r(x+, a_s)`` (successor state, executed action).
    :param done: [N] bool, the episode ended (time limit) and the environment was reset.
    :param terminal_obs: [N, k] observation of the successor before any reset.
    :param policy_action: [N, m] the action given to :meth:`step`.
    :param action: [N, m] the executed action (safeguard output).
    :param next_state: [N, n] the successor before any reset.
    :param interventions: number of environments whose action the safeguard changed.
    :param violations_P: successors outside ``P``.
    :param violations_X: successors outside X.
    :param fallbacks: actions replaced by the safeguard's safety net.
    :param noise: [N, p] the noise ``w`` of the step (detached).
    :param intervened: [N] bool, the safeguard changed the action (detached).
    :param outside_P: [N] bool, the successor is outside ``P`` (detached).
    :param outside_X: [N] bool, the successor is outside X (detached).
    """

    obs: Tensor
    reward: Tensor
    done: Tensor
    terminal_obs: Tensor
    policy_action: Tensor
    action: Tensor
    next_state: Tensor
    interventions: int = 0
    violations_P: int = 0
    violations_X: int = 0
    fallbacks: int = 0
    noise: Optional[Tensor] = None
    intervened: Optional[Tensor] = None
    outside_P: Optional[Tensor] = None
    outside_X: Optional[Tensor] = None


class SafeEnv:
    """``N`` batched copies of a system with a safeguard inside :meth:`step` (module docstring).

    :param system: compiled system or its name.
    :param invariant_set: the set in use ``P`` (:class:`~reachsafe.setfile.SetFile` or ``(A, b)``).
    :param num_envs: batch size ``N``.
    :param safeguard: a :class:`reachsafe.safeguards.Safeguard` or None (unsafeguarded).
    :param init_set: optional initial set ``I``: resets draw uniformly in ``P ∩ I``.
    :param init_sampling: ``"uniform"`` (default) or ``"zonotope"``: ``x0 = c + G beta``, ``beta``
        uniform in ``[-1, 1]^p``, for an initial set with a zonotope (the paper's distribution),
        restricted to ``P`` (:class:`InitialStateSampler`).
    :param noise: ``"uniform"`` (default), ``"adversarial"`` or ``"zero"``.
    :param episode_length: steps per episode (240).
    :param dtype: torch dtype of states, observations and actions.
    :param seed: seeds the reset sampler and the noise generator.
    :param violation_tol: a successor counts as outside ``P`` if ``max_i (A_i x+ - b_i) > violation_tol``.
    :param device: torch device of every tensor (``"cpu"``, ``"cuda"``, ``"cuda:N"``); the safeguard
        must be on it too.
    """

    def __init__(
        self,
        system: Union[CompiledSystem, str],
        invariant_set: SetLike,
        num_envs: int,
        *,
        safeguard: Any = None,
        init_set: Optional[SetLike] = None,
        init_sampling: str = "uniform",
        noise: str = "uniform",
        episode_length: int = 240,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        violation_tol: float = 0.0,
        device: Union[str, torch.device] = "cpu",
    ) -> None:
        self.system = get_system(system) if isinstance(system, str) else system
        self.device = torch.device(device)
        if noise not in NOISE_MODES:
            raise UserError(f"unknown noise mode {noise!r}; choose one of {', '.join(NOISE_MODES)}")
        if num_envs < 1:
            raise UserError(f"num_envs must be >= 1, got {num_envs}")
        if episode_length < 1:
            raise UserError(f"episode_length must be >= 1, got {episode_length}")
        for s, what in ((invariant_set, "set"), (init_set, "initial set")):
            if isinstance(s, SetFile) and s.system != self.system.name:
                raise UserError(f"{s.path or what} is a set for {s.system!r}, not for {self.system.name!r}")
        self.num_envs = int(num_envs)
        # the safeguard's constants go to the environment's device (a torch module: .to moves its buffers)
        self.safeguard = safeguard.to(self.device) if isinstance(safeguard, torch.nn.Module) else safeguard
        self.noise = noise
        self.episode_length = int(episode_length)
        self.dtype = dtype
        self.violation_tol = float(violation_tol)
        sys_ = self.system
        self.n, self.m, self.p = sys_.n, sys_.m, sys_.p
        self.obs_dim = sys_.observation_dim

        A, b = polytope_arrays(invariant_set)
        if A.shape[1] != self.n:
            raise UserError(f"the set has {A.shape[1]} columns, {sys_.name} has {self.n} states")
        dev = self.device
        self.A64 = torch.tensor(A, dtype=torch.float64, device=dev)
        self.b64 = torch.tensor(b, dtype=torch.float64, device=dev)
        self.X_lo = torch.tensor(sys_.constraint_lo, dtype=torch.float64, device=dev)
        self.X_hi = torch.tensor(sys_.constraint_hi, dtype=torch.float64, device=dev)
        self.w_lo = torch.tensor(sys_.noise_lo, dtype=dtype, device=dev)
        self.w_hi = torch.tensor(sys_.noise_hi, dtype=dtype, device=dev)
        verts = np.array(list(itertools.product(*zip(sys_.noise_lo, sys_.noise_hi))), dtype=np.float64)
        self.w_vertices = torch.tensor(verts, dtype=torch.float64, device=dev)  # [2^p, p]

        self.np_rng = np.random.default_rng(seed)
        self.torch_rng = torch.Generator().manual_seed(int(seed))
        init = polytope_arrays(init_set) if init_set is not None else None
        zono = None
        if isinstance(init_set, SetFile) and init_set.zonotope is not None:
            zono = (np.asarray(init_set.zonotope["center"], float), np.asarray(init_set.zonotope["generators"], float))
        self.sampler = InitialStateSampler((A, b), init, self.np_rng, zonotope=zono, mode=init_sampling)

        # running counters (since construction; the runner reads and checkpoints them)
        self.total_steps = 0
        self.total_interventions = 0
        self.total_violations_P = 0
        self.total_violations_X = 0
        self.total_fallbacks = 0
        self.completed_returns: list[float] = []
        self.x: Tensor = torch.zeros(self.num_envs, self.n, dtype=dtype, device=dev)
        self.context: Optional[Tensor] = None
        self.t = torch.zeros(self.num_envs, dtype=torch.long, device=dev)
        self.episode_return = torch.zeros(self.num_envs, dtype=torch.float64, device=dev)
        self.obs: Tensor = torch.zeros(self.num_envs, self.obs_dim, dtype=dtype, device=dev)
        self.reset()

    # ----------------------------------------------------------------- reset
    def _initial(self, k: int) -> tuple[Tensor, Optional[Tensor]]:
        x0 = torch.tensor(self.sampler(k), dtype=self.dtype, device=self.device)
        ctx = self.system.context_from_state(x0)
        return x0, (ctx.clone() if ctx is not None else None)

    def reset(self) -> Tensor:
        """Reset every environment: ``x0`` uniform in ``P`` (``∩ I``); returns obs [N, k]."""
        self.x, self.context = self._initial(self.num_envs)
        self.t.zero_()
        self.episode_return.zero_()
        self.obs = self.system.observation(self.x, self.context)
        return self.obs

    def set_state(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        """Put the environments in states ``x [N, n]`` (context derived from ``x`` if None); returns obs."""
        x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        if x.shape != (self.num_envs, self.n):
            raise UserError(f"set_state needs states [{self.num_envs}, {self.n}], got {list(x.shape)}")
        self.x = x
        ctx = self.system.context_from_state(x.detach()) if context is None else context
        self.context = ctx.clone() if ctx is not None else None
        self.obs = self.system.observation(self.x, self.context)
        return self.obs

    def reseed(self, seed: int) -> Tensor:
        """Restart both random streams from ``seed`` and reset (same initial states and noise as a fresh env)."""
        self.np_rng = np.random.default_rng(seed)
        self.torch_rng = torch.Generator().manual_seed(int(seed))
        self.sampler.rng = self.np_rng
        self.sampler.clear()
        return self.reset()

    def detach(self) -> None:
        """Cut the graph: the next step starts from constant states (SHAC, start of a window)."""
        self.x = self.x.detach()
        self.obs = self.obs.detach()

    # ------------------------------------------------------------------ noise
    @torch.no_grad()
    def _noise(self, x: Tensor, a: Tensor) -> Tensor:
        N = x.shape[0]
        if self.noise == "zero" or self.p == 0:
            return torch.zeros(N, self.p, dtype=self.dtype, device=self.device)
        if self.noise == "uniform":  # drawn on the CPU generator: the same stream on every device
            u = torch.rand(N, self.p, generator=self.torch_rng, dtype=self.dtype).to(self.device)
            return self.w_lo + (self.w_hi - self.w_lo) * u
        # adversarial: the vertex of W maximising max_i (A_i f(x, a, w) - b_i), per environment
        x64, a64 = x.detach().to(torch.float64), a.detach().to(torch.float64)
        c, B, E = self.system.affine(x64)
        base = c + (B @ a64.unsqueeze(-1)).squeeze(-1)  # [N, n]
        succ = base.unsqueeze(1) + torch.einsum("bnp,vp->bvn", E, self.w_vertices)  # [N, V, n]
        worst = (succ @ self.A64.T - self.b64).amax(-1)  # [N, V]
        return self.w_vertices[worst.argmax(-1)].to(self.dtype)

    # ------------------------------------------------------------------- step
    def step(self, actions: Tensor) -> EnvStep:
        """Advance all environments by one step with policy actions ``actions [N, m]``.

        The executed action is the safeguard's output; reward, successor and observation
        are differentiable in ``actions`` and in the current state.
        """
        if actions.shape != (self.num_envs, self.m):
            raise UserError(f"actions must have shape [{self.num_envs}, {self.m}], got {list(actions.shape)}")
        x, ctx = self.x, self.context
        n_fb = 0
        if self.safeguard is not None:
            a_exec, info = self.safeguard(x, actions, return_info=True)
            intervened = info.intervened.detach().clone()
            n_fb = int(info.n_fallback)
        else:
            a_exec = actions
            intervened = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        n_int = int(intervened.sum())
        w = self._noise(x, a_exec)
        x_next = self.system.step(x, a_exec, w)
        reward = self.system.reward(x_next, a_exec, ctx)
        terminal_obs = self.system.observation(x_next, ctx)

        with torch.no_grad():
            x64 = x_next.detach().to(torch.float64)
            out_P = (x64 @ self.A64.T - self.b64).amax(-1) > self.violation_tol
            out_X = ((x64 < self.X_lo) | (x64 > self.X_hi)).any(-1)
            n_vP, n_vX = int(out_P.sum()), int(out_X.sum())
            self.t += 1
            self.episode_return += reward.detach().to(torch.float64)
            done = self.t >= self.episode_length

        self.total_steps += self.num_envs
        self.total_interventions += n_int
        self.total_violations_P += n_vP
        self.total_violations_X += n_vX
        self.total_fallbacks += n_fb

        if bool(done.any()):
            idx = done.nonzero().squeeze(-1)
            self.completed_returns.extend(self.episode_return[idx].tolist())
            x0, ctx0 = self._initial(int(idx.numel()))
            x_new = x_next.detach().clone()
            x_new[idx] = x0
            new_x = torch.where(done.unsqueeze(-1), x_new, x_next)
            if ctx is not None:
                ctx = ctx.clone()
                ctx[idx] = ctx0
            obs = torch.where(done.unsqueeze(-1), self.system.observation(new_x.detach(), ctx), terminal_obs)
            self.t[idx] = 0
            self.episode_return[idx] = 0.0
        else:
            new_x, obs = x_next, terminal_obs
        self.x, self.context, self.obs = new_x, ctx, obs
        return EnvStep(
            obs=obs,
            reward=reward,
            done=done,
            terminal_obs=terminal_obs,
            policy_action=actions,
            action=a_exec,
            next_state=x_next,
            interventions=n_int,
            violations_P=n_vP,
            violations_X=n_vX,
            fallbacks=n_fb,
            noise=w,
            intervened=intervened,
            outside_P=out_P,
            outside_X=out_X,
        )

    # --------------------------------------------------------------- counters
    def counters(self) -> dict[str, Any]:
        """Running counters (for checkpoints and metrics)."""
        return dict(total_steps=self.total_steps, total_interventions=self.total_interventions,
                    total_violations_P=self.total_violations_P, total_violations_X=self.total_violations_X,
                    total_fallbacks=self.total_fallbacks)

    def load_counters(self, d: dict[str, Any]) -> None:
        for k in ("total_steps", "total_interventions", "total_violations_P", "total_violations_X", "total_fallbacks"):
            setattr(self, k, int(d.get(k, 0)))

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything the environment's future depends on, for a bit-exact resume.

        States ``x``, context, observations, episode clocks and returns, both random streams
        (numpy: initial states; torch: noise), the initial-state samples drawn but not yet
        used, the counters and the completed episodes' returns.
        """
        ctx = None if self.context is None else self.context.detach().cpu().clone()
        return {"x": self.x.detach().cpu().clone(), "context": ctx,
                "obs": self.obs.detach().cpu().clone(), "t": self.t.cpu().clone(),
                "episode_return": self.episode_return.cpu().clone(),
                "np_rng": self.np_rng.bit_generator.state, "torch_rng": self.torch_rng.get_state(),
                "sampler_buf": self.sampler._buf.copy(), "counters": self.counters(),
                "completed_returns": list(self.completed_returns)}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (same system, set, number of environments and seed streams)."""
        if tuple(d["x"].shape) != (self.num_envs, self.n):
            raise UserError(f"checkpoint holds {list(d['x'].shape)} states, this environment "
                            f"[{self.num_envs}, {self.n}]")
        dev = self.device
        self.x, self.obs = d["x"].to(dev, self.dtype).clone(), d["obs"].to(dev, self.dtype).clone()
        self.context = None if d["context"] is None else d["context"].to(dev).clone()
        self.t, self.episode_return = d["t"].to(dev).clone(), d["episode_return"].to(dev).clone()
        self.np_rng.bit_generator.state = d["np_rng"]  # the sampler draws from this very generator
        self.torch_rng.set_state(d["torch_rng"])
        self.sampler._buf = np.array(d["sampler_buf"], dtype=np.float64).reshape(-1, self.n)
        self.load_counters(d["counters"])
        self.completed_returns = list(d["completed_returns"])
