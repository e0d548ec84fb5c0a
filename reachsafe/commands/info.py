"""Validate a set file and print its summary: system, facets, volume, certificate.

Loading checks the format version, the system, shapes, finiteness and that the model
fingerprint matches the current model (a certificate holds only for its model).  A recorded
certificate is checked for its binding to the proof artifact (the artifact exists beside the
set file, its sha256 is the recorded one, it is for this A, b and model): milliseconds, no
search (re-run the proof checker with 'reachsafe certify SETFILE --recheck').

Exit codes: 0 valid (certified or never certified), 1 the certificate does not match the set
or its artifact, 2 bad input.

Examples:
  reachsafe info data/pendulum.json
  reachsafe info data/published/pendulum.json
"""

from __future__ import annotations

import argparse

from ..setfile import load_set


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("setfile", help="set file (JSON)")


def run(args: argparse.Namespace) -> int:
    sf = load_set(args.setfile, check_certificate=False)
    vol = sf.volume or {}
    print(f"set file      {args.setfile}")
    print(f"system        {sf.system} (n={sf.n})")
    print(f"facets        {sf.A.shape[0]}")
    if vol:
        se = f" +- {vol.get('stderr', 0):.3g}" if vol.get("stderr") else ""
        print(f"volume        {vol['value']:.6g}{se} ({vol.get('method', '?')})")
    if sf.zonotope:
        print(f"zonotope      {len(sf.zonotope['generators'][0])} generators")
    cert = sf.certificate
    if sf.certificate_problem is not None:
        print(f"certificate   DOES NOT MATCH: {sf.certificate_problem}; the set is not certified "
              f"(re-certify: reachsafe certify {args.setfile})")
    elif cert:
        print(f"certificate   {cert.get('status')} by {cert.get('method')}, min slack {cert.get('min_slack')}, "
              f"{cert.get('cells')} cells, {cert.get('time_s')} s; bound to its proof artifact "
              f"{cert.get('artifact')} (re-check the proof: reachsafe certify {args.setfile} --recheck)")
    else:
        print("certificate   none (not certified: run 'reachsafe certify' before relying on it)")
    for k, v in sf.provenance.items():
        print(f"{k:<13} {v}")
    return 1 if sf.certificate_problem is not None else 0
