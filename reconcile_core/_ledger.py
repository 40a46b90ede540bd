"""Values a :class:`~reconcile_core.typing.FillLedger` returns."""

from __future__ import annotations

import enum

import attrs

from ._types import Fill, FillBust

__all__ = ["BustResult", "Delivery", "RecordOutcome", "RecordResult"]


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
