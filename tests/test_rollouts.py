"""The rollouts contract (reachsafe.rollouts): one dataclass, a validating load, an atomic save,
and one line (exit 2 on the command line) for every kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest

from reachsafe.rollouts import Rollouts, RolloutsError

from .conftest import DATA, one_line_error, run_cli

E, T, N, M = 3, 5, 2, 1


def _rollouts(**kw) -> Rollouts:
    rng = np.random.default_rng(0)
    d = dict(states=rng.uniform(-1, 1, (E, T + 1, N)), actions=rng.uniform(-1, 1, (E, T, M)),
             policy_actions=rng.uniform(-1, 1, (E, T, M)), rewards=rng.uniform(-2, 0, (E, T)), system="pendulum",
             set_fingerprint="sha256:" + "1" * 64, model_fingerprint="sha256:" + "2" * 64, noise="uniform")
    d.update(kw)
    return Rollouts(**d)


def _npz(path, **members):
    """Write the members of a valid file, with ``members`` replaced (None drops a member)."""
    ro = _rollouts()
    arrays = ro.to_arrays()
    for k, v in members.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    np.savez(path, **arrays)
    return path


def test_save_then_load_gives_the_same_rollouts(tmp_path):
    ro = _rollouts(intervened=np.zeros((E, T), bool), outside_P=np.zeros((E, T), bool),
                   outside_X=np.zeros((E, T), bool), extra={"safeguard": "raymask", "noise_lo": [-0.1]})
    p = ro.save(tmp_path / "rollouts.npz")
    back = Rollouts.load(p)
    for k in ("states", "actions", "policy_actions", "rewards", "intervened", "outside_P", "outside_X"):
        assert np.array_equal(getattr(back, k), getattr(ro, k)), k
    assert (back.system, back.set_fingerprint, back.model_fingerprint, back.noise) == \
        (ro.system, ro.set_fingerprint, ro.model_fingerprint, ro.noise)
    assert back.extra["safeguard"] == "raymask" and back.extra["noise_lo"].tolist() == [-0.1]
    assert (back.episodes, back.steps, back.storage_dtype) == (E, T, "float64")
    assert Rollouts.load(tmp_path).path == p  # a run directory holding rollouts.npz
    assert np.allclose(back.returns, ro.rewards.sum(1))


def test_float32_is_kept_as_the_storage_precision(tmp_path):
    ro = _rollouts()
    p = _npz(tmp_path / "f.npz", states=ro.states.astype(np.float32))
    back = Rollouts.load(p)
    assert back.storage_dtype == "float32" and back.states.dtype == np.float64


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_text("states,actions\n1,2\n"), "a text file, not an .npz archive"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros(3)) or p.with_suffix(".npy").rename(p), "a single .npy array"),
    (lambda p: p.write_bytes(b""), "an empty file"),
    (lambda p: p.write_bytes(bytes(range(256))), "not a zip archive"),
    (lambda p: _npz(p, rewards=None), "missing member(s) rewards"),
    (lambda p: _npz(p, system=None, set_fingerprint=None), "missing member(s) system, set_fingerprint"),
    (lambda p: _npz(p, rewards=np.zeros((E, T + 1))), "'rewards' [3, 6] must be [E, T] = [3, 5]"),
    (lambda p: _npz(p, states=np.zeros((E, T, N))), "disagree"),
    (lambda p: _npz(p, policy_actions=np.zeros((E, T, 2))), "'policy_actions' [3, 5, 2] must have the shape"),
    (lambda p: _npz(p, actions=np.zeros((E, T, M), int)), "'actions' must be a float array"),
    (lambda p: _npz(p, states=np.zeros((E, T + 1))), "'states' must be 3-D"),
    (lambda p: _npz(p, rewards=np.where(np.arange(T) == 2, np.nan, 0.0)[None].repeat(E, 0)),
     "'rewards' holds 3 NaN value(s), the first at episode 0, step 2"),
    (lambda p: _npz(p, system=np.array("")), "'system' is empty"),
    (lambda p: _npz(p, system=np.zeros(2)), "'system' must be a string"),
    (lambda p: _npz(p, intervened=np.zeros((E, T))), "'intervened' must be a bool array"),
    (lambda p: _npz(p, noise=np.array([None, 1], dtype=object)), "pickled"),
])
def test_bad_files_are_refused_with_one_line(tmp_path, capsys, make, needle):
    p = tmp_path / "r.npz"
    make(p)
    with pytest.raises(RolloutsError) as exc:
        Rollouts.load(p)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg and str(p) in msg, msg
    assert "allow_pickle" not in msg and "np.float64(" not in msg
    # the audit reads through the contract: one line on stderr, exit 2
    code, out, err = run_cli(capsys, "audit", p, "--set", DATA / "pendulum.json")
    one_line_error(code, err, needle)


def test_truncated_archive_is_corrupt(tmp_path):
    p = _rollouts().save(tmp_path / "r.npz")
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RolloutsError, match="corrupt or truncated"):
        Rollouts.load(p)


def test_save_validates_and_writes_nothing_on_bad_rollouts(tmp_path):
    bad = _rollouts(states=np.full((E, T + 1, N), np.nan))
    with pytest.raises(RolloutsError, match="NaN"):
        bad.save(tmp_path / "r.npz")
    with pytest.raises(RolloutsError, match="set_fingerprint"):
        _rollouts(set_fingerprint="").save(tmp_path / "r.npz")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RolloutsError, match="must be a float array"):
        _rollouts(actions=np.zeros((E, T, M), int))


def test_infinite_values_of_a_diverged_run_are_kept_for_the_audit(tmp_path):
    S = _rollouts().states.copy()
    S[1, 3] = np.inf
    back = Rollouts.load(_rollouts(states=S).save(tmp_path / "r.npz"))
    assert np.isinf(back.states[1, 3]).all()


def test_summary_needs_the_trainers_flags():
    with pytest.raises(RolloutsError, match="outside_P"):
        _rollouts().summary()
    s = _rollouts(outside_P=np.zeros((E, T), bool), outside_X=np.ones((E, T), bool)).summary()
    assert s["violations_X"] == E * T and s["violations_P"] == 0 and s["episodes"] == E
