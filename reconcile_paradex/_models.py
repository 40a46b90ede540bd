"""Paradex account data that has no venue-neutral counterpart in ``reconcile_core``.

The core reconciles orders, fills, positions and busts. The account summary,
balances and market specs are read for context (monitoring, sanity checks)
and are typed here, still as frozen attrs values with ``Decimal`` money.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Generic, TypeVar

import attrs

from reconcile_core import Discrepancy

__all__ = ["AccountSummary", "Balance", "Market", "Parsed"]

T = TypeVar("T")


@attrs.frozen
class Parsed(Generic[T]):
    """A parsed value plus what the parser noticed (unknown enum values, skipped rows).

    ``problems`` never hides data: the value is complete, with ``UNKNOWN``
    members where the venue sent something this library does not know.
    """

    value: T
    problems: tuple[Discrepancy, ...] = ()


@attrs.frozen(kw_only=True)
class AccountSummary:
    """``GET /v1/account`` and the WS ``account`` channel."""

    account: str
    account_value: Decimal | None
    total_collateral: Decimal | None
    free_collateral: Decimal | None
    initial_margin_requirement: Decimal | None
    maintenance_margin_requirement: Decimal | None
    margin_cushion: Decimal | None
    settlement_asset: str
    #: ``ACTIVE``, ``LIQUIDATION``, ... (a free string at the venue).
    status: str
    #: Venue time of this version, ms since the epoch (``None`` if not sent).
    updated_at: int | None
    sequence: int | None


@attrs.frozen(kw_only=True)
class Balance:
    """One token balance from ``GET /v1/balance``."""

    token: str
    size: Decimal
    updated_at: int | None


@attrs.frozen(kw_only=True)
class Market:
    """The parts of a ``GET /v1/markets`` entry that matter for reconciling."""

    symbol: str
    base_currency: str
    quote_currency: str
    settlement_currency: str
    #: ``PERP``, ``PERP_OPTION``, ``OPTION``, ``SPOT``, ``FUTURE``, ...
    asset_kind: str
    order_size_increment: Decimal | None
    price_tick_size: Decimal | None
    min_notional: Decimal | None
    max_order_size: Decimal | None
    position_limit: Decimal | None
    max_open_orders: int | None
    #: ms since the epoch; ``None`` when the venue sends 0 (no date).
    open_at: int | None
    expiry_at: int | None
