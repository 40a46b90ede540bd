"""The simulator's ground truth, as immutable records.

The venue keeps every version of an order, position and account summary as
one of these frozen records (the REST ``seq_no`` included), so a lagging
replica can serve an older version. Tests read them back through
:meth:`ParadexSimulator.truth`.

Field values follow the wire: sides are ``"BUY"``/``"SELL"``, statuses
``"NEW"``/``"UNTRIGGERED"``/``"OPEN"``/``"CLOSED"``, and so on. Quantities are
:class:`~decimal.Decimal`; times are venue milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import attrs

__all__ = [
    "AccountSummaryTruth",
    "AccountTruth",
    "BustTruth",
    "FillTruth",
    "ModifyRequest",
    "OrderTruth",
    "PositionTruth",
]

#: Order statuses of a live order.
LIVE_STATUSES = frozenset({"NEW", "UNTRIGGERED", "OPEN"})


@attrs.frozen(kw_only=True)
class ModifyRequest:
    """The ``request_info`` an order carries after a modify."""

    id: str
    request_type: str = "MODIFY_ORDER"
    status: str = "COMPLETED"
    message: str = ""


@attrs.frozen(kw_only=True)
class OrderTruth:
    """One version of an order.

    ``remaining_size`` only falls through fills (a modify resets it to the
    new size minus what was filled). A trade bust does **not** change the
    order: the order's fills (busted or not) always sum to
    ``size - remaining_size``. ``seq_no`` is from the REST series.
    """

    id: str
    account: str
    market: str
    client_id: str
    side: str
    type: str
    instruction: str
    status: str
    size: Decimal
    remaining_size: Decimal
    price: Decimal
    trigger_price: Decimal
    avg_fill_price: Decimal | None
    cancel_reason: str
    flags: tuple[str, ...]
    stp: str
    created_at: int
    last_updated_at: int
    timestamp: int
    received_at: int
    seq_no: int
    #: Sequence number of the order in the venue (creation order); cursor key.
    sequence: int
    request_info: ModifyRequest | None = None
    #: For an order closed by cancel-and-replace: the id of its replacement.
    replaced_by: str | None = None

    @property
    def filled(self) -> Decimal:
        return self.size - self.remaining_size

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


@attrs.frozen(kw_only=True)
class FillTruth:
    """One fill of one account. Immutable once made.

    Fills of type ``FILL`` and ``RPI`` belong to an order; ``LIQUIDATION``,
    ``UNWIND_TRANSFER``, ``SETTLE_MARKET`` and ``BLOCK_TRADE`` fills carry an
    empty ``order_id``. ``remaining_size`` is the order's remaining size
    right after this fill (``0`` for fills without an order). The fill is on
    the WebSocket at ``created_at`` and on REST ``/fills`` from
    ``settled_at`` on.
    """

    id: str
    account: str
    market: str
    order_id: str
    client_id: str
    fill_type: str
    side: str
    liquidity: str
    price: Decimal
    size: Decimal
    remaining_size: Decimal
    fee: Decimal
    realized_pnl: Decimal
    underlying_price: Decimal
    flags: tuple[str, ...]
    orderbook_seq_no: int
    created_at: int
    settled_at: int
    sequence: int

    @property
    def signed_size(self) -> Decimal:
        """The fill's effect on the position: ``+size`` for a buy, ``-size`` for a sell."""
        return self.size if self.side == "BUY" else -self.size


@attrs.frozen(kw_only=True)
class BustTruth:
    """A trade bust: the fill ``fill_id`` failed to settle and is reverted."""

    account: str
    fill_id: str
    created_at: int
    sequence: int


@attrs.frozen(kw_only=True)
class PositionTruth:
    """One version of a position (one per account and market).

    ``size`` is signed and always equals the signed sum of the market's
    unbusted fills. ``last_fill_id`` is the newest unbusted fill of the
    market (``""`` when none is left). ``seq_no`` is from the REST series.
    """

    id: str
    account: str
    market: str
    status: str
    side: str
    size: Decimal
    average_entry_price: Decimal
    average_exit_price: Decimal
    realized_positional_pnl: Decimal
    unrealized_pnl: Decimal
    last_fill_id: str
    created_at: int
    last_updated_at: int
    closed_at: int
    seq_no: int


@attrs.frozen(kw_only=True)
class AccountSummaryTruth:
    """One version of the account summary (``/account``) and USDC balance."""

    account: str
    account_value: Decimal
    total_collateral: Decimal
    free_collateral: Decimal
    initial_margin_requirement: Decimal
    maintenance_margin_requirement: Decimal
    status: str
    updated_at: int
    seq_no: int

    @property
    def margin_cushion(self) -> Decimal:
        return self.account_value - self.maintenance_margin_requirement


@attrs.frozen(kw_only=True, eq=False)
class AccountTruth:
    """Everything the venue knows about one account, at one moment.

    * ``orders``: the newest version of every order, by id;
    * ``fills``: every fill that is not busted, oldest first;
    * ``busted_fills``: the fills that were busted (they stay listed on REST);
    * ``busts``: the busts, oldest first;
    * ``positions``: one per market ever traded (closed ones have size 0).
    """

    account: str
    now: int
    orders: Mapping[str, OrderTruth]
    fills: tuple[FillTruth, ...]
    busted_fills: tuple[FillTruth, ...]
    busts: tuple[BustTruth, ...]
    positions: Mapping[str, PositionTruth]
    summary: AccountSummaryTruth

    @property
    def open_orders(self) -> tuple[OrderTruth, ...]:
        return tuple(o for o in self.orders.values() if o.is_live)
