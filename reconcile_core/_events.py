"""What the reconciler tells its caller: events for the consumer, needs for the runtime.

Events are facts the consumer acts on (an order changed, a fill happened).
Needs are requests to the I/O layer (fetch this order, backfill those fills);
the reconciler never performs I/O itself, in the manner of h11's
``NEED_DATA``.
"""

from __future__ import annotations

import enum
from typing import Generic, TypeVar

import attrs
from attrs import validators as v

from ._types import Fill, FillBust, Order, Position

__all__ = [
    "BackfillFills",
    "CycleSummary",
    "Discrepancy",
    "DiscrepancyKind",
    "Event",
    "FillBusted",
    "FillRecorded",
    "Need",
    "OrderUpdated",
    "Page",
    "PositionUpdated",
    "ResolveOrder",
    "Severity",
]

T = TypeVar("T")

#: Discrepancy details and payload excerpts are cut to this many characters.
MAX_DETAIL_CHARS = 500


class Event:
    """Base class of everything a session delivers to its consumer."""

    __slots__ = ()


@attrs.frozen(kw_only=True)
class OrderUpdated(Event):
    """The merged state of an order changed. Never emitted for a no-op merge."""

    order: Order
    #: The state before this change, or ``None`` when the order is new locally.
    previous: Order | None


@attrs.frozen(kw_only=True)
class FillRecorded(Event):
    """A fill was recorded for the first time. Emitted once per fill key.

    ``offset`` is the ledger's delivery offset: acknowledge it once the fill is
    handled (see :meth:`reconcile_core.typing.FillLedger.acknowledge`).
    ``redelivery`` is true when the fill was recorded by an earlier process
    that crashed before the consumer acknowledged it.
    """

    fill: Fill
    offset: int
    redelivery: bool = False


@attrs.frozen(kw_only=True)
class FillBusted(Event):
    """The venue reverted a fill. Emitted once per busted fill id."""

    bust: FillBust
    #: The reverted fill if the ledger had recorded it, else ``None`` (the bust
    #: arrived first; the fill will never be recorded).
    fill: Fill | None
    offset: int
    redelivery: bool = False


@attrs.frozen(kw_only=True)
class PositionUpdated(Event):
    """The merged state of a position changed."""

    position: Position
    previous: Position | None


class DiscrepancyKind(enum.Enum):
    """What kind of disagreement or anomaly a :class:`Discrepancy` reports."""

    #: The same fill key arrived with different content; the first is kept.
    FILL_CONFLICT = "fill_conflict"
    #: An order's filled quantity (or a position's last fill) is ahead of the
    #: recorded fills, and a backfill did not close the gap.
    MISSING_FILLS = "missing_fills"
    #: Recorded fills of an order add up to more than its filled quantity.
    OVERFILL = "overfill"
    #: A new fill names an order of another side or instrument; it is recorded
    #: as the venue sent it.
    FILL_ORDER_MISMATCH = "fill_order_mismatch"
    #: The venue could not account for a live order; it is now ``UNKNOWN``.
    ORDER_UNKNOWN = "order_unknown"
    #: A payload could not be parsed; it was skipped.
    MALFORMED_MESSAGE = "malformed_message"
    #: A payload carried an enum value this library does not know.
    UNKNOWN_VALUE = "unknown_value"
    #: A bust named a fill the ledger has never seen.
    BUST_FOR_UNKNOWN_FILL = "bust_for_unknown_fill"
    #: A position disagrees with what the fills explain.
    POSITION_MISMATCH = "position_mismatch"
    #: A read from the source failed; it will be retried.
    SOURCE_ERROR = "source_error"


class Severity(enum.Enum):
    """How urgently a person should look at a discrepancy."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _truncate(value: str) -> str:
    if len(value) <= MAX_DETAIL_CHARS:
        return value
    return value[: MAX_DETAIL_CHARS - 1] + "…"


def _truncate_optional(value: str | None) -> str | None:
    return None if value is None else _truncate(value)


@attrs.frozen(kw_only=True)
class Discrepancy(Event):
    """The library found something it cannot silently fix.

    Texts are cut to ``MAX_DETAIL_CHARS`` characters; plugins must never put
    secrets into them.
    """

    kind: DiscrepancyKind = attrs.field(validator=v.instance_of(DiscrepancyKind))
    #: What the discrepancy is about, e.g. ``"order 123"`` or ``"fill FILL:9"``.
    subject: str = attrs.field(converter=_truncate)
    detail: str = attrs.field(converter=_truncate)
    expected: str | None = attrs.field(default=None, converter=_truncate_optional)
    seen: str | None = attrs.field(default=None, converter=_truncate_optional)
    severity: Severity = attrs.field(default=Severity.WARNING, validator=v.instance_of(Severity))


@attrs.frozen(kw_only=True)
class CycleSummary(Event):
    """The summary of one reconciliation pass against the source of truth."""

    #: Why the pass ran: ``"connect"``, ``"periodic"``, ``"gap"``, ``"silence"``, ...
    reason: str
    started_at: int
    duration_ms: int
    orders_seen: int
    positions_seen: int
    fills_seen: int
    #: Fills this pass recorded that the stream had not delivered.
    fills_recovered: int
    busts_seen: int
    orders_resolved: int
    discrepancies: int
    #: Whether the pass finished; a failed pass is retried.
    ok: bool


class Need:
    """Base class of the requests the reconciler makes to the I/O layer."""

    __slots__ = ()


@attrs.frozen(kw_only=True)
class ResolveOrder(Need):
    """Fetch this order by id from the source of truth and merge the answer.

    Emitted when a locally live order is absent from a complete open-orders
    snapshot, when a fill names an order never seen, and again for orders in
    ``UNKNOWN`` (the runtime retries with backoff).
    """

    order_id: str
    client_id: str | None = None


@attrs.frozen(kw_only=True)
class BackfillFills(Need):
    """Read fills from the source of truth from ``since`` (venue ms) on.

    ``order_id`` / ``instrument`` say what gap triggered the backfill; the
    runtime may read all fills since ``since`` anyway (filters are hints).
    """

    since: int
    order_id: str | None = None
    instrument: str | None = None
    reason: str = ""


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page of a paginated read: parsed items, plus rows that failed to parse.

    A malformed row never hides the rest of the page: it becomes a
    :class:`Discrepancy` in ``problems``.
    """

    items: tuple[T, ...]
    problems: tuple[Discrepancy, ...] = ()
