"""Pure functions from Paradex JSON (already decoded) to ``reconcile_core`` types.

No I/O, no clock. Every parser raises :class:`reconcile_core.errors.ParseError`
for malformed input and nothing else; unknown enum values become the
``UNKNOWN`` member plus an ``UNKNOWN_VALUE`` discrepancy in
:attr:`Parsed.problems`. List parsers never let one bad row hide the others:
the row becomes a ``MALFORMED_MESSAGE`` discrepancy and the list is marked
incomplete.

Mappings (API.md §3):

* order status ``NEW``/``OPEN``/``UNTRIGGERED`` map one to one; ``CLOSED`` is
  ``FILLED`` when ``remaining_size`` is zero, ``REJECTED`` when nothing filled
  and ``cancel_reason`` is a placement refusal (:data:`REJECTION_REASONS`),
  ``CANCELED`` otherwise;
* fill types map explicitly to fill kinds (:data:`FILL_TYPES`); the fill key
  uses the canonical type name, so the pre-1.155.3 name ``TRANSFER`` keys as
  ``UNWIND_TRANSFER``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Final, TypeVar

from reconcile_core import (
    Discrepancy,
    DiscrepancyKind,
    Fill,
    FillBust,
    FillKey,
    FillKind,
    Liquidity,
    OpenOrdersSnapshot,
    Order,
    OrderStatus,
    OrderType,
    Page,
    Position,
    PositionsSnapshot,
    Severity,
    Side,
    Source,
)
from reconcile_core.errors import ParseError

from ._fields import Fields, excerpt
from ._models import AccountSummary, Balance, Market, Parsed
from ._redact import cut

__all__ = [
    "FILL_TYPES",
    "REJECTION_REASONS",
    "VENUE",
    "malformed",
    "parse_account_summary",
    "parse_balances",
    "parse_error_body",
    "parse_fill",
    "parse_fill_bust",
    "parse_markets",
    "parse_open_orders",
    "parse_order",
    "parse_page",
    "parse_position",
    "parse_positions",
    "parse_server_time",
    "same_account",
]

T = TypeVar("T")

#: The venue name used in fill keys and busts.
VENUE: Final = "paradex"

_SIDES: Final[Mapping[str, Side]] = {"BUY": Side.BUY, "SELL": Side.SELL}
_LIQUIDITY: Final[Mapping[str, Liquidity]] = {"MAKER": Liquidity.MAKER, "TAKER": Liquidity.TAKER}
_LIVE_STATUSES: Final[Mapping[str, OrderStatus]] = {
    "NEW": OrderStatus.NEW,
    "OPEN": OrderStatus.OPEN,
    "UNTRIGGERED": OrderStatus.UNTRIGGERED,
}
_CLOSED: Final = "CLOSED"
_KNOWN_STATUSES: Final = [*_LIVE_STATUSES, _CLOSED]
_ORDER_TYPES: Final[Mapping[str, OrderType]] = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "STOP_MARKET": OrderType.STOP_MARKET,
    "STOP_LIMIT": OrderType.STOP_LIMIT,
    # A stop-loss is a stop order whose trigger protects a position.
    "STOP_LOSS_MARKET": OrderType.STOP_MARKET,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    "TAKE_PROFIT_MARKET": OrderType.TAKE_PROFIT_MARKET,
    "TAKE_PROFIT_LIMIT": OrderType.TAKE_PROFIT_LIMIT,
}
# Paradex sends price "0" for market orders; the core says None.
_MARKET_LIKE: Final = frozenset({OrderType.MARKET, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})

#: ``cancel_reason`` values that mean the venue refused the order rather than
#: canceling it. Paradex publishes no list (API.md §3.11). Included: the two
#: reasons ccxt maps to "rejected" (``NOT_ENOUGH_MARGIN``,
#: ``ORDER_EXCEEDS_POSITION_LIMIT``), and the order-placement refusals of the
#: spec's ``ErrorCode`` enum, which can only end an order before it rests.
#: Maintenance-mode codes (``SYSTEM_STATUS_*``) are left out: the venue also
#: auto-cancels resting orders then. An order that filled anything is never
#: ``REJECTED``.
REJECTION_REASONS: Final = frozenset(
    {
        "NOT_ENOUGH_MARGIN",
        "ORDER_EXCEEDS_POSITION_LIMIT",
        "INVALID_ORDER_SIZE",
        "INVALID_ORDER_SIGNATURE",
        "MARKET_NOT_OPEN",
        "NO_ACCESS_TO_MARKET",
        "MARKET_MARGIN_RESTRICTED",
        "RPI_ACCOUNT_NOT_WHITELISTED",
        "ISOLATED_MARKET_ACCOUNT_MISMATCH",
    }
)

#: Paradex ``fill_type`` -> (canonical type used in the fill key, fill kind).
FILL_TYPES: Final[Mapping[str, tuple[str, FillKind]]] = {
    "FILL": ("FILL", FillKind.TRADE),
    "RPI": ("RPI", FillKind.TRADE),
    "LIQUIDATION": ("LIQUIDATION", FillKind.LIQUIDATION),
    "UNWIND_TRANSFER": ("UNWIND_TRANSFER", FillKind.TRANSFER),
    # The name before v1.155.3 (2026-07-22): the same fills, so the same key.
    "TRANSFER": ("UNWIND_TRANSFER", FillKind.TRANSFER),
    "SETTLE_MARKET": ("SETTLE_MARKET", FillKind.SETTLEMENT),
    "BLOCK_TRADE": ("BLOCK_TRADE", FillKind.BLOCK_TRADE),
}


def _build(fields: Fields, build: Callable[[], T]) -> Parsed[T]:
    """Construct the value; a core validator's complaint becomes a ParseError."""
    try:
        value = build()
    except (TypeError, ValueError) as exc:
        raise ParseError(f"{fields.what}: {exc}") from exc
    return Parsed(value, tuple(fields.problems))


def same_account(a: str, b: str) -> bool:
    """True when two Paradex account addresses name the same account.

    Addresses are hex and not zero-padded consistently, so ``0x049d`` and
    ``0x49D`` are one account.
    """
    try:
        return int(a, 16) == int(b, 16)
    except ValueError:
        return a.casefold() == b.casefold()


def _account(fields: Fields, session_account: str | None) -> str:
    """The account a fill or bust belongs to: the session's, checked against the payload's."""
    sent = fields.optional_text("account")
    if session_account is None:
        if sent is None:
            raise ParseError(f"{fields.what}: required field 'account' is missing", field="account")
        return sent
    if sent is not None and not same_account(sent, session_account):
        raise ParseError(
            f"{fields.what} belongs to account {sent!r}, not to this session's account {session_account!r}",
            field="account",
        )
    return session_account


# -- orders -----------------------------------------------------------------


def _order_status(fields: Fields, filled: Decimal, remaining: Decimal, reason: str | None) -> OrderStatus:
    raw = fields.optional_text("status")
    if raw is None:
        raise ParseError(f"{fields.what}: required field 'status' is missing", field="status")
    upper = raw.upper()
    if upper != _CLOSED:
        live = _LIVE_STATUSES.get(upper)
        if live is None:
            fields.unknown_value("status", raw, expected=_KNOWN_STATUSES)
            return OrderStatus.UNKNOWN
        return live
    if remaining == 0:
        return OrderStatus.FILLED
    if filled == 0 and reason is not None and reason.upper() in REJECTION_REASONS:
        return OrderStatus.REJECTED
    return OrderStatus.CANCELED


def parse_order(payload: object, *, source: Source, account: str | None = None) -> Parsed[Order]:
    """One ``OrderResp`` (REST ``/orders*`` or WS ``orders.*``) as an :class:`~reconcile_core.Order`.

    With ``account`` (the session's), a payload naming another account is a
    :class:`ParseError`, as for fills.
    """
    fields = Fields(payload, "order")
    order_id = fields.text("id")
    fields.identify(f"order {order_id}")
    if account is not None:
        _account(fields, account)
    order_type = fields.enum("type", _ORDER_TYPES, OrderType.UNKNOWN)
    quantity = fields.decimal("size")
    if quantity < 0:
        raise ParseError(f"{fields.what}: size {quantity} is negative", field="size")
    remaining = fields.decimal("remaining_size")
    if remaining < 0 or remaining > quantity:
        raise ParseError(
            f"{fields.what}: remaining_size {remaining} is outside [0, size {quantity}]", field="remaining_size"
        )
    filled = quantity - remaining
    reason = fields.optional_text("cancel_reason")
    status = _order_status(fields, filled, remaining, reason)
    price = fields.optional_decimal("price")
    if price == 0 and order_type in _MARKET_LIKE:
        price = None
    created_at = fields.integer("created_at")
    updated_at = fields.optional_integer("last_updated_at")
    return _build(
        fields,
        lambda: Order(
            order_id=order_id,
            client_id=fields.optional_text("client_id"),
            instrument=fields.text("market"),
            side=fields.enum("side", _SIDES, Side.UNKNOWN),
            type=order_type,
            price=price,
            quantity=quantity,
            filled_quantity=filled,
            average_fill_price=fields.optional_decimal("avg_fill_price"),
            status=status,
            cancel_reason=reason if status.is_terminal and status is not OrderStatus.FILLED else None,
            created_at=created_at,
            # No update precedes the creation: an earlier time (a zero value, "unset") is none.
            updated_at=created_at if updated_at is None or updated_at < created_at else updated_at,
            sequence=fields.optional_integer("seq_no"),
            source=source,
        ),
    )


# -- fills and busts --------------------------------------------------------


def parse_fill(payload: object, *, account: str | None, source: Source) -> Parsed[Fill]:
    """One ``FillResult`` (REST ``/fills`` or WS ``fills.*``) as a :class:`~reconcile_core.Fill`.

    ``account`` is the session's account: it keys the fill, so REST rows
    (which may omit ``account``) and WS messages key alike. A payload naming
    another account is a :class:`ParseError`. With ``account=None`` the
    payload's own ``account`` is required.
    """
    fields = Fields(payload, "fill")
    fill_id = fields.text("id")
    raw_type = fields.text("fill_type")
    fields.identify(f"fill {raw_type}:{fill_id}")
    known = FILL_TYPES.get(raw_type.upper())
    if known is None:
        fields.unknown_value("fill_type", raw_type, expected=sorted(FILL_TYPES))
        # Upper case, as known types are matched: FUNDING and Funding are one type, so one key.
        canonical, kind = raw_type.upper(), FillKind.UNKNOWN
    else:
        canonical, kind = known
    owner = _account(fields, account)
    return _build(
        fields,
        lambda: Fill(
            key=FillKey(venue=VENUE, account=owner, fill_type=canonical, fill_id=fill_id),
            kind=kind,
            order_id=fields.optional_text("order_id"),
            instrument=fields.text("market"),
            side=fields.enum("side", _SIDES, Side.UNKNOWN),
            price=fields.decimal("price"),
            size=fields.decimal("size"),
            fee=fields.optional_decimal("fee") or Decimal(0),
            fee_currency=fields.text_or_empty("fee_currency"),
            liquidity=fields.optional_enum("liquidity", _LIQUIDITY, Liquidity.UNKNOWN, Liquidity.UNKNOWN),
            time=fields.integer("created_at"),
            source=source,
            client_id=fields.optional_text("client_id"),
            realized_pnl=fields.optional_decimal("realized_pnl"),
        ),
    )


def parse_fill_bust(payload: object, *, account: str | None, source: Source) -> Parsed[FillBust]:
    """One trade bust ``{"account","busted_fill_id","created_at"}`` as a :class:`~reconcile_core.FillBust`."""
    fields = Fields(payload, "trade bust")
    fill_id = fields.text("busted_fill_id")
    fields.identify(f"trade bust of fill {fill_id}")
    owner = _account(fields, account)
    return _build(
        fields,
        lambda: FillBust(venue=VENUE, account=owner, fill_id=fill_id, time=fields.integer("created_at"), source=source),
    )


# -- positions --------------------------------------------------------------


def parse_position(
    payload: object, *, source: Source, account: str | None = None, undated_at: int | None = None
) -> Parsed[Position]:
    """One ``PositionResp`` (REST ``/positions`` or WS ``positions``) as a :class:`~reconcile_core.Position`.

    ``size`` is signed at the venue (negative short) and taken as is; ``side``
    is checked for unknown values and against the sign (a contradiction is a
    warning discrepancy). The version time is the latest of
    ``last_updated_at``, ``created_at`` and ``closed_at`` it carries (the spec
    requires none of them), else ``undated_at``: what the caller knows the
    answer to be current to (a REST snapshot: see ``ParadexSource.positions``).
    With none, the row is a :class:`ParseError`. With ``account`` (the
    session's), a payload naming another account is a :class:`ParseError`.
    """
    fields = Fields(payload, "position")
    instrument = fields.text("market")
    fields.identify(f"position {instrument}")
    if account is not None:
        _account(fields, account)
    side = fields.optional_enum("side", {"LONG": "LONG", "SHORT": "SHORT"}, "", "")
    fields.optional_enum("status", {"OPEN": "OPEN", "CLOSED": "CLOSED"}, "", "")
    # The latest time the row carries: a close is later than the creation, and an update time
    # before either (a zero, "unset") is none of them.
    times = [fields.optional_integer(name) for name in ("last_updated_at", "created_at", "closed_at")]
    updated_at = max((t for t in times if t is not None), default=undated_at)
    if updated_at is None:
        raise ParseError(f"{fields.what}: required field 'last_updated_at' is missing", field="last_updated_at")
    size = fields.decimal("size")
    if (side == "LONG" and size < 0) or (side == "SHORT" and size > 0):
        # The spec signs the size (negative short): it is taken as sent, and the contradiction reported.
        fields.problems.append(
            Discrepancy(
                kind=DiscrepancyKind.MALFORMED_MESSAGE,
                subject=fields.what,
                detail=f"side {side} contradicts size {size} (signed: negative is short); size taken as sent",
                expected=f"a {'negative' if side == 'SHORT' else 'positive'} size for side {side}",
                seen=str(size),
                severity=Severity.WARNING,
            )
        )
    return _build(
        fields,
        lambda: Position(
            instrument=instrument,
            size=size,
            entry_price=fields.optional_decimal("average_entry_price"),
            last_fill_id=fields.optional_text("last_fill_id"),
            updated_at=updated_at,
            sequence=fields.optional_integer("seq_no"),
            source=source,
        ),
    )


# -- lists ------------------------------------------------------------------


def _row_excerpt(row: object) -> str:
    """The row as JSON for a discrepancy's ``seen``: redacted, then cut (see ``_redact``)."""
    try:
        text = json.dumps(row, default=str, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(row)
    return cut(text, 300)


def malformed(subject: str, error: ParseError, payload: object) -> Discrepancy:
    """The ``MALFORMED_MESSAGE`` discrepancy for a payload that failed to parse."""
    return Discrepancy(
        kind=DiscrepancyKind.MALFORMED_MESSAGE,
        subject=subject,
        detail=str(error),
        seen=_row_excerpt(payload),
        severity=Severity.ERROR,
    )


def _results(payload: object, what: str) -> list[object]:
    if not isinstance(payload, Mapping):
        raise ParseError(f"{what} response must be a JSON object, got {type(payload).__name__}")
    if "results" not in payload:
        # Not a listing at all (an error object from a proxy, say): taken as an empty one, it
        # would let a pass move its watermark past rows it never saw.
        raise ParseError(f"{what} response has no 'results' (keys: {excerpt(sorted(map(str, payload))[:8])})")
    results = payload["results"]
    if results is None:  # an empty list, as Go writes one
        return []
    if not isinstance(results, list):
        raise ParseError(f"{what} response: 'results' must be a list, got {type(results).__name__}", field="results")
    return results


def _rows(
    payload: object, what: str, parse_item: Callable[[object], Parsed[T]]
) -> tuple[list[T], list[Discrepancy], bool]:
    items: list[T] = []
    problems: list[Discrepancy] = []
    complete = True
    for index, row in enumerate(_results(payload, what)):
        try:
            parsed = parse_item(row)
        except ParseError as exc:
            problems.append(malformed(f"{what} row {index}", exc, row))
            complete = False
            continue
        items.append(parsed.value)
        problems.extend(parsed.problems)
    return items, problems, complete


def parse_page(payload: object, what: str, parse_item: Callable[[object], Parsed[T]]) -> tuple[Page[T], str | None]:
    """One page of a paginated list ``{"next","prev","results"}``: the page and the next cursor.

    The cursor is returned exactly as sent (opaque, signed by the venue);
    ``None`` (or ``""``) means the last page.
    """
    items, problems, _ = _rows(payload, what, parse_item)
    cursor = payload.get("next") if isinstance(payload, Mapping) else None
    if cursor is not None and not isinstance(cursor, str):
        raise ParseError(f"{what} response: 'next' must be a string or null, got {cursor!r:.80}", field="next")
    return Page(items=tuple(items), problems=tuple(problems)), cursor or None


def parse_open_orders(payload: object, *, source: Source = Source.REST) -> Parsed[OpenOrdersSnapshot]:
    """``GET /v1/orders``: the complete open-orders snapshot.

    A row that fails to parse makes the snapshot incomplete (absence then
    proves nothing) and becomes a discrepancy. Rows the venue lists but that
    are not live (a race with a fill) are kept: they merge like any version.
    """
    items, problems, complete = _rows(payload, "open orders", lambda row: parse_order(row, source=source))
    return Parsed(OpenOrdersSnapshot(orders=tuple(items), complete=complete, problems=tuple(problems)), tuple(problems))


def parse_positions(
    payload: object, *, source: Source = Source.REST, undated_at: int | None = None
) -> Parsed[PositionsSnapshot]:
    """``GET /v1/positions``: the complete positions snapshot, ``as_of`` the newest update time.

    ``undated_at`` dates a row that carries no time (see :func:`parse_position`).
    """
    items, problems, complete = _rows(
        payload, "positions", lambda row: parse_position(row, source=source, undated_at=undated_at)
    )
    as_of = max((p.updated_at for p in items), default=None)
    return Parsed(
        PositionsSnapshot(positions=tuple(items), as_of=as_of, complete=complete, problems=tuple(problems)),
        tuple(problems),
    )


# -- account, balances, markets, time ---------------------------------------


def parse_account_summary(payload: object) -> Parsed[AccountSummary]:
    """``GET /v1/account`` / WS ``account``."""
    fields = Fields(payload, "account summary")
    return _build(
        fields,
        lambda: AccountSummary(
            account=fields.text("account"),
            account_value=fields.optional_decimal("account_value"),
            total_collateral=fields.optional_decimal("total_collateral"),
            free_collateral=fields.optional_decimal("free_collateral"),
            initial_margin_requirement=fields.optional_decimal("initial_margin_requirement"),
            maintenance_margin_requirement=fields.optional_decimal("maintenance_margin_requirement"),
            margin_cushion=fields.optional_decimal("margin_cushion"),
            settlement_asset=fields.text_or_empty("settlement_asset"),
            status=fields.text_or_empty("status"),
            updated_at=fields.optional_integer("updated_at"),
            sequence=fields.optional_integer("seq_no"),
        ),
    )


def _balance(row: object) -> Parsed[Balance]:
    fields = Fields(row, "balance")
    return _build(
        fields,
        lambda: Balance(
            token=fields.text("token"),
            size=fields.decimal("size"),
            updated_at=fields.optional_integer("last_updated_at"),
        ),
    )


def parse_balances(payload: object) -> Parsed[tuple[Balance, ...]]:
    """``GET /v1/balance``."""
    items, problems, _ = _rows(payload, "balances", _balance)
    return Parsed(tuple(items), tuple(problems))


def _market(row: object) -> Parsed[Market]:
    fields = Fields(row, "market")
    symbol = fields.text("symbol")
    fields.identify(f"market {symbol}")
    return _build(
        fields,
        lambda: Market(
            symbol=symbol,
            base_currency=fields.text_or_empty("base_currency"),
            quote_currency=fields.text_or_empty("quote_currency"),
            settlement_currency=fields.text_or_empty("settlement_currency"),
            asset_kind=fields.text_or_empty("asset_kind"),
            order_size_increment=fields.optional_decimal("order_size_increment"),
            price_tick_size=fields.optional_decimal("price_tick_size"),
            min_notional=fields.optional_decimal("min_notional"),
            max_order_size=fields.optional_decimal("max_order_size"),
            position_limit=fields.optional_decimal("position_limit"),
            max_open_orders=fields.optional_integer("max_open_orders"),
            open_at=fields.optional_integer("open_at") or None,
            expiry_at=fields.optional_integer("expiry_at") or None,
        ),
    )


def parse_markets(payload: object) -> Parsed[tuple[Market, ...]]:
    """``GET /v1/markets`` (numbers that arrive as strings are accepted)."""
    items, problems, _ = _rows(payload, "markets", _market)
    return Parsed(tuple(items), tuple(problems))


def parse_server_time(payload: object) -> int:
    """``GET /v1/system/time``: ``{"server_time": "1681493415023"}`` (ms, a string at the venue)."""
    return Fields(payload, "server time").integer("server_time")


def parse_error_body(payload: object) -> tuple[str | None, str | None]:
    """The ``(error code, message)`` of a Paradex error body; ``None`` for what is absent.

    Never raises: error bodies come in two shapes (``{"error","message","data"}``
    and the auth middleware's ``{"message"}``) and sometimes neither.
    """
    if not isinstance(payload, Mapping):
        return None, None
    code = payload.get("error")
    message = payload.get("message")
    return (
        cut(code, 100) if isinstance(code, str) and code else None,
        cut(message, 300) if isinstance(message, str) and message else None,
    )
