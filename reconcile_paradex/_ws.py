"""The Paradex WebSocket: wsproto over an anyio byte stream, JSON-RPC auth and subscriptions.

One connection is one :class:`JsonRpcConnection`: a single reader task feeds
wsproto, answers pings, routes JSON-RPC responses to the waiting call and
pushes notifications into a bounded buffer; one lock guards the send path.

Failure semantics (everything becomes a ``reconcile_core.errors`` exception,
raised by the notification iterator so the runtime reconnects):

* server close frame, EOF, reset, invalid frame (wsproto closes with 1002/1007)
  -> :class:`ConnectionLostError`;
* no frame for ``ping_interval`` seconds: we send a ping; nothing for another
  ``pong_timeout`` -> :class:`ConnectionLostError` (the connection is dead);
* the consumer lets ``buffer_size`` notifications pile up -> we drop the
  connection ourselves with :class:`ConnectionLostError`, before Paradex drops
  us at 2000 (API.md §4.5). Nothing is lost for good: every reconnect runs a
  REST reconciliation;
* a text message that is not JSON, or not a sane notification, becomes a
  ``MALFORMED_MESSAGE`` discrepancy (payload excerpt truncated and redacted)
  and the stream goes on.

Auth (:class:`ParadexWebSocket`): each connection sends ``auth`` with a token
fetched at that moment (every connection after the first asks the provider
for a fresh one, ``force_refresh=True``), then subscribes to each channel, waiting for every
ack. ``40110``/``40111`` mean "re-auth": the connection is dropped and one
more is opened with ``force_refresh=True``; if that fails too,
:class:`AuthenticationError` is raised and the next connection again forces a
refresh. A channel is never subscribed twice on one socket.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from decimal import Decimal
from typing import Final, TypeAlias
from urllib.parse import urlsplit

import anyio
import anyio.abc
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import ProtocolError

from reconcile_core import Discrepancy, DiscrepancyKind, Severity
from reconcile_core.errors import (
    AuthenticationError,
    ConnectionLostError,
    ParseError,
    TransportError,
    UsageError,
    VenueError,
)
from reconcile_core.errors import TimeoutError as RequestTimeoutError

from ._auth import GEO_BLOCK_MESSAGE, TokenProvider, fetch_token
from ._fields import decode_json
from ._redact import cut
from ._urls import shown_url
from ._wire import Wire, decode_notification

__all__ = [
    "DEFAULT_CHANNELS",
    "JsonRpcConnection",
    "Notification",
    "ParadexWebSocket",
    "WebSocketConnector",
    "WebSocketSettings",
    "default_connector",
]

logger = logging.getLogger("reconcile_paradex.ws")

#: Given a ``ws://`` or ``wss://`` URL, returns a connected raw byte stream
#: (TLS already done for ``wss``). The WebSocket upgrade runs over it.
WebSocketConnector: TypeAlias = Callable[[str], Awaitable[anyio.abc.ByteStream]]

#: The private channels a reconciliation needs (API.md §4.3).
DEFAULT_CHANNELS: Final = ("orders.ALL", "fills.ALL", "positions", "tradebusts", "account")

_REAUTH_CODES: Final = frozenset({40110, 40111})
_GEO_BLOCK_CODE: Final = 40112
_EXCERPT_CHARS: Final = 300
#: The most of a discrepancy's detail worth redacting (a Discrepancy keeps 500 characters).
_DETAIL_CHARS: Final = 500


def _integral(value: object) -> int | None:
    """A JSON-RPC id or code as an int: an int, or a number with no fraction (``1.0``); else ``None``.

    JSON has one number type, and a server may echo ``1`` as ``1.0`` (which
    ``decode_json`` reads as a ``Decimal``).
    """
    if type(value) is int:
        return value
    if isinstance(value, Decimal | float):
        if isinstance(value, Decimal) and value.is_finite() and value.adjusted() > 18:
            return None  # beyond 64 bits: never an id of ours (nor worth making an int of)
        try:
            number = int(value)
        except (ArithmeticError, ValueError):  # NaN, infinities
            return None
        if number == value and -(2**63) <= number < 2**63:
            return number
    return None


async def default_connector(url: str) -> anyio.abc.ByteStream:
    """Open TCP (plus TLS for ``wss://``) to the URL's host and port."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise UsageError(f"not a WebSocket URL: {shown_url(url)!r}")
    tls = parts.scheme == "wss"
    port = parts.port or (443 if tls else 80)
    if tls:
        return await anyio.connect_tcp(parts.hostname, port, tls=True, tls_hostname=parts.hostname)
    return await anyio.connect_tcp(parts.hostname, port)


@attrs.frozen(kw_only=True)
class WebSocketSettings:
    """Timeouts and bounds of one WebSocket connection (seconds, messages, bytes)."""

    #: Connecting plus the HTTP upgrade.
    connect_timeout: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    #: Waiting for the answer to ``auth`` or ``subscribe``.
    rpc_timeout: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    #: Silence after which we send our own ping (Paradex pings every 55 s).
    ping_interval: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    #: After our ping, how long to wait for any frame before declaring the connection dead.
    pong_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: Notifications buffered for the consumer; when full the connection is dropped.
    buffer_size: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    #: Largest message accepted; a larger one drops the connection.
    max_message_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=attrs.validators.ge(1024))
    #: Bytes read from the stream at once.
    read_size: int = attrs.field(default=65536, validator=attrs.validators.ge(1))


#: ``Notification(data=UNDECODED, wire=...)``: ``data`` is decoded from the text when first read.
UNDECODED: Final = object()


@attrs.frozen
class Notification:
    """One ``{"method":"subscription","params":{"channel","data"}}`` message.

    ``wire`` is the ``orders.*`` / ``fills.*`` payload the fast path
    (``_wire``) already decoded; ``data`` is then decoded from the text only
    if read (when the fast path declines the payload and the strict parsers
    decide).
    """

    channel: str
    _data: object = attrs.field(alias="data", repr=False)
    # The message text, and the secrets to scrub from it: the excerpt is made
    # only when asked for (redacting every message cost more than parsing it).
    _text: str = attrs.field(repr=False, alias="raw")
    _secrets: tuple[str, ...] = attrs.field(default=(), repr=False, kw_only=True, alias="secrets")
    wire: Wire | None = attrs.field(default=None, repr=False, kw_only=True)

    def quote(self, value: object, limit: int) -> str:
        """At most ``limit`` characters of ``str(value)`` (venue text, the channel say), redacted before the cut."""
        return cut(str(value), limit, *self._secrets)

    @functools.cached_property
    def raw(self) -> str:
        """The raw message, for discrepancy excerpts (truncated and redacted)."""
        return _excerpt(self._text, self._secrets)

    @functools.cached_property
    def data(self) -> object:
        """``params.data`` as ``decode_json`` gives it.

        Raises :class:`ParseError` only if the fast path's promise about the
        text (``decode_notification``) were broken.
        """
        if self._data is not UNDECODED:
            return self._data
        message = decode_json(self._text)
        params = message.get("params") if isinstance(message, dict) else None
        if not isinstance(params, dict) or "data" not in params:
            raise ParseError("a subscription message needs params.channel and params.data")
        return params["data"]


# Setting the slots through their descriptors skips the frozen class's
# ``__setattr__`` guard: what ``Notification(...)`` does, at half the cost per message.
_new_object = object.__new__
_slots = Notification.__dict__  # the slots' member descriptors
_set_channel = _slots["channel"].__set__
_set_data = _slots["_data"].__set__
_set_text = _slots["_text"].__set__
_set_secrets = _slots["_secrets"].__set__
_set_wire = _slots["wire"].__set__


def _fast_notification(channel: str, text: str, secrets: tuple[str, ...], wire: Wire) -> Notification:
    """``Notification(channel=channel, data=UNDECODED, raw=text, secrets=secrets, wire=wire)``, built faster."""
    notification: Notification = _new_object(Notification)
    _set_channel(notification, channel)
    _set_data(notification, UNDECODED)
    _set_text(notification, text)
    _set_secrets(notification, secrets)
    _set_wire(notification, wire)
    return notification


Incoming: TypeAlias = Notification | Discrepancy


class _RpcError(Exception):
    """A JSON-RPC error answer (internal; mapped by :class:`ParadexWebSocket`).

    ``code`` is the value as sent (compared with known codes); ``shown_code``
    and ``message`` are safe to show (redacted, then cut).
    """

    def __init__(self, method: str, code: object, shown_code: str, message: str) -> None:
        super().__init__(f"{method}: error {shown_code}: {message}")
        self.method = method
        self.code = code
        self.shown_code = shown_code
        self.message = message


@attrs.define(eq=False)
class _Call:
    event: anyio.Event = attrs.field(factory=anyio.Event)
    response: Mapping[str, object] | None = None
    failure: BaseException | None = None


def _excerpt(text: str, secrets: Sequence[str] = ()) -> str:
    # Redacted before the cut, so a secret straddling it cannot leave a prefix behind.
    return cut(text, _EXCERPT_CHARS, *secrets)


class JsonRpcConnection:
    """One WebSocket connection speaking JSON-RPC: handshake, reader, calls, notifications.

    Use through :meth:`ParadexWebSocket.connect`; the reader runs in the task
    group that method owns.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        settings: WebSocketSettings,
        *,
        on_reauth: Callable[[], None] = lambda: None,
    ) -> None:
        self._stream = stream
        self._settings = settings
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._send_lock = anyio.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, _Call] = {}
        self._failure: BaseException | None = None
        self._subscribed: set[str] = set()
        self._on_reauth = on_reauth
        self._notify_send: MemoryObjectSendStream[Incoming]
        self._notify_receive: MemoryObjectReceiveStream[Incoming]
        self._notify_send, self._notify_receive = anyio.create_memory_object_stream[Incoming](settings.buffer_size)
        self._message: list[str | bytes] = []
        # A tuple, replaced when a secret is added: every notification shares it.
        self._secrets: tuple[str, ...] = ()
        self._message_size = 0
        self._closed = False

    @property
    def failure(self) -> BaseException | None:
        """Why the connection ended, once it has."""
        return self._failure

    @property
    def subscribed(self) -> frozenset[str]:
        return frozenset(self._subscribed)

    def remember_secret(self, secret: str) -> None:
        """A value (the bearer token) to scrub from every excerpt this connection produces."""
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def quote(self, value: object, limit: int) -> str:
        """At most ``limit`` characters of ``str(value)`` (venue text), redacted before the cut."""
        return cut(str(value), limit, *self._secrets)

    def _malformed(self, detail: str, text: str) -> Discrepancy:
        return Discrepancy(
            kind=DiscrepancyKind.MALFORMED_MESSAGE,
            subject="WebSocket message",
            detail=cut(detail, _DETAIL_CHARS, *self._secrets),
            seen=_excerpt(text, self._secrets),
            severity=Severity.ERROR,
        )

    # -- bytes in and out ------------------------------------------------------

    async def _send_event(self, event: Event) -> None:
        try:
            data = self._ws.send(event)
        except ProtocolError as exc:
            raise ConnectionLostError(f"WebSocket cannot send in state {self._ws.state.name}") from exc
        async with self._send_lock:
            try:
                await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                raise ConnectionLostError(f"WebSocket send failed ({type(exc).__name__})") from exc

    async def _receive(self) -> bytes | None:
        try:
            return await self._stream.receive(self._settings.read_size)
        except anyio.EndOfStream:
            return None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise ConnectionLostError(f"WebSocket connection broke ({type(exc).__name__})") from exc

    def _feed(self, data: bytes | None) -> None:
        try:
            self._ws.receive_data(data)
        except ProtocolError as exc:
            raise ConnectionLostError(f"WebSocket protocol error: {exc}") from exc

    # -- handshake -------------------------------------------------------------

    async def handshake(self, url: str) -> None:
        """The HTTP/1.1 upgrade. Raises ``AuthenticationError`` on 401/403, else ``TransportError``."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        await self._send_event(Request(host=parts.netloc, target=target))
        reject: RejectConnection | None = None
        body = bytearray()
        while True:
            data = await self._receive()
            if data is None:
                raise ConnectionLostError("the server closed the connection during the WebSocket handshake")
            try:
                self._ws.receive_data(data)
                # Stop at the answer: frames that came with it stay buffered for the reader.
                for event in self._ws.events():
                    if isinstance(event, AcceptConnection):
                        return
                    if isinstance(event, RejectConnection):
                        reject = event
                        if not event.has_body:
                            self._rejected(reject, b"")
                    elif isinstance(event, RejectData):
                        body.extend(event.data[: 1000 - len(body)])
                        if event.body_finished and reject is not None:
                            self._rejected(reject, bytes(body))
            except ProtocolError as exc:
                raise TransportError(f"WebSocket handshake failed: {exc}") from exc

    def _rejected(self, event: RejectConnection, body: bytes) -> None:
        text = cut(body.decode("utf-8", "replace"), 200)
        if "GEO_IP_BLOCK" in text or "40112" in text:
            raise AuthenticationError(
                f"WebSocket upgrade: {GEO_BLOCK_MESSAGE}", code="GEO_IP_BLOCK", status=event.status_code
            )
        message = f"WebSocket upgrade refused: HTTP {event.status_code}" + (f": {text!r}" if text else "")
        if event.status_code in (401, 403):
            raise AuthenticationError(message, status=event.status_code)
        raise TransportError(message)

    # -- the reader --------------------------------------------------------------

    async def run_reader(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Read until the connection ends; never raises (the failure is kept and reported downstream)."""
        task_status.started()
        try:
            await self._read_loop()
        except (ConnectionLostError, TransportError, VenueError) as exc:
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must still end the stream cleanly, not leak an ExceptionGroup
            failure = ConnectionLostError(f"WebSocket reader failed: {type(exc).__name__}")
            failure.__cause__ = exc
            self._fail(failure)
        finally:
            if self._failure is None:
                self._fail(ConnectionLostError("WebSocket connection closed"))
            # Let the venue know at once; buffered notifications stay readable.
            await self._close_transport()

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._notify_send.close()
        for call in self._pending.values():
            if not call.event.is_set():  # an answer that came before the end stands
                call.failure = self._failure
                call.event.set()

    async def _read_loop(self) -> None:
        settings = self._settings
        awaiting_pong = False
        # Frames that arrived with the handshake answer are already buffered in wsproto.
        await self._handle_events()
        while True:
            timeout = settings.pong_timeout if awaiting_pong else settings.ping_interval
            with anyio.move_on_after(timeout) as scope:
                data = await self._receive()
            if scope.cancelled_caught:
                if awaiting_pong:
                    raise ConnectionLostError(
                        f"no frame and no pong from Paradex for {settings.ping_interval + settings.pong_timeout:g} s:"
                        " the connection is dead"
                    )
                await self._send_event(Ping(payload=b"reconcile"))
                awaiting_pong = True
                continue
            awaiting_pong = False
            self._feed(data)
            await self._handle_events()

    async def _handle_events(self) -> None:
        collect = self._collect
        for event in self._ws.events():
            if isinstance(event, TextMessage):  # nearly every event: tested first
                collect(event.data, event.message_finished)
            elif isinstance(event, Ping):
                await self._send_event(event.response())
            elif isinstance(event, Pong):
                pass  # any frame proves the connection alive
            elif isinstance(event, CloseConnection):
                if event.code == 1006:
                    failure = ConnectionLostError("the WebSocket connection dropped without a close frame (1006)")
                else:
                    reason = f": {self.quote(event.reason, 200)}" if event.reason else ""
                    failure = ConnectionLostError(f"WebSocket closed (code {int(event.code)}{reason})")
                # Failed before answering: a call made while the answer is on its way (the
                # auth right after a close that came with the handshake) reports this close,
                # not the closed state it finds.
                self._fail(failure)
                await self._answer_close(event)
                raise failure
            elif isinstance(event, BytesMessage):
                collect(bytes(event.data), event.message_finished)

    async def _answer_close(self, event: CloseConnection) -> None:
        if self._ws.state.name in ("OPEN", "REMOTE_CLOSING"):
            with anyio.move_on_after(1, shield=True):
                with suppress(ConnectionLostError):
                    await self._send_event(event.response())

    def _collect(self, part: str | bytes, finished: bool) -> None:
        # The limit is in bytes (as the frames came), not characters.
        size = len(part) if isinstance(part, bytes) or part.isascii() else len(part.encode("utf-8", "surrogatepass"))
        if finished and not self._message:  # a whole message in one frame (the usual case): nothing to join
            if size > self._settings.max_message_bytes:
                raise self._too_large()
            if isinstance(part, str):
                fast = decode_notification(part)  # as _handle_text begins, without the call
                if fast is not None:
                    self._emit(_fast_notification(fast[0], part, self._secrets, fast[1]))
                else:
                    self._handle_strict_text(part)
            else:
                self._emit(self._malformed("unexpected binary WebSocket message", part[:_EXCERPT_CHARS].hex()))
            return
        self._message_size += size
        if self._message_size > self._settings.max_message_bytes:
            raise self._too_large()
        self._message.append(part)
        if not finished:
            return
        parts, self._message, self._message_size = self._message, [], 0
        if isinstance(part, bytes):
            raw = b"".join(p for p in parts if isinstance(p, bytes))
            self._emit(self._malformed("unexpected binary WebSocket message", raw[:_EXCERPT_CHARS].hex()))
            return
        self._handle_text("".join(p for p in parts if isinstance(p, str)))

    def _too_large(self) -> ConnectionLostError:
        return ConnectionLostError(
            f"a WebSocket message exceeded {self._settings.max_message_bytes} bytes; dropping the connection"
        )

    def _handle_text(self, text: str) -> None:
        fast = decode_notification(text)
        if fast is not None:  # an order or fill notification, decoded into its wire shape
            self._emit(_fast_notification(fast[0], text, self._secrets, fast[1]))
            return
        self._handle_strict_text(text)

    def _handle_strict_text(self, text: str) -> None:
        """A text message the fast path declined: ``decode_json`` and the router decide."""
        try:
            message = decode_json(text)
        except ParseError as exc:
            self._emit(self._malformed(str(exc), text))
            return
        if isinstance(message, list) and message:  # a JSON-RPC 2.0 batch: each member on its own
            for member in message:
                self._route(member, text)
            return
        self._route(message, text)

    def _route(self, message: object, text: str) -> None:
        """One decoded JSON-RPC message: an answer, a notification, or something to report."""
        if not isinstance(message, dict):
            self._emit(self._malformed("a JSON-RPC message must be an object", text))
            return
        # A notification may carry "result": null or "error": null (some JSON-RPC servers
        # write every member); only a value makes it an answer.
        notification = message.get("method") == "subscription"
        if (message.get("result") is not None or message.get("error") is not None) or (
            not notification and ("result" in message or "error" in message)
        ):
            self._handle_response(message, text)
            return
        if notification:
            params = message.get("params")
            channel = params.get("channel") if isinstance(params, dict) else None
            if not isinstance(channel, str) or not isinstance(params, dict) or "data" not in params:
                self._emit(self._malformed("a subscription message needs params.channel and params.data", text))
                return
            self._emit(Notification(channel=channel, data=params["data"], raw=text, secrets=self._secrets))
            return
        logger.debug("ignoring WebSocket message with method %r", self.quote(message.get("method"), 50))

    def _handle_response(self, message: dict[str, object], text: str) -> None:
        call_id = _integral(message.get("id"))
        call = self._pending.get(call_id) if call_id is not None else None
        if call is not None:
            if not call.event.is_set():  # a repeated answer changes nothing
                call.response = message
                call.event.set()
            return
        if message.get("method") == "subscription":
            # Not an answer to anything: a notification that also carries "result" or "error".
            self._emit(self._malformed("a subscription notification that also carries result or error", text))
            return
        error = message.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        if _integral(code) in _REAUTH_CODES:
            self._on_reauth()
            raise ConnectionLostError(
                f"Paradex invalidated this connection's authentication (error {code}); "
                "the next connection re-authenticates with a fresh token"
            )
        if code is not None:
            self._emit(self._malformed(f"unsolicited JSON-RPC error {self.quote(code, 50)}", text))
        else:
            logger.debug("ignoring a JSON-RPC answer to an unknown request id")

    def _emit(self, item: Incoming) -> None:
        try:
            self._notify_send.send_nowait(item)
        except anyio.WouldBlock:
            raise ConnectionLostError(
                f"the consumer fell {self._settings.buffer_size} WebSocket messages behind; dropping the "
                "connection before Paradex does (the reconnect's REST reconciliation recovers what was missed)"
            ) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ConnectionLostError("the consumer stopped reading the WebSocket") from None

    # -- calls -------------------------------------------------------------------

    async def call(self, method: str, params: Mapping[str, object], *, what: str | None = None) -> object:
        """Send a JSON-RPC request and wait for its answer; the ``result`` or :class:`_RpcError`."""
        if self._failure is not None:
            raise self._failure
        call_id = next(self._ids)
        call = _Call()
        self._pending[call_id] = call
        try:
            request = json.dumps({"jsonrpc": "2.0", "method": method, "params": dict(params), "id": call_id})
            await self._send_event(TextMessage(data=request))
            with anyio.fail_after(self._settings.rpc_timeout):
                await call.event.wait()
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"Paradex did not answer {what or method} within {self._settings.rpc_timeout:g} s"
            ) from exc
        finally:
            self._pending.pop(call_id, None)
        if call.failure is not None:
            raise call.failure
        response = call.response or {}
        error = response.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            # Only an integer is a JSON-RPC code: anything else (a list, say) is shown, never compared.
            number = _integral(code)
            if number is not None:
                raise _RpcError(what or method, number, str(number), self.quote(message or "", 200))
            raise _RpcError(what or method, None, self.quote(repr(code), 50), self.quote(message or "", 200))
        return response.get("result")

    async def subscribe(self, channel: str) -> None:
        """Subscribe to one channel and wait for its ack (once per socket)."""
        if channel in self._subscribed:
            raise UsageError(f"channel {channel!r} is already subscribed on this connection")
        self._subscribed.add(channel)
        result = await self.call("subscribe", {"channel": channel}, what=f"subscribe {channel}")
        # The spec's result names the channel, but does not require it: an object without
        # one is an ack too. One naming another channel is not.
        acked = result.get("channel", channel) if isinstance(result, dict) else None
        if not isinstance(acked, str) or acked.lower() != channel.lower():
            raise VenueError(f"Paradex acknowledged subscribe {channel!r} with {self.quote(result, 100)!r}")

    # -- notifications -------------------------------------------------------------

    async def next_incoming(self) -> Incoming:
        """The next notification or discrepancy; raises the connection's failure once it ended.

        A buffered notification is returned without yielding to the event
        loop, so a consumer takes a burst in one go (and the session merges it
        as one batch, under one ledger commit); it waits only when the buffer
        is empty.
        """
        try:
            try:
                return self._notify_receive.receive_nowait()
            except anyio.WouldBlock:
                return await self._notify_receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise self._failure or ConnectionLostError("WebSocket connection closed") from None

    def incoming_nowait(self) -> Incoming | None:
        """The next buffered notification or discrepancy, ``None`` when none is buffered.

        What :meth:`next_incoming` returns without waiting, for a consumer that
        takes a burst without making a coroutine per message; raises the
        connection's failure once it ended, as that does.
        """
        try:
            return self._notify_receive.receive_nowait()
        except anyio.WouldBlock:
            return None
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise self._failure or ConnectionLostError("WebSocket connection closed") from None

    async def aclose(self) -> None:
        """Close the notification buffer and the transport. Idempotent."""
        # Both ends: when the handshake failed the reader never ran, and only it closes the send end.
        self._notify_send.close()
        self._notify_receive.close()
        await self._close_transport()

    async def _close_transport(self) -> None:
        """Send a close frame (best effort, bounded) and close the stream. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.move_on_after(1, shield=True):
            if self._ws.state.name == "OPEN":
                with suppress(ConnectionLostError):
                    await self._send_event(CloseConnection(code=1000))
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                await self._stream.aclose()


class _Reauth(Exception):  # noqa: N818 - an internal signal, not an error users see
    def __init__(self, code: object) -> None:
        super().__init__(f"re-auth needed (error {code})")
        self.code = code


class ParadexWebSocket:
    """Opens authenticated, subscribed Paradex WebSocket connections.

    One object serves many connections (the runtime reconnects through it): it
    remembers that the venue asked for re-authentication, so the next
    connection forces a token refresh.
    """

    def __init__(
        self,
        *,
        url: str,
        token: TokenProvider,
        connector: WebSocketConnector | None = None,
        settings: WebSocketSettings | None = None,
        channels: Sequence[str] = DEFAULT_CHANNELS,
    ) -> None:
        if len(set(channels)) != len(channels):
            raise UsageError(f"channels must be distinct, got {list(channels)!r}")
        self._url = url
        self._token = token
        self._connector = connector or default_connector
        self._settings = settings or WebSocketSettings()
        self._channels = tuple(channels)
        self._reauth_needed = False
        # Every connection after the first authenticates with a freshly minted
        # token (paradex-py #116: a reconnect must never reuse a stale JWT).
        self._connected_before = False

    def __repr__(self) -> str:
        return f"<ParadexWebSocket {shown_url(self._url)} channels={list(self._channels)}>"

    @property
    def url(self) -> str:
        return self._url

    @property
    def reauth_needed(self) -> bool:
        """True when the next connection will force a token refresh."""
        return self._reauth_needed

    def _mark_reauth(self) -> None:
        self._reauth_needed = True

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[JsonRpcConnection]:
        settings = self._settings
        try:
            with anyio.fail_after(settings.connect_timeout):
                stream = await self._connector(self._url)
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"connecting to {shown_url(self._url)} took longer than {settings.connect_timeout:g} s"
            ) from exc
        except (OSError, anyio.BrokenResourceError) as exc:
            raise TransportError(f"cannot connect to {shown_url(self._url)}: {type(exc).__name__}: {exc}") from exc
        connection = JsonRpcConnection(stream, settings, on_reauth=self._mark_reauth)
        try:
            try:
                with anyio.fail_after(settings.connect_timeout):
                    await connection.handshake(self._url)
            except TimeoutError as exc:
                raise RequestTimeoutError(f"the WebSocket handshake with {shown_url(self._url)} timed out") from exc
            body_error: BaseException | None = None
            async with anyio.create_task_group() as tg:
                await tg.start(connection.run_reader)
                try:
                    yield connection
                except BaseException as exc:  # noqa: BLE001 - re-raised below, outside the task group
                    body_error = exc
                finally:
                    tg.cancel_scope.cancel()
            if body_error is not None:
                raise body_error
        finally:
            await connection.aclose()

    async def _login(self, connection: JsonRpcConnection, *, force_refresh: bool) -> None:
        token = await fetch_token(self._token, force_refresh=force_refresh)
        connection.remember_secret(token)
        try:
            result = await connection.call("auth", {"bearer": token})
            if not isinstance(result, dict):
                raise VenueError(f"Paradex answered auth with {connection.quote(result, 100)!r}")
            for channel in self._channels:
                await connection.subscribe(channel)
        except _RpcError as exc:
            if exc.code in _REAUTH_CODES:
                raise _Reauth(exc.code) from exc
            if exc.code == _GEO_BLOCK_CODE:
                raise AuthenticationError(f"WebSocket auth: {GEO_BLOCK_MESSAGE}", code=exc.shown_code) from exc
            raise VenueError(f"WebSocket {exc}", code=exc.shown_code) from exc

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[JsonRpcConnection]:
        """Connect, authenticate and subscribe; yields the live connection.

        Raises ``AuthenticationError`` when two fresh connections in a row are
        refused with 40110/40111, ``TransportError``/``TimeoutError`` when the
        network fails, ``VenueError`` for other refusals.
        """
        stack = AsyncExitStack()
        for attempt in (1, 2):
            stack = AsyncExitStack()
            try:
                connection = await stack.enter_async_context(self._connection())
                await self._login(connection, force_refresh=self._reauth_needed or self._connected_before)
            except _Reauth as exc:
                await stack.aclose()
                self._reauth_needed = True
                if attempt == 2:
                    raise AuthenticationError(
                        f"Paradex rejected the bearer token (error {exc.code}) on two fresh connections",
                        code=str(exc.code),
                    ) from None
                logger.info("WebSocket auth refused (error %s); reconnecting with a refreshed token", exc.code)
                continue
            except BaseException:
                # Not shielded: the stack holds a task group, whose cancel scope must exit first.
                # The connection's own close is shielded and bounded.
                await stack.aclose()
                raise
            self._reauth_needed = False
            self._connected_before = True
            break
        async with stack:
            yield connection
