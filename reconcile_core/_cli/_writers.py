"""How ``reconcile run`` prints events: JSONL for machines, one readable line for people."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Protocol, TextIO

from reconcile_core._events import (
    CycleSummary,
    Discrepancy,
    Event,
    FillBusted,
    FillRecorded,
    OrderUpdated,
    PositionUpdated,
)
from reconcile_core.jsonl import dumps

from ._output import writing

__all__ = ["EventWriter", "JsonlWriter", "PrettyWriter", "make_writer"]


class EventWriter(Protocol):
    def write(self, event: Event) -> None: ...


class JsonlWriter:
    """One JSON object per line, flushed per line (the documented JSONL contract)."""

    def __init__(self, account: str, stream: TextIO | None = None) -> None:
        self._account = account
        self._stream = stream or sys.stdout

    def write(self, event: Event) -> None:
        with writing():
            self._stream.write(dumps(event, account=self._account) + "\n")
            self._stream.flush()


def _time(ms: int) -> str:
    """The time of day (UTC); the raw milliseconds when the calendar cannot show it.

    The core accepts any time up to ``2**63 - 1`` ms, far beyond the year 9999.
    """
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
    except (ValueError, OverflowError, OSError):
        return f"ms {ms}"


class PrettyWriter:
    """One aligned, human line per event."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout

    def write(self, event: Event) -> None:
        line = self.format(event)
        with writing():
            self._stream.write(line + "\n")
            self._stream.flush()

    @staticmethod
    def format(event: Event) -> str:
        if isinstance(event, FillRecorded):
            f = event.fill
            again = " (redelivered)" if event.redelivery else ""
            return (
                f"{_time(f.time)}  FILL      {f.instrument:<14} {f.side.value:<4} {f.size} @ {f.price}  "
                f"fee {f.fee} {f.fee_currency}  [{f.source.value}] {f.key.fill_type}:{f.key.fill_id}{again}"
            )
        if isinstance(event, FillBusted):
            return f"{_time(event.bust.time)}  BUST      fill {event.bust.fill_id} reverted by the venue"
        if isinstance(event, OrderUpdated):
            o = event.order
            return (
                f"{_time(o.updated_at)}  ORDER     {o.instrument:<14} {o.side.value:<4} {o.status.value:<11} "
                f"{o.filled_quantity}/{o.quantity} @ {o.price}  id {o.order_id}"
            )
        if isinstance(event, PositionUpdated):
            p = event.position
            return f"{_time(p.updated_at)}  POSITION  {p.instrument:<14} size {p.size} entry {p.entry_price}"
        if isinstance(event, Discrepancy):
            return (
                f"              {event.severity.value.upper():<8}  {event.kind.value}: {event.subject}: {event.detail}"
            )
        if isinstance(event, CycleSummary):
            state = "ok" if event.ok else "FAILED"
            return (
                f"{_time(event.started_at)}  CYCLE     {event.reason} {state} in {event.duration_ms} ms: "
                f"{event.orders_seen} orders, {event.positions_seen} positions, {event.fills_seen} fills "
                f"({event.fills_recovered} recovered by REST), {event.discrepancies} discrepancies"
            )
        return repr(event)


def make_writer(output: str | None, *, account: str, stream: TextIO | None = None) -> EventWriter:
    """``pretty`` on a terminal, ``jsonl`` otherwise, unless ``output`` says."""
    target = stream or sys.stdout
    if output is None:
        output = "pretty" if target.isatty() else "jsonl"
    return PrettyWriter(target) if output == "pretty" else JsonlWriter(account, target)
