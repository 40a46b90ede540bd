"""``reconcile demo``: a venue plugin's own simulated venue, with faults, verified end to end.

The core knows no venue: it finds an installed venue plugin that offers a
demo and calls it. A plugin offers a demo by having a ``run_demo`` method::

    def run_demo(self, *, seed: int, faults: str, duration: float, accounts: int, json_output: bool) -> int: ...

``faults`` is ``"none"``, ``"light"`` or ``"heavy"``; the return value is the
exit code: 0 only when the final state converged to the simulated venue's
truth and every fill was delivered exactly once, 1 otherwise.
"""

from __future__ import annotations

import argparse
from typing import Protocol, runtime_checkable

from reconcile_core.errors import PluginError, UsageError
from reconcile_core.plugins import available_venues, load_venue

from ._output import writing
from ._source_options import positive_seconds

__all__ = ["DemoVenue", "add_demo_parser", "find_demo_venue"]

FAULT_PROFILES = ("none", "light", "heavy")


@runtime_checkable
class DemoVenue(Protocol):
    """A venue plugin that offers ``reconcile demo``."""

    name: str

    def run_demo(self, *, seed: int, faults: str, duration: float, accounts: int, json_output: bool) -> int: ...


def add_demo_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="watch a simulated venue with faults being reconciled (no account, no network)",
        description=(
            "Start the venue plugin's simulator on 127.0.0.1 with injected faults, follow it with real sessions "
            "over sockets for a while, then check the final orders, positions and fills against the simulator's "
            "truth. Exit code 0 only when everything converged and every fill was delivered exactly once."
        ),
    )
    parser.add_argument("--venue", help="the venue plugin (default: the only installed plugin that offers a demo)")
    parser.add_argument("--seed", type=int, default=1, help="the simulated history (default 1)")
    parser.add_argument("--faults", choices=FAULT_PROFILES, default="light", help="fault profile (default light)")
    parser.add_argument(
        "--duration",
        type=positive_seconds,
        default=15.0,
        metavar="SECONDS",
        help="seconds of simulated trading (default 15)",
    )
    parser.add_argument("--accounts", type=int, default=2, metavar="N", help="accounts, one session each (default 2)")
    parser.add_argument(
        "--json", action="store_true", dest="json_output", help="print one JSON summary instead of the live display"
    )
    # The exit code is the demo's verdict: a closed pipe must not read as "converged".
    parser.set_defaults(handler=_demo, closed_pipe_exit=1)


def find_demo_venue(name: str | None) -> DemoVenue:
    """The plugin named ``name``, or the only installed one that offers a demo."""
    if name is not None:
        try:
            plugin = load_venue(name)
        except PluginError as exc:
            raise UsageError(str(exc)) from exc
        if not isinstance(plugin, DemoVenue):
            msg = f"the venue plugin {name!r} offers no demo (it has no run_demo method)"
            raise UsageError(msg)
        return plugin
    offering: list[DemoVenue] = []
    broken: list[str] = []
    for candidate in available_venues():
        try:
            plugin = load_venue(candidate)
        except PluginError:
            broken.append(candidate)
            continue
        if isinstance(plugin, DemoVenue):
            offering.append(plugin)
    if len(offering) == 1:
        return offering[0]
    if not offering:
        installed = ", ".join(available_venues()) or "none"
        msg = f"no installed venue plugin offers a demo (installed: {installed})"
        if broken:
            msg += f"; these failed to load: {', '.join(broken)} (see 'reconcile venues')"
        raise UsageError(msg)
    names = ", ".join(sorted(p.name for p in offering))
    msg = f"several venue plugins offer a demo ({names}): pick one with --venue NAME"
    raise UsageError(msg)


def _demo(args: argparse.Namespace) -> int:
    if args.accounts < 1:
        msg = f"--accounts must be >= 1, got {args.accounts}"
        raise UsageError(msg)
    venue = find_demo_venue(args.venue)
    with writing():  # a full disk behind stdout is one line; a closed pipe exits 1 (its verdict unread)
        return int(
            venue.run_demo(
                seed=args.seed,
                faults=args.faults,
                duration=args.duration,
                accounts=args.accounts,
                json_output=args.json_output,
            )
        )
