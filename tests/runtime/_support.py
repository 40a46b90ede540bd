"""Shared helpers for the runtime tests: a fast config, an event collector, truth checks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import attrs
import httpx

from reconcile_core import (
    CycleSummary,
    Discrepancy,
    DiscrepancyKind,
    Event,
    FillBusted,
    FillKey,
    FillRecorded,
    MemoryLedger,
    Order,
    OrderStatus,
    Source,
)
from reconcile_core.runtime import Session, SessionConfig
from reconcile_core.testing import FakeVenue, FaultySource
from reconcile_core.typing import FillLedger
from reconcile_paradex import ParadexSource, TokenBucket, TokenProvider
from reconcile_paradex.testing import ParadexSimulator

#: Everything quick, nothing jittered, periodic passes effectively off.
FAST = SessionConfig(
    reconcile_interval=3600.0,
    interval_jitter=0.0,
    reconnect_initial=0.001,
    reconnect_max=0.005,
    retry_initial=0.001,
    retry_max=0.005,
    backoff_jitter=0.0,
    silence_timeout=3600.0,
    trigger_min_interval=0.001,
    connect_timeout=5.0,
    request_timeout=5.0,
)

#: A deadline for waiting on events: generous, only hit when a test fails.
DEADLINE = 10.0


def fast(**changes: Any) -> SessionConfig:
    """``FAST`` with some fields changed."""
    return attrs.evolve(FAST, **changes)


class Collector:
    """Consumes a session's events in its own task and lets the test wait on them."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.events: list[Event] = []
        self._changed = anyio.Event()
        self.done = False

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            async for event in self.session.events():
                self.events.append(event)
                self._notify()
        finally:
            self.done = True
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[list[Event]], bool], within: float = DEADLINE) -> list[Event]:
        """Wait until ``predicate(events)`` holds (fails the test after ``within`` s)."""
        with anyio.fail_after(within):
            while not predicate(self.events):
                if self.done:
                    msg = "the event stream ended first"
                    raise AssertionError(msg)
                await self._changed.wait()
        return self.events

    async def wait_summary(self, reason: str | None = None, *, count: int = 1, ok: bool | None = True) -> CycleSummary:
        """Wait for the ``count``-th cycle summary (of ``reason``, with ``ok``) and return it."""

        def matching(events: list[Event]) -> list[CycleSummary]:
            return [
                e
                for e in events
                if isinstance(e, CycleSummary) and (reason is None or e.reason == reason) and (ok is None or e.ok is ok)
            ]

        await self.wait_for(lambda events: len(matching(events)) >= count)
        return matching(self.events)[count - 1]

    def of(self, kind: type[Any]) -> list[Any]:
        """The collected events of one type."""
        return [e for e in self.events if isinstance(e, kind)]

    def fill_counts(self) -> Counter[FillKey]:
        """How many times each fill key was delivered."""
        return Counter(e.fill.key for e in self.of(FillRecorded))

    def bust_counts(self) -> Counter[str]:
        """How many times each busted fill id was delivered."""
        return Counter(e.bust.fill_id for e in self.of(FillBusted))

    def discrepancies(self, kind: DiscrepancyKind) -> list[Discrepancy]:
        """The collected discrepancies of one kind."""
        return [e for e in self.of(Discrepancy) if e.kind is kind]


def make(
    *,
    seed: int = 0,
    steps: int = 0,
    accounts: tuple[str, ...] = ("main",),
    **source_options: Any,
) -> tuple[FakeVenue, FaultySource, MemoryLedger]:
    """A venue with ``steps`` random actions done, a source over its first account, a ledger."""
    venue = FakeVenue(seed=seed, accounts=accounts)
    for _ in range(steps):
        venue.step(accounts[0])
    return venue, FaultySource(venue, accounts[0], seed=seed, **source_options), MemoryLedger()


def _comparable(order: Order) -> Order:
    return attrs.evolve(order, source=Source.REST)


def assert_orders_match(session: Session, venue: FakeVenue, account: str | None = None) -> None:
    """The session's orders equal the venue's latest versions (provenance aside)."""
    local = {oid: _comparable(o) for oid, o in session.orders.items()}
    truth = {oid: _comparable(o) for oid, o in venue.orders(account).items()}
    assert not [o for o in local.values() if o.status is OrderStatus.UNKNOWN]
    assert local == truth


def assert_positions_match(session: Session, venue: FakeVenue, account: str | None = None) -> None:
    """The session's non-flat position sizes equal the venue's."""
    local = {i: p.size for i, p in session.positions.items() if p.size != 0}
    assert local == venue.position_sizes(account)


def assert_ledger_matches(ledger: FillLedger, venue: FakeVenue, account: str | None = None) -> None:
    """Every venue fill is in the ledger with the same content; every bust is a tombstone."""
    name = venue.accounts[0] if account is None else account
    for fill in venue.fills(name):
        stored = ledger.get(fill.key)
        if venue.is_busted(fill.key.fill_id, name):
            assert ledger.is_busted(venue=venue.name, account=name, fill_id=fill.key.fill_id)
            assert stored is None or stored.content() == fill.content()
        else:
            assert stored is not None, fill.key
            assert stored.content() == fill.content()
    assert ledger.count(venue=venue.name, account=name) <= len(venue.fills(name))


def assert_delivered_exactly_once(collector: Collector, venue: FakeVenue, account: str | None = None) -> None:
    """Each unbusted venue fill delivered once; busted ones at most once; each bust once; nothing else."""
    name = venue.accounts[0] if account is None else account
    counts = collector.fill_counts()
    busted = {b.fill_id for b in venue.busts(name)}
    venue_keys = {f.key for f in venue.fills(name)}
    assert set(counts) <= venue_keys
    for fill in venue.fills(name):
        if fill.key.fill_id in busted:
            assert counts[fill.key] <= 1, fill.key
        else:
            assert counts[fill.key] == 1, fill.key
    assert collector.bust_counts() == Counter(busted)


def simulated_source(
    sim: ParadexSimulator, client: httpx.AsyncClient, *, token: TokenProvider | str | None = None
) -> ParadexSource:
    """A ParadexSource for the simulator's first account, in process (a fresh read-only token by default)."""
    account = sim.accounts[0]
    return ParadexSource(
        account=account,
        token=sim.issue_read_only_token(account) if token is None else token,
        env=None,
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        http_client=client,
        ws_connector=sim.ws_connector,
        rate_limiter=TokenBucket(rate=10_000, capacity=10_000),
    )
