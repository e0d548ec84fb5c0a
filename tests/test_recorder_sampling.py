"""The Python helpers of issue 16: samplers of P and W, the rollouts recorder, audit() on arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reachsafe import RolloutRecorder, audit, get_system, load_set, sample_noise, sample_states
from reachsafe.rollouts import Rollouts, RolloutsError
from reachsafe.safeguards import make_safeguard
from reachsafe.sets import Box, Zonotope

DATA = Path(__file__).resolve().parents[1] / "data"


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31), N=st.integers(0, 300))
def test_sampled_states_lie_in_P_and_noise_in_W(seed, N):
    sf = load_set(DATA / "pendulum.json")
    x = sample_states(sf, N, rng=seed)
    assert x.shape == (N, 2) and x.dtype == np.float64
    assert np.all(x @ sf.A.T <= sf.b)
    w = sample_noise(get_system("pendulum"), N, rng=seed)
    assert w.shape == (N, 1) and np.all((w >= -0.1) & (w <= 0.1))
    xt = sample_states(sf, N, rng=seed, dtype=torch.float32)  # same draws, as a tensor
    assert isinstance(xt, torch.Tensor) and xt.dtype == torch.float32
    np.testing.assert_allclose(xt.numpy(), x, rtol=1e-6, atol=1e-6)


def test_sampled_states_cover_P():
    sf = load_set(DATA / "pendulum.json")
    x = sample_states(sf, 20_000, rng=0)
    lo, hi = sf.polytope().bounding_box().lo, sf.polytope().bounding_box().hi
    assert np.all(x.min(0) < lo + 0.05 * (hi - lo)) and np.all(x.max(0) > hi - 0.05 * (hi - lo))


def test_sample_states_takes_every_set_representation_and_refuses_lookalikes():
    sf = load_set(DATA / "pendulum.json")
    np.testing.assert_array_equal(sample_states(sf.polytope(), 50, rng=3), sample_states(sf, 50, rng=3))
    box = Box([-1.0, 0.0], [1.0, 0.5])
    assert box.contains(sample_states(box, 200, rng=0)).all()
    Z = Zonotope([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]])
    assert Z.contains(sample_states(Z, 200, rng=0)).all()

    class LooksLikeAPolytope:  # has A and b, is not a set: refused, not duck-typed
        A, b = sf.A, sf.b

    with pytest.raises(TypeError, match="must be a SetFile, a path to one, an HPolytope, a Box, a Zonotope"):
        sample_states(LooksLikeAPolytope(), 5)


def simulate(E: int, T: int, seed: int):
    system, sf = get_system("pendulum"), load_set(DATA / "pendulum.json")
    sg = make_safeguard("projection", system, sf)
    rec = RolloutRecorder(system, sf, noise="uniform")
    x = sample_states(sf, E, rng=seed, dtype=torch.float64)
    rec.start(x)
    S, A = [x], []
    for t in range(T):
        a_pol = torch.ones(E, 1)
        a = sg(x, a_pol.double())
        x = system.step(x, a, sample_noise(system, E, rng=seed + t, dtype=torch.float64))
        rec.step(x, a, policy_actions=a_pol, rewards=system.reward(x, a), done=(t == T - 1))
        S.append(x)
        A.append(a)
    return rec, sf, torch.stack(S, 1).numpy(), torch.stack(A, 1).numpy()


def test_the_recorder_writes_what_happened_and_the_audit_certifies_it(tmp_path):
    rec, sf, S, A = simulate(5, 30, seed=0)
    ro = Rollouts.load(rec.save(tmp_path / "rollouts.npz"))
    np.testing.assert_array_equal(ro.states, S)
    np.testing.assert_array_equal(ro.actions, A)
    assert ro.system == "pendulum" and ro.noise == "uniform" and ro.extra["set_path"].endswith("pendulum.json")
    for given_as in (tmp_path / "rollouts.npz", rec, ro, {"states": S, "actions": A},
                     {"states": torch.as_tensor(S), "actions": torch.as_tensor(A)}):
        assert audit(given_as, sf).ok
    bad = S.copy()
    bad[2, 7, 1] += 0.5  # a transition the model does not make
    res = audit({"states": bad, "actions": A}, sf)
    assert not res.ok and res.transitions.failed >= 1


def test_audit_of_arrays_refuses_incomplete_input():
    sf = load_set(DATA / "pendulum.json")
    with pytest.raises(RolloutsError, match="missing actions"):
        audit({"states": np.zeros((1, 2, 2))}, sf)
    with pytest.raises(RolloutsError, match="unknown array"):
        audit({"states": np.zeros((1, 2, 2)), "actions": np.zeros((1, 1, 1)), "noise": np.zeros(1)}, sf)
    with pytest.raises(RolloutsError, match="must be \\[E, T\\+1, n\\]|disagree"):
        audit({"states": np.zeros((1, 5, 2)), "actions": np.zeros((1, 1, 1))}, sf)


def test_lanes_finish_at_different_times_and_episodes_come_out_whole():
    system, sf = get_system("pendulum"), load_set(DATA / "pendulum.json")
    rec = RolloutRecorder(system, sf)
    x0 = np.array([[0.1, 0.0], [0.2, 0.0]])
    rec.start(x0)
    traj = {0: [x0[0]], 1: [x0[1]]}
    for t in range(6):  # lane 0: episodes of 3 steps, lane 1: one of 6 (uneven ends)
        xn = np.array([[0.1 + t, 1.0], [0.2 + t, 2.0]])
        done = np.array([t % 3 == 2, t == 5])
        rec.step(xn, np.zeros((2, 1)), rewards=[1.0, 2.0], done=done)
        traj[0].append(xn[0])
        traj[1].append(xn[1])
        if done[0] and t < 5:
            rec.start(np.array([[9.0, 9.0]]), lanes=[0])
            traj[0] = [np.array([9.0, 9.0])]
    assert rec.episodes == 3
    with pytest.raises(RolloutsError, match="different lengths \\[3, 6\\]"):
        rec.rollouts()
    rec.start(np.array([[0.0, 0.0]]), lanes=[1])
    rec.start(np.array([[0.0, 0.0]]), lanes=[1])  # an open episode restarted: dropped, not written
    assert rec.dropped == 1
    first = rec._episodes[0]["states"]
    np.testing.assert_array_equal(first, [[0.1, 0.0], [0.1, 1.0], [1.1, 1.0], [2.1, 1.0]])
    np.testing.assert_array_equal(rec._episodes[1]["states"][0], [9.0, 9.0])
    np.testing.assert_array_equal(rec._episodes[2]["states"][:, 0], [0.2, 0.2, 1.2, 2.2, 3.2, 4.2, 5.2])


def test_the_recorder_refuses_misuse_with_one_line():
    rec = RolloutRecorder(get_system("pendulum"), load_set(DATA / "pendulum.json"))
    with pytest.raises(RolloutsError, match="no complete episode"):
        rec.rollouts()
    rec.start(np.zeros((2, 2)))
    with pytest.raises(RolloutsError, match="'x_next' must be \\[2, 2\\]"):
        rec.step(np.zeros((2, 3)), np.zeros((2, 1)))
    with pytest.raises(RolloutsError, match="every lane with an open episode must step"):
        rec.step(np.zeros((1, 2)), np.zeros((1, 1)), lanes=[0])
