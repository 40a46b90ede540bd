"""The pure Paradex parsers: recorded samples, mappings, leniency and strictness."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from reconcile_core import (
    DiscrepancyKind,
    FillKind,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    Source,
)
from reconcile_core.errors import ParseError
from reconcile_paradex import (
    FILL_TYPES,
    REJECTION_REASONS,
    decode_json,
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
from reconcile_paradex._fields import OutOfRange
from reconcile_paradex._parse import parse_error_body
from reconcile_paradex._ws import Notification, _Call

from .fake_venue import ACCOUNT, fill_payload, offline_connection, order_payload, position_payload
from .shared_files import SAMPLES, require

# -- every recorded sample parses ----------------------------------------------------


def _sample_files() -> list[Path]:
    if not SAMPLES.exists():
        return []
    return sorted(p for p in SAMPLES.iterdir() if p.suffix == ".json")


def _parse_notification(message: dict[str, Any]) -> object:
    channel = message["params"]["channel"]
    data = message["params"]["data"]
    kind = channel.split(".")[0]
    if kind == "orders":
        return parse_order(data, source=Source.WS)
    if kind == "fills":
        return parse_fill(data, account=None, source=Source.WS)
    raise AssertionError(f"no parser for channel {channel}")


def _rpc_answer(text: str) -> _Call:
    """Route a JSON-RPC answer through the WS client's router, as if answering the request it names."""
    with offline_connection() as connection:
        call = _Call()
        connection._pending[json.loads(text)["id"]] = call
        connection._handle_text(text)
        return call


def test_the_samples_directory_is_there() -> None:
    require(SAMPLES)
    assert _sample_files(), "no samples found"


@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: p.name)
def test_every_sample_parses(path: Path) -> None:
    text = path.read_text()
    payload = decode_json(text)
    name = path.stem
    assert isinstance(payload, dict)
    if name == "rest_balance":
        (balance,) = parse_balances(payload).value
        assert balance.size == Decimal("99980.2382266290601")
    elif name.startswith("rest_error_"):
        code, message = parse_error_body(payload)
        assert message
        assert (code is None) == ("jwt" in name)
    elif name == "rest_fills_page":
        page, cursor = parse_page(payload, "fills", lambda r: parse_fill(r, account=ACCOUNT, source=Source.REST))
        assert cursor is None
        assert not page.problems
        (fill,) = page.items
        assert (fill.key.fill_type, fill.kind, fill.price) == ("FILL", FillKind.TRADE, Decimal("64852.9"))
    elif name == "rest_markets":
        (market,) = parse_markets(payload).value
        assert market.symbol == "BTC-USD-PERP"
        assert market.expiry_at is None
    elif name.startswith("rest_order_"):
        parsed = parse_order(payload, source=Source.REST)
        assert not parsed.problems
        assert parsed.value.status is OrderStatus.CANCELED
        assert parsed.value.cancel_reason == "USER_CANCELED"
        assert parsed.value.filled_quantity == 0
    elif name == "rest_positions":
        snapshot = parse_positions(payload)
        assert not snapshot.problems
        assert snapshot.value.as_of == 1718950074249
        assert snapshot.value.positions[0].last_fill_id == "1718947571560201703986670001"
    elif name == "rest_system_time":
        assert parse_server_time(payload) == 1721281853309
    elif name.endswith("_notification"):
        parsed = _parse_notification(payload)
        assert not parsed.problems  # type: ignore[attr-defined]
    elif name == "ws_auth_error":
        call = _rpc_answer(text)
        assert call.response is not None
        assert call.response["error"] == {"code": 40111, "message": "Invalid Bearer Token"}
    elif name in ("ws_auth_ok", "ws_subscribe_ack"):
        call = _rpc_answer(text)
        assert call.response is not None
        assert isinstance(call.response["result"], dict)
    else:
        pytest.fail(f"sample {path.name} has no parser in this test: add one")


def test_a_sample_notification_envelope_is_routed_as_a_notification() -> None:
    text = require(SAMPLES / "ws_fills_notification.json").read_text()
    with offline_connection() as connection:
        connection._handle_text(text)
        item = connection._notify_receive.receive_nowait()
    assert isinstance(item, Notification)
    assert item.channel == "fills.ALL"


# -- orders ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "remaining", "reason", "expected"),
    [
        ("NEW", "1", "", OrderStatus.NEW),
        ("OPEN", "0.4", "", OrderStatus.OPEN),
        ("UNTRIGGERED", "1", "", OrderStatus.UNTRIGGERED),
        ("CLOSED", "0", "", OrderStatus.FILLED),
        ("CLOSED", "0", "USER_CANCELED", OrderStatus.FILLED),  # remaining_size decides
        ("CLOSED", "1", "USER_CANCELED", OrderStatus.CANCELED),
        ("CLOSED", "1", "EXPIRED", OrderStatus.CANCELED),
        ("CLOSED", "1", "", OrderStatus.CANCELED),
        ("CLOSED", "1", "NOT_ENOUGH_MARGIN", OrderStatus.REJECTED),
        ("CLOSED", "1", "ORDER_EXCEEDS_POSITION_LIMIT", OrderStatus.REJECTED),
        ("CLOSED", "0.5", "NOT_ENOUGH_MARGIN", OrderStatus.CANCELED),  # it filled: not a rejection
        ("closed", "1", "not_enough_margin", OrderStatus.REJECTED),
    ],
)
def test_order_status_mapping(status: str, remaining: str, reason: str, expected: OrderStatus) -> None:
    parsed = parse_order(
        order_payload("o1", status=status, size="1", remaining_size=remaining, cancel_reason=reason), source=Source.REST
    )
    assert parsed.value.status is expected
    assert parsed.value.filled_quantity == Decimal(1) - Decimal(remaining)
    assert parsed.problems == ()
    if expected in (OrderStatus.CANCELED, OrderStatus.REJECTED):
        assert parsed.value.cancel_reason == (reason or None)
    else:
        assert parsed.value.cancel_reason is None


def test_rejection_reasons_include_the_documented_ones() -> None:
    assert {"NOT_ENOUGH_MARGIN", "ORDER_EXCEEDS_POSITION_LIMIT"} <= REJECTION_REASONS
    assert "USER_CANCELED" not in REJECTION_REASONS


def test_an_unknown_order_status_is_unknown_plus_a_discrepancy() -> None:
    parsed = parse_order(order_payload("o1", status="PARKED"), source=Source.WS)
    assert parsed.value.status is OrderStatus.UNKNOWN
    (problem,) = parsed.problems
    assert problem.kind is DiscrepancyKind.UNKNOWN_VALUE
    assert problem.subject == "order o1"
    assert problem.seen == "PARKED"


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("LIMIT", OrderType.LIMIT),
        ("MARKET", OrderType.MARKET),
        ("STOP_LIMIT", OrderType.STOP_LIMIT),
        ("STOP_MARKET", OrderType.STOP_MARKET),
        ("STOP_LOSS_LIMIT", OrderType.STOP_LIMIT),
        ("STOP_LOSS_MARKET", OrderType.STOP_MARKET),
        ("TAKE_PROFIT_LIMIT", OrderType.TAKE_PROFIT_LIMIT),
        ("TAKE_PROFIT_MARKET", OrderType.TAKE_PROFIT_MARKET),
    ],
)
def test_order_types(wire: str, expected: OrderType) -> None:
    assert parse_order(order_payload("o1", type=wire), source=Source.REST).value.type is expected


def test_market_orders_have_no_price_and_numbers_may_be_strings() -> None:
    parsed = parse_order(
        order_payload(
            "o1",
            type="MARKET",
            price="0",
            created_at="1681493746016",
            last_updated_at="1681493746017",
            seq_no="1681471234972000000",
            avg_fill_price="",
            client_id="",
        ),
        source=Source.REST,
    ).value
    assert parsed.price is None
    assert (parsed.created_at, parsed.updated_at, parsed.sequence) == (
        1681493746016,
        1681493746017,
        1681471234972000000,
    )
    assert parsed.average_fill_price is None
    assert parsed.client_id is None


def test_an_order_without_last_updated_at_uses_created_at() -> None:
    payload = order_payload("o1", created_at=5)
    del payload["last_updated_at"]
    assert parse_order(payload, source=Source.REST).value.updated_at == 5


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", "NaN"),
        ("size", "Infinity"),
        ("size", "inf"),
        ("size", "1e999999"),
        ("size", "1_000"),
        ("size", " 1"),
        ("size", "١٢"),  # Arabic-Indic digits: int() would take them
        ("size", "-1"),
        ("remaining_size", "2"),  # more than size
        ("created_at", 10**30),
        ("created_at", "1.5"),
        ("created_at", 1.5),
        ("created_at", True),
        ("created_at", -1),
        ("seq_no", 2**64),
        ("id", ""),
        ("id", ["x"]),
        ("market", None),
        ("side", ["BUY"]),
        ("price", {"x": 1}),
    ],
)
def test_nonsense_is_a_parse_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ParseError) as caught:
        parse_order(order_payload("o1", **{"size": "1", field: value}), source=Source.REST)
    assert caught.value.field == field


def test_integral_floats_are_accepted_as_integers() -> None:
    assert parse_order(order_payload("o1", created_at=1.5e12), source=Source.REST).value.created_at == 1_500_000_000_000


def test_not_an_object_is_a_parse_error() -> None:
    for value in (None, [], "x", 1):
        with pytest.raises(ParseError, match="JSON object"):
            parse_order(value, source=Source.REST)


# -- fills -----------------------------------------------------------------------


@pytest.mark.parametrize(("wire", "canonical_kind"), sorted(FILL_TYPES.items()))
def test_every_fill_type_maps_explicitly(wire: str, canonical_kind: tuple[str, FillKind]) -> None:
    parsed = parse_fill(fill_payload("f1", fill_type=wire), account=ACCOUNT, source=Source.REST)
    assert (parsed.value.key.fill_type, parsed.value.kind) == canonical_kind
    assert parsed.problems == ()


def test_transfer_and_unwind_transfer_are_one_key() -> None:
    old = parse_fill(fill_payload("f1", fill_type="TRANSFER"), account=ACCOUNT, source=Source.REST).value
    new = parse_fill(fill_payload("f1", fill_type="UNWIND_TRANSFER"), account=ACCOUNT, source=Source.WS).value
    assert old.key == new.key
    assert old.content() == new.content()


def test_the_spec_fill_types_are_all_known() -> None:
    assert {"FILL", "LIQUIDATION", "UNWIND_TRANSFER", "SETTLE_MARKET", "RPI", "BLOCK_TRADE", "TRANSFER"} == set(
        FILL_TYPES
    )
    assert {kind for _, kind in FILL_TYPES.values()} == set(FillKind) - {FillKind.UNKNOWN}


def test_an_unknown_fill_type_is_kept_with_a_discrepancy() -> None:
    parsed = parse_fill(fill_payload("f1", fill_type="FUNDING"), account=ACCOUNT, source=Source.REST)
    assert parsed.value.kind is FillKind.UNKNOWN
    assert parsed.value.key.fill_type == "FUNDING"
    (problem,) = parsed.problems
    assert problem.kind is DiscrepancyKind.UNKNOWN_VALUE
    assert "fill_type" in problem.detail


def test_an_unknown_fill_type_keys_alike_in_any_case() -> None:
    # Known types match in any case; an unknown one must too, or one fill sent as
    # Funding on one path and FUNDING on the other would be recorded (and delivered) twice.
    ws = parse_fill(fill_payload("f1", fill_type="Funding"), account=ACCOUNT, source=Source.WS).value
    rest = parse_fill(fill_payload("f1", fill_type="FUNDING"), account=ACCOUNT, source=Source.REST).value
    assert ws.key == rest.key
    assert ws.key.fill_type == "FUNDING"


@pytest.mark.parametrize("field", ["id", "market", "fee_currency", "order_id", "client_id", "fill_type", "side"])
def test_text_with_a_lone_surrogate_is_a_parse_error(field: str) -> None:
    # json.loads accepts "\ud800"; no UTF-8 (so no SQLite ledger) can store it.
    payload = decode_json(json.dumps(fill_payload("f1", **{field: "x\ud800y"})))
    with pytest.raises(ParseError, match=f"'{field}' must be valid Unicode"):
        parse_fill(payload, account=ACCOUNT, source=Source.REST)


def test_text_beyond_ascii_is_still_text() -> None:
    fill = parse_fill(fill_payload("f1", client_id="ordre-é-日本"), account=ACCOUNT, source=Source.REST).value
    assert fill.client_id == "ordre-é-日本"


def test_a_fill_key_uses_the_session_account() -> None:
    payload = fill_payload("f1")
    del payload["account"]
    fill = parse_fill(payload, account=ACCOUNT, source=Source.REST).value
    assert fill.key.account == ACCOUNT
    assert fill.key.venue == "paradex"
    # the same account written differently is the same account
    padded = "0x0" + ACCOUNT[2:].upper()
    assert parse_fill(fill_payload("f1", account=padded), account=ACCOUNT, source=Source.WS).value.key == fill.key


def test_a_fill_of_another_account_is_rejected() -> None:
    with pytest.raises(ParseError) as caught:
        parse_fill(fill_payload("f1", account="0x1234"), account=ACCOUNT, source=Source.WS)
    assert caught.value.field == "account"


def test_without_a_session_account_the_payload_must_name_one() -> None:
    payload = fill_payload("f1")
    del payload["account"]
    with pytest.raises(ParseError) as caught:
        parse_fill(payload, account=None, source=Source.WS)
    assert caught.value.field == "account"


def test_fill_optional_fields() -> None:
    payload = fill_payload("f1", order_id="", fee="", client_id="", realized_pnl="", liquidity="")
    fill = parse_fill(payload, account=ACCOUNT, source=Source.REST).value
    assert fill.order_id is None
    assert fill.fee == 0
    assert fill.client_id is None
    assert fill.realized_pnl is None
    assert fill.liquidity is Liquidity.UNKNOWN
    assert fill.side is Side.BUY


def test_fill_sizes_cannot_be_negative() -> None:
    with pytest.raises(ParseError):
        parse_fill(fill_payload("f1", size="-0.1"), account=ACCOUNT, source=Source.REST)


# -- positions, busts, lists ------------------------------------------------------------


def test_positions_are_signed_and_versioned() -> None:
    position = parse_position(
        position_payload("ETH-USD-PERP", "-2.5", seq_no="77", last_fill_id="f9", last_updated_at=9, created_at=1),
        source=Source.WS,
    ).value
    assert position.size == Decimal("-2.5")
    assert (position.sequence, position.last_fill_id, position.updated_at) == (77, "f9", 9)
    payload = position_payload("ETH-USD-PERP", "1")
    del payload["last_updated_at"]
    assert parse_position(payload, source=Source.WS).value.updated_at == payload["created_at"]
    # The latest time it carries: a close after the creation, an update time of 0 ("unset") ignored.
    for times, expected in (({"closed_at": 2_000}, 2_000), ({"last_updated_at": 0}, 1_000)):
        row = {**payload, "created_at": 1_000, **times}
        assert parse_position(row, source=Source.WS).value.updated_at == expected
    del payload["created_at"]
    with pytest.raises(ParseError) as caught:
        parse_position(payload, source=Source.WS)
    assert caught.value.field == "last_updated_at"


def test_positions_snapshot_as_of_is_the_newest_update() -> None:
    snapshot = parse_positions(
        {
            "results": [
                position_payload("A", "1", last_updated_at=5, created_at=1),
                position_payload("B", "0", last_updated_at=9, created_at=1),
            ]
        }
    ).value
    assert snapshot.as_of == 9
    assert snapshot.complete
    assert parse_positions({"results": []}).value.as_of is None


def test_a_bad_row_makes_a_snapshot_incomplete_but_keeps_the_rest() -> None:
    parsed = parse_open_orders({"results": [order_payload("o1"), {"id": "o2"}]})
    assert [o.order_id for o in parsed.value.orders] == ["o1"]
    assert not parsed.value.complete
    (problem,) = parsed.problems
    assert problem.kind is DiscrepancyKind.MALFORMED_MESSAGE
    assert problem.seen is not None
    assert "o2" in problem.seen
    assert parsed.value.problems == parsed.problems, "the snapshot carries its problems to the runtime"
    positions = parse_positions({"results": [position_payload("A", "x")]})
    assert not positions.value.complete
    assert len(positions.value.problems) == 1


def test_busts() -> None:
    bust = parse_fill_bust(
        {"account": ACCOUNT, "busted_fill_id": "f1", "created_at": "12"}, account=ACCOUNT, source=Source.REST
    ).value
    assert (bust.venue, bust.account, bust.fill_id, bust.time) == ("paradex", ACCOUNT, "f1", 12)


def test_page_envelopes() -> None:
    page, cursor = parse_page(
        {"next": "abc", "prev": None, "results": []}, "x", lambda r: parse_position(r, source=Source.REST)
    )
    assert (page.items, cursor) == ((), "abc")
    assert parse_page({"next": "", "results": []}, "x", lambda r: parse_position(r, source=Source.REST))[1] is None
    with pytest.raises(ParseError):
        parse_page({"next": 5, "results": []}, "x", lambda r: parse_position(r, source=Source.REST))
    with pytest.raises(ParseError):
        parse_page({"results": {}}, "x", lambda r: parse_position(r, source=Source.REST))
    with pytest.raises(ParseError):
        parse_page([], "x", lambda r: parse_position(r, source=Source.REST))


# -- JSON decoding -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', "[" * 100_000, b"\xff\xfe", "{"],
)
def test_decode_json_rejects_what_is_not_sane_json(text: str | bytes) -> None:
    with pytest.raises(ParseError):
        decode_json(text)


def test_decode_json_builds_no_huge_integer_and_marks_it_out_of_range() -> None:
    decoded = decode_json('{"a": ' + "9" * 50 + ', "b": 7}')
    assert isinstance(decoded, dict)
    assert isinstance(decoded["a"], OutOfRange)
    assert decoded["b"] == 7


def test_decode_json_keeps_decimals_exact() -> None:
    assert decode_json('{"a": 0.1}') == {"a": Decimal("0.1")}
    assert parse_order(
        order_payload("o1", size=Decimal("0.1"), remaining_size=0), source=Source.REST
    ).value.quantity == Decimal("0.1")


@pytest.mark.parametrize(("side", "size"), [("SHORT", "0.5"), ("LONG", "-0.5"), ("short", "2")])
def test_a_side_that_contradicts_the_signed_size_is_reported(side: str, size: str) -> None:
    parsed = parse_position(position_payload("BTC-USD-PERP", size, side=side), source=Source.REST)
    assert parsed.value.size == Decimal(size)  # the spec signs the size: taken as sent
    (problem,) = parsed.problems
    assert problem.kind is DiscrepancyKind.MALFORMED_MESSAGE
    assert "contradicts" in problem.detail


@pytest.mark.parametrize(("side", "size"), [("SHORT", "-0.5"), ("LONG", "0.5"), ("SHORT", "0"), ("LONG", "0")])
def test_a_side_that_agrees_with_the_size_is_not_reported(side: str, size: str) -> None:
    assert not parse_position(position_payload("BTC-USD-PERP", size, side=side), source=Source.REST).problems
