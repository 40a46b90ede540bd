"""The seeded activity generator: one random venue action per step.

All randomness comes from one ``random.Random`` seeded by the simulator;
the generator never looks at the wall clock, so a seed replays the same
history, action for action.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

import attrs

from ._markets import MarketSpec
from ._truth import OrderTruth
from ._venue import STOP_TYPES, Venue

__all__ = ["ActivityGenerator", "ActivityMix", "StepReport"]

ZERO = Decimal(0)

_REJECT_REASONS = ("NOT_ENOUGH_MARGIN", "ORDER_EXCEEDS_POSITION_LIMIT")
_CANCEL_REASONS = ("USER_CANCELED", "USER_CANCELED", "USER_CANCELED", "EXPIRED", "SELF_TRADE")
#: Why the unfilled rest of an IOC or market order closes.
IOC_REMAINDER_REASON = "EXPIRED"


def _weight(_inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an int >= 0, got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, got {value!r}")


def _probability(_inst: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class ActivityMix:
    """How the generator picks its actions: relative weights and pacing.

    Weights are relative (an action that does not apply at the moment, such
    as a cancel with no live order, is skipped). ``same_ms_probability`` is
    the chance that a step does not move the clock, which makes
    same-millisecond bursts; otherwise the clock moves 1..``max_step_ms``.
    """

    place: int = attrs.field(default=18, validator=_weight)
    accept: int = attrs.field(default=12, validator=_weight)
    reject: int = attrs.field(default=2, validator=_weight)
    fill: int = attrs.field(default=34, validator=_weight)
    modify: int = attrs.field(default=4, validator=_weight)
    replace: int = attrs.field(default=1, validator=_weight)
    cancel: int = attrs.field(default=6, validator=_weight)
    trigger: int = attrs.field(default=2, validator=_weight)
    liquidation: int = attrs.field(default=1, validator=_weight)
    other_fill: int = attrs.field(default=2, validator=_weight)
    bust: int = attrs.field(default=1, validator=_weight)
    tick: int = attrs.field(default=4, validator=_weight)
    same_ms_probability: float = attrs.field(default=0.3, validator=_probability)
    max_step_ms: int = attrs.field(default=40, validator=_positive)
    max_live_orders: int = attrs.field(default=12, validator=_positive)
    #: Busts pick among unbusted fills younger than this (venue ms).
    bust_window_ms: int = 10_000


@attrs.frozen(kw_only=True)
class StepReport:
    """What one step did: the action, whose account, when, and what it touched."""

    action: str
    account: str
    at: int
    order_id: str = ""
    fills: int = 0
    detail: str = ""


class ActivityGenerator:
    """Drives a :class:`Venue` with random, seeded, plausible activity."""

    def __init__(self, venue: Venue, rng: random.Random, mix: ActivityMix) -> None:
        self._venue = venue
        self._rng = rng
        self._mix = mix
        self._client_ids = 0
        self._actions: dict[str, Callable[[str], StepReport | None]] = {
            "place": self._place,
            "accept": self._accept,
            "reject": self._reject,
            "fill": self._fill,
            "modify": self._modify,
            "replace": self._replace,
            "cancel": self._cancel,
            "trigger": self._trigger,
            "liquidation": self._liquidation,
            "other_fill": self._other_fill,
            "bust": self._bust,
            "tick": self._tick,
        }

    def step(self) -> StepReport:
        """Perform one action (retrying other actions when one does not apply)."""
        rng = self._rng
        venue = self._venue
        with venue.transaction():
            if rng.random() >= self._mix.same_ms_probability:
                venue.clock.advance(rng.randint(1, self._mix.max_step_ms))
            account = rng.choice(venue.accounts)
            names = list(self._actions)
            weights = [getattr(self._mix, name) for name in names]
            for _ in range(20):
                name = rng.choices(names, weights)[0]
                report = self._actions[name](account)
                if report is not None:
                    return report
            return self._tick(account)

    # ------------------------------------------------------------------ helpers

    def _market(self) -> MarketSpec:
        return self._rng.choice(list(self._venue.markets.values()))

    def _live(self, account: str, statuses: frozenset[str]) -> list[OrderTruth]:
        return [o for o in self._venue.live_orders(account) if o.status in statuses]

    def _pick(self, orders: list[OrderTruth]) -> OrderTruth | None:
        return self._rng.choice(orders) if orders else None

    def _units(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)

    def _away_from_mark(self, market: MarketSpec, side: str, max_ticks: int) -> Decimal:
        mark = self._venue.marks[market.symbol]
        ticks = self._units(0, max_ticks)
        offset = market.price_tick * ticks
        return market.round_price(mark - offset if side == "BUY" else mark + offset)

    def _report(self, action: str, account: str, order_id: str = "", fills: int = 0, detail: str = "") -> StepReport:
        return StepReport(
            action=action, account=account, at=self._venue.clock.now, order_id=order_id, fills=fills, detail=detail
        )

    # ------------------------------------------------------------------ actions

    def _place(self, account: str) -> StepReport | None:
        rng = self._rng
        if len(self._venue.live_orders(account)) >= self._mix.max_live_orders:
            return None
        market = self._market()
        side = rng.choice(("BUY", "SELL"))
        size = market.sizes(self._units(1, 60))
        roll = rng.random()
        order_type, instruction = "LIMIT", "GTC"
        trigger = ZERO
        flags: list[str] = []
        if roll < 0.10:
            instruction = "POST_ONLY"
        elif roll < 0.18:
            instruction = "RPI"
        elif roll < 0.28:
            order_type, instruction = "MARKET", "IOC"
        elif roll < 0.35:
            instruction = "IOC"
        elif roll < 0.40:
            order_type = rng.choice(sorted(STOP_TYPES))
            trigger = self._away_from_mark(market, "SELL" if side == "BUY" else "BUY", 300)
            above = trigger > self._venue.marks[market.symbol]
            flags.append("STOP_CONDITION_ABOVE_TRIGGER" if above else "STOP_CONDITION_BELOW_TRIGGER")
        if rng.random() < 0.1:
            flags.append("REDUCE_ONLY")
        if rng.random() < 0.1:
            flags.append("INTERACTIVE")
        client_id = ""
        if rng.random() < 0.5:
            self._client_ids += 1
            client_id = f"sim-{self._client_ids}"
        order = self._venue.place_order(
            account,
            market=market.symbol,
            side=side,
            size=size,
            price=self._away_from_mark(market, side, 200),
            order_type=order_type,
            instruction=instruction,
            client_id=client_id,
            trigger_price=trigger,
            flags=flags,
        )
        return self._report("place", account, order.id, detail=f"{order.type} {order.side} {order.market}")

    def _accept(self, account: str) -> StepReport | None:
        order = self._pick([o for o in self._live(account, frozenset({"NEW"})) if o.type != "MARKET"])
        if order is None:
            return None
        self._venue.accept_order(order.id)
        return self._report("accept", account, order.id)

    def _reject(self, account: str) -> StepReport | None:
        order = self._pick(self._live(account, frozenset({"NEW"})))
        if order is None:
            return None
        reason = self._rng.choice(_REJECT_REASONS)
        self._venue.reject_order(order.id, reason)
        return self._report("reject", account, order.id, detail=reason)

    def _fill(self, account: str) -> StepReport | None:
        rng = self._rng
        candidates = [
            o
            for o in self._venue.live_orders(account)
            if o.status == "OPEN" or (o.status == "NEW" and o.type == "MARKET")
        ]
        order = self._pick(candidates)
        if order is None:
            return None
        market = self._venue.markets[order.market]
        remaining_units = int(order.remaining_size / market.size_increment)
        roll = rng.random()
        count = 1 if roll < 0.6 else (2 if roll < 0.8 else self._units(3, 5))
        count = max(1, min(count, remaining_units))
        fill_all = rng.random() < 0.4
        parts: list[tuple[Decimal, Decimal]] = []
        left = remaining_units
        taker = order.type.endswith("MARKET") or order.instruction == "IOC"
        for index in range(count):
            if left <= 0:
                break
            slots = count - index
            units = left if slots == 1 and fill_all else self._units(1, max(1, left - (slots - 1)))
            units = min(units, left)
            left -= units
            if taker:
                price = self._away_from_mark(market, "SELL" if order.side == "BUY" else "BUY", 5 + index)
            else:
                price = order.price
            parts.append((price, market.sizes(units)))
        fill_type = "RPI" if order.instruction == "RPI" else "FILL"
        fills = self._venue.fill_order(
            order.id,
            parts,
            liquidity="TAKER" if taker else "MAKER",
            fill_type=fill_type,
            close_remainder=IOC_REMAINDER_REASON if taker else None,
        )
        return self._report("fill", account, order.id, fills=len(fills), detail=fill_type)

    def _modify(self, account: str) -> StepReport | None:
        order = self._pick([o for o in self._live(account, frozenset({"OPEN"})) if o.type == "LIMIT"])
        if order is None:
            return None
        market = self._venue.markets[order.market]
        size = None
        if self._rng.random() < 0.5:
            size = order.filled + market.sizes(self._units(1, 40))
        self._venue.modify_order(order.id, price=self._away_from_mark(market, order.side, 150), size=size)
        return self._report("modify", account, order.id)

    def _replace(self, account: str) -> StepReport | None:
        order = self._pick([o for o in self._live(account, frozenset({"OPEN"})) if o.type == "LIMIT"])
        if order is None:
            return None
        market = self._venue.markets[order.market]
        _, replacement = self._venue.replace_order(order.id, price=self._away_from_mark(market, order.side, 150))
        return self._report("replace", account, order.id, detail=f"replaced by {replacement.id}")

    def _cancel(self, account: str) -> StepReport | None:
        order = self._pick(self._venue.live_orders(account))
        if order is None:
            return None
        if order.type.endswith("MARKET") or order.instruction == "IOC":
            reason = IOC_REMAINDER_REASON
        else:
            reason = self._rng.choice(_CANCEL_REASONS)
        self._venue.cancel_order(order.id, reason)
        return self._report("cancel", account, order.id, detail=reason)

    def _trigger(self, account: str) -> StepReport | None:
        order = self._pick(self._live(account, frozenset({"UNTRIGGERED"})))
        if order is None:
            return None
        self._venue.trigger_order(order.id)
        return self._report("trigger", account, order.id)

    def _open_position(self, account: str) -> tuple[MarketSpec, Decimal] | None:
        held = [
            (market, size)
            for market in self._venue.markets.values()
            if (size := self._venue.position_size(account, market.symbol)) != 0
        ]
        return self._rng.choice(held) if held else None

    def _reduce(self, account: str, fill_type: str, *, whole: bool) -> StepReport | None:
        held = self._open_position(account)
        if held is None:
            return None
        market, size = held
        units = int(abs(size) / market.size_increment)
        if not whole:
            units = self._units(1, units)
        fill = self._venue.orderless_fill(
            account,
            market=market.symbol,
            fill_type=fill_type,
            side="SELL" if size > 0 else "BUY",
            size=market.sizes(units),
            price=self._venue.marks[market.symbol],
        )
        return self._report(fill_type.lower(), account, fills=1, detail=fill.id)

    def _liquidation(self, account: str) -> StepReport | None:
        return self._reduce(account, "LIQUIDATION", whole=self._rng.random() < 0.5)

    def _other_fill(self, account: str) -> StepReport | None:
        kind = self._rng.choice(("UNWIND_TRANSFER", "SETTLE_MARKET", "BLOCK_TRADE", "BLOCK_TRADE"))
        if kind == "UNWIND_TRANSFER":
            return self._reduce(account, kind, whole=False)
        if kind == "SETTLE_MARKET":
            return self._reduce(account, kind, whole=True)
        market = self._market()
        fill = self._venue.orderless_fill(
            account,
            market=market.symbol,
            fill_type=kind,
            side=self._rng.choice(("BUY", "SELL")),
            size=market.sizes(self._units(1, 100)),
            price=self._venue.marks[market.symbol],
        )
        return self._report("block_trade", account, fills=1, detail=fill.id)

    def _bust(self, account: str) -> StepReport | None:
        recent = self._venue.recent_fills(account, since=self._venue.clock.now - self._mix.bust_window_ms)
        if not recent:
            return None
        fill = self._rng.choice(recent)
        self._venue.bust_fill(account, fill.id)
        return self._report("bust", account, fill.order_id, detail=fill.id)

    def _tick(self, account: str) -> StepReport:
        market = self._market()
        mark = self._venue.marks[market.symbol]
        moved = market.round_price(mark + market.price_tick * self._units(-50, 50))
        self._venue.set_mark(market.symbol, max(moved, market.price_tick * 10))
        return self._report("tick", account, detail=f"{market.symbol} {moved}")
