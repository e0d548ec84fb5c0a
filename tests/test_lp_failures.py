"""LPs that HiGHS ends with an unknown status (status 4, seen on a nearly degenerate 6-D candidate of a
hovercraft model during shrinking, which ended the run with a traceback, exit 1).

The Chebyshev LP is retried with HiGHS's other methods; when all fail, ``chebyshev_center`` raises
``LPFailedError`` and the shrinking treats the candidate as having no room left (an honest "became empty",
exit 3 from the command), never a traceback.  The failures are injected by wrapping scipy's ``linprog``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog as real_linprog

import reachsafe.sets.hpolytope as hp
from reachsafe import get_system
from reachsafe.sets import HPolytope, LPFailedError
from verification.synthesis.invariant import SynthesisConfig, shrink_to_invariant
from verification.synthesis.plans import plan_for
from verification.synthesis.templates import template


class _Failed:
    status, message, x = 4, "HiGHS Status 15: model_status is Unknown (injected)", None


def failing(methods: set[str]):
    calls: list[str] = []

    def linprog(*args, method="highs", **kw):
        calls.append(method)
        return _Failed() if method in methods else real_linprog(*args, method=method, **kw)

    return linprog, calls


def test_chebyshev_centre_retries_other_methods(monkeypatch):
    fake, calls = failing({"highs"})
    monkeypatch.setattr(hp, "linprog", fake)
    c, r = HPolytope.from_box([-1, -2], [1, 2]).chebyshev_center()
    assert calls == ["highs", "highs-ipm"]
    np.testing.assert_allclose(c[0], 0.0, atol=1e-7)
    assert r == pytest.approx(1.0, abs=1e-7)


def test_chebyshev_centre_raises_a_named_error_when_every_method_fails(monkeypatch):
    fake, calls = failing({"highs", "highs-ipm", "highs-ds"})
    monkeypatch.setattr(hp, "linprog", fake)
    with pytest.raises(LPFailedError, match="status 4"):
        HPolytope.from_box([-1, -2], [1, 2]).chebyshev_center()
    assert calls == ["highs", "highs-ipm", "highs-ds"]
    assert isinstance(LPFailedError("x"), RuntimeError)


def test_shrinking_treats_a_failed_chebyshev_lp_as_no_room(monkeypatch):
    (part,) = plan_for(get_system("pendulum"))
    A0, _ = template(part.scaled, part.operating, facets=12)
    fake, _ = failing({"highs", "highs-ipm", "highs-ds"})
    monkeypatch.setattr(hp, "linprog", fake)
    res = shrink_to_invariant(part.scaled, A0, config=SynthesisConfig(margin=1e-3, n_interior=50, n_boundary=50))
    assert res.empty and not res.converged and res.iterations == 1


def test_the_hovercraft_candidate_that_failed_is_handled():
    """The 6-D candidate (221 facets) on which HiGHS's default method ended with status 4: the retry
    settles it (the interior-point method finds it infeasible), so no bare RuntimeError escapes."""
    from pathlib import Path

    from reachsafe.sets import EmptySetError

    d = np.load(Path(__file__).parent / "fixtures" / "hovercraft_degenerate_candidate.npz")
    try:
        _, r = HPolytope(d["A"], d["b"]).chebyshev_center()
    except (EmptySetError, LPFailedError):
        return
    assert r < 1e-6  # a solver that does solve it finds no room
