"""Training runs: configuration, the training loop driver, evaluation.

:func:`train` reads top to bottom: prepare the run directory (settings checked, sets loaded,
``config.json`` written), build the training and evaluation environments, pick the training
backend of the algorithm (:mod:`training.backends`: SHAC or an SB3 baseline, each with its own
checkpoint), let it learn under the :class:`_Driver` and evaluate the final policy.  The driver
evaluates the deterministic policy every ``eval_every`` environment steps
(:func:`training.evaluate.run_episodes`), appends a metrics row and has the backend write a
checkpoint.  ``resume=True`` continues from the last checkpoint (metrics rows after it are
dropped), bit for bit (:mod:`training.backends`).  The files of a run directory are
:class:`training.rundir.RunDir`'s.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

import reachsafe
from reachsafe.errors import UserError
from reachsafe.progress import progress_bar
from reachsafe.repository import repository_root
from reachsafe.rollouts import Rollouts
from reachsafe.safeguard_kinds import KIND_NAMES, SHIELDING_KIND_NAMES
from reachsafe.safeguards import make_safeguard
from reachsafe.safeguards.bench import resolve_device
from reachsafe.setfile import SetFile, atomic_write_text, load_set, set_fingerprint
from reachsafe.systems import get_system, profile_of

from .backends import StartPoint, TrainingBackend, make_backend, saved_policy
from .env import INIT_SAMPLING, NOISE_MODES, SafeEnv
from .evaluate import Policy, run_episodes
from .rundir import METRIC_COLUMNS, RunDir
from .shac import paper_defaults

__all__ = ["RunConfig", "RunDir", "train", "evaluate_run", "set_fingerprint", "default_set_path", "git_commit",
           "build_env", "load_policy", "rollout_meta", "EVAL_SEED", "METRIC_COLUMNS", "SAFEGUARDS", "ALGOS"]

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the folder the code was imported from (its git commit is recorded)
EVAL_SEED = 20250602  # every evaluation of every run starts from the same initial states and noise
SAFEGUARDS = KIND_NAMES  # live view of reachsafe.safeguard_kinds: a kind registered there is valid here
ALGOS = ("shac", "ppo", "sac")
# settings that must match when a run is resumed
_RESUME_KEYS = ("system", "algo", "safeguard", "passthrough", "regularize", "set_fingerprint",
                "init_set_fingerprint", "init_sampling", "seed", "hyperparameters", "device")
_RESUME_DEFAULTS = {"init_sampling": "uniform", "device": "cpu"}


# ----------------------------------------------------------------------------- provenance
def git_commit(root: Path = SOURCE_ROOT) -> Optional[str]:
    """The checked-out commit of ``root`` (default: the code's source tree), read from ``.git`` files (no git
    process); None if unavailable (e.g. installed from a wheel)."""
    try:
        git = root / ".git"
        if git.is_file():  # worktree: "gitdir: <path>"
            git = (root / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        common = git
        if (git / "commondir").exists():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        for base in (git, common):
            if (base / ref).exists():
                return (base / ref).read_text().strip()
        packed = common / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
    except OSError:
        return None
    return None


def default_set_path(system: str) -> tuple[Path, str]:
    """``(path, note)``: the set a run uses without ``--set``.

    In order: ``data/SYSTEM.json`` of the repository found from the current folder
    (:func:`reachsafe.repository.repository_root`), else ``sets/SYSTEM.json`` in the current
    folder (where ``compute-invariant`` writes by default), else the repository's published set
    ``data/published/SYSTEM.json`` if the system's profile says it is invariant (the pendulum's).

    :raises UserError: none of these applies.
    """
    root = repository_root()
    data = root / "data" if root is not None else None
    if data is not None and (data / f"{system}.json").exists():
        own = data / f"{system}.json"
        return own, f"default set {own} (data/{system}.json)"
    computed = Path("sets") / f"{system}.json"
    if computed.exists():
        return computed, f"default set {computed} (computed by compute-invariant)"
    published_invariant = profile_of(system).published_set_is_invariant
    if data is not None and published_invariant:
        pub = data / "published" / f"{system}.json"
        return pub, f"default set {pub} (published set; data/{system}.json does not exist yet)"
    why = ("no repository (a folder with pyproject.toml and data/) was found from the current folder"
           if published_invariant else f"the published {system} set is not invariant (use it only as --init-set)")
    raise UserError(f"{system} needs --set FILE: neither data/{system}.json nor sets/{system}.json exists and {why}; "
                    f"compute one with 'reachsafe compute-invariant {system}'")


# ----------------------------------------------------------------------------- configuration
@dataclass
class RunConfig:
    """Every setting of a run (written to ``config.json`` together with provenance)."""

    system: str
    algo: str = "shac"
    safeguard: str = "none"
    passthrough: bool = False
    regularize: float = 0.0
    set_path: str = ""
    init_set_path: Optional[str] = None
    init_sampling: str = "uniform"
    seed: int = 0
    steps: int = 100_000
    eval_every: int = 10_000
    eval_episodes: int = 16
    threads: int = 1
    device: str = "cpu"  # SHAC's training environment and agent; evaluation stays on the CPU (float64)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    allow_unverified_set: bool = False  # use a set whose certificate does not match its proof artifact (warned)

    def validate(self) -> None:
        if self.algo not in ALGOS:
            raise UserError(f"unknown --algo {self.algo!r}; choose one of {', '.join(ALGOS)}")
        if self.safeguard not in SAFEGUARDS:
            raise UserError(f"unknown --safeguard {self.safeguard!r}; choose one of {', '.join(SAFEGUARDS)}")
        if self.steps <= 0:
            raise UserError(f"--steps must be positive, got {self.steps}")
        if self.eval_every <= 0 or self.eval_episodes <= 0:
            raise UserError("--eval-every and --eval-episodes must be positive")
        if self.regularize < 0 or not np.isfinite(self.regularize):
            raise UserError(f"--regularize must be a finite number >= 0, got {self.regularize}")
        if self.safeguard == "none" and (self.passthrough or self.regularize > 0):
            flag = "--passthrough" if self.passthrough else "--regularize"
            raise UserError(f"{flag} needs a safeguard; add --safeguard {'|'.join(SHIELDING_KIND_NAMES)}")
        if self.algo != "shac" and (self.passthrough or self.regularize > 0):
            flag = "--passthrough" if self.passthrough else "--regularize"
            raise UserError(f"{flag} changes the policy gradient through the safeguard and applies to --algo shac only")

        if self.init_sampling not in INIT_SAMPLING:
            raise UserError(f"unknown --init-sampling {self.init_sampling!r}; choose one of {', '.join(INIT_SAMPLING)}")
        if self.init_sampling == "zonotope" and not self.init_set_path:
            raise UserError("--init-sampling zonotope draws c + G beta from the initial set's zonotope; "
                            "add --init-set FILE (e.g. data/published/pendulum.json)")
        if self.threads < 1:
            raise UserError(f"--threads must be >= 1, got {self.threads}")

        resolve_device(self.device)  # one line for a bad name or a CUDA device that does not exist
        if self.algo != "shac" and torch.device(self.device).type != "cpu":
            raise UserError(f"--device {self.device} applies to --algo shac only "
                            "(stable-baselines3 runs on the CPU here)")


def make_config(system: str, algo: str = "shac", safeguard: str = "none", *, set_path: Optional[str] = None,
                init_set_path: Optional[str] = None, init_sampling: str = "uniform", seed: int = 0,
                steps: Optional[int] = None,
                passthrough: bool = False, regularize: float = 0.0, eval_every: Optional[int] = None,
                eval_episodes: int = 16, threads: int = 1, allow_unverified_set: bool = False, device: str = "cpu",
                overrides: Optional[dict[str, Any]] = None) -> tuple[RunConfig, list[str]]:
    """A validated :class:`RunConfig` with the system's defaults (its profile, :mod:`reachsafe.systems.profile`)
    filled in, and notes for the user."""

    get_system(system)  # unknown system -> one-line error
    notes: list[str] = []
    if set_path is None:
        p, note = default_set_path(system)
        set_path = str(p)
        notes.append(note)
    steps = int(steps if steps is not None else profile_of(system).steps)
    if algo == "shac":
        shac_cfg = paper_defaults(system)
        shac_cfg.regularize = float(regularize)
        hp = shac_cfg.to_dict()
    elif algo in ("ppo", "sac"):
        from .baselines import default_hyperparameters  # lazy: stable_baselines3, only for the SB3 algorithms

        hp = default_hyperparameters(algo, system)
    else:
        hp = {}
    hp.update(overrides or {})
    cfg = RunConfig(
        system=system,
        algo=algo,
        safeguard=safeguard,
        passthrough=passthrough,
        regularize=float(regularize),
        set_path=set_path,
        init_set_path=init_set_path,
        init_sampling=init_sampling,
        seed=int(seed),
        steps=steps,
        eval_every=int(eval_every if eval_every is not None else max(1, steps // 10)),
        eval_episodes=int(eval_episodes),
        threads=int(threads),
        device=str(device),
        hyperparameters=hp,
        allow_unverified_set=bool(allow_unverified_set),
    )
    cfg.validate()
    return cfg, notes


def load_sets(cfg: RunConfig) -> tuple[SetFile, Optional[SetFile]]:
    """The set in use and the optional initial set, validated for ``cfg.system``.

    The set in use must not carry a certificate that fails its binding to the proof artifact
    (:mod:`reachsafe.certificate`) unless ``cfg.allow_unverified_set``; the initial set only
    supplies initial states and is not relied on for safety.
    """
    sf = load_set(cfg.set_path, system=cfg.system, check_certificate=False)
    if sf.certificate_problem is not None and not cfg.allow_unverified_set:
        raise UserError(f"{cfg.set_path}: certificate does not match: {sf.certificate_problem}; re-certify it with "
                        f"'reachsafe certify {cfg.set_path}', or pass --allow-unverified-set to use it without a "
                        "valid certificate")
    init = load_set(cfg.init_set_path, system=cfg.system, check_certificate=False) if cfg.init_set_path else None
    if cfg.init_sampling == "zonotope" and init is not None and init.zonotope is None:
        raise UserError(f"--init-sampling zonotope needs an initial set with a zonotope; {cfg.init_set_path} has "
                        "none (use a published set, or --init-sampling uniform)")
    return sf, init


def build_env(cfg: RunConfig, num_envs: int, noise: str, seed: int,
              sets: Optional[tuple[SetFile, Optional[SetFile]]] = None,
              dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> SafeEnv:
    """The environment of a run: system, set, initial set and safeguard of ``cfg``, on ``device``.

    The safeguard maps states outside the set too (``outside="fallback"``) so an
    unsafe episode is counted, not aborted.  Training runs in float32; evaluation
    (whose rollouts are audited) in float64, so that recorded transitions are the
    model's to double precision.
    """
    sf, init = sets if sets is not None else load_sets(cfg)
    sg = None
    if cfg.safeguard != "none":
        sg = make_safeguard(cfg.safeguard, cfg.system, sf, passthrough=cfg.passthrough, outside="fallback")
    return SafeEnv(cfg.system, sf, num_envs, safeguard=sg, init_set=init, init_sampling=cfg.init_sampling, noise=noise,
                   seed=seed, dtype=dtype, device=device)


def _provenance(cfg: RunConfig, sf: SetFile, init: Optional[SetFile]) -> dict[str, Any]:
    import stable_baselines3  # lazy: stable_baselines3, only for the SB3 algorithms

    d = asdict(cfg)
    d.update(
        set_fingerprint=set_fingerprint(sf),
        set_certified=sf.certified,
        set_certificate=sf.certificate_status,
        init_set_fingerprint=set_fingerprint(init) if init is not None else None,
        model_fingerprint=get_system(cfg.system).fingerprint,
        reachsafe_version=reachsafe.__version__,
        torch_version=torch.__version__,
        stable_baselines3_version=stable_baselines3.__version__,
        numpy_version=np.__version__,
        python_version=platform.python_version(),
        git_commit=git_commit(),
        command=" ".join(sys.argv),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    return d


def _check_resume(stored: dict[str, Any], new: dict[str, Any], path: Path) -> None:
    for k in _RESUME_KEYS:
        # runs made before a setting existed used its default
        if stored.get(k, _RESUME_DEFAULTS.get(k)) != new.get(k):
            shown = stored.get(k) if k != "hyperparameters" else "(see config.json)"
            raise UserError(f"cannot resume {path}: setting '{k}' differs from the run's ({shown!r}); "
                            "repeat the original flags (only --steps may change)")


def load_policy(run: RunDir, cfg: RunConfig, venv: Any = None) -> Policy:
    """The deterministic policy of the run's last checkpoint, ``obs [E, k] -> actions [E, m]``."""
    if not run.has_checkpoint():
        raise UserError(f"{run.path} has no checkpoint yet; train (or resume) the run first")
    return saved_policy(run, cfg, venv)


def rollout_meta(cfg: RunConfig, set_fp: str) -> dict[str, Any]:
    """Metadata of a run's rollouts files beyond what the environment records (:mod:`reachsafe.rollouts`)."""
    return {"set_fingerprint": set_fp, "safeguard": cfg.safeguard, "algo": cfg.algo, "set_path": cfg.set_path}


def evaluate_run(run_dir: str | os.PathLike, episodes: int = 16, noise: str = "uniform",
                 out: str | os.PathLike | None = None, overwrite: bool = False) -> tuple[dict[str, float], Path]:
    """Evaluate the last checkpoint of a run directory; write the rollouts file.

    :param run_dir: the ``--out`` of a ``reachsafe train`` run.
    :param episodes: number of episodes ``E`` (run in parallel).
    :param noise: ``"uniform"`` or ``"adversarial"``.
    :param out: rollouts file (default ``RUN_DIR/evaluate-NOISE.npz``).
    :param overwrite: allow replacing the run's final rollouts (``rollouts*.npz``, the audit's input).
    :returns: the summary (:meth:`reachsafe.rollouts.Rollouts.summary`) and the rollouts path.
    """

    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    if noise not in NOISE_MODES:
        raise UserError(f"unknown --noise {noise!r}; choose one of {', '.join(NOISE_MODES)}")
    run = RunDir(run_dir)
    stored = run.read_config()
    path = Path(out) if out is not None else run.path / f"evaluate-{noise}.npz"
    finals = {run.rollouts_path(n).resolve() for n in ("uniform", "adversarial")}
    if path.exists() and path.resolve() in finals and not overwrite:
        raise UserError(f"{path} holds the run's final rollouts (the audit's input); write elsewhere, or pass "
                        "--overwrite to replace them")
    cfg = RunConfig(**{k: stored[k] for k in RunConfig.__dataclass_fields__ if k in stored})
    sets = load_sets(cfg)
    if sets[0].certificate_problem is not None:  # the run was trained with --allow-unverified-set
        _to_stderr(f"warning: {cfg.set_path}: certificate does not match ({sets[0].certificate_problem}); "
                   "evaluated anyway (the run was trained with --allow-unverified-set)")
    fp = set_fingerprint(sets[0])
    if stored.get("set_fingerprint") not in (None, fp):
        raise UserError(f"the set file {cfg.set_path} changed since the run was trained (fingerprint differs); "
                        "restore it or retrain")
    torch.set_num_threads(int(cfg.threads))
    env = build_env(cfg, episodes, noise, EVAL_SEED, sets, dtype=torch.float64)
    policy = load_policy(run, cfg)
    ro = run_episodes(env, policy, EVAL_SEED).with_meta(**rollout_meta(cfg, fp))
    ro.save(path)
    return ro.summary(), path


# ----------------------------------------------------------------------------- training driver
@dataclass
class RunContext:
    """What a training run works on: its settings, run directory, environments and rollouts metadata."""

    cfg: RunConfig
    run: RunDir
    env: SafeEnv  # training environments (cfg.device, float32)
    eval_env: SafeEnv  # evaluation environments (CPU, float64: their rollouts are audited)
    meta: dict[str, Any]  # metadata of every rollouts file (rollout_meta)


class _Driver:
    """Evaluation, metrics, checkpoints and progress, the same for every backend."""

    def __init__(self, ctx: RunContext, backend: TrainingBackend, start: StartPoint, rows: list[dict[str, float]],
                 progress: bool):
        cfg = ctx.cfg
        self.ctx, self.cfg, self.backend = ctx, cfg, backend
        self.rows = rows
        self.pending: Optional[tuple[int, float]] = None  # a checkpoint asked for, not yet written
        self.t0 = time.perf_counter() - start.wall_offset
        self.next_eval = (start.steps // cfg.eval_every + 1) * cfg.eval_every
        self.last_steps = start.steps
        self.last_eval: Optional[dict[str, float]] = rows[-1] if rows else None
        self.title = (
            f"{cfg.system} {cfg.algo.upper()} safeguard={cfg.safeguard}"
            + (" passthrough" if cfg.passthrough else "")
            + (f" reg={cfg.regularize:g}" if cfg.regularize else "")
        )
        self.pbar = progress_bar(total=cfg.steps, initial=min(start.steps, cfg.steps), unit="step", file=sys.stderr,
                                 disable=not progress, dynamic_ncols=True,
                                 desc=f"{cfg.system} {cfg.algo}/{cfg.safeguard}")

    def wall(self) -> float:
        return time.perf_counter() - self.t0

    def evaluate(self, noise: str = "uniform") -> Rollouts:
        self.ctx.eval_env.noise = noise
        return run_episodes(self.ctx.eval_env, self.backend.policy(), EVAL_SEED, self.ctx.meta["set_fingerprint"])

    def hook(self, steps: int, stats: Optional[dict[str, float]] = None) -> bool:
        """Called by the backend after every update (SHAC) or vectorised step (SB3); True stops."""
        env = self.ctx.env
        self.pbar.update(max(0, min(steps, self.cfg.steps) - self.last_steps))
        self.last_steps = min(steps, self.cfg.steps)
        if steps >= self.next_eval or steps >= self.cfg.steps:
            while self.next_eval <= steps:
                self.next_eval += self.cfg.eval_every
            ev = self.evaluate().summary()
            recent = env.completed_returns[-env.num_envs:]
            row = {"env_steps": steps, "wall_time_s": round(self.wall(), 3), "eval_return_mean": ev["return_mean"],
                   "eval_return_std": ev["return_std"], "eval_intervention_rate": ev["intervention_rate"],
                   "eval_violations_P": ev["violations_P"], "eval_violations_X": ev["violations_X"],
                   "train_return": float(np.mean(recent)) if recent else float("nan"),
                   "train_interventions": env.total_interventions,
                   "train_violations_P": env.total_violations_P,
                   "train_violations_X": env.total_violations_X, "train_fallbacks": env.total_fallbacks}
            self.rows.append(row)
            self.ctx.run.write_metrics(self.rows)
            self.pending = (steps, self.wall())
            if not self.backend.checkpoint_deferred:
                self.flush_checkpoint()
            self.ctx.run.plot_curve(self.title)
            self.last_eval = row
            self.pbar.set_postfix(eval=f"{ev['return_mean']:.1f}", viol=ev["violations_P"], refresh=False)
        elif stats is not None and env.completed_returns:
            self.pbar.set_postfix(train=f"{np.mean(env.completed_returns[-env.num_envs:]):.1f}",
                                  eval=f"{self.last_eval['eval_return_mean']:.1f}" if self.last_eval else "-",
                                  refresh=False)
        return steps >= self.cfg.steps

    def flush_checkpoint(self) -> None:
        """Have the backend write the checkpoint an evaluation asked for (at once, or at a deferred boundary)."""
        if self.pending is not None:
            steps, wall = self.pending
            self.pending = None
            self.backend.save(steps, wall)

    def close(self) -> None:
        self.pbar.close()


def _to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train(cfg: RunConfig, out: str | os.PathLike, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] = print, warn: Callable[[str], None] = _to_stderr) -> dict[str, Any]:
    """Train (or resume) a run into ``out``; returns the summary (also written to ``summary.json``).

    :param cfg: settings (:func:`make_config`).
    :param out: run directory; must be empty or absent unless ``resume``.
    :param resume: continue from the last checkpoint in ``out``.
    :param progress: show progress on stderr (a bar on a terminal, plain lines otherwise).
    :param log: where the one-line messages go.
    :param warn: where warnings go (default stderr).
    """
    run, sets, set_fp = _prepare(cfg, out, resume, log, warn)
    ctx = _environments(cfg, run, sets, set_fp)
    backend = make_backend(cfg, ctx.env, run)
    start = backend.resume() if resume and run.has_checkpoint() else backend.init()
    rows = [r for r in run.read_metrics() if r["env_steps"] <= start.steps]
    drv = _Driver(ctx, backend, start, rows, progress)
    if start.resumed:
        log(f"resuming {run.path} at {start.steps} env steps"
            + ("" if start.exact else " (checkpoint of an older reachsafe without RNG states: not bit-exact)"))
    try:
        backend.learn(start, drv.hook, drv.flush_checkpoint)
    finally:
        drv.close()
    return _final_evaluation(ctx, backend.policy(), drv, start)


def _prepare(cfg: RunConfig, out: str | os.PathLike, resume: bool, log: Callable[[str], None],
             warn: Callable[[str], None]) -> tuple[RunDir, tuple[SetFile, Optional[SetFile]], str]:
    """Check the settings and sets, create (or reopen) the run directory and write ``config.json``.

    Returns the run directory, the sets and the fingerprint of the set in use.  Bad settings and
    set files fail before anything is written; a resume with other settings is refused.
    """
    cfg.validate()
    run = RunDir(out)
    sets = load_sets(cfg)
    sf, init = sets
    fresh = not run.is_nonempty()
    run.prepare(resume)
    meta_cfg = _provenance(cfg, sf, init)
    if resume and run.config_path.exists():
        _check_resume(run.read_config(), meta_cfg, run.path)
    if resume and fresh:
        log(f"note: {run.path} held no run; starting a new one")
    if sf.certificate_problem is not None:  # only with cfg.allow_unverified_set (load_sets refuses it otherwise)
        warn(f"warning: {cfg.set_path}: certificate does not match ({sf.certificate_problem}); used anyway "
             "(--allow-unverified-set): the safeguard guarantees nothing on it")
    elif cfg.safeguard != "none" and not sf.certified:
        warn(f"warning: {cfg.set_path} is not certified; the safeguard guarantees safety only on a robust "
             "control-invariant set (run 'reachsafe certify')")
    run.write_config(meta_cfg)
    return run, sets, meta_cfg["set_fingerprint"]


def _environments(cfg: RunConfig, run: RunDir, sets: tuple[SetFile, Optional[SetFile]], set_fp: str) -> RunContext:
    """Seed torch and build the training (``num_envs``, ``cfg.device``) and evaluation environments."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    num_envs = int(cfg.hyperparameters.get("num_envs", 8))
    env = build_env(cfg, num_envs, "uniform", cfg.seed, sets, device=cfg.device)
    eval_env = build_env(cfg, cfg.eval_episodes, "uniform", EVAL_SEED, sets, dtype=torch.float64)
    return RunContext(cfg, run, env, eval_env, rollout_meta(cfg, set_fp))


def _final_evaluation(ctx: RunContext, policy: Policy, drv: _Driver, start: StartPoint) -> dict[str, Any]:
    """Evaluate ``policy`` under uniform and adversarial noise; write the rollouts, the summary and the curve."""
    run, env, eval_env = ctx.run, ctx.env, ctx.eval_env
    summary: dict[str, Any] = {"run_dir": str(run.path), "env_steps": max(drv.last_steps, start.steps),
                               "wall_time_s": round(drv.wall(), 2)}
    for noise in ("uniform", "adversarial"):
        eval_env.noise = noise
        ro = run_episodes(eval_env, policy, EVAL_SEED).with_meta(**ctx.meta)
        ro.save(run.rollouts_path(noise))
        summary[noise] = ro.summary()
    summary["train"] = {"interventions": env.total_interventions, "violations_P": env.total_violations_P,
                        "violations_X": env.total_violations_X, "fallbacks": env.total_fallbacks,
                        "env_steps_counted": env.total_steps}
    atomic_write_text(run.summary_path, json.dumps(summary, indent=1) + "\n")
    run.plot_curve(drv.title)
    return summary
