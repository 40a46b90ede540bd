"""``reconcile venues``: the installed venue plugins."""

from __future__ import annotations

import argparse

from reconcile_core.plugins import available_venues, load_venue

from ._output import print_table

__all__ = ["add_venues_parser"]


def add_venues_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("venues", help="list the installed venue plugins")
    parser.set_defaults(handler=_venues)


def _venues(_args: argparse.Namespace) -> int:
    rows = [(name, load_venue(name).description) for name in available_venues()]
    print_table(("venue", "description"), rows)
    return 0
