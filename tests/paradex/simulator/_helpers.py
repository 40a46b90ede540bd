"""Test helpers: a minimal wsproto WebSocket client, a TCP connector, and the official specs."""

from __future__ import annotations

import contextlib
import copy
import json
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from reconcile_paradex.testing import ParadexSimulator

SPEC = (Path(__file__).resolve().parents[3] / ".." / "shared" / "paradex" / "spec").resolve()
TIMEOUT = 10


class WsClosedError(Exception):
    """The server ended the connection: ``code`` is the close code, None without a close frame."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class RpcError(Exception):
    """The server answered a JSON-RPC request with an error."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"JSON-RPC error: {reply.get('error')}")
        self.reply = reply


class MiniWsClient:
    """The smallest useful WebSocket client: wsproto over any anyio ByteStream."""

    def __init__(self, stream: anyio.abc.ByteStream, url: str) -> None:
        self.stream = stream
        parts = urlsplit(url)
        self.host = parts.netloc
        self.target = parts.path or "/"
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: deque[dict[str, Any]] = deque()
        self.notifications: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.closed = False
        self.pings = 0
        self._text: list[str] = []

    async def handshake(self) -> None:
        await self.stream.send(self.ws.send(Request(host=self.host, target=self.target)))
        while True:
            self.ws.receive_data(await self.stream.receive())
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    raise WsClosedError(event.status_code)

    async def send_json(self, document: dict[str, Any]) -> None:
        await self.stream.send(self.ws.send(Message(data=json.dumps(document))))

    async def read_once(self) -> None:
        """Read one chunk from the socket and process its events (answering pings)."""
        if self.closed:
            raise WsClosedError(self.close_code)
        try:
            data: bytes | None = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            data = None
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self._text.append(event.data)
                if event.message_finished:
                    self.pending.append(json.loads("".join(self._text)))
                    self._text.clear()
            elif isinstance(event, Ping):
                self.pings += 1
                await self.stream.send(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closed = True
                # 1006 is what wsproto reports for a connection that ended without a close frame.
                self.close_code = None if event.code == 1006 else event.code
                if data is not None:
                    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await self.stream.send(self.ws.send(event.response()))

    async def _fill(self) -> None:
        """Read from the socket until at least one message is pending, or raise WsClosedError."""
        while not self.pending:
            await self.read_once()

    async def receive_json(self) -> dict[str, Any]:
        await self._fill()
        return self.pending.popleft()

    async def call(self, method: str, params: dict[str, Any], request_id: int) -> dict[str, Any]:
        """Send a request; return its response, keeping notifications that arrive meanwhile."""
        await self.send_json({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id})
        with anyio.fail_after(TIMEOUT):
            while True:
                message = await self.receive_json()
                if message.get("method") == "subscription":
                    self.notifications.append(message)
                elif message.get("id") == request_id:
                    return message

    async def notifications_until(self, count: int) -> list[dict[str, Any]]:
        """Read until ``count`` notifications were received in total; return them all."""
        with anyio.fail_after(TIMEOUT):
            while len(self.notifications) < count:
                message = await self.receive_json()
                if message.get("method") == "subscription":
                    self.notifications.append(message)
        return self.notifications

    async def aclose(self) -> None:
        if not self.closed:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, LocalProtocolError):
                await self.stream.send(self.ws.send(CloseConnection(code=1000)))
        await self.stream.aclose()

    async def read_until_closed(self) -> int | None:
        """Read until the server ends the connection; return its close code (None: no close frame)."""
        with anyio.fail_after(TIMEOUT):
            while True:
                try:
                    await self.receive_json()
                except WsClosedError as closed:
                    return closed.code


async def tcp_connector(url: str) -> anyio.abc.ByteStream:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return await anyio.connect_tcp(parts.hostname, parts.port)


async def open_ws(connector: Any, url: str) -> MiniWsClient:
    client = MiniWsClient(await connector(url), url)
    try:
        with anyio.fail_after(TIMEOUT):
            await client.handshake()
    except BaseException:
        await client.stream.aclose()
        raise
    return client


async def authed_ws(sim: ParadexSimulator, connector: Any, url: str, account: str, channels: list[str]) -> MiniWsClient:
    """A connected client, authenticated and subscribed; ``RpcError`` (client closed) if refused."""
    client = await open_ws(connector, url)
    try:
        _expect(await client.call("auth", {"bearer": sim.issue_token(account)}, 0), None)
        for number, channel in enumerate(channels, start=1):
            _expect(await client.call("subscribe", {"channel": channel}, number), {"channel": channel})
    except BaseException:
        await client.aclose()
        raise
    return client


def _expect(reply: dict[str, Any], result: dict[str, Any] | None) -> None:
    if "result" not in reply or (result is not None and reply["result"] != result):
        raise RpcError(reply)


ALL_CHANNELS = ["orders.ALL", "fills.ALL", "positions", "tradebusts", "account"]


# ---------------------------------------------------------------------- specs


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the official Paradex specs live in ../shared/paradex beside the repository")
    return path


def openapi() -> dict[str, Any]:
    """The OpenAPI document, with the nullability the real venue uses patched in.

    The spec is generated from Go structs and declares ``next``/``prev`` and
    the error body's ``data`` as plain string/object, but the venue sends
    ``null`` for them (see ../shared/paradex/samples). Nothing else changes.
    """
    document: dict[str, Any] = json.loads(_require(SPEC / "openapi.json").read_text())
    schemas = document["components"]["schemas"]
    for name in ("next", "prev"):
        schemas["responses.PaginatedAPIResults"]["properties"][name] = {"type": ["string", "null"]}
    schemas["responses.ApiError"]["properties"]["data"] = {"type": ["object", "null"]}
    return document


def asyncapi() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    document: dict[str, Any] = yaml.safe_load(_require(SPEC / "asyncapi.yaml").read_text())
    return document


def openapi_response_schema(document: dict[str, Any], path: str, status: str = "200") -> dict[str, Any]:
    """The response schema of ``GET path``, made self-contained (``$ref``s resolve in it)."""
    schema = document["paths"][path]["get"]["responses"][status]["content"]["application/json"]["schema"]
    return {**copy.deepcopy(schema), "components": document["components"]}
