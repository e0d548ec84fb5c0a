"""The certificate is checked wherever it is trusted (issue 18, point 1): every load verifies that
the proof artifact exists, is the recorded one and is for this A, b and model.  The user's test:
add 0.5 to b[3] of a copy of data/pendulum.json, so that P reaches omega = -12.5, outside X."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reachsafe.certificate import artifact_set_hash, certificate_problem
from reachsafe.setfile import SetFileError, load_set

from .conftest import DATA, PUBLISHED, one_line_error, run_cli


def _copy(tmp_path: Path, with_artifact: bool = True, db3: float = 0.0) -> Path:
    p = tmp_path / "pendulum.json"
    shutil.copy(DATA / "pendulum.json", p)
    if with_artifact:
        shutil.copy(DATA / "pendulum.proof.json", tmp_path / "pendulum.proof.json")
    if db3:
        d = json.loads(p.read_text())
        d["b"][3] += db3
        p.write_text(json.dumps(d, indent=1))
    return p


def test_an_untouched_copy_is_certified(tmp_path, capsys):
    p = _copy(tmp_path)
    sf = load_set(p)
    assert sf.certified and sf.certificate_status == "certified" and certificate_problem(sf) is None
    code, out, err = run_cli(capsys, "info", p)
    assert code == 0 and "bound to its proof artifact pendulum.proof.json" in out and err == ""


@pytest.mark.parametrize("case, needle", [
    ("edited", "proves another set: A or b changed after certification"),
    ("no_artifact", "proof artifact pendulum.proof.json is missing beside the set file"),
    ("other_artifact", "differs from the one the certificate records (sha256)"),
])
def test_a_set_whose_certificate_does_not_match_is_reported_and_refused(tmp_path, capsys, case, needle):
    p = _copy(tmp_path, with_artifact=case != "no_artifact", db3=0.5 if case == "edited" else 0.0)
    if case == "other_artifact":
        art = tmp_path / "pendulum.proof.json"
        art.write_text(art.read_text().replace('"tool_version":"0.1.0"', '"tool_version":"0.1.1"'))
    # the Python load refuses it; a load that does not rely on the certificate reports it
    with pytest.raises(SetFileError, match="certificate does not match"):
        load_set(p)
    sf = load_set(p, check_certificate=False)
    assert not sf.certified and sf.certificate_status == "mismatch" and needle in sf.certificate_problem
    # info: reported as such, exit 1, not "certified ... min slack"
    code, out, err = run_cli(capsys, "info", p)
    assert code == 1 and "DOES NOT MATCH" in out and needle in out and "min slack" not in out, out
    # train: refused before anything is written, with the option that accepts it
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "pendulum", "--safeguard", "raymask", "--set", p, "--seed", 0,
                             "--steps", 256, "--out", run)
    one_line_error(code, err, "certificate does not match", needle, "--allow-unverified-set")
    assert not run.exists()
    # the audit's check 1 and certify --recheck notice too
    from verification.audit.checks import recheck_certificate

    ok, msg = recheck_certificate(sf)
    assert not ok and needle in msg
    code, out, err = run_cli(capsys, "certify", p, "--recheck", "--quiet")
    assert code == 1 and "INVALID" in out


def test_training_on_an_unverified_set_needs_the_option_and_warns_on_stderr(tmp_path, capsys):
    p = _copy(tmp_path, db3=0.5)
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "pendulum", "--safeguard", "raymask", "--set", p, "--seed", 0,
                             "--steps", 256, "--eval-every", 256, "--eval-episodes", 2, "--out", run,
                             "--allow-unverified-set", "--quiet")
    assert code in (0, 1), err  # 1 when the (not invariant) set is left
    assert "certificate does not match" in err and "--allow-unverified-set" in err
    assert "certificate" not in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["allow_unverified_set"] and cfg["set_certificate"] == "mismatch" and not cfg["set_certified"]
    # evaluate reads the run's setting and keeps accepting it (with the warning)
    code, out, err = run_cli(capsys, "evaluate", run, "--episodes", 2)
    assert code in (0, 1) and "certificate does not match" not in out and "certificate does not match" in err


def test_a_never_certified_set_keeps_its_warning_on_stderr(tmp_path, capsys):
    code, out, err = run_cli(capsys, "info", PUBLISHED / "pendulum.json")
    assert code == 0 and "certificate   none" in out
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "pendulum", "--safeguard", "raymask",
                             "--set", PUBLISHED / "pendulum.json", "--seed", 0, "--steps", 256, "--eval-every", 256,
                             "--eval-episodes", 2, "--out", run,
                             "--quiet")
    assert code == 0, err
    assert "is not certified" in err and "is not certified" not in out


def test_experiment_refuses_a_set_whose_certificate_does_not_match(tmp_path, capsys):
    p = _copy(tmp_path, db3=0.5)
    toml = tmp_path / "e.toml"
    toml.write_text(f'[experiment]\nname = "bad"\nresults_dir = "{tmp_path}/res"\nruns_dir = "{tmp_path}/runs"\n'
                    f'[systems.pendulum]\nset = "{p}"\nsteps = 256\n'
                    '[[grid]]\nsystems = ["pendulum"]\nalgos = ["shac"]\nsafeguards = ["raymask"]\nseeds = 1\n')
    code, out, err = run_cli(capsys, "experiment", toml, "--workers", "1", "--no-progress")
    one_line_error(code, err, "certificate does not match")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "res").exists()


def test_the_binding_hash_is_the_re_checkers():
    from verification.certification.recheck import set_hash

    sf = load_set(DATA / "quadrotor.json")
    assert set_hash(sf.A, sf.b) == artifact_set_hash(sf.A, sf.b)
    art = json.loads((DATA / "quadrotor.proof.json").read_text())
    assert art["set_sha256"] == artifact_set_hash(sf.A, sf.b)
