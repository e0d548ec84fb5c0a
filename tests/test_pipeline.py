"""End to end on the committed certified pendulum set: train (safeguarded) -> audit exit 0."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reachsafe.cli import main

from .conftest import DATA


def test_train_then_audit_is_clean_and_tampering_is_caught(tmp_path, capsys):
    setfile = DATA / "pendulum.json"
    if not setfile.exists():
        pytest.skip("data/pendulum.json not committed")
    run = tmp_path / "run"
    assert main(["train", "pendulum", "--safeguard", "raymask", "--set", str(setfile), "--seed", "0",
                 "--steps", "512", "--eval-every", "512", "--eval-episodes", "3", "--out", str(run),
                 "--no-progress"]) == 0
    capsys.readouterr()
    report = tmp_path / "audit.json"
    code = main(["audit", str(run), "--set", str(setfile), "--json", str(report), "--html", str(tmp_path / "a.html")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert json.loads(report.read_text())
    # tamper: push one state far outside the set; the audit names the step
    z = dict(np.load(run / "rollouts.npz", allow_pickle=False))
    z["states"] = z["states"].copy()
    z["states"][1, 7, 1] = 50.0
    bad = tmp_path / "tampered.npz"
    np.savez(bad, **z)
    assert main(["audit", str(bad), "--set", str(setfile)]) == 1
    out = capsys.readouterr().out
    assert "episode 1 step 7" in out
