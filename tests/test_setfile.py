"""Set-file contract: round trip, every refusal, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from reachsafe.setfile import FORMAT_VERSION, SetFile, SetFileError, load_set
from reachsafe.systems import get_system


def _make(tmp_path, **kw):
    sys = get_system("pendulum")
    A = np.vstack([np.eye(2), -np.eye(2)])
    b = np.array([0.5, 2.0, 0.5, 2.0])
    sf = SetFile.for_system(sys, A, b, volume={"value": 4.0, "method": "exact", "stderr": 0.0}, **kw)
    path = tmp_path / "set.json"
    sf.save(path)
    return path


def _edit(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_round_trip(tmp_path):
    path = _make(tmp_path, zonotope={"center": [0, 0], "generators": [[0.5, 0], [0, 2.0]]})
    sf = load_set(path, system="pendulum")
    assert sf.system == "pendulum" and sf.format_version == FORMAT_VERSION
    np.testing.assert_array_equal(sf.A, np.vstack([np.eye(2), -np.eye(2)]))
    np.testing.assert_array_equal(sf.b, [0.5, 2.0, 0.5, 2.0])
    assert sf.volume["value"] == 4.0 and not sf.certified
    assert sf.polytope().contains(np.array([0.4, -1.9]))
    assert sf.state_names == ["theta", "omega"]
    # plain JSON, readable without reachsafe
    raw = json.loads(path.read_text())
    assert set(raw) >= {
        "format_version",
        "system",
        "model_fingerprint",
        "constraints",
        "noise",
        "A",
        "b",
        "volume",
        "certificate",
    }
    sf.save(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == raw


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d.update(format_version=99), "unsupported format_version 99"),
        (lambda d: d.update(system="cartpole"), "unknown system 'cartpole'"),
        (lambda d: d.pop("system"), "missing field 'system'"),
        (lambda d: d.pop("A"), "missing field 'A'"),
        (lambda d: d.update(b=[1.0, 2.0]), "'b' must have one entry per row"),
        (lambda d: d.update(A=[[1.0, 0.0, 0.0]] * 4), "'A' has 3 columns"),
        (lambda d: d.update(A=[[1.0, 0.0], [0.0]]), "ragged or non-numeric"),
        (lambda d: d.update(model_fingerprint="sha256:" + "0" * 64), "does not match the current pendulum model"),
        (lambda d: d.update(noise={"lo": [-0.2], "hi": [0.2]}), "'noise' box differs"),
        (lambda d: d.update(constraints={"lo": [0.0], "hi": [1.0]}), "field 'constraints' must have 2 entries"),
    ],
)
def test_refusals(tmp_path, edit, match):
    path = _make(tmp_path)
    _edit(path, edit)
    with pytest.raises(SetFileError, match=match) as err:
        load_set(path)
    assert "\n" not in str(err.value)


def test_nan_and_inf_are_refused(tmp_path):
    path = _make(tmp_path)
    text = path.read_text().replace("0.5", "NaN", 1)
    path.write_text(text)
    with pytest.raises(SetFileError, match="NaN"):
        load_set(path)
    path2 = _make(tmp_path)
    _edit(path2, lambda d: d["b"].__setitem__(0, float("inf")))  # json writes the Infinity literal
    with pytest.raises(SetFileError, match="Infinity"):
        load_set(path2)


def test_missing_malformed_and_wrong_system(tmp_path):
    with pytest.raises(SetFileError, match="no such file"):
        load_set(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format_version": 1, "system": ')
    with pytest.raises(SetFileError, match="malformed JSON"):
        load_set(bad)
    path = _make(tmp_path)
    with pytest.raises(SetFileError, match="is a set for 'pendulum', not for 'quadrotor'"):
        load_set(path, system="quadrotor")


def test_fingerprint_check_can_be_skipped(tmp_path):
    path = _make(tmp_path)
    _edit(path, lambda d: d.update(model_fingerprint="sha256:old"))
    assert load_set(path, check_fingerprint=False).model_fingerprint == "sha256:old"


def test_saving_nan_is_refused_and_writes_nothing(tmp_path):
    sys = get_system("pendulum")
    sf = SetFile.for_system(sys, np.array([[np.nan, 0.0]]), np.array([1.0]))
    with pytest.raises(SetFileError, match="NaN"):
        sf.save(tmp_path / "x.json")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_no_partial_file_when_interrupted(tmp_path, monkeypatch):
    path = _make(tmp_path)
    before = path.read_text()
    sys = get_system("pendulum")
    sf = SetFile.for_system(sys, np.eye(2), np.ones(2))

    def boom(fd):
        raise KeyboardInterrupt("simulated crash during write")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        sf.save(path)
    assert path.read_text() == before  # old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.json"]  # no temp file left
    with pytest.raises(KeyboardInterrupt):
        sf.save(tmp_path / "new.json")
    assert not (tmp_path / "new.json").exists()


def test_published_sets_import_volumes(published_pendulum, published_quadrotor):
    p = load_set(published_pendulum)
    q = load_set(published_quadrotor)
    assert p.volume["value"] == pytest.approx(66.86, rel=0.005)
    assert q.volume["value"] == pytest.approx(0.463, rel=0.02)
    assert p.certificate is None and q.certificate is None
    # the H-representation describes the zonotope: its generator corners lie inside
    from reachsafe.sets import Zonotope

    for sf in (p, q):
        Z = Zonotope(sf.zonotope["center"], sf.zonotope["generators"])
        c, G = np.asarray(sf.zonotope["center"]), np.asarray(sf.zonotope["generators"])
        pts = c + 0.999 * np.vstack([G.T, -G.T])
        assert np.all(sf.polytope().contains(pts))
        assert Z.volume() == pytest.approx(sf.volume["value"], rel=1e-12)
