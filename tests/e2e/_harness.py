"""The chaos harness: a real session (runtime + Paradex plugin + SQLite ledger) against the simulator.

One :class:`Case` is a seed, a fault profile, an async backend and a
transport (in-process or real loopback sockets). :func:`run_case` builds a
history of at least ``fills`` fills while a :class:`~reconcile_core.runtime.Session`
follows it, then quiesces the simulator, reconciles until nothing is
outstanding, and returns what the consumer saw beside the simulator's truth.
:func:`problems` lists every way the outcome breaks the library's promises:

* the session's orders and positions equal the truth (after a restart: the
  orders the new session must know, see :class:`Follower`);
* the ledger holds every fill (busted ones marked busted);
* every unbusted fill reached the consumer exactly once, each bust exactly
  once, and a busted fill at most once, across restarts too;
* no order event moved an order backwards, and each event's ``previous`` is
  what the last event said;
* no unhandled exception, no error log, no simulator bug, no leaked resource.

Shocks on top of the fault profile: WebSocket disconnects and quiet spells
on the venue clock, consumers that stall (the channel, the hint buffer and the
venue's feed fill up behind them), sessions restarted on the same ledger, and
short-lived tokens (:class:`SimulatorTokens`).

The same seed gives the same venue history and the same fault streams; the
interleaving with the session depends on timing, so a replay explores the
neighbourhood of a failure rather than repeating it step for step.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shlex
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
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
    Fill,
    FillBusted,
    FillKey,
    FillRecorded,
    Order,
    OrderStatus,
    OrderUpdated,
    Position,
    Source,
    order_version,
)
from reconcile_core.runtime import ConnectionState, Health, Session, SessionConfig
from reconcile_core.sqlite import SqliteLedger
from reconcile_paradex import (
    ParadexSource,
    RetryPolicy,
    TokenBucket,
    TokenProvider,
    parse_fill,
    parse_order,
    parse_position,
)
from reconcile_paradex.testing import AccountTruth, FaultSettings, ParadexSimulator
from reconcile_paradex.testing import _wire as wire

VENUE = "paradex"
PROFILES = ("light", "heavy")
BACKENDS = ("asyncio", "trio")

#: Fast pacing: a pass every 50 ms, near-instant backoff, short timeouts (a slow response
#: fault becomes a timeout), small buffers (so backpressure is exercised) and frequent
#: acknowledgement batches.
CONFIG = SessionConfig(
    reconcile_interval=0.05,
    interval_jitter=0.2,
    fill_overlap_ms=500,
    event_buffer=64,
    hint_buffer=32,
    reconnect_initial=0.001,
    reconnect_max=0.02,
    retry_initial=0.002,
    retry_max=0.05,
    silence_timeout=0.5,
    trigger_min_interval=0.01,
    connect_timeout=5.0,
    request_timeout=0.1,
    ack_batch=16,
)
#: Real sockets (with the server in a thread of this process) need more time per request.
LOOPBACK_CONFIG = attrs.evolve(CONFIG, request_timeout=0.5)


def config_for(case: Case) -> SessionConfig:
    return CONFIG if case.transport == "memory" else LOOPBACK_CONFIG


#: Discrepancies that must never appear against an honest venue.
FORBIDDEN = frozenset(
    {
        DiscrepancyKind.FILL_CONFLICT,
        DiscrepancyKind.MISSING_FILLS,
        DiscrepancyKind.OVERFILL,
        DiscrepancyKind.FILL_ORDER_MISMATCH,
        DiscrepancyKind.MALFORMED_MESSAGE,
        DiscrepancyKind.UNKNOWN_VALUE,
        DiscrepancyKind.POSITION_MISMATCH,
    }
)
#: Rounds of ``reconcile_now()`` after quiescing before giving up on convergence.
FINAL_ROUNDS = 20
#: Generous deadlines (seconds): only hit when something hangs.
SYNC_DEADLINE = 30.0
RUN_DEADLINE = 120.0


@attrs.frozen(kw_only=True)
class Case:
    """One chaos run: what to replay."""

    seed: int
    profile: str = "light"
    backend: str = "asyncio"
    transport: str = "memory"  # or "loopback"
    fills: int = 300
    accounts: int = 1
    #: Sessions closed and started again (on the same ledger) in the middle of the run.
    restarts: int = 0
    #: ``"read-only"`` (one long-lived token) or ``"expiring"`` (short-lived JWTs, refreshed on 401 and 40111).
    tokens: str = "read-only"
    #: ``"all"`` (``GET /positions`` lists closed positions too) or ``"open"`` (open ones only).
    positions: str = "all"

    @property
    def label(self) -> str:
        quirk = "-open-positions" if self.positions == "open" else ""
        return f"{self.profile}-{self.backend}-{self.transport}{quirk}-seed{self.seed}"

    def replay_command(self) -> str:
        """The one command that replays this case."""
        env = {
            "CHAOS_SEED": self.seed,
            "CHAOS_PROFILE": self.profile,
            "CHAOS_BACKEND": self.backend,
            "CHAOS_TRANSPORT": self.transport,
            "CHAOS_FILLS": self.fills,
            "CHAOS_ACCOUNTS": self.accounts,
            "CHAOS_RESTARTS": self.restarts,
            "CHAOS_TOKENS": self.tokens,
            "CHAOS_POSITIONS": self.positions,
        }
        assignments = " ".join(f"{name}={shlex.quote(str(value))}" for name, value in env.items())
        return f"{assignments} python -m pytest tests/e2e/test_chaos.py -k replay"


def case_from_env(environ: dict[str, str]) -> Case:
    """The :class:`Case` named by the ``CHAOS_*`` variables of :meth:`Case.replay_command`."""
    return Case(
        seed=int(environ["CHAOS_SEED"]),
        profile=environ.get("CHAOS_PROFILE", "light"),
        backend=environ.get("CHAOS_BACKEND", "asyncio"),
        transport=environ.get("CHAOS_TRANSPORT", "memory"),
        fills=int(environ.get("CHAOS_FILLS", "300")),
        accounts=int(environ.get("CHAOS_ACCOUNTS", "1")),
        restarts=int(environ.get("CHAOS_RESTARTS", "0")),
        tokens=environ.get("CHAOS_TOKENS", "read-only"),
        positions=environ.get("CHAOS_POSITIONS", "all"),
    )


class SimulatorTokens:
    """Short-lived JWTs minted by the simulator, on its virtual clock (a ``TokenProvider``).

    A token is reused until ``margin_ms`` before it expires, so now and then
    an expired one reaches the venue: REST answers 401 (one refresh, one
    retry) and the WebSocket ``auth`` answers 40111 (re-auth).
    """

    def __init__(self, sim: ParadexSimulator, account: str, *, ttl_ms: int, margin_ms: int) -> None:
        self._sim = sim
        self._account = account
        self._ttl_ms = ttl_ms
        self._margin_ms = margin_ms
        self._token: str | None = None
        self._expires = 0
        self.minted = 0

    async def token(self, *, force_refresh: bool = False) -> str:
        now = self._sim.now
        if force_refresh or self._token is None or now >= self._expires - self._margin_ms:
            self._token = self._sim.issue_token(self._account, ttl_ms=self._ttl_ms)
            self._expires = now + self._ttl_ms
            self.minted += 1
        return self._token


class HurriedClock:
    """The REST client's clock, running 100 times faster than real time.

    Backoffs and ``Retry-After`` pauses keep their meaning (and their order)
    but take a hundredth of the time.
    """

    def now(self) -> float:
        return time.monotonic() * 100

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds / 100)


def settlement_lag_for(sim: ParadexSimulator, faults: FaultSettings) -> int:
    """How far behind "now" REST is complete: settlement (with jitter) plus a stale replica's lag."""
    return sim.settlement_lag_ms + int(faults.settlement_jitter_ms[1]) + faults.max_stale_ms + 1


async def settle(max_rounds: int = 1000) -> None:
    """Let every other task of this (in-process) event loop run until all of them are blocked.

    The bytes of one venue event travel through several tasks (the
    simulator's pump, the WebSocket reader, the session's reader and
    merger, the consumer) before they are merged: this lets them, without
    sleeping. Tasks waiting on timers (delayed notifications, backoff)
    count as blocked.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        import trio.testing

        await trio.testing.wait_all_tasks_blocked()
        return
    me = asyncio.current_task()
    for _ in range(max_rounds):
        await asyncio.sleep(0)
        if all(task is me or _blocked(task) for task in asyncio.all_tasks()):
            return


def _blocked(task: asyncio.Task[Any]) -> bool:
    waiter = getattr(task, "_fut_waiter", None)  # what anyio's wait_all_tasks_blocked looks at too
    return waiter is not None and not waiter.done()


class Consumer:
    """Reads one account's events, across the sessions that follow it; counts fills and busts.

    Checks within each session that order events never go backwards and
    that each event's ``previous`` is what the last event said. Can be
    stalled (it stops taking events) to fill the channel up behind it.
    """

    def __init__(self) -> None:
        self.fills: Counter[FillKey] = Counter()
        self.redelivered: Counter[FillKey] = Counter()
        self.busts: Counter[str] = Counter()
        self.bust_carried_fill: set[str] = set()
        self.discrepancies: Counter[DiscrepancyKind] = Counter()
        self.forbidden: list[Discrepancy] = []
        self.backwards: list[str] = []
        self.incoherent: list[str] = []
        self.summaries: list[CycleSummary] = []
        self.events = 0
        self.stalls = 0
        self._last: dict[str, Order] = {}
        self._last_known: dict[str, Order] = {}
        self._changed = anyio.Event()
        self._resume: anyio.Event | None = None
        self.ended = False
        #: Set when :meth:`run` returns.
        self.done: anyio.Event

    async def run(self, session: Session) -> None:
        """Take ``session``'s events until it stops."""
        # A new session knows nothing of what an earlier one said about its orders.
        self._last = {}
        self._last_known = {}
        self.ended = False
        self.done = anyio.Event()
        try:
            async for event in session.events():
                self.take(event)
                self._changed.set()
                self._changed = anyio.Event()
                if self._resume is not None:
                    await self._resume.wait()
        finally:
            self.ended = True
            self._changed.set()
            self.done.set()

    def stall(self) -> None:
        """Stop taking events (after the current one) until :meth:`resume`."""
        if self._resume is None:
            self._resume = anyio.Event()
            self.stalls += 1

    def resume(self) -> None:
        resume, self._resume = self._resume, None
        if resume is not None:
            resume.set()

    @property
    def stalled(self) -> bool:
        return self._resume is not None

    def take(self, event: Event) -> None:
        self.events += 1
        if isinstance(event, FillRecorded):
            (self.redelivered if event.redelivery else self.fills)[event.fill.key] += 1
        elif isinstance(event, FillBusted):
            self.busts[event.bust.fill_id] += 1
            if event.fill is not None:
                self.bust_carried_fill.add(event.bust.fill_id)
        elif isinstance(event, OrderUpdated):
            self._order(event)
        elif isinstance(event, Discrepancy):
            self.discrepancies[event.kind] += 1
            if event.kind in FORBIDDEN:
                self.forbidden.append(event)
        elif isinstance(event, CycleSummary):
            self.summaries.append(event)

    def _order(self, event: OrderUpdated) -> None:
        order = event.order
        oid = order.order_id
        if event.previous != self._last.get(oid):
            self.incoherent.append(
                f"order {oid}: previous={event.previous!r} but the last event said {self._last.get(oid)!r}"
            )
        self._last[oid] = order
        if order.status is OrderStatus.UNKNOWN:
            return  # an overlay: the venue could not account for the order (yet)
        known = self._last_known.get(oid)
        if known is not None and order_version(order) < order_version(known):
            self.backwards.append(f"order {oid} moved back from {known!r} to {order!r}")
        self._last_known[oid] = order

    async def wait_for(self, summary: CycleSummary, within: float = 30.0) -> None:
        """Wait until the consumer has taken ``summary`` (and so everything before it)."""
        with anyio.fail_after(within):
            while not any(s is summary for s in self.summaries):
                if self.ended:
                    msg = "the event stream ended before the final summary arrived"
                    raise AssertionError(msg)
                await self._changed.wait()


class Follower:
    """One account: its source, its consumer, and the session following it now (restarts make a new one)."""

    def __init__(
        self,
        source: ParadexSource,
        ledger: SqliteLedger,
        task_group: anyio.abc.TaskGroup,
        rng: random.Random,
        config: SessionConfig = CONFIG,
    ) -> None:
        self.source = source
        self.config = config
        self.ledger = ledger
        self.consumer = Consumer()
        self.restarts = 0
        #: Where the current session's order history starts (``None``: the whole history).
        self.known_since: int | None = None
        self._task_group = task_group
        self._rng = rng
        self.session: Session

    async def start(self) -> None:
        self.session = Session(self.source, self.ledger, config=self.config, rng=random.Random(self._rng.random()))
        await self._task_group.start(self.session.run)
        self._task_group.start_soon(self.consumer.run, self.session)

    async def restart(self) -> None:
        """Close the session normally and follow the account with a new one on the same ledger.

        If the consumer is stalled, the events still in the channel were never
        delivered: the new session delivers them first, as redeliveries.
        """
        await self.session.close()
        self.consumer.resume()
        await self.consumer.done.wait()
        self.restarts += 1
        watermark = self.ledger.watermark(venue=VENUE, account=self.source.account)
        config = self.config
        self.known_since = config.initial_backfill_since if watermark is None else watermark - config.fill_overlap_ms
        await self.start()


@attrs.frozen(kw_only=True)
class LedgerView:
    """What the ledger holds for one account's venue fills, read after the sessions closed."""

    stored: dict[FillKey, Fill | None]
    busted: dict[str, bool]
    count: int
    undelivered: int

    @classmethod
    def read(cls, ledger: SqliteLedger, truth: AccountTruth) -> LedgerView:
        unbusted, busted = truth_fills(truth)
        return cls(
            stored={key: ledger.get(key) for key in (*unbusted, *busted)},
            busted={
                key.fill_id: ledger.is_busted(venue=VENUE, account=truth.account, fill_id=key.fill_id) for key in busted
            },
            count=ledger.count(venue=VENUE, account=truth.account),
            undelivered=len(ledger.undelivered(venue=VENUE, account=truth.account)),
        )


@attrs.define
class Outcome:
    """What one account's session ended with, beside the simulator's truth."""

    account: str
    truth: AccountTruth
    orders: dict[str, Order]
    positions: dict[str, Position]
    consumer: Consumer
    health: Health
    ledger: LedgerView
    converged_after: int
    restarts: int = 0
    known_since: int | None = None


@attrs.define
class Run:
    """Everything one case produced."""

    case: Case
    outcomes: list[Outcome]
    server_errors: tuple[str, ...]
    error_logs: list[str]
    faults: dict[str, int]
    seconds: float
    cpu_seconds: float


class _ErrorLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def capture_error_logs() -> Iterator[list[str]]:
    """Collect ERROR (and worse) records of the library's loggers while the block runs."""
    handler = _ErrorLogs()
    loggers = [logging.getLogger(name) for name in ("reconcile_core", "reconcile_paradex")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def make_source_options(
    *,
    account: str,
    token: str | TokenProvider,
    rest_url: str,
    ws_url: str,
    lag_ms: int,
    seed: int,
    timeout: float = CONFIG.request_timeout,
) -> dict[str, Any]:
    """``ParadexSource`` options for one simulated account: fast retries, small pages, no real waits."""
    return {
        "account": account,
        "token": token,
        "env": None,
        "rest_url": rest_url,
        "ws_url": ws_url,
        "settlement_lag_ms": lag_ms,
        "page_size": 40,
        "retry": RetryPolicy(attempts=4, base_backoff=0.5, max_backoff=2.0, max_retry_after=5.0),
        "rate_limiter": TokenBucket(rate=1e9, capacity=1e6),
        "clock": HurriedClock(),
        "rng": random.Random(seed),
        "timeout": timeout,
    }


def make_source(
    sim: ParadexSimulator,
    account: str,
    *,
    rest_url: str,
    ws_url: str,
    http_client: httpx.AsyncClient | None,
    lag_ms: int,
    seed: int,
    token: TokenProvider | None = None,
    timeout: float = CONFIG.request_timeout,
) -> ParadexSource:
    """A ParadexSource for one simulated account (in-process when ``http_client`` is the simulator's).

    ``token`` defaults to a long-lived read-only token.
    """
    options = make_source_options(
        account=account,
        token=token if token is not None else sim.issue_read_only_token(account),
        rest_url=rest_url,
        ws_url=ws_url,
        lag_ms=lag_ms,
        seed=seed,
        timeout=timeout,
    )
    in_process = http_client is not None
    return ParadexSource(**options, http_client=http_client, ws_connector=sim.ws_connector if in_process else None)


async def run_case(case: Case, directory: Path) -> Run:
    """Run one chaos case; never raises for a broken promise (see :func:`problems`)."""
    started = time.monotonic()
    cpu_started = time.process_time()
    sim = ParadexSimulator(
        seed=case.seed, accounts=case.accounts, faults=case.profile, open_positions_only=case.positions == "open"
    )
    lag_ms = settlement_lag_for(sim, sim.faults)
    rng = random.Random(f"chaos:{case.seed}")
    sim.run_until(fills=case.fills * case.accounts // 4)  # a history the first pass must backfill
    with capture_error_logs() as error_logs:
        async with sim:
            if case.transport == "memory":
                async with httpx.AsyncClient(transport=sim.http_transport()) as http:
                    outcomes = await _follow(
                        case,
                        sim,
                        directory,
                        rest_url=sim.rest_url,
                        ws_url=sim.ws_url,
                        http=http,
                        lag_ms=lag_ms,
                        rng=rng,
                    )
            else:
                async with sim.serve_loopback() as (rest_url, ws_url):
                    outcomes = await _follow(
                        case, sim, directory, rest_url=rest_url, ws_url=ws_url, http=None, lag_ms=lag_ms, rng=rng
                    )
    return Run(
        case=case,
        outcomes=outcomes,
        server_errors=sim.server_errors,
        error_logs=list(error_logs),
        faults={name: count for name, count in sim.fault_counts().as_dict().items() if count},
        seconds=time.monotonic() - started,
        cpu_seconds=time.process_time() - cpu_started,
    )


async def _follow(
    case: Case,
    sim: ParadexSimulator,
    directory: Path,
    *,
    rest_url: str,
    ws_url: str,
    http: httpx.AsyncClient | None,
    lag_ms: int,
    rng: random.Random,
) -> list[Outcome]:
    in_process = case.transport == "memory"
    path = directory / f"{case.label}.sqlite"
    sources = [
        make_source(
            sim,
            account,
            rest_url=rest_url,
            ws_url=ws_url,
            http_client=http,
            lag_ms=lag_ms,
            seed=rng.randrange(2**32),
            timeout=config_for(case).request_timeout,
            token=(
                SimulatorTokens(sim, account, ttl_ms=rng.randint(1_000, 5_000), margin_ms=rng.choice((0, 200)))
                if case.tokens == "expiring"
                else None
            ),
        )
        for account in sim.accounts
    ]
    # WAL with synchronous=NORMAL: durable across process crashes (what is tested here), not power loss;
    # it spares the suite an fsync per commit.
    with SqliteLedger(path, synchronous="normal") as ledger:
        converged: list[int] = []
        try:
            async with anyio.create_task_group() as tg:
                followers = [Follower(source, ledger, tg, rng, config_for(case)) for source in sources]
                for follower in followers:
                    await follower.start()
                with anyio.fail_after(SYNC_DEADLINE):
                    for follower in followers:
                        await follower.session.wait_synced()
                with anyio.fail_after(RUN_DEADLINE):
                    await _drive(sim, case, rng, followers, in_process=in_process)
                    sim.quiesce()
                    # Past the sessions' own lag too (it adds a stale replica's): a position closed
                    # while the stream missed it is judged absent from /positions only after it.
                    sim.advance(lag_ms)
                    converged.extend([await _converge(f.session, f.consumer) for f in followers])
                healths = [f.session.health() for f in followers]
                orders = [dict(f.session.orders) for f in followers]
                positions = [dict(f.session.positions) for f in followers]
                for follower in followers:
                    await follower.session.close()
        finally:
            for source in sources:
                await source.aclose()
        return [
            Outcome(
                account=f.source.account,
                truth=(truth := sim.truth(f.source.account)),
                orders=orders[i],
                positions=positions[i],
                consumer=f.consumer,
                health=healths[i],
                ledger=LedgerView.read(ledger, truth),
                converged_after=converged[i],
                restarts=f.restarts,
                known_since=f.known_since,
            )
            for i, f in enumerate(followers)
        ]


async def _drive(
    sim: ParadexSimulator, case: Case, rng: random.Random, followers: list[Follower], *, in_process: bool
) -> None:
    """Venue activity in small bursts while the sessions follow, with extra shocks.

    Mostly the venue waits for a reconnecting session (so the stream carries
    most of the history); now and then it runs on through the outage. Now
    and then a consumer stalls for a while (the channel, the hint buffer and
    the venue's feed fill up behind it), and ``case.restarts`` times a
    session is closed and a new one follows the account on the same ledger.
    """
    target = case.fills * case.accounts
    restart_at = sorted(int(rng.uniform(0.3, 0.9) * target) for _ in range(case.restarts))
    restarting: dict[int, int] = {}  # follower index -> the iteration its session restarts at
    stalled: dict[int, int] = {}  # follower index -> the iteration it resumes at
    iteration = 0
    while not _enough_fills(sim, case.fills):
        iteration += 1
        await sim.run(steps=rng.randint(1, 8))
        if in_process:
            await settle()
        else:
            await anyio.sleep(0.003)  # real sockets: give the server thread and the client a moment
        for index, until in list(stalled.items()):
            if iteration >= until:
                followers[index].consumer.resume()
                del stalled[index]
        if rng.random() < 0.01:
            index = rng.randrange(len(followers))
            followers[index].consumer.stall()
            stalled[index] = max(stalled.get(index, 0), iteration + rng.randint(5, 80))
        if restart_at and sim.venue.fill_count() >= restart_at[0]:
            restart_at.pop(0)
            index = rng.randrange(len(followers))
            # Half the time the consumer stalls first, so the restart leaves undelivered fills behind.
            stalled.pop(index, None)
            if rng.random() < 0.5:
                followers[index].consumer.stall()
                restarting[index] = iteration + rng.randint(3, 30)
            else:
                restarting[index] = iteration
        for index, at in list(restarting.items()):
            if iteration >= at:
                del restarting[index]
                await followers[index].restart()
        patience = rng.random()
        if patience < 0.9:
            # Wait for a reconnecting session: mostly until its pass is done, sometimes only until subscribed.
            ready = _synced if patience < 0.6 else _subscribed
            with anyio.move_on_after(1.0):
                for follower in followers:
                    if not follower.consumer.stalled:  # a stalled consumer holds its session back
                        await follower.session.wait_health(ready)
        shock = rng.random()
        if shock < 0.004:
            sim.disconnect_websockets(abrupt=rng.random() < 0.5)
        elif shock < 0.008:
            sim.advance(rng.randint(100, 3_000))  # a quiet spell on the venue
    for index in restarting:
        await followers[index].restart()
    for follower in followers:
        follower.consumer.resume()


def _enough_fills(sim: ParadexSimulator, fills: int) -> bool:
    """Whether every account's history has ``fills`` fills (busted ones included)."""
    if sim.venue.fill_count() < fills * len(sim.accounts):
        return False  # cheap: no account can have enough yet
    return all(len(t.fills) + len(t.busted_fills) >= fills for t in map(sim.truth, sim.accounts))


def _subscribed(health: Health) -> bool:
    return health.state in (ConnectionState.SYNCING, ConnectionState.LIVE)


def _synced(health: Health) -> bool:
    return health.synced


async def _converge(session: Session, consumer: Consumer) -> int:
    """Reconcile until a pass succeeds with nothing outstanding; wait until the consumer took it all."""
    rounds = 0
    summary = await session.reconcile_now(reason="final")
    while True:
        rounds += 1
        health = session.health()
        if summary.ok and health.outstanding_needs == 0 and health.unknown_orders == 0:
            break
        if rounds >= FINAL_ROUNDS:
            break
        summary = await session.reconcile_now(reason="final")
    await consumer.wait_for(summary)
    return rounds


# -- the checks -----------------------------------------------------------------


def _comparable_order(order: Order) -> Order:
    return attrs.evolve(order, source=Source.REST, sequence=None)


def _comparable_position(position: Position) -> Position:
    return attrs.evolve(position, source=Source.REST, sequence=None)


def truth_orders(truth: AccountTruth) -> dict[str, Order]:
    """The truth's newest order versions, as the plugin reads them (provenance and seq_no aside)."""
    return {
        oid: _comparable_order(parse_order(wire.order_json(o, seq_no=0, published_at=0), source=Source.REST).value)
        for oid, o in truth.orders.items()
    }


def truth_fills(truth: AccountTruth) -> tuple[dict[FillKey, Fill], dict[FillKey, Fill]]:
    """The truth's fills as the plugin reads them: (unbusted, busted), by key."""

    def read(fills: Any) -> dict[FillKey, Fill]:
        parsed = (parse_fill(wire.fill_json(f), account=truth.account, source=Source.REST).value for f in fills)
        return {f.key: f for f in parsed}

    return read(truth.fills), read(truth.busted_fills)


def problems(run: Run) -> list[str]:
    """Every broken promise of one run, in words (empty when all is well)."""
    found: list[str] = []
    if run.server_errors:
        found.append(f"the simulator hit bugs while serving: {run.server_errors}")
    if run.error_logs:
        found.append(f"error logs: {run.error_logs[:5]}")
    for outcome in run.outcomes:
        found.extend(f"{outcome.account[:10]}: {p}" for p in _account_problems(outcome, run.case))
    return found


def _account_problems(outcome: Outcome, case: Case) -> list[str]:
    found: list[str] = []
    truth, consumer, health = outcome.truth, outcome.consumer, outcome.health
    if health.outstanding_needs or health.unknown_orders:
        found.append(
            f"did not converge after {outcome.converged_after} final passes: "
            f"{health.outstanding_needs} needs outstanding, {health.unknown_orders} orders UNKNOWN"
        )

    # Orders: every truth order known, equal to its newest version; nothing invented.
    expected = truth_orders(truth)
    local = {oid: _comparable_order(o) for oid, o in outcome.orders.items()}
    must_know = set(expected)
    if outcome.known_since is not None:
        # A restarted session knows the live orders and the history created since its watermark
        # (minus the overlap): /orders-history filters on created_at, and order state is not persisted.
        since = outcome.known_since
        must_know = {oid for oid, o in expected.items() if o.is_live or o.created_at >= since}
    missing = sorted(must_know - set(local))
    if missing:
        found.append(f"{len(missing)} venue orders unknown to the session, e.g. {missing[:3]}")
    invented = sorted(set(local) - set(expected))
    if invented:
        found.append(f"{len(invented)} orders the venue never had, e.g. {invented[:3]}")
    wrong = [
        (oid, local[oid], expected[oid]) for oid in sorted(set(local) & set(expected)) if local[oid] != expected[oid]
    ]
    for oid, seen, want in wrong[:3]:
        found.append(f"order {oid} differs:\n  session {seen!r}\n  venue   {want!r}")
    if len(wrong) > 3:
        found.append(f"... and {len(wrong) - 3} more orders differ")

    # Positions: equal to the truth (flat ones may be absent locally).
    want_positions = {
        market: _comparable_position(parse_position(wire.position_json(p, seq_no=0), source=Source.REST).value)
        for market, p in truth.positions.items()
    }
    for market in sorted(set(want_positions) | set(outcome.positions)):
        want = want_positions.get(market)
        seen = outcome.positions.get(market)
        if want is None or seen is None:
            size = (want or seen).size if (want or seen) is not None else Decimal(0)  # type: ignore[union-attr]
            if size != 0:
                found.append(f"position {market}: session {seen!r}, venue {want!r}")
            continue
        if want.size == 0 and seen.size == 0 and case.positions == "open":
            # Closed while the stream missed it: judged flat by its absence from /positions, which
            # names no last fill (and a venue listing open positions only never shows the close).
            continue
        if _comparable_position(seen).size != want.size or seen.last_fill_id != want.last_fill_id:
            found.append(f"position {market} differs:\n  session {seen!r}\n  venue   {want!r}")

    # Fills: exactly once to the consumer; the ledger holds them all.
    unbusted, busted = truth_fills(truth)
    delivered = consumer.fills + consumer.redelivered
    found.extend(
        f"fill {key.fill_id} delivered {delivered[key]} times (expected once)"
        for key in unbusted
        if delivered[key] != 1
    )
    found.extend(
        f"busted fill {key.fill_id} delivered {delivered[key]} times (expected at most once)"
        for key in busted
        if delivered[key] > 1
    )
    strangers = set(delivered) - set(unbusted) - set(busted)
    if strangers:
        found.append(f"fills delivered that the venue never had: {sorted(map(str, strangers))[:3]}")
    want_busts = Counter(b.fill_id for b in truth.busts)
    if consumer.busts != want_busts:
        found.append(
            f"busts delivered {dict(consumer.busts - want_busts)} extra, {dict(want_busts - consumer.busts)} missing"
        )
    if consumer.redelivered and not outcome.restarts:
        found.append(f"{sum(consumer.redelivered.values())} redeliveries without a restart")
    view = outcome.ledger
    for key, fill in unbusted.items():
        stored = view.stored[key]
        if stored is None:
            found.append(f"fill {key.fill_id} is not in the ledger")
        elif stored.content() != fill.content():
            found.append(f"fill {key.fill_id} differs in the ledger: {stored!r} vs {fill!r}")
    stored_busted = 0
    for key, fill in busted.items():
        if not view.busted[key.fill_id]:
            found.append(f"busted fill {key.fill_id} is not marked busted in the ledger")
        stored = view.stored[key]
        if stored is not None and stored.content() != fill.content():
            found.append(f"busted fill {key.fill_id} differs in the ledger")
        # Recorded before its bust: delivered once, and the bust names it. Bust first: stored
        # for the record if it ever arrives, never delivered (RecordOutcome.BUSTED).
        if delivered[key] and stored is None:
            found.append(f"busted fill {key.fill_id} was delivered but is not in the ledger")
        if delivered[key] and key.fill_id not in consumer.bust_carried_fill:
            found.append(f"busted fill {key.fill_id} was delivered, but its bust event did not carry it")
        stored_busted += stored is not None
    if view.count != len(unbusted) + stored_busted:
        found.append(f"the ledger holds {view.count} fills, expected {len(unbusted)} + {stored_busted} busted")
    if view.undelivered:
        found.append(f"{view.undelivered} outbox entries unacknowledged after a normal close")

    # The event stream itself.
    found.extend(consumer.backwards[:3])
    found.extend(consumer.incoherent[:3])
    found.extend(f"discrepancy {d.kind.value}: {d.subject}: {d.detail}" for d in consumer.forbidden[:3])
    return found


def describe(run: Run) -> str:
    """One line about a run, for logs."""
    parts = [f"{run.case.label}: {run.seconds:.2f}s (cpu {run.cpu_seconds:.2f}s)"]
    for outcome in run.outcomes:
        h = outcome.health
        parts.append(
            f"fills={len(outcome.truth.fills) + len(outcome.truth.busted_fills)} ws={h.fills_from_stream} "
            f"rest={h.fills_from_rest} dup={h.duplicates_suppressed} reconnects={h.reconnects} "
            f"passes={h.passes_ok}/{h.passes_failed} final_rounds={outcome.converged_after} "
            f"restarts={outcome.restarts} stalls={outcome.consumer.stalls} "
            f"redelivered={sum(outcome.consumer.redelivered.values())}"
        )
    parts.append(f"faults={run.faults}")
    return " ".join(parts)
