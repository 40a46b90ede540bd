"""A stream that never connects degrades the session to REST polling; it never stops reconciling."""

from __future__ import annotations

import anyio
import pytest

from reconcile_core import FillRecorded
from reconcile_core.runtime import ConnectionState, Session
from reconcile_core.testing import Faults

from ._support import DEADLINE, Collector, fast, make


@pytest.mark.anyio
async def test_rest_polling_while_the_stream_is_refused() -> None:
    venue, source, ledger = make(seed=5, steps=40, faults=Faults(auth_error=1.0))
    config = fast(offline_pass_interval=0.05, reconnect_initial=0.02, reconnect_max=0.05)
    async with Session(source, ledger, config=config) as session:
        collector = Collector(session)
        async with anyio.create_task_group() as tg:
            await tg.start(collector.run)
            with anyio.fail_after(DEADLINE):
                await collector.wait_for(
                    lambda events: (
                        {e.fill.key for e in events if isinstance(e, FillRecorded)}
                        >= {f.key for f in venue.fills("main")}
                    )
                )
                # New activity is picked up by the next REST pass, still without a stream.
                for _ in range(20):
                    venue.step("main")
                venue.advance(1)
                summary = await session.reconcile_now()
                assert summary.ok
                await collector.wait_for(
                    lambda events: (
                        {e.fill.key for e in events if isinstance(e, FillRecorded)}
                        >= {f.key for f in venue.fills("main")}
                    )
                )
            health = session.health()
            tg.cancel_scope.cancel()
    assert health.passes_ok >= 2
    assert not health.synced, "synced needs the stream"
    assert health.state in (ConnectionState.BACKOFF, ConnectionState.CONNECTING)
    assert health.authentication_failing
    assert source.connects == 0
    counts = collector.fill_counts()
    assert counts
    assert max(counts.values()) == 1, "each fill once"


@pytest.mark.anyio
async def test_no_offline_pass_while_connected() -> None:
    """With a healthy stream, the offline schedule adds no REST passes."""
    _, source, ledger = make(seed=6, steps=10)
    async with Session(source, ledger, config=fast(offline_pass_interval=0.01)) as session:
        await session.wait_synced()
        with anyio.move_on_after(0.2):
            await anyio.sleep_forever()
        assert session.health().passes_ok == 1
