"""Error paths of issue 18: output paths checked before any work (point 8), messages that were off
(point 10), progress without terminal escape codes in logs (point 10).  Every bad input: one line
on stderr, exit 2, nothing written."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DATA, PUBLISHED, ROOT, one_line_error, run_cli

PEND = DATA / "pendulum.json"


@pytest.fixture
def blocker(tmp_path) -> Path:
    """An existing file, used as the parent folder of an output path."""
    f = tmp_path / "FILE"
    f.write_text("not a folder\n")
    return f


def _no_work(monkeypatch) -> None:
    """Make every expensive step fail loudly: a refused command must not reach them."""
    import training.runner
    import verification.synthesis.driver

    def boom(*a, **k):
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(verification.synthesis.driver, "compute_certified_invariant", boom)
    monkeypatch.setattr(training.runner, "train", boom)
    monkeypatch.setattr(training.runner, "evaluate_run", boom)


def _zonotope(tmp_path: Path) -> Path:
    z = tmp_path / "z.json"
    sf = json.loads(PUBLISHED.joinpath("pendulum.json").read_text())
    z.write_text(json.dumps({"center": sf["zonotope"]["center"], "generators": sf["zonotope"]["generators"]}))
    return z


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    return run


def _toml(tmp_path: Path) -> Path:
    t = tmp_path / "e.toml"
    t.write_text(f'[experiment]\nname = "e"\n[systems.pendulum]\nset = "{PEND}"\nsteps = 256\n'
                 '[[grid]]\nsystems = ["pendulum"]\nalgos = ["shac"]\nsafeguards = ["none"]\nseeds = 1\n')
    return t


CASES = {
    "compute-invariant": lambda t, f: ["compute-invariant", "pendulum", "--out", f / "x.json"],
    "plot": lambda t, f: ["plot", PEND, "--out", f / "x.png"],
    "audit --html": lambda t, f: ["audit", t / "r.npz", "--set", PEND, "--html", f / "a.html"],
    "audit --json": lambda t, f: ["audit", t / "r.npz", "--set", PEND, "--json", f / "a.json"],
    "certify --json": lambda t, f: ["certify", PEND, "--json", f / "r.json"],
    "kernel --json": lambda t, f: ["kernel", "pendulum", "--json", f / "k.json"],
    "import-zonotope": lambda t, f: ["import-zonotope", "pendulum", _zonotope(t), "--out", f / "x.json"],
    "evaluate --out": lambda t, f: ["evaluate", _run_dir(t), "--out", f / "x.npz"],
    "train --out": lambda t, f: ["train", "pendulum", "--seed", 0, "--out", f / "run"],
    "demo --out": lambda t, f: ["demo", "--out", f / "demo"],
    "experiment --results-dir": lambda t, f: ["experiment", _toml(t), "--results-dir", f / "res"],
    "experiment --runs-dir": lambda t, f: ["experiment", _toml(t), "--runs-dir", f / "runs"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_output_under_a_file_is_refused_before_any_work(tmp_path, blocker, capsys, monkeypatch, case):
    _no_work(monkeypatch)
    argv = CASES[case](tmp_path, blocker)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli(capsys, *argv)
    one_line_error(code, err, "FILE is a file, not a folder")
    assert "CERTIFIED" not in out and "wrote" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before and blocker.read_text() == "not a folder\n"


def test_a_missing_json_folder_names_the_json_option(tmp_path, capsys):
    code, out, err = run_cli(capsys, "audit", tmp_path / "r.npz", "--set", PEND, "--json", tmp_path / "no" / "a.json")
    one_line_error(code, err, "--json folder", "does not exist", "choose another --json")
    assert "--out" not in err
    code, out, err = run_cli(capsys, "kernel", "pendulum", "--json", tmp_path / "no" / "k.json")
    one_line_error(code, err, "choose another --json")


def test_an_output_that_is_a_folder_is_refused(tmp_path, capsys):
    code, out, err = run_cli(capsys, "plot", PEND, "--out", tmp_path)
    one_line_error(code, err, "is a folder; give a file name")


def test_a_set_for_another_model_points_compute_invariant_at_the_same_file(tmp_path, capsys):
    p = tmp_path / "old.json"
    d = json.loads(PEND.read_text())
    d["model_fingerprint"] = "sha256:" + "0" * 64
    p.write_text(json.dumps(d))
    code, out, err = run_cli(capsys, "info", p)
    one_line_error(code, err, "made for another model", f"reachsafe compute-invariant pendulum --out {p}")


def test_messages_show_plain_numbers_not_numpy_reprs(tmp_path, capsys):
    """The user's tampered set (b[3] + 0.5 reaches omega = -12.5): certify names the number plainly."""
    p = tmp_path / "p.json"
    d = json.loads(PEND.read_text())
    d["b"][3] += 0.5
    d["certificate"] = None
    p.write_text(json.dumps(d))
    code, out, err = run_cli(capsys, "certify", p, "--no-write", "--quiet")
    assert code == 1 and "reaches -12.4999" in out
    assert "np.float64" not in out + err and "np.int64" not in out + err


# ----------------------------------------------------------------------------- progress
def test_plain_progress_lines_carry_no_escape_codes(monkeypatch):
    from reachsafe import progress

    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)
    buf = io.StringIO()  # not a terminal
    bar = progress.progress_bar(total=3, desc="certify", unit="cell", file=buf, leave=False, dynamic_ncols=True)
    assert isinstance(bar, progress.PlainProgress)
    for _ in range(3):
        bar.set_postfix_str("queue 1", refresh=False)
        bar.update(1)
    bar.close()
    text = buf.getvalue()
    assert text.splitlines()[0].startswith("certify: 1/3 cell [") and text.splitlines()[0].endswith(", queue 1]")
    assert "\r" not in text and "\x1b" not in text and len(text.splitlines()) == 4
    assert all(line.startswith("certify: ") for line in text.splitlines())
    quiet = io.StringIO()
    q = progress.progress_bar(range(5), file=quiet, disable=True)
    assert list(q) == list(range(5)) and quiet.getvalue() == ""


@pytest.mark.parametrize("quiet", [False, True])
def test_compute_invariant_logs_plain_progress_or_nothing(tmp_path, quiet):
    """Nested bars (synthesis, certify) wrote ESC[A into logs; a log gets plain lines, --quiet none."""
    out = tmp_path / "p.json"
    cmd = [sys.executable, "-m", "reachsafe.cli", "compute-invariant", "pendulum", "--out", str(out)]
    r = subprocess.run(cmd + (["--quiet"] if quiet else []), capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stderr and "\r" not in r.stderr
    if quiet:
        assert r.stderr == ""
    else:
        lines = r.stderr.splitlines()
        assert any(ln.startswith("pendulum: ") for ln in lines), lines  # the synthesis reports its end
    assert out.exists() and not any(p.name.startswith(".reachsafe-") for p in tmp_path.iterdir())
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize("option, value", [("--margin", "-1"), ("--margin", "0"), ("--margin", "nan"),
                                           ("--margin", "inf"), ("--time-budget", "nan"), ("--time-budget", "-5")])
def test_compute_invariant_refuses_a_margin_or_budget_that_is_not_positive(tmp_path, capsys, option, value):
    """Regression: --margin -1 was accepted and looped for the whole budget (every candidate refuted)."""
    out = tmp_path / "x.json"
    code, _, err = run_cli(capsys, "compute-invariant", "pendulum", "--out", out, option, value)
    one_line_error(code, err, f"{option} must be")
    assert not out.exists() and list(tmp_path.iterdir()) == []
