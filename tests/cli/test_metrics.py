"""``--metrics-port``: the session's health as Prometheus text, scraped over HTTP."""

from __future__ import annotations

import httpx
import pytest

from reconcile_core import MemoryLedger
from reconcile_core._cli._metrics import serve_metrics
from reconcile_core.runtime import Session
from reconcile_core.testing import FakeVenue, FaultySource


@pytest.mark.anyio
async def test_scrape_reports_health() -> None:
    venue = FakeVenue(seed=1)
    order = venue.place("main")
    venue.fill(order.order_id)
    source = FaultySource(venue)
    async with Session(source, MemoryLedger()) as session:
        await session.wait_synced()
        server = serve_metrics(session, 0)
        try:
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{server.port}/metrics")).text
        finally:
            server.close()
    assert 'reconcile_synced{account="main",venue="fake"} 1.0' in text
    assert 'reconcile_fills_from_rest_total{account="main",venue="fake"}' in text
    assert "reconcile_passes_ok_total" in text
