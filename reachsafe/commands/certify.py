"""Prove (or refute) that a set file's polytope P is robust control invariant.

Proves P ⊆ X and: for every x in P some action a in U keeps f(x, a, w) in P for every noise
w in W, under the exact model (outward-rounded interval arithmetic, per-cell affine feedback
witnesses).  On success writes the proof artifact <stem>.proof.json beside the set file and
records the certificate in the set file (atomic writes; --no-write writes nothing).
A refutation prints a state x* in P with no safe action (Farkas proof) or outside X.

--recheck validates an existing artifact with a small search-free checker instead.

Exit codes: 0 certified / artifact valid, 1 not invariant / artifact invalid,
2 bad input, 3 undecided (budget exhausted).

Examples:
  reachsafe certify data/published/pendulum.json --no-write
  reachsafe certify data/published/quadrotor.json --no-write --json result.json
  reachsafe certify data/pendulum.json --recheck
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from ..certificate import artifact_path
from ..errors import UserError
from ..setfile import atomic_write_text, load_set
from ..workdir import remove_stale_workdirs
from ._common import check_output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("setfile", help="set file (JSON)")
    p.add_argument("--json", metavar="OUT", help="write a machine-readable result to OUT")
    p.add_argument("--budget", type=int, default=200_000, metavar="CELLS",
                   help="maximum number of cell LPs before giving up as undecided (default 200000)")
    p.add_argument("--time-budget", type=float, default=900.0, metavar="S",
                   help="seconds before giving up as undecided (default 900)")
    p.add_argument("--recheck", action="store_true",
                   help="validate the stored proof artifact (no search, no LP solver) instead of certifying")
    p.add_argument("--no-write", action="store_true", help="prove without writing the artifact or the certificate")
    p.add_argument("--quiet", action="store_true", help="no progress (a bar on a terminal, plain lines in logs)")


def _write_json(path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=False, default=str) + "\n")


def _finite(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def _recheck(args: argparse.Namespace, sf) -> int:
    from verification.certification.certifier import artifact_path_for  # lazy: off the CLI start-up path
    from verification.certification.recheck import RecheckResult, file_sha256, recheck_artifact

    cert = sf.certificate or {}
    if not cert:
        raise UserError(f"{args.setfile}: not certified (no certificate, no proof artifact), nothing to re-check; "
                        f"prove it first with 'reachsafe certify {args.setfile}'")
    try:
        art = artifact_path(sf.path, cert)
    except ValueError as exc:
        art, res = artifact_path_for(sf.path), RecheckResult(False, str(exc))
    else:
        if not art.exists():
            res = RecheckResult(False, f"proof artifact {art.name} is missing beside the set file")
        else:
            res = recheck_artifact(sf, art, progress=not args.quiet)
    if res.valid and cert.get("artifact_sha256") and cert["artifact_sha256"] != file_sha256(art):
        res.valid, res.message = False, "artifact differs from the one recorded in the set file (sha256 mismatch)"
    if res.valid and cert.get("model_fingerprint") not in (None, sf.model_fingerprint):
        res.valid, res.message = False, "certificate was made for another model fingerprint"
    if res.valid and sf.certificate_problem:  # the re-checker passed, but the recorded binding is off
        res.valid, res.message = False, sf.certificate_problem
    print(f"recheck       {'VALID' if res.valid else 'INVALID'}: {res.message}")
    print(f"artifact      {art}")
    if res.valid:
        print(f"cells         {res.cells}")
        print(f"min slack     {res.min_slack:.6g}")
    if args.json:
        _write_json(args.json, {"recheck": "valid" if res.valid else "invalid", "message": res.message,
                                "artifact": str(art), "cells": res.cells, "bad_cell": res.bad_cell,
                                "min_slack": _finite(res.min_slack)})
    return 0 if res.valid else 1


def run(args: argparse.Namespace) -> int:
    if args.json:
        check_output_path(args.json, "--json")
    if args.budget < 1:
        raise UserError(f"--budget must be >= 1, got {args.budget}")
    if not args.time_budget > 0:
        raise UserError(f"--time-budget must be > 0, got {args.time_budget}")
    sf = load_set(args.setfile, check_certificate=False)  # certifying (or re-checking) does not rely on it
    if not args.recheck and not args.no_write:
        folder = Path(args.setfile).parent
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"{args.setfile}: folder {folder} is not writable, so the certificate and proof artifact "
                            "cannot be written; pass --no-write, or copy the set file to a writable folder")
        remove_stale_workdirs(folder)  # left by a killed compute-invariant beside this set
    if args.recheck:
        return _recheck(args, sf)

    from verification.certification.certifier import certify  # lazy: off the CLI start-up path

    res = certify(sf, budget=args.budget, time_budget=args.time_budget, progress=not args.quiet,
                  write=not args.no_write)
    label = {"certified": "CERTIFIED", "not_invariant": "NOT INVARIANT", "undecided": "UNDECIDED"}[res.status]
    print(f"verdict       {label}: {res.message}")
    print(f"set file      {args.setfile} ({sf.system}, {sf.A.shape[0]} facets)")
    print(f"cells         {res.cells}")
    if res.min_slack is not None:
        print(f"min slack     {res.min_slack:.6g} (rigorous, normalised by ||A_i||)")
    print(f"time          {res.time_s:.1f} s")
    if res.counterexample is not None:
        ce = res.counterexample
        xs = ", ".join(f"{v:.17g}" for v in ce.x)
        print(f"counterexample x* = [{xs}]")
        if ce.reason == "no_safe_action":
            print(f"              no action keeps every noisy successor in P "
                  f"(Farkas margin {ce.margin:.3g}, LP slack {ce.lp_slack:.3g})")
        else:
            print(f"              x* is in P but outside X in coordinate {ce.detail.get('coordinate')}")
    if res.artifact is not None:
        print(f"artifact      {res.artifact}")
        print(f"certificate   written to {args.setfile}")
    elif res.status == "certified" and args.no_write:
        print("certificate   not written (--no-write)")
    if args.json:
        payload = res.to_json()
        payload["min_slack"] = _finite(payload["min_slack"])
        _write_json(args.json, payload)
    return res.exit_code
