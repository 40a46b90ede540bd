"""``decode_json`` and numbers ``Decimal`` cannot hold, or an integer field cannot: a ParseError, never
``decimal.InvalidOperation`` or ``MemoryError``, and never a huge integer built first."""

from __future__ import annotations

import pytest

from reconcile_core import Discrepancy, DiscrepancyKind, Source
from reconcile_core.errors import ParseError
from reconcile_paradex import decode_json, parse_fill
from reconcile_paradex._fields import Fields

from .fake_venue import offline_connection

HUGE_EXPONENTS = ["1e99999999999999999999", "-2.5E+99999999999999999999", "1e-99999999999999999999999"]


@pytest.mark.parametrize("number", HUGE_EXPONENTS)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_float_whose_exponent_decimal_refuses_is_a_parse_error(number: str, as_bytes: bool) -> None:
    text = '{"results": [{"price": ' + number + "}]}"
    with pytest.raises(ParseError, match="out of range"):
        decode_json(text.encode() if as_bytes else text)


def test_such_a_websocket_message_is_a_malformed_message_not_a_dead_reader() -> None:
    data = '{"x":1e99999999999999999999}'
    text = '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"fills.ALL","data":' + data + "}}"
    with offline_connection() as connection:
        connection._handle_text(text)
        item = connection._notify_receive.receive_nowait()
    assert isinstance(item, Discrepancy)
    assert item.kind is DiscrepancyKind.MALFORMED_MESSAGE


def test_exponents_decimal_holds_still_decode_exactly() -> None:
    assert repr(decode_json("[1e999999999999999999, 1.50]")) == "[Decimal('1E+999999999999999999'), Decimal('1.50')]"


# An integer field holding a number with a huge exponent: int() of it would build
# the whole integer (seconds for 1e400000; MemoryError for 1e999999999999999999).
HUGE_INTEGERS = ["1e400000", "1e999999999999999999", "-1E+999999999999999999", "9.3e18"]


@pytest.mark.parametrize("number", HUGE_INTEGERS)
def test_an_integer_field_with_a_huge_exponent_is_a_parse_error(number: str) -> None:
    fields = Fields(decode_json('{"created_at": ' + number + "}"), "fill")
    with pytest.raises(ParseError, match="created_at"):
        fields.optional_integer("created_at")


def test_integral_decimals_within_64_bits_are_still_integers() -> None:
    payload = decode_json('{"a": 1e18, "b": 9223372036854775807.0, "c": 12.000, "d": 0E+30}')
    fields = Fields(payload, "fill")
    assert [fields.optional_integer(name) for name in "abcd"] == [10**18, 2**63 - 1, 12, 0]


def test_a_fill_with_a_huge_created_at_is_a_parse_error_not_a_memory_error() -> None:
    data = (
        '{"id":"1","fill_type":"FILL","market":"BTC-USD-PERP","side":"BUY","price":"1","size":"1",'
        '"created_at":1e999999999999999999}'
    )
    with pytest.raises(ParseError, match="created_at"):
        parse_fill(decode_json(data), account="0x1", source=Source.WS)
