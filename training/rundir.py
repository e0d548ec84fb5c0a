"""The files of one run directory (:class:`RunDir`) and the process's random states a checkpoint holds.

A run directory holds::

    config.json              every setting, set fingerprints, package versions, git commit
    metrics.csv              one row per evaluation (METRIC_COLUMNS)
    checkpoint/shac.pt       SHAC: networks, optimisers, obs statistics, environment state, every RNG (atomic)
    checkpoint/sb3.pt        PPO/SAC: the SB3 model, SAC's replay buffer, environment state, every RNG (atomic)
    checkpoint/model.zip     PPO/SAC: the SB3 model alone (what evaluate loads)
    rollouts.npz             final evaluation, uniform noise   (format: reachsafe.rollouts)
    rollouts-adversarial.npz final evaluation, adversarial noise
    summary.json             final figures
    curve.png                learning curve (eval return vs env steps, intervention rate)

What goes into a checkpoint is the training backend's business (:mod:`training.backends`);
this module only reads and writes the files, each atomically.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reachsafe.errors import UserError
from reachsafe.setfile import atomic_write_bytes, atomic_write_text

__all__ = ["RunDir", "METRIC_COLUMNS", "rng_state", "set_rng_state"]

METRIC_COLUMNS = ["env_steps", "wall_time_s", "eval_return_mean", "eval_return_std", "eval_intervention_rate",
                  "eval_violations_P", "eval_violations_X", "train_return", "train_interventions",
                  "train_violations_P", "train_violations_X", "train_fallbacks"]
_INT_COLUMNS = {"env_steps", "eval_violations_P", "eval_violations_X", "train_interventions", "train_violations_P",
                "train_violations_X", "train_fallbacks"}


class RunDir:
    """Files of one run (module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.metrics_path = self.path / "metrics.csv"
        self.ckpt_dir = self.path / "checkpoint"
        self.curve_path = self.path / "curve.png"
        self.summary_path = self.path / "summary.json"

    def rollouts_path(self, noise: str) -> Path:
        return self.path / ("rollouts.npz" if noise == "uniform" else f"rollouts-{noise}.npz")

    def is_nonempty(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def prepare(self, resume: bool) -> None:
        """Create the directory; refuse an existing non-empty one unless ``resume``."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} is a file; give a directory for the run")
        if self.is_nonempty() and not resume:
            raise UserError(f"run directory {self.path} exists and is not empty; pass --resume to continue it "
                            "or choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)

    # config
    def write_config(self, d: dict[str, Any]) -> None:
        atomic_write_text(self.config_path, json.dumps(d, indent=1, sort_keys=False) + "\n")

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise UserError(
                f"{self.path} is not a run directory (no config.json); pass the --out of a 'reachsafe train' run"
            )
        return json.loads(self.config_path.read_text())

    # metrics
    def read_metrics(self) -> list[dict[str, float]]:
        if not self.metrics_path.exists():
            return []
        with open(self.metrics_path, newline="") as fh:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]

    def write_metrics(self, rows: list[dict[str, float]]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (int(r[k]) if k in _INT_COLUMNS else r[k]) for k in METRIC_COLUMNS if k in r})
        atomic_write_text(self.metrics_path, buf.getvalue())

    # checkpoints
    def has_checkpoint(self) -> bool:
        # state.json: PPO/SAC checkpoints of older reachsafe versions (model.zip, replay.pkl, state.json)
        return any((self.ckpt_dir / n).exists() for n in ("shac.pt", "sb3.pt", "state.json"))

    def save_torch(self, obj: Any, name: str) -> None:
        buf = io.BytesIO()
        torch.save(obj, buf)
        atomic_write_bytes(self.ckpt_dir / name, buf.getvalue())

    def load_torch(self, name: str) -> Any:
        return torch.load(self.ckpt_dir / name, map_location="cpu", weights_only=False)

    # curve
    def plot_curve(self, title: str) -> None:
        rows = self.read_metrics()
        if not rows:
            return
        import matplotlib  # lazy: matplotlib only for figures

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # lazy: matplotlib only for figures

        s = np.array([r["env_steps"] for r in rows])
        m = np.array([r.get("eval_return_mean", np.nan) for r in rows])
        sd = np.array([r.get("eval_return_std", 0.0) for r in rows])
        tr = np.array([r.get("train_return", np.nan) for r in rows])
        ir = np.array([r.get("eval_intervention_rate", np.nan) for r in rows])
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        ax1.plot(s, m, "o-", label="eval return (deterministic)")
        ax1.fill_between(s, m - sd, m + sd, alpha=0.2)
        if np.isfinite(tr).any():
            ax1.plot(s, tr, "--", alpha=0.7, label="training return (with exploration)")
        ax1.set_ylabel("episode return")
        ax1.set_title(title)
        ax1.grid(alpha=0.3)
        ax1.legend(loc="lower right", fontsize=8)
        ax2.plot(s, ir, "o-", color="tab:red")
        ax2.set_ylabel("interventions")
        ax2.set_xlabel("environment steps")
        ax2.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        atomic_write_bytes(self.curve_path, buf.getvalue())


def rng_state() -> dict[str, Any]:
    """The process's random states (Python, numpy's global generator, torch's CPU generator, and the CUDA
    generators when CUDA has been used: SHAC's exploration noise on a CUDA device comes from them)."""
    d = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        d["cuda"] = torch.cuda.get_rng_state_all()
    return d


def set_rng_state(d: dict[str, Any]) -> None:
    """Restore the process's random states saved by :func:`rng_state`."""
    random.setstate(d["python"])
    np.random.set_state(d["numpy"])
    torch.set_rng_state(d["torch"])
    if "cuda" in d and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(d["cuda"])
