"""Validate a set file and print its summary: system, facets, volume, certificate.

Loading checks the format version, the system, shapes, finiteness and that the model
fingerprint matches the current model (a certificate holds only for its model).

Example:
  reachsafe info data/published/pendulum.json
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("setfile", help="set file (JSON)")


def run(args: argparse.Namespace) -> int:
    from ..setfile import load_set

    sf = load_set(args.setfile)
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
    if cert:
        print(f"certificate   {cert.get('status')} by {cert.get('method')}, min slack {cert.get('min_slack')}, "
              f"{cert.get('cells')} cells, {cert.get('time_s')} s")
    else:
        print("certificate   none (not certified: run 'reachsafe certify' before relying on it)")
    for k, v in sf.provenance.items():
        print(f"{k:<13} {v}")
    return 0
