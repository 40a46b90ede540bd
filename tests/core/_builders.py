"""Small builders for core values, so tests state only what matters to them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from reconcile_core import (
    Fill,
    FillBust,
    FillKey,
    FillKind,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Source,
)

VENUE = "testvenue"
ACCOUNT = "acct-1"


def order(order_id: str = "o1", **overrides: Any) -> Order:
    fields: dict[str, Any] = {
        "order_id": order_id,
        "client_id": None,
        "instrument": "BTC-PERP",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "price": Decimal(100),
        "quantity": Decimal(1),
        "filled_quantity": Decimal(0),
        "average_fill_price": None,
        "status": OrderStatus.OPEN,
        "cancel_reason": None,
        "created_at": 1_000,
        "updated_at": 1_000,
        "sequence": None,
        "source": Source.WS,
    }
    fields.update(overrides)
    return Order(**fields)


def fill(fill_id: str = "f1", **overrides: Any) -> Fill:
    key_fields = {
        "venue": overrides.pop("venue", VENUE),
        "account": overrides.pop("account", ACCOUNT),
        "fill_type": overrides.pop("fill_type", "FILL"),
        "fill_id": fill_id,
    }
    fields: dict[str, Any] = {
        "key": FillKey(**key_fields),
        "kind": FillKind.TRADE,
        "order_id": "o1",
        "instrument": "BTC-PERP",
        "side": Side.BUY,
        "price": Decimal(100),
        "size": Decimal("0.5"),
        "fee": Decimal("0.01"),
        "fee_currency": "USDC",
        "liquidity": Liquidity.TAKER,
        "time": 1_500,
        "source": Source.WS,
    }
    fields.update(overrides)
    return Fill(**fields)


def bust(fill_id: str = "f1", **overrides: Any) -> FillBust:
    fields: dict[str, Any] = {
        "venue": VENUE,
        "account": ACCOUNT,
        "fill_id": fill_id,
        "time": 2_000,
        "source": Source.WS,
    }
    fields.update(overrides)
    return FillBust(**fields)


def position(instrument: str = "BTC-PERP", **overrides: Any) -> Position:
    fields: dict[str, Any] = {
        "instrument": instrument,
        "size": Decimal("0.5"),
        "entry_price": Decimal(100),
        "last_fill_id": None,
        "updated_at": 1_500,
        "sequence": None,
        "source": Source.WS,
    }
    fields.update(overrides)
    return Position(**fields)
