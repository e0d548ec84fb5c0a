"""Per-system defaults as data (issue 19, item 6): the optional SystemProfile beside a model's definition.

The defaults resolved for the built-in systems are pinned to the values the code had before they
became data (SHAC hyperparameters, budget, SB3 settings and gammas); a model file without a profile
gets the generic defaults; one with a profile gets its values, and an unknown key is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reachsafe.errors import UserError
from reachsafe.systems import SystemProfile, get_system, profile_of
from training.runner import make_config
from training.shac import SHACConfig, paper_defaults

from .conftest import ROOT, one_line_error, run_cli

SHAC_PENDULUM = {"num_envs": 8, "horizon": 64, "gamma": 0.95, "lam": 0.95, "polyak": 0.4, "actor_hidden": [128, 128],
                 "actor_lr": 0.0004, "critic_hidden": [128, 128, 128], "critic_lr": 0.002, "critic_iterations": 50,
                 "critic_minibatches": 4, "grad_clip": 1.0, "lr_end": 1e-05, "betas": [0.7, 0.95],
                 "actor_logstd_init": -1.0, "exploration": True, "obs_norm": True, "regularize": 0.0}
SHAC_QUADROTOR = {**SHAC_PENDULUM, "num_envs": 16, "horizon": 43, "gamma": 0.9, "lam": 0.93, "polyak": 0.22,
                  "actor_lr": 0.002, "critic_hidden": [120, 120, 120], "critic_lr": 0.004, "critic_iterations": 24,
                  "grad_clip": 2.0}


def _ppo(num_envs: int, gamma: float) -> dict:
    return {"num_envs": num_envs, "n_steps": 256, "batch_size": 256, "n_epochs": 10, "learning_rate": 0.0003,
            "gamma": gamma, "gae_lambda": 0.95, "ent_coef": 0.0, "clip_range": 0.2, "net_arch": [128, 128]}


def _sac(gamma: float) -> dict:
    return {"num_envs": 4, "learning_rate": 0.0003, "gamma": gamma, "batch_size": 256, "buffer_size": 1000000,
            "learning_starts": 1000, "train_freq": 1, "gradient_steps": 1, "tau": 0.005, "net_arch": [128, 128]}


PINNED = {  # (system, algo) -> (steps, hyperparameters), as resolved before the profiles existed
    ("pendulum", "shac"): (100_000, SHAC_PENDULUM),
    ("pendulum", "ppo"): (100_000, _ppo(8, 0.95)),
    ("pendulum", "sac"): (100_000, _sac(0.95)),
    ("quadrotor", "shac"): (200_000, SHAC_QUADROTOR),
    ("quadrotor", "ppo"): (200_000, _ppo(16, 0.98)),
    ("quadrotor", "sac"): (200_000, _sac(0.98)),
}


@pytest.mark.parametrize("system,algo", sorted(PINNED))
def test_builtin_defaults_are_pinned(system: str, algo: str):
    steps, hp = PINNED[(system, algo)]
    cfg, _ = make_config(system, algo, "none", set_path="unused.json")
    assert cfg.steps == steps and cfg.eval_every == steps // 10
    assert cfg.hyperparameters == hp
    assert list(cfg.hyperparameters) == list(hp)  # the key order of config.json too


def test_paper_defaults_are_the_profiles():
    assert paper_defaults("pendulum") == SHACConfig()
    assert paper_defaults("quadrotor").to_dict() == SHAC_QUADROTOR
    assert profile_of("quadrotor").plot_pairs == ((0, 3), (1, 4), (3, 2), (2, 5))
    assert profile_of("pendulum").published_set_is_invariant and not profile_of("quadrotor").published_set_is_invariant


def test_profile_is_not_part_of_the_fingerprint():
    import dataclasses

    d = get_system("quadrotor").definition
    assert dataclasses.replace(d, profile=None).fingerprint() == d.fingerprint()


def test_model_without_profile_gets_generic_defaults():
    from verification.plots import projection_pairs

    name = get_system(str(ROOT / "examples" / "drifting_cart.py")).name
    assert get_system(name).definition.profile is None
    cfg, _ = make_config(name, "shac", "none", set_path="unused.json")
    assert cfg.steps == 100_000 and cfg.hyperparameters == SHAC_PENDULUM  # SHACConfig's defaults
    assert make_config(name, "ppo", "none", set_path="unused.json")[0].hyperparameters == _ppo(16, 0.98)
    assert make_config(name, "sac", "none", set_path="unused.json")[0].hyperparameters == _sac(0.98)
    assert projection_pairs(name, 2) == [(0, 1)] and projection_pairs("quadrotor", 6)[0] == (0, 3)
    cartpole = get_system(str(ROOT / "examples" / "cartpole.py")).name
    assert projection_pairs(cartpole, 4) == [(0, 1), (2, 3)]


def _profiled_model(tmp_path: Path, profile: str) -> Path:
    src = tmp_path / "cart_profiled.py"
    shutil.copy(ROOT / "examples" / "drifting_cart.py", src)
    src.write_text(src.read_text() + "\nimport dataclasses\nfrom reachsafe.systems import SystemProfile\n"
                   f"DEFINITION = dataclasses.replace(DEFINITION, name='cart_profiled', profile={profile})\n")
    return src


def test_model_file_with_a_profile(tmp_path: Path):
    path = _profiled_model(tmp_path, "SystemProfile(steps=4096, hyperparameters={'shac': {'horizon': 16}, "
                                     "'ppo': {'gamma': 0.9, 'net_arch': (64, 64)}})")
    name = get_system(str(path)).name
    cfg, _ = make_config(name, "shac", "none", set_path="unused.json")
    assert cfg.steps == 4096 and cfg.hyperparameters == {**SHAC_PENDULUM, "horizon": 16}
    hp = make_config(name, "ppo", "none", set_path="unused.json")[0].hyperparameters
    assert hp == {**_ppo(16, 0.9), "net_arch": [64, 64]}  # tuples stored as config.json stores them


def test_unknown_profile_key_is_refused(tmp_path: Path):
    path = _profiled_model(tmp_path, "SystemProfile(hyperparameters={'shac': {'horizn': 16}})")
    name = get_system(str(path)).name
    with pytest.raises(UserError, match="sets unknown shac hyperparameter.s. horizn"):
        make_config(name, "shac", "none", set_path="unused.json")


@pytest.mark.parametrize("profile,needle", [("SystemProfile(steps=0)", "steps must be a positive integer"),
                                            ("SystemProfile(plot_pairs=((0, 7),))", "plot_pairs"),
                                            ("{'steps': 10}", "must be a SystemProfile")])
def test_malformed_profile_is_a_model_error(tmp_path: Path, capsys, profile: str, needle: str):
    path = _profiled_model(tmp_path, profile)
    code, _, err = run_cli(capsys, "systems", str(path))
    one_line_error(code, err, needle)


def test_profile_defaults_are_plain_data():
    prof = SystemProfile()
    assert prof.steps == 100_000 and prof.overrides("shac") == {} and prof.plot_pairs == ()
