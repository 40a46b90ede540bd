"""Delivery to the consumer: the bounded event channel, acknowledgements, and the merge gate.

Two rules live here (the ``Session`` docstring states them for users):

* **Durability.** A batch of observations is merged, the ledger is committed
  once, and only then are the batch's events put in the channel. A fill the
  consumer sees is always durable.
* **Acknowledgement.** A fill or bust the consumer took is acknowledged to
  the ledger when the consumer asks for the next event (``auto_ack``), or
  when it calls :meth:`EventChannel.acknowledge`. Acknowledgements are written
  in batches: when ``ack_batch`` are pending, whenever the consumer has caught
  up (the channel is empty and no batch is being put in it), and when the
  session closes.
* **Ended orders** are noted with the ledger (``note_ended``) by the same
  rule, once the consumer has handled the ``OrderUpdated`` that shows the
  order's final state: until then the ledger keeps the order live, so that a
  process that dies first leaves it to the next one to look up and report.
  Without ``auto_ack`` (where acknowledging is for fills and busts), taking
  the event counts as handling it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from reconcile_core._events import (
    Discrepancy,
    DiscrepancyKind,
    Event,
    FillBusted,
    FillRecorded,
    Need,
    OrderUpdated,
    Severity,
)
from reconcile_core._ledger import Delivery
from reconcile_core._reconciler import AccountReconciler, MergeStep
from reconcile_core._types import Fill, FillBust, Order, Position, Source
from reconcile_core.errors import UsageError
from reconcile_core.typing import FillLedger, Observation

__all__ = ["EventChannel", "EventIterator", "MergeGate", "Tally", "from_outbox"]

logger = logging.getLogger("reconcile_core.runtime")

_OBSERVATIONS = (Order, Fill, Position, FillBust)


def _offset(event: object) -> int | None:
    if isinstance(event, FillRecorded | FillBusted):
        return event.offset
    return None


def _ended_order(event: object) -> str | None:
    """The id of the order whose final state ``event`` shows, if it does."""
    if type(event) is OrderUpdated and event.order.status.is_terminal:
        return event.order.order_id
    return None


def from_outbox(delivery: Delivery) -> Event | None:
    """The event that redelivers one unacknowledged outbox entry."""
    if delivery.fill is not None:
        return FillRecorded(fill=delivery.fill, offset=delivery.offset, redelivery=True)
    if delivery.bust is not None:
        return FillBusted(bust=delivery.bust, fill=delivery.busted_fill, offset=delivery.offset, redelivery=True)
    return None


@attrs.define(eq=False)
class EventChannel:
    """The bounded stream of events to the consumer, and the acknowledgement bookkeeping."""

    ledger: FillLedger
    size: int
    auto_ack: bool
    ack_batch: int
    #: Called when the consumer takes an event or acknowledges one.
    on_change: Callable[[], None] = attrs.field(default=lambda: None)
    #: Notes ended orders (their ids) with the ledger, in its open transaction; ``None``: not noted.
    note_ended: Callable[[list[str]], None] | None = None
    _streams: tuple[MemoryObjectSendStream[Event], MemoryObjectReceiveStream[Event]] | None = attrs.field(
        init=False, default=None
    )
    #: Offsets the consumer took and has not acknowledged.
    _taken: set[int] = attrs.field(init=False, factory=set)
    #: Offsets acknowledged but not yet written to the ledger.
    _pending: list[int] = attrs.field(init=False, factory=list)
    #: Ended orders the consumer took and has not handled; those handled, not yet noted.
    _taken_ended: set[str] = attrs.field(init=False, factory=set)
    _ended: list[str] = attrs.field(init=False, factory=list)
    #: The offset of the fill or bust being handled, or the id of the ended order: the last
    #: event taken, by whichever iterator (a new ``events()`` loop finishes the last one's).
    _in_flight: int | str | None = attrs.field(init=False, default=None)
    _closed: bool = attrs.field(init=False, default=False)
    #: The cancel scope shielding the send in progress (see :meth:`send_all`).
    _shield: anyio.CancelScope | None = attrs.field(init=False, default=None)
    _aborted: bool = attrs.field(init=False, default=False)

    @property
    def _send(self) -> MemoryObjectSendStream[Event]:
        return self._open()[0]

    @property
    def _receive(self) -> MemoryObjectReceiveStream[Event]:
        return self._open()[1]

    def _open(self) -> tuple[MemoryObjectSendStream[Event], MemoryObjectReceiveStream[Event]]:
        # Created on first use, so a session that never runs holds no open stream.
        if self._streams is None:
            self._streams = anyio.create_memory_object_stream[Event](self.size)
        return self._streams

    @property
    def buffered(self) -> int:
        """Events waiting in the channel."""
        if self._streams is None:
            return 0
        return self._streams[0].statistics().current_buffer_used

    @property
    def sending(self) -> bool:
        """True while :meth:`send_all` is putting a batch in the channel."""
        return self._shield is not None

    @property
    def unacknowledged(self) -> int:
        """Fills and busts the consumer took and did not acknowledge yet."""
        return len(self._taken)

    async def send_all(self, events: Sequence[Event]) -> None:
        """Put ``events`` in the channel, waiting for room.

        The sends are shielded from cancellation: once a batch is committed,
        all of it reaches the channel, even when its connection drops meanwhile
        (otherwise a committed fill could go undelivered until the next
        process). :meth:`abort` lifts the shield when the session stops.
        """
        if not events:
            return
        if self._aborted:
            await anyio.lowlevel.checkpoint()
            return
        with anyio.CancelScope(shield=True) as scope:
            self._shield = scope
            send = self._send
            try:
                # One yield per batch, then none per event while there is room (a
                # yield costs more than the put): the consumer runs when the channel
                # is full. Nothing yields after the last put, so the batch is fully
                # sent (``sending`` is false) by the time the consumer runs again.
                await anyio.lowlevel.checkpoint()
                for event in events:
                    try:
                        send.send_nowait(event)
                    except anyio.WouldBlock:
                        await send.send(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            finally:
                self._shield = None
        if scope.cancelled_caught:
            # Aborted: the session is stopping; the outbox keeps what was not sent.
            await anyio.lowlevel.checkpoint()

    def abort(self) -> None:
        """Stop sending: the session is stopping. Unsent fills stay in the ledger's outbox."""
        self._aborted = True
        if self._shield is not None:
            self._shield.cancel()

    def close_sending(self) -> None:
        """No more events: the consumer's iteration ends once the channel is drained."""
        if self._streams is not None:
            self._streams[0].close()

    def close(self, *, acknowledge_taken: bool) -> None:
        """Close both ends; acknowledge taken events when the session closes normally."""
        if self._closed:
            return
        self._closed = True
        if self._streams is not None:
            self._streams[0].close()
            self._streams[1].close()
        if acknowledge_taken and self.auto_ack:
            self._pending.extend(sorted(self._taken))
            self._taken.clear()
            self._ended.extend(sorted(self._taken_ended))
            self._taken_ended.clear()
        self.flush()

    def acknowledge(self, event: Event) -> None:
        """Acknowledge one fill or bust event (other events are ignored)."""
        offset = _offset(event)
        if offset is None:
            return
        self._acknowledge_offset(offset)

    def _acknowledge_offset(self, offset: int) -> None:
        self._taken.discard(offset)
        self._pending.append(offset)
        self._flush_if_due()
        self.on_change()

    def _handled_ended(self, order_id: str) -> None:
        self._taken_ended.discard(order_id)
        if self.note_ended is None:
            return
        self._ended.append(order_id)
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        """Flush once ``ack_batch`` acknowledgements and ended orders are pending, or at once when closed."""
        if self._closed or len(self._pending) + len(self._ended) >= self.ack_batch:
            self.flush()

    def flush(self) -> None:
        """Write pending acknowledgements and ended orders to the ledger and commit."""
        if not self._pending and not self._ended:
            return
        offsets, self._pending = self._pending, []
        ended, self._ended = self._ended, []
        if offsets:
            self.ledger.acknowledge(offsets)
        if ended and self.note_ended is not None:
            self.note_ended(ended)
        self.ledger.commit()

    def iterate(self) -> EventIterator:
        """A new iterator over the channel (see :meth:`Session.events`)."""
        if self._closed:
            msg = "the session is closed; its events can no longer be read"
            raise UsageError(msg)
        return EventIterator(self)

    def _took(self, event: Event) -> int | str | None:
        """Remember a taken fill or bust (its offset) or final order state (the order id); return it."""
        offset = _offset(event)
        if offset is not None:
            self._taken.add(offset)
            return offset
        order_id = _ended_order(event)
        if order_id is None:
            return None
        if not self.auto_ack:
            # Taken counts as handled. Written at the next flush, never here: a failure
            # here would lose the event just taken.
            if self.note_ended is not None:
                self._ended.append(order_id)
            return None
        self._taken_ended.add(order_id)
        return order_id


class EventIterator:
    """Iterates the session's events; acknowledges each fill when the next event is asked for."""

    __slots__ = ("_channel",)

    def __init__(self, channel: EventChannel) -> None:
        self._channel = channel

    def __aiter__(self) -> EventIterator:
        return self

    async def __anext__(self) -> Event:
        channel = self._channel
        if channel._in_flight is not None:
            handled, channel._in_flight = channel._in_flight, None
            if channel.auto_ack:
                if type(handled) is int:
                    if handled in channel._taken:
                        channel._acknowledge_offset(handled)
                elif handled in channel._taken_ended:
                    channel._handled_ended(handled)
        receive = channel._receive
        try:
            event = receive.receive_nowait()
        except anyio.WouldBlock:
            # The consumer caught up: a good moment to write acknowledgements.
            # Not while a batch is being delivered, though: its next event is
            # on its way, and a commit per event would cost an fsync each.
            if not channel.sending:
                channel.flush()
            try:
                event = await receive.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                raise StopAsyncIteration from None
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if not channel._closed:
                channel.flush()
            raise StopAsyncIteration from None
        channel._in_flight = channel._took(event)
        channel.on_change()
        return event


@attrs.define
class Tally:
    """What one pass (or one round of needs) did, for its :class:`CycleSummary`."""

    orders_seen: int = 0
    positions_seen: int = 0
    fills_seen: int = 0
    fills_recovered: int = 0
    busts_seen: int = 0
    orders_resolved: int = 0
    discrepancies: int = 0


def _rejected(item: object, reason: str) -> Discrepancy:
    return Discrepancy(
        kind=DiscrepancyKind.MALFORMED_MESSAGE,
        subject=f"{type(item).__name__} from the source",
        detail=f"the observation was rejected and skipped: {reason}",
        severity=Severity.WARNING,
    )


def _reject_foreign(item: Observation, exc: UsageError) -> Event:
    logger.warning("rejected an observation from the source: %s", exc)
    return _rejected(item, str(exc))


@attrs.define(eq=False)
class MergeGate:
    """The one path from observations to the consumer: merge, commit, then send.

    A lock keeps merge order and delivery order the same across the hint
    merger and REST passes; holding it while the channel is full is what makes
    a slow consumer slow down ingestion.
    """

    reconciler: AccountReconciler
    ledger: FillLedger
    channel: EventChannel
    on_change: Callable[[], None]
    discrepancies: Counter[DiscrepancyKind] = attrs.field(factory=Counter)
    _lock: anyio.Lock | None = attrs.field(init=False, default=None)

    def _get_lock(self) -> anyio.Lock:
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    async def merge(self, items: Iterable[object], tally: Tally | None = None) -> tuple[Need, ...]:
        """Merge observations (and pass on discrepancies) as one batch; return new needs."""
        async with self._get_lock():
            events: list[Event] = []
            needs: list[Need] = []
            wrote = False
            run: list[Observation] = []  # consecutive observations, merged as one

            def merge_run() -> None:
                step = self.reconciler.merge_many(run, on_rejected=_reject_foreign)
                events.extend(step.events)
                needs.extend(step.needs)
                run.clear()

            for item in items:
                if isinstance(item, _OBSERVATIONS):
                    # Orders too: an order that becomes live or ends is noted in the ledger.
                    wrote = wrote or isinstance(item, Fill | FillBust | Order)
                    run.append(item)
                    continue
                if run:
                    merge_run()
                if isinstance(item, Discrepancy):
                    events.append(item)
                else:
                    events.append(_rejected(item, "not an order, fill, position, bust or discrepancy"))
            if run:
                merge_run()
            await self._deliver(events, tally, wrote=wrote)
            return tuple(needs)

    async def step(self, action: Callable[[], MergeStep], tally: Tally | None = None) -> MergeStep:
        """Run one synchronous reconciler call under the gate and deliver its events."""
        async with self._get_lock():
            result = action()
            await self._deliver(list(result.events), tally)
            return result

    async def emit(self, events: Sequence[Event], tally: Tally | None = None) -> None:
        """Deliver events that come from no merge (summaries, source errors, redeliveries)."""
        async with self._get_lock():
            await self._deliver(list(events), tally)

    async def _deliver(self, events: list[Event], tally: Tally | None, *, wrote: bool = False) -> None:
        if wrote or any(isinstance(e, FillRecorded | FillBusted | OrderUpdated) for e in events):
            # Durability rule: nothing of this batch reaches the consumer before the commit.
            # (A batch of fills that delivers nothing, duplicates say, is committed too,
            # so no ledger transaction stays open; so is one that changed orders, whose
            # notes of live and ended orders the ledger holds. With nothing written, a
            # commit costs nothing.)
            self.ledger.commit()
        if not events:
            self.on_change()  # counters (duplicates, stale observations) may have moved
            return
        for event in events:
            if isinstance(event, Discrepancy):
                self.discrepancies[event.kind] += 1
                if tally is not None:
                    tally.discrepancies += 1
            elif (
                tally is not None
                and isinstance(event, FillRecorded)
                and not event.redelivery
                and event.fill.source is Source.REST
            ):
                tally.fills_recovered += 1
        self.on_change()
        await self.channel.send_all(events)
        self.on_change()
