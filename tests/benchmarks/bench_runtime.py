"""Benchmarks (c), (d), (f): restart to ready, memory, and one reconcile cycle, as the history grows.

Run it through nox (``nox -s bench``) or directly, from the repository root::

    python -m tests.benchmarks.bench_runtime            # up to 1,000,000 fills
    python -m tests.benchmarks.bench_runtime --quick    # up to 100,000 fills

One ``SqliteLedger`` grows to 10k, 100k and 1M fills through the real write
path: an ``AccountReconciler`` merges each order's life (four fills, then
the order ``FILLED``), a commit every 1000 observations, every fill
acknowledged as a consumer would except the newest 100. At each size:

* **(c) restart to ready.** Open the ledger, start a ``Session`` on it (its
  source never connects: no network), and time until the consumer holds the
  first redelivered fill (the session's first ``undelivered()`` scan done and
  delivered), and until the session starts connecting (redelivery finished).
  Baseline in the same run: raw ``sqlite3.connect`` + the first 256 outbox
  rows. Median of 7, operating-system cache warm. Goal: flat, <= 100 ms at 1M.
* **(d) memory.** Resident memory of the process before the ledger and the
  reconciler exist, and after 1M fills went through them (peak sampled at
  every commit). Everything in between counts, the restarts and cycles of
  the other measurements included. Goal: <= 100 MiB of growth.
* **(f) one reconcile cycle.** At the smallest and largest size, a
  ``Session`` over ``ParadexSource`` against the Paradex simulator on loopback
  (in a child process) holding 10, 100 or 1000 open orders and 0 new fills.
  The simulator's own history is small (1000 fills, ten minutes older than
  the open orders); the ledger's 10k / 1M fills are history the venue no
  longer needs to send. After the connect pass, ``reconcile_now()`` is timed
  7 times. Baseline in the same run: the same six GETs the pass makes (time,
  open orders, positions, and orders, fills and busts from the watermark minus
  the overlap), with the same client, + ``json.loads``. ``silence_timeout``
  and ``reconcile_interval`` are raised so that no other pass runs meanwhile.
  Goal: the cycle does not grow with the ledger's history.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx

from reconcile_core import (
    AccountReconciler,
    Fill,
    FillKey,
    FillKind,
    FillRecorded,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Side,
    Source,
)
from reconcile_core.runtime import Session, SessionConfig
from reconcile_core.sqlite import SqliteLedger
from reconcile_paradex import ParadexSource, TokenBucket
from reconcile_paradex.testing import DEFAULT_START_MS
from tests.benchmarks._simserver import SimServer
from tests.benchmarks._support import ACCOUNT, VENUE, arguments, finish, machine, rss_bytes, table

FILLS_PER_ORDER = 4
#: Observations merged under one commit while growing.
COMMIT_EVERY = 1000
#: Fills left unacknowledged (redelivered on restart).
UNACKNOWLEDGED = 100
OPEN_ORDER_COUNTS = (10, 100, 1000)
#: Fills in the simulator's own history (older than any pass's window).
SIMULATOR_FILLS = 1000
REPEAT = 7
#: The ledger's history ends two hours before the simulator's clock starts.
HISTORY_START_MS = DEFAULT_START_MS - 2 * 3_600_000 - 1_300_000 * 5
INSTRUMENTS = ("BTC-USD-PERP", "ETH-USD-PERP", "SOL-USD-PERP")


# -- the history --------------------------------------------------------------------------


def order_life(n: int) -> Iterator[Fill | Order]:
    """Order ``n``: four fills, then the order ``FILLED`` (core types, as a source yields them)."""
    at = HISTORY_START_MS + 5 * n * FILLS_PER_ORDER
    order_id = f"{at}{n % 10**15:015d}"
    instrument = INSTRUMENTS[n % len(INSTRUMENTS)]
    side = Side.BUY if n % 2 else Side.SELL
    part = Decimal("0.001") * (1 + n % 7)
    price = Decimal(64000 + n % 997) + Decimal("0.5")
    source = Source.WS if n % 3 else Source.REST
    for k in range(FILLS_PER_ORDER):
        yield Fill(
            key=FillKey(venue=VENUE, account=ACCOUNT, fill_type="FILL", fill_id=f"{at + k}{(n * 4 + k) % 10**15:015d}"),
            kind=FillKind.TRADE,
            order_id=order_id,
            instrument=instrument,
            side=side,
            price=price,
            size=part,
            fee=Decimal("-0.00012"),
            fee_currency="USDC",
            liquidity=Liquidity.MAKER if k else Liquidity.TAKER,
            time=at + k,
            source=source,
            client_id=f"c{n}",
            realized_pnl=Decimal("1.25") if k == 3 else None,
        )
    yield Order(
        order_id=order_id,
        client_id=f"c{n}",
        instrument=instrument,
        side=side,
        type=OrderType.LIMIT,
        price=price,
        quantity=part * FILLS_PER_ORDER,
        filled_quantity=part * FILLS_PER_ORDER,
        average_fill_price=price,
        status=OrderStatus.FILLED,
        cancel_reason=None,
        created_at=at,
        updated_at=at + FILLS_PER_ORDER,
        sequence=None,
        source=source,
    )


class Grower:
    """Grows one ledger through one reconciler; samples RSS at every commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        gc.collect()
        self.rss_before = rss_bytes()
        self.rss_peak = self.rss_before
        self.ledger = SqliteLedger(path)
        self.reconciler = AccountReconciler(venue=VENUE, account=ACCOUNT, ledger=self.ledger)
        self.fills = 0
        self.orders = 0
        self.seconds = 0.0
        self._pending: list[int] = []

    def grow_to(self, fills: int) -> None:
        started = time.perf_counter()
        ledger, reconciler = self.ledger, self.reconciler
        merged = 0
        while self.fills < fills:
            for observation in order_life(self.orders):
                for event in reconciler.merge(observation).events:
                    if isinstance(event, FillRecorded):
                        self._pending.append(event.offset)
                merged += 1
                if merged % COMMIT_EVERY == 0:
                    self._commit()
            self.orders += 1
            self.fills += FILLS_PER_ORDER
        last = HISTORY_START_MS + 5 * self.fills
        ledger.advance_watermark(venue=VENUE, account=ACCOUNT, value=last)
        self._commit()
        self.seconds += time.perf_counter() - started

    def _commit(self) -> None:
        self.ledger.commit()
        # The consumer handled everything but the newest UNACKNOWLEDGED fills.
        done, self._pending = self._pending[:-UNACKNOWLEDGED], self._pending[-UNACKNOWLEDGED:]
        if done:
            self.ledger.acknowledge(done)
            self.ledger.commit()
        self.rss_peak = max(self.rss_peak, rss_bytes())

    def close(self) -> None:
        self.ledger.close()

    def reopen(self) -> None:
        self.ledger = SqliteLedger(self.path)
        self.reconciler.ledger = self.ledger  # the same reconciler, its memory included


# -- (c) restart to ready -------------------------------------------------------------------


class IdleSource:
    """A source that never connects: ``subscribe()`` waits forever (no network)."""

    venue = VENUE
    account = ACCOUNT
    settlement_lag_ms = 0

    def __init__(self) -> None:
        self.connecting = anyio.Event()

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[object]]:
        self.connecting.set()
        await anyio.sleep_forever()
        yield self  # type: ignore[misc]  # never reached


async def _ready_once(path: Path) -> tuple[float, float, float]:
    started = time.perf_counter()
    ledger = SqliteLedger(path)
    opened = time.perf_counter()
    source = IdleSource()
    try:
        async with Session(source, ledger, config=SessionConfig(auto_ack=False)) as session:  # type: ignore[arg-type]
            first = await session.events().__anext__()
            ready = time.perf_counter()
            assert isinstance(first, FillRecorded)
            assert first.redelivery
            await source.connecting.wait()
            connecting = time.perf_counter()
    finally:
        ledger.close()
    return (opened - started) * 1000, (ready - started) * 1000, (connecting - started) * 1000


def _raw_once(path: Path) -> float:
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT * FROM outbox ORDER BY delivery_offset LIMIT 256").fetchall()
    elapsed = (time.perf_counter() - started) * 1000
    conn.close()
    assert len(rows) >= UNACKNOWLEDGED
    return elapsed


def restart(path: Path, repeat: int = REPEAT, backend: str = "asyncio") -> dict[str, float]:
    """Median ms: raw open, ledger open, ready (first redelivery held), connecting (redelivery done)."""
    raw, opened, ready, connecting = [], [], [], []
    for _ in range(repeat):
        raw.append(_raw_once(path))
        o, r, c = anyio.run(_ready_once, path, backend=backend)
        opened.append(o)
        ready.append(r)
        connecting.append(c)
    return {
        "raw": statistics.median(raw),
        "open": statistics.median(opened),
        "ready": statistics.median(ready),
        "ready_max": max(ready),
        "connecting": statistics.median(connecting),
    }


# -- (f) one reconcile cycle ----------------------------------------------------------------


async def _raw_pass(client: httpx.AsyncClient, info: dict[str, Any], since: int) -> tuple[float, int]:
    base = info["rest_url"]
    headers = {"Accept": "application/json", "Authorization": f"Bearer {info['token']}"}
    window = {"start_at": since, "page_size": 5000}
    started = time.perf_counter()
    json.loads((await client.get(base + "/system/time", headers={"Accept": "application/json"})).content)
    rows = 0
    for path, params in (
        ("/orders", {}),
        ("/positions", {}),
        ("/orders-history", window),
        ("/fills", window),
        ("/tradebusts", window),
    ):
        response = await client.get(base + path, params=params, headers=headers)
        response.raise_for_status()
        rows += len(json.loads(response.content)["results"])
    return (time.perf_counter() - started) * 1000, rows


async def _cycles(ledger: SqliteLedger, info: dict[str, Any], repeat: int) -> dict[str, Any]:
    config = SessionConfig(reconcile_interval=3600, silence_timeout=3600)
    # The simulated venues share the account and this ledger, not their orders: what the last
    # one left live is no order of this one, and a session would look each of them up.
    stale = [r.order_id for r in ledger.live_orders(venue=VENUE, account=ACCOUNT)]
    if stale:
        ledger.note_orders(venue=VENUE, account=ACCOUNT, live=[], ended=stale)
        ledger.commit()
    passes: list[float] = []
    raws: list[float] = []
    fills_seen: set[int] = set()
    orders_seen: set[int] = set()
    raw_rows: set[int] = set()
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=60))
        source = await stack.enter_async_context(
            ParadexSource(
                account=ACCOUNT,
                token=info["token"],
                env=None,
                rest_url=info["rest_url"],
                ws_url=info["ws_url"],
                http_client=client,
                rate_limiter=TokenBucket(rate=1e6, capacity=1e6),
            )
        )
        session = Session(source, ledger, config=config)

        async def drain() -> None:
            async for _ in session.events():
                pass

        async with anyio.create_task_group() as group, session:
            group.start_soon(drain)
            with anyio.fail_after(120):
                await session.wait_synced()
            for _ in range(repeat):
                started = time.perf_counter()
                summary = await session.reconcile_now()
                passes.append((time.perf_counter() - started) * 1000)
                assert summary.ok, summary
                fills_seen.add(summary.fills_seen)
                orders_seen.add(summary.orders_seen)
                watermark = ledger.watermark(venue=VENUE, account=ACCOUNT)
                assert watermark is not None
                raw, rows = await _raw_pass(client, info, max(0, watermark - config.fill_overlap_ms))
                raws.append(raw)
                raw_rows.add(rows)
            group.cancel_scope.cancel()
    return {
        "pass_ms": statistics.median(passes),
        "raw_ms": statistics.median(raws),
        "ratio": statistics.median(p / r for p, r in zip(passes, raws, strict=True)),
        "fills_seen": sorted(fills_seen),
        "orders_seen": sorted(orders_seen),
        "raw_rows": sorted(raw_rows),
    }


def cycle(ledger: SqliteLedger, info: dict[str, Any], repeat: int = REPEAT, backend: str = "asyncio") -> dict[str, Any]:
    return anyio.run(_cycles, ledger, info, repeat, backend=backend)


# -- the run ------------------------------------------------------------------------------


def measure(
    sizes: tuple[int, ...],
    scratch: Path,
    *,
    open_orders: tuple[int, ...] = OPEN_ORDER_COUNTS,
    simulator_fills: int = SIMULATOR_FILLS,
    repeat: int = REPEAT,
    backend: str = "asyncio",
) -> dict[str, Any]:
    cycle_sizes = {sizes[0], sizes[-1]}
    result: dict[str, Any] = {"sizes": list(sizes), "restart": {}, "cycle": {}, "repeat": repeat, "backend": backend}
    with ExitStack() as servers:
        sims = {
            n: servers.enter_context(SimServer(account=ACCOUNT, fills=simulator_fills, open_orders=n))
            for n in open_orders
        }
        grower = Grower(scratch / "history.sqlite")
        for size in sizes:
            grower.grow_to(size)
            grower.close()
            result["restart"][size] = restart(grower.path, repeat, backend)
            grower.reopen()
            if size in cycle_sizes:
                result["cycle"][size] = {n: cycle(grower.ledger, sims[n], repeat, backend) for n in open_orders}
        gc.collect()
        rss_after = rss_bytes()
        grower.rss_peak = max(grower.rss_peak, rss_after)
        result["memory"] = {
            "fills": grower.fills,
            "before_mib": grower.rss_before / 2**20,
            "after_mib": rss_after / 2**20,
            "growth_mib": (rss_after - grower.rss_before) / 2**20,
            "peak_growth_mib": (grower.rss_peak - grower.rss_before) / 2**20,
            "orders_in_memory": len(grower.reconciler.orders),
        }
        result["build"] = {
            "fills": grower.fills,
            "seconds": grower.seconds,
            "file_mib": grower.path.stat().st_size / 2**20,
            "ledger_fills": grower.ledger.count(),
        }
        result["simulator"] = {n: {"fills": sims[n]["fills"], "open_orders": sims[n]["open_orders"]} for n in sims}
        grower.close()
    return result


def report(result: dict[str, Any], info: dict[str, str]) -> str:
    title = (
        f"\n(c)(d)(f) restart, memory, reconcile cycle — {info['python']}, SQLite {info['sqlite']}, "
        f"{info['machine']}, {info['date']}, {result['backend']}\n\n"
    )
    out = [title]
    rows = []
    sizes = [int(s) for s in result["restart"]]
    first = result["restart"][sizes[0]]["ready"]
    for size in sizes:
        r = result["restart"][size]
        rows.append(
            (
                f"{size:,}",
                f"{r['raw']:.1f}",
                f"{r['open']:.1f}",
                f"{r['ready']:.1f}",
                f"{r['ready_max']:.1f}",
                f"{r['connecting']:.1f}",
                f"{r['ready'] / first:.2f}",
            )
        )
    out.append(f"(c) Restart, median of {result['repeat']} (ms):\n\n")
    out.append(
        table(
            [
                "recorded fills",
                "raw sqlite3 open + outbox read",
                "SqliteLedger open",
                "ready: first redelivery held",
                "ready, max",
                "connecting",
                "ready / smallest",
            ],
            rows,
            align="r" * 7,
        )
    )
    memory = result["memory"]
    out.append(
        f"\n(d) RSS: {memory['before_mib']:.1f} MiB before, {memory['after_mib']:.1f} MiB after "
        f"{memory['fills']:,} fills (growth {memory['growth_mib']:.1f} MiB, peak growth "
        f"{memory['peak_growth_mib']:.1f} MiB; {memory['orders_in_memory']:,} orders held by the reconciler).\n"
    )
    build = result["build"]
    out.append(
        f"Growing took {build['seconds']:.1f} s ({build['fills'] / build['seconds']:,.0f} fills/s through the "
        f"reconciler); the file is {build['file_mib']:.0f} MiB, {build['ledger_fills']:,} fills.\n\n"
    )
    out.append(f"(f) One reconcile cycle (reconcile_now), median of {result['repeat']} (ms):\n\n")
    rows = []
    for size, by_orders in result["cycle"].items():
        for orders, c in by_orders.items():
            rows.append(
                (
                    f"{int(size):,}",
                    orders,
                    f"{c['raw_ms']:.1f}",
                    f"{c['pass_ms']:.1f}",
                    f"{c['ratio']:.2f}",
                    ",".join(map(str, c["fills_seen"])),
                    ",".join(map(str, c["orders_seen"])),
                )
            )
    out.append(
        table(
            ["ledger fills", "open orders", "raw GETs ms", "pass ms", "pass / raw", "fills read", "orders read"],
            rows,
            align="r" * 7,
        )
    )
    return "".join(out)


def main() -> None:
    parser = arguments(__doc__, rounds=REPEAT)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    options = parser.parse_args()
    sizes = (10_000, 100_000) if options.quick else (10_000, 100_000, 1_000_000)
    info = machine()
    with tempfile.TemporaryDirectory(dir=options.dir) as scratch:
        result = measure(sizes, Path(scratch), repeat=options.rounds, backend=options.backend)
    result["machine"] = info
    finish(result, report(result, info), options.json)


if __name__ == "__main__":
    main()
