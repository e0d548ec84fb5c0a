"""Experiment configurations: a TOML file describing a grid of training runs, expanded to run specs.

Format (every key is checked; an unknown key, system, algorithm, safeguard or variant, an
impossible combination or a missing set file is a one-line :class:`UserError`)::

    [experiment]
    name = "paper"                  # results go to results/<name>, run directories to runs/experiments/<name>
    root = ".."                     # relative paths below are relative to this folder
                                    #   (itself relative to the TOML file; default: the TOML's folder)
    results_dir = "results/paper"   # optional (default results/<name>)
    runs_dir = "runs/experiments/paper"   # optional (default runs/experiments/<name>)
    description = "..."             # optional, copied into the report

    [systems.pendulum]              # one table per system used by the grid
    set = "data/pendulum.json"      # set in use (safeguard + audit); default data/<system>.json of the
                                    #   repository at or above root (reachsafe.repository)
    init_set = "data/published/pendulum.json"   # optional: initial states drawn from this set
    init_sampling = "zonotope"      # optional: "uniform" (default) in init_set, or "zonotope": c + G beta
                                    #   with beta uniform in the cube (the paper's code), both within set
    steps = 100000                  # optional (default: the runner's default for the system)
    eval_every = 2500               # optional (default steps / 10)
    eval_episodes = 16              # optional (default 16)
    [systems.pendulum.hyperparameters.shac]    # optional overrides of the defaults, per algorithm
    horizon = 32

    [[grid]]                        # one or more blocks; the grid is the union of their products
    systems = ["pendulum"]
    algos = ["shac"]
    safeguards = ["projection", "raymask"]
    variants = ["plain", "passthrough", "regularize", "both"]   # default ["plain"]
    regularize = 0.1                # C of the regularize / both variants
    seeds = 5                       # 5 -> seeds 0..4, or an explicit list [0, 3, 7]

Variants: ``plain`` (the safeguard's own gradient), ``passthrough`` (straight-through
gradient), ``regularize`` (``C |a_s - a|^2`` in the actor loss), ``both``.  Every
combination of a block must be valid: a block that pairs ``passthrough`` with safeguard
``none`` or with PPO/SAC is refused (write a separate block instead).

Run ids are stable and name every grid coordinate, e.g. ``pendulum-shac-raymask-pt-reg0.1-s3``;
the per-system settings (sets, steps, hyperparameters) are recorded in each run's spec and
compared when a finished run is found (see :mod:`training.experiment_exec`).  A set is
identified by what matters, :func:`reachsafe.setfile.set_fingerprint` (its ``A``, ``b`` and
model fingerprint), not by the bytes of its file: recomputing or re-certifying a set, or
editing its provenance, keeps every finished run valid.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import tomllib

from reachsafe.errors import UserError
from reachsafe.repository import repository_root
from reachsafe.setfile import load_set, set_fingerprint
from reachsafe.systems import UnknownSystemError, get_system

__all__ = ["VARIANTS", "RunSpec", "SystemSettings", "Experiment", "load_experiment", "parse_experiment"]

VARIANTS = ("plain", "passthrough", "regularize", "both")
_EXPERIMENT_KEYS = {"name", "root", "results_dir", "runs_dir", "description"}
_SYSTEM_KEYS = {"set", "init_set", "init_sampling", "steps", "eval_every", "eval_episodes", "hyperparameters"}
_GRID_KEYS = {"systems", "algos", "safeguards", "variants", "regularize", "seeds"}
_TOP_KEYS = {"experiment", "systems", "grid"}


@dataclass(frozen=True)
class SystemSettings:
    """Per-system settings of an experiment (absolute paths)."""

    system: str
    set_path: str
    init_set_path: Optional[str] = None
    init_sampling: str = "uniform"
    steps: Optional[int] = None
    eval_every: Optional[int] = None
    eval_episodes: int = 16
    hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)  # algo -> overrides


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: every setting that determines it."""

    run_id: str
    system: str
    algo: str
    safeguard: str
    variant: str
    passthrough: bool
    regularize: float
    seed: int
    set_path: str
    init_set_path: Optional[str]
    init_sampling: str
    steps: Optional[int]
    eval_every: Optional[int]
    eval_episodes: int
    overrides: dict[str, Any]

    @property
    def group(self) -> str:
        """The variant's label without the seed (aggregation key), e.g. ``pendulum-shac-raymask-pt``."""
        return self.run_id.rsplit("-s", 1)[0]

    def identity(self, root: Path) -> dict[str, Any]:
        """Settings a finished run must match to be reused (paths relative to ``root`` when inside it)."""
        d = asdict(self)
        for k in ("set_path", "init_set_path"):
            if d[k] is not None:
                d[k] = _rel(Path(d[k]), root)
        d["set_fingerprint"] = _fingerprint(self.set_path, self.system)
        d["init_set_fingerprint"] = _fingerprint(self.init_set_path, self.system) if self.init_set_path else None
        return d

    def make_config(self, threads: int = 1):
        """The runner's :class:`~training.runner.RunConfig` for this spec (validated)."""
        from .runner import make_config  # lazy: torch; planning an experiment needs none

        cfg, _ = make_config(
            self.system,
            self.algo,
            self.safeguard,
            set_path=self.set_path,
            init_set_path=self.init_set_path,
            init_sampling=self.init_sampling,
            seed=self.seed,
            steps=self.steps,
            passthrough=self.passthrough,
            regularize=self.regularize,
            eval_every=self.eval_every,
            eval_episodes=self.eval_episodes,
            threads=threads,
            overrides=dict(self.overrides),
        )
        return cfg


@dataclass
class Experiment:
    """A parsed experiment: name, folders and the expanded grid (ordered, no duplicates)."""

    name: str
    path: Path
    root: Path
    results_dir: Path
    runs_dir: Path
    description: str
    systems: dict[str, SystemSettings]
    runs: list[RunSpec]

    def run_dir(self, spec: RunSpec) -> Path:
        return self.runs_dir / spec.run_id


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)


_FINGERPRINTS: dict[tuple[str, int, int, str], str] = {}  # (path, mtime_ns, size, system) -> set fingerprint


def _fingerprint(path: str, system: str) -> str:
    """:func:`reachsafe.setfile.set_fingerprint` of a set file (cached while the file is unchanged).

    :raises SetFileError: the file is unreadable or made for another version of the model.
    """

    st = Path(path).stat()
    key = (str(path), st.st_mtime_ns, st.st_size, system)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = set_fingerprint(load_set(path, system=system, check_certificate=False))
    return _FINGERPRINTS[key]


def _fmt_c(c: float) -> str:
    return format(c, "g")


def run_id(system: str, algo: str, safeguard: str, passthrough: bool, regularize: float, seed: int) -> str:
    """Stable id of a grid point: ``system-algo-safeguard[-pt][-regC]-sSEED``."""
    parts = [system, algo, safeguard]
    if passthrough:
        parts.append("pt")
    if regularize > 0:
        parts.append(f"reg{_fmt_c(regularize)}")
    return "-".join(parts) + f"-s{seed}"


# ----------------------------------------------------------------------------- parsing helpers
def _where(src: str, ctx: str) -> str:
    return f"{src}: {ctx}"


def _check_keys(d: Any, allowed: set[str], src: str, ctx: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise UserError(_where(src, f"{ctx} must be a table"))
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise UserError(_where(src, f"unknown key {unknown[0]!r} in {ctx}; allowed: {', '.join(sorted(allowed))}"))
    return d


def _str_list(v: Any, src: str, ctx: str) -> list[str]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise UserError(_where(src, f"{ctx} must be a non-empty list of strings"))
    return v


def _pos_int(v: Any, src: str, ctx: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise UserError(_where(src, f"{ctx} must be a positive integer, got {v!r}"))
    return v


def _seeds(v: Any, src: str, ctx: str) -> list[int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return list(range(_pos_int(v, src, ctx)))
    if (isinstance(v, list) and v and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)
            and len(set(v)) == len(v)):
        return list(v)
    raise UserError(_where(src, f"{ctx} must be a count (5 -> seeds 0..4) or a list of distinct seeds >= 0, got {v!r}"))


def _path(v: Any, root: Path, src: str, ctx: str, must_exist: bool = True) -> Path:
    if not isinstance(v, str) or not v:
        raise UserError(_where(src, f"{ctx} must be a path string"))
    p = Path(v).expanduser()
    p = p if p.is_absolute() else root / p
    if must_exist and not p.is_file():
        raise UserError(_where(src, f"{ctx} {v!r}: no such file ({p})"))
    return p.resolve() if must_exist else p


def _hyperparameters(v: Any, system: str, src: str, ctx: str) -> dict[str, dict[str, Any]]:
    from .runner import ALGOS  # lazy: torch; planning an experiment needs none

    v = _check_keys(v, set(ALGOS), src, ctx)
    out: dict[str, dict[str, Any]] = {}
    for algo, hp in v.items():
        known = set(_default_hyperparameters(algo, system))
        out[algo] = dict(_check_keys(hp, known, src, f"{ctx}.{algo}"))
    return out


def _default_hyperparameters(algo: str, system: str) -> dict[str, Any]:
    if algo == "shac":
        from .shac import paper_defaults  # lazy: torch; planning an experiment needs none

        return paper_defaults(system).to_dict()
    from .baselines import default_hyperparameters  # lazy: stable_baselines3

    return default_hyperparameters(algo, system)


# ----------------------------------------------------------------------------- parsing
def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment TOML file (module docstring); raises :class:`UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such experiment file; pass a TOML file such as experiments/smoke.toml")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: not valid TOML ({str(exc).splitlines()[0]})") from None
    return parse_experiment(data, p)


def parse_experiment(data: dict[str, Any], path: Path) -> Experiment:
    """Validate the parsed TOML ``data`` of ``path`` and expand its grid."""

    from .env import INIT_SAMPLING  # lazy: torch; planning an experiment needs none
    from .runner import ALGOS, SAFEGUARDS

    src = str(path)
    _check_keys(data, _TOP_KEYS, src, "the file")
    exp = _check_keys(data.get("experiment", {}), _EXPERIMENT_KEYS, src, "[experiment]")
    name = exp.get("name", path.stem)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\") or name.startswith("."):
        raise UserError(_where(src, f"[experiment] name must be a plain folder name, got {name!r}"))
    base = path.resolve().parent
    root = base / exp["root"] if "root" in exp else base
    if not isinstance(exp.get("root", ""), str) or not root.is_dir():
        raise UserError(_where(src, f"[experiment] root {exp.get('root')!r} is not a folder ({root})"))
    root = root.resolve()
    results_dir = _path(exp.get("results_dir", f"results/{name}"), root, src, "[experiment] results_dir", False)
    runs_dir = _path(exp.get("runs_dir", f"runs/experiments/{name}"), root, src, "[experiment] runs_dir", False)
    description = exp.get("description", "")
    if not isinstance(description, str):
        raise UserError(_where(src, "[experiment] description must be a string"))

    systems_tbl = data.get("systems", {})
    if not isinstance(systems_tbl, dict):
        raise UserError(_where(src, "[systems] must be a table of [systems.NAME] tables"))
    systems: dict[str, SystemSettings] = {}
    for sname, st in systems_tbl.items():
        ctx = f"[systems.{sname}]"
        try:
            get_system(sname)
        except UnknownSystemError as exc:
            raise UserError(_where(src, f"{ctx}: {exc}")) from None
        st = _check_keys(st, _SYSTEM_KEYS, src, ctx)
        if "set" in st:
            set_path = _path(st["set"], root, src, f"{ctx} set")
        else:  # data/<system>.json of the repository at or above the experiment's root
            repo = repository_root(root)
            default = (repo or root) / "data" / f"{sname}.json"
            if not default.is_file():
                raise UserError(_where(src, f"{ctx} needs 'set = FILE': {default} does not exist"))
            set_path = default
        init = _path(st["init_set"], root, src, f"{ctx} init_set") if "init_set" in st else None
        sampling = st.get("init_sampling", "uniform")
        if sampling not in INIT_SAMPLING:
            raise UserError(_where(src, f"{ctx} init_sampling {sampling!r}: choose from {', '.join(INIT_SAMPLING)}"))
        if sampling != "uniform" and init is None:
            raise UserError(_where(src, f"{ctx} init_sampling = {sampling!r} needs 'init_set = FILE'"))
        systems[sname] = SystemSettings(
            system=sname, set_path=str(set_path), init_set_path=str(init) if init else None, init_sampling=sampling,
            steps=_pos_int(st["steps"], src, f"{ctx} steps") if "steps" in st else None,
            eval_every=_pos_int(st["eval_every"], src, f"{ctx} eval_every") if "eval_every" in st else None,
            eval_episodes=_pos_int(st.get("eval_episodes", 16), src, f"{ctx} eval_episodes"),
            hyperparameters=_hyperparameters(st.get("hyperparameters", {}), sname, src, f"{ctx} hyperparameters"))

    blocks = data.get("grid")
    if not isinstance(blocks, list) or not blocks:
        raise UserError(_where(src, "no [[grid]] block; add at least one with systems, algos, safeguards, seeds"))
    runs: list[RunSpec] = []
    seen: set[str] = set()
    for i, blk in enumerate(blocks, 1):
        ctx = f"[[grid]] block {i}"
        blk = _check_keys(blk, _GRID_KEYS, src, ctx)
        for req in ("systems", "algos", "safeguards", "seeds"):
            if req not in blk:
                raise UserError(_where(src, f"{ctx} needs '{req}'"))
        b_systems = _str_list(blk["systems"], src, f"{ctx} systems")
        algos = _str_list(blk["algos"], src, f"{ctx} algos")
        safeguards = _str_list(blk["safeguards"], src, f"{ctx} safeguards")
        variants = _str_list(blk.get("variants", ["plain"]), src, f"{ctx} variants")
        seeds = _seeds(blk["seeds"], src, f"{ctx} seeds")
        for s in b_systems:
            if s not in systems:
                try:
                    get_system(s)
                except UnknownSystemError as exc:
                    raise UserError(_where(src, f"{ctx}: {exc}")) from None
                raise UserError(_where(src, f"{ctx}: system {s!r} has no [systems.{s}] table (set, steps)"))
        for a in algos:
            if a not in ALGOS:
                raise UserError(_where(src, f"{ctx}: unknown algorithm {a!r}; choose from {', '.join(ALGOS)}"))
        for g in safeguards:
            if g not in SAFEGUARDS:
                raise UserError(_where(src, f"{ctx}: unknown safeguard {g!r}; choose from {', '.join(SAFEGUARDS)}"))
        for v in variants:
            if v not in VARIANTS:
                raise UserError(_where(src, f"{ctx}: unknown variant {v!r}; choose from {', '.join(VARIANTS)}"))
        needs_c = any(v in ("regularize", "both") for v in variants)
        c = blk.get("regularize")
        if needs_c:
            if not isinstance(c, (int, float)) or isinstance(c, bool) or not (c > 0 and c < float("inf")):
                raise UserError(_where(src, f"{ctx}: variants regularize/both need 'regularize = C' with C > 0"))
        elif c is not None:
            raise UserError(
                _where(src, f"{ctx}: 'regularize' is set but no variant uses it (add 'regularize' or 'both')")
            )
        for s in b_systems:
            st = systems[s]
            for a in algos:
                for g in safeguards:
                    for v in variants:
                        pt = v in ("passthrough", "both")
                        reg = float(c) if v in ("regularize", "both") else 0.0
                        if g == "none" and v != "plain":
                            raise UserError(_where(src, f"{ctx}: variant {v!r} needs a safeguard but the block "
                                                        "includes safeguard 'none'; put 'none' in its own block "
                                                        "with variants = [\"plain\"]"))
                        if a != "shac" and v != "plain":
                            raise UserError(_where(src, f"{ctx}: variant {v!r} changes the gradient through the "
                                                        f"safeguard and applies to SHAC only, not {a!r}"))
                        for seed in seeds:
                            rid = run_id(s, a, g, pt, reg, seed)
                            if rid in seen:
                                raise UserError(_where(src, f"{ctx}: run {rid} appears twice in the grid"))
                            seen.add(rid)
                            runs.append(RunSpec(
                                run_id=rid, system=s, algo=a, safeguard=g, variant=v, passthrough=pt,
                                regularize=reg, seed=seed, set_path=st.set_path, init_set_path=st.init_set_path,
                                init_sampling=st.init_sampling,
                                steps=st.steps, eval_every=st.eval_every, eval_episodes=st.eval_episodes,
                                overrides=dict(st.hyperparameters.get(a, {}))))
    # seed-major order (stable within a seed): a grid stopped early has every variant's first
    # seeds rather than all seeds of the first variants
    runs.sort(key=lambda r: r.seed)
    for spec in runs:  # every run's settings pass the runner's own validation before anything starts
        spec.make_config()
    return Experiment(name=name, path=path.resolve(), root=root, results_dir=results_dir, runs_dir=runs_dir,
                      description=description, systems=systems, runs=runs)


def spec_json(spec: RunSpec, root: Path) -> str:
    """Canonical JSON of :meth:`RunSpec.identity` (compared when a finished run is reused)."""
    return json.dumps(spec.identity(root), sort_keys=True)
