"""``decode_json`` and numbers ``Decimal`` cannot hold, or an integer field cannot: a ParseError of the
field that holds one, never ``decimal.InvalidOperation`` or ``MemoryError``, never a huge integer built
first, and never the whole document's failure."""

from __future__ import annotations

import pytest

from reconcile_core import Discrepancy, Source
from reconcile_core.errors import ParseError
from reconcile_paradex import decode_json, parse_fill
from reconcile_paradex._fields import Fields

from .fake_venue import offline_connection

HUGE_EXPONENTS = ["1e99999999999999999999", "-2.5E+99999999999999999999", "1e-99999999999999999999999"]


@pytest.mark.parametrize("number", HUGE_EXPONENTS)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_float_whose_exponent_decimal_refuses_is_a_parse_error_of_its_field(number: str, as_bytes: bool) -> None:
    text = '{"results": [{"price": ' + number + ', "size": "1"}]}'
    payload = decode_json(text.encode() if as_bytes else text)
    assert isinstance(payload, dict)
    fields = Fields(payload["results"][0], "fill")
    assert fields.decimal("size") == 1  # the rest of the document decoded
    with pytest.raises(ParseError, match=r"'price' must be a decimal string, got <a number out of range"):
        fields.decimal("price")


@pytest.mark.parametrize("number", ["1" * 41, "-" + "3" * 76, "1e99999999999999999999"])
def test_a_number_out_of_range_in_a_field_nobody_reads_costs_nothing(number: str) -> None:
    # A venue may add a field (a Starknet felt as a JSON number, say): the fill still parses.
    payload = decode_json(
        '{"id":"1","fill_type":"FILL","market":"BTC-USD-PERP","side":"BUY","price":"1","size":"1",'
        '"created_at":1700000000000,"felt":' + number + "}"
    )
    fill = parse_fill(payload, account="0x1", source=Source.REST).value
    assert fill.key.fill_id == "1"


def test_such_a_websocket_message_reaches_the_parser_which_names_the_field_not_a_dead_reader() -> None:
    data = '{"id":"1","fill_type":"FILL","market":"BTC-USD-PERP","side":"BUY","price":1e99999999999999999999}'
    text = '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"fills.ALL","data":' + data + "}}"
    with offline_connection() as connection:
        connection._handle_text(text)
        item = connection._notify_receive.receive_nowait()
    assert not isinstance(item, Discrepancy)
    assert item.channel == "fills.ALL"
    with pytest.raises(ParseError, match="'price'"):
        parse_fill(item.data, account="0x1", source=Source.WS)


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
