"""A small, scriptable fake of the Paradex REST and WebSocket endpoints, for the plugin's tests.

Not the simulator (that lives in ``reconcile_paradex.testing``): just enough
venue to exercise the client's edges. REST answers ``httpx.Request`` objects
(``httpx.MockTransport(fake.handle)``, or the loopback h11 server below); the
WebSocket side is a wsproto server over any anyio byte stream (an in-memory
pipe, or a real TCP socket).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import h11
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

ACCOUNT = "0x49ddd7a564c978f6e4089ff8355b56a42b7e2d48ba282cb5aad60f04bea0ec3"
REST_URL = "https://fake.paradex.test/v1"
WS_URL = "wss://ws.fake.paradex.test/v1"
_CURSOR_KEY = b"fake-paradex-cursor-key"


# -- payload builders (shaped like the spec's responses) ------------------------


def order_payload(order_id: str, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": order_id,
        "account": ACCOUNT,
        "market": "BTC-USD-PERP",
        "side": "BUY",
        "type": "LIMIT",
        "size": "1",
        "remaining_size": "1",
        "price": "50000",
        "status": "OPEN",
        "created_at": 1_700_000_000_000,
        "last_updated_at": 1_700_000_000_000,
        "timestamp": 1_700_000_000_000,
        "cancel_reason": "",
        "client_id": "",
        "seq_no": 1,
        "instruction": "GTC",
        "avg_fill_price": "",
        "stp": "EXPIRE_TAKER",
        "received_at": 1_700_000_000_000,
        "published_at": 1_700_000_000_000,
        "flags": [],
        "trigger_price": "0",
    }
    payload.update(overrides)
    return payload


def fill_payload(fill_id: str, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": fill_id,
        "account": ACCOUNT,
        "side": "BUY",
        "liquidity": "TAKER",
        "market": "BTC-USD-PERP",
        "order_id": "o-1",
        "price": "50000",
        "size": "0.1",
        "fee": "0.5",
        "fee_currency": "USDC",
        "created_at": 1_700_000_000_000,
        "remaining_size": "0",
        "client_id": "",
        "fill_type": "FILL",
        "realized_pnl": "0",
        "realized_funding": "0",
        "underlying_price": "50000",
        "flags": [],
    }
    payload.update(overrides)
    return payload


def position_payload(market: str, size: str, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": f"{ACCOUNT}-{market}",
        "account": ACCOUNT,
        "market": market,
        "status": "OPEN",
        "side": "SHORT" if size.startswith("-") else "LONG",
        "size": size,
        "average_entry_price": "50000",
        "average_entry_price_usd": "50000",
        "average_exit_price": "",
        "unrealized_pnl": "0",
        "unrealized_funding_pnl": "0",
        "cost": "0",
        "cost_usd": "0",
        "cached_funding_index": "0",
        "last_fill_id": "",
        "seq_no": 1,
        "liquidation_price": "",
        "leverage": "",
        "realized_positional_pnl": "0",
        "realized_positional_funding_pnl": "0",
        "last_updated_at": 1_700_000_000_000,
        "created_at": 1,  # early: tests set last_updated_at alone
    }
    payload.update(overrides)
    return payload


def bust_payload(fill_id: str, created_at: int = 1_700_000_100_000) -> dict[str, Any]:
    return {"account": ACCOUNT, "busted_fill_id": fill_id, "created_at": created_at}


# -- in-memory byte streams ------------------------------------------------------


class MemoryByteStream(anyio.abc.ByteStream):
    """One end of an in-memory, bidirectional byte pipe."""

    def __init__(self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]) -> None:
        self._send = send
        self._receive = receive
        self._pending = b""

    async def send(self, item: bytes) -> None:
        try:
            await self._send.send(bytes(item))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise anyio.BrokenResourceError from exc

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._pending:
            self._pending = await self._receive.receive()  # EndOfStream propagates
        chunk, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return chunk

    async def send_eof(self) -> None:
        self._send.close()

    async def aclose(self) -> None:
        self._send.close()
        self._receive.close()


def memory_pipe() -> tuple[MemoryByteStream, MemoryByteStream]:
    a_send, b_receive = anyio.create_memory_object_stream[bytes](1000)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](1000)
    return MemoryByteStream(a_send, a_receive), MemoryByteStream(b_send, b_receive)


# -- the fake --------------------------------------------------------------------


@attrs.define(eq=False)
class _Session:
    ws: WSConnection
    stream: anyio.abc.ByteStream
    lock: anyio.Lock = attrs.field(factory=anyio.Lock)
    authed: bool = False
    token: str | None = None
    channels: set[str] = attrs.field(factory=set)
    closed: bool = False

    async def send(self, event: Any) -> None:
        if self.closed:
            return
        async with self.lock:
            try:
                await self.stream.send(self.ws.send(event))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, LocalProtocolError):
                self.closed = True

    async def send_raw(self, data: bytes) -> None:
        async with self.lock:
            await self.stream.send(data)


@attrs.define(eq=False)
class Scripted:
    """A canned REST answer, consumed once."""

    status: int
    body: bytes
    headers: dict[str, str] = attrs.field(factory=dict)


class FakeParadex:
    """A scriptable fake Paradex: state, REST handler, WebSocket server, fault injection."""

    def __init__(self, *, account: str = ACCOUNT) -> None:
        self.account = account
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: list[dict[str, Any]] = []
        self.positions: list[dict[str, Any]] = []
        self.busts: list[dict[str, Any]] = []
        self.server_time = 1_700_000_500_000
        self.valid_tokens: set[str] = set()
        self.expired_tokens: set[str] = set()
        self.requests: list[httpx.Request] = []
        self.scripted: dict[str, deque[Scripted]] = {}
        # WebSocket behaviour
        self.sessions: list[_Session] = []
        self.ws_auth_tokens: list[str] = []
        self.ws_auth_errors: deque[int] = deque()
        #: Raw answers to the next ``auth`` calls: each gets the token sent, returns the answer's members.
        self.ws_auth_replies: deque[Callable[[str], dict[str, object]]] = deque()
        #: The subscribe answer's result for a channel (default: ``{"channel": channel}``).
        self.ws_subscribe_result: Callable[[str], object] = lambda channel: {"channel": channel}
        self.ws_connections = 0
        self.ignore_pings = False
        #: Answer the upgrade with a close frame in the same write as the 101 (code, reason).
        self.close_with_accept: tuple[int, str] | None = None
        #: Follow the next answer to a call of this method with a close frame, in the same write
        #: (method, code, reason): a server that refuses and hangs up at once. Used once.
        self.close_after_answer: tuple[str, int, str] | None = None
        #: How answers spell the call's id (default ``str``): JSON has one number type, and a
        #: server may write 1 as ``1.0``.
        self.ws_id_spelling: Callable[[int], str] = str
        #: ``GET /orders/{id}`` answers only OPEN and NEW orders, as the spec words it (API.md §3.2).
        self.orders_by_id_open_only = False
        self.subscribe_counts: Counter[str] = Counter()
        self._issued_cursors: dict[str, dict[str, str]] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._node_ids = itertools.count(1)
        self.pongs_received = 0
        self.pings_received = 0
        self._changed = anyio.Event()

    def _notify(self) -> None:
        """Wake everyone waiting in :meth:`wait_until`."""
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait (bounded) until the fake's state satisfies ``predicate``."""
        with anyio.fail_after(5):
            while not predicate():
                await self._changed.wait()

    # -- lifecycle for WS serving ---------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeParadex]:
        """Serve WebSocket sessions in a task group for the duration."""
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()
                self._task_group = None

    async def ws_connector(self, url: str) -> anyio.abc.ByteStream:
        """A ``WebSocketConnector``: an in-memory pipe whose far end this fake serves."""
        assert self._task_group is not None, "use 'async with fake.running()'"
        assert url.startswith(("ws://", "wss://"))
        client, server = memory_pipe()
        self._task_group.start_soon(self.serve_ws, server)
        return client

    # -- REST -----------------------------------------------------------------------

    def script(
        self, path: str, status: int, body: object = None, *, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests to ``path`` (e.g. ``"/fills"``) with this, then behave."""
        raw = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        queue = self.scripted.setdefault(path, deque())
        for _ in range(times):
            queue.append(Scripted(status, raw, dict(headers or {})))

    def requests_to(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/v1" + path]

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.Response(
            status, content=json.dumps(body).encode(), headers={"content-type": "application/json", **(headers or {})}
        )

    def _error(self, status: int, code: str | None, message: str) -> httpx.Response:
        body: dict[str, Any] = {"message": message}
        if code is not None:
            body = {"data": None, "error": code, "message": message}
        return self._json(status, body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if not path.startswith("/v1/"):
            return self._error(404, "NOT_FOUND", "no such path")
        path = path[3:]
        queue = self.scripted.get(path)
        if queue:
            canned = queue.popleft()
            return httpx.Response(canned.status, content=canned.body, headers=canned.headers)
        if path not in ("/system/time", "/markets"):
            auth = request.headers.get("authorization", "")
            token = auth.removeprefix("Bearer ")
            if token in self.expired_tokens:
                return self._error(401, None, "invalid bearer jwt: token is expired by 1.5s")
            if token not in self.valid_tokens:
                return self._error(401, None, "missing or malformed jwt")
        params = dict(request.url.params)
        if path == "/orders":
            live = [o for o in self.orders.values() if o["status"] != "CLOSED"]
            return self._json(200, {"results": live})
        if path.startswith("/orders/by_client_id/"):
            client_id = path.removeprefix("/orders/by_client_id/")
            for order in self.orders.values():
                if order["client_id"] == client_id and order["status"] != "CLOSED":
                    return self._json(200, order)
            return self._error(400, "CLIENT_ORDER_ID_NOT_FOUND", "client order id not found")
        if path.startswith("/orders/"):
            order_id = path.removeprefix("/orders/")
            order = self.orders.get(order_id)
            if order is not None and not (self.orders_by_id_open_only and order["status"] == "CLOSED"):
                return self._json(200, order)
            return self._error(400, "ORDER_ID_NOT_FOUND", "order id not found")
        if path == "/orders-history":
            rows = sorted(self.orders.values(), key=lambda o: (o["created_at"], o["id"]))
            if "client_id" in params:
                rows = [o for o in rows if o["client_id"] == params["client_id"]]
            return self._page(path, params, rows)
        if path == "/fills":
            rows = sorted(self.fills, key=lambda f: (f["created_at"], f["id"]))
            if "market" in params:
                rows = [f for f in rows if f["market"] == params["market"]]
            return self._page(path, params, rows)
        if path == "/tradebusts":
            return self._page(path, params, sorted(self.busts, key=lambda b: b["created_at"]))
        if path == "/positions":
            return self._json(200, {"results": self.positions})
        if path == "/account":
            return self._json(
                200,
                {
                    "account": self.account,
                    "account_value": "1000",
                    "free_collateral": "900",
                    "settlement_asset": "USDC",
                    "status": "ACTIVE",
                    "seq_no": 5,
                    "updated_at": 1,
                },
            )
        if path == "/balance":
            return self._json(200, {"results": [{"token": "USDC", "size": "1000.5", "last_updated_at": 1}]})
        if path == "/markets":
            return self._json(
                200, {"results": [{"symbol": "BTC-USD-PERP", "asset_kind": "PERP", "open_at": "1", "expiry_at": 0}]}
            )
        if path == "/system/time":
            return self._json(200, {"server_time": str(self.server_time)})
        return self._error(404, "NOT_FOUND", "no such endpoint")

    def _sign(self, payload: str) -> str:
        return hmac.new(_CURSOR_KEY, payload.encode(), hashlib.sha256).hexdigest()[:16]

    def _page(self, path: str, params: dict[str, str], rows: list[dict[str, Any]]) -> httpx.Response:
        cursor = params.pop("cursor", None)
        offset = 0
        if cursor is not None:
            body, _, signature = cursor.rpartition(".")
            origin = self._issued_cursors.get(cursor)
            if origin is None or not hmac.compare_digest(self._sign(body), signature):
                return self._error(400, "INVALID_REQUEST_PARAMETER", "invalid cursor")
            if origin != params:
                return self._error(400, "INVALID_REQUEST_PARAMETER", "cursor used with different filters")
            offset = json.loads(base64.urlsafe_b64decode(body))["offset"]
        start_at = int(params.get("start_at", 0))
        rows = [r for r in rows if int(r["created_at"]) >= start_at]
        size = int(params.get("page_size", 100))
        page = rows[offset : offset + size]
        next_cursor = None
        if offset + size < len(rows):
            body = base64.urlsafe_b64encode(json.dumps({"offset": offset + size, "path": path}).encode()).decode()
            next_cursor = f"{body}.{self._sign(body)}"
            self._issued_cursors[next_cursor] = dict(params)
        return self._json(200, {"next": next_cursor, "prev": None, "results": page})

    # -- WebSocket ----------------------------------------------------------------------

    async def serve_ws(self, stream: anyio.abc.ByteStream) -> None:
        """Serve one WebSocket client over ``stream`` until it goes away."""
        self.ws_connections += 1
        session = _Session(ws=WSConnection(ConnectionType.SERVER), stream=stream)
        self.sessions.append(session)
        self._notify()
        buffer: list[str] = []
        try:
            while not session.closed:
                try:
                    data = await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    break
                session.ws.receive_data(data)
                for event in session.ws.events():
                    if isinstance(event, Request):
                        if self.close_with_accept is not None:  # the 101 and a close frame in one write
                            code, reason = self.close_with_accept
                            both = session.ws.send(AcceptConnection()) + session.ws.send(
                                CloseConnection(code=code, reason=reason)
                            )
                            await session.send_raw(both)
                            continue
                        await session.send(AcceptConnection())
                    elif isinstance(event, Ping):
                        self.pings_received += 1
                        self._notify()
                        if not self.ignore_pings:
                            await session.send(event.response())
                    elif isinstance(event, Pong):
                        self.pongs_received += 1
                        self._notify()
                    elif isinstance(event, CloseConnection):
                        await session.send(event.response())
                        session.closed = True
                    elif isinstance(event, TextMessage):
                        buffer.append(event.data)
                        if event.message_finished:
                            await self._rpc(session, "".join(buffer))
                            buffer.clear()
        finally:
            session.closed = True
            self._notify()
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _rpc(self, session: _Session, text: str) -> None:
        message = json.loads(text)
        method, params, call_id = message.get("method"), message.get("params", {}), message.get("id")

        async def send(body: dict[str, Any]) -> None:
            text = json.dumps({**body, "id": None}).replace('"id": null', f'"id": {self.ws_id_spelling(call_id)}', 1)
            close = self.close_after_answer
            if close is not None and close[0] == method:
                self.close_after_answer = None
                both = session.ws.send(TextMessage(data=text)) + session.ws.send(
                    CloseConnection(code=close[1], reason=close[2])
                )
                await session.send_raw(both)
                return
            await session.send(TextMessage(data=text))

        async def answer(result: object = None, error: tuple[int, str] | None = None) -> None:
            body: dict[str, Any] = {"jsonrpc": "2.0", "id": call_id, "usIn": 1, "usDiff": 1}
            if error is None:
                body["result"] = result
            else:
                body["error"] = {"code": error[0], "message": error[1]}
            await send(body)

        if method == "auth":
            token = params.get("bearer")
            self.ws_auth_tokens.append(token)
            if self.ws_auth_replies:
                await send({"jsonrpc": "2.0", "id": call_id, **self.ws_auth_replies.popleft()(token)})
                return
            if self.ws_auth_errors:
                code = self.ws_auth_errors.popleft()
                await answer(error=(code, "Invalid Bearer Token" if code == 40111 else "error"))
                return
            if token not in self.valid_tokens:
                await answer(error=(40111, "Invalid Bearer Token"))
                return
            session.authed, session.token = True, token
            await answer({"node_id": f"node-{next(self._node_ids)}"})
            self._notify()
        elif method == "subscribe":
            channel = params.get("channel")
            if not session.authed:
                await answer(error=(40110, "Malformed Bearer Token"))
            elif channel in session.channels:
                await answer(error=(-32600, "already subscribed"))
            else:
                session.channels.add(channel)
                self.subscribe_counts[channel] += 1
                await answer(self.ws_subscribe_result(channel))
                self._notify()
        else:
            await answer(error=(-32601, "method not found"))

    def live_sessions(self) -> list[_Session]:
        return [s for s in self.sessions if not s.closed]

    async def ping_all(self, payload: bytes = b"srv") -> None:
        for session in self.live_sessions():
            await session.send(Ping(payload=payload))

    async def push(self, channel: str, data: object) -> None:
        """Send a notification to every live session subscribed to ``channel``."""
        text = json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}})
        for session in self.live_sessions():
            if channel in session.channels:
                await session.send(TextMessage(data=text))

    async def push_text(self, text: str) -> None:
        for session in self.live_sessions():
            await session.send(TextMessage(data=text))

    async def send_raw(self, data: bytes) -> None:
        for session in self.live_sessions():
            await session.send_raw(data)

    async def close_all(self, code: int = 1001, reason: str = "going away") -> None:
        for session in self.live_sessions():
            await session.send(CloseConnection(code=code, reason=reason))

    async def drop_all(self) -> None:
        """Cut every connection without a close frame."""
        for session in self.live_sessions():
            session.closed = True
            await session.stream.aclose()


# -- a real loopback HTTP server for the fake's REST handler ------------------------


async def serve_http(fake: FakeParadex, stream: anyio.abc.ByteStream) -> None:
    """HTTP/1.1 over a real socket (h11), answering with ``fake.handle``."""
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive())
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                continue
            if isinstance(event, h11.Request):
                headers = [(k.decode(), v.decode()) for k, v in event.headers]
                host = dict(headers).get("host", "127.0.0.1")
                request = httpx.Request(event.method.decode(), f"http://{host}{event.target.decode()}", headers=headers)
                response = fake.handle(request)
                body = response.content
                out = [(k.encode(), v.encode()) for k, v in response.headers.items() if k.lower() != "content-length"]
                out.append((b"content-length", str(len(body)).encode()))
                await stream.send(conn.send(h11.Response(status_code=response.status_code, headers=out)))
                await stream.send(conn.send(h11.Data(data=body)))
                await stream.send(conn.send(h11.EndOfMessage()))
            elif isinstance(event, h11.EndOfMessage):
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return


class FakeClock:
    """A ``Clock`` whose sleeps return at once and move time forward."""

    def __init__(self) -> None:
        self.time = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += max(seconds, 0.0)
        await anyio.lowlevel.checkpoint()


@contextmanager
def offline_connection() -> Iterator[Any]:
    """A JsonRpcConnection over an unused in-memory pipe, to drive its message router directly."""
    from reconcile_paradex._ws import JsonRpcConnection, WebSocketSettings

    ends = memory_pipe()
    connection = JsonRpcConnection(ends[0], WebSocketSettings())
    try:
        yield connection
    finally:
        connection._notify_send.close()
        connection._notify_receive.close()
        for end in ends:
            end._send.close()
            end._receive.close()


def token_minter(fake: FakeParadex, prefix: str = "tok") -> Callable[[], str]:
    """A token function whose every call mints a new token the fake accepts."""
    counter = itertools.count(1)

    def mint() -> str:
        token = f"{prefix}-{next(counter)}-secretvalue"
        fake.valid_tokens.add(token)
        return token

    return mint


@asynccontextmanager
async def paradex_source(fake: FakeParadex, **options: Any) -> AsyncIterator[Any]:
    """A ParadexSource wired to ``fake`` (MockTransport + in-memory WS), with a fake clock.

    Yields the source; ``source.rest._clock`` is the :class:`FakeClock`.
    """
    import random

    from reconcile_paradex import CallableTokenProvider, ParadexSource, TokenBucket

    options.setdefault("token", CallableTokenProvider(token_minter(fake)))
    options.setdefault("clock", FakeClock())
    options.setdefault("rate_limiter", TokenBucket())
    options.setdefault("rng", random.Random(1))
    options.setdefault("ws_connector", fake.ws_connector)
    async with fake.running(), httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as http:
        source = ParadexSource(
            account=fake.account,
            env=None,
            rest_url=REST_URL,
            ws_url=WS_URL,
            http_client=http,
            **options,
        )
        async with source:
            yield source


__all__ = [
    "ACCOUNT",
    "REST_URL",
    "WS_URL",
    "FakeClock",
    "FakeParadex",
    "MemoryByteStream",
    "RejectConnection",
    "bust_payload",
    "fill_payload",
    "memory_pipe",
    "offline_connection",
    "order_payload",
    "paradex_source",
    "position_payload",
    "serve_http",
    "token_minter",
]
