"""The simulator's records rendered in Paradex's wire shapes (REST and WS).

One renderer per object, shared by REST and the WebSocket, so both speak
the same ``OrderResp``/``FillResult``/``PositionResp``/... shapes of the
official specs. Only ``seq_no`` (REST and WS series) and ``published_at``
differ between the two.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ._markets import MarketSpec
from ._truth import AccountSummaryTruth, BustTruth, FillTruth, OrderTruth, PositionTruth

__all__ = [
    "account_json",
    "balance_json",
    "bust_json",
    "decimal_str",
    "fill_json",
    "market_json",
    "order_json",
    "position_json",
]

JSON = dict[str, Any]


def decimal_str(value: Decimal) -> str:
    """A Decimal as Paradex writes it: plain notation, no exponent, no trailing zeros."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def order_json(order: OrderTruth, *, seq_no: int, published_at: int) -> JSON:
    body: JSON = {
        "id": order.id,
        "account": order.account,
        "market": order.market,
        "side": order.side,
        "type": order.type,
        "size": decimal_str(order.size),
        "remaining_size": decimal_str(order.remaining_size),
        "price": decimal_str(order.price),
        "status": order.status,
        "created_at": order.created_at,
        "last_updated_at": order.last_updated_at,
        "timestamp": order.timestamp,
        "cancel_reason": order.cancel_reason,
        "client_id": order.client_id,
        "seq_no": seq_no,
        "instruction": order.instruction,
        "avg_fill_price": "" if order.avg_fill_price is None else decimal_str(order.avg_fill_price),
        "stp": order.stp,
        "received_at": order.received_at,
        "published_at": published_at,
        "flags": list(order.flags),
        "trigger_price": decimal_str(order.trigger_price),
    }
    if order.request_info is not None:
        info = order.request_info
        body["request_info"] = {
            "id": info.id,
            "message": info.message,
            "request_type": info.request_type,
            "status": info.status,
        }
    return body


def fill_json(fill: FillTruth) -> JSON:
    return {
        "id": fill.id,
        "side": fill.side,
        "liquidity": fill.liquidity,
        "market": fill.market,
        "order_id": fill.order_id,
        "price": decimal_str(fill.price),
        "size": decimal_str(fill.size),
        "fee": decimal_str(fill.fee),
        "fee_currency": "USDC",
        "created_at": fill.created_at,
        "remaining_size": decimal_str(fill.remaining_size),
        "client_id": fill.client_id,
        "fill_type": fill.fill_type,
        "realized_pnl": decimal_str(fill.realized_pnl),
        "realized_funding": "0",
        "account": fill.account,
        "underlying_price": decimal_str(fill.underlying_price),
        "flags": list(fill.flags),
        "orderbook_seq_no": fill.orderbook_seq_no,
    }


def position_json(position: PositionTruth, *, seq_no: int) -> JSON:
    cost = (position.size * position.average_entry_price).quantize(Decimal("0.00000001"))
    return {
        "id": position.id,
        "account": position.account,
        "market": position.market,
        "status": position.status,
        "side": position.side,
        "size": decimal_str(position.size),
        "average_entry_price": decimal_str(position.average_entry_price),
        "average_entry_price_usd": decimal_str(position.average_entry_price),
        "average_exit_price": decimal_str(position.average_exit_price),
        "unrealized_pnl": decimal_str(position.unrealized_pnl),
        "unrealized_funding_pnl": "0",
        "cost": decimal_str(cost),
        "cost_usd": decimal_str(cost),
        "cached_funding_index": "0",
        "last_fill_id": position.last_fill_id,
        "seq_no": seq_no,
        "liquidation_price": "",
        "leverage": "",
        "realized_positional_pnl": decimal_str(position.realized_positional_pnl),
        "realized_positional_funding_pnl": "0",
        "created_at": position.created_at,
        "last_updated_at": position.last_updated_at,
        "closed_at": position.closed_at,
    }


def account_json(summary: AccountSummaryTruth, *, seq_no: int) -> JSON:
    return {
        "account": summary.account,
        "account_value": decimal_str(summary.account_value),
        "total_collateral": decimal_str(summary.total_collateral),
        "free_collateral": decimal_str(summary.free_collateral),
        "initial_margin_requirement": decimal_str(summary.initial_margin_requirement),
        "maintenance_margin_requirement": decimal_str(summary.maintenance_margin_requirement),
        "margin_cushion": decimal_str(summary.margin_cushion),
        "settlement_asset": "USDC",
        "status": summary.status,
        "seq_no": seq_no,
        "updated_at": summary.updated_at,
        "last_seen_notification": 0,
    }


def balance_json(summary: AccountSummaryTruth) -> JSON:
    return {
        "token": "USDC",
        "size": decimal_str(summary.total_collateral),
        "last_updated_at": summary.updated_at,
    }


def bust_json(bust: BustTruth) -> JSON:
    return {"account": bust.account, "busted_fill_id": bust.fill_id, "created_at": bust.created_at}


def market_json(market: MarketSpec, *, open_at: int) -> JSON:
    return {
        "symbol": market.symbol,
        "base_currency": market.base_currency,
        "quote_currency": "USD",
        "settlement_currency": "USDC",
        "order_size_increment": decimal_str(market.size_increment),
        "price_tick_size": decimal_str(market.price_tick),
        "min_notional": decimal_str(market.min_notional),
        "open_at": open_at,
        "expiry_at": 0,
        "asset_kind": "PERP",
        "market_kind": "cross",
        "position_limit": decimal_str(market.position_limit),
        "price_bands_width": "0.05",
        "max_open_orders": 100,
        "max_funding_rate": "0.02",
        "delta1_cross_margin_params": {
            "imf_base": "0.02",
            "imf_shift": "180000",
            "imf_factor": "0.00007",
            "mmf_factor": "0.5",
        },
        "price_feed_id": f"SIM{market.base_currency}",
        "oracle_ewma_factor": "0.2",
        "max_order_size": decimal_str(market.max_order_size),
        "max_funding_rate_change": "0.0002",
        "max_tob_spread": "0.1",
        "funding_period_hours": 8,
        "interest_rate": "0.0001",
        "clamp_rate": "0.05",
        "trading_mode": "STANDARD",
        "tags": [],
    }
