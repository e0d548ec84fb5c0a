"""Tests for the RCI certifier (verification.certification.certifier / recheck / per_state) and `reachsafe certify`."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from reachsafe.cli import main
from reachsafe.setfile import SetFile, load_set
from reachsafe.sets import HPolytope
from reachsafe.systems import get_definition, get_system
from reachsafe.systems import pendulum as pendulum_module
from verification.certification import intervals as ia
from verification.certification.certifier import artifact_path_for, certify
from verification.certification.per_state import safe_action_lp
from verification.certification.recheck import check_coverage, recheck_artifact

ROOT = Path(__file__).resolve().parents[1]
PUB_PENDULUM = ROOT / "data" / "published" / "pendulum.json"
PUB_QUADROTOR = ROOT / "data" / "published" / "quadrotor.json"


# ----------------------------------------------------------------------------- helpers
def box_set(system: str, lo, hi) -> SetFile:
    H = HPolytope.from_box(lo, hi)
    return SetFile.for_system(get_system(system), H.A, H.b)


def saved(sf: SetFile, path: Path) -> Path:
    sf.save(path)
    return path


def safe_set_infeasible(system: str, A: np.ndarray, b: np.ndarray, x: np.ndarray) -> bool:
    """Independent check: S(x) = {a in U : A B a <= b - A c - h_W} is empty (scipy LP status 2)."""
    sysm = get_system(system)
    c, B, E = sysm.affine(np.asarray(x, float))
    wc = 0.5 * (sysm.noise_lo + sysm.noise_hi)
    wr = 0.5 * (sysm.noise_hi - sysm.noise_lo)
    AE = A @ E
    rhs = b - A @ c - AE @ wc - np.abs(AE) @ wr
    res = linprog(np.zeros(sysm.m), A_ub=A @ B, b_ub=rhs, bounds=[(-1, 1)] * sysm.m, method="highs")
    return res.status == 2


def assert_refuted(res, system: str, A, b) -> None:
    assert res.status == "not_invariant", res.message
    ce = res.counterexample
    assert ce is not None and ce.reason == "no_safe_action" and ce.margin > 0
    assert np.all(A @ ce.x <= b + 1e-12)
    assert safe_set_infeasible(system, A, b, ce.x)


@pytest.fixture(scope="module")
def certified_pendulum(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cert") / "pendulum.json"
    shutil.copy(PUB_PENDULUM, path)
    res = certify(path, time_budget=120)
    assert res.status == "certified", res.message
    return path


# ----------------------------------------------------------------------------- intervals
def test_intervals_enclose_constants_and_trig():
    lo, hi = ia.number_interval(sp.Rational(27, 10))
    assert lo < hi and lo <= 2.7 <= hi
    assert ia.number_interval(sp.pi)[0] < ia.number_interval(sp.pi)[1]
    x = np.linspace(-7, 7, 301)
    a, b = x[:-1], x[1:]
    for which, fn in (("sin", np.sin), ("cos", np.cos)):
        r = ia._trig(ia.Iv(a, b), which)
        grid = fn(np.linspace(a, b, 50))
        assert np.all(r.lo <= grid.min(axis=0)) and np.all(r.hi >= grid.max(axis=0))
    s = ia.sum_iv(ia.point(np.full(1000, 0.1)))
    assert s.lo < 100.0 < s.hi or s.lo <= 100.0 <= s.hi


def test_model_affine_split_matches_compiled():
    from verification.certification.intervals import CertModel

    for name in ("pendulum", "quadrotor"):
        model, sysm = CertModel(get_definition(name)), get_system(name)
        x = np.random.default_rng(0).uniform(-0.2, 0.2, size=(5, sysm.n))
        enc = model.at_points(x)
        c, B, E = sysm.affine(x)
        for key, val in (("c", c), ("B", B), ("E", E)):
            assert np.all(enc[key].lo <= val + 1e-12) and np.all(val - 1e-12 <= enc[key].hi)
    assert CertModel(get_definition("quadrotor")).nonlinear_dims == [2]
    assert CertModel(get_definition("pendulum")).nonlinear_dims == [0]


def test_coverage_checker():
    lo = np.array([[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]])
    hi = np.array([[0.5, 1.0], [1.0, 0.5], [1.0, 1.0]])
    assert check_coverage(np.zeros(2), np.ones(2), lo, hi) == ""
    assert "no cell" in check_coverage(np.zeros(2), np.ones(2), lo[:2], hi[:2])


# ----------------------------------------------------------------------------- certified sets
def test_small_pendulum_box_certifies(tmp_path):
    path = saved(box_set("pendulum", [-0.3, -1.5], [0.3, 1.5]), tmp_path / "box.json")
    res = certify(path, time_budget=60)
    assert res.status == "certified" and res.exit_code == 0
    assert res.min_slack > 0 and res.cells >= 1 and res.time_s < 60
    sf = load_set(path)
    cert = sf.certificate
    assert cert["status"] == "certified" and cert["artifact"] == "box.proof.json"
    assert cert["model_fingerprint"] == get_system("pendulum").fingerprint
    assert recheck_artifact(sf, artifact_path_for(path)).valid


def test_published_pendulum_certifies(certified_pendulum):
    sf = load_set(certified_pendulum)
    assert sf.certified and sf.certificate["min_slack"] > 0.1
    res = recheck_artifact(sf, artifact_path_for(certified_pendulum))
    assert res.valid, res.message
    assert res.min_slack == pytest.approx(sf.certificate["min_slack"])


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_states_of_certified_set_have_safe_actions(certified_pendulum, seed):
    sf = load_set(certified_pendulum)
    sysm = get_system("pendulum")
    x = HPolytope(sf.A, sf.b).sample(1, rng=seed)[0]
    c, B, E = sysm.affine(x)
    lp = safe_action_lp(sf.A, sf.b, c, B, E, sysm.noise_lo, sysm.noise_hi)
    assert lp.status == 0 and lp.slack >= 0


def test_no_write_writes_nothing(tmp_path):
    path = saved(box_set("pendulum", [-0.3, -1.5], [0.3, 1.5]), tmp_path / "box.json")
    before = path.read_bytes()
    res = certify(path, write=False, time_budget=60)
    assert res.status == "certified" and res.artifact is None
    assert path.read_bytes() == before and not artifact_path_for(path).exists()


# ----------------------------------------------------------------------------- refutations
def test_constraint_box_of_pendulum_is_not_invariant():
    sysm = get_system("pendulum")
    sf = box_set("pendulum", sysm.constraint_lo, sysm.constraint_hi)
    res = certify(sf, write=False, time_budget=60)
    assert_refuted(res, "pendulum", sf.A, sf.b)
    assert abs(res.counterexample.x[0]) > 2.0  # near |theta| = 2.7, where no torque stops the fall


def test_float_bound_beyond_exact_bound_is_outside_X():
    # float(2.7) exceeds the real 2.7 by 1.8e-16: P is (barely) not inside X.
    sf = box_set("pendulum", [-2.7, -1.0], [2.7, 1.0])
    res = certify(sf, write=False, time_budget=30)
    assert res.status == "not_invariant" and res.counterexample.reason == "outside_constraints"
    x = res.counterexample.x
    assert np.all(sf.A @ x <= sf.b) and abs(x[0]) == 2.7
    lo, hi = get_system("pendulum").constraint_box_inner()
    inner = box_set("pendulum", [lo[0], -1.0], [hi[0], 1.0])  # inward-rounded bounds are fine
    assert certify(inner, write=False, time_budget=60).status == "certified"


def test_published_quadrotor_is_not_invariant():
    sf = load_set(PUB_QUADROTOR)
    res = certify(sf, write=False, time_budget=300)
    assert_refuted(res, "quadrotor", sf.A, sf.b)


TIGHT = ([-1.0, -3.875], [1.0, 3.875])  # |theta| <= 1, |omega| <= 3.875: invariant with little margin


@pytest.mark.parametrize("row", range(4))
def test_pushed_facet_is_rejected(row):
    sf = box_set("pendulum", *TIGHT)
    assert certify(sf, write=False, time_budget=60).status == "certified"
    for delta in (1e-3, 1e-2, 1e-1):  # push one facet outwards until the set fails
        b = sf.b.copy()
        b[row] += delta
        res = certify(SetFile.for_system(get_system("pendulum"), sf.A, b), write=False, time_budget=60)
        if res.status != "certified":
            break
    assert_refuted(res, "pendulum", sf.A, b)


def test_pushed_published_facets_are_sound(certified_pendulum):
    """Every facet of the published set pushed out: a 'certified' verdict must survive sampling."""
    sf = load_set(certified_pendulum)
    sysm = get_system("pendulum")
    nrm = np.linalg.norm(sf.A, axis=1)
    verdicts = []
    for i in range(len(sf.b)):
        b = sf.b.copy()
        b[i] += 2.0 * nrm[i]
        res = certify(SetFile.for_system(sysm, sf.A, b), write=False, time_budget=60)
        verdicts.append(res.status)
        if res.status == "certified":
            P = HPolytope(sf.A, b)
            X = np.vstack([P.sample(200, rng=i), P.vertices() * (1 - 1e-9)])
            for x in X:
                c, B, E = sysm.affine(x)
                assert safe_action_lp(sf.A, b, c, B, E, sysm.noise_lo, sysm.noise_hi).slack >= -1e-9
        elif res.status == "not_invariant" and res.counterexample.reason == "no_safe_action":
            assert safe_set_infeasible("pendulum", sf.A, b, res.counterexample.x)
    assert "not_invariant" in verdicts


def _mutated(noise: float = 1.0, torque: float = 1.0):
    d = get_definition("pendulum")
    params = dict(d.params)
    params[pendulum_module.tau_max] = params[pendulum_module.tau_max] * sp.nsimplify(torque)
    k = sp.nsimplify(noise)
    return dataclasses.replace(d, params=params, noise_lo=tuple(k * v for v in d.noise_lo),
                               noise_hi=tuple(k * v for v in d.noise_hi))


@pytest.mark.parametrize("noise,torque", [(1.5, 1.0), (1.0, 0.8)])
def test_mutated_model_never_certifies_tight_set(noise, torque):
    # |theta| <= 1, |omega| <= 3.875: at the corner (1, 3.875) full braking leaves
    # theta+ = 1 - 4.4e-5 under the nominal model, too little for 1.5x noise or 0.8x torque.
    sf = box_set("pendulum", *TIGHT)
    assert certify(sf, write=False, time_budget=60).status == "certified"
    res = certify(sf, write=False, time_budget=60, definition=_mutated(noise, torque))
    assert res.status in ("not_invariant", "undecided")


# ----------------------------------------------------------------------------- re-checker
def _tamper(tmp_path: Path, certified: Path, edit) -> tuple[SetFile, Path]:
    path = tmp_path / "p.json"
    shutil.copy(certified, path)
    art = json.loads(artifact_path_for(certified).read_text())
    edit(art)
    artifact_path_for(path).write_text(json.dumps(art))
    return load_set(path, check_certificate=False), artifact_path_for(path)  # the recheck judges the artifact


def test_recheck_rejects_changed_witness(tmp_path, certified_pendulum):
    def edit(art):
        idx = next(i for i, c in enumerate(art["cells"]) if c["kind"] == "witness")
        art["cells"][idx]["witness"]["k"] = [0.0]
        art["cells"][idx]["witness"]["K"] = [[0.0, 0.0]]

    sf, art = _tamper(tmp_path, certified_pendulum, edit)
    res = recheck_artifact(sf, art)
    assert not res.valid and res.bad_cell is not None and "cell" in res.message


def test_recheck_rejects_removed_cell(tmp_path, certified_pendulum):
    sf, art = _tamper(tmp_path, certified_pendulum, lambda a: a["cells"].pop(len(a["cells"]) // 2))
    res = recheck_artifact(sf, art)
    assert not res.valid and "coverage" in res.message


def test_recheck_rejects_other_set(tmp_path, certified_pendulum):
    sf = load_set(certified_pendulum)
    other = SetFile.for_system(get_system("pendulum"), sf.A, sf.b * 0.99)
    res = recheck_artifact(other, artifact_path_for(certified_pendulum))
    assert not res.valid and "another set" in res.message


# ----------------------------------------------------------------------------- CLI
def test_cli_exit_codes(tmp_path, capsys, certified_pendulum):
    path = saved(box_set("pendulum", [-0.3, -1.5], [0.3, 1.5]), tmp_path / "box.json")
    out = tmp_path / "r.json"
    assert main(["certify", str(path), "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert data["status"] == "certified" and data["min_slack"] > 0
    assert main(["certify", str(path), "--recheck", "--quiet"]) == 0

    sysm = get_system("pendulum")
    bad = saved(box_set("pendulum", sysm.constraint_lo, sysm.constraint_hi), tmp_path / "X.json")
    assert main(["certify", str(bad), "--json", str(out), "--quiet"]) == 1
    data = json.loads(out.read_text())
    assert data["status"] == "not_invariant" and len(data["counterexample"]["x"]) == 2
    assert "counterexample" in capsys.readouterr().out

    capsys.readouterr()
    assert main(["certify", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err

    raw = json.loads(path.read_text())
    raw["model_fingerprint"] = "sha256:" + "0" * 64
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(raw))
    assert main(["certify", str(wrong)]) == 2
    assert capsys.readouterr().err.count("\n") == 1

    # tampered artifact -> recheck exit 1
    art = artifact_path_for(path)
    a = json.loads(art.read_text())
    a["cells"][0]["witness"]["k"] = [5.0]
    art.write_text(json.dumps(a))
    assert main(["certify", str(path), "--recheck", "--quiet"]) == 1


def test_cli_undecided_on_tiny_budget(tmp_path):
    path = saved(box_set("pendulum", *TIGHT), tmp_path / "tight.json")
    assert main(["certify", str(path), "--budget", "1", "--quiet", "--no-write"]) == 3


def lqr_invariant_quadrotor_set() -> SetFile:
    """A quadrotor RCI candidate: maximal invariant set of the LQR closed loop of the model
    linearised at hover, with the noise inflated x3 and |K x| <= 0.5, inside 0.9 X (142 facets)."""
    import scipy.linalg as sla

    sysm = get_system("quadrotor")
    Jx, Ja, Jw = sysm.jacobians(np.zeros(6), np.zeros(2), np.zeros(2))
    P = sla.solve_discrete_are(Jx, Ja, np.diag([1, 1, 1, 1, 1, 0.1]), np.eye(2))
    K = -np.linalg.solve(np.eye(2) + Ja.T @ P @ Ja, Ja.T @ P @ Jx)
    Acl = Jx + Ja @ K
    Wr = 0.3 * np.abs(Jw).sum(1)
    lo, hi = sysm.constraint_lo * 0.9, sysm.constraint_hi * 0.9
    F0 = np.vstack([np.eye(6), -np.eye(6), K, -K])
    h0 = np.r_[hi, -lo, 0.5 * np.ones(4)]
    F, h, Fi, dist = F0.copy(), h0.copy(), F0.copy(), np.zeros(len(h0))
    for it in range(200):
        Fi = Fi @ Acl
        dist = dist + np.abs(F0 @ np.linalg.matrix_power(Acl, it)) @ Wr
        added = 0
        for f, hh in zip(Fi, h0 - dist):
            res = linprog(-f, A_ub=F, b_ub=h, bounds=[(None, None)] * 6, method="highs")
            if res.status == 0 and -res.fun > hh + 1e-9:
                F, h, added = np.vstack([F, f]), np.r_[h, hh], added + 1
        if not added:
            break
    H = HPolytope(F, h).remove_redundant()
    return SetFile.for_system(sysm, H.A, H.b)


def test_quadrotor_lqr_set_certifies_and_rechecks(tmp_path):
    path = saved(lqr_invariant_quadrotor_set(), tmp_path / "quad.json")
    res = certify(path, time_budget=900)
    assert res.status == "certified", res.message
    assert recheck_artifact(load_set(path), artifact_path_for(path)).valid


def test_batched_cell_enclosures_equal_the_per_cell_ones():
    """The recheck evaluates the model's enclosures for many cells at once; every term of every cell
    equals the one computed for that cell alone (elementwise interval evaluation), bit for bit."""
    from reachsafe.systems import get_definition
    from verification.certification.intervals import CertModel
    from verification.certification.recheck import cell_enclosures, cell_terms

    model = CertModel(get_definition("quadrotor"))
    rng = np.random.default_rng(3)
    lo = rng.uniform(-1.0, 0.5, size=(7, model.n))
    hi = lo + rng.uniform(0.0, 0.4, size=(7, model.n))
    A = rng.normal(size=(5, model.n))
    enc = cell_enclosures(model, lo, hi)
    for i in range(len(lo)):
        alone = cell_terms(model, A, lo[i], hi[i])
        batched = cell_terms(model, A, lo[i], hi[i], {k: v[i] for k, v in enc.items()})
        for key, v in alone.items():
            w = batched[key]
            if isinstance(v, ia.Iv):
                assert np.array_equal(v.lo, w.lo) and np.array_equal(v.hi, w.hi), key
            else:
                assert np.array_equal(np.asarray(v), np.asarray(w)), key


def test_lp_blocks_equal_a_dense_block_diagonal():
    """The witness LP's multiplier blocks ``[A_rows^T, I, -I]`` and ``(b_rows, hi, -lo)``, built from
    index arrays, equal scipy's dense block_diag of the same blocks."""
    from scipy.linalg import block_diag

    from verification.certification.cells import _blocks

    rng = np.random.default_rng(0)
    A, b = rng.normal(size=(9, 3)), rng.uniform(1, 2, size=9)
    lo, hi = -rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    rows = [np.array([0, 4, 5]), np.zeros(0, dtype=np.int64), np.array([8]), np.arange(9)]
    E, G, starts = _blocks(rows, A, b, lo, hi)
    eye = np.eye(3)
    assert np.array_equal(E.toarray(), block_diag(*[np.hstack([A[r].T, eye, -eye]) for r in rows]))
    assert np.array_equal(G.toarray(), block_diag(*[np.r_[b[r], hi, -lo][None, :] for r in rows]))
    assert starts.tolist() == [0, 9, 15, 22]


def test_neighbour_restricted_witness_lp_is_a_restriction_of_the_full_one():
    """With every row as a neighbour the restricted LP is the full LP (same slack); with fewer rows its
    slack is never larger, and its multipliers use only each facet's neighbours."""
    from verification.certification.cells import feedback_lp, neighbour_rows
    from verification.certification.intervals import CertModel
    from verification.certification.recheck import cell_terms

    model = CertModel(get_definition("quadrotor"))
    rng = np.random.default_rng(1)
    n = model.n
    A = rng.normal(size=(60, n))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    b = np.full(60, 0.3)
    lo, hi = np.full(n, -0.05), np.full(n, 0.25)
    terms = cell_terms(model, A, lo, hi)
    nrm = np.linalg.norm(A, axis=1)
    full = feedback_lp(A, b, nrm, lo, hi, model.m, terms, None)
    every = feedback_lp(A, b, nrm, lo, hi, model.m, terms, None, neighbour_rows(A, 59))
    nbrs = neighbour_rows(A, 8)
    few = feedback_lp(A, b, nrm, lo, hi, model.m, terms, None, nbrs)
    assert full is not None and every is not None and few is not None
    assert abs(full[1] - every[1]) <= 1e-7 * (1 + abs(full[1]))
    assert few[1] <= full[1] + 1e-7
    w = few[0]
    assert all(r in nbrs[i] for i, r in zip(w.lam_i, w.lam_r))


def test_witness_lp_puts_slack_where_the_remainder_is():
    """Regression: the witness LP maximised one common slack in units of ``||A_i||``.  On a cart-pole
    linear-feedback set (hundreds of facets, most of whose rows evolve affinely) the facets without
    remainder took that slack, the nonlinear ones got 2e-4 against remainders of 1e-3..1e-2, and the
    coarse cells all failed the check (289 cells, 320-490 s).  Weighted by each facet's remainder,
    most of the certifier's first slabs pass at once."""
    import time

    from verification.certification.cell_loop import initial_cells
    from verification.certification.cells import find_witness, neighbour_rows
    from verification.certification.intervals import CertModel
    from verification.certification.recheck import cell_terms
    from verification.synthesis.driver import LINEAR_MARGIN, _linear, _Log
    from verification.synthesis.plans import plan_for

    system = get_system(str(ROOT / "examples" / "cartpole.py"))
    part = plan_for(system)[0]
    cand = _linear(part, LINEAR_MARGIN, 0, time.monotonic() + 120, _Log(False, system.name))
    assert not isinstance(cand, str), cand
    A, b = part.scaled.to_state(cand.A, cand.b)
    P = HPolytope(A, b).remove_redundant()
    A, b = P.A, P.b
    assert len(b) > 200
    model = CertModel(system.definition)
    bb = P.bounding_box()
    cells = initial_cells(bb.lo, bb.hi, model.nonlinear_dims, 8)
    mid = [c for c in cells if np.all(np.abs(0.5 * (c.lo + c.hi))[2:] < 0.5 * bb.hi[2:])][:6]
    nrm = np.linalg.norm(A, axis=1)
    nb = neighbour_rows(A, 6 * A.shape[1])
    passed = sum(find_witness(model, A, b, nrm, c.lo, c.hi, cell_terms(model, A, c.lo, c.hi),
                              neighbours=nb).witness is not None for c in mid)
    assert len(mid) == 6 and passed >= 4


def test_facets_without_remainder_keep_room_for_the_lp_tolerance(tmp_path):
    """Regression: with the slack weighted by each facet's remainder, a facet whose dynamics are affine
    (``v+ = v + dt acc`` at ``v = 2``) got only rounding room, and the LP solver's tolerance on
    ``lambda^T D = q`` (about 1e-9) made the check fail there by 1.5e-9 in every cell, however small:
    the unicycle's set stayed undecided with thousands of cells queued.  Now certified in seconds."""
    out = tmp_path / "unicycle_path.json"
    code = main(["compute-invariant", str(ROOT / "examples" / "unicycle_path.py"), "--out", str(out), "--quiet",
                 "--time-budget", "240"])
    assert code == 0
    assert load_set(out).certified


POLE_MODEL = '''"""A contracting p and a damped v whose drift has a pole at p = 0.1234567 (between the points the loader
samples), so weak (1e-14) that the box below is invariant except within 1e-14 of it."""
from reachsafe.systems.definition import SystemDefinition, exact, symbols
p, v = symbols("p v"); (a,) = symbols("a"); (w,) = symbols("w")
dt = exact("0.05")
DEFINITION = SystemDefinition(name="pole_cart", description="drift with a pole inside X", state=(p, v), action=(a,),
    noise=(w,), params={},
    step=(p - dt * p + dt * v / 10, v + dt * (a - v + exact("1e-14") / (p - exact("0.1234567")) + w)),
    constraint_lo=(-exact(1), -exact(1)), constraint_hi=(exact(1), exact(1)), noise_lo=(-exact("0.01"),),
    noise_hi=(exact("0.01"),), reward=-p**2, observation=(p, v), dt=dt)
'''


def test_a_pole_inside_the_set_leaves_the_certifier_undecided_not_crashed(tmp_path):
    """Cells around the pole have unbounded enclosures: they are split, never handed to the LP (which
    refused infinite data with a traceback); the outcome is undecided (exit 3 in the CLI)."""
    model = tmp_path / "pole_cart.py"
    model.write_text(POLE_MODEL)
    sysm = get_system(str(model))  # the loader's sampled check does not hit the pole
    H = HPolytope.from_box([-0.5, -0.5], [0.5, 0.5])
    path = saved(SetFile.for_system(sysm, H.A, H.b), tmp_path / "pole.json")
    res = certify(path, time_budget=3.0, workers=1)
    assert res.status == "undecided", res.message
    assert main(["certify", str(path), "--budget", "3", "--quiet", "--no-write"]) == 3
