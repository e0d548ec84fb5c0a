"""Bring your own system: model files by path, entry points, broken files, fingerprints, the examples."""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reachsafe.cli import main
from reachsafe.setfile import SetFile, SetFileError, load_set
from reachsafe.systems import ModelError, get_system, installed_systems

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "drifting_cart.py"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A private copy of the example model (tests edit it)."""
    dst = tmp_path / "cart.py"
    shutil.copy(EXAMPLE, dst)
    return dst


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"reachsafe {command}: error: ")
    return err[0]


# ------------------------------------------------------------------------ loading
def test_model_file_compiles_and_registers_its_name(model: Path):
    s = get_system(str(model))
    assert (s.name, s.n, s.m, s.p) == ("drifting_cart", 2, 1, 2)
    assert get_system("drifting_cart") is s  # registered for set files / run directories
    c, B, E = s.affine(np.zeros((1, 2)))
    assert B[0, 1, 0] == pytest.approx(0.05 * 2.0)  # dt u_max at v = 0
    sf = SetFile.for_system(s, np.vstack([np.eye(2), -np.eye(2)]), np.ones(4))
    assert sf.model_file == str(model.resolve())
    assert "model_file" not in SetFile.for_system(get_system("pendulum"), np.eye(2), np.ones(2)).to_json()


def test_systems_command_lists_a_model_file(model: Path, capsys):
    assert main(["systems", str(model)]) == 0
    out = capsys.readouterr().out
    assert "drifting_cart" in out and "[-2, 2] x [-1.5, 1.5]" in out and str(model.resolve()) in out


BROKEN = {
    # id: (edit of the example's text, expected words of the one-line error)
    "non_affine_action": (
        lambda t: t.replace("(1 - k_f * v**2) * a", "(1 - k_f * v**2) * a * a"),
        "not affine in the action",
    ),
    "non_affine_noise": (lambda t: t.replace("+ w_f\n", "+ w_f * w_d\n"), "not affine in the noise"),
    "missing_constraint_box": (
        lambda t: t.replace('    constraint_lo=(-exact(2), -exact("1.5")),\n', "").replace(
            '    constraint_hi=(exact(2), exact("1.5")),\n', ""
        ),
        "no constraint box",
    ),
    "unbounded_constraint_box": (
        lambda t: t.replace("constraint_hi=(exact(2),", "constraint_hi=(sympy.oo,").replace(
            "from __future__ import annotations\n", "from __future__ import annotations\nimport sympy\n"
        ),
        "not a finite real number",
    ),
    "wrong_step_count": (
        lambda t: t.replace("step=(p_next, v_next),", "step=(p_next,),"),
        "step has 1 expressions but there are 2 state symbols",
    ),
    "wrong_noise_box_count": (
        lambda t: t.replace('noise_lo=(-exact("0.3"), -exact("0.05")),', 'noise_lo=(-exact("0.3"),),'),
        "noise_lo has 1 entries, expected 2",
    ),
    "undeclared_symbol": (
        lambda t: t.replace("- c_1 * v ", "- c_1 * v * gain ").replace(
            "PARAMS = {", '(gain,) = symbols("gain")\nPARAMS = {'
        ),
        "unknown symbol(s) ['gain']",
    ),
    "uncertifiable_function": (
        lambda t: t.replace("- c_3 * v**3", "- c_3 * sympy.Abs(v) * v").replace(
            "from __future__ import annotations\n", "from __future__ import annotations\nimport sympy\n"
        ),
        "Abs",
    ),
    "division_by_zero_in_X": (  # v = 0 is the centre of X: a grid point of the check
        lambda t: t.replace("- c_3 * v**3", "- c_3 / v"),
        "is not finite at the state p = ",
    ),
    "log_of_negative_in_X": (  # log(p + 1) is not defined for p < -1, inside X = [-2, 2]
        lambda t: t.replace("- c_3 * v**3", "- c_3 * sympy.log(p + 1)").replace(
            "from __future__ import annotations\n", "from __future__ import annotations\nimport sympy\n"
        ),
        "not finite at the state",
    ),
    "syntax_error": (lambda t: t + "\ndef broken(:\n    pass\n", "syntax error"),
    "import_error": (
        lambda t: t.replace(
            "from __future__ import annotations\n",
            "from __future__ import annotations\nimport reachsafe_no_such_module\n",
        ),
        "import failed",
    ),
    "runtime_error": (lambda t: t.replace("PARAMS = {", "oops = 1 / 0\nPARAMS = {"), "ZeroDivisionError"),
    "missing_definition": (
        lambda t: t.replace("DEFINITION = SystemDefinition(", "MODEL = SystemDefinition("),
        "defines no DEFINITION",
    ),
    "builtin_name": (lambda t: t.replace('name="drifting_cart"', 'name="pendulum"'), "already taken by a built-in"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_model_file_is_refused_with_one_line(case: str, model: Path, tmp_path: Path, capsys):
    edit, expected = BROKEN[case]
    model.write_text(edit(model.read_text()))
    out = tmp_path / "set.json"
    assert main(["compute-invariant", str(model), "--out", str(out)]) == 2
    line = _one_error_line(capsys, "compute-invariant")
    assert expected in line and str(model) in line
    assert not out.exists() and not list(tmp_path.glob(".reachsafe-*"))
    assert not [m for m in sys.modules if m.startswith("reachsafe_user_model")  # failed modules are dropped
                and getattr(sys.modules[m], "__file__", "") == str(model.resolve())]


def test_missing_model_file_is_refused(tmp_path: Path, capsys):
    assert main(["systems", str(tmp_path / "nope.py")]) == 2
    assert "not found" in _one_error_line(capsys, "systems")
    assert main(["train", str(tmp_path / "nope.py"), "--seed", "0", "--out", str(tmp_path / "r")]) == 2
    assert "not found" in _one_error_line(capsys, "train")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------ fingerprints
def _box_set(model: Path, path: Path) -> Path:
    s = get_system(str(model))
    SetFile.for_system(s, np.vstack([np.eye(2), -np.eye(2)]), np.array([1.0, 1.0, 1.0, 1.0])).save(path)
    return path


def test_edited_model_file_is_refused_by_its_sets(model: Path, tmp_path: Path, capsys):
    setfile = _box_set(model, tmp_path / "set.json")
    assert main(["info", str(setfile)]) == 0
    capsys.readouterr()
    before = get_system("drifting_cart").fingerprint
    model.write_text(model.read_text().replace('c_1: exact("0.4")', 'c_1: exact("0.5")'))
    assert get_system("drifting_cart").fingerprint != before  # recompiled from the edited file
    with pytest.raises(SetFileError, match="fingerprint"):
        load_set(setfile)
    for argv in (["info", str(setfile)], ["certify", str(setfile), "--no-write"],
                 ["train", str(model), "--set", str(setfile), "--seed", "0", "--out", str(tmp_path / "run")]):
        assert main(argv) == 2
        assert "model fingerprint" in _one_error_line(capsys, argv[0])
    assert not (tmp_path / "run").exists()


def test_set_file_finds_its_model_in_a_fresh_process(model: Path, tmp_path: Path):
    setfile = _box_set(model, tmp_path / "set.json")
    assert json.loads(setfile.read_text())["model_file"] == str(model.resolve())
    cmd = [sys.executable, "-m", "reachsafe.cli", "info", str(setfile)]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and "drifting_cart (n=2)" in ok.stdout, ok.stderr
    model.rename(tmp_path / "moved.py")
    gone = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert gone.returncode == 2
    assert len(gone.stderr.strip().splitlines()) == 1 and "not found" in gone.stderr


# ------------------------------------------------------------------------ entry points
def test_installed_system_via_entry_point(tmp_path: Path, monkeypatch, capsys):
    import reachsafe.systems as systems

    pkg = tmp_path / "site"
    pkg.mkdir()
    text = EXAMPLE.read_text().replace('name="drifting_cart"', 'name="ep_cart"')
    (pkg / "ep_cart_model.py").write_text(text)
    dist = pkg / "ep_cart_model-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-cart-model\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[reachsafe.systems]\nep_cart = ep_cart_model\n")
    monkeypatch.syspath_prepend(str(pkg))
    systems._installed.cache_clear()
    try:
        assert "ep_cart" in installed_systems()
        s = get_system("ep_cart")
        assert (s.name, s.n) == ("ep_cart", 2)
        sf = SetFile.for_system(s, np.vstack([np.eye(2), -np.eye(2)]), np.ones(4))
        assert sf.model_file is None  # found by name, no path needed
        sf.save(tmp_path / "ep.json")
        assert load_set(tmp_path / "ep.json").system == "ep_cart"
        assert main(["systems"]) == 0 and "ep_cart" in capsys.readouterr().out
        # a model file may not take an installed system's name
        clash = tmp_path / "clash.py"
        clash.write_text(text)
        with pytest.raises(ModelError, match="already taken by a installed|already taken by an installed|installed"):
            get_system(str(clash))
    finally:
        systems._installed.cache_clear()


# ------------------------------------------------------------------------ the worked example
def test_example_pipeline_end_to_end(model: Path, tmp_path: Path, monkeypatch, capsys):
    """compute-invariant -> certify --recheck -> train (SHAC, 2000 steps) -> evaluate -> audit -> plot."""
    monkeypatch.chdir(tmp_path)
    assert main(["compute-invariant", str(model), "--time-budget", "120"]) == 0  # -> sets/drifting_cart.json
    setfile = tmp_path / "sets" / "drifting_cart.json"
    sf = load_set(setfile)
    assert sf.certified and sf.model_file == str(model.resolve())
    assert sf.volume["value"] > 0.8 * 12.0  # X has area 4 x 3 = 12
    assert main(["certify", str(setfile), "--recheck", "--quiet"]) == 0
    assert main(["train", str(model), "--safeguard", "raymask", "--seed", "0", "--steps", "2000",
                 "--eval-episodes", "4", "--out", "run", "--no-progress", "--threads", "1"]) == 0  # default --set
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["system"] == "drifting_cart" and cfg["set_path"] == "sets/drifting_cart.json"
    assert main(["evaluate", "run", "--episodes", "4", "--noise", "adversarial"]) == 0
    for ro in ("run", "run/rollouts-adversarial.npz"):
        assert main(["audit", ro, "--set", str(setfile), "--json", "audit.json"]) == 0
        audit = json.loads((tmp_path / "audit.json").read_text())
        assert all(audit["checks"][k]["failed"] == 0 for k in ("states", "actions", "transitions"))
    assert main(["plot", str(setfile), "--out", "cart.png"]) == 0 and (tmp_path / "cart.png").stat().st_size > 0
    assert main(["info", str(setfile)]) == 0
    out = capsys.readouterr().out
    assert "CERTIFIED SAFE" in out and "drifting_cart (n=2)" in out


def test_library_usage_example_runs(tmp_path: Path, capsys):
    ns = runpy.run_path(str(ROOT / "examples" / "library_usage.py"), run_name="library_usage")
    assert ns["main"](["--out", str(tmp_path), "--iterations", "3", "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "audit: CERTIFIED SAFE" in out
    assert (tmp_path / "rollouts.npz").exists() and (tmp_path / "audit.html").exists()
