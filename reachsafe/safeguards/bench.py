"""``reachsafe bench safeguards``: our safeguards vs. a cvxpylayers projection vs. one simulator step.

For each set file and batch size B, on the same states (in P, half of them near its
boundary) and actions (uniform in [-1.5, 1.5]^m, so many are unsafe), the median wall time
of one *forward + backward* call (and its CPU-time ratio to the simulator step, below) (gradients to states and
actions) of

* each registered safeguard kind (``none``, ``projection``, ``raymask``, ``raymask-tanh``, ...),
* a cvxpylayers projection layer ``argmin |z - a|^2 s.t. G z <= h`` with ``G, h`` of
  ``S(x)`` (all k + 2m rows) as batched parameters: the approach of the paper's code
  (optional dependency ``pip install cvxpylayers``; never imported by the package itself),
* one simulator step ``system.step(x, a, w)``.

cvxpylayers cells whose time, extrapolated linearly from the largest batch measured, would
exceed ``--cvx-budget`` seconds are skipped (and say so).  The largest deviation between
cvxpylayers' projection and ours is reported too (solver tolerance).

For m >= 3 (``--actions``, default 3,4,6) the maps themselves are timed on random safe-action
polytopes ``S = {z : G z <= h}`` (12 random facets through the box ``[-1, 1]^m``, each with an
interior), forward + backward with gradients to ``a, G, h``, against the same cvxpylayers
layer; a model file with m >= 3 actions and its set can be benchmarked as a whole with ``--set``.

Shared machines: the run uses one torch thread unless ``--threads`` says otherwise and
prints the thread count, the device and the load average, with a warning when the load
exceeds the number of cores (times are then inflated).  The simulator step and the
safeguards are timed in interleaved rounds (each round calls each once), and the ratio to the
step is the median over rounds of the per-round ratio of process CPU times: both sides of each
ratio see the same load, and CPU time excludes the time spent waiting for a core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..commands._common import format_table
from ..errors import UserError
from ..repository import repository_root
from ..setfile import SetFile, load_set
from ..sets.rows import normalize_rows
from ..systems import available_systems, get_system
from . import KINDS, make_safeguard
from .actionset import tolerances
from .base import MAX_ACTIONS
from .projection import project
from .raymask import ray_mask

__all__ = ["run", "sample_states", "cvxpylayers_projection"]

_CPU = torch.device("cpu")  # the default device of the benchmark

def default_sets() -> list[Path]:
    """``data/<system>.json`` for each built-in system if present, else ``data/published/<system>.json``,
    in the repository found from the working folder (:func:`reachsafe.repository.repository_root`)."""
    root = repository_root()
    if root is None:
        return []
    out = []
    for name in available_systems():
        for cand in (root / "data" / f"{name}.json", root / "data" / "published" / f"{name}.json"):
            if cand.exists():
                out.append(cand)
                break
    return out


def sample_states(sf: SetFile, N: int, rng: np.random.Generator) -> np.ndarray:
    """States of P along random rays from its Chebyshev centre: half uniform in ray length, half in the outer 10 %."""
    A, b = normalize_rows(sf.A, sf.b)
    x0, _ = sf.polytope().chebyshev_center()
    d = rng.normal(size=(N, A.shape[1]))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    Ad = d @ A.T
    t = np.where(Ad > 0, (b - A @ x0) / np.where(Ad > 0, Ad, 1.0), np.inf).min(1)
    frac = np.where(rng.uniform(size=N) < 0.5, rng.uniform(0, 1, N), rng.uniform(0.9, 1.0 - 1e-9, N))
    return x0 + (frac * t)[:, None] * d


def states_with_safe_actions(sf: SetFile, system, N: int, rng: np.random.Generator, dtype: torch.dtype,
                             tries: int = 20) -> torch.Tensor:
    """:func:`sample_states`, resampling states whose ``S(x)`` is empty (sets that are not invariant)."""
    sg = make_safeguard("projection", system, sf)
    x = sample_states(sf, N, rng)
    for _ in range(tries):
        _, info = sg(torch.tensor(x), torch.zeros(N, system.m, dtype=torch.float64), return_info=True)
        bad = info.unsafe.numpy()
        if not bad.any():
            break
        x[bad] = sample_states(sf, int(bad.sum()), rng)
    return torch.tensor(x, dtype=dtype)


def cvxpylayers_projection(M: int, m: int):
    """A cvxpylayers layer ``(G [B, M, m], h [B, M], a [B, m]) -> z [B, m]``, or None if not installed."""
    try:
        import cvxpy as cp  # lazy: cvxpy only for the cvxpylayers baseline
        from cvxpylayers.torch import CvxpyLayer
    except ImportError:
        return None
    G, h, a = cp.Parameter((M, m)), cp.Parameter(M), cp.Parameter(m)
    z = cp.Variable(m)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(z - a)), [G @ z <= h])
    layer = CvxpyLayer(prob, parameters=[G, h, a], variables=[z])
    return lambda Gb, hb, ab: layer(Gb, hb, ab)[0]


def _time(fn: Callable[[], object], repeats: int, max_seconds: float = 30.0) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up (fewer if slow)."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > max_seconds:
            break
    return statistics.median(times)


def _interleaved(fns: dict[str, Callable[[], object]], rounds: int, ref: str) -> dict[str, tuple[float, float]]:
    """``{name: (median wall seconds, median CPU-time ratio to ref)}`` of calls made in interleaved rounds.

    Each round calls every function once, in turn; the ratio of a function to ``ref`` is taken per
    round from the process CPU time (``time.process_time``), so that both see the same load, and its
    median over the rounds is reported: on a shared machine, load from other processes inflates wall
    times (a process waiting for a core) far more than the CPU time of the work itself.
    """
    for f in fns.values():
        f()
    walls: dict[str, list[float]] = {k: [] for k in fns}
    cpus: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            f()
            cpus[k].append(time.process_time() - c0)
            walls[k].append(time.perf_counter() - w0)
    out = {}
    for k in fns:
        ratios = [c / max(r, 1e-9) for c, r in zip(cpus[k], cpus[ref])]
        out[k] = (statistics.median(walls[k]), statistics.median(ratios))
    return out


def _fwd_bwd(
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, a: torch.Tensor
) -> Callable[[], None]:
    def call() -> None:
        xs = x.detach().clone().requires_grad_(True)
        as_ = a.detach().clone().requires_grad_(True)
        out = f(xs, as_)
        out.sum().backward()

    return call


def machine_line(device: torch.device) -> tuple[str, str | None]:
    """``(line, warning)``: torch threads, device, cores and the 1/5/15-minute load average."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()
    except OSError:  # not available on this platform
        load = (float("nan"),) * 3
    line = (f"torch threads {torch.get_num_threads()}, device {device}, {cores} cores, load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    warn = None
    if load[0] > cores:
        warn = (f"WARNING: load average {load[0]:.2f} exceeds the {cores} cores: other processes compete for the "
                "CPU and the times below are inflated; rerun on a quiet machine")
    return line, warn


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"``; a CUDA device that does not exist is a one-line error."""
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device must be cpu, cuda or cuda:N, got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available on this machine; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device must be cpu, cuda or cuda:N, got {name!r}")
    return dev


def _times(r: float) -> str:
    return f"{r:.0f}x" if r >= 10 else f"{r:.2g}x"


def _ms(t: float | None) -> str:
    return "-" if t is None else (f"{t * 1e3:.3g}" if t < 1 else f"{t * 1e3:.0f}")


def bench_set(path: Path, batches: list[int], repeats: int, dtype: torch.dtype, cvx_budget: float,
              use_cvx: bool, seed: int, device: torch.device = _CPU) -> str:
    sf = load_set(path)
    system = get_system(sf.model_file or sf.system)  # a model file of the user's own is loaded by its path
    rng = np.random.default_rng(seed)
    guards = {k: make_safeguard(k, system, sf).to(device) for k in KINDS}
    k, m = sf.A.shape[0], system.m
    cvx = cvxpylayers_projection(k + 2 * m, m) if use_cvx else None
    note = ""
    if use_cvx and cvx is None:
        note = "cvxpylayers is not installed (pip install cvxpylayers): its column is empty"
    rows: list[list[str]] = []
    cvx_per_state: float | None = None
    for B in batches:
        x = states_with_safe_actions(sf, system, B, rng, dtype).to(device)
        a = torch.tensor(rng.uniform(-1.5, 1.5, (B, m)), dtype=dtype, device=device)
        w = torch.tensor(rng.uniform(system.noise_lo, system.noise_hi, (B, system.p)), dtype=dtype, device=device)
        fns: dict[str, Callable[[], object]] = {"simulator step": _fwd_bwd(lambda xx, aa: system.step(xx, aa, w), x, a)}
        fns.update({kind: _fwd_bwd(sg, x, a) for kind, sg in guards.items()})
        timed = _interleaved(fns, repeats, "simulator step")
        t_step = timed["simulator step"][0]
        t_cvx, dev, cvx_note = None, None, ""
        if cvx is not None:
            est = None if cvx_per_state is None else cvx_per_state * B
            if est is not None and est * 2 > cvx_budget:
                cvx_note = f"skipped (est. {est:.0f} s per call)"
            else:
                x64, a64 = x.double().cpu(), a.double().cpu()
                cpu_guard = make_safeguard("projection", system, sf)
                G, h = cpu_guard.safe_action_set(x64)
                try:
                    t_cvx = _time(_fwd_bwd(lambda xx, aa: cvx(*cpu_guard.safe_action_set(xx), aa), x64, a64),
                                  repeats if (est or 0) < 2 else 1, max_seconds=cvx_budget)
                    cvx_per_state = t_cvx / B
                    with torch.no_grad():
                        z = cvx(G, h, a64)
                        ours = make_safeguard("projection", system, sf, tighten=1e-12, margin=0.0)(x64, a64)
                    dev = float((z - ours).abs().max())
                except Exception as exc:  # noqa: BLE001 - a solver failure is a result, not a crash
                    cvx_note = f"failed: {type(exc).__name__}: {str(exc)[:40]}"
        for kind in guards:
            t, ratio_step = timed[kind]
            ratio = "-" if t_cvx is None else _times(t_cvx / t)
            rows.append([str(B), kind, _ms(t), f"{t / B * 1e6:.3g}", f"{ratio_step:.2f}",
                         _ms(t_cvx) if t_cvx is not None else (cvx_note or "-"), ratio,
                         "-" if dev is None or kind != "projection" else f"{dev:.1e}"])
        rows.append([str(B), "simulator step", _ms(t_step), f"{t_step / B * 1e6:.3g}", "1", "", "", ""])
    head = (f"set {path} ({sf.system}, {k} facets{', certified' if sf.certified else ''}), ours in {str(dtype)[6:]}, "
            f"m = {m}, forward+backward, {repeats} interleaved rounds (time: median wall; vs step: median per-round "
            f"CPU-time ratio), {torch.get_num_threads()} torch threads, device {device}")
    table = format_table(rows, ["batch", "method", "time [ms]", "us/state", "vs step", "cvxpylayers [ms]",
                                "cvx/ours", "max|cvx-ours|"])
    return "\n".join([head, table] + ([note] if note else []))


def random_polytopes(
    m: int, B: int, K: int, rng: np.random.Generator, r_min: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """``G [B, K + 2m, m]``, ``h``: K random facets plus the box ``[I; -I]``, each set containing a ball of radius
    ``r_min``."""
    G = rng.normal(size=(B, K, m))
    p = rng.uniform(-0.5, 0.5, (B, m))
    nrm = np.linalg.norm(G, axis=-1)
    h = np.einsum("bkm,bm->bk", G, p) + rng.uniform(r_min, 1.0, (B, K)) * nrm  # p + ball of r_min inside
    box = np.broadcast_to(np.vstack([np.eye(m), -np.eye(m)]), (B, 2 * m, m))
    return np.concatenate([G, box], 1), np.concatenate([h, np.ones((B, 2 * m))], 1)


def bench_actions(ms: list[int], batches: list[int], repeats: int, cvx_budget: float, use_cvx: bool, seed: int,
                  device: torch.device, K: int = 12) -> str:
    """Maps alone on random polytopes for m >= 3 (module docstring): ours vs. cvxpylayers, float64."""

    rng = np.random.default_rng(seed)
    tol = tolerances(torch.float64)
    rows: list[list[str]] = []
    for m in ms:
        cvx = cvxpylayers_projection(K + 2 * m, m) if use_cvx else None
        lo = -torch.ones(m, dtype=torch.float64, device=device)
        hi = torch.ones(m, dtype=torch.float64, device=device)
        cvx_per_state: float | None = None
        for B in batches:
            Gn, hn = random_polytopes(m, B, K, rng)
            G, h = (torch.tensor(t, device=device) for t in (Gn, hn))
            a = torch.tensor(rng.uniform(-1.5, 1.5, (B, m)), device=device)

            def timed(f):
                def call() -> None:
                    Gr, hr, ar = (t.clone().requires_grad_(True) for t in (G, h, a))
                    f(ar, Gr, hr).sum().backward()
                return _time(call, repeats)

            t_cvx, dev, note = None, None, ""
            if cvx is not None:
                est = None if cvx_per_state is None else cvx_per_state * B
                if est is not None and est * 2 > cvx_budget:
                    note = f"skipped (est. {est:.0f} s per call)"
                else:
                    Gc, hc, ac = G.cpu(), h.cpu(), a.cpu()
                    try:
                        t_cvx = _time(
                            lambda: cvx(*(t.clone().requires_grad_(True) for t in (Gc, hc, ac))).sum().backward(),
                            repeats if (est or 0) < 2 else 1,
                            max_seconds=cvx_budget,
                        )
                        cvx_per_state = t_cvx / B
                        with torch.no_grad():
                            dev = float((cvx(Gc, hc, ac) - project(a, G, h).cpu()).abs().max())
                    except Exception as exc:  # noqa: BLE001 - a solver failure is a result, not a crash
                        note = f"failed: {type(exc).__name__}: {str(exc)[:40]}"
            maps = {"projection": lambda aa, GG, hh: project(aa, GG, hh),
                    "raymask": lambda aa, GG, hh: ray_mask(aa, GG, hh, lo, hi, tol, "linear"),
                    "raymask-tanh": lambda aa, GG, hh: ray_mask(aa, GG, hh, lo, hi, tol, "tanh")}
            for kind, f in maps.items():
                t = timed(f)
                rows.append([str(m), str(B), kind, _ms(t), f"{t / B * 1e6:.3g}",
                             _ms(t_cvx) if t_cvx is not None else (note or "-"),
                             "-" if t_cvx is None else _times(t_cvx / t),
                             "-" if dev is None or kind != "projection" else f"{dev:.1e}"])
    head = (
        f"maps alone on random S(x) with {K} facets + the box, m >= 3, float64, forward+backward (grads to a, G, h), "
        f"median of {repeats}, {torch.get_num_threads()} torch threads, device {device}"
    )
    return "\n".join([head, format_table(rows, ["m", "batch", "method", "time [ms]", "us/state", "cvxpylayers [ms]",
                                                "cvx/ours", "max|cvx-ours|"])])


def run(args: argparse.Namespace) -> int:
    warnings.filterwarnings(
        "ignore", message="safeguard: S\\(x\\) is empty"
    )  # non-invariant sets: states are resampled
    try:
        batches = [int(s) for s in str(args.batches).split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--batches must be comma-separated integers, got {args.batches!r}") from None
    if not batches or min(batches) < 1:
        raise UserError("--batches needs positive batch sizes, e.g. 1,64,1024")
    if args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    sets = [Path(s) for s in args.sets] if args.sets else default_sets()
    if not sets:
        raise UserError("no set file found; pass --set FILE")
    try:
        ms = [int(s) for s in str(args.actions).split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--actions must be comma-separated integers, e.g. 3,4,6; got {args.actions!r}") from None

    if any(not 1 <= m <= MAX_ACTIONS for m in ms):
        raise UserError(f"--actions: each m must be in 1..{MAX_ACTIONS}, got {args.actions!r}")
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    if args.threads < 1:
        raise UserError("--threads must be at least 1")
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    line, warn = machine_line(device)
    print(line)
    if warn:
        print(warn)
    print()
    for i, path in enumerate(sets):
        if i:
            print()
        print(
            bench_set(path, batches, args.repeats, dtype, args.cvx_budget, not args.no_cvxpylayers, args.seed, device),
            flush=True,
        )
    if ms:
        print()
        print(bench_actions(ms, batches, args.repeats, args.cvx_budget, not args.no_cvxpylayers, args.seed, device),
              flush=True)
    print("\ncvx/ours: time of the cvxpylayers projection divided by the safeguard's; vs step: safeguard time "
          "divided by one simulator step; max|cvx-ours|: largest difference of cvxpylayers' projection from "
          "the exact one (solver tolerance).")
    return 0
