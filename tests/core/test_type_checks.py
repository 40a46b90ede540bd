"""The hot types check their fields in one pass; they accept and refuse exactly what per-field validators do."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from reconcile_core._types import _CHECK

from ._builders import fill


class Text(str):
    __slots__ = ()


class Count(int):
    pass


def _reference(cls: type) -> type:
    """The same fields, each with its check as an ordinary attrs validator."""
    fields = {
        a.name: attrs.field(validator=a.metadata[_CHECK], kw_only=True, default=a.default)
        if a.default is not attrs.NOTHING
        else attrs.field(validator=a.metadata[_CHECK], kw_only=True)
        for a in attrs.fields(cls)
    }
    return attrs.make_class(f"Reference{cls.__name__}", fields, frozen=True)


REFERENCES = {cls: _reference(cls) for cls in (FillKey, Fill, Order)}

KEY = FillKey(venue="v", account="a", fill_type="FILL", fill_id="1")
ODD = [
    None,
    "",
    "x",
    Text("x"),
    "ordre-é-日本",  # text beyond ASCII: the fast check passes it on to the field checks
    "x\ud800",  # a lone surrogate: no UTF-8 can store it
    0,
    -1,
    7,
    Count(7),
    True,
    1.5,
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal(-1),
    Decimal(0),
    Decimal("2.5"),
    Side.BUY,
    OrderStatus.OPEN,
    Source.WS,
    KEY,
    (),
]
GOOD: dict[type, dict[str, list[object]]] = {
    FillKey: {name: ["v", Text("w")] for name in ("venue", "account", "fill_type", "fill_id")},
    Fill: {
        "key": [KEY],
        "kind": list(FillKind),
        "order_id": [None, "o1"],
        "instrument": ["BTC-USD-PERP"],
        "side": list(Side),
        "price": [Decimal("100.5"), Decimal(-3)],
        "size": [Decimal(0), Decimal("0.25")],
        "fee": [Decimal("-0.1"), Decimal(0)],
        "fee_currency": ["", "USDC"],
        "liquidity": list(Liquidity),
        "time": [0, 1_700_000_000_000],
        "source": list(Source),
        "client_id": [None, "c"],
        "realized_pnl": [None, Decimal(1)],
    },
    Order: {
        "order_id": ["o1"],
        "client_id": [None, "c"],
        "instrument": ["ETH-USD-PERP"],
        "side": list(Side),
        "type": list(OrderType),
        "price": [None, Decimal(10)],
        "quantity": [Decimal(1), Decimal(0)],
        "filled_quantity": [Decimal(0), Decimal("0.5")],
        "average_fill_price": [None, Decimal(10)],
        "status": list(OrderStatus),
        "cancel_reason": [None, "USER_CANCELED"],
        "created_at": [0, 5],
        "updated_at": [5],
        "sequence": [None, 0, 9],
        "source": list(Source),
    },
}


@st.composite
def field_values(draw: st.DrawFn, cls: type) -> dict[str, Any]:
    """Good values, then one or two fields made odd (wrong type, subclass, negative, NaN, empty)."""
    good = GOOD[cls]
    values: dict[str, Any] = {name: draw(st.sampled_from(choices)) for name, choices in good.items()}
    for name in draw(st.lists(st.sampled_from(sorted(good)), max_size=2)):
        values[name] = draw(st.sampled_from(ODD))
    return values


def _outcome(cls: type, values: dict[str, Any]) -> tuple[type, object] | None:
    try:
        cls(**values)
    except (TypeError, ValueError) as exc:
        return type(exc), exc.args[0]
    return None


@pytest.mark.parametrize("cls", [FillKey, Fill, Order], ids=lambda c: c.__name__)
def test_the_one_pass_check_is_the_per_field_validators(cls: type) -> None:
    @settings(max_examples=1500, deadline=None, database=None)
    @given(field_values(cls))
    def law(values: dict[str, Any]) -> None:
        assert _outcome(cls, values) == _outcome(REFERENCES[cls], values)

    law()


def test_evolve_is_checked_too() -> None:
    key = FillKey(venue="v", account="a", fill_type="FILL", fill_id="1")
    with pytest.raises(ValueError, match="fill_id must be a non-empty str"):
        attrs.evolve(key, fill_id="")


def test_disabled_validators_are_honored() -> None:
    with attrs.validators.disabled():
        key = FillKey(venue="", account="a", fill_type="FILL", fill_id="1")
    assert key.venue == ""


TEXT_FIELDS = {
    FillKey: ["venue", "account", "fill_type", "fill_id"],
    Fill: ["order_id", "instrument", "fee_currency", "client_id"],
    Order: ["order_id", "client_id", "instrument", "cancel_reason"],
}


def _good(cls: type) -> dict[str, Any]:
    return {name: choices[-1] for name, choices in GOOD[cls].items()}


@pytest.mark.parametrize(("cls", "name"), [(cls, name) for cls, names in TEXT_FIELDS.items() for name in names])
def test_text_with_a_lone_surrogate_is_refused(cls: type, name: str) -> None:
    # A SQLite ledger could not store it: refused where it is made, not where it is written.
    with pytest.raises(ValueError, match=f"{name} must be valid Unicode text"):
        cls(**{**_good(cls), name: "x\ud800y"})
    assert getattr(cls(**{**_good(cls), name: "ordre-é-日本"}), name) == "ordre-é-日本"


def test_the_other_types_refuse_a_lone_surrogate_too() -> None:
    with pytest.raises(ValueError, match="fill_id must be valid Unicode text"):
        FillBust(venue="v", account="a", fill_id="\udcff", time=1, source=Source.WS)
    with pytest.raises(ValueError, match="last_fill_id must be valid Unicode text"):
        Position(
            instrument="BTC",
            size=Decimal(1),
            entry_price=None,
            last_fill_id="\ud800",
            updated_at=1,
            sequence=None,
            source=Source.WS,
        )


@pytest.mark.parametrize("time", [2**63, 2**64])
def test_a_time_a_ledger_cannot_store_is_refused(time: int) -> None:
    # SQLite stores signed 64-bit integers: a later time crashed the ledger with OverflowError.
    with pytest.raises(ValueError, match=r"milliseconds in \[0, 2\*\*63 - 1\]"):
        fill(time=time)
    with pytest.raises(ValueError, match=r"milliseconds in \[0, 2\*\*63 - 1\]"):
        FillBust(venue="v", account="a", fill_id="f1", time=time, source=Source.WS)
    assert fill(time=2**63 - 1).time == 2**63 - 1


@pytest.mark.parametrize("size", ["1e100", "9e999999"])
def test_a_size_ledgers_cannot_add_up_is_refused(size: str) -> None:
    # Two sizes of 9e999999 overflowed Decimal when a ledger added them to the order's total.
    with pytest.raises(ValueError, match="below 1e100"):
        fill(size=Decimal(size))
    assert fill(size=Decimal("9.99e99")).size == Decimal("9.99e99")
