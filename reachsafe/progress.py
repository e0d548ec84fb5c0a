"""Progress reporting: a tqdm bar on a terminal, plain lines in logs.

:func:`progress_bar` takes tqdm's arguments and returns a real ``tqdm`` bar when the stream
(stderr by default) is a terminal.  Otherwise (a log file, a pipe, CI) it returns a
:class:`PlainProgress`, which writes one plain line (no carriage returns, no cursor-movement
escape codes such as ``ESC[A`` of nested bars) at most every :data:`INTERVAL_S` seconds and one
when it closes::

    certify: 120/152 cell [14.2 s, queue 32]

``disable=True`` (``--quiet``, ``--no-progress``) reports nothing in either case.  The object
supports the parts of tqdm's interface reachsafe uses: iteration, ``update``, ``n`` / ``total``,
``set_description``, ``set_postfix``, ``set_postfix_str``, ``refresh``, ``write``, ``close``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO

__all__ = ["progress_bar", "PlainProgress", "INTERVAL_S"]

INTERVAL_S = 10.0  # seconds between two plain progress lines of one task


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable: Iterable | None = None, *, file: TextIO | None = None, disable: bool = False,
                 **kw: Any) -> Any:
    """``tqdm(iterable, file=..., disable=..., **kw)`` on a terminal, else :class:`PlainProgress`."""
    stream = sys.stderr if file is None else file
    if not disable and _is_terminal(stream):
        from tqdm import tqdm  # lazy: tqdm is optional

        return tqdm(iterable, file=stream, **kw)
    return PlainProgress(iterable, file=stream, disable=disable, desc=kw.get("desc"), total=kw.get("total"),
                         initial=kw.get("initial", 0), unit=kw.get("unit", "it"))


def _count(x: float) -> str:
    """A count as plain lines show it: whole numbers in full (``1179648``, where ``:g`` would
    print ``1.17965e+06``), others as ``:g``."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


class PlainProgress:
    """tqdm's interface (module docstring), reporting with plain lines at most every :data:`INTERVAL_S`."""

    def __init__(self, iterable: Iterable | None = None, *, file: TextIO | None = None, disable: bool = False,
                 desc: str | None = None, total: float | None = None, initial: float = 0, unit: str = "it"):
        self.iterable = iterable
        self.file = file
        self.disable = disable
        self.desc = desc or ""
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.n = initial
        self.unit = unit
        self.postfix = ""
        self.t0 = time.monotonic()
        self.last = self.t0
        self.closed = False
        self.lines = 0  # plain lines written (tests)

    # ---------------------------------------------------------------- reporting
    def _line(self) -> str:
        count = f"{_count(self.n)}/{_count(self.total)}" if self.total else _count(self.n)
        extra = f", {self.postfix}" if self.postfix else ""
        head = f"{self.desc}: " if self.desc else ""
        return f"{head}{count} {self.unit} [{time.monotonic() - self.t0:.1f} s{extra}]"

    def _emit(self, force: bool = False) -> None:
        if self.disable or self.closed:
            return
        now = time.monotonic()
        if force or now - self.last >= INTERVAL_S:
            self.last = now
            stream = self.file if self.file is not None else sys.stderr
            print(self._line(), file=stream, flush=True)
            self.lines += 1

    # -------------------------------------------------------- tqdm's interface
    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        self._emit()

    def refresh(self) -> None:
        self._emit()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kw: Any) -> None:
        items = {**(ordered_dict or {}), **kw}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def write(self, s: str, file: TextIO | None = None) -> None:
        print(s, file=file if file is not None else (self.file or sys.stderr), flush=True)

    def close(self) -> None:
        if not self.closed:
            if self.lines or time.monotonic() - self.t0 >= 1.0:  # a task that took a while reports its end
                self._emit(force=True)
            self.closed = True
