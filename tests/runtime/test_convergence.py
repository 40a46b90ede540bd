"""Convergence under faults (DESIGN.md §3, law 4, through the live runtime).

Hypothesis draws a venue history and a schedule of faults: hints dropped,
duplicated, reordered, delayed or garbled; disconnects; failing, timing-out
REST reads; stale snapshots; settlement lag; and restarts of the
session on the same ledger. Whatever the schedule, once the faults stop, the
clock passes the settlement lag and a final pass runs, the session's state
equals the venue's truth and every fill was delivered exactly once.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile_core import Event, FillBusted, FillKey, FillRecorded, MemoryLedger, OrderStatus, Source
from reconcile_core.runtime import Session
from reconcile_core.testing import NO_FAULTS, FakeVenue, Faults, FaultySource

from ._support import assert_ledger_matches, assert_orders_match, assert_positions_match, fast

CONFIG = fast(
    reconcile_interval=0.01,
    interval_jitter=0.5,
    fill_overlap_ms=0,  # no slack: the watermark arithmetic must be exact
    silence_timeout=0.02,
    request_timeout=5.0,  # hanging reads have their own test: here a slow CI machine must not fail a pass
    event_buffer=8,
    hint_buffer=4,
)

_probability = st.sampled_from([0.0, 0.05, 0.2, 0.5])

faults = st.builds(
    Faults,
    drop=_probability,
    duplicate=_probability,
    reorder=_probability,
    delay=_probability,
    delay_ms=st.sampled_from([10, 2_000]),
    malformed=st.sampled_from([0.0, 0.1]),
    disconnect=st.sampled_from([0.0, 0.05, 0.2]),
    connect_error=st.sampled_from([0.0, 0.3]),
    auth_error=st.sampled_from([0.0, 0.2]),
    rest_error=st.sampled_from([0.0, 0.1, 0.3]),
    rest_timeout=st.sampled_from([0.0, 0.1]),
    stale=st.sampled_from([0.0, 0.5]),
    stale_ms=st.sampled_from([100, 2_000]),
)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("activity"), st.integers(1, 12)),
        st.tuples(st.just("faults"), faults),
        st.tuples(st.just("disconnect")),
        st.tuples(st.just("advance"), st.integers(1, 3_000)),
        st.tuples(st.just("settle")),
        st.tuples(st.just("reconcile")),
        st.tuples(st.just("restart")),
    ),
    max_size=16,
)


class _Consumer:
    """Counts what the consumer received, across sessions on one ledger."""

    def __init__(self) -> None:
        self.fills: Counter[FillKey] = Counter()
        self.busts: Counter[str] = Counter()
        self.seen: list[Event] = []
        self._changed = anyio.Event()

    async def consume(self, session: Session, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        async for event in session.events():
            # Counted with no await in between: taken means counted (and acknowledged on close).
            if isinstance(event, FillRecorded):
                self.fills[event.fill.key] += 1
            elif isinstance(event, FillBusted):
                self.busts[event.bust.fill_id] += 1
            self.seen.append(event)
            self._changed.set()
            self._changed = anyio.Event()

    async def wait_for(self, event: Event) -> None:
        with anyio.fail_after(10):
            while not any(e is event for e in self.seen):
                await self._changed.wait()


async def _apply(step: tuple[Any, ...], venue: FakeVenue, source: FaultySource, session: Session) -> None:
    kind = step[0]
    if kind == "activity":
        for _ in range(step[1]):
            venue.step()
            await anyio.lowlevel.checkpoint()
    elif kind == "faults":
        source.faults = step[1]
    elif kind == "disconnect":
        source.disconnect()
    elif kind == "advance":
        venue.advance(step[1])
    elif kind == "settle":
        for _ in range(30):
            await anyio.lowlevel.checkpoint()
    elif kind == "reconcile":
        with anyio.fail_after(10):
            await session.reconcile_now(reason="scheduled")


async def _scenario(seed: int, lag: int, initial: int, schedule: list[tuple[Any, ...]]) -> None:
    venue = FakeVenue(seed=seed)
    for _ in range(initial):
        venue.step()
    source = FaultySource(venue, seed=seed, settlement_lag_ms=lag, page_size=5)
    ledger = MemoryLedger()
    consumer = _Consumer()
    rng = random.Random(seed)
    segments: list[list[tuple[Any, ...]]] = [[]]
    for step in schedule:
        if step[0] == "restart":
            segments.append([])
        else:
            segments[-1].append(step)

    for number, segment in enumerate(segments):
        last = number == len(segments) - 1
        # A new session knows terminal orders only from the order history since the watermark.
        horizon = ledger.watermark(venue=venue.name, account="main") or 0
        async with anyio.create_task_group() as tg, Session(source, ledger, config=CONFIG, rng=rng) as session:
            await tg.start(consumer.consume, session)
            for step in segment:
                await _apply(step, venue, source, session)
            if not last:
                continue  # a restart: close this session normally, open the next
            source.faults = NO_FAULTS
            venue.advance(max(lag, 2_000) + 1)  # past the settlement lag; delayed hints released
            with anyio.fail_after(10):
                summary = await session.reconcile_now(reason="final")
            assert summary.ok
            await consumer.wait_for(summary)
            _assert_orders(session, venue, horizon)
            assert_positions_match(session, venue)
            assert_ledger_matches(ledger, venue)
            assert session.health().outstanding_needs == 0
            _assert_exactly_once(consumer, venue)


def _assert_orders(session: Session, venue: FakeVenue, horizon: int) -> None:
    truth = venue.orders()
    local = session.orders
    assert not [o for o in local.values() if o.status is OrderStatus.UNKNOWN]
    for order_id, order in local.items():
        assert attrs.evolve(order, source=Source.REST) == truth[order_id]
    expected = {oid for oid, o in truth.items() if o.is_live or o.updated_at >= horizon}
    assert expected <= set(local)
    if horizon == 0:
        assert_orders_match(session, venue)


def _assert_exactly_once(consumer: _Consumer, venue: FakeVenue) -> None:
    busted = {b.fill_id for b in venue.busts()}
    assert set(consumer.fills) <= {f.key for f in venue.fills()}
    for fill in venue.fills():
        if fill.key.fill_id in busted:
            # Busted before anyone saw it: it may never be delivered; never twice.
            assert consumer.fills[fill.key] <= 1, fill.key
        else:
            assert consumer.fills[fill.key] == 1, fill.key
    assert consumer.busts == Counter(busted)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    lag=st.sampled_from([0, 500]),
    initial=st.integers(0, 30),
    schedule=steps,
)
def test_state_converges_to_the_truth_and_every_fill_is_delivered_once(
    backend: str, seed: int, lag: int, initial: int, schedule: list[tuple[Any, ...]]
) -> None:
    anyio.run(_scenario, seed, lag, initial, schedule, backend=backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_rough_fixed_schedule_converges(backend: str) -> None:
    """One heavy schedule, always run: every fault at once, then a restart."""
    heavy = Faults(
        drop=0.3,
        duplicate=0.3,
        reorder=0.3,
        delay=0.3,
        delay_ms=500,
        malformed=0.1,
        disconnect=0.05,
        connect_error=0.3,
        rest_error=0.2,
        stale=0.5,
        stale_ms=1_000,
    )
    schedule: list[tuple[Any, ...]] = [
        ("faults", heavy),
        ("activity", 40),
        ("advance", 300),
        ("activity", 40),
        ("restart",),
        ("faults", heavy),
        ("activity", 40),
        ("settle",),
    ]
    anyio.run(_scenario, 7, 500, 20, schedule, backend=backend)
