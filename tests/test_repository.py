"""data/ paths resolve from the working folder, not from where reachsafe is installed (issue 19, item 6).

The repository is the nearest folder at or above the current one holding pyproject.toml and data/
(reachsafe.repository); the default set of a run, the demo's set, the audit benchmark's published
set and an experiment's default set are looked up there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reachsafe.errors import UserError
from reachsafe.repository import repository_root
from training.runner import default_set_path

from .conftest import DATA, ROOT, run_cli


def test_repository_is_found_from_any_folder_inside_it(monkeypatch):
    assert repository_root(ROOT / "results" / "smoke") == ROOT
    monkeypatch.chdir(ROOT / "experiments")
    assert repository_root() == ROOT
    path, note = default_set_path("pendulum")
    assert path == DATA / "pendulum.json" and "data/pendulum.json" in note


def test_a_folder_without_pyproject_is_not_a_repository(tmp_path):
    (tmp_path / "data").mkdir()
    assert repository_root(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("")
    assert repository_root(tmp_path / "data") == tmp_path


def test_outside_a_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="pendulum needs --set FILE.*no repository"):
        default_set_path("pendulum")
    (tmp_path / "sets").mkdir()
    shutil.copy(DATA / "pendulum.json", tmp_path / "sets" / "pendulum.json")
    assert default_set_path("pendulum")[0] == Path("sets") / "pendulum.json"


def test_published_fallback_is_the_profiles_choice(tmp_path, monkeypatch):
    """A repository without data/pendulum.json falls back to the published pendulum set (invariant),
    never to the published quadrotor set (not invariant)."""
    (tmp_path / "data" / "published").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    path, note = default_set_path("pendulum")
    assert path == tmp_path.resolve() / "data" / "published" / "pendulum.json" and "published set" in note
    with pytest.raises(UserError, match="published quadrotor set is not invariant"):
        default_set_path("quadrotor")


def test_experiment_default_set_is_the_repositorys(tmp_path):
    from training.experiment import load_experiment

    toml = tmp_path / "exp.toml"
    toml.write_text(f'[experiment]\nroot = "{ROOT / "experiments"}"\n[systems.pendulum]\nsteps = 512\n'
                    '[[grid]]\nsystems = ["pendulum"]\nalgos = ["shac"]\nsafeguards = ["none"]\nseeds = 1\n')
    exp = load_experiment(toml)
    assert Path(exp.runs[0].set_path) == (DATA / "pendulum.json").resolve()


def test_bench_audit_finds_the_published_set(capsys, monkeypatch):
    """Its default path pointed into verification/data/published, which does not exist."""
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(capsys, "bench", "audit", "--episodes", 2, "--steps", 5, "--repeat", 1)
    assert code == 0, err
    assert "throughput" in out and "policy safe" in out
