"""The whole pipeline on the pendulum in a few minutes: certified set, safeguarded SHAC, audit, HTML report.

Steps: (1) load the certified set data/pendulum.json of the repository the current folder is in
(if there is none, or it is missing or made for another model version, compute and certify one
into OUT/pendulum.json, ~5 s);
(2) train SHAC with the ray-mask safeguard for --steps environment steps with one torch
thread, initial states uniform in the set; (3) audit the final rollouts (uniform and
adversarial noise) against the set, re-checking its proof; (4) write the HTML and JSON audit
reports.  Works from any working directory; everything is written into OUT (default
runs/demo-DATE-TIME in the repository, else in the current folder).

Exit codes: 0 every audited step certified, 1 a violation, 2 bad input.

Examples:
  reachsafe demo
  reachsafe demo --out /tmp/demo --steps 5000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import UserError
from ..repository import repository_root
from ..setfile import SetFileError, load_set
from ..systems import get_system
from ._common import check_output_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR",
                   help="output folder, new or empty (default runs/demo-DATE-TIME in the repository, else in the "
                        "current folder)")
    p.add_argument(
        "--steps", type=int, default=20_000, metavar="N", help="SHAC budget in environment steps (default 20000)"
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                   help="no progress (bars on a terminal, plain lines in logs)")


def _set_for_demo(out, progress: bool):
    """``(SetFile, note)``: the repository's certified pendulum set, or one computed into ``out``."""

    root = repository_root()
    repo_set = root / "data" / "pendulum.json" if root is not None else None
    reason = f"{repo_set} does not exist" if repo_set is not None else "not inside a repository with data/"
    if repo_set is not None and repo_set.is_file():
        try:
            sf = load_set(repo_set, system="pendulum")
            if sf.certified:
                return sf, f"certified set {repo_set} ({sf.A.shape[0]} facets)"
            reason = f"{repo_set} is not certified"
        except SetFileError as exc:
            reason = str(exc)
    from verification.synthesis.driver import compute_certified_invariant  # lazy: off the CLI start-up path

    target = out / "pendulum.json"
    print(f"computing a certified pendulum set into {target} ({reason})", flush=True)
    oc = compute_certified_invariant(get_system("pendulum"), target, time_budget=600.0, progress=progress)
    if oc.code != 0:
        raise UserError(f"could not certify a pendulum set: {oc.message}")
    return load_set(target, system="pendulum"), f"certified set {target} (computed now)"


def run(args: argparse.Namespace) -> int:
    if args.steps <= 0:
        raise UserError(f"--steps must be positive, got {args.steps}")
    default_out = (repository_root() or Path.cwd()) / "runs" / time.strftime("demo-%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else default_out
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not an empty folder; choose a new one")

    check_output_dir(out, "--out")  # not a file, and creatable in a writable folder (before any work)
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)  # (runs/ is gitignored: absent on a fresh clone)

    sf, note = _set_for_demo(out, not args.no_progress)
    print(f"[1/4] set     {note}", flush=True)

    from training.runner import make_config, train  # lazy: torch, off the CLI start-up

    cfg, _ = make_config("pendulum", "shac", "raymask", set_path=str(sf.path), seed=args.seed, steps=args.steps,
                         eval_every=max(1, args.steps // 5), threads=1)
    run_dir = out / "run"
    print(f"[2/4] train   SHAC + ray mask, {args.steps} env steps, 1 thread -> {run_dir}", flush=True)
    summary = train(cfg, run_dir, progress=not args.no_progress, log=lambda s: print(f"        {s}", flush=True))
    u = summary["uniform"]
    print(f"        return {u['return_mean']:.2f} +- {u['return_std']:.2f} over {u['episodes']} episodes in "
          f"{summary['wall_time_s']:.0f} s; interventions {100 * u['intervention_rate']:.1f}% of steps", flush=True)

    from verification.audit import audit  # lazy: off the CLI start-up path
    from verification.audit.report import write_html, write_json

    print("[3/4] audit   every recorded step against the certified set (proof re-checked)", flush=True)
    ok = True
    for noise, stem in (("uniform", "audit"), ("adversarial", "audit-adversarial")):
        res = audit(run_dir / ("rollouts.npz" if noise == "uniform" else f"rollouts-{noise}.npz"), sf)
        write_json(res, out / f"{stem}.json")
        write_html(res, out / f"{stem}.html")
        steps = sum(c.total for c in res.checks[1:2])
        verdict = "CERTIFIED SAFE" if res.ok else f"VIOLATIONS ({sum(c.failed for c in res.checks)} failing checks)"
        print(f"        {noise:11s} noise: {verdict}, {steps} steps checked", flush=True)
        ok = ok and res.ok
    report = out / "audit.html"
    print(f"[4/4] report  {report}", flush=True)
    print(f"done in {time.perf_counter() - t0:.0f} s; open {report} in a browser "
          f"(adversarial noise: {out / 'audit-adversarial.html'})")
    if not ok:
        print("audit found violations; see the report", file=sys.stderr)
    return 0 if ok else 1
