"""Small helpers for printing to a terminal or a pipe."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["print_table", "say_error"]


def say_error(message: str, *, stream: TextIO | None = None) -> None:
    """One line on stderr, prefixed so it stands out in logs."""
    print(f"reconcile: error: {message}", file=stream or sys.stderr, flush=True)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, stream: TextIO | None = None) -> None:
    """A plain aligned text table (no colours: it must read well in a pipe and in cron mail)."""
    out = stream or sys.stdout
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip(), file=out)
        if index == 0:
            print("  ".join("-" * w for w in widths), file=out)
    out.flush()
