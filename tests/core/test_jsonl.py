"""The JSONL contract: every event type encodes with its required fields, losslessly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from reconcile_core import (
    CycleSummary,
    Discrepancy,
    DiscrepancyKind,
    Event,
    FillBusted,
    FillRecorded,
    OrderStatus,
    OrderUpdated,
    PositionUpdated,
)
from reconcile_core.errors import UsageError
from reconcile_core.jsonl import EVENT_TYPES, REQUIRED_FIELDS, dumps, encode_event

from ._builders import ACCOUNT, bust, fill, order, position

EXAMPLES: list[Event] = [
    FillRecorded(fill=fill("f1", price=Decimal("64852.912345678901234567890")), offset=7),
    FillBusted(bust=bust("f1"), fill=fill("f1"), offset=8),
    OrderUpdated(order=order(status=OrderStatus.FILLED, filled_quantity=Decimal(1)), previous=None),
    PositionUpdated(position=position(size=Decimal("-0.25")), previous=None),
    Discrepancy(kind=DiscrepancyKind.MISSING_FILLS, subject="order o1", detail="gap", expected="1", seen="0"),
    CycleSummary(
        reason="connect",
        started_at=1,
        duration_ms=5,
        orders_seen=1,
        positions_seen=1,
        fills_seen=2,
        fills_recovered=1,
        busts_seen=0,
        orders_resolved=0,
        discrepancies=0,
        ok=True,
    ),
]


class TestJsonl:
    """Each event is one line with a type and its contract fields."""

    @pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
    def test_required_fields(self, event: Event) -> None:
        line = dumps(event, account=ACCOUNT)
        assert "\n" not in line
        payload = json.loads(line)
        assert payload["type"] in EVENT_TYPES
        assert REQUIRED_FIELDS[payload["type"]] <= set(payload)

    def test_decimals_are_lossless_strings(self) -> None:
        payload = json.loads(dumps(EXAMPLES[0], account=ACCOUNT))
        assert payload["price"] == "64852.912345678901234567890"
        assert Decimal(payload["price"]) == EXAMPLES[0].fill.price  # type: ignore[attr-defined]
        assert isinstance(payload["created_at"], int)

    def test_all_types_covered(self) -> None:
        assert {encode_event(e, account=ACCOUNT)["type"] for e in EXAMPLES} == set(EVENT_TYPES)
        assert set(REQUIRED_FIELDS) == set(EVENT_TYPES)

    def test_required_fields_match_the_issue(self) -> None:
        """The contract promised to users (issue 7), spelled out once more by hand."""
        assert REQUIRED_FIELDS["fill"] >= {
            "account",
            "fill_id",
            "fill_type",
            "order_id",
            "market",
            "side",
            "price",
            "size",
            "fee",
            "created_at",
            "source",
        }
        assert REQUIRED_FIELDS["order"] >= {"order_id", "client_id", "market", "status", "size", "filled", "avg_price"}
        assert REQUIRED_FIELDS["discrepancy"] >= {"kind", "subject", "detail"}

    def test_unknown_event_is_a_usage_error(self) -> None:
        with pytest.raises(UsageError, match="no JSONL encoding"):
            encode_event(Event(), account=ACCOUNT)
