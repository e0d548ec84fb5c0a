"""Training backends: SHAC (:mod:`training.shac`) and the stable-baselines3 baselines
(:mod:`training.baselines`) behind one protocol, so :func:`training.runner.train` drives both alike.

A backend owns the learner (SHAC's networks and optimisers; SB3's model and SAC's replay
buffer) and its checkpoint file in the run directory.  The runner calls, in this order:

1. ``init()`` for a new run, or ``resume()`` to continue from the run's checkpoint: build the
   learner and return the :class:`StartPoint` (steps done, wall time spent);
2. ``learn(start, hook, at_boundary)``: train up to ``settings.steps`` environment steps,
   calling ``hook(env_steps, stats) -> stop`` after every SHAC update or SB3 vectorised step;
   a backend with ``checkpoint_deferred`` also calls ``at_boundary()`` wherever a checkpoint
   is exact (SB3: where a rollout starts) and once at the end;
3. ``save(steps, wall_time_s)`` whenever the runner's driver asks for a checkpoint (after an
   evaluation: at once, or for a ``checkpoint_deferred`` backend at the next boundary);
4. ``policy()``: the deterministic evaluation policy of the current learner.

:func:`saved_policy` loads the policy of a run's last checkpoint (``reachsafe evaluate``).

**Bit-exact resume.**  A checkpoint holds everything the rest of the run depends on: the
networks and optimisers, the training environments' state (states, episode clocks, returns,
unused initial states, their numpy and torch random streams, see
:meth:`training.env.SafeEnv.state_dict`) and the process's random states
(:func:`training.rundir.rng_state`; for PPO/SAC also the action space's).  A run interrupted at
any point and resumed therefore reproduces the uninterrupted run bit for bit (same metrics,
weights and rollouts; wall times aside).  SHAC checkpoints at every evaluation; PPO/SAC
checkpoint at the first rollout boundary after an evaluation (inside a rollout SB3 holds
unsaved buffers).  Checkpoints of older reachsafe versions (without random states) still
resume, not bit-exactly (:attr:`StartPoint.exact` is False).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import torch

from reachsafe.setfile import atomic_write_bytes
from reachsafe.systems import get_system

from .env import SafeEnv
from .evaluate import Policy
from .rundir import RunDir, rng_state, set_rng_state
from .shac import SHACAgent, SHACConfig, train_shac

__all__ = ["RunSettings", "StartPoint", "TrainingBackend", "SHACBackend", "SB3Backend", "BACKENDS", "make_backend",
           "saved_policy", "StepHook"]

StepHook = Callable[..., bool]  # hook(env_steps, stats=None) -> stop


class RunSettings(Protocol):
    """What a backend reads of a run's settings (:class:`training.runner.RunConfig` has it all)."""

    system: str
    algo: str
    seed: int
    steps: int
    device: str
    hyperparameters: dict[str, Any]


@dataclass(frozen=True)
class StartPoint:
    """Where training starts: ``steps`` environment steps and ``wall_offset`` seconds already spent,
    whether the run continues a checkpoint (``resumed``) and whether bit for bit (``exact``)."""

    steps: int = 0
    wall_offset: float = 0.0
    resumed: bool = False
    exact: bool = True


class TrainingBackend(Protocol):
    """One learning algorithm as the runner drives it (module docstring)."""

    checkpoint_deferred: bool  # True: checkpoint at the next at_boundary(), not at once

    def init(self) -> StartPoint:
        """Build a fresh learner."""
        ...

    def resume(self) -> StartPoint:
        """Build the learner from the run's checkpoint and restore the environments and random states."""
        ...

    def save(self, steps: int, wall_time_s: float) -> None:
        """Write the checkpoint (one atomic file)."""
        ...

    def learn(self, start: StartPoint, hook: StepHook, at_boundary: Callable[[], None]) -> None:
        """Train from ``start`` up to ``settings.steps`` environment steps."""
        ...

    def policy(self) -> Policy:
        """The deterministic policy ``obs [E, k] -> actions [E, m]`` of the current learner."""
        ...


class SHACBackend:
    """SHAC through the differentiable simulator; checkpoint ``checkpoint/shac.pt``."""

    checkpoint_deferred = False
    FILE = "shac.pt"

    def __init__(self, settings: RunSettings, env: SafeEnv, run: RunDir):
        self.settings, self.env, self.run = settings, env, run
        self.agent: Any = None

    def _new_agent(self) -> Any:
        return SHACAgent(self.env.obs_dim, self.env.m, SHACConfig.from_dict(self.settings.hyperparameters),
                         device=self.settings.device)

    def init(self) -> StartPoint:
        self.agent = self._new_agent()
        return StartPoint()

    def resume(self) -> StartPoint:
        self.agent = self._new_agent()
        ck = self.run.load_torch(self.FILE)
        self.agent.load_full_state(ck["agent"])
        exact = "env" in ck
        if exact:
            self.env.load_state_dict(ck["env"])
            set_rng_state(ck["rng"])
        else:  # a checkpoint of an older reachsafe: counters and torch's RNG only
            self.env.load_counters(ck["counters"])
            self.env.completed_returns = list(ck["completed_returns"])
            torch.set_rng_state(ck["torch_rng"])
        return StartPoint(int(ck["env_steps"]), float(ck["wall_time_s"]), resumed=True, exact=exact)

    def save(self, steps: int, wall_time_s: float) -> None:
        self.run.save_torch({"agent": self.agent.full_state(), "env": self.env.state_dict(), "rng": rng_state(),
                             "env_steps": steps, "wall_time_s": wall_time_s}, self.FILE)

    def learn(self, start: StartPoint, hook: StepHook, at_boundary: Callable[[], None]) -> None:
        if start.steps < self.settings.steps:
            train_shac(self.agent, self.env, self.settings.steps, start.steps, callback=hook, reset=not start.resumed)

    def policy(self) -> Policy:
        return self.agent.act

    @classmethod
    def saved_policy(cls, run: RunDir, settings: RunSettings, venv: Any = None) -> Policy:
        """The policy of the run's last checkpoint (networks in evaluation mode)."""

        ck = run.load_torch(cls.FILE)
        system = get_system(settings.system)
        agent = SHACAgent(system.observation_dim, system.m, SHACConfig.from_dict(settings.hyperparameters))
        agent.load_full_state(ck["agent"])
        agent.eval()
        return agent.act


class SB3Backend:
    """PPO or SAC from stable-baselines3; checkpoint ``checkpoint/sb3.pt`` (and ``model.zip`` for evaluate)."""

    checkpoint_deferred = True
    FILE = "sb3.pt"

    def __init__(self, settings: RunSettings, env: SafeEnv, run: RunDir):
        from .gym_adapter import SafeVecEnv  # lazy: stable_baselines3, only for the SB3 backends

        self.settings, self.env, self.run = settings, env, run
        self.venv = SafeVecEnv(env)
        self.model: Any = None

    @property
    def model_path(self) -> Path:
        """The SB3 model alone, written with every checkpoint (what ``reachsafe evaluate`` loads)."""
        return self.run.ckpt_dir / "model.zip"

    def init(self) -> StartPoint:
        from .baselines import make_model  # lazy: stable_baselines3, only for the SB3 backends

        self.model = make_model(self.settings.algo, self.venv, self.settings.seed, self.settings.hyperparameters)
        return StartPoint()

    def resume(self) -> StartPoint:
        from .baselines import load_model  # lazy: stable_baselines3, only for the SB3 backends

        algo, ckpt = self.settings.algo, self.run.ckpt_dir
        if (ckpt / self.FILE).exists():
            ck = self.run.load_torch(self.FILE)
            # SB3 reseeds every RNG on load (restored below); without force_reset it keeps its last
            # observation, which matches the restored environments
            self.model = load_model(algo, io.BytesIO(ck["model"]), self.venv, force_reset=False)
            if ck["replay"] is not None:
                self.model.load_replay_buffer(io.BytesIO(ck["replay"]))
            self.env.load_state_dict(ck["env"])
            set_rng_state(ck["rng"])
            self.model.action_space.np_random.bit_generator.state = ck["action_space"]
            return StartPoint(int(self.model.num_timesteps), float(ck["wall_time_s"]), resumed=True)
        # a checkpoint of an older reachsafe (model.zip, replay.pkl, state.json): counters only, the envs restart
        st = json.loads((ckpt / "state.json").read_text())
        self.model = load_model(algo, str(self.model_path), self.venv)
        if algo == "sac" and (ckpt / "replay.pkl").exists():
            self.model.load_replay_buffer(str(ckpt / "replay.pkl"))
        self.env.load_counters(st["counters"])
        self.env.completed_returns = list(st["completed_returns"])
        return StartPoint(int(self.model.num_timesteps), float(st["wall_time_s"]), resumed=True, exact=False)

    def save(self, steps: int, wall_time_s: float) -> None:
        buf = io.BytesIO()
        self.model.save(buf)
        atomic_write_bytes(self.model_path, buf.getvalue())  # for evaluate; the checkpoint proper is sb3.pt
        replay = None
        if self.settings.algo == "sac":
            rbuf = io.BytesIO()
            self.model.save_replay_buffer(rbuf)
            replay = rbuf.getvalue()
        self.run.save_torch({"model": buf.getvalue(), "replay": replay, "env": self.env.state_dict(),
                             "rng": rng_state(), "action_space": self.model.action_space.np_random.bit_generator.state,
                             "env_steps": steps, "wall_time_s": wall_time_s}, self.FILE)  # one atomic file

    def learn(self, start: StartPoint, hook: StepHook, at_boundary: Callable[[], None]) -> None:
        from .baselines import HookCallback  # lazy: stable_baselines3, only for the SB3 backends

        if start.steps < self.settings.steps:
            self.model.learn(total_timesteps=self.settings.steps - start.steps, reset_num_timesteps=not start.resumed,
                             callback=HookCallback(hook, on_rollout_start=at_boundary))
        at_boundary()

    def policy(self) -> Policy:
        from .baselines import sb3_policy  # lazy: stable_baselines3, only for the SB3 backends

        return sb3_policy(self.model)

    @classmethod
    def saved_policy(cls, run: RunDir, settings: RunSettings, venv: Any = None) -> Policy:
        """The policy of the run's ``model.zip`` (written with every checkpoint)."""
        from .baselines import load_model, sb3_policy  # lazy: stable_baselines3, only for the SB3 backends

        return sb3_policy(load_model(settings.algo, str(run.ckpt_dir / "model.zip"), venv))


BACKENDS: dict[str, type[SHACBackend] | type[SB3Backend]] = {"shac": SHACBackend, "ppo": SB3Backend,
                                                             "sac": SB3Backend}


def make_backend(settings: RunSettings, env: SafeEnv, run: RunDir) -> TrainingBackend:
    """The backend of ``settings.algo`` for the training environments ``env`` and the run directory ``run``."""
    return BACKENDS[settings.algo](settings, env, run)


def saved_policy(run: RunDir, settings: RunSettings, venv: Optional[Any] = None) -> Policy:
    """The deterministic policy of a run's last checkpoint, ``obs [E, k] -> actions [E, m]``."""
    return BACKENDS[settings.algo].saved_policy(run, settings, venv)
