"""The Ray cluster path for real (issue 18, point 11): a head node and a worker node started with
`ray start`, bound to 127.0.0.1 only, token authentication on (the default of Ray >= 2.5x when a
token exists), the smoke grid run through `--address`, then both nodes stopped.

Nothing here listens on or talks to any address but 127.0.0.1: the nodes get
``--node-ip-address=127.0.0.1``; the head runs in Ray's single-machine mode
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), which keeps that address; ``ray start`` refuses a worker
node in that mode, so the worker runs Ray's own ``ray start`` with the one function that rewrites a
loopback address to the interface address replaced by the identity.  Every listening socket of the
started processes is checked to be on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import ROOT

ray = pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))
_WORKER_START = (  # `ray start` for a worker node that keeps its loopback address
    "import sys\n"
    "from ray._private import services\n"
    "services.resolve_ip_for_localhost = lambda host: host\n"
    "from ray.scripts.scripts import main\n"
    "sys.argv[0] = 'ray'\n"
    "main()\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> set[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo += children.get(p, [])
    return out


def _listening(pids: set[int]) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the listening TCP sockets of ``pids``."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                out.append(f[1].split(":")[0])
    return out


LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


@pytest.mark.slow  # about a minute: two nodes start, three runs train, both nodes stop
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc to check the bound addresses")
def test_smoke_grid_on_a_real_ray_cluster_with_token_auth(tmp_path):
    tmp = Path(tempfile.mkdtemp(prefix="rsray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    home = tmp / "home"
    home.mkdir()
    token = tmp / "token"
    token.write_text("reachsafe-test-" + os.urandom(16).hex())
    # no RAY_AUTH_MODE: the head turns token authentication on because a token exists, and the driver
    # must do so itself (Ray does not for an explicit --address)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_AUTH_TOKEN_PATH=str(token), PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    port = _free_port()
    addr = f"127.0.0.1:{port}"
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", f"--temp-dir={tmp / 'ray'}",
              "--disable-usage-stats"]
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                            env={**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    nodes = [head]
    try:
        t0 = time.monotonic()
        while True:  # the head answers on its port
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None and time.monotonic() - t0 < 120, "head node did not start"
            time.sleep(0.5)
        # a node joining by address enables token authentication only when told (as the README says)
        worker = subprocess.Popen([sys.executable, "-c", _WORKER_START, "start", f"--address={addr}", *common],
                                  env={**env, "RAY_AUTH_MODE": "token"}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        nodes.append(worker)
        t0 = time.monotonic()
        while True:  # the worker node has joined: the cluster has 2 CPUs
            st = subprocess.run([RAY, "status", f"--address={addr}"], capture_output=True, text=True, timeout=120,
                                env={**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"})
            if "0.0/2.0 CPU" in st.stdout:
                break
            assert worker.poll() is None and time.monotonic() - t0 < 120, st.stdout + st.stderr
            time.sleep(1)
        res, runs = tmp_path / "results", tmp_path / "runs"
        driver = subprocess.run(
            [sys.executable, "-m", "reachsafe.cli", "experiment", str(ROOT / "experiments" / "smoke.toml"),
             "--backend", "ray", "--address", addr, "--results-dir", str(res), "--runs-dir", str(runs),
             "--no-progress"], env=env, capture_output=True, text=True, timeout=900)
        assert driver.returncode == 0, driver.stdout + driver.stderr
        assert "InvalidAuthToken" not in driver.stderr and "Traceback" not in driver.stderr
        assert "running 3 run(s) on ray with 2 worker(s)" in driver.stdout, driver.stdout
        recs = {d.name: json.loads((d / "run.json").read_text()) for d in (res / "runs").iterdir()}
        assert set(recs) == {"pendulum-shac-none-s0", "pendulum-shac-raymask-s0", "pendulum-shac-raymask-pt-s0"}
        assert recs["pendulum-shac-raymask-s0"]["audit_certified"]
        # every server the nodes started listens on the loopback address only
        addrs = _listening(set().union(*(_tree(n.pid) for n in nodes)))
        assert addrs and set(addrs) <= LOOPBACK_HEX, addrs
    finally:
        for n in reversed(nodes):  # `ray start --block` stops the processes it started on SIGTERM
            if n.poll() is None:
                n.send_signal(signal.SIGTERM)
        for n in reversed(nodes):
            try:
                n.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(n.pid, signal.SIGKILL)
                n.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path):
    port = _free_port()  # nothing listens there
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "reachsafe.cli", "experiment", str(ROOT / "experiments" / "smoke.toml"),
                        "--backend", "ray", "--address", f"127.0.0.1:{port}", "--results-dir", str(tmp_path / "r"),
                        "--runs-dir", str(tmp_path / "runs"), "--no-progress"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln]
    assert len(lines) == 1 and "cannot reach a Ray cluster at 127.0.0.1:" in lines[0], r.stderr
    assert time.monotonic() - t0 < 120 and list(tmp_path.iterdir()) == []
