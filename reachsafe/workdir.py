"""Private work folders beside an output (``.reachsafe-XXXXXXXX/``), and the removal of stale ones.

A command that builds several files and publishes them together (``compute-invariant``: the
candidate set file and its proof artifact) works in a private folder beside the output, on
the same file system, and renames the finished files into place.  The folder is removed when
the work ends, also on Ctrl-C and SIGTERM (:mod:`reachsafe.cli` turns SIGTERM into an
exception, so ``finally`` blocks run).  A process killed outright (SIGKILL, power loss) cannot
clean up, so every new work folder first removes the *stale* ones in its parent:

* each work folder holds a ``.lock`` file on which its process keeps an exclusive
  ``flock`` until the folder is removed or the process ends (the kernel drops the lock then);
  a folder whose lock can be taken belongs to no running process and is stale;
* a folder without a lock file (made by an older reachsafe, or caught between its creation and
  its locking) is stale once it is older than :data:`UNLOCKED_GRACE_S`.

Where ``fcntl`` is missing (Windows) only the second rule applies.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["PREFIX", "make_workdir", "remove_workdir", "remove_stale_workdirs", "UNLOCKED_GRACE_S"]

PREFIX = ".reachsafe-"
LOCK = ".lock"
UNLOCKED_GRACE_S = 60.0
_held: dict[Path, int] = {}  # work folder -> descriptor of its locked .lock file (this process)


def _try_lock(lock: Path) -> int | None:
    """Descriptor of ``lock`` with an exclusive flock taken, or None if another process holds it."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError:
        os.close(fd)
        return None


def remove_stale_workdirs(parent: str | os.PathLike) -> list[Path]:
    """Remove the stale work folders in ``parent`` (module docstring); returns the removed ones."""
    removed: list[Path] = []
    try:
        candidates = [p for p in Path(parent).iterdir() if p.name.startswith(PREFIX) and p.is_dir()]
    except OSError:  # parent missing or unreadable: nothing to clean
        return removed
    for d in candidates:
        if d in _held:
            continue
        lock = d / LOCK
        try:
            if lock.exists():
                fd = _try_lock(lock)
                if fd is None:
                    continue  # a running process works there
                try:
                    shutil.rmtree(d, ignore_errors=True)
                finally:
                    os.close(fd)
            elif time.time() - d.stat().st_mtime > UNLOCKED_GRACE_S:
                shutil.rmtree(d, ignore_errors=True)
            else:
                continue
        except OSError:
            continue
        if not d.exists():
            removed.append(d)
    return removed


def make_workdir(parent: str | os.PathLike) -> Path:
    """A new private work folder in ``parent`` (stale ones removed first), locked by this process."""
    remove_stale_workdirs(parent)
    d = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    fd = _try_lock(d / LOCK)
    if fd is not None:
        _held[d] = fd
    return d


def remove_workdir(path: str | os.PathLike) -> None:
    """Remove a work folder made by :func:`make_workdir` (and release its lock)."""
    d = Path(path)
    shutil.rmtree(d, ignore_errors=True)
    fd = _held.pop(d, None)
    if fd is not None:
        os.close(fd)
