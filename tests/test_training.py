"""training/: differentiable env, SHAC, SB3 baselines, run directories and the train/evaluate CLI.

Fast by design (small horizons, few critic fits); the paper-scale runs are in the report.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from reachsafe.cli import main
from reachsafe.setfile import load_set
from reachsafe.systems import get_system

from .conftest import PUBLISHED, run_cli
from .conftest import one_line_error as _one_line_error

PEND = PUBLISHED / "pendulum.json"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pend_set():
    return load_set(PEND)


def _env(kind="none", N=4, noise="uniform", dtype=torch.float32, seed=0, system="pendulum", sf=None, **kw):
    from training.env import SafeEnv

    sf = sf if sf is not None else load_set(PEND)
    sg = None
    if kind != "none":
        from reachsafe.safeguards import make_safeguard

        sg = make_safeguard(kind, system, sf, outside="fallback")
    return SafeEnv(system, sf, N, safeguard=sg, noise=noise, dtype=dtype, seed=seed, **kw)




# ----------------------------------------------------------------------------- environment
@pytest.mark.parametrize("noise", ["uniform", "zero", "adversarial"])
def test_env_step_equals_system_step(pend_set, noise):
    env = _env("none", N=6, noise=noise, dtype=torch.float64)
    sys_ = get_system("pendulum")
    for _ in range(5):
        x = env.x.clone()
        a = torch.rand(6, 1, dtype=torch.float64) * 2 - 1
        res = env.step(a)
        assert torch.equal(res.next_state, sys_.step(x, a, res.noise))
        assert torch.allclose(res.reward, sys_.reward(res.next_state, a))
        assert torch.allclose(res.obs, sys_.observation(res.next_state))
        lo, hi = torch.tensor(sys_.noise_lo), torch.tensor(sys_.noise_hi)
        assert bool(((res.noise >= lo) & (res.noise <= hi)).all())


def test_env_resets_inside_set_and_episode_length(pend_set):
    env = _env("projection", N=5, episode_length=7)
    P = pend_set.polytope()
    assert P.contains(env.x.double().numpy()).all()
    for _ in range(7):
        res = env.step(torch.zeros(5, 1))
    assert bool(res.done.all()) and len(env.completed_returns) == 5
    assert P.contains(env.x.double().numpy()).all() and int(env.t.max()) == 0
    assert torch.equal(res.terminal_obs, get_system("pendulum").observation(res.next_state))


def test_init_set_rejection_sampling_in_intersection(pend_set, tmp_path):
    from reachsafe.setfile import SetFile

    # a small box as the initial set: states must lie in box ∩ P
    sys_ = get_system("pendulum")
    A = np.vstack([np.eye(2), -np.eye(2)])
    b = np.array([0.5, 2.0, 0.1, 2.0])
    box = SetFile.for_system(sys_, A, b)
    env = _env("none", N=64, init_set=box)
    x = env.x.double().numpy()
    assert (x @ A.T <= b + 1e-6).all() and pend_set.polytope().contains(x).all()
    far = SetFile.for_system(sys_, A, np.array([10.0, 2.0, -9.0, 2.0]))  # theta in [9, 10]: no overlap
    from reachsafe.errors import UserError

    with pytest.raises(UserError, match="does not intersect"):
        _env("none", N=2, init_set=far)


def test_zonotope_init_sampling_is_the_papers_distribution(pend_set):
    """c + G beta with beta uniform in the cube: inside P and I, and concentrated near the centre."""
    from reachsafe.errors import UserError
    from reachsafe.setfile import load_set
    from training.env import SafeEnv

    own = load_set(PUBLISHED.parent / "pendulum.json")  # the certified set in use, larger than I
    pub = pend_set  # the published zonotope as the initial set I
    c = np.array(pub.zonotope["center"])
    zono = SafeEnv("pendulum", own, 4000, init_set=pub, init_sampling="zonotope", seed=1)
    unif = SafeEnv("pendulum", own, 4000, init_set=pub, init_sampling="uniform", seed=1)
    xz, xu = zono.x.double().numpy(), unif.x.double().numpy()
    assert own.polytope().contains(xz).all() and pub.polytope().contains(xz, tol=1e-9).all()
    # the sum of 8 uniform generators is bell-shaped: much closer to c than uniform samples in I
    dz, du = np.abs(xz - c).mean(0), np.abs(xu - c).mean(0)
    assert (dz < 0.8 * du).all(), (dz, du)
    assert own.zonotope is None
    with pytest.raises(UserError, match="zonotope"):
        SafeEnv("pendulum", own, 2, init_set=own, init_sampling="zonotope")


def test_adversarial_noise_is_the_worst_vertex(pend_set):
    env = _env("raymask", N=32, noise="adversarial", dtype=torch.float64)
    sys_ = get_system("pendulum")
    A, b = env.A64, env.b64
    for _ in range(3):
        x = env.x.clone()
        res = env.step(torch.rand(32, 1, dtype=torch.float64) * 2 - 1)
        worst = torch.stack([(sys_.step_unwrapped(x, res.action, w.expand(32, 1)) @ A.T - b).amax(-1)
                             for w in env.w_vertices])  # [V, N]
        chosen = (sys_.step_unwrapped(x, res.action, res.noise) @ A.T - b).amax(-1)
        assert torch.allclose(chosen, worst.amax(0))


def _fd_check(env, H=3, eps=1e-6, seed=0):
    """Autograd vs central finite differences of sum_t r_t + sum(x_H) w.r.t. open-loop actions."""
    env.reseed(seed)
    x0 = env.x.clone()
    N, m = env.num_envs, env.m
    gen = torch.Generator().manual_seed(1)
    acts = (torch.rand(H, N, m, generator=gen, dtype=torch.float64) * 1.6 - 0.8)

    def f(a):
        env.reseed(seed)
        env.set_state(x0)
        total = torch.zeros((), dtype=torch.float64)
        for t in range(H):
            res = env.step(a[t])
            total = total + res.reward.sum()
        return total + res.next_state.sum()

    a = acts.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(a), a)
    fd = torch.zeros_like(acts)
    for idx in np.ndindex(*acts.shape):
        ap, am = acts.clone(), acts.clone()
        ap[idx] += eps
        am[idx] -= eps
        fd[idx] = (f(ap) - f(am)) / (2 * eps)
    return g, fd


@pytest.mark.parametrize("kind", ["none", "raymask", "projection"])
def test_env_gradients_match_finite_differences(kind):
    env = _env(kind, N=3, noise="uniform", dtype=torch.float64, seed=3)
    g, fd = _fd_check(env)
    assert torch.isfinite(g).all()
    assert torch.allclose(g, fd, rtol=1e-4, atol=1e-5), (g - fd).abs().max()


def test_env_gradients_quadrotor_finite_differences():
    from reachsafe.setfile import SetFile

    sys_ = get_system("quadrotor")
    box = SetFile.for_system(sys_, np.vstack([np.eye(6), -np.eye(6)]),
                             np.concatenate([sys_.constraint_hi, -sys_.constraint_lo]) * 0.5)
    env = _env("none", N=2, dtype=torch.float64, system="quadrotor", sf=box)
    g, fd = _fd_check(env, H=2)
    assert torch.allclose(g, fd, rtol=1e-4, atol=1e-5), (g - fd).abs().max()


@pytest.mark.parametrize("kind", ["projection", "raymask"])
def test_executed_actions_are_the_safeguard_output(pend_set, kind):
    """docs/architecture.md, pitfalls: test what is executed.  A bang-bang policy is often unsafe."""
    from training.evaluate import run_episodes

    env = _env(kind, N=16, noise="adversarial")
    ro = run_episodes(env, lambda o: torch.where(o[:, 2:3] > 0, 1.0, -1.0).to(o.dtype) * torch.ones_like(o[:, :1]),
                      seed=5)
    sg = env.safeguard
    T, n = ro.actions.shape[1], env.n
    x = torch.tensor(ro.states[:, :T].reshape(-1, n), dtype=torch.float64)
    pa = torch.tensor(ro.policy_actions.reshape(-1, 1), dtype=torch.float64)
    G, h = sg.safe_action_set(x)
    unsafe = ((G @ pa.unsqueeze(-1)).squeeze(-1) > h + 1e-9).any(-1).numpy()
    assert unsafe.sum() > 50  # the test is meaningful: the policy is often unsafe
    moved = np.abs(ro.actions.reshape(-1) - ro.policy_actions.reshape(-1)) > 1e-6
    assert moved[unsafe].all()  # every unsafe policy action was replaced
    assert pend_set.polytope().contains(ro.states.reshape(-1, n)).all()  # every state stayed in P
    assert ro.summary()["violations_P"] == 0 and ro.summary()["violations_X"] == 0
    # and the same policy without a safeguard leaves P: the check above has teeth
    ro0 = run_episodes(_env("none", N=16, noise="adversarial"),
                       lambda o: torch.where(o[:, 2:3] > 0, 1.0, -1.0).to(o.dtype), seed=5)
    assert ro0.summary()["violations_P"] > 0
    assert np.array_equal(ro0.actions, ro0.policy_actions)


def test_gym_adapters():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.vec_env import VecEnv

    from training.gym_adapter import SafeGymEnv, SafeVecEnv

    genv = SafeGymEnv(_env("raymask", N=1))
    check_env(genv, skip_render_check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. SB3's "render_mode attribute is not defined"
        venv = SafeVecEnv(_env("raymask", N=3, episode_length=4))
    assert isinstance(venv, VecEnv) and venv.render_mode is None
    obs = venv.reset()
    assert obs.shape == (3, 3) and obs.dtype == np.float32
    for _ in range(4):
        obs, r, d, infos = venv.step(np.ones((3, 1), dtype=np.float32))
    assert d.all() and all(i["TimeLimit.truncated"] and "terminal_observation" in i for i in infos)
    assert all("episode" in i for i in infos)


# ----------------------------------------------------------------------------- SHAC
def test_td_lambda_targets():
    from training.shac import td_lambda_targets

    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[10.0], [20.0], [30.0]])
    d = torch.zeros(3, 1, dtype=torch.bool)
    g, lam = 0.9, 0.5
    G = td_lambda_targets(r, v, d, g, lam)
    G2 = 3 + g * 30
    G1 = 2 + g * ((1 - lam) * 20 + lam * G2)
    G0 = 1 + g * ((1 - lam) * 10 + lam * G1)
    assert torch.allclose(G.squeeze(), torch.tensor([G0, G1, G2]))
    # lambda = 0: one-step TD; an episode end cuts the recursion
    d[1] = True
    G = td_lambda_targets(r, v, d, g, 1.0)
    assert torch.allclose(G[1], torch.tensor([2 + g * 20.0])) and torch.allclose(G[0], 1 + g * G[1])


def test_shac_short_run_improves_return(pend_set):
    from training.evaluate import run_episodes
    from training.shac import SHACAgent, paper_defaults, train_shac

    torch.manual_seed(0)
    cfg = paper_defaults("pendulum")
    cfg.horizon, cfg.critic_iterations = 32, 8
    env = _env("projection", N=8, seed=0)
    ev = _env("projection", N=16, seed=1)
    agent = SHACAgent(env.obs_dim, env.m, cfg)
    before = run_episodes(ev, agent.act, seed=7).summary()["return_mean"]
    train_shac(agent, env, total_steps=4096)
    after = run_episodes(ev, agent.act, seed=7).summary()
    assert after["return_mean"] > before + 0.25 * abs(before), (before, after)
    assert after["violations_P"] == 0 and env.total_violations_P == 0
    assert all(torch.isfinite(p).all() for p in agent.parameters())


def test_shac_regularizer_and_passthrough_train(pend_set):
    from reachsafe.safeguards import make_safeguard
    from training.env import SafeEnv
    from training.shac import SHACAgent, paper_defaults, train_shac

    for passthrough, reg in ((True, 0.0), (False, 0.5)):
        torch.manual_seed(0)
        cfg = paper_defaults("pendulum")
        cfg.horizon, cfg.critic_iterations, cfg.regularize = 8, 1, reg
        sg = make_safeguard("raymask", "pendulum", pend_set, passthrough=passthrough, outside="fallback")
        env = SafeEnv("pendulum", pend_set, 4, safeguard=sg, seed=0)
        agent = SHACAgent(env.obs_dim, env.m, cfg)
        w0 = [p.clone() for p in agent.actor.parameters()]
        stats = []
        train_shac(agent, env, 64, callback=lambda s, st: stats.append(st) and False)
        assert any(not torch.equal(a, b) for a, b in zip(w0, agent.actor.parameters()))
        assert stats and all(np.isfinite(s["grad_norm"]) for s in stats)


# ----------------------------------------------------------------------------- baselines
def test_ppo_smoke_run_with_safeguard_has_no_violations(pend_set):
    from training.baselines import make_model
    from training.gym_adapter import SafeVecEnv

    env = _env("raymask", N=4, seed=0)
    model = make_model("ppo", SafeVecEnv(env), seed=0, hp={"n_steps": 64, "batch_size": 64, "n_epochs": 2})
    model.learn(total_timesteps=512)
    assert env.total_steps >= 512
    assert env.total_violations_P == 0 and env.total_violations_X == 0
    assert env.total_interventions > 0


# ----------------------------------------------------------------------------- runs, CLI
def _small_cfg(**kw):
    from training.runner import make_config

    cfg, _ = make_config("pendulum", kw.pop("algo", "shac"), kw.pop("safeguard", "projection"), set_path=str(PEND),
                         seed=0, eval_episodes=4, **kw)
    if cfg.algo == "shac":
        cfg.hyperparameters.update(horizon=16, critic_iterations=2)
    return cfg


def test_resume_continues_from_checkpoint(tmp_path, monkeypatch):
    from training import runner

    cfg = _small_cfg(steps=512, eval_every=128)
    out = tmp_path / "run"
    real_save = runner.RunDir.save_torch
    calls = {"n": 0}

    def interrupt_after_second(self, obj, name):
        real_save(self, obj, name)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner.RunDir, "save_torch", interrupt_after_second)
    with pytest.raises(KeyboardInterrupt):
        runner.train(cfg, out, progress=False, log=lambda s: None)
    monkeypatch.setattr(runner.RunDir, "save_torch", real_save)
    rd = runner.RunDir(out)
    assert [r["env_steps"] for r in rd.read_metrics()] == [128, 256]
    ck = rd.load_torch("shac.pt")
    assert ck["env_steps"] == 256

    with pytest.raises(Exception, match="not empty; pass --resume"):
        runner.train(cfg, out, progress=False, log=lambda s: None)
    msgs: list[str] = []
    summary = runner.train(cfg, out, resume=True, progress=False, log=msgs.append)
    assert any("resuming" in m and "256" in m for m in msgs)
    rows = rd.read_metrics()
    assert [r["env_steps"] for r in rows] == [128, 256, 384, 512]
    assert rows[2]["wall_time_s"] >= rows[1]["wall_time_s"]
    assert rows[-1]["train_interventions"] >= rows[1]["train_interventions"]
    assert summary["env_steps"] == 512 and rd.load_torch("shac.pt")["env_steps"] == 512
    # a resume with different settings is refused
    cfg2 = _small_cfg(steps=512, eval_every=128)
    cfg2.seed = 1
    with pytest.raises(Exception, match="setting 'seed' differs"):
        runner.train(cfg2, out, resume=True, progress=False, log=lambda s: None)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_sb3_run_dir_and_resume(tmp_path, algo):
    from training import runner

    cfg = _small_cfg(algo=algo, steps=256, eval_every=128)
    if algo == "ppo":
        cfg.hyperparameters.update(num_envs=4, n_steps=32, batch_size=64, n_epochs=1)
    else:
        cfg.hyperparameters.update(learning_starts=64, buffer_size=4096, batch_size=64)
    out = tmp_path / algo
    s = runner.train(cfg, out, progress=False, log=lambda m: None)
    assert s["uniform"]["violations_P"] == 0 and s["adversarial"]["violations_P"] == 0
    cfg.steps = 384
    s = runner.train(cfg, out, resume=True, progress=False, log=lambda m: None)
    steps = [r["env_steps"] for r in runner.RunDir(out).read_metrics()]
    assert steps[:2] == [128, 256] and steps[-1] >= 384
    assert (out / "checkpoint" / "model.zip").exists()
    ck = runner.RunDir(out).load_torch("sb3.pt")  # one atomic checkpoint: model, replay buffer, env, RNGs
    assert (ck["replay"] is not None) == (algo == "sac") and ck["env_steps"] == steps[-1]


def test_cli_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        capsys,
        "train",
        "pendulum",
        "--safeguard",
        "raymask",
        "--set",
        PEND,
        "--init-set",
        PEND,
        "--seed",
        0,
        "--steps",
        512,
        "--eval-every",
        512,
        "--eval-episodes",
        4,
        "--out",
        out,
    )
    assert code == 0, err
    assert "eval (adversarial noise)" in stdout and "violations 0 (outside set)" in stdout
    for f in (
        "config.json",
        "metrics.csv",
        "curve.png",
        "rollouts.npz",
        "rollouts-adversarial.npz",
        "checkpoint/shac.pt",
    ):
        assert (out / f).exists(), f
    cfg = json.loads((out / "config.json").read_text())
    from reachsafe.setfile import load_set, set_fingerprint

    assert cfg["safeguard"] == "raymask" and cfg["init_set_fingerprint"]
    assert cfg["set_fingerprint"] == set_fingerprint(load_set(PEND))
    assert cfg["hyperparameters"]["horizon"] == 64 and cfg["reachsafe_version"]
    from reachsafe.rollouts import Rollouts

    z = Rollouts.load(out / "rollouts-adversarial.npz")
    assert z.states.shape == (4, 241, 2) and z.actions.shape == (4, 240, 1) == z.policy_actions.shape
    assert z.rewards.shape == (4, 240) and z.noise == "adversarial" and z.system == "pendulum"
    assert z.set_fingerprint == cfg["set_fingerprint"] and z.model_fingerprint.startswith("sha256:")
    assert z.extra["safeguard"] == "raymask" and z.extra["algo"] == "shac" and z.intervened.shape == (4, 240)
    assert load_set(PEND).polytope().contains(z.states.reshape(-1, 2)).all()

    final = (out / "rollouts-adversarial.npz").read_bytes()
    code, stdout, err = run_cli(capsys, "evaluate", out, "--episodes", 3, "--noise", "adversarial")
    assert code == 0, err
    assert "return" in stdout and "violations    0 outside the set" in stdout
    assert Rollouts.load(out / "evaluate-adversarial.npz").episodes == 3
    assert (out / "rollouts-adversarial.npz").read_bytes() == final  # the audit's input is left alone
    # the run's final rollouts are replaced only when named with --out and --overwrite, checked before any work
    code, stdout, err = run_cli(capsys, "evaluate", out, "--out", out / "rollouts.npz")
    _one_line_error(code, err, "rollouts.npz exists", "the audit's input", "--overwrite")
    code, stdout, err = run_cli(capsys, "evaluate", out, "--episodes", 2, "--out", out / "rollouts.npz", "--overwrite")
    assert code == 0, err
    assert Rollouts.load(out / "rollouts.npz").episodes == 2


@pytest.mark.parametrize(
    "argv, needles",
    [
        (
            ["train", "pendulum", "--seed", "0", "--out", "{tmp}/a", "--regularize", "-1", "--safeguard", "raymask"],
            ["--regularize"],
        ),
        (
            ["train", "pendulum", "--seed", "0", "--out", "{tmp}/a", "--passthrough"],
            ["--passthrough needs a safeguard"],
        ),
        (
            [
                "train",
                "pendulum",
                "--seed",
                "0",
                "--out",
                "{tmp}/a",
                "--algo",
                "ppo",
                "--safeguard",
                "raymask",
                "--passthrough",
            ],
            ["shac only"],
        ),
        (["train", "pendulum", "--seed", "0", "--out", "{tmp}/a", "--steps", "0"], ["--steps"]),
        (["train", "cartpole", "--seed", "0", "--out", "{tmp}/a"], ["unknown system"]),
        (["train", "pendulum", "--seed", "0", "--out", "{tmp}/a", "--set", "{tmp}/missing.json"], ["no such file"]),
        (
            ["train", "pendulum", "--seed", "0", "--out", "{tmp}/a", "--init-set", str(PUBLISHED / "quadrotor.json")],
            ["not for 'pendulum'"],
        ),
        (["train", "pendulum", "--seed", "0", "--out", "{tmp}/full"], ["not empty", "--resume"]),
        (["train", "pendulum", "--seed", "0", "--out", "{tmp}/a", "--init-sampling", "zonotope"], ["--init-set"]),
        (
            [
                "train",
                "pendulum",
                "--seed",
                "0",
                "--out",
                "{tmp}/a",
                "--init-sampling",
                "zonotope",
                "--init-set",
                str(PUBLISHED.parent / "pendulum.json"),
            ],
            ["has none"],
        ),
        (["train", "pendulum", "--out", "{tmp}/a"], ["--seed"]),
        (["evaluate", "{tmp}"], ["not a run directory"]),
    ],
)
def test_bad_flags_give_one_line(tmp_path, capsys, argv, needles):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors (missing required flag)
        code = exc.code
    _one_line_error(code, capsys.readouterr().err, *needles)


def test_quadrotor_needs_a_set(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository: no data/quadrotor.json, no sets/quadrotor.json
    code, _, err = run_cli(capsys, "train", "quadrotor", "--safeguard", "raymask", "--seed", 0, "--out", tmp_path / "q")
    _one_line_error(code, err, "quadrotor needs --set FILE", "--init-set")
    assert not (tmp_path / "q").exists()


@pytest.mark.slow
def test_quadrotor_shac_short_run_is_safe(tmp_path):
    """Quadrotor SHAC + ray mask on the committed set (skipped until data/quadrotor.json exists)."""
    from training import runner

    cand = PUBLISHED.parent / "quadrotor.json"
    if not cand.exists():
        pytest.skip("data/quadrotor.json not committed yet")
    cfg, _ = runner.make_config("quadrotor", "shac", "raymask", set_path=str(cand), seed=0, steps=1376,
                                eval_every=688, eval_episodes=4)
    s = runner.train(cfg, tmp_path / "q", progress=False, log=lambda m: None)
    assert s["uniform"]["violations_P"] == 0 and s["adversarial"]["violations_P"] == 0


@pytest.mark.parametrize("kind", ["projection", "raymask"])
def test_env_and_audit_count_the_same_interventions(pend_set, kind):
    """One definition (reachsafe.intervention): the env's count equals the audit's on the same rollouts."""
    from reachsafe.intervention import intervened
    from training.evaluate import run_episodes

    env = _env(kind, N=8, noise="uniform", dtype=torch.float64)
    ro = run_episodes(env, lambda o: torch.where(o[:, 2:3] > 0, 1.0, -1.0).to(o.dtype) * torch.ones_like(o[:, :1]),
                      seed=3)
    audit_view = intervened(ro.policy_actions, ro.actions)  # what verification.audit counts
    assert np.array_equal(audit_view, ro.intervened)
    assert 0 < ro.intervened.sum() < ro.intervened.size or kind == "raymask"
    # a difference at rounding level is no intervention, a real change is
    a = np.zeros((2, 1))
    assert not intervened(a, a + 1e-9).any() and intervened(a, a + 1e-3).all()


def test_bench_training_smoke(capsys):
    code, out, err = run_cli(capsys, "bench", "training", "--steps", 128, "--repeats", 2, "--safeguards", "raymask")
    assert code == 0, err
    assert "fastest of 2 interleaved rounds" in out and "cpu vs none" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("none ", "raymask "))]
    assert [r[0] for r in rows] == ["none", "raymask"] and rows[0][4] == "1.00x"
    code, _, err = run_cli(capsys, "bench", "training", "--repeats", 0)
    _one_line_error(code, err, "--repeats")


# ----------------------------------------------------------------------------- devices
def _shac_iteration(device: str, pend_set) -> tuple[list, list]:
    """One SHAC iteration without exploration noise on ``device``: the env's step results and the actor's
    weights after the update, moved to the CPU."""
    from reachsafe.safeguards import make_safeguard
    from training.env import SafeEnv
    from training.shac import SHACAgent, paper_defaults, train_shac

    torch.manual_seed(0)
    cfg = paper_defaults("pendulum")
    cfg.horizon, cfg.critic_iterations, cfg.exploration = 8, 1, False
    sg = make_safeguard("raymask", "pendulum", pend_set, outside="fallback")
    env = SafeEnv("pendulum", pend_set, 4, safeguard=sg, seed=0, device=device)  # float32, as in training
    agent = SHACAgent(env.obs_dim, env.m, cfg, device=device)
    train_shac(agent, env, 32)
    res = env.step(agent.act(env.obs))
    return ([t.detach().cpu() for t in (res.obs, res.reward, res.action, res.next_state, res.noise)],
            [p.detach().cpu() for p in agent.actor.parameters()])


def test_env_and_shac_keep_every_tensor_on_the_given_device(pend_set):
    """device="cpu" passed through explicitly: every tensor of the environment, the safeguard's buffers,
    the agent and an iteration's results are on it, and the run equals the default one bit for bit."""
    from training.env import SafeEnv

    env = _env("projection", N=4, dtype=torch.float64, device="cpu")
    assert isinstance(env, SafeEnv) and env.device == torch.device("cpu")
    tensors = [v for v in vars(env).values() if isinstance(v, torch.Tensor)]
    tensors += list(env.safeguard.buffers())
    assert len(tensors) > 10 and all(t.device == env.device for t in tensors)
    explicit, default = _shac_iteration("cpu", pend_set), _shac_iteration(torch.device("cpu"), pend_set)
    for a, b in zip(explicit[0] + explicit[1], default[0] + default[1]):
        assert torch.equal(a, b)


def test_agent_and_environment_on_different_devices_are_refused(pend_set):
    from reachsafe import UserError
    from training.shac import SHACAgent, paper_defaults, train_shac

    env = _env("none", N=8)
    agent = SHACAgent(env.obs_dim, env.m, paper_defaults("pendulum"), device="meta")
    with pytest.raises(UserError, match="agent is on meta, the environment on cpu"):
        train_shac(agent, env, 64)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a CUDA device")
def test_train_on_a_missing_cuda_device_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "pendulum", "--set", str(PEND), "--seed", 0, "--device", "cuda",
                           "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "no CUDA device")
    code, _, err = run_cli(capsys, "bench", "training", "--device", "cuda:0")
    _one_line_error(code, err, "no CUDA device")
    code, _, err = run_cli(capsys, "train", "pendulum", "--set", str(PEND), "--seed", 0, "--device", "tpu",
                           "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "--device must be cpu, cuda or cuda:N")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_shac_on_cuda_matches_the_cpu(pend_set):
    """Simulator, safeguard and SHAC on a CUDA device (float32 as in training, no exploration noise): the
    same step results and actor weights as on the CPU, up to float32 rounding."""
    cpu, cuda = _shac_iteration("cpu", pend_set), _shac_iteration("cuda", pend_set)
    for a, b in zip(cpu[0] + cpu[1], cuda[0] + cuda[1]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
