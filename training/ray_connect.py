"""Connecting the experiment driver to Ray: a local instance on the loopback address, or a cluster.

**Local instance** (``--backend ray`` without ``--address``): every Ray server binds to
127.0.0.1 only.  Ray replaces a loopback node address by the machine's interface address
unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its single-machine mode), so that is set for
the instance and the processes it starts, and the node address is 127.0.0.1.

**Cluster** (``--address HOST:PORT``, ``ray://HOST:PORT`` or ``auto``):

* the address is checked first: a host that does not answer on that port is one line, exit 2,
  within seconds (Ray itself retries for a minute and then raises);
* token authentication (Ray >= 2.5x: ``ray start`` enables it when a token exists): Ray turns it
  on for ``auto`` but not for an explicit address, so a driver holding the token
  (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) got ``InvalidAuthToken``
  from a token cluster.  The token mode is enabled whenever a token is available and
  ``RAY_AUTH_MODE`` is not set; a cluster that refuses the connection is one line naming the
  token sources;
* the driver registers with the address through which it reaches the head (a UDP socket's
  route, no packet sent): 127.0.0.1 for a head on the loopback address, where Ray's own choice
  (the interface address) would neither match the head nor stay on the machine.

Ray's retry warnings during a failed connection are captured and summarised in the one line.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

from reachsafe.errors import UserError

__all__ = ["parse_address", "RayConnection"]

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def parse_address(address: str) -> tuple[Optional[str], Optional[int]]:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; ``(None, None)`` for ``auto``.

    :raises UserError: anything else.
    """
    if address == "auto":
        return None, None
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--address {address!r}: expected HOST:PORT (the head's GCS port, e.g. 127.0.0.1:6379), "
                        "ray://HOST:PORT (Ray Client) or auto")
    return host, int(port)


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return Path(path).is_file()
    return (Path.home() / ".ray" / "auth_token").is_file()


def _route_ip(host: str, port: int) -> str:
    """The local address this machine uses to reach ``host`` (UDP ``connect`` sends nothing)."""
    if host in LOOPBACK_HOSTS:
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return s.getsockname()[0]


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Collect what Ray writes to the stderr file descriptor (C++ warnings included) inside the block."""
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


class RayConnection:
    """``ray.init`` for the experiment backend, with the environment it needed restored on :meth:`close`."""

    def __init__(self, ray: Any):
        self.ray = ray
        self._env: dict[str, Optional[str]] = {}
        self._constants: Optional[tuple[Any, bool]] = None

    def _setenv(self, key: str, value: str) -> None:
        self._env.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    def _keep_loopback(self) -> None:
        """Ray's single-machine mode: a loopback node address stays loopback (module docstring)."""
        self._setenv(_SINGLE_MACHINE, "0")
        try:  # the flag is read when Ray is imported; a process that imported it earlier needs the constant too
            import ray._private.ray_constants as rc  # lazy: ray is optional

            if getattr(rc, "ENABLE_RAY_CLUSTER", False):
                self._constants = (rc, rc.ENABLE_RAY_CLUSTER)
                rc.ENABLE_RAY_CLUSTER = False
        except ImportError:  # pragma: no cover - another Ray layout
            pass

    def _enable_token_auth(self) -> None:
        if "RAY_AUTH_MODE" in os.environ or not _token_available():
            return
        self._setenv("RAY_AUTH_MODE", "token")
        try:  # Ray caches its configuration; refresh it for this process
            from ray._raylet import Config  # lazy: ray is optional

            Config.initialize("")
        except (ImportError, AttributeError):  # pragma: no cover - older Ray without token authentication
            pass

    def start_local(self, cpus: int, **kw: Any) -> None:
        """A local Ray instance with ``cpus`` CPUs, every server on 127.0.0.1."""
        self._keep_loopback()
        self.ray.init(num_cpus=cpus, _node_ip_address="127.0.0.1", **kw)

    def connect(self, address: str, **kw: Any) -> None:
        """Join the cluster at ``address`` (module docstring); one-line :class:`UserError` on failure."""
        host, port = parse_address(address)
        if host is not None:
            try:
                with socket.create_connection((host, port), timeout=5):
                    pass
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise UserError(f"cannot reach a Ray cluster at {address} ({reason}); start its head with "
                                "'ray start --head --port PORT' (README, Experiments) or fix --address") from None
            if host in LOOPBACK_HOSTS:
                self._keep_loopback()
            kw["_node_ip_address"] = _route_ip(host, port)
        self._enable_token_auth()
        err: Optional[BaseException] = None
        with _captured_stderr() as captured:
            try:
                self.ray.init(address=address, **kw)
            except Exception as exc:  # ConnectionError, RuntimeError, AuthenticationError, ...
                err = exc
        text = captured[0] if captured else ""
        if err is None:
            sys.stderr.write(text)
            return
        self.close()
        if "InvalidAuthToken" in text or "Unauthenticated" in text or "authentication" in str(err).lower():
            raise UserError(f"the Ray cluster at {address} refused the connection (token authentication): make its "
                            "token available here, e.g. copy the head's ~/.ray/auth_token to this machine or set "
                            "RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH") from None
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"cannot connect to the Ray cluster at {address}: {first}") from None

    def close(self) -> None:
        """Restore the environment variables and Ray's flag changed for the connection."""
        for key, value in self._env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._env.clear()
        if self._constants is not None:
            rc, value = self._constants
            rc.ENABLE_RAY_CLUSTER = value
            self._constants = None
