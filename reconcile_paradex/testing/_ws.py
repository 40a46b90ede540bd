"""The WebSocket half of the simulator: JSON-RPC ``auth``/``subscribe`` and notifications.

One :class:`WsConnection` per socket runs two tasks in a task group: the
reader answers JSON-RPC requests, the pump sends the account's events as
``subscription`` notifications, through the connection's fault stream
(drops, duplicates, reordering, delays, disconnects, close frames).

The pump sleeps until the venue wakes it. The venue may be mutated from
another thread than the one running this connection (loopback mode), so
the wake-up is scheduled onto this connection's event loop, thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import threading
from collections.abc import Callable
from typing import Any

import anyio

from ._context import Receive, Scope, Send, ServerContext
from ._venue import Feed

__all__ = ["WsConnection", "handle_websocket"]

JSON = dict[str, Any]

#: How long a message held back for reordering waits for a successor (real seconds).
REORDER_HOLD_S = 0.05
PRIVATE_KINDS = ("orders", "fills")
PRIVATE_CHANNELS = frozenset({"positions", "tradebusts", "account"})


def _threadsafe_scheduler() -> Callable[[Callable[[], None]], None]:
    """A function that runs a callback soon on the *current* event loop, from any thread."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        running = loop

        def schedule_asyncio(callback: Callable[[], None]) -> None:
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                running.call_soon_threadsafe(callback)

        return schedule_asyncio

    import trio

    token = trio.lowlevel.current_trio_token()

    def schedule_trio(callback: Callable[[], None]) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(callback)

    return schedule_trio


class _Wakeup:
    """A level-triggered wake-up that any thread may fire."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._thread = threading.get_ident()
        self._schedule = _threadsafe_scheduler()

    def _set(self) -> None:
        self._event.set()

    def fire(self) -> None:
        if threading.get_ident() == self._thread:
            self._event.set()
        else:
            self._schedule(self._set)

    async def wait(self, at_most: float | None = None) -> None:
        with anyio.move_on_after(at_most):
            await self._event.wait()
        if self._event.is_set():
            self._event = anyio.Event()


class WsConnection:
    """One simulated Paradex WebSocket session."""

    def __init__(self, context: ServerContext, send: Send) -> None:
        self._context = context
        self._send = send
        self._send_lock = anyio.Lock()
        self._faults = context.faults.for_connection()
        self._wakeup = _Wakeup()
        self._feed: Feed | None = None
        self._scope: anyio.CancelScope | None = None
        #: ("", 0) running; ("gone", 0) the peer left; ("abrupt", 0); ("close", code).
        self.ending: tuple[str, int] = ("", 0)

    # ------------------------------------------------------------------ control from outside

    def request_end(self, mode: str, code: int = 1000) -> None:
        """Ask the connection to end (``"abrupt"`` or ``"close"``); thread-safe."""
        if self.ending == ("", 0):
            self.ending = (mode, code)
        self._wakeup.fire()

    def _end(self, mode: str, code: int = 0) -> None:
        if self.ending == ("", 0):
            self.ending = (mode, code)
        if self._scope is not None:
            self._scope.cancel()

    # ------------------------------------------------------------------ running

    async def run(self, receive: Receive) -> None:
        try:
            async with anyio.create_task_group() as group:
                self._scope = group.cancel_scope
                group.start_soon(self._pump)
                await self._read(receive)
                group.cancel_scope.cancel()
        finally:
            if self._feed is not None:
                self._context.venue.detach(self._feed)

    async def _send_text(self, text: str) -> None:
        try:
            async with self._send_lock:
                await self._send({"type": "websocket.send", "text": text})
        except OSError:
            # The peer is gone (uvicorn raises ClientDisconnected, an OSError).
            self._end("gone")

    def _envelope(self) -> JSON:
        us = self._context.now() * 1000
        return {"jsonrpc": "2.0", "usIn": us, "usOut": us + 37, "usDiff": 37}

    def _result(self, request_id: Any, result: JSON) -> JSON:
        return {**self._envelope(), "result": result, "id": request_id}

    def _error(self, request_id: Any, code: int, message: str, data: str | None = None) -> JSON:
        error: JSON = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        return {**self._envelope(), "error": error, "id": request_id}

    async def _read(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self._end("gone")
                return
            if message["type"] != "websocket.receive":
                continue
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            await self._handle(text)

    async def _handle(self, text: str) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            await self._send_json(self._error(None, -32700, "Parse error"))
            return
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            await self._send_json(self._error(None, -32600, "Invalid request"))
            return
        request_id = request.get("id")
        params = request.get("params")
        if not isinstance(params, dict):
            params = {}
        method = request["method"]
        if method == "auth":
            await self._send_json(self._auth(request_id, params))
        elif method in ("subscribe", "unsubscribe"):
            await self._subscription(method, request_id, params)
        else:
            await self._send_json(self._error(request_id, -32601, "Method not found", method))

    async def _send_json(self, document: JSON) -> None:
        await self._send_text(json.dumps(document, separators=(",", ":")))

    def _auth(self, request_id: Any, params: JSON) -> JSON:
        bearer = params.get("bearer")
        result = self._context.authority.check(bearer if isinstance(bearer, str) else None, now=self._context.now())
        if result.ok and self._faults.auth_error():
            return self._error(request_id, 40111, "Invalid Bearer Token")
        if not result.ok:
            code, text = result.ws_error()
            return self._error(request_id, code, text)
        if self._feed is not None and self._feed.account != result.account:
            return self._error(request_id, -32600, "Invalid request", "already authenticated as another account")
        if self._feed is None:
            feed = Feed(result.account)
            feed.set_waker(self._wakeup.fire)
            self._context.venue.attach(feed)
            self._feed = feed
        return self._result(request_id, {"node_id": self._context.node_id})

    def _valid_channel(self, channel: str) -> bool:
        if channel in PRIVATE_CHANNELS:
            return True
        kind, _, market = channel.partition(".")
        return kind in PRIVATE_KINDS and (market == "ALL" or market in self._context.venue.markets)

    async def _subscription(self, method: str, request_id: Any, params: JSON) -> None:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            await self._send_json(self._error(request_id, -32602, "Invalid method parameters", "channel is required"))
            return
        if not self._valid_channel(channel):
            await self._send_json(self._error(request_id, -32600, f"invalid {method} request", "invalid channel"))
            return
        feed = self._feed
        if feed is None:
            await self._send_json(self._error(request_id, 40111, "Invalid Bearer Token"))
            return
        # Hold the send lock while the channel changes, so the ack goes out
        # before the first notification of the channel.
        async with self._send_lock:
            with self._context.venue.lock:
                subscribed = channel in feed.channels
                accepted = (method == "subscribe") != subscribed
                if accepted and method == "subscribe":
                    feed.channels.add(channel)
                elif accepted:
                    feed.channels.discard(channel)
            if accepted:
                reply = self._result(request_id, {"channel": channel})
            else:
                problem = "already subscribed" if subscribed else "not subscribed"
                reply = self._error(request_id, -32600, f"invalid {method} request", problem)
            try:
                await self._send({"type": "websocket.send", "text": json.dumps(reply, separators=(",", ":"))})
            except OSError:
                self._end("gone")

    async def _pump(self) -> None:
        delayed: list[tuple[float, int, str]] = []
        held: tuple[float, str] | None = None
        counter = 0
        while True:
            mode, code = self.ending
            if mode:
                self._end(mode, code)
                return
            feed = self._feed
            items: list[tuple[str, JSON]] = []
            if feed is not None:
                with self._context.venue.lock:
                    items = feed.drain()
                    overflowed = feed.overflowed
                if overflowed:
                    self._context.faults.count("ws_slow_consumer")
                    self._end("close", 1008)
                    return
            for channel, data in items:
                text = json.dumps(
                    {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}},
                    separators=(",", ":"),
                )
                action, delay = self._faults.notification()
                if action == "drop":
                    continue
                if action == "delay":
                    counter += 1
                    heapq.heappush(delayed, (anyio.current_time() + delay, counter, text))
                    continue
                if action == "reorder" and held is None:
                    held = (anyio.current_time() + REORDER_HOLD_S, text)
                    continue
                await self._send_text(text)
                if action == "duplicate":
                    await self._send_text(text)
                if held is not None:
                    await self._send_text(held[1])
                    held = None
                after, close_code = self._faults.after_notification()
                if after:
                    self._end(after, close_code)
                    return
            now = anyio.current_time()
            if held is not None and held[0] <= now:
                await self._send_text(held[1])
                held = None
            while delayed and delayed[0][0] <= now:
                await self._send_text(heapq.heappop(delayed)[2])
            deadlines = [d[0] for d in delayed[:1]] + ([held[0]] if held is not None else [])
            timeout = max(min(deadlines) - now, 0.0) if deadlines else None
            if not items:
                await self._wakeup.wait(timeout)


async def handle_websocket(context: ServerContext, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one WebSocket at ``/v1``; other paths are refused during the handshake."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if scope.get("path", "").rstrip("/") != "/v1":
        await send({"type": "websocket.close", "code": 1008})
        return
    try:
        await send({"type": "websocket.accept"})
    except OSError:
        return  # the client left during the handshake: normal, not a simulator bug
    connection = WsConnection(context, send)
    context.register(connection)
    try:
        await connection.run(receive)
    finally:
        context.unregister(connection)
    mode, code = connection.ending
    if mode == "close":
        reason = {1008: "slow consumer", 1001: "going away", 1012: "service restart"}.get(code, "internal error")
        with contextlib.suppress(OSError):
            await send({"type": "websocket.close", "code": code, "reason": reason})
    # "abrupt": return without a close frame; the server drops the connection.
