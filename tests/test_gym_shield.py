"""reachsafe.gym (issue 16): a shield around gymnasium's own Pendulum-v1, checked on what the environment did.

The environment is the real ``gymnasium`` one; the model is ``examples/pendulum_v1.py`` with its
committed certified set ``data/pendulum_v1.json``.  A spy wrapper *inside* the shield records
the actions the environment received and the states it reached, independently of the
shield's own recorder, and the assertions are on those.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pathlib import Path

from reachsafe import audit, load_set
from reachsafe.gym import Shield, ShieldError, ShieldVectorEnv, ShieldVecEnv
from reachsafe.gym.actions import ActionMap

DATA = Path(__file__).resolve().parents[1] / "data"

SET = DATA / "pendulum_v1.json"
WRONG = DATA / "pendulum_v1_heavy.json"


class Spy(gym.Wrapper):
    """Records what the environment itself did: the action it received and the state it reached."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.actions: list[np.ndarray] = []
        self.states: list[np.ndarray] = []

    def step(self, action):
        self.actions.append(np.array(action, copy=True))
        out = self.env.step(action)
        self.states.append(np.array(self.env.unwrapped.state, dtype=np.float64))
        return out


def pendulum(steps: int = 200) -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=steps)


def adversarial(shield: Shield):
    """Torque (+-2) whose model successor lies furthest outside P: the worst of the two extremes."""
    sysm, A, b = shield.guard.system, shield.guard.A, shield.guard.b

    def policy(_obs, rng):
        x = shield.state[None]
        worst = [float((sysm.step(x, np.array([[s]]), np.zeros((1, 1))) @ A.T - b).max()) for s in (-1.0, 1.0)]
        return np.array([2.0 if worst[1] > worst[0] else -2.0], dtype=np.float32)
    return policy


def random_policy(_obs, rng):
    return rng.uniform(-2, 2, size=1).astype(np.float32)


def push_out(shield: Shield):
    return lambda _obs, rng: np.array([2.0 * np.sign(shield.state[0] + 0.2 * shield.state[1])], dtype=np.float32)


def run(shield: Shield, policy, episodes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    obs, _ = shield.reset(seed=seed)
    for _ in range(episodes):
        done = False
        while not done:
            obs, _, te, tr, info = shield.step(policy(obs, rng))
            done = te or tr
        obs, _ = shield.reset()


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), kind=st.sampled_from(["random", "adversarial", "push_out"]))
def test_the_real_environment_stays_in_P_under_random_and_adversarial_policies(seed, kind):
    spy = Spy(pendulum(40))
    shield = Shield(spy, SET, record=True)
    policy = {"random": random_policy, "adversarial": adversarial(shield), "push_out": push_out(shield)}[kind]
    run(shield, policy, episodes=2, seed=seed)
    sf = load_set(SET)
    X = np.array(spy.states)  # every state the environment itself reached
    assert len(X) == 80
    assert np.all(X @ sf.A.T <= sf.b)  # in P, float64, no tolerance
    # the environment received exactly the executed actions the shield recorded (torque = 2 a)
    ro = shield.recorder.rollouts()
    U = np.array(spy.actions)
    assert U.dtype == np.float32  # gymnasium's convention: actions in the space's dtype
    np.testing.assert_array_equal(ro.actions.reshape(-1, 1), U.astype(np.float64) / 2.0)
    np.testing.assert_array_equal(ro.states[:, 1:].reshape(-1, 2), X)
    if kind != "random":
        assert np.mean(ro.actions != ro.policy_actions) > 0.3  # the adversary is overridden


def test_audit_certifies_the_real_environment_recorded_through_the_shield(tmp_path):
    shield = Shield(pendulum(100), SET, record=True)
    run(shield, adversarial(shield), episodes=2, seed=3)
    path = shield.recorder.save(tmp_path / "rollouts.npz")
    res = audit(path, SET)
    assert res.ok, res.to_json()["failures"]
    assert res.transitions.failed == 0 and res.transitions.total == 200  # the model explains the env's steps
    assert res.intervened.mean() > 0.3
    assert audit(shield, SET).ok  # the recording shield itself is accepted too


def test_a_wrong_model_is_caught_by_the_audit(tmp_path):
    # the heavy model (m = 1.25 instead of 1) believes the motor is 20 % weaker than it is
    shield = Shield(pendulum(100), WRONG, record=True, outside="fallback")
    run(shield, random_policy, episodes=1, seed=1)
    res = audit(shield.recorder.save(tmp_path / "wrong.npz"), WRONG)
    assert not res.ok and all(it.ok for it in res.certificate)  # the set itself is certified: the model is wrong
    reasons = res.transitions.by_reason()
    assert res.transitions.failed > 50, reasons
    assert set(reasons) <= {"noise_outside_W", "not_model_successor"}


def test_the_shield_raises_when_the_environment_leaves_P():
    calls = {"n": 0}

    def drifting_state(env):  # a state function that reads a wrong state after the first step
        calls["n"] += 1
        x = np.array(env.unwrapped.state, dtype=np.float64)
        return x + (np.array([1.0, 0.0]) if calls["n"] > 2 else 0.0)

    shield = Shield(pendulum(), SET, state_fn=drifting_state)
    shield.reset(seed=0)
    with pytest.raises(ShieldError, match="left the invariant set.*does not describe this environment"):
        shield.step(np.zeros(1, np.float32))


@pytest.mark.parametrize("mode", ["next_step", "same_step", "sb3"])
def test_vectorised_and_single_shields_agree(mode):
    N, T, seed = 3, 25, 7

    def policy(obs):  # deterministic, reads the observation only
        return np.clip(-3.0 * obs[..., 1:2] - 0.4 * obs[..., 2:3] + 1.0, -2, 2).astype(np.float32)

    singles = []
    for i in range(N):
        s = Shield(pendulum(T), SET, record=True)
        obs, _ = s.reset(seed=seed + i)
        for _ in range(2 * T):
            obs, _, te, tr, _ = s.step(policy(obs))
            if te or tr:
                obs, _ = s.reset()
        singles.append(s.recorder.rollouts())
    if mode == "sb3":
        venv = ShieldVecEnv([lambda: pendulum(T)] * N, SET, record=True)
        venv.seed(seed)
        obs = venv.reset()
        for _ in range(2 * T):
            obs, rewards, dones, infos = venv.step(policy(obs))
        assert dones.all() and all(inf["TimeLimit.truncated"] for inf in infos)
        assert infos[0]["terminal_observation"].shape == (3,)
    else:
        venv = ShieldVectorEnv([lambda: pendulum(T)] * N, SET, record=True, autoreset_mode=mode)
        obs, _ = venv.reset(seed=seed)
        for t in range(2 * T + (1 if mode == "next_step" else 0)):
            obs, rewards, te, tr, info = venv.step(policy(obs))
            if t == 0:
                assert info["intervened"].shape == (N,) and info["policy_action"].shape == (N, 1)
        if mode == "same_step":  # gymnasium's SAME_STEP: the last step's info is under final_info
            assert info["_final_obs"].all() and info["final_info"]["intervened"].shape == (N,)
    ro = venv.recorder.rollouts()
    assert ro.episodes == 2 * N
    for i in range(N):  # episodes close lane by lane: lane i's are i, i + N
        np.testing.assert_array_equal(ro.states[i::N], singles[i].states)
        np.testing.assert_array_equal(ro.actions[i::N], singles[i].actions)
        np.testing.assert_array_equal(ro.rewards[i::N], singles[i].rewards)


def test_stable_baselines3_trains_through_the_shield():
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)  # SB3's small updates thrash with two threads on a loaded machine

    env = Shield(pendulum(32), SET)
    PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0).learn(64)
    venv = ShieldVecEnv([lambda: pendulum(32)] * 2, SET)
    PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, seed=0).learn(64)


BAD_STATES = st.one_of(
    st.lists(st.floats(-1, 1), min_size=0, max_size=5).filter(lambda v: len(v) != 2).map(np.array),
    st.tuples(st.sampled_from([0, 1]), st.sampled_from([np.nan, np.inf, -np.inf])).map(
        lambda t: np.where(np.arange(2) == t[0], t[1], 0.1)),
    st.just(np.zeros((2, 1))), st.just(np.zeros((1, 2))), st.just("theta"), st.just(None), st.just([[0.1, 0.2]]),
)


@settings(max_examples=25, deadline=None)
@given(bad=BAD_STATES, at_step=st.booleans())
def test_bad_state_fn_output_is_one_clear_error(bad, at_step):
    calls = {"n": 0}

    def state_fn(env):
        calls["n"] += 1
        good = np.array(env.unwrapped.state, dtype=np.float64)
        return bad if (calls["n"] > 2 or not at_step) else good

    shield = Shield(pendulum(), SET, state_fn=state_fn)
    with pytest.raises(ShieldError) as exc:
        shield.reset(seed=0)
        shield.step(np.zeros(1, np.float32))
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("state_fn(env) returned"), msg
    assert ("[2] (theta, theta_dot)" in msg) or "non-finite" in msg, msg


def test_start_states_are_refused_or_sampled_in_P():
    shield = Shield(pendulum(), SET, start="refuse")
    with pytest.raises(ShieldError, match="start state .* lies outside the invariant set.*start='sample'"):
        for seed in range(10):  # Pendulum-v1 starts anywhere in [-pi, pi] x [-1, 1]
            shield.reset(seed=seed)
    obs, _ = shield.reset(seed=0, options={"x_init": 0.01, "y_init": 0.01})  # its own start, inside P: kept
    np.testing.assert_array_equal(shield.state, shield.unwrapped.state)
    sampled = Shield(pendulum(), SET)
    sf = load_set(SET)
    for seed in range(5):
        obs, _ = sampled.reset(seed=seed)
        x = sampled.unwrapped.state
        assert np.all(sf.A @ x <= sf.b)
        np.testing.assert_allclose(obs, [np.cos(x[0]), np.sin(x[0]), x[1]], rtol=1e-6)  # the obs of the new state
        assert obs.dtype == np.float32


def test_an_observation_wrapper_inside_the_shield_is_refused():
    with pytest.raises(ShieldError, match="put observation wrappers outside the shield"):
        Shield(gym.wrappers.TransformObservation(pendulum(), lambda o: o, pendulum().observation_space), SET)
    Shield(gym.wrappers.TransformObservation(pendulum(), lambda o: o, pendulum().observation_space), SET,
           obs_fn=lambda env: env.unwrapped._get_obs())  # the user says where observations come from


@settings(max_examples=40, deadline=None)
@given(lo=st.floats(-50, 50), width=st.floats(1e-2, 100), u=st.floats(0, 1))
def test_the_action_map_round_trips_and_executes_in_bounds(lo, width, u):
    space = gym.spaces.Box(np.float32(lo), np.float32(lo + width), shape=(1,), dtype=np.float32)
    amap = ActionMap(space, 1)
    env_u = space.low + np.float32(u) * (space.high - space.low)
    a = amap.to_unit(env_u)
    assert np.all(np.abs(a) <= 1)
    back = amap.to_env(a)
    assert back.dtype == np.float32 and space.contains(back)
    np.testing.assert_allclose(back, env_u, rtol=1e-6, atol=1e-6 * width)
    assert np.all(np.abs(amap.executed(back)) <= 1)


def test_wrong_action_spaces_are_refused():
    with pytest.raises(ShieldError, match="shape"):
        Shield(
            gym.make("MountainCarContinuous-v0"), SET, state_fn=lambda e: np.zeros(2)
        ).guard.actions.check_policy_action(np.zeros(3), 1)
    with pytest.raises(ShieldError, match="Box action space"):
        Shield(gym.make("CartPole-v1"), SET)
