"""A small venue model for the convergence law: a history, its hints and snapshots.

The model is the *truth*. Each action changes it, advances the venue clock and
emits the stream hints a venue would send (WS provenance, WS sequence
numbers). REST views of the same versions carry an independent sequence series,
as on Paradex.
"""

from __future__ import annotations

import random
from decimal import Decimal

import attrs

from reconcile_core import (
    Fill,
    FillBust,
    FillKey,
    FillKind,
    Liquidity,
    OpenOrdersSnapshot,
    Order,
    OrderStatus,
    OrderType,
    Position,
    PositionsSnapshot,
    Side,
    Source,
)
from reconcile_core.typing import Observation

from ._builders import ACCOUNT, VENUE

INSTRUMENTS = ("BTC-PERP", "ETH-PERP")
ACTIONS = 10


@attrs.define
class _OrderTruth:
    order: Order  # REST view, without sequence
    ws_seq: int
    rest_seq: int


@attrs.define
class VenueHistory:
    """The venue's truth plus everything it emitted while the history ran."""

    now: int = 1_000
    orders: dict[str, _OrderTruth] = attrs.field(factory=dict)
    fills: dict[str, Fill] = attrs.field(factory=dict)
    busts: dict[str, FillBust] = attrs.field(factory=dict)
    positions: dict[str, tuple[Position, int, int]] = attrs.field(factory=dict)
    hints: list[Observation] = attrs.field(factory=list)
    snapshots: list[tuple[int, OpenOrdersSnapshot, PositionsSnapshot]] = attrs.field(factory=list)
    _seq: int = 0
    _next_id: int = 0

    # -- identity and clock --------------------------------------------------

    def _tick(self, ms: int = 1) -> int:
        self.now += ms
        return self.now

    def _sequence(self) -> int:
        self._seq += 1
        return self._seq

    def _new_id(self, prefix: str) -> str:
        self._next_id += 1
        return f"{prefix}{self._next_id}"

    # -- views ----------------------------------------------------------------

    def order_view(self, order_id: str, source: Source) -> Order:
        truth = self.orders[order_id]
        seq = truth.ws_seq if source is Source.WS else truth.rest_seq
        return attrs.evolve(truth.order, source=source, sequence=seq)

    def position_view(self, instrument: str, source: Source) -> Position:
        position, ws_seq, rest_seq = self.positions[instrument]
        return attrs.evolve(position, source=source, sequence=ws_seq if source is Source.WS else rest_seq)

    def open_orders_snapshot(self) -> OpenOrdersSnapshot:
        live = tuple(self.order_view(oid, Source.REST) for oid, t in self.orders.items() if t.order.is_live)
        return OpenOrdersSnapshot(orders=live)

    def positions_snapshot(self) -> PositionsSnapshot:
        positions = tuple(self.position_view(i, Source.REST) for i in self.positions)
        as_of = max((p.updated_at for p in positions), default=None)
        return PositionsSnapshot(positions=positions, as_of=as_of)

    # -- changes ---------------------------------------------------------------

    def _set_order(self, order: Order) -> None:
        self.orders[order.order_id] = _OrderTruth(order=order, ws_seq=self._sequence(), rest_seq=self._sequence() * 7)
        self.hints.append(self.order_view(order.order_id, Source.WS))

    def _move_position(self, instrument: str, delta: Decimal, price: Decimal, fill_id: str) -> None:
        current = self.positions.get(instrument)
        size = (current[0].size if current else Decimal(0)) + delta
        position = Position(
            instrument=instrument,
            size=size,
            entry_price=price if size else None,
            last_fill_id=fill_id,
            updated_at=self.now,
            sequence=None,
            source=Source.REST,
        )
        self.positions[instrument] = (position, self._sequence(), self._sequence() * 3)
        self.hints.append(self.position_view(instrument, Source.WS))

    def place(self, rng: random.Random) -> None:
        stop = rng.random() < 0.2
        self._tick()
        order = Order(
            order_id=self._new_id("o"),
            client_id=self._new_id("c") if rng.random() < 0.5 else None,
            instrument=rng.choice(INSTRUMENTS),
            side=rng.choice((Side.BUY, Side.SELL)),
            type=OrderType.STOP_LIMIT if stop else OrderType.LIMIT,
            price=Decimal(rng.randint(90, 110)),
            quantity=Decimal(rng.randint(1, 4)),
            filled_quantity=Decimal(0),
            average_fill_price=None,
            status=OrderStatus.UNTRIGGERED if stop else OrderStatus.NEW,
            cancel_reason=None,
            created_at=self.now,
            updated_at=self.now,
            sequence=None,
            source=Source.REST,
        )
        self._set_order(order)

    def _live(self, *statuses: OrderStatus) -> list[Order]:
        return [t.order for t in self.orders.values() if t.order.status in statuses]

    def advance_lifecycle(self, rng: random.Random) -> None:
        """NEW -> OPEN, or UNTRIGGERED -> NEW."""
        candidates = self._live(OrderStatus.NEW, OrderStatus.UNTRIGGERED)
        if not candidates:
            return
        order = rng.choice(candidates)
        status = OrderStatus.OPEN if order.status is OrderStatus.NEW else OrderStatus.NEW
        self._set_order(attrs.evolve(order, status=status, updated_at=self._tick()))

    def fill(self, rng: random.Random) -> None:
        candidates = self._live(OrderStatus.OPEN)
        if not candidates:
            return
        order = rng.choice(candidates)
        remaining = order.quantity - order.filled_quantity
        size = remaining if rng.random() < 0.5 else Decimal(rng.randint(1, 4)) * remaining / 4
        price = order.price or Decimal(100)
        self._tick()
        fill_id = self._new_id("f")
        fill = Fill(
            key=FillKey(venue=VENUE, account=ACCOUNT, fill_type="FILL", fill_id=fill_id),
            kind=FillKind.TRADE,
            order_id=order.order_id,
            instrument=order.instrument,
            side=order.side,
            price=price,
            size=size,
            fee=size * Decimal("0.01"),
            fee_currency="USDC",
            liquidity=rng.choice((Liquidity.MAKER, Liquidity.TAKER)),
            time=self.now,
            source=Source.REST,
            client_id=order.client_id,
        )
        self.fills[fill_id] = fill
        self.hints.append(attrs.evolve(fill, source=Source.WS))
        filled = order.filled_quantity + size
        average = ((order.average_fill_price or Decimal(0)) * order.filled_quantity + price * size) / filled
        status = OrderStatus.FILLED if filled == order.quantity else OrderStatus.OPEN
        self._set_order(
            attrs.evolve(order, filled_quantity=filled, average_fill_price=average, status=status, updated_at=self.now)
        )
        self._move_position(order.instrument, fill.signed_size, price, fill_id)

    def cancel(self, rng: random.Random) -> None:
        candidates = self._live(OrderStatus.OPEN, OrderStatus.NEW, OrderStatus.UNTRIGGERED)
        if not candidates:
            return
        order = rng.choice(candidates)
        if order.status is OrderStatus.NEW and rng.random() < 0.5:
            status, reason = OrderStatus.REJECTED, "NOT_ENOUGH_MARGIN"
        else:
            status, reason = OrderStatus.CANCELED, "USER_CANCELED"
        self._set_order(attrs.evolve(order, status=status, cancel_reason=reason, updated_at=self._tick()))

    def modify(self, rng: random.Random) -> None:
        candidates = self._live(OrderStatus.OPEN)
        if not candidates:
            return
        order = rng.choice(candidates)
        self._set_order(attrs.evolve(order, price=Decimal(rng.randint(90, 110)), updated_at=self._tick()))

    def liquidate(self, rng: random.Random) -> None:
        instrument = rng.choice(INSTRUMENTS)
        current = self.positions.get(instrument)
        if current is None or current[0].size == 0:
            return
        self._tick()
        fill_id = self._new_id("l")
        size = abs(current[0].size)
        fill = Fill(
            key=FillKey(venue=VENUE, account=ACCOUNT, fill_type="LIQUIDATION", fill_id=fill_id),
            kind=FillKind.LIQUIDATION,
            order_id=None,
            instrument=instrument,
            side=Side.SELL if current[0].size > 0 else Side.BUY,
            price=Decimal(95),
            size=size,
            fee=Decimal(0),
            fee_currency="USDC",
            liquidity=Liquidity.TAKER,
            time=self.now,
            source=Source.REST,
        )
        self.fills[fill_id] = fill
        self.hints.append(attrs.evolve(fill, source=Source.WS))
        self._move_position(instrument, fill.signed_size, fill.price, fill_id)

    def bust(self, rng: random.Random) -> None:
        candidates = [f for fid, f in self.fills.items() if fid not in self.busts and f.kind is FillKind.TRADE]
        if not candidates:
            return
        fill = rng.choice(candidates)
        self._tick()
        bust = FillBust(venue=VENUE, account=ACCOUNT, fill_id=fill.key.fill_id, time=self.now, source=Source.REST)
        self.busts[fill.key.fill_id] = bust
        self.hints.append(attrs.evolve(bust, source=Source.WS))
        current = self.positions[fill.instrument][0]
        self._move_position(fill.instrument, -fill.signed_size, current.entry_price or fill.price, fill.key.fill_id)

    def snapshot(self, _rng: random.Random) -> None:
        self.snapshots.append((len(self.hints), self.open_orders_snapshot(), self.positions_snapshot()))

    def run(self, actions: list[int], rng: random.Random) -> None:
        table = (
            self.place,
            self.place,
            self.advance_lifecycle,
            self.fill,
            self.fill,
            self.cancel,
            self.modify,
            self.liquidate,
            self.bust,
            self.snapshot,
        )
        for action in actions:
            table[action % len(table)](rng)
