"""Work folders (.reachsafe-XXXXXXXX/) and signals (issue 18, point 9): SIGTERM during certification
unwinds like Ctrl-C and leaves nothing behind; folders of killed runs are removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reachsafe import workdir
from reachsafe.cli import main

from .conftest import ROOT

# compute-invariant with a certifier that never finishes (it sleeps), so that the signal arrives
# while the candidate and its work folder exist, as during a long certification
_SLOW_CERTIFY = """
import sys, time
import verification.certification.certifier as certifier
certifier.certify = lambda *a, **k: time.sleep(300)
from reachsafe.cli import main
sys.exit(main(["compute-invariant", "pendulum", "--out", sys.argv[1], "--quiet"]))
"""


def _start(tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _SLOW_CERTIFY, str(tmp_path / "p.json")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for_workdir(tmp_path: Path, proc: subprocess.Popen, timeout: float = 300) -> Path:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        found = [p for p in tmp_path.iterdir() if p.name.startswith(workdir.PREFIX)]
        if found and (found[0] / workdir.LOCK).exists() and (found[0] / "p.json").exists():
            return found[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no work folder appeared")


def test_sigterm_during_certification_removes_the_work_folder(tmp_path):
    proc = _start(tmp_path)
    try:
        wd = _wait_for_workdir(tmp_path, proc)
        assert (wd / "p.json").exists()  # the candidate being certified
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    lines = [ln for ln in err.splitlines() if ln]
    assert len(lines) == 1 and "terminated (SIGTERM)" in lines[0] and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no work folder, no set file


def test_a_killed_runs_folder_is_removed_by_the_next_run(tmp_path):
    proc = _start(tmp_path)
    try:
        wd = _wait_for_workdir(tmp_path, proc)
        proc.kill()  # SIGKILL: no chance to clean up
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wd.exists()
    new = workdir.make_workdir(tmp_path)  # the next run
    try:
        assert not wd.exists() and new.exists()
    finally:
        workdir.remove_workdir(new)
    assert list(tmp_path.iterdir()) == []


def test_only_stale_folders_are_removed(tmp_path):
    # in use by another process: its lock is held
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom reachsafe import workdir\n"
                               "d = workdir.make_workdir(sys.argv[1]); print(d, flush=True); time.sleep(120)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        busy = Path(holder.stdout.readline().strip())
        legacy_old = tmp_path / ".reachsafe-legacy1"  # made by an older reachsafe (no lock file)
        legacy_old.mkdir()
        os.utime(legacy_old, (time.time() - 3600, time.time() - 3600))
        legacy_new = tmp_path / ".reachsafe-legacy2"  # no lock yet, but just created: maybe being set up
        legacy_new.mkdir()
        dead = tmp_path / ".reachsafe-dead0001"  # its process ended: the lock is free
        dead.mkdir()
        (dead / workdir.LOCK).write_text("")
        (dead / "x.json").write_text("{}")
        other = tmp_path / "reachsafe-not-ours"
        other.mkdir()
        removed = workdir.remove_stale_workdirs(tmp_path)
        assert sorted(p.name for p in removed) == [".reachsafe-dead0001", ".reachsafe-legacy1"]
        assert busy.exists() and legacy_new.exists() and other.exists()
    finally:
        holder.kill()
        holder.communicate()
    assert workdir.remove_stale_workdirs(tmp_path) == [busy]  # its process is gone now


def test_sigterm_in_process_returns_143_with_one_line(monkeypatch, capsys):
    import reachsafe.commands.systems as systems_cmd

    def run(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        return 0

    monkeypatch.setattr(systems_cmd, "run", run)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["systems"]) == 143
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "terminated (SIGTERM)" in err
    assert signal.getsignal(signal.SIGTERM) == before  # restored after the command

