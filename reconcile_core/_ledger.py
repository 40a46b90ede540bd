"""Values a :class:`~reconcile_core.typing.FillLedger` returns."""

from __future__ import annotations

import enum

import attrs

from ._types import Fill, FillBust, _ms, _nonempty, _optional_str

__all__ = ["BustResult", "Delivery", "OrderRef", "RecordOutcome", "RecordResult"]


class RecordOutcome(enum.Enum):
    """What :meth:`FillLedger.record` did with a fill."""

    #: First sighting of the key: stored, and given the next delivery offset.
    RECORDED = "recorded"
    #: The key was already recorded with the same content: nothing changed.
    DUPLICATE = "duplicate"
    #: The key was recorded with *different* content. The first one is kept;
    #: the new content is remembered so the same conflict reports only once.
    CONFLICT = "conflict"
    #: A bust for this fill id arrived first. The fill is stored for the
    #: record but never delivered and never counted as live.
    BUSTED = "busted"


@attrs.frozen(kw_only=True)
class RecordResult:
    """The answer of :meth:`FillLedger.record`."""

    outcome: RecordOutcome
    #: The delivery offset, for ``RECORDED`` only.
    offset: int | None = None
    #: The fill already stored under the key, for ``CONFLICT`` only.
    existing: Fill | None = None


@attrs.frozen(kw_only=True)
class BustResult:
    """The answer of :meth:`FillLedger.bust`."""

    #: False when this fill id was already busted (nothing changed).
    new: bool
    #: The delivery offset of the bust, when ``new``.
    offset: int | None = None
    #: The recorded fills the bust reverts (empty when it arrived first).
    fills: tuple[Fill, ...] = ()


@attrs.frozen(kw_only=True)
class Delivery:
    """One outbox entry: a recorded fill or a bust, with its delivery offset."""

    offset: int
    fill: Fill | None = None
    bust: FillBust | None = None
    #: For a bust: the fill it reverts, if known.
    busted_fill: Fill | None = None


@attrs.frozen(kw_only=True)
class OrderRef:
    """What a ledger keeps of a live order: enough to look it up after a restart.

    See the optional ``note_orders`` / ``live_orders`` of
    :class:`~reconcile_core.typing.FillLedger`.
    """

    order_id: str = attrs.field(validator=_nonempty)
    client_id: str | None = attrs.field(validator=_optional_str)
    instrument: str = attrs.field(validator=_nonempty)
    #: The order's creation time (venue ms): where the order history that lists it starts.
    created_at: int = attrs.field(validator=_ms)
