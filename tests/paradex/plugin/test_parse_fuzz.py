"""Fuzzing the parsers: whatever the venue sends, nothing but ParseError escapes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile_core import Discrepancy, Fill, FillBust, Order, Position, Source
from reconcile_core.errors import ConnectionLostError, ParseError
from reconcile_paradex import (
    ParadexSource,
    decode_json,
    parse_account_summary,
    parse_balances,
    parse_fill,
    parse_fill_bust,
    parse_markets,
    parse_open_orders,
    parse_order,
    parse_page,
    parse_position,
    parse_positions,
    parse_server_time,
)
from reconcile_paradex._fields import Fields
from reconcile_paradex._parse import parse_error_body
from reconcile_paradex._ws import Notification

from .fake_venue import ACCOUNT, bust_payload, fill_payload, offline_connection, order_payload, position_payload

TRICKY_STRINGS = [
    "",
    "0",
    "-0",
    "NaN",
    "nan",
    "sNaN",
    "Infinity",
    "-inf",
    "1e999999",
    "1E-999999",
    "1_000",
    " 1",
    "1 ",
    "0x10",
    "١٢٣",
    "\uff11\uff12",  # fullwidth digits
    "9" * 70,
    "1" * 25,
    "-1",
    "1.5",
    "CLOSED",
    "TRANSFER",
    "x" * 600,
    "\x00",
]

NASTY_VALUES: list[object] = [
    float("inf"),
    float("-inf"),
    float("nan"),
    1e300,
    -0.0,
    Decimal("sNaN"),
    Decimal("-Infinity"),
    Decimal("1E+999999"),
    10**100,
    -(10**100),
    2**63,
    True,
    False,
    [],
    {},
]

scalars = st.one_of(
    st.sampled_from(NASTY_VALUES),
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(TRICKY_STRINGS),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _rows(parse: Callable[[object], object]) -> Callable[[object], object]:
    return lambda payload: parse_page(payload, "rows", parse)  # type: ignore[arg-type]


PARSERS: dict[str, Callable[[object], object]] = {
    "order": lambda v: parse_order(v, source=Source.REST),
    "fill (session account)": lambda v: parse_fill(v, account=ACCOUNT, source=Source.WS),
    "fill (payload account)": lambda v: parse_fill(v, account=None, source=Source.REST),
    "position": lambda v: parse_position(v, source=Source.WS),
    "bust": lambda v: parse_fill_bust(v, account=ACCOUNT, source=Source.REST),
    "open orders": parse_open_orders,
    "positions": parse_positions,
    "balances": parse_balances,
    "markets": parse_markets,
    "server time": parse_server_time,
    "account summary": parse_account_summary,
    "fills page": _rows(lambda v: parse_fill(v, account=ACCOUNT, source=Source.REST)),
    "error body": parse_error_body,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(value=json_values)
def test_random_json_raises_nothing_but_parse_error(name: str, value: object) -> None:
    with contextlib.suppress(ParseError):
        PARSERS[name](value)


_DELETE = object()
BASES: list[tuple[str, dict[str, Any]]] = [
    ("order", order_payload("o1")),
    ("order", order_payload("o2", status="CLOSED", remaining_size="0.4", cancel_reason="NOT_ENOUGH_MARGIN")),
    ("fill (session account)", fill_payload("f1")),
    ("fill (payload account)", fill_payload("f2", fill_type="TRANSFER")),
    ("position", position_payload("BTC-USD-PERP", "-1")),
    ("bust", bust_payload("f1")),
    ("account summary", {"account": ACCOUNT, "account_value": "1", "seq_no": 3, "updated_at": 4}),
]
mutations = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(sorted({k for _, base in BASES for k in base})), st.text(max_size=6)),
        st.one_of(st.just(_DELETE), json_values),
    ),
    min_size=1,
    max_size=4,
)


@given(base=st.sampled_from(BASES), changes=mutations)
def test_objects_with_mutated_fields_parse_or_raise_parse_error(
    base: tuple[str, dict[str, Any]], changes: list[tuple[str, object]]
) -> None:
    name, payload = base
    mutated = dict(payload)
    for key, value in changes:
        if value is _DELETE:
            mutated.pop(key, None)
        else:
            mutated[key] = value
    try:
        parsed = PARSERS[name](mutated)
    except ParseError as exc:
        error: ParseError | None = exc
    else:
        error = None
    if error is not None:
        assert str(error)
        return
    assert all(isinstance(p, Discrepancy) for p in parsed.problems)  # type: ignore[attr-defined]


READERS = ["text", "optional_text", "decimal", "optional_decimal", "integer", "optional_integer"]


@given(reader=st.sampled_from(READERS), value=scalars)
def test_every_field_reader_raises_only_parse_error(reader: str, value: object) -> None:
    fields = Fields({"f": value}, "thing")
    try:
        result = getattr(fields, reader)("f")
    except ParseError as exc:
        error: ParseError | None = exc
    else:
        error = None
    if error is not None:
        assert error.field == "f"
        return
    if reader.endswith("decimal") and result is not None:
        assert isinstance(result, Decimal)
        assert result.is_finite()
    if reader.endswith("integer") and result is not None:
        assert type(result) is int
        assert 0 <= result < 2**63
    if reader.endswith("text") and result is not None:
        assert isinstance(result, str)
        assert result


@given(
    text=st.one_of(
        st.text(max_size=200), st.binary(max_size=200), json_values.map(lambda v: json.dumps(v, default=str))
    )
)
def test_decode_json_raises_nothing_but_parse_error(text: str | bytes) -> None:
    with contextlib.suppress(ParseError):
        decode_json(text)


@given(value=json_values.map(lambda v: json.dumps(v, default=str)))
def test_decode_json_never_yields_floats_or_nan(value: str) -> None:
    try:
        decoded = decode_json(value)
    except ParseError:
        return
    stack = [decoded]
    while stack:
        item = stack.pop()
        assert not isinstance(item, float)
        if isinstance(item, Decimal):
            assert item.is_finite()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# -- the WebSocket message router and the notification parser ------------------------------

channels = st.one_of(
    st.sampled_from(["orders.ALL", "fills.ALL", "positions", "tradebusts", "account"]), st.text(max_size=10)
)


@pytest.fixture(scope="module")
def source() -> ParadexSource:
    # Never used for I/O: only its notification parser.
    read_only = "read-only-token-for-tests"
    return ParadexSource(account=ACCOUNT, token=read_only, http_client=httpx.AsyncClient())


@given(channel=channels, data=st.one_of(json_values, st.sampled_from([b[1] for b in BASES])))
def test_any_notification_becomes_hints_never_an_exception(source: ParadexSource, channel: str, data: object) -> None:
    hints = source._hints(Notification(channel=channel, data=data, raw=""))
    assert all(isinstance(h, (Order, Fill, Position, FillBust, Discrepancy)) for h in hints)


@given(text=st.one_of(st.text(max_size=300), json_values.map(lambda v: json.dumps(v, default=str))))
def test_any_text_frame_is_routed_or_reported(text: str) -> None:
    with offline_connection() as connection:
        try:
            connection._handle_text(text)
        except ConnectionLostError as exc:
            ended: str | None = str(exc)
        else:
            ended = None
    # only an unsolicited re-auth error may end the connection
    assert ended is None or "4011" in ended
