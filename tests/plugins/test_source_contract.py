"""The StateSource contract is venue-neutral: the core's own fake source passes it too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import anyio.lowlevel
import pytest

from reconcile_core import Fill, Page
from reconcile_core.testing import FakeVenue, FaultySource, SourceCase, SourceScenario, StateSourceContract


class TestFaultySourceContract(StateSourceContract):
    @pytest.fixture
    async def source_case(self) -> AsyncIterator[SourceCase]:
        venue = FakeVenue(seed=3)
        orders = [venue.place(quantity=Decimal(4)) for _ in range(6)]
        since = venue.now
        for order in orders[:4]:
            venue.fill(order.order_id, Decimal(1))
        venue.fill(orders[0].order_id, Decimal(3))  # fully filled: no longer open
        venue.cancel(orders[5].order_id)
        fills = venue.fills()
        venue.bust(fills[-1].key.fill_id)
        source = FaultySource(venue, page_size=2)

        async def publish() -> None:
            venue.place()
            await anyio.lowlevel.checkpoint()

        scenario = SourceScenario(
            open_order_ids={o.order_id for o in venue.open_orders()},
            position_instruments={p.instrument for p in venue.positions()},
            fill_keys={f.key for f in fills if f.time >= since},
            fills_since=since,
            min_fill_pages=2,
            order_history_ids={o.order_id for o in venue.order_history(since=0)},
            bust_fill_ids={fills[-1].key.fill_id},
            known_order_id=orders[0].order_id,
            push_hint=publish,
        )
        try:
            yield SourceCase(source=source, scenario=scenario)
        finally:
            await source.aclose()


class _Duplicating:
    """A source whose fill pages repeat the last fill on the next page: the contract must catch it."""

    def __init__(self, inner: FaultySource) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def _fills(self, since: int) -> AsyncIterator[Page[Fill]]:
        last: Fill | None = None
        async for page in self._inner.fills(since=since):
            items = page.items if last is None else (last, *page.items)
            if page.items:
                last = page.items[-1]
            yield Page(items=items)

    def fills(self, *, since: int, instrument: str | None = None) -> AsyncIterator[Page[Fill]]:
        return self._fills(since)


@pytest.mark.anyio
async def test_the_contract_catches_a_duplicated_fill() -> None:
    venue = FakeVenue(seed=4)
    for _ in range(3):
        order = venue.place(quantity=Decimal(2))
        venue.fill(order.order_id, Decimal(1))
    inner = FaultySource(venue, page_size=1)
    scenario = SourceScenario(
        open_order_ids=(), position_instruments=(), fill_keys={f.key for f in venue.fills()}, fills_since=0
    )
    case = SourceCase(source=_Duplicating(inner), scenario=scenario)  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="yielded twice"):
        await StateSourceContract().test_fill_pages_cover_every_fill_exactly_once(case)
    await inner.aclose()
