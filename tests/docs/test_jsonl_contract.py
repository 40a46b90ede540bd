"""The JSONL page documents exactly what ``reconcile_core.jsonl`` writes, field by field."""

from __future__ import annotations

import enum
import json
import re
from decimal import Decimal

import pytest

from reconcile_core import (
    CycleSummary,
    Discrepancy,
    DiscrepancyKind,
    Event,
    Fill,
    FillBust,
    FillBusted,
    FillKey,
    FillKind,
    FillRecorded,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdated,
    Position,
    PositionUpdated,
    Severity,
    Side,
    Source,
)
from reconcile_core.jsonl import EVENT_TYPES, REQUIRED_FIELDS, encode_event

from ._blocks import blocks, page, section

PAGE = page("jsonl.md")
ACCOUNT = "0xabc"
FILL = Fill(
    key=FillKey(venue="paradex", account=ACCOUNT, fill_type="FILL", fill_id="9"),
    kind=FillKind.TRADE,
    order_id="1",
    instrument="BTC-USD-PERP",
    side=Side.BUY,
    price=Decimal("65000.5"),
    size=Decimal("0.010"),
    fee=Decimal("-0.0012"),
    fee_currency="USDC",
    liquidity=Liquidity.MAKER,
    time=1_700_000_000_000,
    source=Source.WS,
    client_id="c1",
    realized_pnl=Decimal("1.5"),
)
ORDER = Order(
    order_id="1",
    client_id="c1",
    instrument="BTC-USD-PERP",
    side=Side.BUY,
    type=OrderType.LIMIT,
    price=Decimal(65000),
    quantity=Decimal(1),
    filled_quantity=Decimal("0.010"),
    average_fill_price=Decimal("65000.5"),
    status=OrderStatus.OPEN,
    cancel_reason=None,
    created_at=1_700_000_000_000,
    updated_at=1_700_000_000_001,
    sequence=3,
    source=Source.REST,
)
POSITION = Position(
    instrument="BTC-USD-PERP",
    size=Decimal("0.010"),
    entry_price=Decimal("65000.5"),
    last_fill_id="9",
    updated_at=1_700_000_000_001,
    sequence=None,
    source=Source.REST,
)
SAMPLES: dict[str, Event] = {
    "fill": FillRecorded(fill=FILL, offset=1),
    "fill_busted": FillBusted(
        bust=FillBust(venue="paradex", account=ACCOUNT, fill_id="9", time=1_700_000_000_002, source=Source.REST),
        fill=FILL,
        offset=2,
    ),
    "order": OrderUpdated(order=ORDER, previous=None),
    "position": PositionUpdated(position=POSITION, previous=None),
    "discrepancy": Discrepancy(kind=DiscrepancyKind.MISSING_FILLS, subject="order 1", detail="a gap", expected="1"),
    "cycle": CycleSummary(
        reason="connect",
        started_at=1_700_000_000_000,
        duration_ms=12,
        orders_seen=1,
        positions_seen=1,
        fills_seen=1,
        fills_recovered=0,
        busts_seen=0,
        orders_resolved=0,
        discrepancies=0,
        ok=True,
    ),
}
DECIMALS = {"price", "size", "fee", "realized_pnl", "filled", "avg_price", "entry_price"}
TIMES = {"created_at", "updated_at", "started_at"}


def _table(kind: str) -> dict[str, str]:
    """Field -> its row, from the table under the ``kind`` heading."""
    rows = re.findall(r"^\| `([a-z_]+)` \|(.*)\|$", section(PAGE.read_text(), f"`{kind}`"), re.MULTILINE)
    return dict(rows)


def _example(kind: str) -> dict[str, object]:
    (block,) = [b for b in blocks(PAGE, "json") if f'"type":"{kind}"' in b.code]
    lines = block.code.strip().splitlines()
    assert len(lines) == 1, "an example is one line, as written"
    return dict(json.loads(lines[0]))


def test_every_type_has_a_section() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)
    for kind in EVENT_TYPES:
        assert _table(kind), f"no field table for {kind}"


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_the_table_lists_exactly_the_fields_written(kind: str) -> None:
    written = set(encode_event(SAMPLES[kind], account=ACCOUNT))
    assert set(_table(kind)) == written
    assert REQUIRED_FIELDS[kind] <= written


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_the_example_line_follows_the_contract(kind: str) -> None:
    example = _example(kind)
    assert example["type"] == kind
    assert set(example) == set(encode_event(SAMPLES[kind], account=ACCOUNT))
    for name in DECIMALS & set(example):
        assert example[name] is None or isinstance(example[name], str), name
        if example[name] is not None:
            Decimal(str(example[name]))
    for name in TIMES & set(example):
        assert isinstance(example[name], int), name
    table = _table(kind)
    for name, value in example.items():
        if value is None:
            assert "or null" in table[name], f"{kind}.{name} is null in the example but not documented as nullable"


def test_the_busted_fill_object_is_a_fill_without_delivery_fields() -> None:
    nested = _example("fill_busted")["fill"]
    assert isinstance(nested, dict)
    assert set(nested) == set(_table("fill")) - {"type", "offset", "redelivery"}


@pytest.mark.parametrize(
    ("kind", "field", "values"),
    [
        ("fill", "kind", FillKind),
        ("fill", "side", Side),
        ("fill", "liquidity", Liquidity),
        ("fill", "source", Source),
        ("order", "order_type", OrderType),
        ("order", "status", OrderStatus),
        ("discrepancy", "kind", DiscrepancyKind),
        ("discrepancy", "severity", Severity),
    ],
)
def test_every_enumeration_value_is_documented(kind: str, field: str, values: type[enum.Enum]) -> None:
    row = _table(kind)[field]
    for member in values:
        assert f"`{member.value}`" in row, f"{kind}.{field}: {member.value!r} is not documented"
