"""Run directories: configuration, training loop driver, metrics, checkpoints, rollouts, curve.

A run directory holds::

    config.json              every setting, set fingerprints, package versions, git commit
    metrics.csv              one row per evaluation (METRIC_COLUMNS)
    checkpoint/shac.pt       SHAC: networks, optimisers, obs statistics, environment state, every RNG (atomic)
    checkpoint/sb3.pt        PPO/SAC: the SB3 model, SAC's replay buffer, environment state, every RNG (atomic)
    checkpoint/model.zip     PPO/SAC: the SB3 model alone (what evaluate loads)
    rollouts.npz             final evaluation, uniform noise   (format: reachsafe.rollouts)
    rollouts-adversarial.npz final evaluation, adversarial noise
    summary.json             final figures
    curve.png                learning curve (eval return vs env steps, intervention rate)

:func:`train` drives SHAC (:mod:`training.shac`) or an SB3 baseline (:mod:`training.baselines`)
and, every ``eval_every`` environment steps, evaluates the deterministic policy
(:func:`training.evaluate.run_episodes`), appends a metrics row and writes a checkpoint.
``resume=True`` continues from the last checkpoint (metrics rows after it are dropped).

**Bit-exact resume.**  A checkpoint holds everything the rest of the run depends on: the
networks and optimisers, the training environments' state (states, episode clocks, returns,
unused initial states, their numpy and torch random streams, see
:meth:`training.env.SafeEnv.state_dict`) and the process's random states (Python, numpy,
torch; for PPO/SAC also the action space's).  A run interrupted at any point and resumed
therefore reproduces the uninterrupted run bit for bit (same metrics, weights and rollouts;
wall times aside).  SHAC checkpoints at every evaluation; PPO/SAC checkpoint at the first
rollout boundary after an evaluation (inside a rollout SB3 holds unsaved buffers).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

import reachsafe
from reachsafe.errors import UserError
from reachsafe.rollouts import Rollouts
from reachsafe.safeguard_kinds import KIND_NAMES, SHIELDING_KIND_NAMES
from reachsafe.setfile import SetFile, atomic_write_bytes, atomic_write_text, load_set, set_fingerprint
from reachsafe.systems import get_system

from .env import SafeEnv
from .evaluate import Policy, run_episodes

__all__ = ["RunConfig", "RunDir", "train", "evaluate_run", "set_fingerprint", "default_set_path", "git_commit",
           "build_env", "load_policy", "rollout_meta", "EVAL_SEED", "METRIC_COLUMNS", "SAFEGUARDS", "ALGOS"]

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL_SEED = 20250602  # every evaluation of every run starts from the same initial states and noise
SAFEGUARDS = KIND_NAMES  # live view of reachsafe.safeguard_kinds: a kind registered there is valid here
ALGOS = ("shac", "ppo", "sac")
METRIC_COLUMNS = ["env_steps", "wall_time_s", "eval_return_mean", "eval_return_std", "eval_intervention_rate",
                  "eval_violations_P", "eval_violations_X", "train_return", "train_interventions",
                  "train_violations_P", "train_violations_X", "train_fallbacks"]
_INT_COLUMNS = {"env_steps", "eval_violations_P", "eval_violations_X", "train_interventions", "train_violations_P",
                "train_violations_X", "train_fallbacks"}
# settings that must match when a run is resumed
_RESUME_KEYS = ("system", "algo", "safeguard", "passthrough", "regularize", "set_fingerprint",
                "init_set_fingerprint", "init_sampling", "seed", "hyperparameters", "device")
_RESUME_DEFAULTS = {"init_sampling": "uniform", "device": "cpu"}


# ----------------------------------------------------------------------------- provenance
def git_commit(root: Path = REPO_ROOT) -> Optional[str]:
    """The checked-out commit, read from ``.git`` files (no git process); None if unavailable."""
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
    """``(path, note)``: the shipped ``data/SYSTEM.json`` if it exists, else ``sets/SYSTEM.json`` in
    the current folder (where ``compute-invariant`` writes by default), else the published
    pendulum set.

    :raises UserError: for a system without a committed set and no usable published one.
    """
    data = REPO_ROOT / "data"
    own = data / f"{system}.json"
    if own.exists():
        return own, f"default set {own} (data/{system}.json)"
    computed = Path("sets") / f"{system}.json"
    if computed.exists():
        return computed, f"default set {computed} (computed by compute-invariant)"
    if system == "pendulum":
        pub = data / "published" / "pendulum.json"
        return pub, f"default set {pub} (published set; data/pendulum.json does not exist yet)"
    raise UserError(f"{system} needs --set FILE: neither data/{system}.json nor sets/{system}.json exists and the published "
                    f"{system} set is not invariant (use it only as --init-set); compute one with "
                    f"'reachsafe compute-invariant {system}'")


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
        from .env import INIT_SAMPLING

        if self.init_sampling not in INIT_SAMPLING:
            raise UserError(f"unknown --init-sampling {self.init_sampling!r}; choose one of {', '.join(INIT_SAMPLING)}")
        if self.init_sampling == "zonotope" and not self.init_set_path:
            raise UserError("--init-sampling zonotope draws c + G beta from the initial set's zonotope; "
                            "add --init-set FILE (e.g. data/published/pendulum.json)")
        if self.threads < 1:
            raise UserError(f"--threads must be >= 1, got {self.threads}")
        from reachsafe.safeguards.bench import resolve_device

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
    """A validated :class:`RunConfig` with the paper's defaults filled in, and notes for the user."""
    from .shac import DEFAULT_STEPS, paper_defaults

    get_system(system)  # unknown system -> one-line error
    notes: list[str] = []
    if set_path is None:
        p, note = default_set_path(system)
        set_path = str(p)
        notes.append(note)
    steps = int(steps if steps is not None else DEFAULT_STEPS.get(system, 100_000))
    if algo == "shac":
        shac_cfg = paper_defaults(system)
        shac_cfg.regularize = float(regularize)
        hp = shac_cfg.to_dict()
    elif algo in ("ppo", "sac"):
        from .baselines import default_hyperparameters

        hp = default_hyperparameters(algo, system)
    else:
        hp = {}
    hp.update(overrides or {})
    cfg = RunConfig(system=system, algo=algo, safeguard=safeguard, passthrough=passthrough, regularize=float(regularize),
                    set_path=set_path, init_set_path=init_set_path, init_sampling=init_sampling, seed=int(seed),
                    steps=steps,
                    eval_every=int(eval_every if eval_every is not None else max(1, steps // 10)),
                    eval_episodes=int(eval_episodes), threads=int(threads), device=str(device), hyperparameters=hp,
                    allow_unverified_set=bool(allow_unverified_set))
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
        from reachsafe.safeguards import make_safeguard

        sg = make_safeguard(cfg.safeguard, cfg.system, sf, passthrough=cfg.passthrough, outside="fallback")
    return SafeEnv(cfg.system, sf, num_envs, safeguard=sg, init_set=init, init_sampling=cfg.init_sampling, noise=noise,
                   seed=seed, dtype=dtype, device=device)


# ----------------------------------------------------------------------------- run directory
class RunDir:
    """Files of one run (module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.metrics_path = self.path / "metrics.csv"
        self.ckpt_dir = self.path / "checkpoint"
        self.curve_path = self.path / "curve.png"
        self.summary_path = self.path / "summary.json"

    def rollouts_path(self, noise: str) -> Path:
        return self.path / ("rollouts.npz" if noise == "uniform" else f"rollouts-{noise}.npz")

    def is_nonempty(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def prepare(self, resume: bool) -> None:
        """Create the directory; refuse an existing non-empty one unless ``resume``."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} is a file; give a directory for the run")
        if self.is_nonempty() and not resume:
            raise UserError(f"run directory {self.path} exists and is not empty; pass --resume to continue it "
                            "or choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)

    # config
    def write_config(self, d: dict[str, Any]) -> None:
        atomic_write_text(self.config_path, json.dumps(d, indent=1, sort_keys=False) + "\n")

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise UserError(f"{self.path} is not a run directory (no config.json); pass the --out of a 'reachsafe train' run")
        return json.loads(self.config_path.read_text())

    # metrics
    def read_metrics(self) -> list[dict[str, float]]:
        if not self.metrics_path.exists():
            return []
        with open(self.metrics_path, newline="") as fh:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]

    def write_metrics(self, rows: list[dict[str, float]]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (int(r[k]) if k in _INT_COLUMNS else r[k]) for k in METRIC_COLUMNS if k in r})
        atomic_write_text(self.metrics_path, buf.getvalue())

    # checkpoints
    def has_checkpoint(self) -> bool:
        # state.json: PPO/SAC checkpoints of older reachsafe versions (model.zip, replay.pkl, state.json)
        return any((self.ckpt_dir / n).exists() for n in ("shac.pt", "sb3.pt", "state.json"))

    def save_torch(self, obj: Any, name: str) -> None:
        buf = io.BytesIO()
        torch.save(obj, buf)
        atomic_write_bytes(self.ckpt_dir / name, buf.getvalue())

    def load_torch(self, name: str) -> Any:
        return torch.load(self.ckpt_dir / name, map_location="cpu", weights_only=False)

    # curve
    def plot_curve(self, title: str) -> None:
        rows = self.read_metrics()
        if not rows:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        s = np.array([r["env_steps"] for r in rows])
        m = np.array([r.get("eval_return_mean", np.nan) for r in rows])
        sd = np.array([r.get("eval_return_std", 0.0) for r in rows])
        tr = np.array([r.get("train_return", np.nan) for r in rows])
        ir = np.array([r.get("eval_intervention_rate", np.nan) for r in rows])
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        ax1.plot(s, m, "o-", label="eval return (deterministic)")
        ax1.fill_between(s, m - sd, m + sd, alpha=0.2)
        if np.isfinite(tr).any():
            ax1.plot(s, tr, "--", alpha=0.7, label="training return (with exploration)")
        ax1.set_ylabel("episode return")
        ax1.set_title(title)
        ax1.grid(alpha=0.3)
        ax1.legend(loc="lower right", fontsize=8)
        ax2.plot(s, ir, "o-", color="tab:red")
        ax2.set_ylabel("interventions")
        ax2.set_xlabel("environment steps")
        ax2.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        atomic_write_bytes(self.curve_path, buf.getvalue())


def _provenance(cfg: RunConfig, sf: SetFile, init: Optional[SetFile]) -> dict[str, Any]:
    import stable_baselines3

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


def _rng_state() -> dict[str, Any]:
    """The process's random states (Python, numpy's global generator, torch's CPU generator, and the CUDA
    generators when CUDA has been used: SHAC's exploration noise on a CUDA device comes from them)."""
    d = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        d["cuda"] = torch.cuda.get_rng_state_all()
    return d


def _set_rng_state(d: dict[str, Any]) -> None:
    random.setstate(d["python"])
    np.random.set_state(d["numpy"])
    torch.set_rng_state(d["torch"])
    if "cuda" in d and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(d["cuda"])


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
    if cfg.algo == "shac":
        from .shac import SHACAgent, SHACConfig

        ck = run.load_torch("shac.pt")
        system = get_system(cfg.system)
        agent = SHACAgent(system.observation_dim, system.m, SHACConfig.from_dict(cfg.hyperparameters))
        agent.load_full_state(ck["agent"])
        agent.eval()
        return agent.act
    from .baselines import load_model, sb3_policy

    return sb3_policy(load_model(cfg.algo, str(run.ckpt_dir / "model.zip"), venv))


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
    from .env import NOISE_MODES

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
class _Driver:
    """Evaluation, metrics, checkpoints and progress shared by SHAC and the baselines."""

    def __init__(self, cfg: RunConfig, run: RunDir, env: SafeEnv, eval_env: SafeEnv, meta: dict[str, Any],
                 start_steps: int, wall_offset: float, rows: list[dict[str, float]], progress: bool,
                 save_checkpoint: Callable[[int, float], None], policy: Callable[[], Policy], deferred: bool = False):
        from reachsafe.progress import progress_bar

        self.cfg, self.run, self.env, self.eval_env, self.meta = cfg, run, env, eval_env, meta
        self.rows = rows
        self.save_checkpoint, self.policy = save_checkpoint, policy
        self.deferred = deferred  # checkpoint at the next flush_checkpoint() (SB3: a rollout boundary)
        self.pending: Optional[tuple[int, float]] = None
        self.t0 = time.perf_counter() - wall_offset
        self.next_eval = (start_steps // cfg.eval_every + 1) * cfg.eval_every
        self.last_steps = start_steps
        self.last_eval: Optional[dict[str, float]] = rows[-1] if rows else None
        self.title = f"{cfg.system} {cfg.algo.upper()} safeguard={cfg.safeguard}" + (" passthrough" if cfg.passthrough else "") \
            + (f" reg={cfg.regularize:g}" if cfg.regularize else "")
        self.pbar = progress_bar(total=cfg.steps, initial=min(start_steps, cfg.steps), unit="step", file=sys.stderr,
                         disable=not progress, dynamic_ncols=True, desc=f"{cfg.system} {cfg.algo}/{cfg.safeguard}")

    def wall(self) -> float:
        return time.perf_counter() - self.t0

    def evaluate(self, noise: str = "uniform") -> Rollouts:
        self.eval_env.noise = noise
        return run_episodes(self.eval_env, self.policy(), EVAL_SEED, self.meta["set_fingerprint"])

    def hook(self, steps: int, stats: Optional[dict[str, float]] = None) -> bool:
        """Called by the algorithm after every update (SHAC) or vectorised step (SB3); True stops."""
        self.pbar.update(max(0, min(steps, self.cfg.steps) - self.last_steps))
        self.last_steps = min(steps, self.cfg.steps)
        if steps >= self.next_eval or steps >= self.cfg.steps:
            while self.next_eval <= steps:
                self.next_eval += self.cfg.eval_every
            ev = self.evaluate().summary()
            recent = self.env.completed_returns[-self.env.num_envs:]
            row = {"env_steps": steps, "wall_time_s": round(self.wall(), 3), "eval_return_mean": ev["return_mean"],
                   "eval_return_std": ev["return_std"], "eval_intervention_rate": ev["intervention_rate"],
                   "eval_violations_P": ev["violations_P"], "eval_violations_X": ev["violations_X"],
                   "train_return": float(np.mean(recent)) if recent else float("nan"),
                   "train_interventions": self.env.total_interventions,
                   "train_violations_P": self.env.total_violations_P,
                   "train_violations_X": self.env.total_violations_X, "train_fallbacks": self.env.total_fallbacks}
            self.rows.append(row)
            self.run.write_metrics(self.rows)
            self.pending = (steps, self.wall())
            if not self.deferred:
                self.flush_checkpoint()
            self.run.plot_curve(self.title)
            self.last_eval = row
            self.pbar.set_postfix(eval=f"{ev['return_mean']:.1f}", viol=ev["violations_P"], refresh=False)
        elif stats is not None and self.env.completed_returns:
            self.pbar.set_postfix(train=f"{np.mean(self.env.completed_returns[-self.env.num_envs:]):.1f}",
                                  eval=f"{self.last_eval['eval_return_mean']:.1f}" if self.last_eval else "-",
                                  refresh=False)
        return steps >= self.cfg.steps

    def flush_checkpoint(self) -> None:
        """Write the checkpoint an evaluation asked for (at once for SHAC; SB3: at a rollout boundary)."""
        if self.pending is not None:
            steps, wall = self.pending
            self.pending = None
            self.save_checkpoint(steps, wall)

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
    cfg.validate()
    run = RunDir(out)
    sets = load_sets(cfg)  # bad set files fail before anything is written
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

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    hp = cfg.hyperparameters
    num_envs = int(hp.get("num_envs", 8))
    env = build_env(cfg, num_envs, "uniform", cfg.seed, sets, device=cfg.device)
    eval_env = build_env(cfg, cfg.eval_episodes, "uniform", EVAL_SEED, sets, dtype=torch.float64)
    meta = rollout_meta(cfg, meta_cfg["set_fingerprint"])

    rows = run.read_metrics()
    start_steps, wall_offset = 0, 0.0
    resumed = resume and run.has_checkpoint()

    if cfg.algo == "shac":
        from .shac import SHACAgent, SHACConfig, train_shac

        agent = SHACAgent(env.obs_dim, env.m, SHACConfig.from_dict(hp), device=cfg.device)
        exact = True
        if resumed:
            ck = run.load_torch("shac.pt")
            agent.load_full_state(ck["agent"])
            if "env" in ck:
                env.load_state_dict(ck["env"])
                _set_rng_state(ck["rng"])
            else:  # a checkpoint of an older reachsafe: counters and torch's RNG only
                exact = False
                env.load_counters(ck["counters"])
                env.completed_returns = list(ck["completed_returns"])
                torch.set_rng_state(ck["torch_rng"])
            start_steps, wall_offset = int(ck["env_steps"]), float(ck["wall_time_s"])

        def save_shac(steps: int, wall: float) -> None:
            run.save_torch({"agent": agent.full_state(), "env": env.state_dict(), "rng": _rng_state(),
                            "env_steps": steps, "wall_time_s": wall}, "shac.pt")

        rows = [r for r in rows if r["env_steps"] <= start_steps]
        drv = _Driver(cfg, run, env, eval_env, meta, start_steps, wall_offset, rows, progress, save_shac,
                      lambda: agent.act)
        if resumed:
            log(f"resuming {run.path} at {start_steps} env steps"
                + ("" if exact else " (checkpoint of an older reachsafe without RNG states: not bit-exact)"))
        try:
            if start_steps < cfg.steps:
                train_shac(agent, env, cfg.steps, start_steps, callback=drv.hook, reset=not resumed)
        finally:
            drv.close()
        policy: Policy = agent.act
    else:
        from .baselines import HookCallback, load_model, make_model, sb3_policy
        from .gym_adapter import SafeVecEnv

        venv = SafeVecEnv(env)
        model_path = run.ckpt_dir / "model.zip"
        exact = True
        if resumed and (run.ckpt_dir / "sb3.pt").exists():
            ck = run.load_torch("sb3.pt")
            # SB3 reseeds every RNG on load (restored below); without force_reset it keeps its last
            # observation, which matches the restored environments
            model = load_model(cfg.algo, io.BytesIO(ck["model"]), venv, force_reset=False)
            if ck["replay"] is not None:
                model.load_replay_buffer(io.BytesIO(ck["replay"]))
            env.load_state_dict(ck["env"])
            _set_rng_state(ck["rng"])
            model.action_space.np_random.bit_generator.state = ck["action_space"]
            start_steps, wall_offset = int(model.num_timesteps), float(ck["wall_time_s"])
        elif resumed:  # a checkpoint of an older reachsafe: counters only, the environments restart
            exact = False
            st = json.loads((run.ckpt_dir / "state.json").read_text())
            model = load_model(cfg.algo, str(model_path), venv)
            if cfg.algo == "sac" and (run.ckpt_dir / "replay.pkl").exists():
                model.load_replay_buffer(str(run.ckpt_dir / "replay.pkl"))
            env.load_counters(st["counters"])
            env.completed_returns = list(st["completed_returns"])
            start_steps, wall_offset = int(model.num_timesteps), float(st["wall_time_s"])
        else:
            model = make_model(cfg.algo, venv, cfg.seed, hp)

        def save_sb3(steps: int, wall: float) -> None:
            buf = io.BytesIO()
            model.save(buf)
            atomic_write_bytes(model_path, buf.getvalue())  # for evaluate; the checkpoint proper is sb3.pt
            replay = None
            if cfg.algo == "sac":
                rbuf = io.BytesIO()
                model.save_replay_buffer(rbuf)
                replay = rbuf.getvalue()
            run.save_torch({"model": buf.getvalue(), "replay": replay, "env": env.state_dict(), "rng": _rng_state(),
                            "action_space": model.action_space.np_random.bit_generator.state, "env_steps": steps,
                            "wall_time_s": wall}, "sb3.pt")  # one atomic file: never half a checkpoint

        rows = [r for r in rows if r["env_steps"] <= start_steps]
        drv = _Driver(cfg, run, env, eval_env, meta, start_steps, wall_offset, rows, progress, save_sb3,
                      lambda: sb3_policy(model), deferred=True)
        if resumed:
            log(f"resuming {run.path} at {start_steps} env steps"
                + ("" if exact else " (checkpoint of an older reachsafe without RNG states: not bit-exact)"))
        try:
            if start_steps < cfg.steps:
                model.learn(total_timesteps=cfg.steps - start_steps, reset_num_timesteps=not resumed,
                            callback=HookCallback(drv.hook, on_rollout_start=drv.flush_checkpoint))
            drv.flush_checkpoint()
        finally:
            drv.close()
        policy = sb3_policy(model)

    # ---- final evaluation under uniform and adversarial noise, rollouts, summary, curve -------
    summary: dict[str, Any] = {"run_dir": str(run.path), "env_steps": max(drv.last_steps, start_steps),
                               "wall_time_s": round(drv.wall(), 2)}
    for noise in ("uniform", "adversarial"):
        eval_env.noise = noise
        ro = run_episodes(eval_env, policy, EVAL_SEED).with_meta(**meta)
        ro.save(run.rollouts_path(noise))
        summary[noise] = ro.summary()
    summary["train"] = {"interventions": env.total_interventions, "violations_P": env.total_violations_P,
                        "violations_X": env.total_violations_X, "fallbacks": env.total_fallbacks,
                        "env_steps_counted": env.total_steps}
    atomic_write_text(run.summary_path, json.dumps(summary, indent=1) + "\n")
    run.plot_curve(drv.title)
    return summary
