"""Convert a published zonotope into a set file with its exact H-representation.

FILE is JSON in the format of data/published/zonotopes.json (the paper's zonotopes, shipped
with reachsafe), either {"sets": {SYSTEM: {"center": [...], "generators": [[...], ...]}}} or a
single {"center": ..., "generators": ...} object.  Z = {center + G beta : |beta|_inf <= 1}.
The set file is marked as not certified: run 'reachsafe certify' on it.

When --out already holds this zonotope (the same center and generators, for the current
model) it is kept untouched: its H-representation is the conversion of exactly these numbers
(the facet normals of an ill-conditioned zonotope can differ in the last digits between
machines), and sets are identified by their A and b.

Examples:
  reachsafe import-zonotope pendulum data/published/zonotopes.json --out data/published/pendulum.json
  reachsafe import-zonotope quadrotor data/published/zonotopes.json --out /tmp/quadrotor.json
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from ..setfile import SetFile, SetFileError, load_set
from ..sets import Zonotope
from ..systems import get_system
from ._common import check_output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("system", help="system name (see 'reachsafe systems')")
    p.add_argument("file", help="JSON file with the zonotope")
    p.add_argument("--out", required=True, help="set file to write (atomic; nothing is written on error)")


def _read_zonotope(path: str, system: str):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: malformed JSON ({exc}); pass a JSON file with 'center' and 'generators'") from None
    entry = data
    if isinstance(data, dict) and "sets" in data:
        if not isinstance(data["sets"], dict) or system not in data["sets"]:
            have = ", ".join(sorted(data["sets"])) if isinstance(data["sets"], dict) else "none"
            raise UserError(f"{path}: has no set for {system!r} (it has: {have})")
        entry = data["sets"][system]
    if not isinstance(entry, dict) or "center" not in entry or "generators" not in entry:
        raise UserError(f"{path}: expected an object with 'center' and 'generators'")
    try:
        c = np.array(entry["center"], dtype=np.float64)
        G = np.array(entry["generators"], dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{path}: 'center' and 'generators' must be numeric (ragged or non-numeric entries)") from None
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(G))):
        raise UserError(f"{path}: zonotope contains NaN or infinite numbers")
    return c, G, entry


def _holds_zonotope(out, system, c, G) -> bool:
    """True if the set file ``out`` exists, loads for ``system`` and records exactly the zonotope ``(c, G)``."""

    if not out.is_file():
        return False
    try:
        sf = load_set(out, system=system.name, check_certificate=False)
    except SetFileError:
        return False
    z = sf.zonotope or {}
    try:
        zc = np.array(z.get("center"), dtype=np.float64)
        zG = np.array(z.get("generators"), dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return zc.shape == c.shape and zG.shape == G.shape and bool(np.array_equal(zc, c) and np.array_equal(zG, G))


def run(args: argparse.Namespace) -> int:
    system = get_system(args.system)
    out = check_output_path(args.out, "--out")
    c, G, entry = _read_zonotope(args.file, args.system)
    if c.shape != (system.n,) or G.ndim != 2 or G.shape[0] != system.n:
        raise UserError(
            f"{args.file}: zonotope for {args.system} needs center [{system.n}] and generators [{system.n}][p], "
            f"got {list(c.shape)} and {list(G.shape)}"
        )
    if _holds_zonotope(out, system, c, G):
        print(f"kept {out}: it already holds this zonotope (same center and generators, current {system.name} model)")
        return 0
    Z = Zonotope(c, G)
    H = Z.to_hpolytope()
    vol = Z.volume()
    sf = SetFile.for_system(
        system, H.A, H.b,
        zonotope={"center": c.tolist(), "generators": G.tolist()},
        volume={"value": float(vol), "method": "exact", "stderr": 0.0},
        certificate=None,
        provenance={
            "source": f"imported zonotope from {args.file}",
            "note": "published set; NOT certified by reachsafe (run 'reachsafe certify')",
            "published_volume": entry.get("volume"),
            "command": f"reachsafe import-zonotope {args.system} {args.file} --out {args.out}",
            "tool_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
    )
    sf.save(out)
    print(f"wrote {out}: {args.system}, {H.A.shape[0]} facets, volume {vol:.6g} (exact), not certified")
    return 0
