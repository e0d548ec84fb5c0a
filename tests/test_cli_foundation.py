"""The command line as a user meets it: help, systems table, import, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest

from reachsafe.cli import COMMANDS, main
from reachsafe.setfile import load_set

from .conftest import REFERENCE, run_cli


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "reachsafe.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for name, _, _ in COMMANDS:
        assert name in out


def test_import_reachsafe_stays_light():
    code = (
        "import sys, reachsafe, reachsafe.setfile, reachsafe.systems, reachsafe.sets; "
        "bad = [m for m in ('verification', 'training', 'matplotlib', 'cvxpy') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_systems_table(capsys):
    code, out, _ = run_cli(capsys, "systems")
    assert code == 0
    assert "pendulum" in out and "quadrotor" in out and "[-2.7, 2.7] x [-12, 12]" in out


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/reference not present")
def test_import_zonotope(tmp_path, capsys):
    out_path = tmp_path / "p.json"
    code, out, _ = run_cli(capsys, "import-zonotope", "pendulum", str(REFERENCE), "--out", str(out_path))
    assert code == 0 and "not certified" in out
    sf = load_set(out_path)
    assert abs(sf.volume["value"] - 66.86) / 66.86 < 0.005


def _assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def test_import_errors_write_nothing(tmp_path, capsys):
    out_path = tmp_path / "o.json"
    code, _, err = run_cli(capsys, "import-zonotope", "pendulum", str(tmp_path / "missing.json"), "--out", str(out_path))
    _assert_one_line_error(code, err, "no such file")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run_cli(capsys, "import-zonotope", "pendulum", str(bad), "--out", str(out_path))
    _assert_one_line_error(code, err, "malformed JSON")
    good = tmp_path / "z.json"
    good.write_text(json.dumps({"center": [0, 0], "generators": [[1, 0], [0, 1]]}))
    code, _, err = run_cli(capsys, "import-zonotope", "cartpole", str(good), "--out", str(out_path))
    _assert_one_line_error(code, err, "unknown system 'cartpole'", "available")
    nan = tmp_path / "nan.json"
    nan.write_text('{"center": [0, 0], "generators": [[NaN, 0], [0, 1]]}')
    code, _, err = run_cli(capsys, "import-zonotope", "pendulum", str(nan), "--out", str(out_path))
    _assert_one_line_error(code, err, "NaN")
    code, _, err = run_cli(capsys, "import-zonotope", "pendulum", str(good), "--out", str(tmp_path / "no" / "dir.json"))
    _assert_one_line_error(code, err, "does not exist")
    assert not out_path.exists()


def test_info_errors(tmp_path, capsys, published_pendulum):
    code, out, _ = run_cli(capsys, "info", str(published_pendulum))
    assert code == 0 and "66.86" in out and "not certified" in out
    code, _, err = run_cli(capsys, "info", str(tmp_path / "missing.json"))
    _assert_one_line_error(code, err, "no such file")
    data = json.loads(published_pendulum.read_text())
    data["A"][0][0] = float("nan")
    bad = tmp_path / "nan.json"
    bad.write_text(json.dumps(data))  # json writes the NaN literal
    code, _, err = run_cli(capsys, "info", str(bad))
    _assert_one_line_error(code, err, "NaN")
    data["A"][0][0] = 1.0
    data["system"] = "cartpole"
    bad.write_text(json.dumps(data))
    code, _, err = run_cli(capsys, "info", str(bad))
    _assert_one_line_error(code, err, "unknown system")


def test_bad_flags_give_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["import-zonotope"])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_ci_runs_the_readme_test_command():
    from .conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = next(l for l in ci.splitlines() if l.startswith("python3 -m venv"))
    assert test_cmd in readme


def test_closed_output_pipe_stops_quietly(capsys, monkeypatch):
    """``reachsafe ... | head``: the reader going away ends the command with 141, no traceback."""
    import reachsafe.commands.systems as systems_cmd

    def writes_into_closed_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(systems_cmd, "run", writes_into_closed_pipe)
    code, _, err = run_cli(capsys, "systems")
    assert code == 141 and err == ""


def test_piping_a_long_listing_into_head_gives_no_traceback():
    cmd = f"{sys.executable} -m reachsafe.cli experiment experiments/paper.toml --dry-run | head -2"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert len(proc.stdout.splitlines()) == 2
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr
