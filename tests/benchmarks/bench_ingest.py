"""Benchmark (a): WebSocket ingest through the whole live path, against wsproto + json.loads.

Run it through nox (``nox -s bench``) or directly, from the repository root::

    python -m tests.benchmarks.bench_ingest            # 100,000 notifications, 5 rounds
    python -m tests.benchmarks.bench_ingest --quick    # 20,000 notifications, 3 rounds

The input is ``N`` Paradex ``orders.ALL`` / ``fills.ALL`` notifications (40%
fills), encoded once as real server-to-client WebSocket frames (wsproto,
unmasked as a server sends them) and cut into 64 KiB reads.

* **Baseline**: a wsproto client connection decodes the reads and
  ``json.loads`` each text message.
* **Session path** (the subject): a ``reconcile_core.runtime.Session`` over
  a ``ParadexSource`` and a fresh ``SqliteLedger`` (``synchronous="full"``).
  The source's ``ParadexWebSocket`` connects through an in-memory byte stream
  whose far end performs the WebSocket handshake, answers ``auth`` and the
  five ``subscribe`` calls, then serves the pre-encoded reads. What the
  timing covers: the client's wsproto decode, the Paradex parsers (the
  msgspec fast path of ``reconcile_paradex._wire``, ``decode_json`` and the
  strict parsers where it declines), the hint stream, the session's batched merge into the
  ``AccountReconciler`` (each fill recorded in the ledger, one commit per
  batch before delivery), the bounded event channel, and the consumer's
  ``async for event in session.events()`` (with automatic acknowledgements,
  which are written to the ledger too). The session's connect pass (REST,
  served in-process by the Paradex simulator for an account with no history)
  finishes before the clock starts.
* The far end releases a read only while fewer than ``WINDOW`` notifications
  are between it and the consumer, like TCP flow control: a burst larger than
  the client's notification buffer would otherwise (by design) drop the
  connection, and the figure is the sustained rate.
* **Reference**: the same session path over a ``MemoryLedger`` (dictionaries,
  no SQLite, no durability). Not a subject: it shows what the durable ledger
  costs, and the most the rest of the path could reach without it.
* Between the baseline and the session path, synchronous layers show where the time goes: + parsing
  (as the source parses: ``decode_notification`` and ``value_from_wire``, with
  ``decode_json`` and ``parse_order``/``parse_fill`` as the fallback), + merge and record
  (``AccountReconciler`` over ``SqliteLedger``, a commit every 256).

Goal: the session path sustains at least 40% of the baseline's rate.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import httpx
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage

from reconcile_core import AccountReconciler, Discrepancy, FillRecorded, MemoryLedger, OrderUpdated, Source
from reconcile_core.runtime import Session, SessionConfig
from reconcile_core.sqlite import SqliteLedger
from reconcile_paradex import ParadexSource, TokenBucket, decode_json, parse_fill, parse_order
from reconcile_paradex._wire import decode_notification, value_from_wire
from reconcile_paradex.testing import ParadexSimulator
from tests.benchmarks._payloads import FILLS_PER_ORDER, MESSAGES_PER_ORDER, Frames, notifications, open_pair, rpc_text
from tests.benchmarks._support import (
    ACCOUNT,
    alternate,
    arguments,
    finish,
    machine,
    ratio_figures,
    spread,
    table,
)

#: Notifications allowed between the far end and the consumer (the client buffers 1000).
WINDOW = 800
#: Observations merged under one commit in the synchronous "merge and record" layer
#: (the session's default hint_buffer, the largest batch it merges under one commit).
BATCH = 256


# -- the synchronous layers ---------------------------------------------------------------


def baseline(frames: Frames) -> float:
    """wsproto decode + ``json.loads`` of every text message; messages per second."""
    client, _ = open_pair()
    parts: list[str] = []
    count = 0
    started = time.perf_counter()
    for chunk in frames.chunks:
        client.receive_data(chunk)
        for event in client.events():
            if isinstance(event, TextMessage):
                parts.append(event.data)
                if event.message_finished:
                    json.loads("".join(parts))
                    parts.clear()
                    count += 1
    elapsed = time.perf_counter() - started
    assert count == frames.messages, (count, frames.messages)
    return count / elapsed


def _value(text: str) -> object:
    """The order or fill of one notification, as the source gets it: the fast path, else the strict one."""
    decoded = decode_notification(text)
    if decoded is not None:
        value = value_from_wire(decoded[1], account=ACCOUNT, source=Source.WS)
        if value is not None:
            return value
    message: Any = decode_json(text)
    params = message["params"]
    if params["channel"].startswith("orders"):
        return parse_order(params["data"], source=Source.WS).value
    return parse_fill(params["data"], account=ACCOUNT, source=Source.WS).value


def _observations(frames: Frames, sink: Callable[[object], None]) -> int:
    """Decode and parse every message as ``ParadexSource`` does (see ``_value``); hand each value to ``sink``."""
    client, _ = open_pair()
    parts: list[str] = []
    count = 0
    for chunk in frames.chunks:
        client.receive_data(chunk)
        for event in client.events():
            if not isinstance(event, TextMessage):
                continue
            parts.append(event.data)
            if not event.message_finished:
                continue
            text = "".join(parts)
            parts.clear()
            sink(_value(text))
            count += 1
    return count


def parsed(frames: Frames) -> float:
    """Baseline + the Paradex parsers: the msgspec fast path, ``decode_json`` + ``parse_*`` where it declines."""
    started = time.perf_counter()
    count = _observations(frames, lambda value: None)
    elapsed = time.perf_counter() - started
    assert count == frames.messages
    return count / elapsed


def merged(frames: Frames, scratch: Path) -> float:
    """+ ``AccountReconciler.merge`` over a ``SqliteLedger`` (fills recorded), a commit every ``BATCH``."""
    path = scratch / f"merged-{time.monotonic_ns()}.sqlite"
    ledger = SqliteLedger(path)
    reconciler = AccountReconciler(venue="paradex", account=ACCOUNT, ledger=ledger)
    events = 0
    pending = 0

    def sink(value: object) -> None:
        nonlocal events, pending
        events += len(reconciler.merge(value).events)  # type: ignore[arg-type]
        pending += 1
        if pending == BATCH:
            ledger.commit()
            pending = 0

    started = time.perf_counter()
    count = _observations(frames, sink)
    ledger.commit()
    elapsed = time.perf_counter() - started
    fills = ledger.count()
    ledger.close()
    assert fills == count * FILLS_PER_ORDER // MESSAGES_PER_ORDER, (fills, count)
    assert events == count, (events, count)
    return count / elapsed


# -- the live session path ------------------------------------------------------------------


class Firehose(anyio.abc.ByteStream):
    """The far end of an in-memory connection: a minimal Paradex WebSocket server.

    Answers the handshake, ``auth`` and ``subscribe``; once :meth:`start` is
    called, serves the pre-encoded reads, at most ``WINDOW`` notifications
    ahead of what the consumer reported through :meth:`consumed`.
    """

    def __init__(self, frames: Frames) -> None:
        self._frames = frames
        self._server = WSConnection(ConnectionType.SERVER)
        self._outgoing = bytearray()
        self._next = 0
        self._started = False
        self._closed = False
        self._consumed = 0
        self._wakeup = anyio.Event()
        self.subscribed: list[str] = []

    def _wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._started = True
        self._wake()

    def consumed(self, count: int) -> None:
        self._consumed = count
        if self._next < len(self._frames.chunks) and count >= self._frames.complete_after[self._next] - WINDOW:
            self._wake()

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        self._server.receive_data(bytes(item))
        for event in self._server.events():
            if isinstance(event, Request):
                self._outgoing += self._server.send(AcceptConnection())
            elif isinstance(event, TextMessage):
                request = json.loads(event.data)
                result: dict[str, object] = {"node_id": "bench"}
                if request["method"] == "subscribe":
                    channel = request["params"]["channel"]
                    self.subscribed.append(channel)
                    result = {"channel": channel}
                answer = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result})
                self._outgoing += self._server.send(TextMessage(data=answer))
            elif isinstance(event, Ping | CloseConnection):
                self._outgoing += self._server.send(event.response())
        self._wake()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            if self._outgoing:
                chunk = bytes(self._outgoing[:max_bytes])
                del self._outgoing[:max_bytes]
                return chunk
            if self._closed:
                raise anyio.EndOfStream
            chunks = self._frames.chunks
            if (
                self._started
                and self._next < len(chunks)
                and self._consumed >= self._frames.complete_after[self._next] - WINDOW
            ):
                chunk = chunks[self._next]
                assert len(chunk) <= max_bytes
                self._next += 1
                await anyio.lowlevel.checkpoint()  # as a socket read does
                return chunk
            if self._wakeup.is_set():
                self._wakeup = anyio.Event()
            await self._wakeup.wait()

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self._closed = True
        self._wake()


async def _session_rate(frames: Frames, scratch: Path, discrepancies: Counter[str], durable: bool) -> float:
    sim = ParadexSimulator(seed=8, accounts=[ACCOUNT])
    firehose = Firehose(frames)

    async def connector(url: str) -> anyio.abc.ByteStream:
        return firehose

    ledger: SqliteLedger | MemoryLedger = (
        SqliteLedger(scratch / f"session-{time.monotonic_ns()}.sqlite") if durable else MemoryLedger()
    )
    expected = frames.messages
    done = anyio.Event()
    async with (
        httpx.AsyncClient(transport=sim.http_transport()) as http,
        ParadexSource(
            account=ACCOUNT,
            token=sim.issue_read_only_token(ACCOUNT),
            env=None,
            rest_url=sim.rest_url,
            ws_url="ws://bench.invalid/v1",
            http_client=http,
            ws_connector=connector,
            rate_limiter=TokenBucket(rate=1e6, capacity=1e6),
        ) as source,
    ):
        session = Session(source, ledger, config=SessionConfig())

        async def consume() -> None:
            seen = 0
            async for event in session.events():
                if type(event) is OrderUpdated or type(event) is FillRecorded:
                    seen += 1
                    firehose.consumed(seen)
                    if seen == expected:
                        done.set()
                elif isinstance(event, Discrepancy):
                    discrepancies[event.kind.value] += 1

        async with anyio.create_task_group() as group, session:
            group.start_soon(consume)
            with anyio.fail_after(60):
                await session.wait_synced()
            started = time.perf_counter()
            firehose.start()
            with anyio.fail_after(600):
                await done.wait()
            elapsed = time.perf_counter() - started
            group.cancel_scope.cancel()
    fills = ledger.count()
    ledger.close()
    assert fills == expected * FILLS_PER_ORDER // MESSAGES_PER_ORDER, (fills, expected)
    assert len(firehose.subscribed) == 5, firehose.subscribed
    return expected / elapsed


def session_path(frames: Frames, scratch: Path, backend: str = "asyncio", *, durable: bool = True) -> float:
    """The whole live path, messages per second (see the module docstring).

    ``durable=False`` puts the session over a ``MemoryLedger`` instead: the
    same path without SQLite (no durability), a reference for what the
    durable ledger costs, not a subject.
    """
    discrepancies: Counter[str] = Counter()
    rate = anyio.run(_session_rate, frames, scratch, discrepancies, durable, backend=backend)
    assert not discrepancies, discrepancies  # a consistent stream: nothing to report
    return rate


# -- the run --------------------------------------------------------------------------------


def measure(messages: int, rounds: int, scratch: Path, backend: str = "asyncio") -> dict[str, Any]:
    """Alternating rounds of every layer on the same frames; medians and ratios to the baseline."""
    orders = max(1, messages // MESSAGES_PER_ORDER)
    frames = Frames([rpc_text(channel, data) for channel, data in notifications(orders)])
    runs = alternate(
        rounds,
        {
            "baseline": lambda: baseline(frames),
            "parsed": lambda: parsed(frames),
            "merged": lambda: merged(frames, scratch),
            "session": lambda: session_path(frames, scratch, backend),
            "memory": lambda: session_path(frames, scratch, backend, durable=False),
        },
    )
    return {
        "messages": frames.messages,
        "fills": frames.messages * FILLS_PER_ORDER // MESSAGES_PER_ORDER,
        "bytes": frames.bytes,
        "reads": len(frames.chunks),
        "rounds": rounds,
        "backend": backend,
        "runs": runs,
        "figures": ratio_figures(runs, "baseline"),
    }


LABELS = {
    "baseline": "baseline: wsproto decode + `json.loads`",
    "parsed": "+ Paradex parsers (msgspec fast path, strict `decode_json` + parsers as fallback)",
    "merged": "+ reconciler merge + SqliteLedger record, commit every 256",
    "session": "**Session path** (all of the above + runtime + delivery + acks)",
    "memory": "reference: the session path over a `MemoryLedger` (no SQLite, no durability)",
}


def report(result: dict[str, Any], info: dict[str, str]) -> str:
    figures = result["figures"]
    rows = [
        (
            label,
            f"{figures[name]['median']:,.0f}",
            f"{figures[name]['median'] * FILLS_PER_ORDER / MESSAGES_PER_ORDER:,.0f}",
            f"{figures[name]['ratio']:.2f}",
            spread(figures[name]),
        )
        for name, label in LABELS.items()
    ]
    head = (
        f"\n(a) WS ingest — {info['python']}, SQLite {info['sqlite']}, {info['machine']}, {info['date']}, "
        f"{result['backend']}\n\n{result['messages']:,} notifications ({result['fills']:,} fills), "
        f"{result['bytes'] / 2**20:.1f} MiB in {result['reads']} reads; medians of {result['rounds']} alternating "
        "rounds.\n\n"
    )
    body = table(["layer", "messages/s", "fills/s", "/ baseline", "range"], rows)
    session = figures["session"]["ratio"]
    verdict = "met" if session >= 0.40 else "MISSED"
    # The durable ledger's share of the session path's time per message, from the medians.
    ledger_share = 1 - figures["session"]["median"] / figures["memory"]["median"]
    return (
        head
        + body
        + f"\nGoal >= 0.40 of the baseline: {verdict} ({session:.2f}). Without SQLite the same path reaches "
        f"{figures['memory']['ratio']:.2f}: the durable ledger takes {ledger_share:.0%} of the session path's time.\n"
    )


def main() -> None:
    parser = arguments(__doc__, rounds=5)
    parser.add_argument("--messages", type=int, help="notifications per round (default 100,000; --quick 20,000)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    options = parser.parse_args()
    messages = options.messages or (20_000 if options.quick else 100_000)
    rounds = min(options.rounds, 3) if options.quick else options.rounds
    info = machine()
    with tempfile.TemporaryDirectory(dir=options.dir) as scratch:
        result = measure(messages, rounds, Path(scratch), options.backend)
    result["machine"] = info
    finish(result, report(result, info), options.json)


if __name__ == "__main__":
    main()
