"""Benchmark (b): REST fill backfill over real HTTP, against raw GETs + json.loads.

Run it through nox (``nox -s bench``) or directly, from the repository root::

    python -m tests.benchmarks.bench_backfill            # 100,000 fills, 5 rounds
    python -m tests.benchmarks.bench_backfill --quick    # 20,000 fills, 3 rounds

The Paradex simulator serves one account's 100,000 fills (sweeps of 10 per
order) on a loopback uvicorn server (``serve_loopback``), in a child process
so that its JSON rendering does not compete with the measured client for the
interpreter lock. Every variant reads ``GET /v1/fills`` in pages of 5000
(20 pages), following the venue's signed ``next`` cursor, with one
``httpx.AsyncClient``.

* **Baseline**: raw ``client.get`` of each page (the same query and bearer
  header) + ``json.loads``.
* **Source**: ``ParadexSource.fills(since=0)`` — the REST client (token
  bucket, retries, error mapping) and the page parser (the msgspec fast path,
  ``decode_json`` and ``parse_fill`` for what it declines).
* **Backfill** (the subject): the same pages, each merged into an
  ``AccountReconciler`` over a fresh ``SqliteLedger`` (``synchronous="full"``;
  every fill recorded, one commit per page before its events are handed on),
  and the ``FillRecorded`` events handed to a consumer (counted). Before the
  clock starts, the account's order history is merged (as a real full pass
  does first), so each fill also runs the reconciler's gap check against its
  order.

The rate limiter is relaxed for the benchmark (``TokenBucket(rate=1e6,
capacity=1e6)``): the default bucket (600 per minute, bursts of 50) would
let one 20-page backfill through untouched, but not several rounds in a row.

Goal: the backfill reaches at least 50% of the baseline's rate.
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import httpx

from reconcile_core import AccountReconciler, FillRecorded, Page
from reconcile_core.runtime import SessionConfig
from reconcile_core.runtime._delivery import EventChannel, MergeGate
from reconcile_core.runtime._health import Metrics
from reconcile_core.runtime._passes import Reconciliation
from reconcile_core.sqlite import SqliteLedger
from reconcile_paradex import ParadexSource, TokenBucket
from tests.benchmarks._simserver import SimServer
from tests.benchmarks._support import ACCOUNT, alternate, arguments, finish, machine, ratio_figures, spread, table

PAGE_SIZE = 5000


def _source(info: dict[str, Any], client: httpx.AsyncClient) -> ParadexSource:
    return ParadexSource(
        account=ACCOUNT,
        token=info["token"],
        env=None,
        rest_url=info["rest_url"],
        ws_url=info["ws_url"],
        http_client=client,
        page_size=PAGE_SIZE,
        rate_limiter=TokenBucket(rate=1e6, capacity=1e6),
    )


async def _baseline(info: dict[str, Any], client: httpx.AsyncClient) -> float:
    url = info["rest_url"] + "/fills"
    headers = {"Accept": "application/json", "Authorization": f"Bearer {info['token']}"}
    params: dict[str, str | int] = {"start_at": 0, "page_size": PAGE_SIZE}
    rows = 0
    started = time.perf_counter()
    while True:
        response = await client.get(url, params=params, headers=headers)
        response.raise_for_status()
        payload = json.loads(response.content)
        rows += len(payload["results"])
        cursor = payload.get("next")
        if not cursor:
            break
        params = {"start_at": 0, "page_size": PAGE_SIZE, "cursor": cursor}
    elapsed = time.perf_counter() - started
    assert rows == info["fills"], (rows, info["fills"])
    return rows / elapsed


async def _source_only(info: dict[str, Any], client: httpx.AsyncClient) -> float:
    rows = 0
    async with _source(info, client) as source:
        started = time.perf_counter()
        async for page in source.fills(since=0):
            rows += len(page.items)
            assert not page.problems
        elapsed = time.perf_counter() - started
    assert rows == info["fills"], (rows, info["fills"])
    return rows / elapsed


async def _backfill(info: dict[str, Any], client: httpx.AsyncClient, scratch: Path) -> float:
    ledger = SqliteLedger(scratch / f"backfill-{time.monotonic_ns()}.sqlite")
    reconciler = AccountReconciler(venue="paradex", account=ACCOUNT, ledger=ledger)
    delivered = 0

    def consume(events: Iterable[object]) -> None:
        nonlocal delivered
        delivered += sum(1 for event in events if isinstance(event, FillRecorded))

    async with _source(info, client) as source:
        async for orders in source.order_history(since=0):
            reconciler.merge_many(orders.items)
            ledger.commit()
        started = time.perf_counter()
        async for page in source.fills(since=0):
            step = reconciler.merge_many(page.items)
            ledger.commit()  # durable before the consumer sees the page's events
            consume(step.events)
        elapsed = time.perf_counter() - started
    recorded = ledger.count()
    ledger.close()
    assert delivered == recorded == info["fills"], (delivered, recorded, info["fills"])
    return delivered / elapsed


async def _session_backfill(info: dict[str, Any], client: httpx.AsyncClient, scratch: Path) -> float:
    """The session's own backfill path: its paginated read (one page read ahead), merge gate and channel."""
    ledger = SqliteLedger(scratch / f"session-{time.monotonic_ns()}.sqlite")
    reconciler = AccountReconciler(venue="paradex", account=ACCOUNT, ledger=ledger)
    config = SessionConfig()
    channel = EventChannel(ledger=ledger, size=config.event_buffer, auto_ack=True, ack_batch=config.ack_batch)
    gate = MergeGate(reconciler=reconciler, ledger=ledger, channel=channel, on_change=lambda: None)
    delivered = 0
    all_delivered = anyio.Event()

    async def consume() -> None:
        nonlocal delivered
        async for event in channel.iterate():  # acknowledged as the session's consumer does
            if isinstance(event, FillRecorded):
                delivered += 1
                if delivered == info["fills"]:
                    all_delivered.set()

    async with _source(info, client) as source, anyio.create_task_group() as group:
        group.start_soon(consume)
        passes = Reconciliation(
            source=source, ledger=ledger, reconciler=reconciler, gate=gate, config=config, metrics=Metrics()
        )

        async def merge_page(page: Page[Any]) -> None:
            await gate.merge([*page.items, *page.problems])

        await passes.pages("order_history", lambda: source.order_history(since=0), merge_page)
        started = time.perf_counter()
        await passes.pages("fills", lambda: source.fills(since=0), merge_page)
        await all_delivered.wait()
        elapsed = time.perf_counter() - started
        channel.close_sending()
    channel.close(acknowledge_taken=True)
    recorded = ledger.count()
    ledger.close()
    assert delivered == recorded == info["fills"], (delivered, recorded, info["fills"])
    return delivered / elapsed


def measure(fills: int, rounds: int, scratch: Path, backend: str = "asyncio") -> dict[str, Any]:
    """Alternating rounds of baseline, source and backfill against one loopback simulator."""
    with SimServer(account=ACCOUNT, fills=fills) as info:

        async def run(which: str) -> float:
            async with httpx.AsyncClient(timeout=120) as client:
                if which == "baseline":
                    return await _baseline(info, client)
                if which == "source":
                    return await _source_only(info, client)
                if which == "backfill":
                    return await _backfill(info, client, scratch)
                return await _session_backfill(info, client, scratch)

        runs = alternate(
            rounds,
            {
                name: functools.partial(anyio.run, run, name, backend=backend)
                for name in ("baseline", "source", "backfill", "session")
            },
        )
    return {
        "fills": info["fills"],
        "pages": -(-info["fills"] // PAGE_SIZE),
        "orders": info["orders"],
        "rounds": rounds,
        "backend": backend,
        "runs": runs,
        "figures": ratio_figures(runs, "baseline"),
    }


LABELS = {
    "baseline": "baseline: `client.get` + `json.loads`",
    "source": "`ParadexSource.fills()` (REST client + msgspec fast path, strict `parse_fill` as fallback)",
    "backfill": "+ reconciler merge + SqliteLedger record, commit per page, page by page",
    "session": "**session backfill**: the session's paged read (one page ahead) + merge gate + channel + acks",
}


def report(result: dict[str, Any], info: dict[str, str]) -> str:
    figures = result["figures"]
    rows = [
        (label, f"{figures[name]['median']:,.0f}", f"{figures[name]['ratio']:.2f}", spread(figures[name]))
        for name, label in LABELS.items()
    ]
    head = (
        f"\n(b) REST backfill — {info['python']}, SQLite {info['sqlite']}, {info['machine']}, {info['date']}, "
        f"{result['backend']}\n\n{result['fills']:,} fills in {result['pages']} pages of {PAGE_SIZE} over loopback "
        f"HTTP; medians of {result['rounds']} alternating rounds.\n\n"
    )
    body = table(["variant", "fills/s", "/ baseline", "range"], rows)
    ratio = figures["session"]["ratio"]
    verdict = "met" if ratio >= 0.50 else "MISSED"
    return head + body + f"\nGoal >= 0.50 of the baseline: {verdict} ({ratio:.2f}).\n"


def main() -> None:
    parser = arguments(__doc__, rounds=5)
    parser.add_argument("--fills", type=int, help="fills served (default 100,000; --quick 20,000)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    options = parser.parse_args()
    fills = options.fills or (20_000 if options.quick else 100_000)
    rounds = min(options.rounds, 3) if options.quick else options.rounds
    info = machine()
    with tempfile.TemporaryDirectory(dir=options.dir) as scratch:
        result = measure(fills, rounds, Path(scratch), options.backend)
    result["machine"] = info
    finish(result, report(result, info), options.json)


if __name__ == "__main__":
    main()
