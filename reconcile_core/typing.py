"""The protocols that connect the pieces: ``StateSource``, ``FillLedger``, ``Reconciler``.

Like :mod:`typing`, this module holds only types. A venue plugin implements
:class:`StateSource` (and exposes a :class:`VenuePlugin` through an entry
point); a storage backend implements :class:`FillLedger`;
:class:`reconcile_core.AccountReconciler` implements :class:`Reconciler`.
``reconcile_core.testing`` has contract test suites for each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Protocol, TypeAlias, runtime_checkable

from ._events import BackfillFills, Discrepancy, Event, Need, Page
from ._ledger import BustResult, Delivery, RecordResult
from ._types import (
    Fill,
    FillBust,
    FillKey,
    OpenOrdersSnapshot,
    Order,
    Position,
    PositionsSnapshot,
)

__all__ = [
    "FillLedger",
    "Hint",
    "Observation",
    "Reconciler",
    "StateSource",
    "Step",
    "VenuePlugin",
]

#: One venue-reported fact that the reconciler merges.
Observation: TypeAlias = Order | Fill | Position | FillBust

#: What a source's stream yields: observations, or a discrepancy for a
#: payload it could not parse (the stream goes on).
Hint: TypeAlias = Order | Fill | Position | FillBust | Discrepancy


class Step(Protocol):
    """Protocol: the result of one reconciler input: events out, needs out."""

    @property
    def events(self) -> Sequence[Event]: ...

    @property
    def needs(self) -> Sequence[Need]: ...


@runtime_checkable
class StateSource(Protocol):
    """Protocol: one venue account, read authoritatively (REST) and as a hint stream.

    Every method maps its transport's exceptions to :mod:`reconcile_core.errors`
    (``TransportError``, ``VenueError`` and subclasses). Reads are safe to
    retry. Observations carry their provenance (``Source.REST`` or
    ``Source.WS``).
    """

    @property
    def venue(self) -> str:
        """The venue's plugin name (its entry-point name), as used in fill keys."""
        ...

    @property
    def account(self) -> str:
        """The account identifier, as used in fill keys."""
        ...

    @property
    def settlement_lag_ms(self) -> int:
        """How long a fill may be visible on the stream before REST lists it."""
        ...

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[Hint]]:
        """Connect, authenticate and subscribe; entering returns once subscribed.

        The iterator yields hints until the connection ends, then raises
        :class:`~reconcile_core.errors.ConnectionLostError` (or another
        ``TransportError``/``AuthenticationError``). Each call opens a new
        connection.
        """
        ...

    async def open_orders(self) -> OpenOrdersSnapshot:
        """A complete snapshot of the account's live orders."""
        ...

    async def positions(self) -> PositionsSnapshot:
        """A complete snapshot of the account's positions."""
        ...

    async def order(self, order_id: str) -> Order | None:
        """One order by venue id, or ``None`` when the venue says it does not exist."""
        ...

    async def order_by_client_id(self, client_id: str) -> Order | None:
        """One order by client id, or ``None`` when the venue says it does not exist."""
        ...

    def order_history(self, *, since: int) -> AsyncIterator[Page[Order]]:
        """Orders updated at or after ``since`` (venue ms), page by page, all pages."""
        ...

    def fills(self, *, since: int, instrument: str | None = None) -> AsyncIterator[Page[Fill]]:
        """Fills at or after ``since`` (venue ms), page by page, all pages."""
        ...

    def busts(self, *, since: int) -> AsyncIterator[Page[FillBust]]:
        """Fill busts at or after ``since`` (venue ms), page by page, all pages."""
        ...

    async def server_time(self) -> int:
        """The venue's clock, ms since the epoch."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class FillLedger(Protocol):
    """Protocol: durable memory of fills, busts, the outbox and the watermark.

    * ``record`` is idempotent per :class:`~reconcile_core.FillKey`; a second
      fill under a key with different content is a ``CONFLICT`` (the first is
      kept).
    * Busts are tombstones per fill id, never undone; a fill that arrives
      after its bust is stored but never delivered.
    * Each newly recorded fill or bust gets the next delivery offset; entries
      stay in the outbox until acknowledged. ``commit`` makes everything
      recorded so far durable: the runtime delivers nothing before it.
    * The watermark only moves forward.
    * Memory use does not grow with the number of fills (``MemoryLedger``
      excepted, which is for tests).

    Optional: ``record_many(fills) -> Sequence[RecordResult]``, the results
    of ``record`` for each fill in turn, in one call. A ledger that can record
    several fills more cheaply at once offers it (both built-in ledgers do);
    the reconciler then records each run of consecutive fills with it. The
    contract tests check it against ``record`` when it is there.

    Optional, together: ``note_orders(*, venue, account, live, ended)`` and
    ``live_orders(*, venue, account) -> Sequence[OrderRef]``. The reconciler
    notes each order that becomes live (an :class:`~reconcile_core.OrderRef`)
    and each that ends (its id), as part of the transaction the next
    ``commit`` makes durable; ``live_orders`` answers the orders noted live
    and not ended since, across restarts for a durable ledger. A new
    reconciler takes them over (:meth:`AccountReconciler.carry`), so an order
    that ended while no process was watching is still looked up and reported
    (both built-in ledgers have them; a read-only ledger is given no notes).
    """

    def record(self, fill: Fill) -> RecordResult: ...

    def bust(self, bust: FillBust) -> BustResult: ...

    def get(self, key: FillKey) -> Fill | None: ...

    def is_busted(self, *, venue: str, account: str, fill_id: str) -> bool: ...

    def knows_fill_id(self, *, venue: str, account: str, fill_id: str) -> bool: ...

    def recorded_quantity(self, *, venue: str, account: str, order_id: str) -> Decimal: ...

    def count(self, *, venue: str | None = None, account: str | None = None) -> int: ...

    def watermark(self, *, venue: str, account: str, scope: str = "") -> int | None: ...

    def advance_watermark(self, *, venue: str, account: str, value: int, scope: str = "") -> int: ...

    def undelivered(self, *, venue: str, account: str, after: int = 0, limit: int = 1000) -> Sequence[Delivery]: ...

    def acknowledge(self, offsets: Iterable[int]) -> None: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


class Reconciler(Protocol):
    """Protocol: the pure merge of one account's observations (sans-IO).

    Every method returns a :class:`Step`: events for the consumer and newly
    raised needs for the I/O layer. Merging is idempotent, commutative and
    monotonic (DESIGN.md §3).
    """

    @property
    def orders(self) -> Mapping[str, Order]: ...

    @property
    def positions(self) -> Mapping[str, Position]: ...

    @property
    def needs(self) -> Sequence[Need]: ...

    def merge(self, observation: Observation) -> Step: ...

    def merge_open_orders(self, snapshot: OpenOrdersSnapshot) -> Step: ...

    def merge_positions(self, snapshot: PositionsSnapshot) -> Step: ...

    def resolve_failed(self, order_id: str, *, reason: str) -> Step: ...

    def backfill_done(self, need: BackfillFills, *, complete_up_to: int) -> Step: ...


@runtime_checkable
class VenuePlugin(Protocol):
    """Protocol: the object a venue plugin registers under ``reconcile_core.venues``."""

    @property
    def name(self) -> str:
        """The plugin's name, as users type it (``reconcile run NAME``)."""
        ...

    @property
    def description(self) -> str:
        """One line for listings."""
        ...

    def create_source(self, **options: object) -> StateSource:
        """Build a :class:`StateSource` from plugin-specific options."""
        ...
