"""Experiment grids (training/experiment*.py, training/aggregate.py), `reachsafe experiment` and `reachsafe demo`.

The end-to-end tests use tiny budgets (a few hundred environment steps, small SHAC settings);
they exercise the machinery (workers, resume/skip, audit, aggregation, Ray), not learning.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reachsafe.cli import main

from .conftest import DATA, PUBLISHED, ROOT, run_cli
from .conftest import one_line_error as _one_line_error

CERT_PEND = DATA / "pendulum.json"




TINY_SYSTEM = f"""
[systems.pendulum]
set = "{CERT_PEND}"
init_set = "{PUBLISHED / 'pendulum.json'}"
steps = 512
eval_every = 256
eval_episodes = 4
[systems.pendulum.hyperparameters.shac]
horizon = 16
critic_iterations = 2
"""

TINY_GRID = """
[[grid]]
systems = ["pendulum"]
algos = ["shac"]
safeguards = ["none"]
seeds = 1

[[grid]]
systems = ["pendulum"]
algos = ["shac"]
safeguards = ["raymask"]
seeds = [0]
"""


def _write(tmp_path: Path, body: str, name: str = "exp") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(f'[experiment]\nname = "{name}"\n' + body)
    return p


def _tiny(tmp_path: Path, name: str = "tiny", grid: str = TINY_GRID) -> Path:
    return _write(tmp_path, TINY_SYSTEM + grid, name)


# ----------------------------------------------------------------------------- parsing and grid expansion
def test_grid_expansion_ids_and_settings(tmp_path):
    from training.experiment import load_experiment

    p = _write(tmp_path, TINY_SYSTEM + """
[[grid]]
systems = ["pendulum"]
algos = ["shac"]
safeguards = ["none"]
seeds = 2

[[grid]]
systems = ["pendulum"]
algos = ["shac"]
safeguards = ["projection", "raymask-tanh"]
variants = ["plain", "passthrough", "regularize", "both"]
regularize = 0.1
seeds = [3]

[[grid]]
systems = ["pendulum"]
algos = ["ppo", "sac"]
safeguards = ["raymask"]
seeds = 1
""")
    exp = load_experiment(p)
    ids = [s.run_id for s in exp.runs]
    # seed-major (every variant's seed 0 before any seed 1), grid order within a seed
    assert ids == [
        "pendulum-shac-none-s0", "pendulum-ppo-raymask-s0", "pendulum-sac-raymask-s0",
        "pendulum-shac-none-s1",
        "pendulum-shac-projection-s3", "pendulum-shac-projection-pt-s3", "pendulum-shac-projection-reg0.1-s3",
        "pendulum-shac-projection-pt-reg0.1-s3",
        "pendulum-shac-raymask-tanh-s3", "pendulum-shac-raymask-tanh-pt-s3", "pendulum-shac-raymask-tanh-reg0.1-s3",
        "pendulum-shac-raymask-tanh-pt-reg0.1-s3"]
    assert [s.run_id for s in load_experiment(p).runs] == ids  # stable
    both = exp.runs[7]
    assert both.passthrough and both.regularize == 0.1 and both.variant == "both" and both.seed == 3
    assert both.group == "pendulum-shac-projection-pt-reg0.1"
    cfg = both.make_config()
    assert cfg.steps == 512 and cfg.eval_every == 256 and cfg.eval_episodes == 4 and cfg.threads == 1
    assert cfg.hyperparameters["horizon"] == 16 and cfg.hyperparameters["regularize"] == 0.1
    assert cfg.init_set_path == str((PUBLISHED / "pendulum.json").resolve())
    ppo = exp.runs[1].make_config()
    assert "horizon" not in ppo.hyperparameters  # shac overrides do not leak into PPO
    assert exp.results_dir == tmp_path / "results" / "exp" and exp.runs_dir == tmp_path / "runs" / "experiments" / "exp"


def test_repository_configs_parse():
    from training.experiment import load_experiment

    paper = load_experiment(ROOT / "experiments" / "paper.toml")
    assert len(paper.runs) == 166
    shac = [s for s in paper.runs if s.algo == "shac"]
    assert {s.safeguard for s in shac} == {"none", "projection", "raymask", "raymask-tanh"}
    assert {s.variant for s in shac} == {"plain", "passthrough", "regularize", "both"}
    assert min(len({s.seed for s in shac if s.group == g}) for g in {s.group for s in shac}) >= 5
    base = [s for s in paper.runs if s.algo in ("ppo", "sac")]
    assert {s.safeguard for s in base} == {"none", "projection", "raymask"}
    assert min(len({s.seed for s in base if s.group == g}) for g in {s.group for s in base}) >= 3
    for s in paper.runs:
        assert Path(s.set_path) == (DATA / f"{s.system}.json").resolve()
        assert Path(s.init_set_path) == (PUBLISHED / f"{s.system}.json").resolve()
        assert s.init_sampling == "zonotope" and s.make_config().init_sampling == "zonotope"
    cert = load_experiment(ROOT / "experiments" / "certified.toml")
    assert [s.run_id for s in cert.runs] == [s.run_id for s in paper.runs if s.variant == "plain"]
    assert len(cert.runs) == 76
    assert all(s.init_set_path is None and s.init_sampling == "uniform" for s in cert.runs)
    smoke = load_experiment(ROOT / "experiments" / "smoke.toml")
    assert 2 <= len(smoke.runs) <= 4 and all(s.system == "pendulum" for s in smoke.runs)
    assert all(s.make_config().steps <= 2048 for s in smoke.runs)


BAD = [
    ('[experiment]\nname = "x"\ncolour = 1\n', ["unknown key 'colour'", "[experiment]"]),
    ("bogus = 1\n", ["unknown key 'bogus'"]),
    (
        TINY_SYSTEM.replace("steps = 512", "steps = 512\nstep = 3") + TINY_GRID,
        ["unknown key 'step'", "[systems.pendulum]"],
    ),
    (TINY_SYSTEM.replace("horizon = 16", "horizn = 16") + TINY_GRID, ["unknown key 'horizn'", "hyperparameters.shac"]),
    (
        TINY_SYSTEM + TINY_GRID.replace("seeds = 1", "seeds = 1\nseed = 2", 1),
        ["unknown key 'seed'", "[[grid]] block 1"],
    ),
    (TINY_SYSTEM + "[systems.cartpole]\n" + TINY_GRID, ["cartpole"]),
    (TINY_SYSTEM + TINY_GRID.replace('systems = ["pendulum"]', 'systems = ["segway"]', 1), ["segway"]),
    (TINY_SYSTEM + TINY_GRID.replace('algos = ["shac"]', 'algos = ["dqn"]', 1), ["unknown algorithm 'dqn'"]),
    (TINY_SYSTEM + TINY_GRID.replace('"raymask"', '"raymsk"'), ["unknown safeguard 'raymsk'"]),
    (TINY_SYSTEM + TINY_GRID.replace("seeds = [0]", 'seeds = [0]\nvariants = ["fancy"]'), ["unknown variant 'fancy'"]),
    (
        TINY_SYSTEM + TINY_GRID.replace("seeds = 1", 'seeds = 1\nvariants = ["passthrough"]', 1),
        ["variant 'passthrough' needs a safeguard"],
    ),
    (
        TINY_SYSTEM
        + TINY_GRID.replace(
            'algos = ["shac"]\nsafeguards = ["raymask"]',
            'algos = ["ppo"]\nsafeguards = ["raymask"]\nvariants = ["passthrough"]',
        ),
        ["applies to SHAC only"],
    ),
    (TINY_SYSTEM + TINY_GRID.replace("seeds = [0]", 'seeds = [0]\nvariants = ["regularize"]'), ["regularize = C"]),
    (TINY_SYSTEM + TINY_GRID.replace("seeds = [0]", "seeds = [0]\nregularize = 0.5"), ["no variant uses it"]),
    (TINY_SYSTEM.replace(str(CERT_PEND), "/nonexistent/pendulum.json") + TINY_GRID, ["no such file", "set"]),
    (TINY_SYSTEM.replace("init_set = ", 'init_set = "missing.json"\n#'), ["no such file", "init_set"]),
    (TINY_SYSTEM + TINY_GRID.replace("seeds = 1", "seeds = 0", 1), ["seeds"]),
    (
        TINY_SYSTEM.replace("steps = 512", 'steps = 512\ninit_sampling = "gauss"') + TINY_GRID,
        ["init_sampling", "gauss"],
    ),
    (TINY_SYSTEM.replace("init_set = ", 'init_sampling = "zonotope"\n#') + TINY_GRID, ["needs 'init_set"]),
    (TINY_SYSTEM + TINY_GRID + TINY_GRID, ["appears twice"]),
    (TINY_SYSTEM, ["no [[grid]] block"]),
    (TINY_SYSTEM + TINY_GRID + "[[grid]\n", ["not valid TOML"]),
]


@pytest.mark.parametrize("body,needles", BAD)
def test_bad_configs_one_line_exit_2(tmp_path, capsys, body, needles):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    code, out, err = run_cli(capsys, "experiment", p, "--dry-run")
    _one_line_error(code, err, *needles)
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


def test_bad_command_line_one_line_exit_2(tmp_path, capsys):
    _one_line_error(*run_cli(capsys, "experiment", tmp_path / "nope.toml")[::2], "no such experiment file")
    p = _tiny(tmp_path)
    _one_line_error(*run_cli(capsys, "experiment", p, "--workers", "0")[::2], "--workers")
    _one_line_error(*run_cli(capsys, "experiment", p, "--address", "auto")[::2], "--backend ray")
    _one_line_error(*run_cli(capsys, "experiment", p, "--only", "quadrotor-*")[::2], "matches no run")
    with pytest.raises(SystemExit) as ei:  # argparse choices: exit 2 with one line
        main(["experiment", str(p), "--backend", "slurm"])
    _one_line_error(ei.value.code, capsys.readouterr().err, "slurm")
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


def test_ray_missing_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code, out, err = run_cli(capsys, "experiment", _tiny(tmp_path), "--backend", "ray")
    _one_line_error(code, err, "needs Ray", "pip install")
    assert not list((tmp_path / "results").rglob("run.json")) if (tmp_path / "results").exists() else True


# ----------------------------------------------------------------------------- aggregation math
def test_steps_to_fraction_and_mean_std():
    from training.aggregate import mean_std, steps_to_fraction, steps_to_within

    s = [100, 200, 300, 400, 500]
    # improvement -100 -> -10 (90); 95 % of it is reached at -14.5: first step with R >= -14.5 is 400
    assert steps_to_fraction(s, [-100, -50, -20, -14, -10]) == 400
    assert steps_to_fraction(s, [-100, -50, -14.5, -20, -10]) == 300  # first crossing counts, not the last
    assert steps_to_fraction(s, [-10, -20, -30, -40, -50]) == 100  # no improvement: first evaluation
    assert steps_to_fraction([7], [-3.0]) == 7
    assert steps_to_fraction(s, [0, 10, 20, 30, 100]) == 500
    with pytest.raises(ValueError):
        steps_to_fraction([], [])
    with pytest.raises(ValueError):
        steps_to_fraction([1, 2], [1.0, float("nan")])
    assert steps_to_within(s, [-100, -50, -20, -10.4, -10]) == 400  # -10 - 0.5
    assert steps_to_within(s, [-100, -9, -20, -14, -10]) == 200
    assert steps_to_within(s, [10, 50, 94, 96, 100]) == 400  # positive returns: >= 95
    assert steps_to_within(s, [-10, -20, -30, -40, -50]) == 100
    m, sd = mean_std([1.0, 2.0, 3.0, 6.0])
    assert m == 3.0 and math.isclose(sd, math.sqrt(14 / 3))
    assert mean_std([5.0]) == (5.0, 0.0)
    assert all(math.isnan(x) for x in mean_std([]))


def _fake_finished(exp, spec, steps, returns, final, wall, violations=0):
    """A results/ entry of a finished run with synthetic metrics (what execute_run + ResultsStore write)."""
    from training.experiment import spec_json
    from training.experiment_exec import ResultsStore

    rows = "env_steps,wall_time_s,eval_return_mean\n" + "".join(
        f"{s},{wall * (i + 1) / len(steps)},{r}\n" for i, (s, r) in enumerate(zip(steps, returns)))
    cfg = spec.make_config()
    rec = {"run_id": spec.run_id, "spec": json.loads(spec_json(spec, exp.root)), "env_steps": steps[-1],
           "wall_time_s": wall, "return_uniform": final, "return_adversarial": final - 1,
           "audit_violations": violations, "audit_certified": violations == 0}
    ResultsStore(exp).write(spec.run_id, {"files": {"metrics.csv": rows, "config.json": json.dumps(vars(cfg))},
                                          "record": rec})


def test_aggregate_on_synthetic_runs(tmp_path):
    from training.aggregate import aggregate, figure_groups, write_report
    from training.experiment import load_experiment

    exp = load_experiment(_tiny(tmp_path, grid=TINY_GRID.replace("seeds = [0]", "seeds = 3")))
    by = {s.run_id: s for s in exp.runs}
    _fake_finished(exp, by["pendulum-shac-none-s0"], [256, 512], [-100, -10], -10, 10.0, violations=7)
    _fake_finished(exp, by["pendulum-shac-raymask-s0"], [256, 512, 768], [-50, -9, -8], -8.0, 20.0)
    _fake_finished(exp, by["pendulum-shac-raymask-s1"], [256, 512, 768], [-60, -40, -10], -10.0, 30.0)
    stats = aggregate(exp)
    assert [v.group for v in stats] == ["pendulum-shac-none", "pendulum-shac-raymask"]
    none, rm = stats
    assert (
        none.seeds_done == [0] and none.seeds_planned == 1 and none.audit_violations == 7 and none.audit_certified == 0
    )
    assert none.steps95 == (512.0, 0.0) and none.wall_ratio_vs_shac_none == 1.0
    # raymask: seed 0 reaches -50 + 0.95 * 42 = -10.1 at 512, seed 1 reaches -12.5 at 768
    assert rm.seeds_done == [0, 1] and rm.seeds_planned == 3
    assert rm.steps95[0] == 640.0 and math.isclose(rm.steps95[1], np.std([512, 768], ddof=1))
    # within 5 % of the final: seed 0 (-8.4) at 768, seed 1 (-10.5) at 768
    assert rm.steps_within5 == (768.0, 0.0) and none.steps_within5 == (512.0, 0.0)
    assert rm.final_return[0] == -9.0 and math.isclose(rm.final_return[1], math.sqrt(2))
    assert rm.wall_time_s[0] == 25.0 and rm.wall_ratio_vs_shac_none == 2.5
    assert rm.curve_steps == [256, 512, 768] and rm.curve_mean == [-55.0, -24.5, -9.0]
    assert rm.curve_min == [-60.0, -40.0, -10.0] and rm.curve_max == [-50.0, -9.0, -8.0]  # the plot's band limits
    assert rm.curve_seeds == [[-50.0, -9.0, -8.0], [-60.0, -40.0, -10.0]]  # the thin per-seed lines
    assert rm.paper == (27_392, -8) and rm.paper_wall_s == 552
    paths = write_report(exp, stats, command="reachsafe experiment tiny.toml")
    md = paths["table.md"].read_text()
    assert "3 of 4 runs finished (partial)" in md and "| 2/3 |" in md and "640 ± 181" in md and "2.50x" in md
    summary = paths["summary.md"].read_text()
    assert ("| system | safeguard | SHAC | paper SHAC return |\n| --- | --- | --- | --- |\n"
            "| pendulum | none | -10.00 ± 0.00 (512) [1/1] | -8 |\n"
            "| pendulum | ray mask | -9.00 ± 1.41 (640) [2/3] | -8 |\n") in summary
    assert "![pendulum SHAC](curves/pendulum-shac.png)" in summary
    # combined figures: the plain variants side by side; a safeguard's gradient variants only where there are some
    assert [(n, [v.group for v in vs], seeds) for n, _, vs, seeds in figure_groups(stats)] == [
        ("pendulum-shac", ["pendulum-shac-none", "pendulum-shac-raymask"], False)]
    pt = dataclasses.replace(rm, group="pendulum-shac-raymask-pt", variant="passthrough")
    assert [(n, [v.group for v in vs], seeds) for n, _, vs, seeds in figure_groups([none, rm, pt])] == [
        ("pendulum-shac", ["pendulum-shac-none", "pendulum-shac-raymask"], False),
        ("pendulum-shac-raymask-variants", ["pendulum-shac-raymask", "pendulum-shac-raymask-pt"], True)]
    csv_text = paths["table.csv"].read_text()
    assert csv_text.splitlines()[0].startswith("group,system,algo") and len(csv_text.splitlines()) == 3
    agg = json.loads(paths["aggregate.json"].read_text())
    assert agg["runs_finished"] == 3 and agg["variants"][1]["steps95"][0] == 640.0
    assert (exp.results_dir / "curves" / "pendulum-shac-raymask.png").stat().st_size > 1000
    assert (exp.results_dir / "curves" / "pendulum-shac.png").exists()
    assert (exp.results_dir / "commands.txt").read_text() == "reachsafe experiment tiny.toml\n"


# ----------------------------------------------------------------------------- end to end (local)
def _mtimes(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*") if p.is_file()}


def test_local_grid_end_to_end_then_skip(tmp_path, capsys, monkeypatch):
    p = _tiny(tmp_path)
    code, out, err = run_cli(capsys, "experiment", p, "--workers", "2", "--no-progress")
    assert code == 0, err
    res = tmp_path / "results" / "tiny"
    for rid in ("pendulum-shac-none-s0", "pendulum-shac-raymask-s0"):
        d = res / "runs" / rid
        for f in ("config.json", "metrics.csv", "summary.json", "audit.json", "audit-adversarial.json", "run.json"):
            assert (d / f).exists(), (rid, f)
        rec = json.loads((d / "run.json").read_text())
        assert rec["env_steps"] >= 512 and set(rec["audit"]) == {"uniform", "adversarial"}
        assert json.loads((d / "audit.json").read_text())["checks"]["certificate"]["passed"]
        assert (tmp_path / "runs" / "experiments" / "tiny" / rid / "checkpoint").is_dir()  # heavy files stay in runs/
        assert not (d / "checkpoint").exists() and not (d / "rollouts.npz").exists()
    rm = json.loads((res / "runs" / "pendulum-shac-raymask-s0" / "run.json").read_text())
    assert rm["audit_certified"] and rm["audit_violations"] == 0
    for f in ("table.md", "table.csv", "aggregate.json", "commands.txt", "curves/pendulum-shac-raymask.png"):
        assert (res / f).exists(), f
    assert "2 of 2 runs finished" in (res / "table.md").read_text()
    assert "[2/2]" in out

    # second invocation: every run is finished in results/ -> nothing retrains (no backend is even created)
    import training.experiment_exec as ex

    def _no_backend(*a, **k):
        raise AssertionError("a finished grid must not start workers")

    monkeypatch.setattr(ex, "make_backend", _no_backend)
    before = _mtimes(res / "runs") | {"runs/" + k: v for k, v in _mtimes(tmp_path / "runs").items()}
    code, out, err = run_cli(capsys, "experiment", p, "--workers", "2", "--no-progress")
    assert code == 0, err
    assert "2 finished, 0 partial, 0 new" in out and "nothing to run" in out
    after = _mtimes(res / "runs") | {"runs/" + k: v for k, v in _mtimes(tmp_path / "runs").items()}
    assert after == before

    # --reaudit: a record with a (false) violation is audited again from the run directory and repaired;
    # the training figures stay, nothing trains
    d = res / "runs" / "pendulum-shac-raymask-s0"
    stale = {**rm, "audit_certified": False, "audit_violations": 1}
    (d / "run.json").write_text(json.dumps(stale))
    (d / "audit.json").write_text("{}")
    code, out, err = run_cli(capsys, "experiment", p, "--reaudit", "--only", "*raymask*", "--no-progress")
    assert code == 0, err
    assert "audited again: 1 of 1 finished run(s)" in out
    new = json.loads((d / "run.json").read_text())
    assert new["audit_certified"] and new["audit_violations"] == 0 and "reaudited" in new
    assert {k: new[k] for k in ("return_uniform", "wall_time_s", "spec")} == {
        k: rm[k] for k in ("return_uniform", "wall_time_s", "spec")
    }
    assert json.loads((d / "audit.json").read_text())["verdict"] == "certified"

    # a fresh clone: the run directories are gone, results/ alone says the runs are finished
    import shutil

    shutil.rmtree(tmp_path / "runs")
    code, out, err = run_cli(capsys, "experiment", p, "--dry-run")
    assert code == 0 and out.count("finished ") == 2 and "2 finished, 0 partial, 0 new" in out
    before = _mtimes(res)
    code, out, err = run_cli(capsys, "experiment", p, "--reaudit", "--no-progress")
    assert code == 0 and "audited again: 0 of 2 finished run(s); 2 skipped, their rollouts are not in" in out
    assert _mtimes(res) == before  # nothing audited: nothing rewritten, not even commands.txt
    code, out, err = run_cli(capsys, "experiment", p, "--reaudit", "--report")
    _one_line_error(code, err, "exclude each other")

    # changed settings for a finished run -> one line, exit 2, nothing trained
    p.write_text(p.read_text().replace("steps = 512", "steps = 768"))
    code, out, err = run_cli(capsys, "experiment", p, "--dry-run")
    _one_line_error(code, err, "other settings", "steps")


def test_interrupted_run_resumes(tmp_path, capsys):
    from training.experiment import load_experiment
    from training.runner import RunDir, train

    p = _tiny(tmp_path, "resume", grid=TINY_GRID.split("[[grid]]")[0] + "[[grid]]" + TINY_GRID.split("[[grid]]")[2])
    exp = load_experiment(p)
    (spec,) = exp.runs
    assert spec.run_id == "pendulum-shac-raymask-s0"
    # an interrupted run: the first half trained, checkpoint at 256 steps, no results yet
    cfg = spec.make_config()
    cfg.steps = 256
    run_dir = exp.run_dir(spec)
    train(cfg, run_dir, progress=False, log=lambda s: None)
    first = RunDir(run_dir).read_metrics()
    assert [r["env_steps"] for r in first] == [256]
    code, out, err = run_cli(capsys, "experiment", p, "--dry-run")
    assert "0 finished, 1 partial, 0 new" in out and "partial  pendulum-shac-raymask-s0" in out
    code, out, err = run_cli(capsys, "experiment", p, "--workers", "1", "--no-progress")
    assert code == 0, err
    assert "1 resumed from checkpoints" in out
    rec = json.loads((exp.results_dir / "runs" / spec.run_id / "run.json").read_text())
    assert any("resuming" in line and "256" in line for line in rec["log"]), rec["log"]
    rows = RunDir(run_dir).read_metrics()
    assert [r["env_steps"] for r in rows] == [256, 512]
    keys = ("env_steps", "wall_time_s", "eval_return_mean", "eval_return_std", "train_interventions")
    assert [rows[0][k] for k in keys] == [first[0][k] for k in keys]  # the first half was not retrained
    assert rec["env_steps"] == 512 and rec["audit_certified"]


# ----------------------------------------------------------------------------- Ray
def test_ray_backend_local_instance(tmp_path, capsys, monkeypatch):
    """A tiny grid on a local Ray instance started by the backend (ray is in the dev extra); every
    server of the instance listens on 127.0.0.1 only (Ray's default is the interface address)."""
    import os

    import ray  # noqa: F401  (installed by pip install -e ".[dev]")

    from training.ray_connect import RayConnection

    from .test_ray_cluster import LOOPBACK_HEX, _listening, _tree

    seen: dict = {}
    real_start = RayConnection.start_local

    def start_local(self, cpus, **kw):
        real_start(self, cpus, **kw)
        seen["addrs"] = _listening(_tree(os.getpid()))
        seen["env"] = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")

    monkeypatch.setattr(RayConnection, "start_local", start_local)
    before = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    p = _tiny(tmp_path, "tinyray")
    code, out, err = run_cli(capsys, "experiment", p, "--backend", "ray", "--workers", "1", "--no-progress")
    assert code == 0, err
    assert seen["addrs"] and set(seen["addrs"]) <= LOOPBACK_HEX, seen
    assert seen["env"] == "0" and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == before  # restored
    assert "on ray with 1 worker" in out
    res = tmp_path / "results" / "tinyray" / "runs"
    recs = {d.name: json.loads((d / "run.json").read_text()) for d in res.iterdir()}
    assert set(recs) == {"pendulum-shac-none-s0", "pendulum-shac-raymask-s0"}
    assert recs["pendulum-shac-raymask-s0"]["audit_certified"]
    import ray as _ray

    assert not _ray.is_initialized()  # the backend shut down the instance it started


# ----------------------------------------------------------------------------- demo
def test_demo_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # any working directory
    out_dir = tmp_path / "demo"
    code, out, err = run_cli(capsys, "demo", "--out", out_dir, "--steps", "512", "--no-progress")
    assert code == 0, err
    assert (out_dir / "audit.html").stat().st_size > 10_000 and str(out_dir / "audit.html") in out
    for stem in ("audit", "audit-adversarial"):
        j = json.loads((out_dir / f"{stem}.json").read_text())
        assert j["verdict"] == "certified" and j["failures"]["total"] == 0
        assert j["checks"]["certificate"]["passed"]
    assert (out_dir / "run" / "rollouts.npz").exists()
    assert "CERTIFIED SAFE" in out
    code, out, err = run_cli(capsys, "demo", "--out", out_dir, "--steps", "512")
    _one_line_error(code, err, "not an empty folder")
    _one_line_error(*run_cli(capsys, "demo", "--steps", "0")[::2], "--steps")


def test_cli_imports_stay_lazy():
    """`import reachsafe` and the experiment/demo parsers import no training, verification, Ray or matplotlib."""
    code = ("import sys, argparse, reachsafe, reachsafe.commands.experiment as e, reachsafe.commands.demo as d; "
            "e.add_arguments(argparse.ArgumentParser()); d.add_arguments(argparse.ArgumentParser()); "
            "bad = [m for m in ('training', 'verification', 'ray', 'matplotlib', 'cvxpy') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_demo_computes_a_missing_set(tmp_path, capsys, monkeypatch):
    """A checkout without data/pendulum.json: the demo certifies a set into --out and uses it."""
    monkeypatch.chdir(tmp_path)  # outside the repository: no data/pendulum.json
    out_dir = tmp_path / "demo"
    code, out, err = run_cli(capsys, "demo", "--out", out_dir, "--steps", "512", "--no-progress")
    assert code == 0, err
    assert "computing a certified pendulum set" in out and (out_dir / "pendulum.json").exists()
    assert (out_dir / "pendulum.proof.json").exists()
    j = json.loads((out_dir / "audit.json").read_text())
    assert j["verdict"] == "certified" and j["set"]["path"] == str(out_dir / "pendulum.json")
    assert not (DATA / "pendulum.json").samefile(out_dir / "pendulum.json")


def test_demo_default_out_on_a_fresh_clone(tmp_path, capsys, monkeypatch):
    """Bug: on a fresh clone `reachsafe demo` (no --out) refused to run, because the default
    folder runs/ is gitignored and so absent."""
    import shutil

    clone = tmp_path / "clone"
    (clone / "data").mkdir(parents=True)
    for f in ("pendulum.json", "pendulum.proof.json"):
        shutil.copy(DATA / f, clone / "data" / f)
    shutil.copy(ROOT / "pyproject.toml", clone)
    monkeypatch.chdir(clone)  # the repository is found from the working folder
    code, out, err = run_cli(capsys, "demo", "--steps", "512", "--no-progress")
    assert code == 0, err
    (demo,) = (clone / "runs").iterdir()
    assert demo.name.startswith("demo-") and (demo / "audit.html").exists() and str(demo / "audit.html") in out


def test_finished_run_records_are_not_gitignored():
    """Bug: '.gitignore: runs/' also ignored results/NAME/runs/, so the records that mark a run as
    finished were never committed and a fresh clone retrained the whole grid."""
    import shutil

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for p in ("results/paper/runs/pendulum-shac-none-s0/run.json", "results/x/runs/y/metrics.csv"):
        r = subprocess.run(["git", "check-ignore", "-q", p], cwd=ROOT)
        assert r.returncode == 1, f"{p} is git-ignored; finished-run records must be committed"
    r = subprocess.run(["git", "check-ignore", "-q", "runs/experiments/paper/x/checkpoint/shac.pt"], cwd=ROOT)
    assert r.returncode == 0, "run directories (checkpoints) under runs/ must stay ignored"


# ----------------------------------------------------------------------------- set identity (issue 18, point 2)
def _set_copy(tmp_path: Path) -> Path:
    d = tmp_path / "sets"
    d.mkdir()
    for name in ("pendulum.json", "pendulum.proof.json"):
        (d / name).write_bytes((DATA / name).read_bytes())
    return d / "pendulum.json"


def _resave(path: Path, **changes) -> None:
    from reachsafe.setfile import load_set

    sf = load_set(path, check_certificate=False)
    for k, v in changes.items():
        setattr(sf, k, v)
    sf.save(path)


def test_finished_runs_follow_the_set_fingerprint_not_the_file_bytes(tmp_path, capsys):
    from training.experiment import load_experiment

    setp = _set_copy(tmp_path)
    p = _write(tmp_path, TINY_SYSTEM.replace(str(CERT_PEND), str(setp)) + TINY_GRID, "ident")
    exp = load_experiment(p)
    for spec in exp.runs:
        _fake_finished(exp, spec, [256, 512], [-50.0, -10.0], -10.0, 3.0)
    # what README command (a) used to do: same A, b and model, new time stamps in the file
    _resave(setp, provenance={**json.loads(setp.read_text())["provenance"], "created": "2030-01-01T00:00:00+00:00"})
    code, out, err = run_cli(capsys, "experiment", p, "--dry-run")
    assert code == 0 and "2 finished, 0 partial, 0 new" in out, err
    # another set (b changed): one line that says to restore it first, not to retrain
    d = json.loads(setp.read_text())
    _resave(setp, b=np.array(d["b"]) * 0.99, certificate=None)
    code, out, err = run_cli(capsys, "experiment", p, "--dry-run")
    _one_line_error(code, err, "was trained with another set than", str(setp), "restore that set file")
    assert err.index("restore that set file") < err.index("retrains the run")


def test_legacy_records_with_file_sha256_stay_valid(tmp_path, capsys):
    """Records written before the fingerprint (results/ of the committed grids) carry set_sha256."""
    import hashlib

    from training.experiment import load_experiment
    from training.experiment_exec import ResultsStore

    setp = _set_copy(tmp_path)
    p = _write(tmp_path, TINY_SYSTEM.replace(str(CERT_PEND), str(setp)) + TINY_GRID, "legacy")
    exp = load_experiment(p)
    spec = exp.runs[0]
    _fake_finished(exp, spec, [256, 512], [-50.0, -10.0], -10.0, 3.0)
    d = ResultsStore(exp).run_path(spec.run_id)
    rec = json.loads((d / "run.json").read_text())
    s = rec["spec"]
    fps = {k: s.pop(k) for k in ("set_fingerprint", "init_set_fingerprint")}
    s["set_sha256"] = hashlib.sha256(setp.read_bytes()).hexdigest()
    s["init_set_sha256"] = hashlib.sha256(Path(spec.init_set_path).read_bytes()).hexdigest()
    (d / "run.json").write_text(json.dumps(rec))
    (d / "config.json").write_text(json.dumps(fps))  # what the trainer records
    store = ResultsStore(exp)
    assert store.record(spec) is not None
    _resave(setp, provenance={"created": "later"})  # bytes differ now; config.json's fingerprints decide
    assert store.record(spec) is not None
    (d / "config.json").unlink()  # no config.json: the recorded bytes decide, and they changed
    with pytest.raises(Exception, match="trained with another set"):
        store.record(spec)


def test_command_a_keeps_the_committed_experiments_finished(tmp_path, capsys):
    """A copy of the repository's smoke grid: after data/pendulum.json is rewritten with new time
    stamps (README command (a) before the fix), the committed runs are still finished."""
    import shutil

    for sub in ("data", "experiments"):
        shutil.copytree(ROOT / sub, tmp_path / sub)
    shutil.copytree(ROOT / "results" / "smoke", tmp_path / "results" / "smoke")
    _resave(tmp_path / "data" / "pendulum.json",
            provenance={**json.loads((DATA / "pendulum.json").read_text())["provenance"], "created": "2031-01-01"})
    code, out, err = run_cli(capsys, "experiment", tmp_path / "experiments" / "smoke.toml", "--dry-run")
    assert code == 0 and "3 finished, 0 partial, 0 new" in out, err
