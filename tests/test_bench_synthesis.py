"""``reachsafe bench synthesis``: one row per system, built-ins and every example model by default."""

from __future__ import annotations

import json

import pytest

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
    assert "pendulum" in text and "certified" in text and "% of open-loop" in text
    (rec,) = json.loads(out.read_text())
    assert rec["certified"] and rec["facets"] >= 4 and 0.9 < rec["fraction_of_X"] < 1.0
    assert rec["open_loop_fraction_of_X"] is None  # --no-kernel (and a 2-D system has none)


@pytest.mark.slow
def test_bench_synthesis_row_in_3d_has_both_estimates(tmp_path, capsys):
    out = tmp_path / "bench.json"
    model = str(ROOT / "examples" / "unicycle_path.py")
    assert main(["bench", "synthesis", "--systems", model, "--time-budget", "300", "--json", str(out)]) == 0
    (rec,) = json.loads(out.read_text())
    assert rec["certified"] and 0 < rec["kernel_fraction_of_X"] <= 1 and 0 < rec["open_loop_fraction_of_X"] <= 1
    assert rec["fraction_of_open_loop"] == pytest.approx(rec["fraction_of_X"] / rec["open_loop_fraction_of_X"])
