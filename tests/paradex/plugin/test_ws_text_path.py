"""The WebSocket text path's shortcuts against what they shortcut.

``_collect`` takes a message that came in one frame without the join of
fragmented ones, and ``_handle_text`` builds a fast path's ``Notification``
without its ``__init__``; both must behave exactly as the plain code does:
the same items emitted, the same size bound, the same errors. So must
``_HintStream.__anext__``, which takes a fast path's value without queueing it.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile_core import Discrepancy
from reconcile_core.errors import ConnectionLostError
from reconcile_core.typing import Hint
from reconcile_paradex import ParadexSource
from reconcile_paradex._source import _HintStream, _scrubbed
from reconcile_paradex._wire import decode_notification
from reconcile_paradex._ws import (
    _EXCERPT_CHARS,
    UNDECODED,
    JsonRpcConnection,
    Notification,
    WebSocketSettings,
    _fast_notification,
)
from tests.benchmarks._payloads import notifications, rpc_text

from .fake_venue import ACCOUNT, fill_payload, memory_pipe, order_payload, position_payload

LIMIT = 1024  # the smallest max_message_bytes allowed


class PlainCollect(JsonRpcConnection):
    """``_collect`` as it was before its one-frame shortcut: every message joined from its parts."""

    def _collect(self, part: str | bytes, finished: bool) -> None:
        self._message_size += len(part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass"))
        if self._message_size > self._settings.max_message_bytes:
            raise ConnectionLostError(
                f"a WebSocket message exceeded {self._settings.max_message_bytes} bytes; dropping the connection"
            )
        self._message.append(part)
        if not finished:
            return
        parts, self._message, self._message_size = self._message, [], 0
        if isinstance(part, bytes):
            raw = b"".join(p for p in parts if isinstance(p, bytes))
            self._emit(self._malformed("unexpected binary WebSocket message", raw[:_EXCERPT_CHARS].hex()))
            return
        self._handle_text("".join(p for p in parts if isinstance(p, str)))


def drive(cls: type[JsonRpcConnection], frames: list[tuple[str | bytes, bool]]) -> list[tuple[str, Any]]:
    """What a connection emits for ``frames`` (and the error that ends it, if any)."""
    out: list[tuple[str, Any]] = []
    ends = memory_pipe()
    connection = cls(ends[0], WebSocketSettings(max_message_bytes=LIMIT, buffer_size=100))
    connection.remember_secret("secret-token-value")
    try:
        try:
            for part, finished in frames:
                connection._collect(part, finished)
        except ConnectionLostError as exc:
            out.append(("lost", str(exc)))  # the connection ends: what it held no longer matters
        else:
            out.append(("pending", (list(connection._message), connection._message_size)))
        while True:
            try:
                item = connection._notify_receive.receive_nowait()
            except anyio.WouldBlock:
                break
            if isinstance(item, Notification):
                out.append(("notification", (item.channel, item.raw, item.data, item.wire)))
            else:
                out.append((type(item).__name__, repr(item)))
    finally:
        connection._notify_send.close()
        connection._notify_receive.close()
        for end in ends:
            end._send.close()
            end._receive.close()
    return out


TEXTS = [rpc_text(channel, data) for channel, data in notifications(2)]
TEXTS += ["not json", "{}", '{"method":"subscription","params":{"channel":"x","data":1}}', "secret-token-value", ""]
TEXTS += ["x" * (LIMIT - 1), "x" * LIMIT, "x" * (LIMIT + 1)]


@st.composite
def frame_lists(draw: st.DrawFn) -> list[tuple[str | bytes, bool]]:
    frames: list[tuple[str | bytes, bool]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        binary = draw(st.booleans()) and draw(st.booleans())
        text = draw(st.one_of(st.sampled_from(TEXTS), st.text(max_size=40)))
        pieces = draw(st.integers(min_value=1, max_value=4))
        cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=pieces - 1, max_size=pieces - 1)))
        bounds = [0, *cuts, len(text)]
        for index in range(pieces):
            piece = text[bounds[index] : bounds[index + 1]]
            frames.append((piece.encode() if binary else piece, index == pieces - 1 or draw(st.booleans())))
    return frames


@settings(max_examples=300)
@given(frames=frame_lists())
def test_collect_emits_the_same_with_or_without_the_one_frame_shortcut(frames: list[tuple[str | bytes, bool]]) -> None:
    assert drive(JsonRpcConnection, frames) == drive(PlainCollect, frames)


@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT, LIMIT + 1])
@pytest.mark.parametrize("binary", [False, True])
def test_one_frame_message_size_bound(size: int, binary: bool) -> None:
    part: str | bytes = b"x" * size if binary else "x" * size
    result = drive(JsonRpcConnection, [(part, True)])
    assert result == drive(PlainCollect, [(part, True)])
    assert (result[0][0] == "lost") is (size > LIMIT)


def test_the_fast_notification_is_the_one_init_builds() -> None:
    for text in TEXTS[:2]:
        decoded = decode_notification(text)
        assert decoded is not None
        channel, wire = decoded
        fast = _fast_notification(channel, text, ("secret",), wire)
        plain = Notification(channel=channel, data=UNDECODED, raw=text, secrets=("secret",), wire=wire)
        assert type(fast) is Notification
        assert fast == plain
        assert repr(fast) == repr(plain)
        assert (fast.raw, fast.data) == (plain.raw, plain.data)
        with pytest.raises(AttributeError):
            fast.channel = "other"  # type: ignore[misc]


# -- the hint stream ---------------------------------------------------------------------------

SECRET = "read-only-secret-token-value"  # noqa: S105 - a test value


class PlainHintStream(_HintStream):
    """``__anext__`` as it was before its shortcuts: every item through ``_hints`` and the queue."""

    async def __anext__(self) -> Hint:
        while not self._ready:
            item = await self._connection.next_incoming()
            if isinstance(item, Discrepancy):
                return item
            for hint in self._source._hints(item):
                self._ready.append(_scrubbed(hint, self._connection) if isinstance(hint, Discrepancy) else hint)
        return self._ready.popleft()


def rpc(channel: str, data: object) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}})


MESSAGES = [
    rpc("orders.ALL", order_payload("o1")),
    rpc("fills.ALL", fill_payload("f1")),
    rpc("fills.ALL", fill_payload("f2", fill_type="NEWTYPE")),  # declined: the strict path adds a discrepancy
    rpc("orders.ALL", order_payload("o2", status="PENDING", client_id=SECRET)),
    rpc("orders.ALL", order_payload("o3", price="NaN")),  # malformed: a discrepancy, redacted
    rpc("fills.ALL", fill_payload("f3", account="0x1", fee=SECRET)),
    rpc("positions", position_payload("BTC-USD-PERP", "1")),
    rpc("account", {"account": ACCOUNT}),  # no hint at all
    rpc("tradebusts", {"account": ACCOUNT}),
    rpc("unknown.channel", {}),
    f"not json {SECRET}",
    '{"method":"subscription","params":{}}',
]


async def stream_hints(cls: type[_HintStream], source: ParadexSource, texts: list[str]) -> list[tuple[str, str]]:
    ends = memory_pipe()
    connection = JsonRpcConnection(ends[0], WebSocketSettings(buffer_size=100))
    connection.remember_secret(SECRET)
    out: list[tuple[str, str]] = []
    try:
        for text in texts:
            connection._collect(text, finished=True)
        connection._fail(ConnectionLostError("the end of the test"))
        stream = cls(connection, source)
        while True:
            try:
                hint = await stream.__anext__()
            except ConnectionLostError as exc:
                out.append(("lost", str(exc)))
                break
            out.append((type(hint).__name__, repr(hint)))
    finally:
        connection._notify_receive.close()
        for end in ends:
            end._send.close()
            end._receive.close()
    return out


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.sampled_from(MESSAGES), max_size=8))
def test_the_hint_stream_yields_the_same_with_or_without_its_shortcuts(texts: list[str]) -> None:
    source = ParadexSource(account=ACCOUNT, token=SECRET, http_client=httpx.AsyncClient())
    fast = anyio.run(stream_hints, _HintStream, source, texts)
    plain = anyio.run(stream_hints, PlainHintStream, source, texts)
    assert fast == plain
    assert not [hint for kind, hint in fast if kind == "Discrepancy" and SECRET in hint]  # values are not redacted


@pytest.mark.parametrize("finished", [True, False])
def test_the_size_bound_counts_bytes_not_characters(finished: bool) -> None:
    text = "€" * (LIMIT // 3 + 1)  # fewer characters than LIMIT, more than LIMIT bytes in UTF-8
    assert len(text) < LIMIT < len(text.encode())
    frames: list[tuple[str | bytes, bool]] = [(text, True)] if finished else [(text[:10], False), (text[10:], True)]
    out = drive(JsonRpcConnection, frames)
    assert out[0][0] == "lost"
    assert "exceeded" in out[0][1]
    within = "€" * (LIMIT // 3)
    assert drive(JsonRpcConnection, [(within, True)])[0] == ("pending", ([], 0))
