"""Small helpers shared by the subcommands."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError


def check_output_path(path: str | os.PathLike, what: str = "output") -> Path:
    """Refuse an output path whose folder does not exist (before any work is done)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise UserError(f"{what} folder {parent} does not exist; create it or choose another --out")
    if p.is_dir():
        raise UserError(f"{what} path {p} is a directory; give a file name")
    return p


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """Plain aligned text table."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def fmt_box(lo, hi) -> str:
    return " x ".join(f"[{l:g}, {h:g}]" for l, h in zip(lo, hi))
