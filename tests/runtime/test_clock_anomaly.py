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


def _pass(passes: Reconciliation, ledger: MemoryLedger, venue_ms: int, local_s: float) -> int:
    """One full pass: read the clock (as venue_time does), read from where it says, complete."""
    passes._clock = (venue_ms, local_s)
    since = passes.read_from(venue_ms)
    ledger.advance_watermark(venue="v", account="a", value=venue_ms - LAG)
    passes.completed(venue_ms)
    return since


def test_a_steady_clock_reads_from_the_watermark_minus_the_overlap() -> None:
    ledger = MemoryLedger()
    passes = _reconciliation(ledger)
    assert _pass(passes, ledger, 100_000, 0.0) == 0  # no watermark yet: the initial backfill
    assert _pass(passes, ledger, 160_000, 60.0) == 100_000 - LAG - OVERLAP
    assert _pass(passes, ledger, 220_000, 120.0) == 160_000 - LAG - OVERLAP
    # A reading a little behind (servers behind a load balancer): within the overlap, no anomaly.
    assert _pass(passes, ledger, 278_000, 180.0) == 220_000 - LAG - OVERLAP
    assert passes._pinned is None


@pytest.mark.parametrize("ahead_passes", [1, 2, 3])
def test_readings_that_ran_ahead_pin_the_reads_to_where_the_first_of_them_began(ahead_passes: int) -> None:
    # The venue's real clock: 100 s at local 0, then real time. Passes every 60 s; some read 120 s ahead.
    ledger = MemoryLedger()
    passes = _reconciliation(ledger)
    _pass(passes, ledger, 100_000, 0.0)
    sound = _pass(passes, ledger, 160_000, 60.0)
    assert sound == 100_000 - LAG - OVERLAP
    began = [_pass(passes, ledger, 220_000 + 60_000 * n + 120_000, 120.0 + 60 * n) for n in range(ahead_passes)]
    assert began[0] == 160_000 - LAG - OVERLAP  # the first ahead pass began soundly...
    # ...and the ones after it trusted its watermark. The clock reads right again:
    local = 120.0 + 60 * ahead_passes
    right = 100_000 + int(local * 1000)
    assert _pass(passes, ledger, right, local) == began[0]
    highest = 220_000 + 60_000 * (ahead_passes - 1) + 120_000
    # That pass read up to its own reading: the next ones begin after it, until the clock passes
    # the highest reading; then the watermark holds again.
    local += 60
    assert _pass(passes, ledger, right + 60_000, local) == right - LAG - OVERLAP
    while passes._pinned is not None:
        local += 60
        _pass(passes, ledger, 100_000 + int(local * 1000), local)
    assert 100_000 + int(local * 1000) >= highest
    local += 60
    now = 100_000 + int(local * 1000)
    assert _pass(passes, ledger, now, local) == max(highest, now - 60_000) - LAG - OVERLAP


def test_a_watermark_ahead_of_the_clock_in_a_new_process_reads_back_from_the_clock() -> None:
    ledger = MemoryLedger()
    ledger.advance_watermark(venue="v", account="a", value=900_000)  # set by a clock that ran ahead
    passes = _reconciliation(ledger)
    assert _pass(passes, ledger, 500_000, 0.0) == 500_000 - LAG - OVERLAP
    assert _pass(passes, ledger, 800_000, 300.0) == 500_000 - LAG - OVERLAP
    assert _pass(passes, ledger, 1_000_000, 500.0) == 800_000 - LAG - OVERLAP  # past it: the pin ends
    assert _pass(passes, ledger, 1_100_000, 600.0) == 1_000_000 - LAG - OVERLAP


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
