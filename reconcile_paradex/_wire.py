"""The fast path for the two hot shapes, fills and orders: msgspec Structs of the happy path.

Per WebSocket notification and per REST row, the strict path (``decode_json``,
then :func:`~reconcile_paradex._parse.parse_fill` / ``parse_order`` reading a
dict through :class:`~reconcile_paradex._fields.Fields`) costs more than the
rest of ingest together. Here the same JSON is decoded by msgspec straight
into Structs describing exactly what Paradex sends when all is well (decimals
as strings, integers as integers, extra fields ignored), and turned into the
same ``Order`` / ``Fill`` values.

The fast path is a *shadow*, never a second parser: it accepts only a subset
of what the strict path accepts and, for what it accepts, gives exactly the
strict path's result (no problems, since anything that would raise one is not
accepted). Everything else — an unknown enum value, a number where a string
was expected, an empty required field, a decoding error — returns ``None``,
and the caller runs the strict path, which stays the single source of every
error message, ``ParseError`` and discrepancy. ``tests/paradex/plugin/
test_wire.py`` checks the subset-and-equality claim with Hypothesis.

msgspec accepts a few things ``decode_json`` refuses: non-ASCII input (a BOM,
bytes that are not UTF-8, lone surrogates) is never taken, and the rest can
only hide in what msgspec skips without looking (an unknown field, a
``Raw``): integer literals of more than ``MAX_JSON_INT_DIGITS`` digits,
exponents ``Decimal`` cannot hold, nesting near the recursion limit. Hence two
tiers. The first types every field the spec documents and forbids the rest,
so nothing is skipped (not even the value of a key given twice: msgspec keeps
the last, as ``json.loads`` does, but validates both). Only when that fails is
the text screened (:func:`_screen`) and decoded again with unknown fields
skipped — what keeps the fast path fast when Paradex adds a field.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Final, TypeAlias, TypeVar

import msgspec
from msgspec import UNSET, Raw, UnsetType

from reconcile_core import Discrepancy, Fill, FillKey, Liquidity, Order, OrderStatus, Page, Source
from reconcile_core.errors import ParseError

from ._fields import MAX_DECIMAL_EXPONENT, MAX_INT, MAX_JSON_INT_DIGITS, MAX_NUMBER_CHARS, MAX_TEXT_CHARS, decode_json
from ._models import Parsed
from ._parse import (
    _CLOSED,
    _LIQUIDITY,
    _LIVE_STATUSES,
    _MARKET_LIKE,
    _ORDER_TYPES,
    _SIDES,
    FILL_TYPES,
    REJECTION_REASONS,
    VENUE,
    malformed,
    parse_fill,
    parse_order,
    same_account,
)

__all__ = [
    "FillWire",
    "OrderWire",
    "Wire",
    "decode_notification",
    "fill_from_wire",
    "fills_page",
    "order_from_wire",
    "orders_page",
    "value_from_wire",
]

T = TypeVar("T")

# -- the shapes ------------------------------------------------------------------------------

#: An integer ``Fields.integer`` accepts as is (a JSON integer within [0, 2**63-1]).
_Count: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
#: An integer no decoder refuses (far shorter than ``MAX_JSON_INT_DIGITS``).
_Int64: TypeAlias = Annotated[int, msgspec.Meta(ge=-MAX_INT - 1, le=MAX_INT)]
#: Scalars only: a value of this type holds no nested container.
_Scalar: TypeAlias = str | int | float | bool | None


class FillWire(msgspec.Struct, gc=False):
    """A ``FillResult``: the fields :func:`parse_fill` reads, other fields skipped."""

    id: str
    fill_type: str
    market: str
    side: str
    price: str
    size: str
    created_at: _Count
    account: str | None = None
    order_id: str | None = None
    fee: str | None = None
    fee_currency: str | None = None
    liquidity: str | None = None
    client_id: str | None = None
    realized_pnl: str | None = None
    # Not read: typed so that its brackets are accounted for (see _page).
    flags: list[str] | UnsetType = UNSET


class OrderWire(msgspec.Struct, gc=False):
    """An ``OrderResp``: the fields :func:`parse_order` reads, other fields skipped."""

    id: str
    type: str
    size: str
    remaining_size: str
    status: str
    created_at: _Count
    market: str
    side: str
    price: str | None = None
    cancel_reason: str | None = None
    last_updated_at: _Count | None = None
    client_id: str | None = None
    avg_fill_price: str | None = None
    seq_no: _Count | None = None
    account: str | None = None
    # Not read: typed so that its brackets are accounted for (see _page).
    flags: list[str] | UnsetType = UNSET


class _AnyOrder(OrderWire, gc=False):
    # Not read: typed so that its brackets are accounted for (see _page).
    request_info: dict[str, _Scalar] | UnsetType | None = UNSET


# The first tier: every field the spec documents, typed, and nothing else. What
# these accept needs no screening: no field is skipped, every number is an
# integer of at most 19 digits, and nesting stops at the flags.


class _FillResult(FillWire, forbid_unknown_fields=True, gc=False):
    remaining_size: str | None = None
    realized_funding: str | None = None
    underlying_price: str | None = None
    orderbook_seq_no: _Int64 | None = None


class _OrderResp(OrderWire, forbid_unknown_fields=True, gc=False):
    request_info: dict[str, str | None] | UnsetType | None = UNSET
    instruction: str | None = None
    stp: str | None = None
    trigger_price: str | None = None
    timestamp: _Int64 | None = None
    received_at: _Int64 | None = None
    published_at: _Int64 | None = None


Wire: TypeAlias = FillWire | OrderWire


class _FillsPage(msgspec.Struct, gc=False):
    results: list[FillWire]
    next: str | None = None


class _OrdersPage(msgspec.Struct, gc=False):
    results: list[_AnyOrder]
    next: str | None = None


class _FillResultsPage(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    results: list[_FillResult]
    next: str | None = None
    prev: str | None = None


class _OrderRespsPage(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    results: list[_OrderResp]
    next: str | None = None
    prev: str | None = None


class _OrderParams(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    channel: str
    data: _OrderResp


class _FillParams(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    channel: str
    data: _FillResult


class _OrderNotification(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    method: str
    params: _OrderParams
    jsonrpc: str | None = None


class _FillNotification(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    method: str
    params: _FillParams
    jsonrpc: str | None = None


class _AnyParams(msgspec.Struct, gc=False):
    channel: str
    data: Raw  # decoded once the channel is known; skipped content is screened first


class _AnyMessage(msgspec.Struct, gc=False):
    """A subscription notification; ``result`` / ``error`` present make it an answer (not ours)."""

    method: str
    params: _AnyParams
    result: Any = UNSET
    error: Any = UNSET


# Decoders are reused: building one costs more than decoding a message.
# (typed decoder, screened decoder) per shape.
_ORDER_NOTIFICATION: Final = msgspec.json.Decoder(_OrderNotification)
_FILL_NOTIFICATION: Final = msgspec.json.Decoder(_FillNotification)
_ANY_MESSAGE: Final = msgspec.json.Decoder(_AnyMessage)
_FILL: Final = (msgspec.json.Decoder(_FillResult), msgspec.json.Decoder(FillWire))
_ORDER: Final = (msgspec.json.Decoder(_OrderResp), msgspec.json.Decoder(_AnyOrder))
_FILLS_PAGE: Final = (msgspec.json.Decoder(_FillResultsPage), msgspec.json.Decoder(_FillsPage))
_ORDERS_PAGE: Final = (msgspec.json.Decoder(_OrderRespsPage), msgspec.json.Decoder(_OrdersPage))

# -- screening what msgspec skips -----------------------------------------------------------

# One pass maps every digit and sign to "0", both exponent letters to "e" and
# both opening brackets to "{"; substring searches then find long digit runs
# and long exponents, and a count finds every opening bracket.
_SCREEN: Final = bytes.maketrans(b"0123456789+-Ee[", b"000000000000ee{")
_LONG_INT: Final = b"0" * (MAX_JSON_INT_DIGITS + 1)
# Decimal() refuses exponents beyond ~10**18; one of 17 digits never fails.
_LONG_EXPONENT: Final = b"e" + b"0" * 18
#: Opening brackets allowed beyond those the shapes account for: nesting this
#: shallow is far below any recursion limit the strict decoder could hit first.
MAX_EXTRA_BRACKETS: Final = 64


def _screen(data: bytes) -> int | None:
    """The opening brackets in ``data``, or ``None`` when msgspec's verdict on it cannot be trusted.

    In the fields msgspec skips, ``decode_json`` refuses what msgspec accepts
    in three ways: integer literals of over ``MAX_JSON_INT_DIGITS`` digits,
    float literals whose exponent ``Decimal`` cannot hold, and nesting past
    the recursion limit. Digit runs are looked for anywhere (a long run in a
    string is a false alarm, which costs only the strict path); the brackets
    bound the nesting, once the caller takes away those its shapes account
    for. ``data`` must be ASCII.
    """
    mapped = data.translate(_SCREEN)
    if _LONG_INT in mapped or _LONG_EXPONENT in mapped:
        return None
    return mapped.count(b"{")


# -- field checks (each raises _Reject where the strict path would not give the same value) --


class _Reject(Exception):  # noqa: N818 - a signal, not an error
    """This payload is not for the fast path (the strict path decides)."""


# The characters of a decimal literal: with only these, Decimal() accepts
# exactly what _fields._DECIMAL_RE matches (no spaces, underscores, NaN/Inf,
# non-ASCII digits).
_DECIMAL_CHARS: Final = "0123456789.eE+-"


# Enum members as constants: reading one off its class costs more than a dict lookup.
_FILLED: Final = OrderStatus.FILLED
_CANCELED: Final = OrderStatus.CANCELED
_REJECTED: Final = OrderStatus.REJECTED
_NO_LIQUIDITY: Final = Liquidity.UNKNOWN
#: The statuses whose order keeps its cancel reason (terminal, not filled).
_KEEPS_REASON: Final = frozenset(status for status in OrderStatus if status.is_terminal and status is not _FILLED)


#: The characters of a decimal literal without an exponent.
_PLAIN_CHARS: Final = "0123456789.+-"
#: The longest such literal whose adjusted exponent is always within ±MAX_DECIMAL_EXPONENT
#: (its digits, a sign and a point: at most 40 digits before the point, or 39 zeros after it).
_PLAIN_CHARS_MAX: Final = MAX_DECIMAL_EXPONENT + 1
_ZERO: Final = Decimal(0)


def _required_text(value: str) -> str:
    if value == "" or len(value) > MAX_TEXT_CHARS:
        raise _Reject
    return value


def _decimal(value: str | None) -> Decimal | None:
    """An optional decimal: absent or ``""`` is ``None``."""
    if value is None or value == "":
        return None
    return _plain_decimal(value)


def _required_decimal(value: str) -> Decimal:
    if len(value) > MAX_NUMBER_CHARS or value.strip(_DECIMAL_CHARS) or not value:
        raise _Reject
    number = Decimal(value)  # InvalidOperation is caught by the caller
    if number and abs(number.adjusted()) > MAX_DECIMAL_EXPONENT:
        raise _Reject
    return number


def _plain_decimal(value: str) -> Decimal:
    """``_required_decimal(value)``, without its exponent check where no exponent can be out of bounds."""
    if len(value) > _PLAIN_CHARS_MAX or value.strip(_PLAIN_CHARS) or not value:
        return _required_decimal(value)
    return Decimal(value)  # InvalidOperation is caught by the caller


def _enum(raw: str, mapping: Any) -> Any:
    found = mapping.get(_required_text(raw).upper())
    if found is None:  # an unknown value: the strict path records it
        raise _Reject
    return found


# -- values ------------------------------------------------------------------------------------


# The text and enum checks below are written out where a field is read (a
# call per field cost as much as the checks): optional text absent or empty is
# None (fee_currency ""), any text is at most MAX_TEXT_CHARS, required text is
# non-empty; an enum value already a mapping's key is taken as is (it is
# non-empty, short and its own upper case), anything else goes through _enum.


def _fill(wire: FillWire, account: str | None, source: Source) -> Fill:
    fill_id = wire.id
    if fill_id == "" or len(fill_id) > MAX_TEXT_CHARS:
        raise _Reject
    raw = wire.fill_type
    found = FILL_TYPES.get(raw)
    canonical, kind = _enum(raw, FILL_TYPES) if found is None else found
    sent = wire.account
    if sent is None or sent == "":
        if account is None:
            raise _Reject
        owner = account
    else:
        if len(sent) > MAX_TEXT_CHARS:
            raise _Reject
        if account is None:
            owner = sent
        else:
            if sent != account and not same_account(sent, account):
                raise _Reject
            owner = account
    sent_liquidity = wire.liquidity
    liquidity: Liquidity | None
    if sent_liquidity is None or sent_liquidity == "":
        liquidity = _NO_LIQUIDITY
    else:
        liquidity = _LIQUIDITY.get(sent_liquidity)
        if liquidity is None:
            liquidity = _enum(sent_liquidity, _LIQUIDITY)
    order_id = wire.order_id
    if order_id == "":
        order_id = None
    elif order_id is not None and len(order_id) > MAX_TEXT_CHARS:
        raise _Reject
    market = wire.market
    if market == "" or len(market) > MAX_TEXT_CHARS:
        raise _Reject
    raw = wire.side
    side = _SIDES.get(raw)
    if side is None:
        side = _enum(raw, _SIDES)
    fee_currency = wire.fee_currency
    if fee_currency is None:
        fee_currency = ""
    elif len(fee_currency) > MAX_TEXT_CHARS:
        raise _Reject
    client_id = wire.client_id
    if client_id == "":
        client_id = None
    elif client_id is not None and len(client_id) > MAX_TEXT_CHARS:
        raise _Reject
    return Fill(
        key=FillKey(venue=VENUE, account=owner, fill_type=canonical, fill_id=fill_id),
        kind=kind,
        order_id=order_id,
        instrument=market,
        side=side,
        price=_plain_decimal(wire.price),
        size=_plain_decimal(wire.size),
        fee=_decimal(wire.fee) or _ZERO,
        fee_currency=fee_currency,
        liquidity=liquidity,
        time=wire.created_at,
        source=source,
        client_id=client_id,
        realized_pnl=_decimal(wire.realized_pnl),
    )


def _order(wire: OrderWire, source: Source, account: str | None = None) -> Order:
    order_id = wire.id
    if order_id == "" or len(order_id) > MAX_TEXT_CHARS:
        raise _Reject
    sent = wire.account
    if account is not None and sent is not None and sent != account and not same_account(sent, account):
        raise _Reject  # another account's order: the strict path reports it
    raw = wire.type
    order_type = _ORDER_TYPES.get(raw)
    if order_type is None:
        order_type = _enum(raw, _ORDER_TYPES)
    quantity = _plain_decimal(wire.size)
    remaining = _plain_decimal(wire.remaining_size)
    if quantity < _ZERO or remaining < _ZERO or remaining > quantity:  # Decimal to Decimal: cheaper than to 0
        raise _Reject
    filled = quantity - remaining
    reason = wire.cancel_reason
    if reason == "":
        reason = None
    elif reason is not None and len(reason) > MAX_TEXT_CHARS:
        raise _Reject
    raw = wire.status
    if raw == "" or len(raw) > MAX_TEXT_CHARS:
        raise _Reject
    status = _LIVE_STATUSES.get(raw)
    if status is None:
        upper = raw.upper()
        if upper != _CLOSED:
            live = _LIVE_STATUSES.get(upper)
            if live is None:  # an unknown status: the strict path records it
                raise _Reject
            status = live
        elif remaining == _ZERO:
            status = _FILLED
        elif filled == _ZERO and reason is not None and reason.upper() in REJECTION_REASONS:
            status = _REJECTED
        else:
            status = _CANCELED
    price = _decimal(wire.price)
    if price == _ZERO and order_type in _MARKET_LIKE:
        price = None
    client_id = wire.client_id
    if client_id == "":
        client_id = None
    elif client_id is not None and len(client_id) > MAX_TEXT_CHARS:
        raise _Reject
    market = wire.market
    if market == "" or len(market) > MAX_TEXT_CHARS:
        raise _Reject
    raw = wire.side
    side = _SIDES.get(raw)
    if side is None:
        side = _enum(raw, _SIDES)
    created_at = wire.created_at
    updated_at = wire.last_updated_at
    return Order(
        order_id=order_id,
        client_id=client_id,
        instrument=market,
        side=side,
        type=order_type,
        price=price,
        quantity=quantity,
        filled_quantity=filled,
        average_fill_price=_decimal(wire.avg_fill_price),
        status=status,
        cancel_reason=reason if status in _KEEPS_REASON else None,
        created_at=created_at,
        updated_at=created_at if updated_at is None or updated_at < created_at else updated_at,
        sequence=wire.seq_no,
        source=source,
    )


def fill_from_wire(wire: FillWire, *, account: str | None, source: Source) -> Fill | None:
    """``parse_fill``'s value for this payload, or ``None`` when the strict path must decide."""
    try:
        return _fill(wire, account, source)
    except (_Reject, ArithmeticError, TypeError, ValueError):  # a core validator's refusal too
        return None


def order_from_wire(wire: OrderWire, *, source: Source) -> Order | None:
    """``parse_order``'s value for this payload, or ``None`` when the strict path must decide."""
    try:
        return _order(wire, source)
    except (_Reject, ArithmeticError, TypeError, ValueError):
        return None


def value_from_wire(wire: Wire, *, account: str | None, source: Source) -> Order | Fill | None:
    """The order or fill of a decoded notification, or ``None`` when the strict path must decide."""
    try:
        if isinstance(wire, OrderWire):
            return _order(wire, source, account)
        return _fill(wire, account, source)
    except (_Reject, ArithmeticError, TypeError, ValueError):  # as in order_from_wire and fill_from_wire
        return None


# -- decoding ------------------------------------------------------------------------------------

_Decoders: TypeAlias = tuple["msgspec.json.Decoder[Any]", "msgspec.json.Decoder[Any]"]
#: Opening brackets a notification has (itself, params, data, flags, request_info).
_NOTIFICATION_BRACKETS: Final = 5


def _screened_notification(data: bytes) -> tuple[str, Wire] | None:
    """The second tier: fields the spec does not list are skipped (``data`` screened first)."""
    message = _ANY_MESSAGE.decode(data)
    if message.method != "subscription" or message.result is not UNSET or message.error is not UNSET:
        return None  # not a notification (an answer has a result or an error): the strict path decides
    channel = message.params.channel
    kind = channel.split(".", 1)[0]
    if kind == "orders":
        return channel, _ORDER[1].decode(message.params.data)
    if kind == "fills":
        return channel, _FILL[1].decode(message.params.data)
    return None


def decode_notification(text: str) -> tuple[str, Wire] | None:
    """A WebSocket text message as ``(channel, payload shape)`` when it is an ``orders.*`` or ``fills.*``
    notification the fast path can take; ``None`` otherwise (the strict path decides).

    When this returns a value, ``decode_json(text)`` is a dict with ``method ==
    "subscription"``, no ``result`` / ``error`` key, and ``params`` holding
    this ``channel`` and the ``data`` the shape was decoded from.
    """
    if not text.isascii():  # a BOM, a lone surrogate: decode_json decides
        return None
    # The first tier: the whole message typed, nothing skipped. The decoder is
    # picked by a glance at the text; the decoded channel must agree, else (or
    # when the typed decoder refuses the message) the second tier decides.
    decoder: msgspec.json.Decoder[Any] | None = None
    if '"channel":"orders' in text:
        decoder, kind = _ORDER_NOTIFICATION, "orders"
    elif '"channel":"fills' in text:
        decoder, kind = _FILL_NOTIFICATION, "fills"
    if decoder is not None:
        message: _OrderNotification | _FillNotification | None
        try:
            message = decoder.decode(text)
        except msgspec.ValidationError:
            message = None  # a field the spec does not list (or an odd type): screen, then skip it
        except (msgspec.DecodeError, RecursionError):
            return None
        if message is not None:
            params = message.params
            channel = params.channel
            if channel.split(".", 1)[0] == kind:
                if message.method != "subscription":
                    return None
                return channel, params.data
    data = text.encode("ascii")
    brackets = _screen(data)
    if brackets is None or brackets > _NOTIFICATION_BRACKETS + MAX_EXTRA_BRACKETS:
        return None
    try:
        return _screened_notification(data)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None


def _page_brackets(rows: list[FillWire] | list[_AnyOrder]) -> int:
    """The opening brackets of a decoded page that its shapes account for."""
    count = 2 + len(rows)  # the page, its results, each row
    for row in rows:
        if row.flags is not UNSET:
            count += 1
        if isinstance(row, _AnyOrder) and isinstance(row.request_info, dict):
            count += 1
    return count


def _page(body: bytes, decoders: _Decoders) -> Any:
    """The decoded page, or ``None`` when the strict path must decide."""
    if not body.isascii():  # a BOM, UTF-16, bytes that are not UTF-8: decode_json decides
        return None
    try:
        return decoders[0].decode(body)
    except msgspec.ValidationError:
        pass  # a field the spec does not list (or an odd type): screen, then skip it
    except (msgspec.DecodeError, RecursionError):
        return None
    brackets = _screen(body)
    if brackets is None:
        return None
    try:
        page = decoders[1].decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    if brackets - _page_brackets(page.results) > MAX_EXTRA_BRACKETS:
        return None
    return page


def _strict_rows(body: bytes, count: int) -> list[object] | None:
    """The page's rows as ``decode_json`` sees them (for the rows the fast path leaves to the strict one)."""
    try:
        payload = decode_json(body)
    except ParseError:
        return None
    rows = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or len(rows) != count:
        return None
    return rows


def _rows_page(
    body: bytes,
    decoders: _Decoders,
    what: str,
    fast: Callable[[Any], T | None],
    strict: Callable[[object], Parsed[T]],
) -> tuple[Page[T], str | None] | None:
    """``parse_page(decode_json(body), what, strict)``, each row tried by ``fast`` first; ``None``
    means the whole page goes to the strict path.

    Rows the fast path does not take are parsed by ``strict`` (a bad row
    becomes the same ``MALFORMED_MESSAGE`` discrepancy).
    """
    page = _page(body, decoders)
    if page is None:
        return None
    items: list[T] = []
    problems: list[Discrepancy] = []
    rows: list[object] | None = None
    for index, wire in enumerate(page.results):
        value = fast(wire)
        if value is not None:
            items.append(value)
            continue
        if rows is None:
            rows = _strict_rows(body, len(page.results))
            if rows is None:
                return None
        try:
            parsed = strict(rows[index])
        except ParseError as exc:
            problems.append(malformed(f"{what} row {index}", exc, rows[index]))
            continue
        items.append(parsed.value)
        problems.extend(parsed.problems)
    return Page(items=tuple(items), problems=tuple(problems)), page.next or None


def fills_page(
    body: bytes, *, account: str | None, source: Source = Source.REST
) -> tuple[Page[Fill], str | None] | None:
    """``parse_page(decode_json(body), "fills", parse_fill)`` for a ``GET /fills`` body, or ``None``."""
    return _rows_page(
        body,
        _FILLS_PAGE,
        "fills",
        lambda wire: fill_from_wire(wire, account=account, source=source),
        lambda row: parse_fill(row, account=account, source=source),
    )


def orders_page(body: bytes, *, what: str, source: Source = Source.REST) -> tuple[Page[Order], str | None] | None:
    """``parse_page(decode_json(body), what, parse_order)`` for a paginated orders body, or ``None``."""
    return _rows_page(
        body,
        _ORDERS_PAGE,
        what,
        lambda wire: order_from_wire(wire, source=source),
        lambda row: parse_order(row, source=source),
    )
