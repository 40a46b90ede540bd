"""The ``StateSource`` contract: behaviour tests every venue plugin's source must pass.

A plugin proves its source the way keyring backends do: subclass
:class:`StateSourceContract` in a test module and provide a ``source_case``
fixture that yields a :class:`SourceCase`: a source connected to a fake of the
venue, plus a :class:`SourceScenario` saying what that fake holds::

    from reconcile_core.testing import SourceCase, SourceScenario, StateSourceContract

    class TestMySource(StateSourceContract):
        @pytest.fixture
        async def source_case(self):
            async with my_fake_venue() as fake, MySource(...) as source:
                fake.add_fills(...)
                yield SourceCase(source=source, scenario=SourceScenario(...))

The tests are async (``@pytest.mark.anyio``) and run on asyncio and trio
(override the ``anyio_backend`` fixture to narrow that). Nothing here knows a
venue: the scenario carries every venue-specific fact.

What is checked: the protocol's shape; snapshots are complete and hold
exactly the scenario's orders and positions; paginated reads cover every
item exactly once, across pages, from ``since`` on; unknown orders are
``None``; reads can be repeated; ``subscribe()`` returns once subscribed and
then yields stream hints; each ``subscribe()`` is a new connection;
``aclose()`` is idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import anyio
import attrs
import pytest

from reconcile_core._events import Discrepancy, Page
from reconcile_core._types import (
    Fill,
    FillBust,
    FillKey,
    OpenOrdersSnapshot,
    Order,
    Position,
    PositionsSnapshot,
    Source,
)
from reconcile_core.typing import StateSource

__all__ = ["SourceCase", "SourceScenario", "StateSourceContract"]

#: Seconds any single contract step may take before the test fails.
STEP_TIMEOUT: Final = 10.0


def _frozenset(value: Any) -> frozenset[Any]:
    return frozenset(value)


def _optional_frozenset(value: Any) -> frozenset[Any] | None:
    return None if value is None else frozenset(value)


@attrs.frozen(kw_only=True)
class SourceScenario:
    """What the fake venue behind a source holds, as the contract checks it."""

    #: Ids of the live orders: exactly what ``open_orders()`` must list.
    open_order_ids: frozenset[str] = attrs.field(converter=_frozenset)
    #: Instruments of the positions ``positions()`` must list.
    position_instruments: frozenset[str] = attrs.field(converter=_frozenset)
    #: Every fill at or after ``fills_since``: exactly what ``fills(since=fills_since)`` must yield.
    fill_keys: frozenset[FillKey] = attrs.field(converter=_frozenset)
    fills_since: int = 0
    #: ``fills()`` must take at least this many pages (set it above 1 to prove pagination).
    min_fill_pages: int = 1
    #: Ids of every order updated at or after ``history_since``; ``None`` skips the check.
    order_history_ids: frozenset[str] | None = attrs.field(default=None, converter=_optional_frozenset)
    history_since: int = 0
    #: Fill ids of every bust at or after ``busts_since``.
    bust_fill_ids: frozenset[str] = attrs.field(default=frozenset(), converter=_frozenset)
    busts_since: int = 0
    #: An order ``order()`` must find (open or not); ``None`` skips the check.
    known_order_id: str | None = None
    #: Ids the venue does not know.
    unknown_order_id: str = "contract-no-such-order"
    unknown_client_id: str = "contract-no-such-client-id"
    #: Makes the venue publish at least one hint to subscribers; ``None`` skips the stream checks.
    push_hint: Callable[[], Awaitable[object]] | None = attrs.field(default=None, eq=False)


@attrs.frozen
class SourceCase:
    """A source under test and what its venue holds."""

    source: StateSource
    scenario: SourceScenario


async def _pages(pages: AsyncIterator[Page[Any]]) -> list[Page[Any]]:
    collected: list[Page[Any]] = []
    with anyio.fail_after(STEP_TIMEOUT):
        async for page in pages:
            assert isinstance(page, Page), f"a paginated read yielded {type(page).__name__}, expected Page"
            collected.append(page)
    return collected


def _items(pages: list[Page[Any]]) -> list[Any]:
    return [item for page in pages for item in page.items]


@pytest.mark.anyio
class StateSourceContract:
    """Subclass this and provide a ``source_case`` fixture (see the module docstring)."""

    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    async def source_case(self) -> SourceCase:
        pytest.fail(f"{type(self).__name__} must provide a 'source_case' fixture yielding a SourceCase")

    # -- shape ---------------------------------------------------------------

    async def test_satisfies_the_protocol(self, source_case: SourceCase) -> None:
        source = source_case.source
        assert isinstance(source, StateSource), "the source does not satisfy reconcile_core.typing.StateSource"
        assert isinstance(source.venue, str)
        assert source.venue
        assert isinstance(source.account, str)
        assert source.account
        assert isinstance(source.settlement_lag_ms, int)
        assert source.settlement_lag_ms >= 0
        with anyio.fail_after(STEP_TIMEOUT):
            now = await source.server_time()
        assert isinstance(now, int)
        assert now >= 0

    # -- snapshots ------------------------------------------------------------

    async def test_open_orders_is_a_complete_snapshot_of_the_live_orders(self, source_case: SourceCase) -> None:
        with anyio.fail_after(STEP_TIMEOUT):
            snapshot = await source_case.source.open_orders()
        assert isinstance(snapshot, OpenOrdersSnapshot)
        assert snapshot.complete, "a snapshot of well-formed orders must be complete"
        ids = [order.order_id for order in snapshot.orders]
        assert len(ids) == len(set(ids)), f"open orders listed twice: {sorted(ids)}"
        assert set(ids) == source_case.scenario.open_order_ids
        assert all(o.source is Source.REST for o in snapshot.orders)
        assert all(o.is_live for o in snapshot.orders)

    async def test_positions_is_a_complete_snapshot(self, source_case: SourceCase) -> None:
        with anyio.fail_after(STEP_TIMEOUT):
            snapshot = await source_case.source.positions()
        assert isinstance(snapshot, PositionsSnapshot)
        assert snapshot.complete
        instruments = [p.instrument for p in snapshot.positions]
        assert len(instruments) == len(set(instruments)), f"a position listed twice: {sorted(instruments)}"
        assert set(instruments) == source_case.scenario.position_instruments
        assert all(p.source is Source.REST for p in snapshot.positions)
        if snapshot.as_of is not None:
            assert all(p.updated_at <= snapshot.as_of for p in snapshot.positions)

    async def test_reads_can_be_repeated(self, source_case: SourceCase) -> None:
        source = source_case.source
        with anyio.fail_after(STEP_TIMEOUT):
            first = await source.open_orders()
            second = await source.open_orders()
        assert {o.order_id for o in first.orders} == {o.order_id for o in second.orders}

    # -- paginated reads --------------------------------------------------------

    async def test_fill_pages_cover_every_fill_exactly_once(self, source_case: SourceCase) -> None:
        scenario = source_case.scenario
        pages = await _pages(source_case.source.fills(since=scenario.fills_since))
        fills = _items(pages)
        assert all(isinstance(f, Fill) and f.source is Source.REST for f in fills)
        keys = [f.key for f in fills]
        assert len(keys) == len(set(keys)), "a fill was yielded twice across pages"
        assert set(keys) == scenario.fill_keys
        assert all(f.time >= scenario.fills_since for f in fills)
        assert all(f.key.venue == source_case.source.venue for f in fills)
        assert all(f.key.account == source_case.source.account for f in fills)
        assert len(pages) >= scenario.min_fill_pages, f"expected several pages, got {len(pages)}"
        assert all(not page.problems for page in pages)

    async def test_fill_pages_start_at_since(self, source_case: SourceCase) -> None:
        scenario = source_case.scenario
        if not scenario.fill_keys:
            pytest.skip("the scenario has no fills")
        pages = await _pages(source_case.source.fills(since=2**62))
        assert _items(pages) == [], "fills far in the future must be none"

    async def test_order_history_pages_cover_every_order_once(self, source_case: SourceCase) -> None:
        scenario = source_case.scenario
        if scenario.order_history_ids is None:
            pytest.skip("the scenario does not describe the order history")
        orders = _items(await _pages(source_case.source.order_history(since=scenario.history_since)))
        assert all(isinstance(o, Order) for o in orders)
        ids = [o.order_id for o in orders]
        assert len(ids) == len(set(ids)), "an order was yielded twice across pages"
        assert set(ids) == scenario.order_history_ids

    async def test_bust_pages_cover_every_bust_once(self, source_case: SourceCase) -> None:
        scenario = source_case.scenario
        busts = _items(await _pages(source_case.source.busts(since=scenario.busts_since)))
        assert all(isinstance(b, FillBust) for b in busts)
        ids = [b.fill_id for b in busts]
        assert len(ids) == len(set(ids)), "a bust was yielded twice across pages"
        assert set(ids) == scenario.bust_fill_ids

    # -- single orders ------------------------------------------------------------

    async def test_an_unknown_order_is_none(self, source_case: SourceCase) -> None:
        source, scenario = source_case.source, source_case.scenario
        with anyio.fail_after(STEP_TIMEOUT):
            assert await source.order(scenario.unknown_order_id) is None
            assert await source.order_by_client_id(scenario.unknown_client_id) is None

    async def test_a_known_order_is_found(self, source_case: SourceCase) -> None:
        known = source_case.scenario.known_order_id
        if known is None:
            pytest.skip("the scenario names no known order")
        with anyio.fail_after(STEP_TIMEOUT):
            order = await source_case.source.order(known)
        assert isinstance(order, Order)
        assert order.order_id == known

    # -- the stream ---------------------------------------------------------------

    async def test_subscribe_returns_once_subscribed_then_yields_hints(self, source_case: SourceCase) -> None:
        source, push = source_case.source, source_case.scenario.push_hint
        if push is None:
            pytest.skip("the scenario cannot make the venue publish")
        with anyio.fail_after(STEP_TIMEOUT):
            async with source.subscribe() as hints:
                # Entering returned: anything the venue publishes now must arrive.
                await push()
                hint = await anext(hints)
        assert isinstance(hint, (Order, Fill, Position, FillBust, Discrepancy))
        if not isinstance(hint, Discrepancy):
            assert hint.source is Source.WS

    async def test_each_subscribe_opens_a_new_connection(self, source_case: SourceCase) -> None:
        source, push = source_case.source, source_case.scenario.push_hint
        if push is None:
            pytest.skip("the scenario cannot make the venue publish")
        for _ in range(2):
            with anyio.fail_after(STEP_TIMEOUT):
                async with source.subscribe() as hints:
                    await push()
                    assert await anext(hints) is not None

    # -- lifecycle ------------------------------------------------------------------

    async def test_aclose_is_idempotent(self, source_case: SourceCase) -> None:
        with anyio.fail_after(STEP_TIMEOUT):
            await source_case.source.aclose()
            await source_case.source.aclose()
