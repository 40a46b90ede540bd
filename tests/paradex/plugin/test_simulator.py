"""ParadexSource against the Paradex simulator (reconcile_paradex.testing): the two must agree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import anyio
import httpx
import pytest

from reconcile_core import Fill, FillKey
from reconcile_core.testing import SourceCase, SourceScenario, StateSourceContract
from reconcile_paradex import FILL_TYPES, ParadexSource, ReadOnlyToken

simulator = pytest.importorskip("reconcile_paradex.testing")


@asynccontextmanager
async def simulated(seed: int, fills: int) -> AsyncIterator[tuple[simulator.ParadexSimulator, ParadexSource]]:
    sim = simulator.ParadexSimulator(seed=seed, accounts=1)
    async with sim, httpx.AsyncClient(transport=sim.http_transport()) as http:
        sim.run_until(fills=fills)
        sim.quiesce()
        (account,) = sim.accounts
        source = ParadexSource(
            account=account,
            token=ReadOnlyToken(sim.issue_read_only_token(account)),
            env=None,
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            http_client=http,
            ws_connector=sim.ws_connector,
            page_size=25,
        )
        async with source:
            yield sim, source


def _key(account: str, fill_type: str, fill_id: str) -> FillKey:
    return FillKey(venue="paradex", account=account, fill_type=FILL_TYPES[fill_type][0], fill_id=fill_id)


@pytest.mark.anyio
async def test_rest_reads_equal_the_simulated_truth() -> None:
    async with simulated(seed=11, fills=120) as (sim, source):
        truth = sim.truth(source.account)
        orders = await source.open_orders()
        positions = await source.positions()
        fills = [f async for page in source.fills(since=0) for f in page.items]
        busts = [b async for page in source.busts(since=0) for b in page.items]
    assert orders.complete
    assert {o.order_id for o in orders.orders} == {o.id for o in truth.open_orders}
    listed = {p.instrument: p.size for p in positions.positions}
    assert {m: p.size for m, p in truth.positions.items() if p.size != 0}.items() <= listed.items()
    assert all(size == Decimal(0) for market, size in listed.items() if truth.positions[market].size == 0)
    expected = {_key(source.account, f.fill_type, f.id) for f in (*truth.fills, *truth.busted_fills)}
    assert {f.key for f in fills} == expected
    assert len(fills) == len(expected)
    assert {b.fill_id for b in busts} == {b.fill_id for b in truth.busts}


@pytest.mark.anyio
async def test_stream_fills_are_the_venue_fills() -> None:
    async with simulated(seed=12, fills=10) as (sim, source), source.subscribe() as hints:
        before = {f.id for f in sim.truth(source.account).fills}
        await sim.run(fills=40)
        seen: list[Fill] = []
        with anyio.fail_after(10):
            async for hint in hints:
                if isinstance(hint, Fill):
                    seen.append(hint)
                if {f.key.fill_id for f in seen} >= {f.id for f in sim.truth(source.account).fills} - before:
                    break
        truth = {f.id: f for f in sim.truth(source.account).fills}
    assert seen
    for fill in seen:
        venue_fill = truth[fill.key.fill_id]
        assert fill.key == _key(source.account, venue_fill.fill_type, venue_fill.id)
        assert (fill.price, fill.size) == (venue_fill.price, venue_fill.size)


class TestParadexSourceAgainstTheSimulator(StateSourceContract):
    @pytest.fixture
    async def source_case(self) -> AsyncIterator[SourceCase]:
        async with simulated(seed=13, fills=60) as (sim, source):
            truth = sim.truth(source.account)
            everything = (*truth.fills, *truth.busted_fills)
            since = sorted(f.created_at for f in everything)[len(everything) // 3]

            async def publish() -> None:
                await sim.run(steps=50)

            scenario = SourceScenario(
                open_order_ids={o.id for o in truth.open_orders},
                position_instruments=set(truth.positions),
                fill_keys={_key(source.account, f.fill_type, f.id) for f in everything if f.created_at >= since},
                fills_since=since,
                min_fill_pages=2,
                bust_fill_ids={b.fill_id for b in truth.busts},
                known_order_id=next(iter(truth.orders)),
                push_hint=publish,
            )
            yield SourceCase(source=source, scenario=scenario)
