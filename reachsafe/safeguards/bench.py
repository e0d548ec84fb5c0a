"""``reachsafe bench safeguards``: our safeguards vs. a cvxpylayers projection vs. one simulator step.

For each set file and batch size B, on the same states (in P, half of them near its
boundary) and actions (uniform in [-1.5, 1.5]^m, so many are unsafe), the median wall time
of one *forward + backward* call (gradients to states and actions) of

* each safeguard (``none``, ``projection``, ``raymask``, ``raymask-tanh``),
* a cvxpylayers projection layer ``argmin |z - a|^2 s.t. G z <= h`` with ``G, h`` of
  ``S(x)`` (all k + 2m rows) as batched parameters: the approach of the paper's code
  (optional dependency ``pip install cvxpylayers``; never imported by the package itself),
* one simulator step ``system.step(x, a, w)``.

cvxpylayers cells whose time, extrapolated linearly from the largest batch measured, would
exceed ``--cvx-budget`` seconds are skipped (and say so).  The largest deviation between
cvxpylayers' projection and ours is reported too (solver tolerance).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..commands._common import format_table
from ..errors import UserError
from ..setfile import SetFile, load_set
from ..systems import available_systems, get_system
from . import KINDS, make_safeguard

__all__ = ["run", "sample_states", "cvxpylayers_projection"]

ROOT = Path(__file__).resolve().parents[2]


def default_sets() -> list[Path]:
    """``data/<system>.json`` for each built-in system if present, else ``data/published/<system>.json``."""
    out = []
    for name in available_systems():
        for cand in (ROOT / "data" / f"{name}.json", ROOT / "data" / "published" / f"{name}.json"):
            if cand.exists():
                out.append(cand)
                break
    return out


def sample_states(sf: SetFile, N: int, rng: np.random.Generator) -> np.ndarray:
    """States of P along random rays from its Chebyshev centre: half uniform in ray length, half in the outer 10 %."""
    nr = np.linalg.norm(sf.A, axis=1)
    A, b = sf.A / nr[:, None], sf.b / nr
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
        import cvxpy as cp
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


def _fwd_bwd(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, a: torch.Tensor) -> Callable[[], None]:
    def call() -> None:
        xs = x.detach().clone().requires_grad_(True)
        as_ = a.detach().clone().requires_grad_(True)
        out = f(xs, as_)
        out.sum().backward()

    return call


def _ms(t: float | None) -> str:
    return "-" if t is None else (f"{t * 1e3:.3g}" if t < 1 else f"{t * 1e3:.0f}")


def bench_set(path: Path, batches: list[int], repeats: int, dtype: torch.dtype, cvx_budget: float,
              use_cvx: bool, seed: int) -> str:
    sf = load_set(path)
    system = get_system(sf.system)
    rng = np.random.default_rng(seed)
    guards = {k: make_safeguard(k, system, sf) for k in KINDS}
    k, m = sf.A.shape[0], system.m
    cvx = cvxpylayers_projection(k + 2 * m, m) if use_cvx else None
    note = ""
    if use_cvx and cvx is None:
        note = "cvxpylayers is not installed (pip install cvxpylayers): its column is empty"
    rows: list[list[str]] = []
    cvx_per_state: float | None = None
    for B in batches:
        x = states_with_safe_actions(sf, system, B, rng, dtype)
        a = torch.tensor(rng.uniform(-1.5, 1.5, (B, m)), dtype=dtype)
        w = torch.tensor(rng.uniform(system.noise_lo, system.noise_hi, (B, system.p)), dtype=dtype)
        t_step = _time(_fwd_bwd(lambda xx, aa: system.step(xx, aa, w), x, a), repeats)
        t_cvx, dev, cvx_note = None, None, ""
        if cvx is not None:
            est = None if cvx_per_state is None else cvx_per_state * B
            if est is not None and est * 2 > cvx_budget:
                cvx_note = f"skipped (est. {est:.0f} s per call)"
            else:
                x64, a64 = x.double(), a.double()
                G, h = guards["projection"].safe_action_set(x64)
                try:
                    t_cvx = _time(_fwd_bwd(lambda xx, aa: cvx(*guards["projection"].safe_action_set(xx), aa), x64, a64),
                                  repeats if (est or 0) < 2 else 1, max_seconds=cvx_budget)
                    cvx_per_state = t_cvx / B
                    with torch.no_grad():
                        z = cvx(G, h, a64)
                        ours = make_safeguard("projection", system, sf, tighten=1e-12, margin=0.0)(x64, a64)
                    dev = float((z - ours).abs().max())
                except Exception as exc:  # noqa: BLE001 - a solver failure is a result, not a crash
                    cvx_note = f"failed: {type(exc).__name__}: {str(exc)[:40]}"
        for kind, sg in guards.items():
            t = _time(_fwd_bwd(sg, x, a), repeats)
            ratio = "-" if t_cvx is None else f"{t_cvx / t:.0f}x"
            rows.append([str(B), kind, _ms(t), f"{t / B * 1e6:.3g}", f"{t / t_step:.2g}",
                         _ms(t_cvx) if t_cvx is not None else (cvx_note or "-"), ratio,
                         "-" if dev is None or kind != "projection" else f"{dev:.1e}"])
        rows.append([str(B), "simulator step", _ms(t_step), f"{t_step / B * 1e6:.3g}", "1", "", "", ""])
    head = (f"set {path} ({sf.system}, {k} facets{', certified' if sf.certified else ''}), ours in {str(dtype)[6:]}, "
            f"forward+backward, median of {repeats}, {torch.get_num_threads()} torch threads")
    table = format_table(rows, ["batch", "method", "time [ms]", "us/state", "vs step", "cvxpylayers [ms]",
                                "cvx/ours", "max|cvx-ours|"])
    return "\n".join([head, table] + ([note] if note else []))


def run(args: argparse.Namespace) -> int:
    import warnings

    warnings.filterwarnings("ignore", message="safeguard: S\\(x\\) is empty")  # non-invariant sets: states are resampled
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
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    if args.threads is not None:
        if args.threads < 1:
            raise UserError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    for i, path in enumerate(sets):
        if i:
            print()
        print(bench_set(path, batches, args.repeats, dtype, args.cvx_budget, not args.no_cvxpylayers, args.seed),
              flush=True)
    print("\ncvx/ours: time of the cvxpylayers projection divided by the safeguard's; vs step: safeguard time "
          "divided by one simulator step; max|cvx-ours|: largest difference of cvxpylayers' projection from "
          "the exact one (solver tolerance).")
    return 0
