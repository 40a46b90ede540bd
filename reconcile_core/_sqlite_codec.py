"""Rows of the SQLite ledger to and from :class:`~reconcile_core.Fill` and friends.

Decimals are stored as ``str(Decimal)``, which round-trips exactly (``1.50``
stays ``1.50``). Enums are stored by value. Conflict markers use a canonical
form of :meth:`Fill.content` in which equal decimals are equal text
(``1.5 == 1.50``), matching how :class:`~reconcile_core.MemoryLedger` compares
content.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ._types import Fill, FillBust, FillKey, FillKind, Liquidity, Side, Source

__all__ = [
    "FILL_COLUMNS",
    "canonical_content",
    "decode_bust",
    "decode_fill",
    "encode_fill",
]

#: The stored columns of a fill after its key, in :func:`encode_fill` order.
FILL_COLUMNS = (
    "kind",
    "order_id",
    "instrument",
    "side",
    "price",
    "size",
    "fee",
    "fee_currency",
    "liquidity",
    "time",
    "source",
    "client_id",
    "realized_pnl",
)


def encode_fill(fill: Fill) -> tuple[object, ...]:
    """The values of :data:`FILL_COLUMNS` for ``fill``.

    On the hot path of every recorded fill: enum values are read as ``_value_``
    (a plain attribute) rather than through the ``value`` property, which costs
    a descriptor call each.
    """
    realized_pnl = fill.realized_pnl
    return (
        fill.kind._value_,
        fill.order_id,
        fill.instrument,
        fill.side._value_,
        str(fill.price),
        str(fill.size),
        str(fill.fee),
        fill.fee_currency,
        fill.liquidity._value_,
        fill.time,
        fill.source._value_,
        fill.client_id,
        None if realized_pnl is None else str(realized_pnl),
    )


def decode_fill(*, venue: str, account: str, fill_id: str, fill_type: str, row: Sequence[Any]) -> Fill:
    """The fill stored in ``row`` (the :data:`FILL_COLUMNS` values).

    Raises ``ValueError``/``TypeError``/``ArithmeticError`` when a value is not
    what this code writes; the ledger reports that as corruption.
    """
    (
        kind,
        order_id,
        instrument,
        side,
        price,
        size,
        fee,
        fee_currency,
        liquidity,
        time,
        source,
        client_id,
        realized_pnl,
    ) = row
    return Fill(
        key=FillKey(venue=venue, account=account, fill_type=fill_type, fill_id=fill_id),
        kind=FillKind(kind),
        order_id=order_id,
        instrument=instrument,
        side=Side(side),
        price=_decimal(price),
        size=_decimal(size),
        fee=_decimal(fee),
        fee_currency=fee_currency,
        liquidity=Liquidity(liquidity),
        time=time,
        source=Source(source),
        client_id=client_id,
        realized_pnl=None if realized_pnl is None else _decimal(realized_pnl),
    )


def decode_bust(*, venue: str, account: str, fill_id: str, time: Any, source: Any) -> FillBust:
    """The bust stored as (``time``, ``source``)."""
    return FillBust(venue=venue, account=account, fill_id=fill_id, time=time, source=Source(source))


def _decimal(text: object) -> Decimal:
    if not isinstance(text, str):
        msg = f"expected a decimal stored as text, got {type(text).__name__}"
        raise TypeError(msg)
    return Decimal(text)


def _canonical_decimal(value: Decimal) -> str:
    # Exact, context-free: strip trailing zeros of the coefficient.
    # (Decimal.normalize would round to the context precision.)
    if value.is_zero():
        return "0"
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # noqa: S101 - fills hold finite decimals only
    coefficient = list(digits)
    while coefficient[-1] == 0:
        coefficient.pop()
        exponent += 1
    return f"{'-' if sign else ''}{''.join(map(str, coefficient))}e{exponent}"


def canonical_content(fill: Fill) -> str:
    """Text equal for two fills exactly when their :meth:`Fill.content` is equal."""
    return json.dumps(
        [
            fill.kind.value,
            fill.order_id,
            fill.instrument,
            fill.side.value,
            _canonical_decimal(fill.price),
            _canonical_decimal(fill.size),
            _canonical_decimal(fill.fee),
            fill.fee_currency,
            fill.time,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
