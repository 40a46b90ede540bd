"""The test doubles in ``reconcile_core.testing``: the truth model and the fault-injecting source."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import anyio
import attrs
import pytest

from reconcile_core import Discrepancy, Fill, FillBust, Order, OrderStatus, Position, Side, Source, errors
from reconcile_core.errors import (
    AuthenticationError,
    ConnectionLostError,
    TransportError,
    UsageError,
    VenueError,
)
from reconcile_core.testing import FakeVenue, Faults, FaultySource
from reconcile_core.typing import StateSource


def _history(seed: int, steps: int = 200) -> FakeVenue:
    venue = FakeVenue(seed=seed, accounts=("a", "b"))
    for _ in range(steps):
        venue.step()
    return venue


class TestFakeVenue:
    """A consistent, deterministic venue history."""

    def test_deterministic_for_a_seed(self) -> None:
        one, two = _history(5), _history(5)
        for account in ("a", "b"):
            assert one.orders(account) == two.orders(account)
            assert one.fills(account) == two.fills(account)
            assert one.positions(account) == two.positions(account)
        assert _history(6).fills("a") != one.fills("a")

    def test_the_history_is_consistent(self) -> None:
        venue = _history(7, steps=400)
        actions = Counter(venue.step() for _ in range(200))
        assert set(actions) >= {"place", "fill", "cancel", "modify", "reject", "liquidate", "bust", "advance"}
        for account in venue.accounts:
            fills = venue.fills(account)
            for order in venue.orders(account).values():
                mine = [f for f in fills if f.order_id == order.order_id]
                assert sum((f.size for f in mine), Decimal(0)) == order.filled_quantity
                assert order.filled_quantity <= order.quantity
                if order.status is OrderStatus.FILLED:
                    assert order.filled_quantity == order.quantity
            # A position is the sum of its unbusted fills, and names its last fill.
            for instrument, size in venue.position_sizes(account).items():
                live = [f for f in venue.live_fills(account) if f.instrument == instrument]
                assert sum((f.signed_size for f in live), Decimal(0)) == size
            for position in venue.positions(account):
                assert position.last_fill_id is not None
                assert position.source is Source.REST

    def test_every_change_is_published_as_a_stream_hint(self) -> None:
        venue = FakeVenue(seed=1)
        heard: list[tuple[str, object]] = []
        stop = venue.listen(lambda account, hint: heard.append((account, hint)))
        order = venue.place(quantity=Decimal(2), side=Side.BUY)
        fill = venue.fill(order.order_id, Decimal(2))
        venue.bust(fill.key.fill_id)
        stop()
        venue.place()
        kinds = [type(hint) for _, hint in heard]
        assert kinds == [Order, Order, Fill, Position, FillBust, Position]
        assert all(hint.source is Source.WS for _, hint in heard)
        assert venue.order(order.order_id).status is OrderStatus.FILLED
        assert venue.position_sizes() == {}  # the bust moved the position back

    def test_snapshots_as_of_an_earlier_time(self) -> None:
        venue = FakeVenue(seed=2)
        order = venue.place(quantity=Decimal(3))
        then = venue.now
        venue.advance(100)
        venue.fill(order.order_id, Decimal(1))
        venue.cancel(order.order_id)
        assert venue.open_orders() == ()
        assert venue.open_orders(as_of=then) == (order,)
        assert venue.positions(as_of=then) == ()

    def test_misuse_is_a_usage_error(self) -> None:
        venue = FakeVenue(seed=3)
        order = venue.place(quantity=Decimal(1))
        venue.cancel(order.order_id)
        with pytest.raises(UsageError):
            venue.fill(order.order_id)
        with pytest.raises(UsageError):
            venue.advance(-1)
        with pytest.raises(UsageError):
            venue.orders("nobody")
        with pytest.raises(UsageError):
            venue.bust("f999")


@pytest.mark.anyio
class TestFaultySource:
    """A StateSource whose faults do what they say, deterministically."""

    async def test_satisfies_the_protocol(self) -> None:
        assert isinstance(FaultySource(FakeVenue()), StateSource)

    async def test_hints_flow_to_the_subscriber(self) -> None:
        venue = FakeVenue(seed=1)
        source = FaultySource(venue)
        async with source.subscribe() as hints:
            order = venue.place()
            got = await hints.__anext__()
        assert got == attrs.evolve(order, source=Source.WS)
        assert source.hints_delivered == 1
        assert source.connects == 1

    async def test_drop_duplicate_and_malformed(self) -> None:
        venue = FakeVenue(seed=1)
        source = FaultySource(venue, faults=Faults(drop=1.0))
        async with source.subscribe():
            venue.place()
            assert source.backlog == 0
            source.faults = Faults(duplicate=1.0)
            order = venue.place()
            assert source.backlog == 2
            source.faults = Faults(malformed=1.0)
            venue.place()
            assert source.backlog == 3
        source.faults = Faults(duplicate=1.0)
        async with source.subscribe() as hints:
            order = venue.place()
            first, second = await hints.__anext__(), await hints.__anext__()
            assert first == second == attrs.evolve(order, source=Source.WS)
            source.faults = Faults(malformed=1.0)
            venue.place()
            garbled = await hints.__anext__()
            assert isinstance(garbled, Discrepancy)

    async def test_reorder_and_delay(self) -> None:
        venue = FakeVenue(seed=1)
        source = FaultySource(venue, faults=Faults(reorder=1.0))
        async with source.subscribe() as hints:
            one = venue.place()
            two = venue.place()
            assert [(await hints.__anext__()).order_id for _ in range(2)] == [two.order_id, one.order_id]
            source.faults = Faults(delay=1.0, delay_ms=10)
            venue.place()
            assert source.backlog == 1
            with anyio.CancelScope() as scope:
                scope.cancel()
                await hints.__anext__()  # nothing is ready yet
            venue.advance(10)
            assert (await hints.__anext__()).order_id == "o3"

    async def test_disconnect_ends_the_stream(self) -> None:
        venue = FakeVenue(seed=1)
        source = FaultySource(venue)
        async with source.subscribe() as hints:
            venue.place()
            assert source.disconnect() == 1
            with pytest.raises(ConnectionLostError):
                await hints.__anext__()
        source.max_backlog = 2
        async with source.subscribe() as hints:
            for _ in range(3):
                venue.place()
            with pytest.raises(ConnectionLostError, match="behind"):
                await hints.__anext__()

    async def test_connect_failures(self) -> None:
        source = FaultySource(FakeVenue(), faults=Faults(auth_error=1.0))
        with pytest.raises(AuthenticationError):
            async with source.subscribe():
                pass
        source.faults = Faults(connect_error=1.0)
        with pytest.raises(TransportError):
            async with source.subscribe():
                pass
        assert source.calls["subscribe"] == 2
        assert source.connects == 0

    async def test_rest_faults(self) -> None:
        source = FaultySource(FakeVenue(), faults=Faults(rest_timeout=1.0))
        with pytest.raises(errors.TimeoutError):
            await source.open_orders()
        source.faults = Faults(rest_error=1.0)
        seen = set()
        for _ in range(20):
            with pytest.raises((TransportError, VenueError)) as caught:
                await source.server_time()
            seen.add(type(caught.value))
        assert seen == {TransportError, VenueError}
        source.faults = Faults()
        source.fail_next("positions", VenueError("scripted"))
        with pytest.raises(VenueError, match="scripted"):
            await source.positions()
        await source.positions()

    async def test_settlement_lag_and_paging(self) -> None:
        venue = FakeVenue(seed=4)
        for _ in range(60):
            venue.step()
        source = FaultySource(venue, settlement_lag_ms=1_000, page_size=3)
        assert await _all(source.fills(since=0)) == []
        venue.advance(1_000)
        pages = [page async for page in source.fills(since=0)]
        assert all(len(page.items) <= 3 for page in pages)
        assert [f for page in pages for f in page.items] == list(venue.fills())
        assert source.calls["fills"] == 1 + len(pages)
        later = venue.fills()[-1].time
        assert await _all(source.fills(since=later)) == [f for f in venue.fills() if f.time >= later]

    async def test_stale_snapshots_carry_an_honest_as_of(self) -> None:
        venue = FakeVenue(seed=5)
        venue.advance(10_000)
        order = venue.place(quantity=Decimal(2))
        venue.fill(order.order_id, Decimal(1))
        source = FaultySource(venue, faults=Faults(stale=1.0, stale_ms=5_000))
        assert (await source.open_orders()).orders == ()
        snapshot = await source.positions()
        assert snapshot.positions == ()
        assert snapshot.as_of == venue.now - 5_000

    async def test_the_same_seed_injects_the_same_faults(self) -> None:
        async def run(seed: int) -> list[object]:
            venue = FakeVenue(seed=1)
            faults = Faults(drop=0.3, duplicate=0.3, reorder=0.3, malformed=0.2)
            source = FaultySource(venue, faults=faults, seed=seed)
            out: list[object] = []
            async with source.subscribe() as hints:
                for _ in range(50):
                    venue.step()
                venue.advance(1)
                while source.backlog:
                    out.append(await hints.__anext__())
            return out

        assert await run(1) == await run(1)
        assert await run(1) != await run(2)


async def _all(pages) -> list[object]:
    return [item async for page in pages for item in page.items]
