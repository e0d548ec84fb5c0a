"""Run a grid of training runs (systems x algorithms x safeguards x variants x seeds) from a TOML file,
audit every finished run, and aggregate the results into a table and learning-curve plots.

The TOML format is documented in README.md ("Experiments") and training/experiment.py.
Run directories (checkpoints) go to runs/experiments/NAME/RUN_ID (gitignored); the compact
record of every finished run (config, metrics, summary, audit JSONs, run.json) goes to
results/NAME/runs/RUN_ID and the aggregate to results/NAME/{table.md,summary.md,table.csv,aggregate.json,
curves/*.png}, with the exact command appended to results/NAME/commands.txt.

Resumable: runs whose results/NAME/runs/RUN_ID/run.json exists are skipped (also on a fresh
clone), interrupted runs continue from their last checkpoint; just repeat the command.

Backends: local processes (default; --workers N, default = cores, 1 torch thread per run) or a
Ray cluster (--backend ray [--address HOST:PORT]; needs pip install -e '.[ray]'; without
--address a local Ray instance with --workers CPUs is started, bound to 127.0.0.1).  With token
authentication (Ray >= 2.5x) the driver uses the token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
~/.ray/auth_token; README "Experiments" shows how to start a cluster.

Exit codes: 0 every run finished and every safeguarded run's audit certified every step,
1 a run failed or a safeguarded run has audit violations, 2 bad input (one line).

Examples:
  reachsafe experiment experiments/smoke.toml                   # tiny grid, < 1 min
  reachsafe experiment experiments/paper.toml --dry-run         # what would run, what is done
  reachsafe experiment experiments/paper.toml --workers 2
  reachsafe experiment experiments/paper.toml --only 'pendulum-shac-*-s0'   # a slice of the grid
  reachsafe experiment experiments/paper.toml --backend ray --address 127.0.0.1:6379
  reachsafe experiment experiments/paper.toml --report          # aggregate only, train nothing
  reachsafe experiment experiments/paper.toml --reaudit         # audit finished runs again, train nothing
"""

from __future__ import annotations

import argparse
import shlex
import sys
from fnmatch import fnmatchcase
from pathlib import Path

from ..errors import UserError
from ..progress import progress_bar
from ..setfile import load_set
from ._common import check_output_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.toml", help="experiment file (e.g. experiments/paper.toml)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="where runs execute: local processes (default) or a Ray cluster")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster address (e.g. auto or ray://host:10001); "
                   "default: start a local Ray instance")
    p.add_argument("--workers", type=int, metavar="N",
                   help="runs in parallel (default: number of cores; Ray: the cluster's CPUs)")
    p.add_argument(
        "--dry-run", action="store_true", help="list the grid and which runs are finished/partial/new; run nothing"
    )
    p.add_argument(
        "--report", action="store_true", help="only aggregate the finished runs into results/NAME; train nothing"
    )
    p.add_argument("--reaudit", action="store_true",
                   help="audit the finished runs again from their local run directories (e.g. after an audit fix), "
                        "update their records, aggregate; train nothing (runs without local rollouts are skipped)")
    p.add_argument("--only", metavar="GLOB", action="append",
                   help="run only the runs whose id matches GLOB, e.g. 'pendulum-shac-*-s0' (repeatable: any may "
                        "match); the report still covers the whole grid")
    p.add_argument("--results-dir", metavar="DIR", help="override [experiment] results_dir")
    p.add_argument("--runs-dir", metavar="DIR", help="override [experiment] runs_dir")
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                   help="one line per finished run instead of a progress bar (logs get plain lines anyway)")


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.address and args.backend != "ray":
        raise UserError("--address applies to --backend ray only")
    if sum(map(bool, (args.dry_run, args.report, args.reaudit))) > 1:
        raise UserError("--dry-run, --report and --reaudit exclude each other")

    from training.experiment import load_experiment  # lazy: torch, off the CLI start-up
    from training.experiment_exec import grid_status

    exp = load_experiment(args.config)
    if args.results_dir:
        exp.results_dir = Path(args.results_dir).resolve()
    if args.runs_dir:
        exp.runs_dir = Path(args.runs_dir).resolve()
    status = grid_status(exp)
    n = len(exp.runs)
    print(f"experiment {exp.name}: {n} runs ({len(status.finished)} finished, {len(status.partial)} partial, "
          f"{len(status.new)} new); results {exp.results_dir}, run directories {exp.runs_dir}")
    if args.only:
        picked = {s.run_id for s in exp.runs if any(fnmatchcase(s.run_id, o) for o in args.only)}
        if not picked:
            raise UserError(f"--only {' '.join(args.only)} matches no run id of the grid (see --dry-run)")
        status.partial = [s for s in status.partial if s.run_id in picked]
        status.new = [s for s in status.new if s.run_id in picked]
        print(f"selected by --only: {sum(s.run_id in picked for s in status.finished)} finished, "
              f"{len(status.partial)} partial, {len(status.new)} new")

    if args.dry_run:
        for label, specs in (("finished", status.finished), ("partial", status.partial), ("new", status.new)):
            for s in specs:
                print(f"  {label:8s} {s.run_id}")
        return 0
    command = (
        "reachsafe experiment " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 2 and sys.argv[1] == "experiment"
        else f"reachsafe experiment {shlex.quote(str(args.config))}"
    )
    _check_outputs(exp, args)
    if args.report:
        return _report(exp, None)
    if args.reaudit:
        return _reaudit(exp, [s for s in status.finished if not args.only or s.run_id in picked], args, command)

    outcomes = []
    if status.todo:
        outcomes = _execute(exp, status, args)
    else:
        print("nothing to run: every selected run of the grid is finished")
    _report(exp, command)
    failed = [o for o in outcomes if not o.ok]
    unsafe = [o for o in outcomes if o.ok and o.spec.safeguard != "none" and not o.record["audit_certified"]]
    for o in failed:
        print(f"FAILED {o.spec.run_id}: {o.message}", file=sys.stderr)
    _print_violations(exp, [(o.spec.run_id, o.record["audit_violations"]) for o in unsafe])
    if failed:
        print(f"{len(failed)} run(s) failed; fix the cause and repeat the command to continue", file=sys.stderr)
    return 1 if failed or unsafe else 0


def _check_outputs(exp, args) -> None:
    """Before any work: the results and run folders can be written, and every set in use loads with a
    certificate that binds to its proof artifact (a set never certified passes; training warns)."""

    check_output_dir(exp.results_dir, "--results-dir" if args.results_dir else "[experiment] results_dir")
    if args.report:
        return
    check_output_dir(exp.runs_dir, "--runs-dir" if args.runs_dir else "[experiment] runs_dir")
    for name, st in exp.systems.items():
        load_set(st.set_path, system=name)  # SetFileError (one line) on a certificate that does not match


def _execute(exp, status, args) -> list:
    from training.experiment_exec import make_backend, run_grid  # lazy: torch, off the CLI start-up

    todo = status.todo
    n = len(exp.runs)
    backend = make_backend(args.backend, args.workers, args.address)  # a bad cluster fails here: nothing written
    exp.results_dir.mkdir(parents=True, exist_ok=True)
    print(f"running {len(todo)} run(s) on {args.backend} with {backend.slots} worker(s) "
          f"({len(status.partial)} resumed from checkpoints)")
    sys.stdout.flush()
    bar = progress_bar(total=n, initial=len(status.finished), unit="run", file=sys.stderr, dynamic_ncols=True,
               disable=args.no_progress, desc=exp.name)
    done = len(status.finished)

    def on_event(kind, item, running, left) -> None:
        nonlocal done
        bar.set_postfix_str(f"done {done + (kind == 'done')}, running {running}, left {left}", refresh=False)
        if kind == "done":
            done += 1
            bar.update(1)
            line = f"[{done}/{n}] {'ok    ' if item.ok else 'FAILED'} {item.spec.run_id}: {item.message}"
            if args.no_progress:
                print(line, flush=True)
            else:
                bar.write(line, file=sys.stderr)
        else:
            bar.refresh()

    try:
        outcomes = run_grid(exp, todo, backend, on_event)
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted after {done}/{n} runs; checkpoints are kept: repeat the command to continue",
              file=sys.stderr)
        backend.close()
        raise
    bar.close()
    backend.close()
    print(f"{sum(o.ok for o in outcomes)} of {len(todo)} run(s) finished now; {done} of {n} in total")
    return outcomes


def _reaudit(exp, finished, args, command) -> int:
    from training.experiment_exec import reaudit  # lazy: torch, off the CLI start-up

    if not finished:
        print("nothing to audit: no selected run is finished")
        return 0
    redone, missing, unsafe = 0, [], []
    for spec in progress_bar(finished, unit="run", file=sys.stderr, dynamic_ncols=True, disable=args.no_progress,
                     desc=f"{exp.name} audit"):
        rec = reaudit(exp, spec)
        if rec is None:
            missing.append(spec.run_id)
            continue
        redone += 1
        if spec.safeguard != "none" and not rec["audit_certified"]:
            unsafe.append((spec.run_id, rec["audit_violations"]))
    print(
        f"audited again: {redone} of {len(finished)} finished run(s)"
        + (f"; {len(missing)} skipped, their rollouts are not in {exp.runs_dir} (e.g. {missing[0]})" if missing else "")
    )
    if redone:
        _report(exp, command)
    _print_violations(exp, unsafe)
    return 1 if unsafe else 0


def _print_violations(exp, unsafe: list[tuple[str, int]]) -> None:
    """One stderr line per safeguarded run with audit violations: ``(run id, failing steps)``."""
    for run_id, v in unsafe:
        print(f"AUDIT VIOLATIONS {run_id}: {v} failing steps (see {exp.results_dir / 'runs' / run_id / 'audit.json'})",
              file=sys.stderr)


def _report(exp, command) -> int:
    from training.aggregate import aggregate, table_markdown, write_report  # lazy: torch, off the CLI start-up

    stats = aggregate(exp)
    if not stats:
        print(f"no finished runs in {exp.results_dir} yet; nothing to aggregate")
        return 0
    paths = write_report(exp, stats, command)
    print(table_markdown(stats), end="")
    print(f"report        {paths['table.md']} (+ summary.md, table.csv, aggregate.json, curves/*.png)")
    return 0
