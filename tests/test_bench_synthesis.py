"""``reachsafe bench synthesis``: one row per system, built-ins and every example model by default."""

from __future__ import annotations

import json

from reachsafe.cli import main
from verification.synthesis.bench import default_systems

from .conftest import ROOT


def test_default_systems_are_the_builtins_and_every_example_model(monkeypatch):
    monkeypatch.chdir(ROOT)
    names = default_systems()
    assert names[:2] == ["pendulum", "quadrotor"]
    models = sorted(p.name for p in (ROOT / "examples").glob("*.py") if "DEFINITION" in p.read_text())
    assert sorted(n.rsplit("/", 1)[-1] for n in names[2:]) == models
    assert "cartpole.py" in models and "tora.py" in models and "lane_keeping.py" in models


def test_bench_synthesis_row(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "synthesis", "--systems", "pendulum", "--no-kernel", "--time-budget", "300",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pendulum" in text and "certified" in text
    (rec,) = json.loads(out.read_text())
    assert rec["certified"] and rec["facets"] >= 4 and 0.9 < rec["fraction_of_X"] < 1.0
