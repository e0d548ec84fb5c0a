"""The command line as a user meets it: help, systems table, import, one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
import subprocess
import sys

import pytest

from reachsafe.cli import COMMANDS, main
from reachsafe.setfile import load_set

from .conftest import PUBLISHED, REFERENCE, run_cli


def test_help_lists_every_subcommand():
    out = subprocess.run(
        [sys.executable, "-m", "reachsafe.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name, _, _ in COMMANDS:
        assert name in out


def test_every_help_text_renders():
    """Every command's and every bench target's --help prints (argparse %-formats help strings:
    a bare '%' in one raised TypeError for 'reachsafe bench --help')."""
    from reachsafe.cli import build_parser
    from reachsafe.commands.bench import TARGETS

    parser = build_parser()
    argvs = [["--help"]] + [[name, "--help"] for name, _, _ in COMMANDS] + [["bench", t, "--help"] for t in TARGETS]
    for argv in argvs:
        with pytest.raises(SystemExit) as exc:
            with contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(argv)
        assert exc.value.code == 0, argv


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


def test_import_zonotope(tmp_path, capsys):
    out_path = tmp_path / "p.json"
    code, out, _ = run_cli(capsys, "import-zonotope", "pendulum", str(REFERENCE), "--out", str(out_path))
    assert code == 0 and "not certified" in out
    sf = load_set(out_path)
    assert abs(sf.volume["value"] - 66.86) / 66.86 < 0.005


@pytest.mark.parametrize("system", ["pendulum", "quadrotor"])
def test_published_sets_are_reproduced_from_the_shipped_zonotopes(tmp_path, capsys, system):
    """The README's command works from a clone (the zonotopes are in data/published/) and rewrites nothing."""
    import numpy as np

    from reachsafe.setfile import set_fingerprint

    committed = PUBLISHED / f"{system}.json"
    fresh = tmp_path / "fresh.json"
    code, out, err = run_cli(capsys, "import-zonotope", system, REFERENCE, "--out", fresh)
    assert code == 0, err
    a, b = load_set(fresh), load_set(committed)
    assert a.zonotope == b.zonotope and a.volume == b.volume and a.A.shape == b.A.shape
    np.testing.assert_allclose(a.A, b.A, rtol=0, atol=1e-7)  # the facet normals, up to the platform's rounding
    np.testing.assert_allclose(a.b, b.b, rtol=0, atol=1e-7)
    if system == "pendulum":
        assert set_fingerprint(a) == set_fingerprint(b)
    # the README's command on the committed file keeps it untouched (bytes and time stamps)
    copy = tmp_path / f"{system}.json"
    copy.write_bytes(committed.read_bytes())
    before = (copy.read_bytes(), copy.stat().st_mtime_ns)
    code, out, err = run_cli(capsys, "import-zonotope", system, REFERENCE, "--out", copy)
    assert code == 0 and out.startswith(f"kept {copy}") and (copy.read_bytes(), copy.stat().st_mtime_ns) == before


def _assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def test_import_errors_write_nothing(tmp_path, capsys):
    out_path = tmp_path / "o.json"
    code, _, err = run_cli(
        capsys, "import-zonotope", "pendulum", str(tmp_path / "missing.json"), "--out", str(out_path)
    )
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


def _help_examples() -> list[tuple[str, list[str]]]:
    """``(command, argv)`` of every example in the commands' --help texts (continuation lines joined)."""
    import importlib
    import shlex

    from reachsafe.cli import COMMANDS

    out = []
    for name, module, _ in COMMANDS:
        doc = importlib.import_module(f"reachsafe.commands.{module}").__doc__ or ""
        lines, in_examples, cur = [], False, ""
        for raw in doc.splitlines():
            s = raw.strip()
            if s.startswith("Example"):
                in_examples = True
                continue
            if in_examples and (cur or s.startswith("reachsafe ")):
                cur += s.rstrip("\\").strip() + " "
                if not s.endswith("\\"):
                    lines.append(cur.split("#")[0].strip())
                    cur = ""
        out += [(name, shlex.split(line)[1:]) for line in lines]
    return out


def test_help_examples_name_files_that_exist():
    from .conftest import ROOT

    examples = _help_examples()
    assert len(examples) >= 20
    for name, argv in examples:
        for a in argv:
            if a.startswith(("data/", "examples/", "experiments/")) and not a.startswith("data/drifting_cart"):
                assert (ROOT / a).exists(), (name, argv, a)


def test_certify_help_examples_work(tmp_path, capsys, monkeypatch):
    """'reachsafe certify data/published/pendulum.json --recheck' was shown and exited 2 (no artifact)."""
    from .conftest import ROOT

    monkeypatch.chdir(tmp_path)  # outputs of the examples (--json result.json) land here
    expected = {"data/published/pendulum.json": 0, "data/published/quadrotor.json": 1, "data/pendulum.json": 0}
    ran = 0
    for name, argv in _help_examples():
        if name != "certify":
            continue
        argv = [str(ROOT / a) if a.startswith("data/") else a for a in argv] + ["--quiet"]
        code, out, err = run_cli(capsys, *argv)
        assert code == expected[Path(argv[1]).relative_to(ROOT).as_posix()], (argv, out, err)
        ran += 1
    assert ran == 3 and (tmp_path / "result.json").exists()
    assert not any(p.name.endswith(".proof.json") for p in (ROOT / "data" / "published").iterdir())
