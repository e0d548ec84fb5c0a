"""A run interrupted and resumed reproduces the uninterrupted run bit for bit (issue 18, point 6):
same metrics (wall times aside), same final rollouts, same final weights.  The interruption lands
right after a checkpoint was written, the worst case for state that a checkpoint misses."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from reachsafe.rollouts import Rollouts
from training import runner

from .conftest import DATA, PUBLISHED

SETTINGS = {
    "shac": dict(steps=512, eval_every=256, overrides={"horizon": 16, "critic_iterations": 2}),
    "sac": dict(steps=1536, eval_every=384, overrides={"learning_starts": 512, "batch_size": 64}),
    "ppo": dict(steps=1536, eval_every=384, overrides={"n_steps": 48, "batch_size": 128, "n_epochs": 2}),
}


class _Killed(Exception):
    """Stands in for SIGKILL right after a checkpoint reached the disk."""


def _cfg(algo: str):
    s = SETTINGS[algo]
    cfg, _ = runner.make_config("pendulum", algo, "raymask", set_path=str(DATA / "pendulum.json"),
                                init_set_path=str(PUBLISHED / "pendulum.json"), seed=3, steps=s["steps"],
                                eval_every=s["eval_every"], eval_episodes=3, overrides=s["overrides"])
    return cfg


def _train(cfg, out: Path, resume: bool = False):
    return runner.train(cfg, out, resume=resume, progress=False, log=lambda m: None, warn=lambda m: None)


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(fh)]


def _weights(run: Path, algo: str) -> dict[str, np.ndarray]:
    if algo == "shac":
        sd = torch.load(run / "checkpoint" / "shac.pt", weights_only=False)["agent"]["model"]
        return {k: v.numpy() for k, v in sd.items()}
    with zipfile.ZipFile(run / "checkpoint" / "model.zip") as z:
        sd = torch.load(z.open("policy.pth"), weights_only=False)
    return {k: v.numpy() for k, v in sd.items()}


@pytest.mark.parametrize("algo", ["shac", pytest.param("sac", marks=pytest.mark.slow),
                                  pytest.param("ppo", marks=pytest.mark.slow)])
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, monkeypatch, algo):
    torch.set_num_threads(1)
    cfg = _cfg(algo)
    full = tmp_path / "full"
    s_full = _train(cfg, full)

    cut = tmp_path / "cut"
    saved = {"n": 0}
    real_save = runner.RunDir.save_torch

    def save_then_die(self, obj, name):  # a checkpoint (not the last) reaches the disk, then the process dies
        real_save(self, obj, name)
        if name in ("shac.pt", "sb3.pt"):  # the checkpoint's one file (written atomically)
            saved["n"] += 1
            if saved["n"] == (1 if algo == "shac" else 2):
                raise _Killed()

    monkeypatch.setattr(runner.RunDir, "save_torch", save_then_die)
    with pytest.raises(_Killed):
        _train(cfg, cut)
    monkeypatch.setattr(runner.RunDir, "save_torch", real_save)
    assert not (cut / "rollouts.npz").exists() and len(_metrics(cut)) < len(_metrics(full))
    s_cut = _train(cfg, cut, resume=True)

    assert _metrics(cut) == _metrics(full)  # every evaluation and training counter, as text
    for noise in ("uniform", "adversarial"):
        a = Rollouts.load(full / runner.RunDir(full).rollouts_path(noise).name)
        b = Rollouts.load(cut / runner.RunDir(cut).rollouts_path(noise).name)
        for k in ("states", "actions", "policy_actions", "rewards"):
            assert np.array_equal(getattr(a, k), getattr(b, k)), (noise, k)
        assert s_cut[noise] == s_full[noise]
    assert s_cut["train"] == s_full["train"]
    wa, wb = _weights(full, algo), _weights(cut, algo)
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
