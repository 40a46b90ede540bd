"""Group commit: a burst of hints merges under one ledger commit; a lone hint is not held back."""

from __future__ import annotations

from decimal import Decimal

import anyio
import anyio.lowlevel
import pytest

from reconcile_core import (
    Fill,
    FillKey,
    FillKind,
    FillRecorded,
    Liquidity,
    MemoryLedger,
    RecordResult,
    Side,
    Source,
)
from reconcile_core.runtime import Session, SessionConfig
from reconcile_core.testing import FakeVenue, FaultySource

from ._support import Collector, fast

pytestmark = pytest.mark.anyio


def _fill(number: int, account: str = "main") -> Fill:
    return Fill(
        key=FillKey(venue="fake", account=account, fill_type="LIQUIDATION", fill_id=f"g{number}"),
        kind=FillKind.LIQUIDATION,
        order_id=None,
        instrument="BTC-PERP",
        side=Side.SELL,
        price=Decimal(100),
        size=Decimal(1),
        fee=Decimal(0),
        fee_currency="USD",
        liquidity=Liquidity.TAKER,
        time=1_700_000_000_000 + number,
        source=Source.WS,
    )


class _WatchedLedger(MemoryLedger):
    """Counts commits; fails the test if anything commits while a group is open or before delivery."""

    def __init__(self) -> None:
        super().__init__()
        self.commits = 0
        self.uncommitted: set[int] = set()
        self.sessions: list[Session] = []
        self.violations: list[str] = []

    def record(self, fill: Fill) -> RecordResult:
        result = super().record(fill)
        if result.offset is not None:
            self.uncommitted.add(result.offset)
        return result

    def commit(self) -> None:
        if any(session._channel.holding for session in self.sessions):
            self.violations.append(f"a commit while a group was open (after {self.commits} commits)")
        self.uncommitted.clear()
        self.commits += 1

    def acknowledge(self, offsets: object) -> None:
        if any(session._channel.holding for session in self.sessions):
            self.violations.append("acknowledgements written while a group was open")
        super().acknowledge(offsets)  # type: ignore[arg-type]


def _session(ledger: _WatchedLedger, config: SessionConfig, account: str = "main") -> tuple[Session, FaultySource]:
    source = FaultySource(FakeVenue(seed=5, accounts=("main", "a", "b")), account=account)
    session = Session(source, ledger, config=config)
    ledger.sessions.append(session)
    return session, source


async def _burst(session: Session, source: FaultySource, ledger: _WatchedLedger, count: int) -> int:
    """Inject ``count`` fills at once after the connect pass; return the commits they took."""
    collector = Collector(session)
    async with anyio.create_task_group() as tg:
        await tg.start(collector.run)
        await session.wait_synced()
        before = ledger.commits
        for number in range(count):
            source.inject(_fill(number, source.account))
        events = await collector.wait_for(lambda events: sum(isinstance(e, FillRecorded) for e in events) == count)
        for event in events:
            if isinstance(event, FillRecorded):
                assert event.offset not in ledger.uncommitted, "delivered before its commit"
        tg.cancel_scope.cancel()
    return ledger.commits - before


class TestGroupCommit:
    async def test_a_burst_is_merged_under_far_fewer_commits_than_batches(self) -> None:
        ledger = _WatchedLedger()
        session, source = _session(ledger, fast(hint_buffer=4, ack_batch=10_000, group_commit_window=10.0))
        async with session:
            commits = await _burst(session, source, ledger, 200)
        # 50 batches of 4; the group takes them under a handful of commits.
        assert commits <= 5, commits
        assert ledger.violations == []

    async def test_without_a_window_each_batch_is_committed(self) -> None:
        ledger = _WatchedLedger()
        session, source = _session(ledger, fast(hint_buffer=4, ack_batch=10_000, group_commit_window=0))
        async with session:
            commits = await _burst(session, source, ledger, 200)
        assert commits >= 200 // 4, commits

    async def test_a_group_holds_at_most_group_commit_max_hints(self) -> None:
        ledger = _WatchedLedger()
        config = fast(hint_buffer=4, ack_batch=10_000, group_commit_window=10.0, group_commit_max=10)
        session, source = _session(ledger, config)
        async with session:
            commits = await _burst(session, source, ledger, 200)
        assert commits >= 200 // 10, commits

    async def test_a_lone_hint_is_delivered_without_waiting_for_the_window(self) -> None:
        ledger = _WatchedLedger()
        session, source = _session(ledger, fast(group_commit_window=30.0))
        async with session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            await session.wait_synced()
            source.inject(_fill(1))
            # A group that waited out its window would take 30 s.
            await collector.wait_for(lambda events: any(isinstance(e, FillRecorded) for e in events), within=2.0)
            tg.cancel_scope.cancel()
        assert ledger.violations == []

    async def test_a_steady_trickle_is_delivered_within_the_window(self) -> None:
        # Hints keep arriving, so a group would never end by itself: the window ends it.
        ledger = _WatchedLedger()
        config = fast(hint_buffer=4, ack_batch=1, group_commit_window=0.05, group_commit_max=10**6)
        session, source = _session(ledger, config)
        delivered: list[FillRecorded] = []
        arrived = anyio.Event()

        async def consume() -> None:
            nonlocal arrived
            async for event in session.events():
                if isinstance(event, FillRecorded):
                    delivered.append(event)
                    arrived.set()
                    arrived = anyio.Event()
                # A consumer that awaits while it handles an event (I/O, say): it asks
                # for the next event, and acknowledges this one, while a group is open.
                await anyio.lowlevel.checkpoint()

        async def delivered_more_than(count: int, within: float) -> None:
            with anyio.fail_after(within):
                while len(delivered) <= count:
                    await arrived.wait()

        async with session, anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await session.wait_synced()

            async def trickle() -> None:
                number = 0
                while True:
                    source.inject(_fill(number))
                    number += 1
                    await anyio.lowlevel.checkpoint()

            tg.start_soon(trickle)
            await delivered_more_than(0, within=2.0)
            # A REST pass during the trickle: its watermark commit waits for the group too.
            with anyio.fail_after(5):
                await session.reconcile_now()
            await delivered_more_than(500, within=10.0)
            tg.cancel_scope.cancel()
        # The consumer acknowledged every event (ack_batch=1) while groups were open:
        # those writes waited, so nothing committed inside a group.
        assert ledger.violations == []

    async def test_sessions_sharing_a_ledger_do_not_group(self) -> None:
        # Another session's commit could land inside a group, so none is formed.
        ledger = _WatchedLedger()
        config = fast(hint_buffer=4, ack_batch=10_000, group_commit_window=10.0)
        first, first_source = _session(ledger, config, account="a")
        second, _ = _session(ledger, config, account="b")
        async with first, second:
            commits = await _burst(first, first_source, ledger, 200)
        assert commits >= 200 // 4, commits
        assert ledger.violations == []
