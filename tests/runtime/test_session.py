"""The live session: connect sequence, periodic and triggered passes, reconnects, containment, closing."""

from __future__ import annotations

from decimal import Decimal

import anyio
import attrs
import pytest

from reconcile_core import (
    CycleSummary,
    DiscrepancyKind,
    FillRecorded,
    MemoryLedger,
    OpenOrdersSnapshot,
    OrderStatus,
    Severity,
    Source,
)
from reconcile_core.errors import LedgerWriteError, TransportError, UsageError
from reconcile_core.runtime import ConnectionState, Session

from ._support import (
    Collector,
    assert_delivered_exactly_once,
    assert_ledger_matches,
    assert_orders_match,
    assert_positions_match,
    fast,
    make,
)

pytestmark = pytest.mark.anyio


class TestConnect:
    """The connect sequence (DESIGN.md §4): subscribe first, then one full pass, then synced."""

    async def test_reconcile_runs_on_connect_and_the_periodic_task_is_running(self) -> None:
        venue, source, ledger = make(seed=1, steps=40)
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            summary = await collector.wait_summary("connect")
            await session.wait_synced()
            health = session.health()
            assert health.state is ConnectionState.LIVE
            assert health.synced
            assert health.passes_ok == 1
            assert "periodic" in health.tasks
            assert "reader" in health.tasks
            # The REST pass found every fill (the stream had none to give: they predate it).
            assert summary.fills_recovered == len(venue.fills())
            assert health.fills_from_rest == len(venue.fills())
            assert_orders_match(session, venue)
            assert_positions_match(session, venue)
            assert_ledger_matches(ledger, venue)
            tg.cancel_scope.cancel()

    async def test_subscribe_comes_before_every_rest_read(self) -> None:
        _venue, source, ledger = make(seed=2, steps=10)
        order_of_calls: list[str] = []
        source.before_rest = order_of_calls.append
        async with Session(source, ledger, config=fast()) as session:
            await session.wait_synced()
            assert source.calls["subscribe"] == 1
            assert source.open_connections == 1
        assert order_of_calls[:3] == ["server_time", "open_orders", "positions"]
        assert {"order_history", "fills", "busts"} <= set(order_of_calls)

    async def test_a_fill_between_subscribe_and_snapshot_is_delivered_exactly_once(self) -> None:
        venue, source, ledger = make(seed=3)
        order = venue.place(quantity=Decimal(4))
        happened: list[str] = []

        def fill_during_the_pass(method: str) -> None:
            # Subscribed already; the snapshot has not been taken yet.
            if method == "open_orders" and not happened:
                happened.append(venue.fill(order.order_id, Decimal(1)).key.fill_id)

        source.before_rest = fill_during_the_pass
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await collector.wait_summary("connect")
            # Seen on the stream and by REST: once.
            await session.wait_health(lambda h: h.duplicates_suppressed >= 1)
            assert happened
            assert [e.fill.key.fill_id for e in collector.of(FillRecorded)] == happened
            assert_delivered_exactly_once(collector, venue)
            assert session.orders[order.order_id].filled_quantity == 1
            tg.cancel_scope.cancel()

    async def test_initial_watermark_and_overlap(self) -> None:
        venue, source, ledger = make(seed=4, steps=5)
        seen_since: list[int] = []
        original = source.fills

        def spy(*, since: int, instrument: str | None = None):
            seen_since.append(since)
            return original(since=since, instrument=instrument)

        source.fills = spy
        config = fast(initial_backfill_since=123, fill_overlap_ms=1_000)
        async with Session(source, ledger, config=config) as session:
            await session.wait_synced()
            first_watermark = ledger.watermark(venue=venue.name, account="main")
            assert first_watermark == venue.now - source.settlement_lag_ms
            await session.reconcile_now()
        assert seen_since[0] == 123
        assert seen_since[1] == first_watermark - 1_000


class TestDedup:
    """Each fill key reaches the consumer once, whatever the stream and REST repeat."""

    async def test_a_fill_seen_twice_is_emitted_once(self) -> None:
        venue, source, ledger = make(seed=5)
        order = venue.place(quantity=Decimal(3))
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await session.wait_synced()
            fill = venue.fill(order.order_id, Decimal(1))
            source.inject(fill)  # a second copy from the stream
            source.inject(attrs.evolve(fill, source=Source.REST))  # and a third, as REST would have it
            await session.wait_health(lambda h: h.duplicates_suppressed >= 2)
            await session.reconcile_now()  # and REST lists it again
            assert collector.fill_counts()[fill.key] == 1
            assert session.health().fills_from_stream == 1
            tg.cancel_scope.cancel()


class TestPeriodic:
    """A full pass runs every ``reconcile_interval``, and on triggers."""

    async def test_after_the_interval_reconcile_runs_again(self) -> None:
        venue, source, ledger = make(seed=6, steps=10)
        async with Session(source, ledger, config=fast(reconcile_interval=0.02)) as session:
            collector = Collector(session)
            async with anyio.create_task_group() as tg:
                await tg.start(collector.run)
                await collector.wait_summary("connect")
                fill_order = venue.place(quantity=Decimal(2))
                await collector.wait_summary("periodic", count=2)
                assert session.health().passes_ok >= 3
                assert fill_order.order_id in session.orders
                tg.cancel_scope.cancel()

    async def test_reconcile_now_runs_a_fresh_pass_and_returns_its_summary(self) -> None:
        _venue, source, ledger = make(seed=7, steps=10)
        async with Session(source, ledger, config=fast()) as session:
            await session.wait_synced()
            before = source.calls["open_orders"]
            summary = await session.reconcile_now(reason="audit")
            assert summary.reason == "audit"
            assert summary.ok
            assert source.calls["open_orders"] == before + 1

    async def test_a_gap_revealed_by_a_hint_is_served_promptly(self) -> None:
        venue, source, ledger = make(seed=8)
        order = venue.place(quantity=Decimal(5))
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await session.wait_synced()
            # The fill's own hint is lost; the order update (filled 2) reveals the gap.
            source.faults = attrs.evolve(source.faults, drop=1.0)
            fill = venue.fill(order.order_id, Decimal(2))
            source.faults = attrs.evolve(source.faults, drop=0.0)
            source.inject(venue.order(order.order_id))
            summary = await collector.wait_summary("gap")
            assert summary.fills_recovered == 1
            assert collector.fill_counts()[fill.key] == 1
            assert session.health().outstanding_needs == 0
            tg.cancel_scope.cancel()

    async def test_a_silent_stream_with_live_orders_triggers_a_pass(self) -> None:
        venue, source, ledger = make(seed=9)
        venue.place()
        config = fast(silence_timeout=0.02, trigger_min_interval=0.01)
        async with Session(source, ledger, config=config) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            summary = await collector.wait_summary("silence")
            assert summary.ok
            tg.cancel_scope.cancel()

    async def test_a_flowing_stream_defers_the_silence_pass(self) -> None:
        venue, source, ledger = make(seed=9)
        order = venue.place()
        config = fast(silence_timeout=0.1, trigger_min_interval=0.01)
        async with Session(source, ledger, config=config) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await collector.wait_summary("connect")
            for _ in range(40):  # a hint every 10 ms for 0.4 s: never 0.1 s of silence
                source.inject(venue.order(order.order_id))
                await anyio.sleep(0.01)
            assert [s for s in collector.of(CycleSummary) if s.reason == "silence"] == []
            summary = await collector.wait_summary("silence")  # and once the hints stop, it runs
            assert summary.ok
            tg.cancel_scope.cancel()


class TestReconnect:
    """Lost connections come back, and every reconnect runs the whole sequence again."""

    async def test_disconnect_cancels_the_periodic_task(self) -> None:
        _venue, source, ledger = make(seed=10, steps=5)
        config = fast(reconnect_initial=30.0, reconnect_max=30.0)  # stay disconnected
        async with Session(source, ledger, config=config) as session:
            await session.wait_synced()
            assert "periodic" in session.health().tasks
            source.disconnect()
            with anyio.fail_after(5):
                health = await session.wait_health(lambda h: h.state is ConnectionState.BACKOFF)
            assert "periodic" not in health.tasks
            assert "reader" not in health.tasks
            assert not health.synced
            assert source.open_connections == 0

    async def test_a_fill_lost_during_an_outage_is_recovered_by_the_reconnect_pass(self) -> None:
        venue, source, ledger = make(seed=11)
        order = venue.place(quantity=Decimal(3))
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await collector.wait_summary("connect")
            source.faults = attrs.evolve(source.faults, connect_error=1.0)
            source.disconnect()
            # Reconnecting fails for a while.
            await collector.wait_for(lambda _: len(collector.discrepancies(DiscrepancyKind.SOURCE_ERROR)) >= 2)
            fill = venue.fill(order.order_id, Decimal(3))  # nobody is listening
            assert collector.fill_counts()[fill.key] == 0
            source.faults = attrs.evolve(source.faults, connect_error=0.0)
            summary = await collector.wait_summary("reconnect")
            assert summary.fills_recovered == 1
            assert collector.fill_counts()[fill.key] == 1
            assert session.orders[order.order_id].status is OrderStatus.FILLED
            health = session.health()
            assert health.reconnects == 1
            assert health.fills_from_rest == 1
            assert all(e.subject == "source subscribe" for e in collector.discrepancies(DiscrepancyKind.SOURCE_ERROR))
            tg.cancel_scope.cancel()

    async def test_authentication_failures_are_retried_and_shown_in_health(self) -> None:
        _venue, source, ledger = make(seed=12)
        source.faults = attrs.evolve(source.faults, auth_error=1.0)
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            health = await session.wait_health(lambda h: h.authentication_failing)
            assert health.last_error is not None
            assert "AuthenticationError" in health.last_error
            errors = await collector.wait_for(lambda _: len(collector.discrepancies(DiscrepancyKind.SOURCE_ERROR)) >= 2)
            assert errors
            assert collector.discrepancies(DiscrepancyKind.SOURCE_ERROR)[0].severity is Severity.ERROR
            source.faults = attrs.evolve(source.faults, auth_error=0.0)
            await session.wait_synced()
            assert not session.health().authentication_failing
            tg.cancel_scope.cancel()

    async def test_a_hanging_connect_times_out_and_is_retried(self) -> None:
        _venue, source, ledger = make(seed=29, steps=5)
        source.faults = attrs.evolve(source.faults, connect_hang=1.0)
        async with (
            Session(source, ledger, config=fast(connect_timeout=0.01)) as session,
            anyio.create_task_group() as tg,
        ):
            collector = Collector(session)
            await tg.start(collector.run)
            await collector.wait_for(lambda _: len(collector.discrepancies(DiscrepancyKind.SOURCE_ERROR)) >= 2)
            [first, *_] = collector.discrepancies(DiscrepancyKind.SOURCE_ERROR)
            assert first.subject == "source subscribe"
            assert "TimeoutError: subscribing took longer than 0.01 s" in first.detail
            source.faults = attrs.evolve(source.faults, connect_hang=0.0)
            await session.wait_synced()
            tg.cancel_scope.cancel()

    async def test_state_and_dedup_survive_reconnects(self) -> None:
        venue, source, ledger = make(seed=13, steps=30)
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await collector.wait_summary("connect")
            delivered = collector.fill_counts()
            for round_ in range(3):
                source.disconnect()
                await collector.wait_summary("reconnect", count=round_ + 1)
            assert session.health().reconnects == 3
            assert collector.fill_counts() == delivered  # nothing delivered again
            assert_orders_match(session, venue)
            tg.cancel_scope.cancel()


class TestContainment:
    """Failures of the source never kill the session."""

    async def test_a_rest_failure_during_a_periodic_pass_leaves_the_session_running(self) -> None:
        _venue, source, ledger = make(seed=14, steps=10)
        async with Session(source, ledger, config=fast(reconcile_interval=0.01)) as session:
            collector = Collector(session)
            async with anyio.create_task_group() as tg:
                await tg.start(collector.run)
                await collector.wait_summary("connect")
                source.fail_next("open_orders", TransportError("connection reset"))
                failed = await collector.wait_summary(ok=False)
                assert failed.reason == "periodic"
                source.fail_next("fills", TransportError("connection reset"))  # mid-pass this time
                await collector.wait_summary(ok=False, count=2)
                retried = await collector.wait_summary("retry")
                assert retried.ok
                errors = collector.discrepancies(DiscrepancyKind.SOURCE_ERROR)
                assert [e.subject for e in errors] == ["source open_orders", "source fills"]
                health = session.health()
                assert health.passes_failed == 2
                assert health.last_error == "TransportError: connection reset"
                assert health.discrepancies[DiscrepancyKind.SOURCE_ERROR] == 2
                assert health.state is ConnectionState.LIVE
                assert "periodic" in health.tasks
                tg.cancel_scope.cancel()

    async def test_a_failing_connect_pass_is_retried_before_sync(self) -> None:
        _venue, source, ledger = make(seed=15, steps=10)
        source.fail_next("server_time")
        source.fail_next("positions")
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await collector.wait_summary("connect")
            summaries = collector.of(CycleSummary)
            assert [(s.reason, s.ok) for s in summaries] == [("connect", False), ("connect", False), ("connect", True)]
            tg.cancel_scope.cancel()

    async def test_a_hanging_request_times_out_and_is_retried(self) -> None:
        _venue, source, ledger = make(seed=16, steps=5)
        source.faults = attrs.evolve(source.faults, rest_hang=1.0)
        async with (
            Session(source, ledger, config=fast(request_timeout=0.01)) as session,
            anyio.create_task_group() as tg,
        ):
            collector = Collector(session)
            await tg.start(collector.run)
            await collector.wait_summary(ok=False)
            source.faults = attrs.evolve(source.faults, rest_hang=0.0)
            await session.wait_synced()
            error = collector.discrepancies(DiscrepancyKind.SOURCE_ERROR)[0]
            assert "TimeoutError" in error.detail
            tg.cancel_scope.cancel()

    async def test_a_malformed_hint_leaves_the_session_running(self) -> None:
        venue, source, ledger = make(seed=17)
        order = venue.place(quantity=Decimal(2))
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await session.wait_synced()
            source.faults = attrs.evolve(source.faults, malformed=1.0)
            venue.cancel(order.order_id)  # its hint arrives as garbage
            source.faults = attrs.evolve(source.faults, malformed=0.0)
            source.inject({"not": "an observation"})  # and so does this
            await collector.wait_for(lambda _: len(collector.discrepancies(DiscrepancyKind.MALFORMED_MESSAGE)) >= 2)
            fill = venue.fill(venue.place(quantity=Decimal(1)).order_id)
            await collector.wait_for(lambda _: collector.fill_counts()[fill.key] == 1)
            assert session.health().state is ConnectionState.LIVE
            await session.reconcile_now()
            assert session.orders[order.order_id].status is OrderStatus.CANCELED
            tg.cancel_scope.cancel()

    async def test_an_observation_for_another_account_is_rejected_not_fatal(self) -> None:
        venue, source, ledger = make(seed=18, accounts=("main", "other"))
        order = venue.place("other", quantity=Decimal(1))
        stray = venue.fill(order.order_id, account="other")
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await session.wait_synced()
            source.inject(stray)
            await collector.wait_for(lambda _: bool(collector.discrepancies(DiscrepancyKind.MALFORMED_MESSAGE)))
            assert session.health().state is ConnectionState.LIVE
            assert ledger.get(stray.key) is None
            tg.cancel_scope.cancel()

    async def test_an_order_the_venue_cannot_find_becomes_unknown_never_canceled(self) -> None:
        venue, source, ledger = make(seed=19)
        order = venue.place(quantity=Decimal(1))
        async with Session(source, ledger, config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await session.wait_synced()
            # The venue stops accounting for the order: absent from every read.
            answers = {
                "open_orders": source.open_orders,
                "order_history": source.order_history,
                "order": source.order,
                "order_by_client_id": source.order_by_client_id,
            }

            async def no_open_orders():
                return OpenOrdersSnapshot(orders=())

            async def not_found(_id: str):
                return None

            source.open_orders = no_open_orders
            source.order_history = lambda *, since: answers["order_history"](since=venue.now + 1)
            source.order = not_found
            source.order_by_client_id = not_found
            await session.reconcile_now()
            assert session.orders[order.order_id].status is OrderStatus.UNKNOWN
            assert session.health().unknown_orders == 1
            [unknown] = collector.discrepancies(DiscrepancyKind.ORDER_UNKNOWN)
            assert unknown.subject == f"order {order.order_id}"
            # Retried with backoff: once the venue answers, its state wins.
            for name, answer in answers.items():
                setattr(source, name, answer)
            await session.wait_health(lambda h: h.unknown_orders == 0 and h.outstanding_needs == 0)
            assert session.orders[order.order_id].status is OrderStatus.OPEN
            tg.cancel_scope.cancel()


class TestClosing:
    """Closing cancels everything; only documented exceptions cross the boundary."""

    async def test_after_close_no_task_is_left(self) -> None:
        _venue, source, ledger = make(seed=20, steps=20)
        before = len(anyio.get_running_tasks())
        session = Session(source, ledger, config=fast(reconcile_interval=0.01))
        async with session:
            await session.wait_synced()
            assert len(anyio.get_running_tasks()) > before
            assert set(session.health().tasks) == {"main", "merger", "periodic", "reader"}
        assert len(anyio.get_running_tasks()) == before
        assert session.health().tasks == ()
        assert session.health().state is ConnectionState.CLOSED
        assert source.open_connections == 0

    async def test_close_is_idempotent_and_stops_a_run_started_in_a_task_group(self) -> None:
        _venue, source, ledger = make(seed=21, steps=5)
        before = len(anyio.get_running_tasks())
        session = Session(source, ledger, config=fast())
        async with anyio.create_task_group() as tg:
            await tg.start(session.run)
            await session.wait_synced()
            await session.close()
            await session.close()
        assert len(anyio.get_running_tasks()) == before
        assert session.health().tasks == ()
        with pytest.raises(UsageError):
            await session.wait_synced()
        with pytest.raises(UsageError):
            await session.reconcile_now()
        with pytest.raises(UsageError):
            session.events()

    async def test_close_from_inside_the_block_then_exit(self) -> None:
        _venue, source, ledger = make(seed=22, steps=5)
        async with Session(source, ledger, config=fast()) as session:
            await session.wait_synced()
            await session.close()
            assert session.health().state is ConnectionState.CLOSED
        assert session.health().tasks == ()

    async def test_a_session_runs_once(self) -> None:
        _venue, source, ledger = make(seed=23)
        session = Session(source, ledger, config=fast())
        async with session:
            pass
        with pytest.raises(UsageError):
            async with session:
                pass

    async def test_the_blocks_own_exception_propagates_unwrapped(self) -> None:
        _venue, source, ledger = make(seed=24, steps=5)
        before = len(anyio.get_running_tasks())

        async def block() -> None:
            async with Session(source, ledger, config=fast()) as session:
                await session.wait_synced()
                try:
                    int("x")
                except ValueError:
                    raise KeyError("mine") from None

        with pytest.raises(KeyError) as caught:
            await block()
        assert not isinstance(caught.value, BaseExceptionGroup)
        assert isinstance(caught.value.__context__, ValueError)  # its own context, not our task group's
        assert len(anyio.get_running_tasks()) == before

    async def test_a_ledger_failure_stops_the_session_with_a_ledger_error(self) -> None:
        venue, source, _ = make(seed=25, steps=5)
        ledger = _FailingLedger()
        before = len(anyio.get_running_tasks())
        session = Session(source, ledger, config=fast())

        async def block() -> None:
            async with session:
                await session.wait_synced()
                ledger.failing = True
                venue.fill(venue.place(quantity=Decimal(1)).order_id)
                await anyio.sleep_forever()  # the session's failure cancels this block

        with pytest.raises(LedgerWriteError) as caught:
            await block()
        assert not isinstance(caught.value, BaseExceptionGroup)
        assert len(anyio.get_running_tasks()) == before
        assert session.health().state is ConnectionState.CLOSED

    async def test_outer_cancellation_stops_everything(self) -> None:
        _venue, source, ledger = make(seed=26, steps=5)
        before = len(anyio.get_running_tasks())
        with anyio.CancelScope() as scope:
            async with Session(source, ledger, config=fast(reconcile_interval=0.001)) as session:
                await session.wait_synced()
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        assert session.health().state is ConnectionState.CLOSED
        assert len(anyio.get_running_tasks()) == before


class _FailingLedger(MemoryLedger):
    failing = False

    def commit(self) -> None:
        if self.failing:
            msg = "disk full"
            raise LedgerWriteError(msg, path="ledger.db")


class TestHealth:
    """The health snapshot is frozen and complete."""

    async def test_snapshot_fields(self) -> None:
        venue, source, ledger = make(seed=27, steps=20)
        session = Session(source, ledger, config=fast())
        idle = session.health()
        assert idle.state is ConnectionState.IDLE
        assert not idle.synced
        assert idle.last_reconcile_at is None
        async with session:
            await session.wait_synced()
            health = session.health()
        assert health.venue == venue.name
        assert health.account == "main"
        assert health.last_reconcile_at == venue.now
        assert health.last_reconcile_duration_ms is not None
        assert health.passes_ok == 1
        assert health.outstanding_needs == 0
        with pytest.raises(AttributeError):
            health.synced = False
        with pytest.raises(TypeError):
            health.discrepancies[DiscrepancyKind.OVERFILL] = 1


class TestManySessions:
    """Several accounts in one process, each session independent, one shared ledger."""

    async def test_two_accounts_share_one_ledger(self) -> None:
        venue, source_a, ledger = make(seed=28, accounts=("alice", "bob"))
        source_b = type(source_a)(venue, "bob", seed=29)
        for _ in range(40):
            venue.step()
        async with (
            Session(source_a, ledger, config=fast()) as alice,
            Session(source_b, ledger, config=fast()) as bob,
            anyio.create_task_group() as tg,
        ):
            collect_a, collect_b = Collector(alice), Collector(bob)
            await tg.start(collect_a.run)
            await tg.start(collect_b.run)
            await alice.wait_synced()
            await bob.wait_synced()
            for _ in range(30):
                venue.step()
            source_a.disconnect()  # one account's trouble is not the other's
            await alice.reconcile_now()
            await bob.reconcile_now()
            for name, session, collector in (("alice", alice, collect_a), ("bob", bob, collect_b)):
                assert_orders_match(session, venue, name)
                assert_positions_match(session, venue, name)
                assert_ledger_matches(ledger, venue, name)
                await collector.wait_for(lambda _, c=collector, n=name: _all_delivered(c, venue, n))
                assert_delivered_exactly_once(collector, venue, name)
            assert alice.health().reconnects == 1
            assert bob.health().reconnects == 0
            assert ledger.watermark(venue=venue.name, account="alice") is not None
            assert ledger.watermark(venue=venue.name, account="bob") is not None
            tg.cancel_scope.cancel()


def _all_delivered(collector: Collector, venue: object, account: str) -> bool:
    from reconcile_core.testing import FakeVenue

    assert isinstance(venue, FakeVenue)
    counts = collector.fill_counts()
    busted = {b.fill_id for b in venue.busts(account)}
    return (
        all(counts[f.key] == 1 for f in venue.fills(account) if f.key.fill_id not in busted)
        and set(collector.bust_counts()) == busted
    )
