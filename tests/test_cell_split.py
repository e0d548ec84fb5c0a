"""Regression: where the certifier splits a cell that one affine feedback cannot settle.

The mountain-car candidate (39 facets, from ``compute-invariant examples/mountaincar.py`` with
default options) has the facet ``v <= 0.07``.  Its successor value ``v+ = v + 0.0015 a -
0.0025 cos(3 p) + w`` varies with the position ``p`` through gravity, but the facet's normal
has no ``p`` component.  Splitting by ``|A_i|`` cut the cells along ``v`` to widths of 1e-6
without end ("undecided"); splitting by the successor's gradient ``|A_i J|`` cuts along ``p``
and proves the set in under a hundred cells.
"""

from __future__ import annotations

import json

import numpy as np

from reachsafe.setfile import SetFile
from reachsafe.systems import get_system
from verification.certification.certifier import certify

from .conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "mountaincar_candidate.json"


def test_mountaincar_candidate_is_certified_by_splitting_the_position():
    cand = json.loads(FIXTURE.read_text())
    system = get_system(str(ROOT / "examples" / "mountaincar.py"))
    sf = SetFile.for_system(system, np.asarray(cand["A"]), np.asarray(cand["b"]), provenance={})
    r = certify(sf, time_budget=120, write=False, progress=False, workers=1)
    assert r.status == "certified", r.message
    assert r.cells < 500, r.cells
