"""Small helpers shared by the subcommands."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError


def _check_folder(folder: Path, path: Path, what: str, create: bool) -> None:
    """The folder an output goes to: an existing, writable folder (or, with ``create``, one that can be made)."""
    if folder.exists():
        if not folder.is_dir():
            raise UserError(f"{what} {path}: {folder} is a file, not a folder; choose another {what}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"{what} {path}: folder {folder} is not writable; choose another {what}")
        return
    if not create:
        raise UserError(f"{what} folder {folder} does not exist; create it or choose another {what}")
    for anc in folder.parents:  # the nearest existing ancestor decides whether the folder can be made
        if anc.exists():
            _check_folder(anc, path, what, create=False)
            return


def check_output_path(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse an output file that cannot be written, before any work is done.

    The folder must exist, be a folder (not a file) and be writable; the path must not be a
    folder.  ``what`` names the option in the message (``--out``, ``--json``, ...).
    """
    p = Path(path)
    _check_folder(p.parent if str(p.parent) else Path("."), p, what, create=False)
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder; give a file name")
    return p


def check_output_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse an output folder that cannot be created or written, before any work is done.

    The path must not be a file, and it (or its nearest existing ancestor) must be a writable
    folder; missing folders in between are created by the command.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{what} {p} is a file, not a folder; give a folder")
    _check_folder(p, p, what, create=True)
    return p


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """Plain aligned text table."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def fmt_box(lo, hi) -> str:
    return " x ".join(f"[{l:g}, {h:g}]" for l, h in zip(lo, hi))
