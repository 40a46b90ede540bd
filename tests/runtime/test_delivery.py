"""Delivery to the consumer: durability before delivery, the acknowledgement rule, redelivery, backpressure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from decimal import Decimal

import anyio
import anyio.lowlevel
import pytest

from reconcile_core import (
    Event,
    Fill,
    FillBusted,
    FillKey,
    FillKind,
    FillRecorded,
    Liquidity,
    MemoryLedger,
    Order,
    OrderUpdated,
    Side,
    Source,
)
from reconcile_core.runtime import Session
from reconcile_core.testing import FakeVenue, FaultySource

from ._support import Collector, fast

pytestmark = pytest.mark.anyio


class _SpyLedger(MemoryLedger):
    """A MemoryLedger that knows which offsets are recorded but not yet committed."""

    def __init__(self) -> None:
        super().__init__()
        self.uncommitted: set[int] = set()
        self.commits = 0

    def record(self, fill: Fill):
        result = super().record(fill)
        if result.offset is not None:
            self.uncommitted.add(result.offset)
        return result

    def bust(self, bust):
        result = super().bust(bust)
        if result.offset is not None:
            self.uncommitted.add(result.offset)
        return result

    def commit(self) -> None:
        self.uncommitted.clear()
        self.commits += 1


class _CheckingSend:
    """Wraps the channel's send stream: every fill or bust must be committed when it enters."""

    def __init__(self, inner, ledger: _SpyLedger) -> None:
        self.inner = inner
        self.ledger = ledger
        self.checked = 0

    def _check(self, event: Event) -> None:
        if isinstance(event, FillRecorded | FillBusted):
            assert event.offset not in self.ledger.uncommitted, "delivered before commit"
            self.checked += 1

    async def send(self, event: Event) -> None:
        self._check(event)
        await self.inner.send(event)

    def send_nowait(self, event: Event) -> None:
        self.inner.send_nowait(event)  # raises WouldBlock when full: then send() is called
        self._check(event)

    def close(self) -> None:
        self.inner.close()

    def statistics(self):
        return self.inner.statistics()


def _liquidation(venue: str, account: str, number: int) -> Fill:
    return Fill(
        key=FillKey(venue=venue, account=account, fill_type="LIQUIDATION", fill_id=f"x{number}"),
        kind=FillKind.LIQUIDATION,
        order_id=None,
        instrument="BTC-PERP",
        side=Side.SELL,
        price=Decimal(100),
        size=Decimal(1),
        fee=Decimal(0),
        fee_currency="USD",
        liquidity=Liquidity.TAKER,
        time=1_700_000_000_000 + number,
        source=Source.WS,
    )


def _offsets(ledger: MemoryLedger, account: str = "main", venue: str = "fake") -> set[int]:
    return {d.offset for d in ledger.undelivered(venue=venue, account=account, limit=100_000)}


def _fills(events: Iterable[Event]) -> list[FillRecorded]:
    return [e for e in events if isinstance(e, FillRecorded)]


class TestDurability:
    """A fill is committed to the ledger before any event of its batch enters the channel."""

    async def test_fills_are_committed_before_they_enter_the_channel(self) -> None:
        venue = FakeVenue(seed=1)
        for _ in range(60):
            venue.step()
        source = FaultySource(venue, faults=_faults(duplicate=0.3, reorder=0.3))
        ledger = _SpyLedger()
        session = Session(source, ledger, config=fast())
        send, receive = session._channel._open()
        checking = _CheckingSend(send, ledger)
        session._channel._streams = (checking, receive)
        async with session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await collector.wait_summary("connect")
            for _ in range(60):
                venue.step()
            await session.reconcile_now()
            tg.cancel_scope.cancel()
        assert checking.checked == len(_fills(collector.events)) + len(collector.of(FillBusted))
        assert checking.checked > 20

    async def test_a_batch_whose_commit_fails_is_never_delivered(self) -> None:
        from reconcile_core.errors import LedgerWriteError

        class FailingLedger(MemoryLedger):
            failing = False

            def commit(self) -> None:
                if self.failing:
                    msg = "disk full"
                    raise LedgerWriteError(msg, path="ledger.db")

        venue = FakeVenue(seed=2)
        source = FaultySource(venue)
        ledger = FailingLedger()
        session = Session(source, ledger, config=fast())
        send, _ = session._channel._open()
        taken: list[Event] = []

        async def scenario() -> None:
            async with session:
                await session.wait_synced()
                ledger.failing = True
                source.inject(_liquidation("fake", "main", 1))
                taken.extend([event async for event in session.events()])

        with pytest.raises(LedgerWriteError):
            await scenario()
        assert _fills(taken) == []
        assert send.statistics().current_buffer_used == 0


def _one_live_order() -> tuple[FakeVenue, FaultySource, MemoryLedger, Order]:
    """A venue with one live order of ``main``, its source, a fresh ledger, and the order."""
    venue = FakeVenue(seed=7)
    return venue, FaultySource(venue), MemoryLedger(), venue.place("main")


class TestAcknowledgement:
    """The acknowledgement rule, exactly as the Session docstring states it."""

    # "Asking for the next event" is asking any iterator: after a break, a new loop's first ask
    # finishes the fill the first loop handled (it stayed unacknowledged for good).
    @pytest.mark.parametrize("new_loop", [False, True], ids=["same-loop", "new-loop-after-break"])
    async def test_a_fill_is_acknowledged_when_the_consumer_asks_for_the_next_event(self, new_loop: bool) -> None:
        venue = FakeVenue(seed=3)
        source = FaultySource(venue)
        ledger = MemoryLedger()
        async with Session(source, ledger, config=fast(ack_batch=1)) as session:
            await session.wait_synced()
            for number in range(3):
                source.inject(_liquidation("fake", "main", number))
            await session.wait_health(lambda h: h.fills_from_stream == 3)
            events = session.events()
            first = await _next_fill(events)
            assert first.offset in _offsets(ledger)  # being handled: not acknowledged yet
            assert session.health().unacknowledged == 1
            second = await _next_fill(session.events() if new_loop else events)
            assert first.offset not in _offsets(ledger)  # the consumer asked for the next one
            assert second.offset in _offsets(ledger)
            assert session.health().unacknowledged == 1
        # Closed normally after the consumer took the second: acknowledged too.
        assert second.offset not in _offsets(ledger)
        # The third was never taken: it stays in the outbox for the next session.
        assert len(_offsets(ledger)) == 1

    async def test_acknowledgements_are_written_in_batches(self) -> None:
        venue = FakeVenue(seed=4)
        source = FaultySource(venue)
        ledger = _SpyLedger()
        async with Session(source, ledger, config=fast(ack_batch=1000, event_buffer=100)) as session:
            await session.wait_synced()
            for number in range(20):
                source.inject(_liquidation("fake", "main", number))
            # The connect summary and the twenty fills, all in the channel.
            await session.wait_health(lambda h: h.events_buffered == 21)
            events = session.events()
            taken = [await _next_fill(events) for _ in range(10)]
            # Ten taken while more are buffered: nine acknowledged in memory, none written yet.
            assert {f.offset for f in taken} <= _offsets(ledger)
            assert session.health().unacknowledged == 1
            for _ in range(10):
                await _next_fill(events)
            assert len(_offsets(ledger)) == 20
            # The consumer caught up: asking for the next event acknowledges the last one and,
            # finding the channel empty, writes them all (before it waits, hence the cancelled scope).
            commits = ledger.commits
            with anyio.CancelScope() as scope:
                scope.cancel()
                await events.__anext__()
            assert _offsets(ledger) == set()
            assert ledger.commits == commits + 1

    async def test_the_event_being_handled_when_the_block_raises_is_redelivered(self) -> None:
        venue = FakeVenue(seed=5)
        source = FaultySource(venue)
        ledger = MemoryLedger()
        handled: list[FillRecorded] = []

        async def crashing_consumer() -> None:
            async with Session(source, ledger, config=fast(ack_batch=1)) as session:
                await session.wait_synced()
                for number in range(3):
                    source.inject(_liquidation("fake", "main", number))
                await session.wait_health(lambda h: h.fills_from_stream == 3)
                async for event in session.events():
                    if isinstance(event, FillRecorded):
                        if len(handled) == 1:
                            raise RuntimeError("the consumer crashed on its second fill")
                        handled.append(event)

        with pytest.raises(RuntimeError):
            await crashing_consumer()
        pending = _offsets(ledger)
        assert handled[0].offset not in pending
        assert len(pending) == 2  # the one being handled, and the one never taken

        # The next session delivers them first, marked, and nothing else again.
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await collector.wait_summary("connect")
            fills = _fills(collector.events)
            assert [f.offset for f in fills] == sorted(pending)
            assert all(f.redelivery for f in fills)
            assert collector.events[0] is fills[0]  # before anything else
            assert handled[0].fill.key not in {f.fill.key for f in fills}
            tg.cancel_scope.cancel()
        assert _offsets(ledger) == set()

    async def test_manual_acknowledgement(self) -> None:
        venue = FakeVenue(seed=6)
        source = FaultySource(venue)
        ledger = MemoryLedger()
        async with Session(source, ledger, config=fast(auto_ack=False)) as session:
            await session.wait_synced()
            for number in range(3):
                source.inject(_liquidation("fake", "main", number))
            events = session.events()
            fills = [await _next_fill(events) for _ in range(3)]
            assert {f.offset for f in fills} == _offsets(ledger)  # asking for more acknowledges nothing
            session.acknowledge(fills[1])
            session.acknowledge(fills[1])  # twice is harmless
            assert session.health().unacknowledged == 2
        # Closing normally does not acknowledge for a manual consumer.
        assert _offsets(ledger) == {fills[0].offset, fills[2].offset}

    async def test_an_ended_order_leaves_the_ledger_once_its_final_state_was_handled(self) -> None:
        venue, source, ledger, placed = _one_live_order()
        live = {"venue": venue.name, "account": "main"}
        async with Session(source, ledger, config=fast(ack_batch=1000)) as session:
            await session.wait_synced()
            assert [r.order_id for r in ledger.live_orders(**live)] == [placed.order_id]
            venue.cancel(placed.order_id)
            await session.reconcile_now()
            events = session.events()
            final = await _next_order(events, placed.order_id)
            assert not final.order.is_live
            assert [r.order_id for r in ledger.live_orders(**live)] == [placed.order_id]  # being handled
            await _catch_up(events)  # handled, and noted when the consumer caught up
            assert ledger.live_orders(**live) == []

    async def test_for_a_manual_consumer_an_ended_order_is_handled_when_taken(self) -> None:
        venue, source, ledger, placed = _one_live_order()
        live = {"venue": venue.name, "account": "main"}
        async with Session(source, ledger, config=fast(auto_ack=False, ack_batch=1)) as session:
            await session.wait_synced()
            venue.cancel(placed.order_id)
            await session.reconcile_now()
            events = session.events()
            await _next_order(events, placed.order_id)  # acknowledging is for fills: taken is handled
            assert [r.order_id for r in ledger.live_orders(**live)] == [placed.order_id]  # at the next flush
            await _catch_up(events)
            assert ledger.live_orders(**live) == []

    async def test_redelivery_comes_first_and_in_offset_order(self) -> None:
        venue = FakeVenue(seed=7)
        for _ in range(40):
            venue.step()
        source = FaultySource(venue)
        ledger = MemoryLedger()
        # A previous process recorded these fills and crashed before delivering them.
        for fill in venue.fills()[:5]:
            ledger.record(fill)
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await collector.wait_summary("connect")
            fills = _fills(collector.events)
            assert [f.fill for f in fills[:5]] == list(venue.fills()[:5])
            assert [f.redelivery for f in collector.events[:5]] == [True] * 5
            assert not any(f.redelivery for f in fills[5:])
            assert len({f.fill.key for f in fills}) == len(fills)  # REST saw them again: not redelivered
            tg.cancel_scope.cancel()


async def _next_order(events: AsyncIterator[Event], order_id: str) -> OrderUpdated:
    """The next ``OrderUpdated`` of ``order_id`` that shows a final state."""
    with anyio.fail_after(10):
        async for event in events:
            if isinstance(event, OrderUpdated) and event.order.order_id == order_id and not event.order.is_live:
                return event
    msg = "the events ended first"
    raise AssertionError(msg)


async def _catch_up(events: AsyncIterator[Event]) -> None:
    """Take events until the channel is empty (the consumer caught up); the last ask is cancelled."""
    while True:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await events.__anext__()
        if scope.cancelled_caught:
            return


class TestBackpressure:
    """A slow consumer slows ingestion; memory stays within the channel bound."""

    async def test_a_slow_consumer_never_raises_memory_above_the_channel_bound(self) -> None:
        venue = FakeVenue(seed=8)
        source = FaultySource(venue)
        ledger = MemoryLedger()
        config = fast(event_buffer=4, hint_buffer=2)
        flood = 300
        # Hints taken from the source = delivered + in the channel + a batch being sent
        # + the hint buffer + the one the reader holds.
        slack = config.event_buffer + 2 * config.hint_buffer + 1
        async with Session(source, ledger, config=config) as session:
            await session.wait_synced()
            for number in range(flood):
                source.inject(_liquidation("fake", "main", number))
            consumed = 0
            async for event in session.events():
                if isinstance(event, FillRecorded):
                    consumed += 1
                # Give the session every chance to run ahead of this slow consumer.
                for _ in range(50):
                    await anyio.lowlevel.checkpoint()
                health = session.health()
                assert health.events_buffered <= config.event_buffer
                assert session._channel._send.statistics().max_buffer_size == config.event_buffer
                assert source.hints_delivered <= consumed + slack
                assert source.backlog >= flood - consumed - slack
                if consumed == flood:
                    break
            assert consumed == flood


async def _next_fill(events: object) -> FillRecorded:
    with anyio.fail_after(5):
        while True:
            event = await events.__anext__()
            if isinstance(event, FillRecorded):
                return event


def _faults(**probabilities: float):
    from reconcile_core.testing import Faults

    return Faults(**probabilities)


class TestMergeGate:
    """One batch: observations merged as runs, everything delivered in the order it came."""

    async def test_a_foreign_observation_is_rejected_in_place_and_the_rest_merges(self) -> None:
        from reconcile_core import AccountReconciler, Discrepancy, DiscrepancyKind
        from reconcile_core.runtime._delivery import EventChannel, MergeGate

        ledger = MemoryLedger()
        channel = EventChannel(ledger=ledger, size=100, auto_ack=False, ack_batch=10)
        gate = MergeGate(
            reconciler=AccountReconciler(venue="fake", account="main", ledger=ledger),
            ledger=ledger,
            channel=channel,
            on_change=lambda: None,
        )
        note = Discrepancy(kind=DiscrepancyKind.MALFORMED_MESSAGE, subject="row", detail="bad row")
        batch = [
            _liquidation("fake", "main", 1),
            _liquidation("fake", "other", 2),  # another account's: rejected, not merged
            note,
            _liquidation("fake", "main", 3),
            "not an observation",
        ]
        await gate.merge(batch)
        channel.close_sending()
        got = [event async for event in channel.iterate()]
        channel.close(acknowledge_taken=False)
        assert [type(e).__name__ for e in got] == [
            "FillRecorded",
            "Discrepancy",
            "Discrepancy",
            "FillRecorded",
            "Discrepancy",
        ]
        assert [e.fill.key.fill_id for e in _fills(got)] == ["x1", "x3"]
        rejected = got[1]
        assert isinstance(rejected, Discrepancy)
        assert "rejected and skipped" in rejected.detail
        assert "does not belong" in rejected.detail
        assert got[2] is note
        assert ledger.count() == 2
        assert gate.discrepancies[DiscrepancyKind.MALFORMED_MESSAGE] == 3
