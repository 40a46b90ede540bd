"""The JSONL event contract: one JSON object per event, with a ``"type"`` field.

This is the machine-readable output of ``reconcile run --output jsonl``, and a
stable format for anything that wants to ship events elsewhere. Decimals are
strings (never floats, so nothing is rounded); times are integer
milliseconds since the Unix epoch. Fields are only ever *added* to this
contract, never renamed or removed.

==============  ===============================================================
``type``        fields (at least)
==============  ===============================================================
``fill``        account, fill_id, fill_type, kind, order_id, client_id, market,
                side, price, size, fee, fee_currency, liquidity, created_at,
                source, offset, redelivery
``fill_busted`` account, fill_id, created_at, source, offset, redelivery, fill
``order``       account, order_id, client_id, market, side, order_type, status,
                price, size, filled, avg_price, cancel_reason, created_at,
                updated_at, source
``position``    account, market, size, entry_price, last_fill_id, updated_at,
                source
``discrepancy`` account, kind, subject, detail, expected, seen, severity
``cycle``       account, reason, started_at, duration_ms, orders_seen,
                positions_seen, fills_seen, fills_recovered, busts_seen,
                orders_resolved, discrepancies, ok
==============  ===============================================================
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ._events import (
    CycleSummary,
    Discrepancy,
    Event,
    FillBusted,
    FillRecorded,
    OrderUpdated,
    PositionUpdated,
)
from ._types import Fill
from .errors import UsageError

__all__ = ["EVENT_TYPES", "FILL_FIELDS", "REQUIRED_FIELDS", "dumps", "encode_event", "encode_fill"]

#: The ``"type"`` values of the contract.
EVENT_TYPES = ("fill", "fill_busted", "order", "position", "discrepancy", "cycle")

#: The fields each line of a type always carries (consumers may rely on them).
REQUIRED_FIELDS: dict[str, frozenset[str]] = {
    "fill": frozenset(
        {
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
    ),
    "fill_busted": frozenset({"account", "fill_id", "created_at", "offset"}),
    "order": frozenset({"order_id", "client_id", "market", "status", "size", "filled", "avg_price"}),
    "position": frozenset({"market", "size"}),
    "discrepancy": frozenset({"kind", "subject", "detail"}),
    "cycle": frozenset({"reason", "started_at", "duration_ms", "ok"}),
}


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def encode_fill(fill: Fill) -> dict[str, Any]:
    """One fill as the JSON-ready fields of a ``fill`` line (without ``type``, ``offset``, ``redelivery``)."""
    return {
        "account": fill.key.account,
        "venue": fill.key.venue,
        "fill_id": fill.key.fill_id,
        "fill_type": fill.key.fill_type,
        "kind": fill.kind.value,
        "order_id": fill.order_id,
        "client_id": fill.client_id,
        "market": fill.instrument,
        "side": fill.side.value,
        "price": str(fill.price),
        "size": str(fill.size),
        "fee": str(fill.fee),
        "fee_currency": fill.fee_currency,
        "liquidity": fill.liquidity.value,
        "realized_pnl": _dec(fill.realized_pnl),
        "created_at": fill.time,
        "source": fill.source.value,
    }


#: The fields of an encoded fill, in output order (also the CSV columns of ``reconcile ledger export``).
FILL_FIELDS = (
    "account",
    "venue",
    "fill_id",
    "fill_type",
    "kind",
    "order_id",
    "client_id",
    "market",
    "side",
    "price",
    "size",
    "fee",
    "fee_currency",
    "liquidity",
    "realized_pnl",
    "created_at",
    "source",
)


def encode_event(event: Event, *, account: str) -> dict[str, Any]:
    """One event as a JSON-ready dict following the contract above."""
    if isinstance(event, FillRecorded):
        return {"type": "fill", **encode_fill(event.fill), "offset": event.offset, "redelivery": event.redelivery}
    if isinstance(event, FillBusted):
        bust = event.bust
        return {
            "type": "fill_busted",
            "account": bust.account,
            "venue": bust.venue,
            "fill_id": bust.fill_id,
            "created_at": bust.time,
            "source": bust.source.value,
            "offset": event.offset,
            "redelivery": event.redelivery,
            "fill": None if event.fill is None else encode_fill(event.fill),
        }
    if isinstance(event, OrderUpdated):
        order = event.order
        return {
            "type": "order",
            "account": account,
            "order_id": order.order_id,
            "client_id": order.client_id,
            "market": order.instrument,
            "side": order.side.value,
            "order_type": order.type.value,
            "status": order.status.value,
            "price": _dec(order.price),
            "size": str(order.quantity),
            "filled": str(order.filled_quantity),
            "avg_price": _dec(order.average_fill_price),
            "cancel_reason": order.cancel_reason,
            "created_at": order.created_at,
            "updated_at": order.updated_at,
            "source": order.source.value,
        }
    if isinstance(event, PositionUpdated):
        position = event.position
        return {
            "type": "position",
            "account": account,
            "market": position.instrument,
            "size": str(position.size),
            "entry_price": _dec(position.entry_price),
            "last_fill_id": position.last_fill_id,
            "updated_at": position.updated_at,
            "source": position.source.value,
        }
    if isinstance(event, Discrepancy):
        return {
            "type": "discrepancy",
            "account": account,
            "kind": event.kind.value,
            "subject": event.subject,
            "detail": event.detail,
            "expected": event.expected,
            "seen": event.seen,
            "severity": event.severity.value,
        }
    if isinstance(event, CycleSummary):
        return {
            "type": "cycle",
            "account": account,
            "reason": event.reason,
            "started_at": event.started_at,
            "duration_ms": event.duration_ms,
            "orders_seen": event.orders_seen,
            "positions_seen": event.positions_seen,
            "fills_seen": event.fills_seen,
            "fills_recovered": event.fills_recovered,
            "busts_seen": event.busts_seen,
            "orders_resolved": event.orders_resolved,
            "discrepancies": event.discrepancies,
            "ok": event.ok,
        }
    msg = f"no JSONL encoding for {type(event).__name__}"
    raise UsageError(msg)


def dumps(event: Event, *, account: str) -> str:
    """One event as one line of compact JSON (no trailing newline)."""
    return json.dumps(encode_event(event, account=account), separators=(",", ":"), ensure_ascii=False)
