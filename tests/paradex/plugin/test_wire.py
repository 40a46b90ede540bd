"""The msgspec fast path (``_wire``) against the strict one (``decode_json`` + ``parse_*``).

The claim under test: the fast path accepts only a subset of what the strict
path accepts and, for everything it accepts, gives exactly the strict path's
result (values compared by ``repr``, so ``Decimal("1.50")`` is not
``Decimal("1.5")``). Payloads are generated around the happy path and mutated
field by field (strings, numbers, empty, huge, odd tokens, case changes),
with fields dropped, added and duplicated, as raw JSON text, so that what
``json.dumps`` would never write (duplicate keys, ``1E400``, 50-digit
integers, deep nesting, a BOM) is written too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from unittest import mock

import anyio
import httpx
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from reconcile_core import Discrepancy, Fill, Order, Source
from reconcile_core.errors import ConnectionLostError, ParseError
from reconcile_paradex import ParadexSource, _wire, decode_json, parse_fill, parse_order, parse_page
from reconcile_paradex._fields import _DECIMAL_RE
from reconcile_paradex._wire import (
    FillWire,
    OrderWire,
    decode_notification,
    fills_page,
    orders_page,
    value_from_wire,
)
from reconcile_paradex._ws import Notification
from tests.benchmarks._payloads import fill_json, notifications, order_json, rpc_text

from .fake_venue import ACCOUNT, FakeParadex, fill_payload, offline_connection, order_payload, paradex_source

EXAMPLES = int(os.environ.get("WIRE_EXAMPLES", "300"))
SAMPLES = Path("/work/shared/paradex/samples")

# -- JSON text, written by hand ---------------------------------------------------------------


class Token(str):
    """A JSON token written as is (``1E400``, a 50-digit integer, ``[[[]]]``)."""

    __slots__ = ()


class Obj(list[tuple[str, Any]]):
    """A JSON object as its members in order: keys may repeat."""


def render(value: object, *, spaced: bool = False, ascii_only: bool = True) -> str:
    colon, comma = (": ", ", ") if spaced else (":", ",")

    def write(item: object) -> str:
        if isinstance(item, Token):
            return str(item)
        if isinstance(item, Obj):
            return "{" + comma.join(write(key) + colon + write(member) for key, member in item) + "}"
        if isinstance(item, list):
            return "[" + comma.join(write(member) for member in item) + "]"
        return json.dumps(item, ensure_ascii=ascii_only)

    return write(value)


def obj(payload: dict[str, Any]) -> Obj:
    return Obj(payload.items())


# -- what a field may hold ----------------------------------------------------------------------

DECIMAL_STRINGS = [
    "0", "-0", "1", "1.5", "1.50", "-1.5", "+1", ".5", "5.", "1e5", "1E-5", "1e+5", "1E+40", "1e40", "1e41",
    "1e-40", "1e-41", "0.000", "-0.0", "00.1", "1.2.3", "1e", "e5", "-", "+", ".", " 1", "1 ", "1_0", "NaN",
    "nan", "sNaN", "Infinity", "-inf", "0x10", "\u0661\u0662", "\uff11", "9" * 64, "9" * 65, "0." + "0" * 39 + "1",
    "0." + "0" * 40 + "1", "1" + "0" * 40, "1" + "0" * 41, "64852.9", "0.0389117", "1e999999999999999999",
    "1e9999999999999999999", "--1", "1e+-5", "1ee5", "1.e5", ".e5",
]  # fmt: skip
ENUM_STRINGS = [
    "BUY", "buy", "Buy", "SELL", "sell", "FILL", "fill", "\ufb01ll", "TRANSFER", "transfer", "UNWIND_TRANSFER",
    "RPI", "LIQUIDATION", "SETTLE_MARKET", "BLOCK_TRADE", "NEWTYPE", "MAKER", "maker", "TAKER", "LIMIT", "limit",
    "MARKET", "STOP_MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_MARKET", "NEW", "OPEN", "open", "CLOSED", "closed",
    "Closed", "UNTRIGGERED", "PENDING", "EXPIRED", "NOT_ENOUGH_MARGIN", "not_enough_margin", "USER_CANCELED",
    "MARKET_NOT_OPEN",
]  # fmt: skip
TEXTS = ["", "x", "x" * 512, "x" * 513, "\u00df" * 300, "caf\u00e9", "\ud800", "a\x00b", "line\nbreak", "GTC"]
ACCOUNTS = [ACCOUNT, ACCOUNT.upper().replace("0X", "0x"), "0x0" + ACCOUNT[2:], "0x1", "not-hex", "0X" + ACCOUNT[2:]]
NUMBER_TOKENS = [
    "1.0", "1e5", "-0", "-0.0", "1E400", "1e99999999999999999999", "1e-99999999999999999", "0.5", "1" * 40,
    "1" * 41, "-" + "1" * 40, "-" + "1" * 41, "9" * 60, "12345678901234567890", "9223372036854775807",
    "9223372036854775808", "-1", "1700000000000", "1.7e12",
]  # fmt: skip
CONTAINER_TOKENS = ["[]", "{}", '["REDUCE_ONLY"]', "[1]", '{"a":1}', '{"id":"r1","status":"OK"}', "[[]]", "null"]

# Values the strict path takes: mutations that keep a payload on the fast path.
plausible = st.one_of(
    st.from_regex(r"[+-]?([0-9]{1,25}(\.[0-9]{0,25})?|\.[0-9]{1,25})([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.sampled_from(ENUM_STRINGS),
    st.sampled_from(ACCOUNTS),
    st.just(""),
)
values = st.one_of(
    plausible,
    st.sampled_from(DECIMAL_STRINGS),
    st.sampled_from(ENUM_STRINGS),
    st.sampled_from(TEXTS),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(NUMBER_TOKENS).map(Token),
    st.sampled_from(CONTAINER_TOKENS).map(Token),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**63 - 1, 2**63, 10**40, 10**41]),
    st.booleans(),
    st.none(),
    st.text(alphabet="0123456789.eE+-_ ", max_size=12),
    st.text(max_size=8),
    st.integers(min_value=1, max_value=2500).map(lambda depth: Token("[" * depth + "]" * depth)),
)

# What each field holds, so that a mutation is often a near miss of the right kind.
decimal_values = st.one_of(
    st.sampled_from(DECIMAL_STRINGS),
    st.sampled_from(["0.000", "0E-5", "-0", "0e10", "0.5", "0.4", "2", "", "1.0000"]),
    st.from_regex(r"[+-]?[0-9]{0,3}\.?[0-9]{0,3}([eE][+-]?[0-9]{1,2})?", fullmatch=True),
    st.text(alphabet="0123456789.eE+-_ \u0661", max_size=6),
)
KINDS: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(
        ["price", "size", "fee", "realized_pnl", "remaining_size", "avg_fill_price", "trigger_price"], decimal_values
    ),
    **dict.fromkeys(
        ["side", "fill_type", "liquidity", "type", "status", "cancel_reason"], st.sampled_from(ENUM_STRINGS)
    ),
    **dict.fromkeys(
        ["id", "market", "order_id", "client_id", "fee_currency", "account"],
        st.one_of(st.sampled_from(TEXTS), st.sampled_from(ACCOUNTS), st.integers(-(2**64), 2**64)),
    ),
    **dict.fromkeys(
        ["created_at", "last_updated_at", "seq_no", "timestamp", "orderbook_seq_no"],
        st.one_of(
            st.integers(min_value=-2, max_value=2**64),
            st.sampled_from([10**40 - 1, 10**40, -(10**40), 10**41, 10**60]),
            st.sampled_from([2**63 - 1, 2**63, 0, -1, "", "12", "1e3", Token("1e3"), Token("12.0"), Token("-0")]),
        ),
    ),
}


def value_for(name: str) -> st.SearchStrategy[Any]:
    kind = KINDS.get(name)
    return values if kind is None else st.one_of(kind, kind, values)


FILL_FIELDS = sorted(fill_payload("f"))
ORDER_FIELDS = sorted(order_payload("o"))
EXTRA_FIELDS = ["zzz", "request_info", "flags", "orderbook_seq_no", "timestamp", "id", "account", "trigger_price"]


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], fields: list[str]) -> Obj:
    """``base`` with a few fields set, dropped, duplicated or added."""
    members = obj(base)
    names = st.sampled_from(fields + EXTRA_FIELDS)
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        op = draw(st.sampled_from(["set", "set", "drop", "dup_last", "dup_first", "add"]))
        name = draw(names)
        if op == "set":
            members = Obj((key, draw(value_for(name))) if key == name else (key, value) for key, value in members)
        elif op == "drop":
            members = Obj((key, value) for key, value in members if key != name)
        elif op == "dup_last":
            members.append((name, draw(value_for(name))))
        elif op == "dup_first":
            members.insert(0, (name, draw(value_for(name))))
        else:
            members.append((draw(st.sampled_from([*EXTRA_FIELDS, "new_field", "nested"])), draw(values)))
    return members


def fill_bases() -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(
        [
            fill_payload("f1"),
            fill_payload("f2", account=None, liquidity="", client_id="c1", fee="", realized_pnl=""),
            fill_json(3, 0, size="0.002", remaining="0.002", at=1_718_941_725_001),
            fill_json(4, 1, size="0.05", remaining="0", at=1_718_941_725_002),
            json.loads((SAMPLES / "rest_fills_page.json").read_text())["results"][0]
            if (SAMPLES / "rest_fills_page.json").exists()
            else fill_payload("f3", fill_type="TRANSFER"),
        ]
    )


def order_bases() -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(
        [
            order_payload("o1"),
            order_payload("o2", type="MARKET", price="0", status="CLOSED", remaining_size="0"),
            order_payload("o3", status="CLOSED", remaining_size="1", cancel_reason="NOT_ENOUGH_MARGIN"),
            order_payload("o4", last_updated_at=None, seq_no=None, request_info={"id": "r", "status": "OK"}),
            order_json(5, status="OPEN", remaining="0.05", size="0.1", updated_at=1_718_941_725_051, avg="3512.41"),
        ]
    )


fill_rows = fill_bases().flatmap(lambda base: mutated(base, FILL_FIELDS))
order_rows = order_bases().flatmap(lambda base: mutated(base, ORDER_FIELDS))


def canon(item: object) -> tuple[str, str]:
    """An item as ``(type, repr)``: equal reprs mean equal values, down to each Decimal's digits."""
    return type(item).__name__, repr(item)


# -- the WebSocket path: _handle_text, then ParadexSource._hints -----------------------------------


@pytest.fixture(scope="module")
def source() -> ParadexSource:
    read_only = "read-only-token-for-tests"
    return ParadexSource(account=ACCOUNT, token=read_only, http_client=httpx.AsyncClient())


@contextmanager
def strict_only() -> Iterator[None]:
    """The strict path alone: the fast path declines everything."""
    with (
        mock.patch("reconcile_paradex._ws.decode_notification", return_value=None),
        mock.patch("reconcile_paradex._rest.fills_page", return_value=None),
        mock.patch("reconcile_paradex._rest.orders_page", return_value=None),
    ):
        yield


def routed(source: ParadexSource, text: str) -> list[tuple[str, str]]:
    """What the reader emits for ``text``, and the hints each notification becomes."""
    out: list[tuple[str, str]] = []
    with offline_connection() as connection:
        try:
            connection._handle_text(text)
        except ConnectionLostError as exc:
            out.append(("lost", str(exc)))
        while True:
            try:
                item = connection._notify_receive.receive_nowait()
            except anyio.WouldBlock:
                break
            if isinstance(item, Notification):
                out.append(("notification", f"{item.channel!r} {item.raw!r}"))
                out.extend(canon(hint) for hint in source._hints(item))
                out.append(("data", repr(item.data)))  # the lazy data is the strict path's
            else:
                out.append(canon(item))
    return out


def fast_value(source: ParadexSource, text: str) -> Order | Fill | None:
    decoded = decode_notification(text)
    if decoded is None:
        return None
    return value_from_wire(decoded[1], account=source.account, source=Source.WS)


channels = st.sampled_from(
    ["orders.ALL", "fills.ALL", "fills.BTC-USD-PERP", "orders", "fills", "Orders.ALL", "positions", "fills.ALL"]
)


@st.composite
def notification_texts(draw: st.DrawFn) -> str:
    channel = draw(channels)
    row = draw(order_rows if channel.lower().startswith("orders") and draw(st.booleans()) else fill_rows)
    params = Obj([("channel", channel), ("data", row)])
    message = Obj([("jsonrpc", "2.0"), ("method", "subscription"), ("params", params)])
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        op = draw(st.sampled_from(["method", "answer", "id", "dup_params", "dup_data", "channel", "drop"]))
        if op == "method":
            message = Obj((k, draw(st.sampled_from(["Subscription", "sub", None, 1]))) if k == "method" else (k, v)
                          for k, v in message)  # fmt: skip
        elif op == "answer":
            message.append((draw(st.sampled_from(["result", "error"])), draw(st.sampled_from([None, {}, 1]))))
        elif op == "id":
            message.append(("id", draw(st.sampled_from([1, None, "x"]))))
        elif op == "dup_params":
            message.append(("params", Obj([("channel", draw(channels)), ("data", draw(fill_rows))])))
        elif op == "dup_data":
            params.append(("data", draw(st.one_of(fill_rows, values))))
        elif op == "channel":
            params.append(("channel", draw(st.one_of(channels, values))))
        else:
            message = Obj((k, v) for k, v in message if k != draw(st.sampled_from(["jsonrpc", "method", "params"])))
    text = render(message, spaced=draw(st.booleans()), ascii_only=draw(st.booleans()))
    return draw(st.sampled_from(["", "", "", "\ufeff", " \n"])) + text


@settings(max_examples=EXAMPLES)
@given(text=notification_texts())
def test_a_notification_routes_to_the_same_hints_either_way(source: ParadexSource, text: str) -> None:
    fast = routed(source, text)
    with strict_only():
        strict = routed(source, text)
    assert fast == strict
    event("fast path took it" if fast_value(source, text) is not None else "strict path decided")


@settings(max_examples=EXAMPLES)
@given(row=fill_rows, spaced=st.booleans())
def test_fill_fields_fast_equals_strict(source: ParadexSource, row: Obj, spaced: bool) -> None:
    text = render(Obj([("method", "subscription"), ("params", Obj([("channel", "fills.ALL"), ("data", row)]))]))
    value = fast_value(source, text)
    event("fast" if value is not None else "declined")
    if value is not None:
        parsed = parse_fill(decode_json(render(row, spaced=spaced)), account=ACCOUNT, source=Source.WS)
        assert canon(value) == canon(parsed.value)
        assert parsed.problems == ()
        # with no session account, the payload's own names the fill
        decoded = decode_notification(text)
        assert decoded is not None
        alone = value_from_wire(decoded[1], account=None, source=Source.WS)
        if alone is not None:
            assert canon(alone) == canon(parse_fill(decode_json(render(row)), account=None, source=Source.WS).value)


@settings(max_examples=EXAMPLES)
@given(row=order_rows)
def test_order_fields_fast_equals_strict(source: ParadexSource, row: Obj) -> None:
    text = render(Obj([("method", "subscription"), ("params", Obj([("channel", "orders.ALL"), ("data", row)]))]))
    value = fast_value(source, text)
    event("fast" if value is not None else "declined")
    if value is not None:
        parsed = parse_order(decode_json(render(row)), source=Source.WS)
        assert canon(value) == canon(parsed.value)
        assert parsed.problems == ()


FILL_READ = ["id", "fill_type", "account", "market", "side", "price", "size", "fee", "fee_currency", "liquidity"]
FILL_READ += ["created_at", "client_id", "realized_pnl", "order_id"]
ORDER_READ = ["id", "type", "size", "remaining_size", "status", "created_at", "market", "side", "price"]
ORDER_READ += ["cancel_reason", "last_updated_at", "client_id", "avg_fill_price", "seq_no", "timestamp"]


@st.composite
def one_field(draw: st.DrawFn, base: dict[str, Any], fields: list[str]) -> Obj:
    """``base`` with one field the parser reads set, dropped or duplicated: the edge of the fast path."""
    name = draw(st.sampled_from(fields))
    members = obj(base)
    op = draw(st.sampled_from(["set", "set", "set", "drop", "dup"]))
    if op == "drop":
        return Obj((key, value) for key, value in members if key != name)
    value = draw(KINDS.get(name, values))
    if op == "dup":
        return Obj([*members, (name, value)] if draw(st.booleans()) else [(name, value), *members])
    return Obj(
        [(key, value if key == name else old) for key, old in members] if name in base else [*members, (name, value)]
    )


def assert_same_fill(row: Obj) -> bool:
    text = render(Obj([("method", "subscription"), ("params", Obj([("channel", "fills.ALL"), ("data", row)]))]))
    decoded = decode_notification(text)
    taken = False
    for account in (ACCOUNT, None):
        value = None if decoded is None else value_from_wire(decoded[1], account=account, source=Source.WS)
        if value is not None:
            parsed = parse_fill(decode_json(render(row)), account=account, source=Source.WS)
            assert (canon(value), ()) == (canon(parsed.value), parsed.problems)
            taken = True
    return taken


def assert_same_order(row: Obj) -> bool:
    text = render(Obj([("method", "subscription"), ("params", Obj([("channel", "orders.ALL"), ("data", row)]))]))
    decoded = decode_notification(text)
    value = None if decoded is None else value_from_wire(decoded[1], account=None, source=Source.WS)
    if value is None:
        return False
    parsed = parse_order(decode_json(render(row)), source=Source.WS)
    assert (canon(value), ()) == (canon(parsed.value), parsed.problems)
    return True


@settings(max_examples=EXAMPLES * 2)
@given(row=fill_bases().flatmap(lambda base: one_field(base, FILL_READ)))
def test_one_field_of_a_fill_fast_equals_strict(row: Obj) -> None:
    event("fast" if assert_same_fill(row) else "declined")


@settings(max_examples=EXAMPLES * 2)
@given(row=order_bases().flatmap(lambda base: one_field(base, ORDER_READ)))
def test_one_field_of_an_order_fast_equals_strict(row: Obj) -> None:
    event("fast" if assert_same_order(row) else "declined")


@pytest.mark.parametrize("updated", [0, 1_699_999_999_999])
def test_an_update_time_before_the_creation_is_the_creation_either_way(updated: int) -> None:
    # A zero value ("unset", as some encoders write it) would make every later update look stale.
    row = obj(order_payload("o1", created_at=1_700_000_000_000, last_updated_at=updated, status="OPEN"))
    assert assert_same_order(row)
    assert parse_order(decode_json(render(row)), source=Source.WS).value.updated_at == 1_700_000_000_000


def test_every_status_mapping_fast_equals_strict() -> None:
    taken = 0
    for status in ["NEW", "OPEN", "UNTRIGGERED", "CLOSED", "closed", "Open", "PENDING"]:
        for remaining in ["0", "0.000", "0.5", "1", "1.5", "-1"]:
            for reason in ["", "NOT_ENOUGH_MARGIN", "not_enough_margin", "USER_CANCELED", "MARKET_NOT_OPEN"]:
                for order_type in ["LIMIT", "MARKET", "stop_market", "TAKE_PROFIT_MARKET", "STOP_LOSS_LIMIT"]:
                    for price in ["0", "0.000", "", "100"]:
                        row = order_payload(
                            "o1",
                            status=status,
                            size="1",
                            remaining_size=remaining,
                            cancel_reason=reason,
                            type=order_type,
                            price=price,
                        )
                        taken += assert_same_order(obj(row))
    assert taken > 1000


def test_every_fill_kind_fast_equals_strict() -> None:
    taken = 0
    for fill_type in [*FILL_TYPES_SEEN, "NEWTYPE"]:
        for liquidity in ["MAKER", "taker", "", "NONE"]:
            for side in ["BUY", "sell", "", "HOLD"]:
                for account in [*ACCOUNTS, "", None]:
                    for fee in ["0.000", "-0", "", "1.5", "-0.25"]:
                        row = fill_payload("f1", fill_type=fill_type, liquidity=liquidity, side=side, fee=fee)
                        row["account"] = account
                        taken += assert_same_fill(obj(row))
    assert taken > 500


FILL_TYPES_SEEN = ["FILL", "fill", "RPI", "LIQUIDATION", "UNWIND_TRANSFER", "TRANSFER", "SETTLE_MARKET", "BLOCK_TRADE"]


# -- REST pages -------------------------------------------------------------------------------------


def strict_page(body: bytes, what: str, account: str | None) -> tuple[str, object]:
    try:
        payload = decode_json(body)
    except ParseError as exc:
        return "not JSON", str(exc)
    if what == "fills":
        parse_item: Any = lambda row: parse_fill(row, account=account, source=Source.REST)  # noqa: E731
    else:
        parse_item = lambda row: parse_order(row, source=Source.REST)  # noqa: E731
    try:
        page, cursor = parse_page(payload, what, parse_item)
    except ParseError as exc:
        return "error", str(exc)
    return "page", ([canon(i) for i in page.items], [canon(p) for p in page.problems], cursor)


def fast_page(body: bytes, what: str, account: str | None) -> tuple[str, object] | None:
    result = fills_page(body, account=account) if what == "fills" else orders_page(body, what=what)
    if result is None:
        return None
    page, cursor = result
    return "page", ([canon(i) for i in page.items], [canon(p) for p in page.problems], cursor)


@st.composite
def page_bodies(draw: st.DrawFn, rows: st.SearchStrategy[Obj]) -> bytes:
    members = Obj(
        [
            ("next", draw(st.sampled_from([None, "", "cursor-1", Token("1"), Token("[]")]))),
            ("prev", None),
            ("results", draw(st.lists(rows, max_size=4))),
        ]
    )
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        op = draw(st.sampled_from(["drop", "dup", "extra", "null"]))
        if op == "drop":
            members = Obj((k, v) for k, v in members if k != draw(st.sampled_from(["next", "prev", "results"])))
        elif op == "dup":
            again = draw(st.one_of(st.lists(rows, max_size=2), values))
            members.append((draw(st.sampled_from(["next", "results"])), again))
        elif op == "extra":
            members.append(("total", draw(values)))
        else:
            members = Obj((k, None if k == "results" else v) for k, v in members)
    text = render(members, spaced=draw(st.booleans()), ascii_only=draw(st.booleans()))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "broken"]))
    if encoding == "broken":
        body = text.encode("utf-8", "surrogatepass")
        cut = draw(st.integers(min_value=0, max_value=len(body)))
        return body[:cut] + draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc3"])) + body[cut:]
    return text.encode(encoding, "surrogatepass")


@settings(max_examples=EXAMPLES)
@given(body=page_bodies(fill_rows), account=st.sampled_from([ACCOUNT, None, "0x1"]))
def test_a_fills_page_fast_equals_strict(body: bytes, account: str | None) -> None:
    fast = fast_page(body, "fills", account)
    event("fast" if fast is not None else "declined")
    if fast is not None:
        assert fast == strict_page(body, "fills", account)


@settings(max_examples=EXAMPLES)
@given(body=page_bodies(order_rows))
def test_an_orders_page_fast_equals_strict(body: bytes) -> None:
    fast = fast_page(body, "orders history", None)
    event("fast" if fast is not None else "declined")
    if fast is not None:
        assert fast == strict_page(body, "orders history", None)


# -- the screens and the field checks, directly ---------------------------------------------------


@settings(max_examples=EXAMPLES * 3)
@given(text=st.one_of(st.text(alphabet="0123456789.eE+-", max_size=12), st.sampled_from(DECIMAL_STRINGS)))
def test_decimal_chars_plus_decimal_accepting_is_the_strict_regex(text: str) -> None:
    """The fast check (only decimal characters, and Decimal() takes it) never accepts what the regex refuses."""
    try:
        Decimal(text)
    except InvalidOperation:
        return
    if not text.strip(_wire._DECIMAL_CHARS):
        assert _DECIMAL_RE.fullmatch(text)


@pytest.mark.parametrize(
    "token",
    ["1" * 41, "-" + "1" * 41, "1e" + "9" * 18, "1E-" + "9" * 18, "1.5e+" + "0" * 18 + "1", "[" * 70 + "]" * 70],
)
def test_what_decode_json_refuses_in_a_skipped_field_is_never_taken(source: ParadexSource, token: str) -> None:
    for data in (obj(fill_payload("f1")), obj(fill_json(1, 0, size="1", remaining="0", at=5))):
        data.append(("skipped", Token(token)))
        text = render(Obj([("method", "subscription"), ("params", Obj([("channel", "fills.ALL"), ("data", data)]))]))
        assert decode_notification(text) is None
        assert fills_page(render(Obj([("results", [data])])).encode(), account=ACCOUNT) is None


@pytest.mark.parametrize("token", ["1" * 41, "1e" + "9" * 18, "[" * 1100 + "]" * 1100])
def test_what_decode_json_refuses_in_an_overwritten_duplicate_is_never_taken(token: str) -> None:
    """msgspec keeps the last of duplicate keys, as json.loads does, but never looks inside the first's raw data."""
    data = obj(fill_payload("f1"))
    shadowed = Obj([("channel", "fills.ALL"), ("data", Token(token)), ("data", data)])
    for params in (shadowed, Obj([("channel", "fills.ALL"), ("data", data)])):
        message = Obj([("method", "subscription"), ("params", params)])
        if params is not shadowed:
            message.insert(0, ("params", shadowed))
        assert decode_notification(render(message)) is None
    page = Obj([("results", [Obj([*data, ("flags", Token(token))])]), ("results", [data])])
    assert fills_page(render(page).encode(), account=ACCOUNT) is None


def test_the_happy_path_is_taken() -> None:
    """What Paradex sends when all is well goes through the fast path (else it would only cost)."""
    for channel, data in notifications(40):
        decoded = decode_notification(rpc_text(channel, data))
        assert decoded is not None
        assert value_from_wire(decoded[1], account=ACCOUNT, source=Source.WS) is not None
        # a field the spec does not list is skipped (the screened tier)
        decoded = decode_notification(rpc_text(channel, {**data, "new_venue_field": {"nested": [1, 2.5]}}))
        assert decoded is not None
        assert value_from_wire(decoded[1], account=ACCOUNT, source=Source.WS) is not None
    for name in ("ws_fills_notification.json", "ws_orders_notification.json"):
        if (SAMPLES / name).exists():
            text = (SAMPLES / name).read_text()
            decoded = decode_notification(text)
            assert decoded is not None
            assert isinstance(decoded[1], (FillWire, OrderWire))
    rows = [fill_payload(f"f{i}") for i in range(5)]
    result = fills_page(json.dumps({"results": rows, "next": "c", "prev": None}).encode(), account=ACCOUNT)
    assert result is not None
    assert len(result[0].items) == 5
    assert result[1] == "c"
    orders = [order_payload(f"o{i}", request_info={"id": "r"}) for i in range(5)]
    result_orders = orders_page(json.dumps({"results": orders, "next": None}).encode(), what="orders history")
    assert result_orders is not None
    assert len(result_orders[0].items) == 5


def test_a_row_the_fast_path_declines_is_parsed_strictly_with_the_rest_fast() -> None:
    rows = [fill_payload("f1"), fill_payload("f2", fill_type="NEWTYPE"), fill_payload("f3", side="")]
    body = json.dumps({"results": rows, "next": None}).encode()
    result = fills_page(body, account=ACCOUNT)
    assert result is not None
    page, _ = result
    assert [fill.key.fill_id for fill in page.items] == ["f1", "f2"]
    assert [type(p) for p in page.problems] == [Discrepancy, Discrepancy]  # unknown type, malformed row
    assert fast_page(body, "fills", ACCOUNT) == strict_page(body, "fills", ACCOUNT)


# -- wired in: the REST client and the source --------------------------------------------------------


@pytest.mark.anyio
async def test_rest_fills_and_order_history_are_the_same_with_or_without_the_fast_path() -> None:
    fake = FakeParadex()
    fake.fills = [fill_payload(f"f{i:02}", created_at=1_000 + i) for i in range(7)]
    fake.fills.append(fill_payload("odd", fill_type="NEWTYPE", created_at=2_000))
    fake.fills.append(fill_payload("bad", price="NaN", created_at=2_001))
    fake.orders = {f"o{i}": order_payload(f"o{i}", created_at=1_000 + i) for i in range(6)}
    fake.orders["odd"] = order_payload("odd", status="PENDING", created_at=3_000)

    async def read() -> list[object]:
        async with paradex_source(fake, page_size=4) as source:
            fills = [(canon(list(p.items)), canon(list(p.problems))) async for p in source.fills(since=0)]
            orders = [(canon(list(p.items)), canon(list(p.problems))) async for p in source.order_history(since=0)]
        return [fills, orders]

    fast = await read()
    with strict_only():
        strict = await read()
    assert fast == strict
    assert len(fast[0]) == 3  # pages were read
    assert len(fast[1]) == 2


def test_a_fast_notification_decodes_its_data_only_when_asked() -> None:
    text = rpc_text(*notifications(1)[0])
    with offline_connection() as connection:
        connection._handle_text(text)
        item = connection._notify_receive.receive_nowait()
    assert isinstance(item, Notification)
    assert item.wire is not None
    assert item.data == json.loads(text)["params"]["data"]


def _outcome(check: Any, text: str) -> str:
    try:
        return repr(check(text))
    except (_wire._Reject, ArithmeticError):
        return "declined"


@settings(max_examples=EXAMPLES * 3)
@given(
    text=st.one_of(
        st.text(alphabet="0123456789.eE+-", max_size=70),
        st.from_regex(r"[+-]?0*\.?0{30,45}[1-9]?", fullmatch=True),
        st.from_regex(r"[+-]?[0-9]{35,45}(\.[0-9]{0,3})?", fullmatch=True),
        st.sampled_from(DECIMAL_STRINGS),
    )
)
def test_the_plain_decimal_shortcuts_are_the_full_checks(text: str) -> None:
    """Without an exponent and within 41 characters, no adjusted exponent can be out of bounds."""
    assert _outcome(_wire._plain_decimal, text) == _outcome(_wire._required_decimal, text)
    assert _outcome(_wire._decimal, text) == _outcome(checked_decimal, text)


def checked_decimal(value: str) -> Decimal | None:
    """``_wire._decimal`` without its shortcut: every check made."""
    if value == "":
        return None
    if len(value) > _wire.MAX_NUMBER_CHARS or value.strip(_wire._DECIMAL_CHARS):
        raise _wire._Reject
    number = Decimal(value)
    if number and abs(number.adjusted()) > _wire.MAX_DECIMAL_EXPONENT:
        raise _wire._Reject
    return number
