"""Helpers shared by the benchmark scripts: arguments, rounds, medians, tables, RSS.

Not a test module and not a public API. Every benchmark measures a baseline
in the same run, alternating baseline and subject round by round, and reports
medians and the per-round spread of the ratio: these machines are shared and
noisy, and ratios travel better than absolute numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import sqlite3
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: The account every benchmark uses (Paradex-shaped: 0x + 63 hex digits).
ACCOUNT = "0x49ddd7a564c978f6e4089ff8355b56a42b7e2d48ba282cb5aad60f04bea0ec3"
VENUE = "paradex"


def arguments(description: str | None, *, rounds: int) -> argparse.ArgumentParser:
    """The options every benchmark script takes (``nox -s bench -- ARGS`` passes ARGS to each)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast look")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"alternating rounds (default {rounds})")
    parser.add_argument("--dir", type=Path, help="where to put scratch files (default: a temporary directory)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser


def machine() -> dict[str, str]:
    """Where and when the figures were taken."""
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def rss_bytes() -> int:
    """Current resident set size (Linux /proc), or the peak where /proc is missing."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    return pages * os.sysconf("SC_PAGE_SIZE")


def alternate(rounds: int, subjects: Mapping[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run every subject once per round, in turn, ``rounds`` times; the values each returned.

    A warm-up round comes first and is discarded: a subject's first run pays
    for what later runs reuse (the allocator's arenas, caches, lazy imports).
    Before each run the cyclic collector runs and the objects alive are frozen
    (``gc.freeze``) until the run ends, so that a collection scanning the
    benchmark's own inputs, or what an earlier run left behind, does not land
    in whichever subject happens to be running.
    """
    results: dict[str, list[float]] = {name: [] for name in subjects}
    for round_ in range(rounds + 1):
        for name, subject in subjects.items():
            value = isolated(subject)
            if round_:
                results[name].append(value)
    return results


def isolated(subject: Callable[[], float]) -> float:
    """``subject()``, after a collection, with the objects alive before it frozen (see ``alternate``)."""
    gc.collect()
    gc.freeze()
    try:
        return subject()
    finally:
        gc.unfreeze()


def ratio_figures(runs: Mapping[str, Sequence[float]], baseline: str) -> dict[str, dict[str, float]]:
    """Per subject: the median value, and the median/min/max of its per-round ratio to ``baseline``.

    Values are rates (higher is better): a ratio of 0.5 means half the baseline's rate.
    """
    base = runs[baseline]
    out: dict[str, dict[str, float]] = {}
    for name, values in runs.items():
        ratios = [value / reference for value, reference in zip(values, base, strict=True)]
        out[name] = {
            "median": statistics.median(values),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
    return out


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, align: str = "") -> str:
    """A Markdown table; ``align`` is one character per column, ``l`` or ``r`` (default: first left)."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(marks) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def spread(figure: Mapping[str, float]) -> str:
    return f"{figure['ratio_min']:.2f} to {figure['ratio_max']:.2f}"


def finish(figures: Mapping[str, Any], report: str, path: Path | None) -> None:
    """Print the report (Markdown) and write the figures as JSON if asked."""
    sys.stdout.write(report)
    sys.stdout.flush()
    if path is not None:
        path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
