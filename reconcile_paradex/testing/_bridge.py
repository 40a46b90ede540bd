"""The in-process WebSocket transport: a wsproto server bridged to the ASGI app.

``httpx.ASGITransport`` serves REST in-process but has no WebSockets. The
bridge fills the gap: the client gets one end of an in-memory byte stream
(:class:`MemoryByteStream`, an ``anyio.abc.ByteStream``) and speaks real
WebSocket bytes over it (HTTP upgrade handshake, frames, pings, close
frames); the other end runs a wsproto *server* connection that turns those
bytes into the ASGI ``websocket`` scope of the same app that serves REST.

Closing semantics follow a socket: when the app ends without a close frame
the stream ends (the client reads EOF, no close frame), which is how the
simulator injects abrupt disconnects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from ._context import Message as ASGIMessage
from ._context import Receive, Scope, Send

__all__ = ["MemoryByteStream", "memory_stream_pair", "serve_websocket_over_stream"]

_STREAM_CLOSED = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)
#: How long a server-initiated close waits for the client's close frame (real seconds).
CLOSE_HANDSHAKE_TIMEOUT_S = 1.0
#: Chunks buffered in each direction before a writer waits for its reader.
STREAM_BUFFER = 64

ASGIApp = Callable[[Scope, Receive, Send], Any]


class MemoryByteStream(anyio.abc.ByteStream):
    """One end of an in-memory, bidirectional byte stream (like a connected socket)."""

    def __init__(self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]) -> None:
        self._send_stream = send
        self._receive_stream = receive
        self._buffer = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """The next bytes; ``anyio.EndOfStream`` once the peer has closed its side."""
        if not self._buffer:
            self._buffer = await self._receive_stream.receive()
        chunk, self._buffer = self._buffer[:max_bytes], self._buffer[max_bytes:]
        return chunk

    async def send(self, item: bytes) -> None:
        """Send bytes; ``anyio.BrokenResourceError`` if the peer has closed its side."""
        if item:
            await self._send_stream.send(bytes(item))

    async def send_eof(self) -> None:
        await self._send_stream.aclose()

    async def aclose(self) -> None:
        await self._send_stream.aclose()
        await self._receive_stream.aclose()


def memory_stream_pair() -> tuple[MemoryByteStream, MemoryByteStream]:
    """Two connected byte streams: (client end, server end)."""
    to_server_send, to_server_receive = anyio.create_memory_object_stream[bytes](STREAM_BUFFER)
    to_client_send, to_client_receive = anyio.create_memory_object_stream[bytes](STREAM_BUFFER)
    client = MemoryByteStream(to_server_send, to_client_receive)
    server = MemoryByteStream(to_client_send, to_server_receive)
    return client, server


class _ServerSide:
    """The wsproto server connection plus the byte stream it writes to."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.connection = WSConnection(ConnectionType.SERVER)
        self.lock = anyio.Lock()
        self.accepted = False
        self.close_sent = False
        self.broken = False

    async def write(self, event: Event) -> None:
        """Send one wsproto event; raise OSError (as ASGI servers do) when the peer is gone."""
        if self.broken:
            raise OSError("the WebSocket peer is gone")
        async with self.lock:
            try:
                data = self.connection.send(event)
                await self.stream.send(data)
            except (*_STREAM_CLOSED, RemoteProtocolError) as exc:
                self.broken = True
                raise OSError("the WebSocket peer is gone") from exc
            except Exception as exc:  # wsproto's LocalProtocolError: we are closing already
                self.broken = True
                raise OSError(f"cannot send on this WebSocket: {exc}") from exc


async def _read_handshake(side: _ServerSide) -> Request | None:
    while True:
        try:
            data = await side.stream.receive()
        except _STREAM_CLOSED:
            return None
        try:
            side.connection.receive_data(data)
        except RemoteProtocolError as exc:
            hint = exc.event_hint
            if hint is not None:
                try:
                    await side.stream.send(side.connection.send(hint))
                except (*_STREAM_CLOSED, RemoteProtocolError):
                    pass
            return None
        for event in side.connection.events():
            if isinstance(event, Request):
                return event


def _scope(request: Request) -> Scope:
    path, _, query = request.target.partition("?")
    host, _, port = request.host.partition(":")
    headers = [(b"host", request.host.encode("latin-1"))]
    headers.extend((bytes(name).lower(), bytes(value)) for name, value in request.extra_headers)
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": (host, int(port) if port.isdigit() else 80),
        "client": ("127.0.0.1", 0),
        "root_path": "",
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "headers": headers,
        "subprotocols": list(request.subprotocols),
        "state": {},
        "extensions": {},
    }


async def _read_frames(side: _ServerSide, inbox: MemoryObjectSendStream[ASGIMessage], done: anyio.Event) -> None:
    parts: list[str] = []
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data: bytes | None = await side.stream.receive()
            except _STREAM_CLOSED:
                data = None
            try:
                side.connection.receive_data(data)
            except RemoteProtocolError:
                await inbox.send({"type": "websocket.disconnect", "code": 1002})
                return
            for event in side.connection.events():
                if isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        await inbox.send({"type": "websocket.receive", "text": "".join(parts)})
                        parts.clear()
                elif isinstance(event, BytesMessage):
                    chunks.append(bytes(event.data))
                    if event.message_finished:
                        await inbox.send({"type": "websocket.receive", "bytes": b"".join(chunks)})
                        chunks.clear()
                elif isinstance(event, Ping):
                    with contextlib.suppress(OSError):
                        await side.write(event.response())
                elif isinstance(event, CloseConnection):
                    if not side.close_sent:
                        side.close_sent = True
                        with contextlib.suppress(OSError):
                            await side.write(event.response())
                    await inbox.send({"type": "websocket.disconnect", "code": event.code})
                    return
            if data is None:
                await inbox.send({"type": "websocket.disconnect", "code": 1006})
                return
    finally:
        inbox.close()
        done.set()


async def serve_websocket_over_stream(app: ASGIApp, stream: anyio.abc.ByteStream) -> None:
    """Serve one WebSocket connection arriving on ``stream`` with the ASGI ``app``."""
    side = _ServerSide(stream)
    async with stream:
        request = await _read_handshake(side)
        if request is None:
            return
        inbox_send, inbox_receive = anyio.create_memory_object_stream[ASGIMessage](STREAM_BUFFER)
        inbox_send.send_nowait({"type": "websocket.connect"})

        async def receive() -> ASGIMessage:
            try:
                return await inbox_receive.receive()
            except anyio.EndOfStream:
                return {"type": "websocket.disconnect", "code": 1006}

        async def send(message: ASGIMessage) -> None:
            kind = message["type"]
            if kind == "websocket.accept":
                side.accepted = True
                await side.write(AcceptConnection(subprotocol=message.get("subprotocol")))
            elif kind == "websocket.send":
                text = message.get("text")
                await side.write(Message(data=text if text is not None else bytes(message.get("bytes") or b"")))
            elif kind == "websocket.close":
                if not side.accepted:
                    await side.write(RejectConnection(status_code=403))
                    side.broken = True
                elif not side.close_sent:
                    side.close_sent = True
                    await side.write(CloseConnection(code=message.get("code", 1000), reason=message.get("reason")))

        reader_done = anyio.Event()
        async with inbox_receive, anyio.create_task_group() as group:
            group.start_soon(_read_frames, side, inbox_send, reader_done)
            try:
                await app(_scope(request), receive, send)
            finally:
                if side.close_sent and not side.broken:
                    with anyio.move_on_after(CLOSE_HANDSHAKE_TIMEOUT_S):
                        await reader_done.wait()
                group.cancel_scope.cancel()
