"""``reconcile venues``: the installed venue plugins."""

from __future__ import annotations

import argparse

from reconcile_core.errors import PluginError
from reconcile_core.plugins import available_venues, load_venue

from ._output import print_table, say_error

__all__ = ["add_venues_parser"]


def add_venues_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("venues", help="list the installed venue plugins")
    parser.set_defaults(handler=_venues)


def _venues(_args: argparse.Namespace) -> int:
    """Every installed plugin, one row each; one that cannot be used is marked, and explained on stderr.

    A broken plugin must not hide the others: this is where the other
    commands' errors send the user to look. Exit 2 when any is broken.
    """
    rows: list[tuple[str, str]] = []
    problems: list[str] = []
    for name in available_venues():
        try:
            description = load_venue(name).description
        except PluginError as exc:
            description = f"(cannot be used: {type(exc).__name__}, see below)"
            problems.append(str(exc))
        rows.append((name, description))
    print_table(("venue", "description"), rows)
    for problem in problems:
        say_error(problem)
    return 2 if problems else 0
