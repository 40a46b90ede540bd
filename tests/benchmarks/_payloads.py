"""Paradex-shaped payloads and WebSocket frames for the benchmarks.

The payloads follow the official ``OrderResp`` / ``FillResult`` shapes with
every field the venue sends (the same fields the simulator renders), so the
parsers do their real work. Each order's life is five notifications: ``NEW``,
a fill, ``OPEN`` (partly filled), a second fill, ``CLOSED`` (filled); an
order update always follows the fill it reports, so no gap is raised.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Iterator
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from tests.benchmarks._support import ACCOUNT

#: The first order's creation time (venue ms): 2024-06-21.
T0 = 1_718_941_725_000
#: (market, price, size of each of the two fills, order size)
MARKETS = (
    ("BTC-USD-PERP", "64852.9", "0.002", "0.004"),
    ("ETH-USD-PERP", "3512.41", "0.05", "0.1"),
    ("SOL-USD-PERP", "141.337", "2", "4"),
)
MESSAGES_PER_ORDER = 5
FILLS_PER_ORDER = 2
#: How a server cuts its output for the client's reads (the client reads 64 KiB at once).
CHUNK_BYTES = 65536

JSON = dict[str, Any]


def _id(ms: int, serial: int) -> str:
    """A 28-digit time-ordered id, like Paradex's."""
    return f"{ms}{serial % 10**15:015d}"


def order_json(n: int, *, status: str, remaining: str, size: str, updated_at: int, avg: str) -> JSON:
    market, price, _, _ = MARKETS[n % len(MARKETS)]
    created = T0 + 10 * n
    return {
        "id": _id(created, n * 7919),
        "account": ACCOUNT,
        "market": market,
        "side": "BUY" if n % 2 else "SELL",
        "type": "LIMIT",
        "size": size,
        "remaining_size": remaining,
        "price": price,
        "status": status,
        "created_at": created,
        "last_updated_at": updated_at,
        "timestamp": created - 3,
        "cancel_reason": "",
        "client_id": f"bench-{n}",
        "seq_no": updated_at * 1_000_000 + n % 1_000_000,
        "instruction": "GTC",
        "avg_fill_price": avg,
        "stp": "EXPIRE_TAKER",
        "received_at": created,
        "published_at": updated_at,
        "flags": [],
        "trigger_price": "0",
    }


def fill_json(n: int, part: int, *, size: str, remaining: str, at: int) -> JSON:
    market, price, _, _ = MARKETS[n % len(MARKETS)]
    created = T0 + 10 * n
    return {
        "id": _id(at, n * 104_729 + part),
        "side": "BUY" if n % 2 else "SELL",
        "liquidity": "MAKER" if part else "TAKER",
        "market": market,
        "order_id": _id(created, n * 7919),
        "price": price,
        "size": size,
        "fee": "0.0389117",
        "fee_currency": "USDC",
        "created_at": at,
        "remaining_size": remaining,
        "client_id": f"bench-{n}",
        "fill_type": "FILL",
        "realized_pnl": "0" if part == 0 else "1.25",
        "realized_funding": "0",
        "account": ACCOUNT,
        "underlying_price": price,
        "flags": [],
        "orderbook_seq_no": 2 * n + part + 1,
    }


def order_life(n: int) -> Iterator[tuple[str, JSON]]:
    """The five ``(channel, data)`` notifications of order ``n``."""
    _, price, half, size = MARKETS[n % len(MARKETS)]
    created = T0 + 10 * n
    yield "orders.ALL", order_json(n, status="NEW", remaining=size, size=size, updated_at=created, avg="")
    yield "fills.ALL", fill_json(n, 0, size=half, remaining=half, at=created + 1)
    yield "orders.ALL", order_json(n, status="OPEN", remaining=half, size=size, updated_at=created + 1, avg=price)
    yield "fills.ALL", fill_json(n, 1, size=half, remaining="0", at=created + 2)
    yield "orders.ALL", order_json(n, status="CLOSED", remaining="0", size=size, updated_at=created + 2, avg=price)


def notifications(orders: int, *, first: int = 0) -> list[tuple[str, JSON]]:
    """``(channel, data)`` of ``orders`` whole order lives: ``5 * orders`` notifications."""
    return list(itertools.chain.from_iterable(order_life(n) for n in range(first, first + orders)))


def rpc_text(channel: str, data: JSON) -> str:
    """The JSON-RPC text of one subscription notification, as Paradex sends it."""
    message = {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    return json.dumps(message, separators=(",", ":"))


def open_pair() -> tuple[WSConnection, WSConnection]:
    """A (client, server) pair of wsproto connections that completed the handshake."""
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="bench.invalid", target="/v1")))
    list(server.events())
    client.receive_data(server.send(AcceptConnection()))
    list(client.events())
    return client, server


class Frames:
    """``texts`` encoded as server-to-client WebSocket frames (unmasked, as a server sends), cut into reads."""

    def __init__(self, texts: list[str], *, chunk_bytes: int = CHUNK_BYTES) -> None:
        _, server = open_pair()
        frames = [server.send(TextMessage(data=text)) for text in texts]
        blob = b"".join(frames)
        ends = list(itertools.accumulate(len(frame) for frame in frames))
        self.messages = len(texts)
        self.bytes = len(blob)
        self.chunks = [blob[start : start + chunk_bytes] for start in range(0, len(blob), chunk_bytes)]
        #: Messages complete once chunk ``i`` (and all before it) has been read.
        self.complete_after = [
            bisect.bisect_right(ends, min(start + chunk_bytes, len(blob))) for start in range(0, len(blob), chunk_bytes)
        ]
