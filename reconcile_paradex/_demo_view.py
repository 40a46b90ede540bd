"""What the demo shows while it runs and at the end: the view protocol, progress snapshots, JSON.

The rich view (live table on a terminal, a status line every few seconds
in a pipe, and the verification table) lives in :mod:`._demo_rich`, loaded
only when it is used; ``--json`` needs no rich at all.
"""

from __future__ import annotations

import json
import sys
from typing import IO, TYPE_CHECKING, Protocol

import attrs

from reconcile_core.errors import UsageError
from reconcile_core.runtime import Health

if TYPE_CHECKING:
    from ._demo import DemoResult, DemoSettings

__all__ = ["AccountProgress", "DemoView", "JsonView", "Progress", "make_view"]


@attrs.frozen(kw_only=True)
class AccountProgress:
    """One account's session at one moment."""

    account: str
    health: Health
    #: Fills the demo's consumer has taken.
    delivered: int


@attrs.frozen(kw_only=True)
class Progress:
    """The whole demo at one moment."""

    phase: str
    elapsed: float
    duration: float
    venue_fills: int
    faults_injected: int
    accounts: tuple[AccountProgress, ...]


class DemoView(Protocol):
    """Shows the demo: ``start`` once, ``update`` often, ``finish`` with the verdict."""

    def start(self, settings: DemoSettings, progress: Progress, *, where: str) -> None: ...

    def update(self, progress: Progress) -> None: ...

    def finish(self, result: DemoResult) -> None: ...


class JsonView:
    """Nothing while running; one JSON document (``DemoResult.as_json``) at the end."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def start(self, settings: DemoSettings, progress: Progress, *, where: str) -> None:
        pass

    def update(self, progress: Progress) -> None:
        pass

    def finish(self, result: DemoResult) -> None:
        self._stream.write(json.dumps(result.as_json(), indent=2, sort_keys=True) + "\n")
        self._stream.flush()


def make_view(*, json_output: bool, stream: IO[str] | None) -> DemoView:
    """The JSON view, or the rich one (an actionable error when rich is not installed)."""
    out = stream if stream is not None else sys.stdout
    if json_output:
        return JsonView(out)
    try:
        from ._demo_rich import RichView  # noqa: PLC0415 - rich is an optional extra
    except ImportError as exc:
        raise UsageError(
            "the demo's live display needs rich: pip install 'reconcile-trading[demo]' (or pass --json)"
        ) from exc
    return RichView(out)
