"""The runtime on the durable SQLite ledger: restarts, redelivery, and accounts sharing one file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import pytest

from reconcile_core import (
    CycleSummary,
    DiscrepancyKind,
    FillRecorded,
    MemoryLedger,
    OrderRef,
    OrderStatus,
    OrderUpdated,
)
from reconcile_core.errors import TransportError, UsageError
from reconcile_core.runtime import Session
from reconcile_core.sqlite import SqliteLedger
from reconcile_core.testing import FakeVenue, FaultySource
from reconcile_paradex import ParadexSource
from reconcile_paradex.testing import ParadexSimulator

from ._support import (
    Collector,
    assert_delivered_exactly_once,
    assert_ledger_matches,
    assert_orders_match,
    assert_positions_match,
    fast,
    simulated_source,
)

pytestmark = pytest.mark.anyio


class TestRestart:
    """Acknowledged fills are never delivered again; unacknowledged ones are, marked, after a restart."""

    async def test_a_crashed_consumer_gets_exactly_the_unacknowledged_fills_again(self, tmp_path: Path) -> None:
        path = tmp_path / "ledger.db"
        venue = FakeVenue(seed=1)
        for _ in range(80):
            venue.step()
        source = FaultySource(venue)
        handled: list[FillRecorded] = []

        async def first_process() -> None:
            with SqliteLedger(path) as ledger:
                async with Session(source, ledger, config=fast(ack_batch=1)) as session:
                    await session.wait_synced()
                    async for event in session.events():
                        if isinstance(event, FillRecorded):
                            if len(handled) == 3:
                                raise RuntimeError("the consumer crashed")
                            handled.append(event)

        with pytest.raises(RuntimeError):
            await first_process()
        first_watermark = venue.now

        for _ in range(40):
            venue.step()
        redelivered: list[FillRecorded] = []
        with SqliteLedger(path) as ledger:
            assert ledger.watermark(venue=venue.name, account="main") == first_watermark
            async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
                collector = Collector(session)
                await tg.start(collector.run)
                await collector.wait_summary("connect")
                redelivered = [e for e in collector.of(FillRecorded) if e.redelivery]
                fresh = [e for e in collector.of(FillRecorded) if not e.redelivery]
                # The three handled fills are never seen again; the rest come back first, in order.
                handled_keys = {e.fill.key for e in handled}
                assert not handled_keys & {e.fill.key for e in collector.of(FillRecorded)}
                assert collector.events[: len(redelivered)] == redelivered
                assert [e.offset for e in redelivered] == sorted(e.offset for e in redelivered)
                # Across both processes: each unbusted fill exactly once.
                every = handled + redelivered + fresh
                counts = {key: sum(1 for e in every if e.fill.key == key) for key in {e.fill.key for e in every}}
                busted = {b.fill_id for b in venue.busts()}
                for fill in venue.fills():
                    if fill.key.fill_id not in busted:
                        assert counts.get(fill.key) == 1, fill.key
                assert_orders_match(session, venue)
                assert_ledger_matches(ledger, venue)
                tg.cancel_scope.cancel()
            assert ledger.undelivered(venue=venue.name, account="main") == []
        assert redelivered

    async def test_a_session_stopped_by_cancellation_keeps_the_acknowledgements_already_made(
        self, tmp_path: Path
    ) -> None:
        # run() runs "until close() (or cancellation)": a shutdown that cancels it must not lose
        # the acknowledgements still waiting for their batch, or those fills come again.
        venue = FakeVenue(seed=1)
        for _ in range(20):
            venue.fill(venue.place(quantity=Decimal(1)).order_id)
        source = FaultySource(venue)
        handled: list[FillRecorded] = []
        with SqliteLedger(tmp_path / "ledger.db") as ledger:
            session = Session(source, ledger, config=fast(ack_batch=256))
            async with anyio.create_task_group() as group:
                await group.start(session.run)
                async for event in session.events():
                    if isinstance(event, FillRecorded):
                        handled.append(event)
                        if len(handled) == 10:  # nine handled, the tenth in hand
                            group.cancel_scope.cancel()
                            break
            assert len(handled) == 10
            async with Session(source, ledger, config=fast()) as again, anyio.create_task_group() as group:
                collector = Collector(again)
                await group.start(collector.run)
                await collector.wait_summary("connect")
                redelivered = {e.fill.key for e in collector.of(FillRecorded) if e.redelivery}
                group.cancel_scope.cancel()
        assert not redelivered & {e.fill.key for e in handled[:9]}
        assert handled[9].fill.key in redelivered  # the one in hand was not handled: it comes again
        assert len(redelivered) == 11

    async def test_a_session_whose_ledger_was_closed_first_still_stops_cleanly(self, tmp_path: Path) -> None:
        # Shutdown in the wrong order: the owner closes the ledger, then cancels the session. The
        # acknowledgements cannot be written, but the session ends, and close() returns.
        venue = FakeVenue(seed=1)
        venue.fill(venue.place(quantity=Decimal(1)).order_id)
        source = FaultySource(venue)
        ledger = SqliteLedger(tmp_path / "ledger.db")
        session = Session(source, ledger, config=fast(ack_batch=256))
        async with anyio.create_task_group() as group:
            await group.start(session.run)
            await session.wait_synced()
            events = session.events()
            while not isinstance(await events.__anext__(), FillRecorded):
                pass
            await events.__anext__()  # the fill is handled: its acknowledgement waits for its batch
            ledger.close()
            group.cancel_scope.cancel()
        with anyio.fail_after(5):
            await session.close()
        with SqliteLedger(tmp_path / "ledger.db") as reopened:
            async with Session(source, reopened, config=fast()) as again:  # not still "running"
                await again.wait_synced()


class TestManySessions:
    """Several accounts in one process share one SqliteLedger."""

    async def test_a_second_session_of_one_account_on_one_ledger_is_refused(self, tmp_path: Path) -> None:
        # Both would deliver the ledger's unacknowledged fills (and the stream's): each twice.
        venue = FakeVenue(seed=1, accounts=("main", "other"))
        source = FaultySource(venue, "main")
        with SqliteLedger(tmp_path / "ledger.db") as ledger:
            async with Session(source, ledger, config=fast()):
                with pytest.raises(UsageError, match="another session of fake:main is running on this ledger"):
                    async with Session(source, ledger, config=fast()):
                        pass
                async with Session(FaultySource(venue, "other"), ledger, config=fast()):
                    pass  # another account on the same ledger is fine
            async with Session(source, ledger, config=fast()) as again:  # the first one closed
                await again.wait_synced()

    async def test_two_accounts_on_one_ledger_file(self, tmp_path: Path) -> None:
        venue = FakeVenue(seed=2, accounts=("alice", "bob"))
        for _ in range(60):
            venue.step()
        sources = {name: FaultySource(venue, name, seed=index) for index, name in enumerate(venue.accounts)}
        with SqliteLedger(tmp_path / "shared.db") as ledger:
            async with (
                Session(sources["alice"], ledger, config=fast()) as alice,
                Session(sources["bob"], ledger, config=fast()) as bob,
                anyio.create_task_group() as tg,
            ):
                collectors = {"alice": Collector(alice), "bob": Collector(bob)}
                for collector in collectors.values():
                    await tg.start(collector.run)
                await alice.wait_synced()
                await bob.wait_synced()
                for _ in range(60):
                    venue.step()
                sources["bob"].disconnect()
                summaries = {"alice": await alice.reconcile_now(), "bob": await bob.reconcile_now()}
                for name, session in (("alice", alice), ("bob", bob)):
                    await collectors[name].wait_for(lambda events, s=summaries[name]: any(e is s for e in events))
                    assert_orders_match(session, venue, name)
                    assert_positions_match(session, venue, name)
                    assert_ledger_matches(ledger, venue, name)
                    assert_delivered_exactly_once(collectors[name], venue, name)
                    assert ledger.watermark(venue=venue.name, account=name) is not None
                tg.cancel_scope.cancel()
            for name in venue.accounts:
                assert ledger.count(venue=venue.name, account=name) == len(venue.fills(name))


class TestLiveOrdersAcrossRestarts:
    """An order live when one process stopped, and ended before the next started, is reported by the next."""

    async def test_an_order_canceled_while_no_process_watched_is_reported(self, tmp_path: Path) -> None:
        sim = ParadexSimulator(seed=5)
        account = sim.accounts[0]
        market = sim.markets[0]
        placed = sim.venue.place_order(
            account, market=market.symbol, side="BUY", size=market.size_increment * 10, price=Decimal(1), client_id="k1"
        )
        # Older than any watermark below, overlap included: /orders-history, which filters
        # on created_at, will not list it again from there.
        sim.advance(600_000)
        path = tmp_path / "ledger.db"
        requests: list[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            requests.append(request)

        async with sim, httpx.AsyncClient(transport=sim.http_transport(), event_hooks={"request": [record]}) as client:

            def source() -> ParadexSource:
                return simulated_source(sim, client)

            async def one_process() -> list[OrderUpdated]:
                with SqliteLedger(path) as ledger:
                    async with (
                        source() as src,
                        Session(src, ledger, config=fast()) as session,
                        anyio.create_task_group() as tg,
                    ):
                        collector = Collector(session)
                        await tg.start(collector.run)
                        await collector.wait_summary("connect")
                        tg.cancel_scope.cancel()
                return [e for e in collector.of(OrderUpdated) if e.order.order_id == placed.id]

            first = await one_process()
            assert [u.order.status for u in first] == [OrderStatus.NEW]
            with SqliteLedger(path) as ledger:
                noted = ledger.live_orders(venue="paradex", account=account)
            assert noted == [
                OrderRef(order_id=placed.id, client_id="k1", instrument=market.symbol, created_at=placed.created_at)
            ]

            sim.venue.cancel_order(placed.id)
            sim.advance(600_000)
            requests.clear()
            second = await one_process()
            assert [(u.order.status, u.previous) for u in second] == [(OrderStatus.CANCELED, None)]
            # Read back with the order history, from the carried order's creation: no lookup by id.
            paths = [r.url.path for r in requests]
            assert f"/v1/orders/{placed.id}" not in paths
            starts = [int(r.url.params["start_at"]) for r in requests if r.url.path == "/v1/orders-history"]
            assert min(starts) <= placed.created_at
            with SqliteLedger(path) as ledger:
                assert ledger.live_orders(venue="paradex", account=account) == []

            third = await one_process()  # nothing carried any more: nothing looked up again
            assert third == []

    async def test_a_final_state_the_consumer_never_handled_is_reported_by_the_next_process(
        self, tmp_path: Path
    ) -> None:
        sim = ParadexSimulator(seed=5)
        account, market = sim.accounts[0], sim.markets[0]
        placed = sim.venue.place_order(
            account, market=market.symbol, side="BUY", size=market.size_increment * 10, price=Decimal(1)
        )
        sim.advance(600_000)  # older than the order history any later pass reads
        path = tmp_path / "ledger.db"
        handled: list[OrderUpdated] = []
        async with sim, httpx.AsyncClient(transport=sim.http_transport()) as client:

            def source() -> ParadexSource:
                return simulated_source(sim, client)

            async def read_until_connected(session: Session) -> None:
                async for event in session.events():
                    if isinstance(event, OrderUpdated) and event.order.order_id == placed.id:
                        handled.append(event)
                    if isinstance(event, CycleSummary) and event.reason == "connect":
                        return

            async def first_process(ledger: SqliteLedger) -> None:
                """Merges the cancel, but dies before its consumer takes it."""
                async with source() as src, Session(src, ledger, config=fast()) as session:
                    await read_until_connected(session)
                    sim.venue.cancel_order(placed.id)
                    with anyio.fail_after(10):
                        await session.reconcile_now()
                    assert session.orders[placed.id].status is OrderStatus.CANCELED
                    assert ledger.live_orders(venue="paradex", account=account) != []  # not handled yet
                    raise RuntimeError("the process died")

            with SqliteLedger(path) as ledger, pytest.raises(RuntimeError, match="died"):
                await first_process(ledger)
            assert [e.order.status for e in handled] == [OrderStatus.NEW]

            with SqliteLedger(path) as ledger:
                async with source() as src, Session(src, ledger, config=fast()) as session:
                    await read_until_connected(session)
                assert ledger.live_orders(venue="paradex", account=account) == []  # handled, then noted
            assert [(e.order.status, e.previous) for e in handled[1:]] == [(OrderStatus.CANCELED, None)]


class TestCarriedOrdersCost:
    """What an earlier process left live costs a bounded amount, once; one the venue does not know ends."""

    async def test_the_read_back_is_tried_once_and_its_failure_does_not_fail_the_pass(self) -> None:
        venue = FakeVenue(seed=11)
        source = FaultySource(venue)
        ledger = MemoryLedger()
        watermark = venue.now
        ledger.advance_watermark(venue=venue.name, account="main", value=watermark)
        ghost = OrderRef(order_id="ghost", client_id=None, instrument="BTC-PERP", created_at=watermark - 10**6)
        ledger.note_orders(venue=venue.name, account="main", live=[ghost], ended=[])
        reads: list[int] = []

        def before_rest(method: str) -> None:
            if method == "order_history":
                reads.append(0)
                if len(reads) == 2:  # the read back from the ghost's creation
                    raise TransportError("the long read failed (scripted)")

        source.before_rest = before_rest
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            summary = await collector.wait_summary("connect")
            assert summary.ok  # the pass went on without it
            assert [d.subject for d in collector.discrepancies(DiscrepancyKind.SOURCE_ERROR)] == [
                "source order_history"
            ]
            assert len(reads) == 2
            # The venue does not know the ghost: reported, counted as unknown, and forgotten by the ledger.
            unknown = collector.discrepancies(DiscrepancyKind.ORDER_UNKNOWN)
            assert [d.subject for d in unknown] == ["order ghost"]
            assert session.health().unknown_orders == 1
            assert ledger.live_orders(venue=venue.name, account="main") == []
            await session.reconcile_now()
            assert len(reads) == 3  # no second read back
            tg.cancel_scope.cancel()
