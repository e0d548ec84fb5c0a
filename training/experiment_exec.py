"""Running an experiment grid: the per-run worker, the compact results store and the backends.

**Layout.**  Run directories (checkpoints, rollouts) live under the experiment's ``runs_dir``
(gitignored ``runs/experiments/<name>/<run_id>``); the compact, committed record of every
finished run lives under ``results_dir`` (``results/<name>/runs/<run_id>/``): ``config.json``,
``metrics.csv``, ``summary.json``, ``audit.json`` (uniform noise), ``audit-adversarial.json``
and, written last and atomically, ``run.json`` (the run's spec, verdicts and figures).

**Finished / skipped / resumed.**  A run is *finished* iff ``results/<name>/runs/<id>/run.json``
exists; its recorded spec must equal the grid's (sets by :func:`reachsafe.setfile.set_fingerprint`,
steps, hyperparameters, ...), otherwise the experiment stops with a one-line error before
training anything.  Records written before sets were identified by fingerprint carry
``set_sha256`` (of the file's bytes) instead; for them the fingerprints come from the run's
committed ``config.json``, which the trainer wrote from the sets it used.  Finished runs
are skipped, so a fresh clone with the committed ``results/`` continues where the grid stopped.
Every other run is trained with the runner's ``resume=True``: an interrupted run directory
continues from its last checkpoint, a missing one starts afresh.

**Workers.**  :func:`execute_run` trains, audits both final rollouts with
:func:`verification.audit.audit` and returns the compact files as strings; only the driver
writes ``results/`` (so a Ray cluster without a shared results folder works too; run
directories are written on the worker).  Backends: ``local`` (a process pool, ``spawn``, one
torch thread per run) and ``ray`` (``ray.remote(num_cpus=1)``; Ray imported lazily).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import socket
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from reachsafe.errors import UserError
from reachsafe.setfile import atomic_write_text

from .experiment import Experiment, RunSpec, spec_json
from .ray_connect import RayConnection, parse_address

__all__ = [
    "RESULT_FILES",
    "execute_run",
    "audit_run_dir",
    "reaudit",
    "ResultsStore",
    "GridStatus",
    "grid_status",
    "LocalBackend",
    "RayBackend",
    "make_backend",
    "run_grid",
    "RunOutcome",
]

RESULT_FILES = ("config.json", "metrics.csv", "summary.json", "audit.json", "audit-adversarial.json")
MARKER = "run.json"
SPEC_DEFAULTS = {"init_sampling": "uniform"}  # spec keys added later: their value in older run.json files
# older run.json files identify sets by the sha256 of their bytes; the fingerprint replaces it
LEGACY_SET_KEYS = {"set_sha256": ("set_fingerprint", "set_path"),
                   "init_set_sha256": ("init_set_fingerprint", "init_set_path")}
AUDIT_MAX_FAILURES = 20  # failing items listed per audit JSON (counts are always complete)


# ----------------------------------------------------------------------------- worker
def execute_run(spec: RunSpec, run_dir: str, root: str, threads: int = 1) -> dict[str, Any]:
    """Train (or resume) ``spec`` in ``run_dir``, audit it, return ``{"files": {name: text}, "record": {...}}``.

    Runs in a worker process; never writes outside ``run_dir``.  Exceptions propagate (the
    driver records the run as failed and continues with the others).
    """
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch  # lazy: torch; the driver process needs none

    from .runner import RunDir, train  # lazy: torch; the driver process needs none

    torch.set_num_threads(threads)
    log: list[str] = []
    cfg = spec.make_config(threads=threads)
    t0 = time.perf_counter()
    summary = train(cfg, run_dir, resume=True, progress=False, log=log.append, warn=log.append)
    train_s = time.perf_counter() - t0
    rd = RunDir(run_dir)
    files: dict[str, str] = {n: (rd.path / n).read_text() for n in ("config.json", "metrics.csv", "summary.json")}
    audit_files, audit_fields = audit_run_dir(run_dir, cfg.set_path)
    files.update(audit_files)
    record = {
        "run_id": spec.run_id,
        "spec": json.loads(spec_json(spec, Path(root))),
        "env_steps": summary["env_steps"],
        "wall_time_s": summary["wall_time_s"],
        "return_uniform": summary["uniform"]["return_mean"],
        "return_adversarial": summary["adversarial"]["return_mean"],
        **audit_fields,
        "session_s": round(train_s, 2),
        "host": socket.gethostname(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "log": log,
    }
    return {"files": files, "record": record}


def audit_run_dir(run_dir: str | Path, set_path: str | Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Audit both final rollouts of a run directory against ``set_path``.

    Returns the files ``audit.json`` / ``audit-adversarial.json`` (as text) and the record's
    audit fields: ``audit`` (per noise mode: verdict, failed steps, ...), ``audit_violations``,
    ``audit_certified``, ``audit_s``, ``audit_tool``.
    """
    from verification.audit import audit  # lazy: the audit (scipy, sympy) only for finished runs

    from .runner import RunDir  # lazy: torch; the driver process needs none

    rd = RunDir(run_dir)
    files: dict[str, str] = {}
    audits: dict[str, Any] = {}
    tool = ""
    t1 = time.perf_counter()
    for noise, name in (("uniform", "audit.json"), ("adversarial", "audit-adversarial.json")):
        j = audit(rd.rollouts_path(noise), set_path, max_failures=AUDIT_MAX_FAILURES).to_json()
        files[name] = json.dumps(j, indent=1, allow_nan=False) + "\n"
        tool = j["tool"]
        audits[noise] = {"verdict": j["verdict"], "certificate_ok": j["checks"]["certificate"]["passed"],
                         "failed_steps": int(j["failures"]["total"]), "steps": int(j["interventions"]["steps"]),
                         "interventions": int(j["interventions"]["count"])}
    return files, {"audit": audits, "audit_violations": sum(a["failed_steps"] for a in audits.values()),
                   "audit_certified": all(a["verdict"] == "certified" for a in audits.values()),
                   "audit_s": round(time.perf_counter() - t1, 2), "audit_tool": tool}


def reaudit(exp: Experiment, spec: RunSpec) -> Optional[dict[str, Any]]:
    """Audit a finished run again from its local run directory (after an audit fix or a new
    set-file check); rewrites its audit files and the audit fields of ``run.json``, keeping
    the training figures.  None (nothing written) when the run directory's rollouts are absent
    (e.g. a fresh clone: only the compact records are committed)."""
    from .runner import RunDir  # lazy: torch; the driver process needs none

    store = ResultsStore(exp)
    rec = store.record(spec)
    rd = RunDir(exp.run_dir(spec))
    if rec is None or not all(rd.rollouts_path(n).exists() for n in ("uniform", "adversarial")):
        return None
    files, fields = audit_run_dir(rd.path, spec.make_config().set_path)
    rec = {**rec, **fields, "reaudited": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    d = store.run_path(spec.run_id)
    for name, text in files.items():
        atomic_write_text(d / name, text)
    atomic_write_text(d / MARKER, json.dumps(rec, indent=1, allow_nan=False) + "\n")
    return rec


# ----------------------------------------------------------------------------- results store
class ResultsStore:
    """The committed record of finished runs (module docstring)."""

    def __init__(self, exp: Experiment):
        self.exp = exp
        self.dir = exp.results_dir
        self.runs = exp.results_dir / "runs"

    def run_path(self, run_id: str) -> Path:
        return self.runs / run_id

    def record(self, spec: RunSpec) -> Optional[dict[str, Any]]:
        """The finished run's ``run.json`` or None; a spec mismatch is a :class:`UserError`."""

        p = self.run_path(spec.run_id) / MARKER
        if not p.exists():
            return None
        try:
            rec = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{p}: unreadable ({exc}); delete {p.parent} to rerun the run") from None
        want = json.loads(spec_json(spec, self.exp.root))
        have = self._migrated({**SPEC_DEFAULTS, **rec.get("spec", {})}, p.parent, spec, want)
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        sets = [k for k in diff if k in ("set_fingerprint", "init_set_fingerprint")]
        if sets and sets == diff:
            paths = ", ".join(str(getattr(spec, k.replace("fingerprint", "path"))) for k in sets)
            raise UserError(f"finished run {p.parent} was trained with another set than {paths} (its A, b or model "
                            "differ); restore that set file (e.g. 'git checkout' it), or give the experiment another "
                            f"name to train with the new set (deleting {p.parent} retrains the run)")
        if diff:
            raise UserError(f"finished run {p.parent} was made with other settings (differs in: {', '.join(diff)}); "
                            f"delete {p.parent} to rerun it, or give the experiment another name")
        return rec

    @staticmethod
    def _migrated(have: dict[str, Any], run_path: Path, spec: RunSpec, want: dict[str, Any]) -> dict[str, Any]:
        """A recorded spec with legacy ``set_sha256`` keys turned into set fingerprints (module docstring)."""

        if not any(k in have for k in LEGACY_SET_KEYS):
            return have
        have = dict(have)
        try:
            cfg = json.loads((run_path / "config.json").read_text())
        except (OSError, ValueError):
            cfg = {}
        for old, (new, path_attr) in LEGACY_SET_KEYS.items():
            sha = have.pop(old, None)
            if new in have:
                continue
            if new in cfg:  # the fingerprint the trainer recorded for the set it used
                have[new] = cfg[new]
            elif sha is None:
                have[new] = None
            else:  # no config.json: the same file bytes still identify the same set
                path = getattr(spec, path_attr)
                same = path is not None and Path(path).is_file() and \
                    hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha
                have[new] = want.get(new) if same else f"unknown (file sha256 {sha[:12]}...)"
        return have

    def write(self, run_id: str, result: dict[str, Any]) -> Path:
        """Write the compact files, then ``run.json`` (atomic; its presence marks the run finished)."""
        d = self.run_path(run_id)
        d.mkdir(parents=True, exist_ok=True)
        (d / MARKER).unlink(missing_ok=True)
        for name, text in result["files"].items():
            atomic_write_text(d / name, text)
        atomic_write_text(d / MARKER, json.dumps(result["record"], indent=1, allow_nan=False) + "\n")
        return d


# ----------------------------------------------------------------------------- status
@dataclass
class GridStatus:
    """Which runs of the grid are finished (in results/), partial (a run directory exists) or new."""

    finished: list[RunSpec] = field(default_factory=list)
    partial: list[RunSpec] = field(default_factory=list)
    new: list[RunSpec] = field(default_factory=list)

    @property
    def todo(self) -> list[RunSpec]:
        return self.partial + self.new


def grid_status(exp: Experiment) -> GridStatus:
    """Classify every run (raises :class:`UserError` on a finished run with other settings)."""
    from .runner import RunDir  # lazy: torch; the driver process needs none

    store = ResultsStore(exp)
    st = GridStatus()
    for spec in exp.runs:
        if store.record(spec) is not None:
            st.finished.append(spec)
        elif RunDir(exp.run_dir(spec)).has_checkpoint():
            st.partial.append(spec)
        else:
            st.new.append(spec)
    return st


# ----------------------------------------------------------------------------- backends
class Backend(Protocol):
    slots: int

    def submit(self, spec: RunSpec, run_dir: str, root: str) -> Any: ...

    def wait_one(self, pending: list[Any]) -> tuple[Any, dict[str, Any] | BaseException]: ...

    def cancel(self, pending: list[Any]) -> None: ...

    def close(self) -> None: ...


def _worker_init() -> None:  # pragma: no cover - runs in the child
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"


class LocalBackend:
    """A pool of ``workers`` local processes (``spawn``), each run with one torch thread."""

    def __init__(self, workers: int):
        self.slots = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                        initializer=_worker_init)

    def submit(self, spec: RunSpec, run_dir: str, root: str) -> Any:
        return self.pool.submit(execute_run, spec, run_dir, root, 1)

    def wait_one(self, pending: list[Any]) -> tuple[Any, dict[str, Any] | BaseException]:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        fut = next(iter(done))
        exc = fut.exception()
        return fut, (exc if exc is not None else fut.result())

    def cancel(self, pending: list[Any]) -> None:
        """Stop the runs in flight (Ctrl-C, SIGTERM): their checkpoints stay, a repeat resumes them."""
        for fut in pending:
            fut.cancel()
        for proc in list(getattr(self.pool, "_processes", {}).values()):  # running ones: stop the workers
            proc.terminate()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayBackend:
    """Runs on a Ray cluster (``address``) or a local Ray instance (``num_cpus = workers``) bound to
    127.0.0.1; connection details (token authentication, loopback) in :mod:`training.ray_connect`.

    Every task asks for one CPU.  Workers must import this package (installed on every node)
    and see the set files at the same paths; run directories are written on the worker's node.
    """

    def __init__(self, workers: Optional[int], address: Optional[str]):
        try:
            import ray  # lazy: ray is optional
        except ImportError:
            raise UserError("--backend ray needs Ray, which is not installed; "
                            "pip install -e '.[ray]' (or use --backend local)") from None

        if address:
            parse_address(address)  # a malformed address is bad input before anything starts
        self.ray = ray
        self.started = not ray.is_initialized()
        self.connection = RayConnection(ray)
        if self.started:
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}}
            if address:
                self.connection.connect(address, **kw)
            else:
                self.connection.start_local(workers or os.cpu_count() or 1, **kw)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = workers or max(1, cpus)
        self.remote = ray.remote(num_cpus=1, max_retries=0)(execute_run)

    def submit(self, spec: RunSpec, run_dir: str, root: str) -> Any:
        return self.remote.remote(spec, run_dir, root, 1)

    def wait_one(self, pending: list[Any]) -> tuple[Any, dict[str, Any] | BaseException]:
        ready, _ = self.ray.wait(pending, num_returns=1)
        ref = ready[0]
        try:
            return ref, self.ray.get(ref)
        except Exception as exc:  # RayTaskError wraps the worker's exception
            cause = getattr(exc, "cause", None)
            return ref, cause if isinstance(cause, BaseException) else exc

    def cancel(self, pending: list[Any]) -> None:
        """Stop the tasks in flight (Ctrl-C, SIGTERM); their checkpoints stay on the workers."""
        for ref in pending:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is gone
                pass

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.connection.close()


def make_backend(name: str, workers: Optional[int], address: Optional[str]) -> Backend:
    """``local`` or ``ray`` (see the classes); raises :class:`UserError` for a bad choice."""
    if name == "local":
        if address:
            raise UserError("--address applies to --backend ray only")
        return LocalBackend(workers or os.cpu_count() or 1)
    if name == "ray":
        return RayBackend(workers, address)
    raise UserError(f"unknown backend {name!r}; choose local or ray")


# ----------------------------------------------------------------------------- driver
@dataclass
class RunOutcome:
    spec: RunSpec
    ok: bool
    message: str
    record: Optional[dict[str, Any]] = None


def run_grid(exp: Experiment, specs: list[RunSpec], backend: Backend,
             on_event: Callable[[str, RunOutcome | RunSpec, int, int], None]) -> list[RunOutcome]:
    """Run ``specs`` with at most ``backend.slots`` in flight; write each finished run to results/.

    ``on_event(kind, item, running, left)`` is called with ``kind`` ``"start"`` (item: the spec)
    and ``"done"`` (item: the :class:`RunOutcome`).  A failing run is reported and the others go on.
    """
    store = ResultsStore(exp)
    exp.runs_dir.mkdir(parents=True, exist_ok=True)
    queue = list(specs)
    inflight: dict[Any, RunSpec] = {}
    outcomes: list[RunOutcome] = []

    def fill() -> None:
        while queue and len(inflight) < backend.slots:
            spec = queue.pop(0)
            inflight[backend.submit(spec, str(exp.run_dir(spec)), str(exp.root))] = spec
            on_event("start", spec, len(inflight), len(queue))

    try:
        fill()
        while inflight:
            handle, res = backend.wait_one(list(inflight))
            spec = inflight.pop(handle)
            if isinstance(res, BaseException):
                if isinstance(res, KeyboardInterrupt):
                    raise res
                msg = str(res).splitlines()[0] if str(res) else type(res).__name__
                if not isinstance(res, UserError):
                    msg = f"{type(res).__name__}: {msg}"
                    _log_failure(exp, spec, res)
                out = RunOutcome(spec, False, msg)
            else:
                store.write(spec.run_id, res)
                rec = res["record"]
                audit_txt = "certified" if rec["audit_certified"] else f"{rec['audit_violations']} violations"
                out = RunOutcome(spec, True, f"return {rec['return_uniform']:.2f}, {rec['wall_time_s']:.0f} s, "
                                             f"audit {audit_txt}", rec)
            outcomes.append(out)
            fill()
            on_event("done", out, len(inflight), len(queue))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the runs in flight (their checkpoints are kept)
        backend.cancel(list(inflight))
        raise
    return outcomes


def _log_failure(exp: Experiment, spec: RunSpec, exc: BaseException) -> None:
    """Full traceback of an unexpected worker failure beside the run directory."""
    try:
        exp.runs_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        (exp.runs_dir / f"{spec.run_id}.error.txt").write_text(text)
    except OSError:
        print(f"could not write the traceback of {spec.run_id}", file=sys.stderr)

