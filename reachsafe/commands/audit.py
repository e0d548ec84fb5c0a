"""Audit recorded rollouts against the certified invariant set they were guarded with.

Checks, for every episode and step: (1) the set file's certificate re-checks and the model /
set fingerprints of set file, model and rollouts agree; (2) every state lies in P and X;
(3) every executed action lies in U and keeps the successor in P for every noise value;
(4) every transition is explained by the model with noise in W.  Checks 2 and 3 are proven
for the exact reals (outward-rounded error bounds; --tol relaxes them), check 4 allows the
simulator's floating-point rounding.  See verification/audit/checks.py for the math.

Exit codes: 0 every step certified, 1 a violation or a failed certificate/fingerprint check,
2 bad input (missing, truncated or corrupt file, not an .npz archive, missing arrays, wrong shapes or
dtypes, NaN, system mismatch: the rollouts contract, reachsafe.rollouts).

Examples:
  reachsafe audit runs/pendulum-shac/ --set data/pendulum.json --html audit.html
  reachsafe audit rollouts.npz --set data/pendulum.json --json audit.json
"""

from __future__ import annotations

import argparse

from ..errors import UserError
from ..rollouts import Rollouts
from ..setfile import load_set
from ._common import check_output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rollouts", metavar="ROLLOUTS", help="rollouts .npz file or a run directory holding rollouts.npz")
    p.add_argument("--set", dest="setfile", required=True, metavar="SETFILE",
                   help="set file (JSON) the run was guarded with; its proof artifact must lie beside it")
    p.add_argument("--json", metavar="OUT", help="write the JSON summary to OUT")
    p.add_argument("--html", metavar="OUT", help="write the self-contained HTML report to OUT")
    p.add_argument("--tol", type=float, default=0.0, metavar="TAU",
                   help="accept state/action violations up to TAU (normalised distance; default 0: proven)")
    p.add_argument("--max-failures", type=int, default=1000, metavar="K",
                   help="list at most K failing items in the JSON (counts are always complete; default 1000)")
    p.add_argument("--no-recheck", action="store_true",
                   help="trust the proof artifact's recorded sha256 instead of re-running the proof checker")


def run(args: argparse.Namespace) -> int:
    for opt in ("json", "html"):
        if getattr(args, opt):
            check_output_path(getattr(args, opt), f"--{opt}")
    if args.max_failures < 0:
        raise UserError(f"--max-failures must be >= 0, got {args.max_failures}")

    from verification.audit import audit  # lazy: verification stays off the CLI start-up path

    ro = Rollouts.load(args.rollouts)
    sf = load_set(args.setfile, check_fingerprint=False, check_certificate=False)  # check 1 reports it
    res = audit(ro, sf, recheck=not args.no_recheck, tol=args.tol, max_failures=args.max_failures)
    _print_summary(res)
    if args.json:
        from verification.audit.report import write_json  # lazy: verification stays off the CLI start-up path

        print(f"json          {write_json(res, args.json)}")
    if args.html:
        from verification.audit.report import write_html  # lazy: verification stays off the CLI start-up path

        print(f"html          {write_html(res, args.html)}")
    return res.exit_code


def _print_summary(res) -> None:
    j = res.to_json()
    ro = j["rollouts"]
    verdict = "CERTIFIED SAFE" if res.ok else ("NOT CERTIFIED" if res.steps_ok else "VIOLATIONS FOUND")
    print(f"verdict       {verdict}")
    print(f"rollouts      {ro['path']} ({ro['system']}, {ro['episodes']} episodes x {ro['steps']} steps, "
          f"noise {ro['noise']}, {ro['storage_dtype']})")
    print(f"set file      {j['set']['path']} ({j['set']['facets']} facets)")
    for it in res.certificate:
        print(f"check 1       {'pass' if it.ok else 'FAIL'}  {it.name}: {it.message}")
    for k, chk in zip((2, 3, 4), res.checks):
        c = j["checks"][chk.name]
        reasons = ", ".join(f"{r} {n}" for r, n in c["failed_by_reason"].items())
        ws = c["worst_slack"]
        print(f"check {k}       {'pass' if c['failed'] == 0 else 'FAIL'}  {chk.name}: {c['passed']}/{c['total']}"
              f"{' (' + reasons + ')' if reasons else ''}, worst slack "
              f"{'n/a' if ws is None else format(ws, '.3g')}")
    print(f"interventions {j['interventions']['count']} of {j['interventions']['steps']} steps "
          f"({j['interventions']['rate']:.1%})")
    for f in j["failures"]["items"][:5]:
        print(f"failure       episode {f['episode']} step {f['step']} [{f['check']}]: {f['reason']}")
    if j["failures"]["total"] > 5:
        print(f"              ... {j['failures']['total'] - 5} more (see --json / --html)")
    print(f"time          {j['time_s']:.2f} s")
