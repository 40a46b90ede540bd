"""A venue clock reading that ran ahead must not let a pass skip fills REST had not listed yet.

The watermark ("REST is complete up to T") is set from the venue clock minus
the settlement lag and never moves back; a reading ahead of the venue's real
time would set it too far, and the next pass would read from there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import anyio
import attrs
import pytest

from reconcile_core import FillRecorded, MemoryLedger
from reconcile_core.runtime import Session, SessionConfig
from reconcile_core.runtime._passes import Reconciliation
from reconcile_core.testing import FakeVenue, Faults, FaultySource

pytestmark = pytest.mark.anyio

LAG = 1_000
OVERLAP = 5_000


@attrs.define
class _Source:
    venue: str = "v"
    account: str = "a"
    settlement_lag_ms: int = LAG


def _reconciliation(ledger: MemoryLedger) -> Reconciliation:
    none = cast("Any", None)
    config = SessionConfig(fill_overlap_ms=OVERLAP, initial_backfill_since=0)
    return Reconciliation(
        source=cast("Any", _Source()), ledger=ledger, reconciler=none, gate=none, config=config, metrics=none
    )


def _read(passes: Reconciliation, venue_ms: int, local_s: float) -> int:
    """What a pass does: remember the reading (as venue_time does), then ask where to read from."""
    previous = passes._clock
    passes._clock = (venue_ms, local_s)
    return passes.read_from(venue_ms, previous)


def _complete(passes: Reconciliation, ledger: MemoryLedger, venue_ms: int) -> None:
    ledger.advance_watermark(venue="v", account="a", value=venue_ms - LAG)
    passes.completed(venue_ms)


def test_a_steady_clock_reads_from_the_watermark_minus_the_overlap() -> None:
    ledger = MemoryLedger()
    passes = _reconciliation(ledger)
    assert _read(passes, 100_000, 0.0) == 0  # no watermark yet: the initial backfill
    _complete(passes, ledger, 100_000)
    assert _read(passes, 160_000, 60.0) == 100_000 - LAG - OVERLAP
    _complete(passes, ledger, 160_000)
    assert _read(passes, 220_000, 120.0) == 160_000 - LAG - OVERLAP


def test_a_reading_that_ran_ahead_pins_the_reads_until_the_clock_passes_it() -> None:
    ledger = MemoryLedger()
    passes = _reconciliation(ledger)
    _read(passes, 100_000, 0.0)
    _complete(passes, ledger, 100_000)
    sound = _read(passes, 160_000, 60.0)
    # The next reading runs 120 s ahead; the watermark follows it.
    _read(passes, 340_000, 120.0)
    _complete(passes, ledger, 340_000)
    # 60 s later the clock reads right again: behind the bad reading carried forward.
    assert _read(passes, 240_000, 180.0) == sound
    _complete(passes, ledger, 240_000)
    assert _read(passes, 300_000, 240.0) == sound  # still below the highest reading
    _complete(passes, ledger, 300_000)
    assert _read(passes, 360_000, 300.0) == sound  # this pass reads past the bad reading...
    _complete(passes, ledger, 360_000)
    assert _read(passes, 420_000, 360.0) == 360_000 - LAG - OVERLAP  # ...so the next reads as usual


def test_a_watermark_ahead_of_the_clock_in_a_new_process_reads_back_from_the_clock() -> None:
    ledger = MemoryLedger()
    ledger.advance_watermark(venue="v", account="a", value=900_000)  # set by a clock that ran ahead
    passes = _reconciliation(ledger)
    assert _read(passes, 500_000, 0.0) == 500_000 - LAG - OVERLAP
    _complete(passes, ledger, 500_000)
    assert _read(passes, 800_000, 300.0) == 500_000 - LAG - OVERLAP
    _complete(passes, ledger, 1_000_000)  # past the watermark: the pin ends
    assert _read(passes, 1_100_000, 400.0) == 1_000_000 - LAG - OVERLAP


async def test_a_fill_the_stream_dropped_after_a_clock_that_ran_ahead_is_still_delivered() -> None:
    venue = FakeVenue(seed=1)
    source = FaultySource(venue)
    read_time = source.server_time
    ahead = {"ms": 3_600_000}  # the first reading runs an hour ahead

    async def server_time() -> int:
        now = await read_time()
        jump, ahead["ms"] = ahead["ms"], 0
        return now + jump

    source.server_time = server_time  # type: ignore[method-assign]
    config = SessionConfig(reconcile_interval=3600, interval_jitter=0, silence_timeout=3600)
    delivered: list[str] = []
    expected: list[int] = []  # how many fills, once known
    done = anyio.Event()
    async with Session(source, MemoryLedger(), config=config) as session, anyio.create_task_group() as group:

        async def consume() -> None:
            async for event in session.events():
                if isinstance(event, FillRecorded):
                    delivered.append(event.fill.key.fill_id)
                    if expected and len(delivered) >= expected[0]:
                        done.set()

        group.start_soon(consume)
        await session.wait_synced()
        source.faults = Faults(drop=1.0)  # the stream misses everything from here
        order = venue.place(quantity=Decimal(1))
        venue.advance(1_000)
        venue.fill(order.order_id)
        venue.advance(300_000)
        venue.liquidate()
        for _ in range(3):
            venue.advance(120_000)
            assert (await session.reconcile_now()).ok
        expected.append(len(venue.fills()))
        if len(delivered) >= expected[0]:
            done.set()
        with anyio.fail_after(5):
            await done.wait()
        group.cancel_scope.cancel()
    assert sorted(delivered) == sorted(f.key.fill_id for f in venue.fills())
