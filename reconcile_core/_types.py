"""Venue-neutral value types: what an order, a fill and a position *are*.

Every type here is an immutable attrs class. Nothing in this module knows a
venue's wire format: plugins convert their payloads with pure functions of
their own (never ``Fill(**payload)``).

Time is always an ``int`` of **milliseconds since the Unix epoch (UTC)**, the
unit venues use at their boundary. Money and quantities are
:class:`decimal.Decimal`, never ``float``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs
from attrs import validators as v

if TYPE_CHECKING:
    from ._events import Discrepancy

__all__ = [
    "Fill",
    "FillBust",
    "FillKey",
    "FillKind",
    "Liquidity",
    "OpenOrdersSnapshot",
    "Order",
    "OrderStatus",
    "OrderType",
    "Position",
    "PositionsSnapshot",
    "Side",
    "Source",
]


class Source(enum.Enum):
    """Where an observation came from (its provenance)."""

    #: The venue's authoritative REST API (or equivalent request/response API).
    REST = "rest"
    #: The venue's push stream (WebSocket): fast, but may drop, repeat or reorder.
    WS = "ws"


class Side(enum.Enum):
    """The side of an order or fill, from this account's point of view."""

    BUY = "buy"
    SELL = "sell"
    #: The venue sent a side this library does not know.
    UNKNOWN = "unknown"


class OrderType(enum.Enum):
    """Normalized order type."""

    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT_MARKET = "take_profit_market"
    TAKE_PROFIT_LIMIT = "take_profit_limit"
    #: The venue sent a type this library does not know.
    UNKNOWN = "unknown"


class OrderStatus(enum.Enum):
    """Normalized order status.

    ``FILLED``, ``CANCELED`` and ``REJECTED`` are terminal and absorbing.
    ``UNKNOWN`` is never sent by a venue: the reconciler sets it when the venue
    cannot account for an order it should know (see DESIGN.md §3). An
    ``UNKNOWN`` order is retried, never guessed into a terminal state.
    """

    #: Accepted by the venue, not yet resting on the book.
    NEW = "new"
    #: A conditional (stop / take-profit) order waiting for its trigger.
    UNTRIGGERED = "untriggered"
    #: Resting on the book; it may be partially filled.
    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    #: The venue could not account for the order; resolution is being retried.
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """True for the absorbing states ``FILLED``, ``CANCELED`` and ``REJECTED``."""
        return self._value_ in _TERMINAL

    @property
    def rank(self) -> int:
        """Position in the lifecycle, used as a version tie-break."""
        return _RANK[self._value_]


# Keyed by value: an enum member's own hash is a Python-level call, a str's
# is cached (these are read for every order merged).
_TERMINAL = frozenset({OrderStatus.FILLED.value, OrderStatus.CANCELED.value, OrderStatus.REJECTED.value})
_RANK = {
    OrderStatus.UNKNOWN.value: 0,
    OrderStatus.UNTRIGGERED.value: 1,
    OrderStatus.NEW.value: 2,
    OrderStatus.OPEN.value: 3,
    OrderStatus.CANCELED.value: 4,
    OrderStatus.REJECTED.value: 5,
    OrderStatus.FILLED.value: 6,
}


class FillKind(enum.Enum):
    """What kind of event a fill records. Every venue fill type maps to one."""

    #: An ordinary trade against the book (including price-improvement variants).
    TRADE = "trade"
    #: A fill produced by the liquidation engine.
    LIQUIDATION = "liquidation"
    #: A position transferred away (unwind, auto-deleverage transfer).
    TRANSFER = "transfer"
    #: A position closed by market settlement (expiry or delisting).
    SETTLEMENT = "settlement"
    #: A privately negotiated block trade.
    BLOCK_TRADE = "block_trade"
    #: The venue sent a fill type this library does not know. The fill is still
    #: recorded (never dropped) and a discrepancy is raised.
    UNKNOWN = "unknown"


class Liquidity(enum.Enum):
    """Whether the fill added or removed liquidity."""

    MAKER = "maker"
    TAKER = "taker"
    UNKNOWN = "unknown"


# Plain functions rather than ``attrs.validators.instance_of`` objects: the
# same checks and messages, at about half the cost per field (a fill or an
# order is built for every message a venue sends).
def _instance_of(cls: type) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """A validator: ``value`` is an instance of ``cls`` (what ``attrs.validators.instance_of`` checks)."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value.__class__ is not cls and not isinstance(value, cls):
            msg = f"'{attribute.name}' must be {cls!r} (got {value!r} that is a {value.__class__!r})."
            raise TypeError(msg, attribute, cls, value)

    return check


def _optional_instance_of(cls: type) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """A validator: ``value`` is ``None`` or an instance of ``cls``."""
    inner = _instance_of(cls)

    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            inner(inst, attribute, value)

    return check


_optional_int = _optional_instance_of(int)
_str_type = _instance_of(str)


def _is_unicode(text: str) -> bool:
    """False when ``text`` holds a lone surrogate, which no UTF-8 (no SQLite file, no JSON line) can store."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unicode(attribute: attrs.Attribute[Any], value: str) -> None:
    if not _is_unicode(value):
        msg = f"{attribute.name} must be valid Unicode text (no lone surrogates), got {value!r}"
        raise ValueError(msg)


def _str(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A ``str`` that UTF-8 can store."""
    _str_type(inst, attribute, value)
    assert isinstance(value, str)  # noqa: S101 - checked just above
    _unicode(attribute, value)


def _optional_str(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _str(inst, attribute, value)


def _nonempty(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        msg = f"{attribute.name} must be a non-empty str, got {value!r}"
        raise ValueError(msg)
    _unicode(attribute, value)


#: The latest time a value may carry (ms): a signed 64-bit integer, as ledgers store it.
_MAX_MS = 2**63 - 1
#: A fill's size is below this: ledgers add sizes up, and ``Decimal`` overflows near 1e999999.
_MAX_SIZE = Decimal("1e100")
_ZERO = Decimal(0)


def _ms(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_MS:
        msg = f"{attribute.name} must be an int of milliseconds in [0, 2**63 - 1], got {value!r}"
        raise ValueError(msg)


def _finite(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        msg = f"{attribute.name} must be a finite Decimal, got {value!r}"
        raise ValueError(msg)


def _finite_nonnegative(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _finite(_inst, attribute, value)
    if isinstance(value, Decimal) and value < 0:
        msg = f"{attribute.name} must be >= 0, got {value}"
        raise ValueError(msg)


def _size(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _finite_nonnegative(_inst, attribute, value)
    if isinstance(value, Decimal) and value >= _MAX_SIZE:
        msg = f"{attribute.name} must be below 1e100, got {value}"
        raise ValueError(msg)


def _optional_finite(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, Decimal) or not value.is_finite()):
        msg = f"{attribute.name} must be a finite Decimal or None, got {value!r}"
        raise ValueError(msg)


def _orders(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(o, Order) for o in value):
        msg = f"{attribute.name} must be a tuple of Order"
        raise TypeError(msg)


def _positions(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(p, Position) for p in value):
        msg = f"{attribute.name} must be a tuple of Position"
        raise TypeError(msg)


# The hot types (a fill, its key and an order are built for every venue message)
# check their fields in one ``__attrs_post_init__`` instead of one validator call
# per field: a type-exact test of every field first, and only when that fails,
# the field checks below, in field order (so the first bad field is named, with
# the same error as a validator would raise). A value of a subclass (a ``str``
# subclass, say) fails the exact test and then passes the checks; so does text
# beyond ASCII, whose check makes sure UTF-8 can store it (no lone surrogates:
# a SQLite ledger could not write such a fill, and would stop its session).
_CHECK: Final = "reconcile_core.check"


def _check(check: Callable[[object, attrs.Attribute[Any], object], None]) -> dict[str, object]:
    """A field's metadata: ``check`` validates its value (from ``__attrs_post_init__``, see ``_run_checks``)."""
    return {_CHECK: check}


def _run_checks(instance: object) -> None:
    """Every field's check, in field order; the first failure is raised. Honors ``attrs.validators.disabled()``."""
    if attrs.validators.get_disabled():
        return
    for attribute in attrs.fields(type(instance)):  # type: ignore[arg-type]
        check = attribute.metadata.get(_CHECK)
        if check is not None:
            check(instance, attribute, getattr(instance, attribute.name))


@attrs.frozen(kw_only=True)
class FillKey:
    """The identity of a fill: unique within one venue account.

    ``fill_type`` is the venue's *canonical* fill type name (a plugin maps
    renamed types to one name), because some venues only promise fill ids to be
    unique per type. ``venue`` and ``account`` make one ledger able to hold
    many accounts and venues.
    """

    venue: str = attrs.field(metadata=_check(_nonempty))
    account: str = attrs.field(metadata=_check(_nonempty))
    fill_type: str = attrs.field(metadata=_check(_nonempty))
    fill_id: str = attrs.field(metadata=_check(_nonempty))

    def __attrs_post_init__(self) -> None:
        venue, account, fill_type, fill_id = self.venue, self.account, self.fill_type, self.fill_id
        if not (
            type(venue) is str
            and venue != ""
            and venue.isascii()
            and type(account) is str
            and account != ""
            and account.isascii()
            and type(fill_type) is str
            and fill_type != ""
            and fill_type.isascii()
            and type(fill_id) is str
            and fill_id != ""
            and fill_id.isascii()
        ):
            _run_checks(self)

    def __str__(self) -> str:
        return f"{self.venue}:{self.account}:{self.fill_type}:{self.fill_id}"


@attrs.frozen(kw_only=True)
class Fill:
    """One execution (or position-changing event) on the account.

    Identity is :attr:`key`; two fills with the same key but different
    :meth:`content` are a ``FILL_CONFLICT``. :attr:`source` (provenance) is
    not part of the content: the same fill seen on the stream and over REST is
    one fill.
    """

    key: FillKey = attrs.field(metadata=_check(_instance_of(FillKey)))
    kind: FillKind = attrs.field(metadata=_check(_instance_of(FillKind)))
    #: The order this fill executed, or ``None`` for fills without an order
    #: (some liquidation, transfer and settlement fills).
    order_id: str | None = attrs.field(metadata=_check(_optional_str))
    instrument: str = attrs.field(metadata=_check(_nonempty))
    side: Side = attrs.field(metadata=_check(_instance_of(Side)))
    price: Decimal = attrs.field(metadata=_check(_finite))
    #: Non-negative, below ``1e100``.
    size: Decimal = attrs.field(metadata=_check(_size))
    #: Fee paid; negative means a rebate.
    fee: Decimal = attrs.field(metadata=_check(_finite))
    fee_currency: str = attrs.field(metadata=_check(_str))
    liquidity: Liquidity = attrs.field(metadata=_check(_instance_of(Liquidity)))
    #: Venue time of the fill, ms since the epoch.
    time: int = attrs.field(metadata=_check(_ms))
    source: Source = attrs.field(metadata=_check(_instance_of(Source)))
    client_id: str | None = attrs.field(default=None, metadata=_check(_optional_str))
    realized_pnl: Decimal | None = attrs.field(default=None, metadata=_check(_optional_finite))

    def __attrs_post_init__(self) -> None:
        instrument, pnl = self.instrument, self.realized_pnl
        if not (
            type(self.key) is FillKey
            and type(self.kind) is FillKind
            and (self.order_id is None or (type(self.order_id) is str and self.order_id.isascii()))
            and type(instrument) is str
            and instrument != ""
            and instrument.isascii()
            and type(self.side) is Side
            and (type(self.price) is Decimal and self.price.is_finite())
            and (type(self.size) is Decimal and self.size.is_finite() and _ZERO <= self.size < _MAX_SIZE)
            and (type(self.fee) is Decimal and self.fee.is_finite())
            and type(self.fee_currency) is str
            and self.fee_currency.isascii()
            and type(self.liquidity) is Liquidity
            and (type(self.time) is int and 0 <= self.time <= _MAX_MS)
            and type(self.source) is Source
            and (self.client_id is None or (type(self.client_id) is str and self.client_id.isascii()))
            and (pnl is None or (type(pnl) is Decimal and pnl.is_finite()))
        ):
            _run_checks(self)

    def content(self) -> tuple[object, ...]:
        """The fields that must agree between two sightings of the same fill."""
        return (
            self.kind,
            self.order_id,
            self.instrument,
            self.side,
            self.price,
            self.size,
            self.fee,
            self.fee_currency,
            self.time,
        )

    @property
    def signed_size(self) -> Decimal:
        """``+size`` for a buy, ``-size`` for a sell (``0`` for an unknown side)."""
        if self.side is Side.BUY:
            return self.size
        if self.side is Side.SELL:
            return -self.size
        return Decimal(0)


@attrs.frozen(kw_only=True)
class FillBust:
    """The venue reverted a fill it had reported ("trade bust").

    Venues may name only the fill id (not its type), so a bust applies to every
    fill of the account with that id.
    """

    venue: str = attrs.field(validator=_nonempty)
    account: str = attrs.field(validator=_nonempty)
    fill_id: str = attrs.field(validator=_nonempty)
    time: int = attrs.field(validator=_ms)
    source: Source = attrs.field(validator=_instance_of(Source))


@attrs.frozen(kw_only=True)
class Order:
    """One venue-reported version of an order.

    The reconciler keeps, per order id, the maximum version observed (see
    :func:`reconcile_core.order_version`).
    """

    order_id: str = attrs.field(metadata=_check(_nonempty))
    client_id: str | None = attrs.field(metadata=_check(_optional_str))
    instrument: str = attrs.field(metadata=_check(_nonempty))
    side: Side = attrs.field(metadata=_check(_instance_of(Side)))
    type: OrderType = attrs.field(metadata=_check(_instance_of(OrderType)))
    #: Limit price; ``None`` for market orders.
    price: Decimal | None = attrs.field(metadata=_check(_optional_finite))
    quantity: Decimal = attrs.field(metadata=_check(_finite_nonnegative))
    filled_quantity: Decimal = attrs.field(metadata=_check(_finite_nonnegative))
    average_fill_price: Decimal | None = attrs.field(metadata=_check(_optional_finite))
    status: OrderStatus = attrs.field(metadata=_check(_instance_of(OrderStatus)))
    #: Why a terminal order ended without filling (venue's own code), else ``None``.
    cancel_reason: str | None = attrs.field(metadata=_check(_optional_str))
    created_at: int = attrs.field(metadata=_check(_ms))
    #: Venue time of this version, ms since the epoch.
    updated_at: int = attrs.field(metadata=_check(_ms))
    #: The venue's per-update sequence number. Only comparable within one source.
    sequence: int | None = attrs.field(metadata=_check(_optional_int))
    source: Source = attrs.field(metadata=_check(_instance_of(Source)))

    def __attrs_post_init__(self) -> None:
        order_id, instrument, price, average = self.order_id, self.instrument, self.price, self.average_fill_price
        sequence = self.sequence
        if not (
            type(order_id) is str
            and order_id != ""
            and order_id.isascii()
            and (self.client_id is None or (type(self.client_id) is str and self.client_id.isascii()))
            and type(instrument) is str
            and instrument != ""
            and instrument.isascii()
            and type(self.side) is Side
            and type(self.type) is OrderType
            and (price is None or (type(price) is Decimal and price.is_finite()))
            and (type(self.quantity) is Decimal and self.quantity.is_finite() and not self.quantity < 0)
            and (
                type(self.filled_quantity) is Decimal
                and self.filled_quantity.is_finite()
                and not self.filled_quantity < 0
            )
            and (average is None or (type(average) is Decimal and average.is_finite()))
            and type(self.status) is OrderStatus
            and (self.cancel_reason is None or (type(self.cancel_reason) is str and self.cancel_reason.isascii()))
            and (type(self.created_at) is int and 0 <= self.created_at <= _MAX_MS)
            and (type(self.updated_at) is int and 0 <= self.updated_at <= _MAX_MS)
            and (sequence is None or type(sequence) is int)
            and type(self.source) is Source
        ):
            _run_checks(self)

    @property
    def remaining_quantity(self) -> Decimal:
        """What is still unfilled (never below zero)."""
        return max(self.quantity - self.filled_quantity, Decimal(0))

    @property
    def is_live(self) -> bool:
        """True while the venue may still fill the order."""
        return self.status in (OrderStatus.NEW, OrderStatus.UNTRIGGERED, OrderStatus.OPEN)


@attrs.frozen(kw_only=True)
class Position:
    """One venue-reported version of the account's position in an instrument."""

    instrument: str = attrs.field(validator=_nonempty)
    #: Signed size: positive long, negative short, zero flat.
    size: Decimal = attrs.field(validator=_finite)
    entry_price: Decimal | None = attrs.field(validator=_optional_finite)
    #: The fill that last changed the position (a consistency cut against the ledger).
    last_fill_id: str | None = attrs.field(validator=_optional_str)
    updated_at: int = attrs.field(validator=_ms)
    #: The venue's per-update sequence number. Only comparable within one source.
    sequence: int | None = attrs.field(validator=_optional_int)
    source: Source = attrs.field(validator=_instance_of(Source))


@attrs.frozen(kw_only=True)
class OpenOrdersSnapshot:
    """A *complete* list of the account's live orders, read from the source of truth.

    ``complete`` is false when some rows could not be parsed: the listed orders
    still merge, but absence from the list then proves nothing. The rows that
    failed are in ``problems``.
    """

    orders: tuple[Order, ...] = attrs.field(validator=_orders)
    complete: bool = True
    #: When set, the snapshot covers only this instrument.
    instrument: str | None = attrs.field(default=None, validator=_optional_str)
    #: Rows that failed to parse or carried unknown values, as discrepancies
    #: the runtime delivers to the consumer.
    problems: tuple[Discrepancy, ...] = attrs.field(default=(), validator=_instance_of(tuple))


@attrs.frozen(kw_only=True)
class PositionsSnapshot:
    """A complete list of the account's positions.

    ``as_of`` is a venue time up to which the snapshot is known to be current
    (for example, the newest ``updated_at`` it contains). A locally non-flat
    position that is absent from the snapshot and older than ``as_of`` is
    flat; without ``as_of`` absence proves nothing.
    """

    positions: tuple[Position, ...] = attrs.field(validator=_positions)
    as_of: int | None = attrs.field(default=None, validator=v.optional(_ms))
    complete: bool = True
    #: Rows that failed to parse or carried unknown values (see ``OpenOrdersSnapshot``).
    problems: tuple[Discrepancy, ...] = attrs.field(default=(), validator=_instance_of(tuple))
