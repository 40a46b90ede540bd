"""The simulated markets: a few perpetuals with their increments."""

from __future__ import annotations

from decimal import Decimal

import attrs

__all__ = ["DEFAULT_MARKETS", "MarketSpec"]


def _positive(_inst: object, attribute: attrs.Attribute[Decimal], value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive Decimal, got {value!r}")


@attrs.frozen(kw_only=True)
class MarketSpec:
    """One perpetual market of the simulated venue.

    Prices move on ``price_tick`` and sizes on ``size_increment``, like
    Paradex's ``price_tick_size`` and ``order_size_increment``.
    """

    symbol: str
    base_currency: str
    price_tick: Decimal = attrs.field(validator=_positive)
    size_increment: Decimal = attrs.field(validator=_positive)
    initial_price: Decimal = attrs.field(validator=_positive)
    max_order_size: Decimal = attrs.field(validator=_positive)
    position_limit: Decimal = attrs.field(validator=_positive)
    min_notional: Decimal = Decimal(10)

    def round_price(self, price: Decimal) -> Decimal:
        """``price`` rounded to the tick, never below one tick."""
        ticks = (price / self.price_tick).to_integral_value()
        return max(ticks, Decimal(1)) * self.price_tick

    def sizes(self, units: int) -> Decimal:
        """``units`` size increments."""
        return self.size_increment * units


DEFAULT_MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec(
        symbol="BTC-USD-PERP",
        base_currency="BTC",
        price_tick=Decimal("0.1"),
        size_increment=Decimal("0.001"),
        initial_price=Decimal(95000),
        max_order_size=Decimal(100),
        position_limit=Decimal(60),
    ),
    MarketSpec(
        symbol="ETH-USD-PERP",
        base_currency="ETH",
        price_tick=Decimal("0.01"),
        size_increment=Decimal("0.01"),
        initial_price=Decimal(3500),
        max_order_size=Decimal(2000),
        position_limit=Decimal(1500),
    ),
    MarketSpec(
        symbol="SOL-USD-PERP",
        base_currency="SOL",
        price_tick=Decimal("0.001"),
        size_increment=Decimal("0.1"),
        initial_price=Decimal(180),
        max_order_size=Decimal(50000),
        position_limit=Decimal(40000),
    ),
)
