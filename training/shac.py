"""SHAC: Short-Horizon Actor-Critic (Xu et al., ICLR 2022) through a safeguarded simulator.

Read top to bottom: hyperparameters (:class:`SHACConfig`), networks, then one training
iteration in :func:`train_shac`.

One iteration, ``N`` environments, horizon ``H`` (shapes in brackets):

1. **Actor rollout.**  From the current (detached) states, roll the deterministic-plus-noise
   policy ``a_t = tanh(mu(o_t) + sigma eps_t)`` for ``H`` steps through the differentiable env;
   the executed action is the safeguard's output ``a_s,t = g(x_t, a_t)`` and the reward
   ``r_t = r(x_{t+1}, a_s,t)`` (:mod:`training.env`).  The SHAC loss is
   the negative discounted short-horizon return, bootstrapped with the target critic ``V'``::

       L_actor = -1/(N H) sum_envs [ sum_{t=0}^{H-1} gamma^t r_t + gamma^H V'(o_H) ]
                 (+ C/H sum_t mean_envs |a_s,t - a_t|^2   with --regularize C)

   (a window that crosses an episode end is split there: the finished part is bootstrapped
   with ``V'`` of the terminal observation, the rest starts again at ``gamma^0``).  Its
   gradient flows through rewards, dynamics, safeguard and ``V'`` back to the policy.
2. **Actor step.**  Adam, gradient-norm clipping, learning rate decayed linearly.
3. **Critic targets**, TD(lambda) over the window, with ``V_{t+1} = V'(o_{t+1})``
   (the terminal observation when the episode ended at ``t``)::

       G_t = r_t + gamma [ (1 - lambda) V_{t+1} + lambda G_{t+1} ]      (t < H-1, not done)
       G_t = r_t + gamma V_{t+1}                                         (t = H-1 or done)

4. **Critic fit.**  ``critic_iterations`` epochs of minibatch MSE ``(V(o_t) - G_t)^2`` over the
   ``H N`` stored (normalised) observations.
5. **Target critic**, polyak averaging: ``theta' <- polyak theta' + (1 - polyak) theta``.

Observations are normalised with running mean/std (statistics frozen within a window).

Device: the agent's networks, statistics and optimiser states live on one device
(``SHACAgent(..., device=...)``), which must be the environment's (``SafeEnv(device=...)``);
every buffer of an iteration is allocated there.  Minibatch permutations are drawn on the CPU
generator (the same stream on every device) and moved.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from reachsafe.errors import UserError
from reachsafe.safeguards.base import regularizer

from .env import SafeEnv
from .profiles import profile_overrides

__all__ = ["SHACConfig", "paper_defaults", "Actor", "Critic", "RunningMeanStd", "SHACAgent", "train_shac"]


# ----------------------------------------------------------------------------- hyperparameters
@dataclass
class SHACConfig:
    """Every SHAC hyperparameter (defaults: the paper's tuned pendulum values)."""

    num_envs: int = 8
    horizon: int = 64
    gamma: float = 0.95
    lam: float = 0.95  # TD(lambda)
    polyak: float = 0.4  # target critic keeps this fraction of its weights per iteration
    actor_hidden: tuple[int, ...] = (128, 128)
    actor_lr: float = 4e-4
    critic_hidden: tuple[int, ...] = (128, 128, 128)
    critic_lr: float = 2e-3
    critic_iterations: int = 50
    critic_minibatches: int = 4
    grad_clip: float = 1.0
    lr_end: float = 1e-5  # linear decay from the initial rate to this one over the budget
    betas: tuple[float, float] = (0.7, 0.95)  # Adam, as in SHAC
    actor_logstd_init: float = -1.0  # exploration noise sigma = exp(logstd), learned
    exploration: bool = True
    obs_norm: bool = True
    regularize: float = 0.0  # C of C * |a_s - a|^2 in the actor loss

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SHACConfig":
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        return cls(**kw)


def paper_defaults(system: str) -> SHACConfig:
    """SHAC hyperparameters for ``system``: :class:`SHACConfig`'s defaults, replaced by the ``shac``
    entries of the system's profile (the paper's tuned values for the built-in systems;
    :mod:`reachsafe.systems.profile`).  A system without a profile gets the defaults."""
    return SHACConfig.from_dict(profile_overrides(system, "shac", SHACConfig.__dataclass_fields__))


# ----------------------------------------------------------------------------- networks
def mlp(inp: int, hidden: tuple[int, ...], out: int) -> nn.Sequential:
    """``Linear -> ELU -> LayerNorm`` per hidden layer, then a linear output layer."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(inp, h), nn.ELU(), nn.LayerNorm(h)]
        inp = h
    layers.append(nn.Linear(inp, out))
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Policy ``a = tanh(mu(o) + sigma eps)`` in ``[-1, 1]^m``; ``obs [B, k] -> actions [B, m]``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], logstd_init: float = -1.0):
        super().__init__()
        self.mu = mlp(obs_dim, hidden, act_dim)
        self.logstd = nn.Parameter(torch.full((act_dim,), float(logstd_init)))

    def forward(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        mu = self.mu(obs)
        if deterministic:
            return torch.tanh(mu)
        return torch.tanh(mu + self.logstd.exp() * torch.randn_like(mu))


class Critic(nn.Module):
    """State value ``V(o)``: ``obs [B, k] -> [B]``."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.v = mlp(obs_dim, hidden, 1)

    def forward(self, obs: Tensor) -> Tensor:
        return self.v(obs).squeeze(-1)


class RunningMeanStd(nn.Module):
    """Running mean and variance of observations (parallel Welford); ``normalize(o) = (o - mean) / sqrt(var + eps)``."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        self.eps = eps

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        x = x.detach().to(torch.float64).reshape(-1, self.mean.shape[0])
        b_mean, b_var, b_n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, tot = b_mean - self.mean, self.count + b_n
        m2 = self.var * self.count + b_var * b_n + delta ** 2 * self.count * b_n / tot
        self.mean += delta * b_n / tot
        self.var.copy_(m2 / tot)
        self.count.copy_(tot)

    def normalize(self, x: Tensor) -> Tensor:
        return ((x - self.mean.to(x.dtype)) / torch.sqrt(self.var.to(x.dtype) + self.eps)).clamp(-10.0, 10.0)


class SHACAgent(nn.Module):
    """Actor, critic, target critic, observation statistics and both optimisers (one checkpoint).

    :param device: where the networks, statistics and optimiser states live (the weights are
        initialised on the CPU from torch's CPU generator, then moved: the same initial
        weights on every device).
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: SHACConfig, device: str | torch.device = "cpu"):
        super().__init__()
        self.cfg = cfg
        self.actor = Actor(obs_dim, act_dim, cfg.actor_hidden, cfg.actor_logstd_init)
        self.critic = Critic(obs_dim, cfg.critic_hidden)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.obs_rms = RunningMeanStd(obs_dim)
        self.device = torch.device(device)
        self.to(self.device)  # before the optimisers: their states are created on the parameters' device
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, betas=cfg.betas)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, betas=cfg.betas)

    def normalize(self, obs: Tensor) -> Tensor:
        return self.obs_rms.normalize(obs) if self.cfg.obs_norm else obs

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Deterministic evaluation action ``tanh(mu(o))``, ``[B, k] -> [B, m]`` float32, on the device of ``obs``
        (computed on the agent's device)."""
        a = self.actor(self.normalize(obs.to(self.device, torch.float32)), deterministic=True)
        return a.to(obs.device)

    def full_state(self) -> dict[str, Any]:
        return {"model": self.state_dict(), "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict()}

    def load_full_state(self, d: dict[str, Any]) -> None:
        self.load_state_dict(d["model"])
        self.actor_opt.load_state_dict(d["actor_opt"])
        self.critic_opt.load_state_dict(d["critic_opt"])


# ----------------------------------------------------------------------------- training loop
def _set_lr(opt: torch.optim.Optimizer, lr0: float, lr_end: float, frac: float) -> float:
    lr = lr0 + (lr_end - lr0) * min(max(frac, 0.0), 1.0)
    for g in opt.param_groups:
        g["lr"] = lr
    return lr


def td_lambda_targets(rewards: Tensor, next_values: Tensor, dones: Tensor, gamma: float, lam: float) -> Tensor:
    """TD(lambda) targets ``G [H, N]`` from ``rewards, next_values [H, N]`` and ``dones [H, N]`` (module docstring,
    step 3)."""
    H = rewards.shape[0]
    G = torch.empty_like(rewards)
    G[H - 1] = rewards[H - 1] + gamma * next_values[H - 1]
    for t in range(H - 2, -1, -1):
        blend = (1.0 - lam) * next_values[t] + lam * G[t + 1]
        G[t] = rewards[t] + gamma * torch.where(dones[t], next_values[t], blend)
    return G


def train_shac(
    agent: SHACAgent,
    env: SafeEnv,
    total_steps: int,
    start_steps: int = 0,
    callback: Optional[Callable[[int, dict[str, float]], bool]] = None,
    reset: bool = True,
) -> int:
    """Run SHAC iterations until ``total_steps`` environment steps; returns the final step count.

    :param agent: networks and optimisers (modified in place).
    :param env: the training environment (its ``num_envs`` must equal ``cfg.num_envs``).
    :param total_steps: budget in environment steps (``N`` per env step, ``H N`` per iteration).
    :param start_steps: steps already done (resume).
    :param callback: ``callback(env_steps, stats) -> stop`` after every iteration (metrics,
        evaluation, checkpoints, progress); return True to stop early.
    :param reset: reset the environments first (False when resuming: the environment's
        checkpointed state continues, see :meth:`training.env.SafeEnv.load_state_dict`).
    """
    cfg = agent.cfg
    N, H = env.num_envs, cfg.horizon
    dev = env.device
    if agent.device != dev:
        raise UserError(f"the agent is on {agent.device}, the environment on {dev}: put both on one device")
    steps = start_steps
    if reset:
        env.reset()
    while steps < total_steps:
        frac = steps / max(total_steps, 1)
        actor_lr = _set_lr(agent.actor_opt, cfg.actor_lr, cfg.lr_end, frac)
        _set_lr(agent.critic_opt, cfg.critic_lr, cfg.lr_end, frac)

        # ---- 1. actor rollout through simulator + safeguard ----------------------------------
        env.detach()
        rms = copy.deepcopy(agent.obs_rms)  # statistics frozen within the window
        norm = (lambda o: rms.normalize(o)) if cfg.obs_norm else (lambda o: o)
        obs_buf = torch.empty(H, N, env.obs_dim, device=dev)
        rew_buf = torch.empty(H, N, device=dev)
        val_buf = torch.empty(H, N, device=dev)
        done_buf = torch.empty(H, N, dtype=torch.bool, device=dev)
        ret_acc = torch.zeros(N, device=dev)  # sum gamma^t r_t since the window (or episode) began
        disc = torch.ones(N, device=dev)  # gamma^t
        actor_loss = torch.zeros((), device=dev)
        reg_loss = torch.zeros((), device=dev)
        interventions = 0
        obs = env.obs
        for t in range(H):
            if cfg.obs_norm:
                agent.obs_rms.update(obs)
            o = norm(obs)
            a = agent.actor(o, deterministic=not cfg.exploration)
            res = env.step(a)
            v_next = agent.target_critic(norm(res.terminal_obs))  # gradient flows to the state
            ret_acc = ret_acc + disc * res.reward
            boot = ret_acc + disc * cfg.gamma * v_next  # short-horizon return, bootstrapped
            end = res.done if t < H - 1 else torch.ones(N, dtype=torch.bool, device=dev)
            actor_loss = actor_loss - (boot * end).sum()
            ret_acc = torch.where(res.done, torch.zeros_like(ret_acc), ret_acc)
            disc = torch.where(res.done, torch.ones_like(disc), disc * cfg.gamma)
            if cfg.regularize > 0:
                reg_loss = reg_loss + regularizer(res.policy_action, res.action, cfg.regularize)
            obs_buf[t], rew_buf[t], val_buf[t], done_buf[t] = o.detach(), res.reward.detach(), v_next.detach(), res.done
            interventions += res.interventions
            obs = res.obs
        actor_loss = actor_loss / (H * N) + reg_loss / H

        # ---- 2. actor step --------------------------------------------------------------------
        agent.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        grad_norm = float(nn.utils.clip_grad_norm_(agent.actor.parameters(), cfg.grad_clip))
        skipped = not math.isfinite(grad_norm)
        if skipped:  # never let a NaN/inf gradient into the weights
            agent.actor_opt.zero_grad(set_to_none=True)
        else:
            agent.actor_opt.step()

        # ---- 3. TD(lambda) targets, 4. critic fit ------------------------------------------
        targets = td_lambda_targets(rew_buf, val_buf, done_buf, cfg.gamma, cfg.lam).reshape(-1)
        data = obs_buf.reshape(-1, env.obs_dim)
        mb = max(1, data.shape[0] // cfg.critic_minibatches)
        critic_loss = 0.0
        for _ in range(cfg.critic_iterations):
            perm = torch.randperm(data.shape[0]).to(dev)  # CPU generator: the same stream on every device
            for s in range(0, data.shape[0] - mb + 1, mb):
                idx = perm[s:s + mb]
                loss = ((agent.critic(data[idx]) - targets[idx]) ** 2).mean()
                agent.critic_opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(agent.critic.parameters(), cfg.grad_clip)
                agent.critic_opt.step()
                critic_loss = loss.item()

        # ---- 5. polyak averaging of the target critic ---------------------------------------
        with torch.no_grad():
            for p_t, p in zip(agent.target_critic.parameters(), agent.critic.parameters()):
                p_t.mul_(cfg.polyak).add_((1.0 - cfg.polyak) * p)

        steps += H * N
        stats = {"actor_loss": actor_loss.item(), "critic_loss": critic_loss, "grad_norm": grad_norm,
                 "actor_lr": actor_lr, "skipped_update": float(skipped),
                 "intervention_rate": interventions / (H * N)}
        if callback is not None and callback(steps, stats):
            break
    return steps
