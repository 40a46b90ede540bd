"""``decode_json`` and numbers ``Decimal`` cannot hold: a ParseError, never ``decimal.InvalidOperation``."""

from __future__ import annotations

import pytest

from reconcile_core import Discrepancy, DiscrepancyKind
from reconcile_core.errors import ParseError
from reconcile_paradex import decode_json

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
