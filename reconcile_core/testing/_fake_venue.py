"""``FakeVenue``: a venue's truth in memory, driven explicitly or at random.

It keeps, per account, every version of every order, every fill, every bust
and every version of every position, with a venue clock in milliseconds that
only moves when told to (each action ticks it by 1 ms so versions are
distinct). Every change is also *published* as a stream hint (``Source.WS``
copies) to listeners such as :class:`~reconcile_core.testing.FaultySource`.
Venue-neutral: no venue's names or rules.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

import attrs

from reconcile_core._types import (
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
from reconcile_core.errors import UsageError
from reconcile_core.typing import Hint

__all__ = ["FakeVenue"]

_V = TypeVar("_V")

_FEE_RATE = Decimal("0.0005")

#: What :meth:`FakeVenue.step` picks from, with weights.
_ACTIONS = (
    ("place", 30),
    ("fill", 30),
    ("cancel", 10),
    ("modify", 8),
    ("reject", 4),
    ("trigger", 4),
    ("liquidate", 4),
    ("bust", 5),
    ("advance", 5),
)

Listener = Callable[[str, Hint], None]
ClockListener = Callable[[int], None]


@attrs.define(eq=False)
class _Book:
    orders: dict[str, list[Order]] = attrs.field(factory=dict)
    fills: list[Fill] = attrs.field(factory=list)
    busts: list[FillBust] = attrs.field(factory=list)
    busted: set[str] = attrs.field(factory=set)
    positions: dict[str, list[Position]] = attrs.field(factory=dict)


@attrs.define(eq=False)
class FakeVenue:
    """An in-memory venue: the truth that tests compare a session against.

    Deterministic for a ``seed``: the same calls produce the same history.
    Every action method takes ``account`` (default: the first of
    ``accounts``) so Hypothesis rules can drive it; :meth:`step` does one
    random action.
    """

    seed: int = 0
    name: str = "fake"
    accounts: tuple[str, ...] = ("main",)
    instruments: tuple[str, ...] = ("BTC-PERP", "ETH-PERP")
    start_time: int = 1_700_000_000_000
    rng: random.Random = attrs.field(init=False)
    _now: int = attrs.field(init=False)
    _books: dict[str, _Book] = attrs.field(init=False)
    _listeners: list[Listener] = attrs.field(init=False, factory=list)
    _clock_listeners: list[ClockListener] = attrs.field(init=False, factory=list)
    _order_seq: int = attrs.field(init=False, default=0)
    _fill_seq: int = attrs.field(init=False, default=0)
    _version_seq: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        if not self.accounts or not self.instruments:
            msg = "FakeVenue needs at least one account and one instrument"
            raise UsageError(msg)
        self.rng = random.Random(self.seed)
        self._now = self.start_time
        self._books = {account: _Book() for account in self.accounts}

    def __repr__(self) -> str:
        return f"<FakeVenue {self.name} now={self._now} accounts={list(self.accounts)}>"

    # -- clock and listeners -------------------------------------------------

    @property
    def now(self) -> int:
        """The venue clock, ms since the epoch."""
        return self._now

    def advance(self, ms: int) -> int:
        """Move the venue clock forward by ``ms``; returns the new time."""
        if ms < 0:
            msg = f"the venue clock only moves forward, got {ms} ms"
            raise UsageError(msg)
        self._now += ms
        for listener in list(self._clock_listeners):
            listener(self._now)
        return self._now

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(account, hint)`` for every published hint; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def on_clock(self, listener: ClockListener) -> Callable[[], None]:
        """Call ``listener(now)`` whenever the clock is advanced; returns an unsubscribe function."""
        self._clock_listeners.append(listener)
        return lambda: self._clock_listeners.remove(listener) if listener in self._clock_listeners else None

    def publish(self, account: str, hint: Hint) -> None:
        """Send ``hint`` to every listener, as if the venue pushed it on the stream."""
        for listener in list(self._listeners):
            listener(account, hint)

    # -- truth ---------------------------------------------------------------

    def _book(self, account: str | None) -> _Book:
        name = self.accounts[0] if account is None else account
        try:
            return self._books[name]
        except KeyError:
            msg = f"unknown account {name!r}; the venue has {list(self.accounts)}"
            raise UsageError(msg) from None

    def _account(self, account: str | None) -> str:
        return self.accounts[0] if account is None else account

    def orders(self, account: str | None = None) -> dict[str, Order]:
        """Every order's latest version (``Source.REST``), by id."""
        return {oid: versions[-1] for oid, versions in self._book(account).orders.items()}

    def order(self, order_id: str, account: str | None = None) -> Order | None:
        """One order's latest version, or ``None``."""
        versions = self._book(account).orders.get(order_id)
        return versions[-1] if versions else None

    def open_orders(self, account: str | None = None, *, as_of: int | None = None) -> tuple[Order, ...]:
        """The live orders as of ``as_of`` (default now), each in its version of that time."""
        out = []
        for versions in self._book(account).orders.values():
            version = _as_of(versions, as_of, lambda o: o.updated_at)
            if version is not None and version.is_live:
                out.append(version)
        return tuple(out)

    def order_history(self, account: str | None = None, *, since: int = 0) -> tuple[Order, ...]:
        """Latest versions of orders updated at or after ``since``."""
        return tuple(o for o in self.orders(account).values() if o.updated_at >= since)

    def fills(self, account: str | None = None) -> tuple[Fill, ...]:
        """Every fill (busted ones included), oldest first, as ``Source.REST``."""
        return tuple(self._book(account).fills)

    def busts(self, account: str | None = None) -> tuple[FillBust, ...]:
        """Every bust, oldest first."""
        return tuple(self._book(account).busts)

    def is_busted(self, fill_id: str, account: str | None = None) -> bool:
        """Whether this fill id was busted."""
        return fill_id in self._book(account).busted

    def live_fills(self, account: str | None = None) -> tuple[Fill, ...]:
        """Fills that were not busted."""
        book = self._book(account)
        return tuple(f for f in book.fills if f.key.fill_id not in book.busted)

    def positions(self, account: str | None = None, *, as_of: int | None = None) -> tuple[Position, ...]:
        """Every instrument ever traded, in its version as of ``as_of`` (default now); flat ones included."""
        out = []
        for versions in self._book(account).positions.values():
            version = _as_of(versions, as_of, lambda p: p.updated_at)
            if version is not None:
                out.append(version)
        return tuple(out)

    def position_sizes(self, account: str | None = None) -> dict[str, Decimal]:
        """Non-zero position sizes by instrument."""
        return {p.instrument: p.size for p in self.positions(account) if p.size != 0}

    # -- actions -------------------------------------------------------------

    def _tick(self) -> int:
        self._now += 1
        return self._now

    def _next_version(self) -> int:
        self._version_seq += 1
        return self._version_seq

    def _store_order(self, account: str, order: Order) -> Order:
        self._books[account].orders.setdefault(order.order_id, []).append(order)
        self.publish(account, attrs.evolve(order, source=Source.WS))
        return order

    def _live(self, order_id: str, account: str) -> Order:
        current = self.order(order_id, account)
        if current is None:
            msg = f"no order {order_id!r} in account {account!r}"
            raise UsageError(msg)
        if not current.is_live:
            msg = f"order {order_id!r} is {current.status.value}, not live"
            raise UsageError(msg)
        return current

    def place(
        self,
        account: str | None = None,
        *,
        instrument: str | None = None,
        side: Side | None = None,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        conditional: bool = False,
        rejected: bool = False,
    ) -> Order:
        """Place a limit order (``UNTRIGGERED`` when ``conditional``; ``REJECTED`` when ``rejected``)."""
        name = self._account(account)
        self._book(name)
        now = self._tick()
        self._order_seq += 1
        status = OrderStatus.REJECTED if rejected else OrderStatus.UNTRIGGERED if conditional else OrderStatus.OPEN
        order = Order(
            order_id=f"o{self._order_seq}",
            client_id=f"c{self._order_seq}",
            instrument=instrument if instrument is not None else self.rng.choice(self.instruments),
            side=side if side is not None else self.rng.choice((Side.BUY, Side.SELL)),
            type=OrderType.STOP_LIMIT if conditional else OrderType.LIMIT,
            price=price if price is not None else Decimal(self.rng.randint(90, 110)),
            quantity=quantity if quantity is not None else Decimal(self.rng.randint(1, 5)),
            filled_quantity=Decimal(0),
            average_fill_price=None,
            status=status,
            cancel_reason="REJECTED_BY_VENUE" if rejected else None,
            created_at=now,
            updated_at=now,
            sequence=self._next_version(),
            source=Source.REST,
        )
        return self._store_order(name, order)

    def reject(
        self,
        account: str | None = None,
        *,
        instrument: str | None = None,
        side: Side | None = None,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
    ) -> Order:
        """Place an order the venue rejects at once."""
        return self.place(account, instrument=instrument, side=side, quantity=quantity, price=price, rejected=True)

    def trigger(self, order_id: str, account: str | None = None) -> Order:
        """A conditional order's trigger fires: ``UNTRIGGERED`` -> ``OPEN``."""
        name = self._account(account)
        current = self._live(order_id, name)
        if current.status is not OrderStatus.UNTRIGGERED:
            msg = f"order {order_id!r} is {current.status.value}, not untriggered"
            raise UsageError(msg)
        now = self._tick()
        order = attrs.evolve(current, status=OrderStatus.OPEN, updated_at=now, sequence=self._next_version())
        return self._store_order(name, order)

    def modify(
        self,
        order_id: str,
        account: str | None = None,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> Order:
        """Change a live order's price and/or quantity (never below what is filled)."""
        name = self._account(account)
        current = self._live(order_id, name)
        now = self._tick()
        new_price = price if price is not None else Decimal(self.rng.randint(90, 110))
        new_quantity = quantity if quantity is not None else current.quantity
        if new_quantity <= current.filled_quantity:
            msg = f"order {order_id!r}: quantity {new_quantity} must exceed the filled {current.filled_quantity}"
            raise UsageError(msg)
        order = attrs.evolve(
            current, price=new_price, quantity=new_quantity, updated_at=now, sequence=self._next_version()
        )
        return self._store_order(name, order)

    def cancel(self, order_id: str, account: str | None = None) -> Order:
        """Cancel a live order."""
        name = self._account(account)
        current = self._live(order_id, name)
        now = self._tick()
        order = attrs.evolve(
            current,
            status=OrderStatus.CANCELED,
            cancel_reason="USER_CANCELED",
            updated_at=now,
            sequence=self._next_version(),
        )
        return self._store_order(name, order)

    def fill(self, order_id: str, quantity: Decimal | None = None, account: str | None = None) -> Fill:
        """Fill an open order, partly (random or ``quantity``) or fully."""
        name = self._account(account)
        current = self._live(order_id, name)
        if current.status is not OrderStatus.OPEN:
            msg = f"order {order_id!r} is {current.status.value}; only open orders fill"
            raise UsageError(msg)
        remaining = current.remaining_quantity
        size = quantity if quantity is not None else Decimal(self.rng.randint(1, int(remaining)))
        if not 0 < size <= remaining:
            msg = f"order {order_id!r}: fill size {size} must be in (0, {remaining}]"
            raise UsageError(msg)
        now = self._tick()
        price = current.price if current.price is not None else Decimal(100)
        filled = current.filled_quantity + size
        order = attrs.evolve(
            current,
            filled_quantity=filled,
            average_fill_price=price,
            status=OrderStatus.FILLED if filled == current.quantity else OrderStatus.OPEN,
            updated_at=now,
            sequence=self._next_version(),
        )
        fill = self._new_fill(
            name,
            kind=FillKind.TRADE,
            fill_type="FILL",
            order=current,
            instrument=current.instrument,
            side=current.side,
            price=price,
            size=size,
        )
        self._store_order(name, order)
        self._record_fill(name, fill)
        return fill

    def liquidate(self, instrument: str | None = None, account: str | None = None) -> Fill | None:
        """The liquidation engine closes part of a non-flat position (``None`` if all are flat)."""
        name = self._account(account)
        open_positions = [p for p in self.positions(name) if p.size != 0]
        if instrument is not None:
            open_positions = [p for p in open_positions if p.instrument == instrument]
        if not open_positions:
            return None
        position = self.rng.choice(open_positions)
        size = Decimal(self.rng.randint(1, max(1, int(abs(position.size)))))
        size = min(size, abs(position.size))
        self._tick()
        fill = self._new_fill(
            name,
            kind=FillKind.LIQUIDATION,
            fill_type="LIQUIDATION",
            order=None,
            instrument=position.instrument,
            side=Side.SELL if position.size > 0 else Side.BUY,
            price=Decimal(self.rng.randint(90, 110)),
            size=size,
        )
        self._record_fill(name, fill)
        return fill

    def bust(self, fill_id: str, account: str | None = None) -> FillBust:
        """Revert a fill: a tombstone, and the position moves back."""
        name = self._account(account)
        book = self._book(name)
        if fill_id in book.busted:
            msg = f"fill {fill_id!r} is already busted"
            raise UsageError(msg)
        fill = next((f for f in book.fills if f.key.fill_id == fill_id), None)
        if fill is None:
            msg = f"no fill {fill_id!r} in account {name!r}"
            raise UsageError(msg)
        now = self._tick()
        bust = FillBust(venue=self.name, account=name, fill_id=fill_id, time=now, source=Source.REST)
        book.busts.append(bust)
        book.busted.add(fill_id)
        self.publish(name, attrs.evolve(bust, source=Source.WS))
        self._move_position(name, fill, sign=-1, last_fill_id=None)
        return bust

    def step(self, account: str | None = None) -> str:
        """Do one random, feasible action; returns its name."""
        name = self._account(account) if account is not None else self.rng.choice(self.accounts)
        book = self._books[name]
        live = [versions[-1] for versions in book.orders.values() if versions[-1].is_live]
        open_orders = [o for o in live if o.status is OrderStatus.OPEN]
        untriggered = [o for o in live if o.status is OrderStatus.UNTRIGGERED]
        unbusted = [f for f in book.fills[-20:] if f.key.fill_id not in book.busted]
        feasible = {
            "place": True,
            "fill": bool(open_orders),
            "cancel": bool(live),
            "modify": bool(live),
            "reject": True,
            "trigger": bool(untriggered),
            "liquidate": any(p[-1].size != 0 for p in book.positions.values()),
            "bust": bool(unbusted),
            "advance": True,
        }
        choices = [(action, weight) for action, weight in _ACTIONS if feasible[action]]
        action = self.rng.choices([a for a, _ in choices], weights=[w for _, w in choices])[0]
        if action == "place":
            self.place(name, conditional=self.rng.random() < 0.15)
        elif action == "fill":
            self.fill(self.rng.choice(open_orders).order_id, account=name)
        elif action == "cancel":
            self.cancel(self.rng.choice(live).order_id, account=name)
        elif action == "modify":
            order = self.rng.choice(live)
            self.modify(order.order_id, name, quantity=order.quantity + 1)
        elif action == "reject":
            self.reject(name)
        elif action == "trigger":
            self.trigger(self.rng.choice(untriggered).order_id, account=name)
        elif action == "liquidate":
            self.liquidate(account=name)
        elif action == "bust":
            self.bust(self.rng.choice(unbusted).key.fill_id, account=name)
        else:
            self.advance(self.rng.randint(1, 50))
        return action

    # -- internals -----------------------------------------------------------

    def _new_fill(
        self,
        account: str,
        *,
        kind: FillKind,
        fill_type: str,
        order: Order | None,
        instrument: str,
        side: Side,
        price: Decimal,
        size: Decimal,
    ) -> Fill:
        self._fill_seq += 1
        return Fill(
            key=FillKey(venue=self.name, account=account, fill_type=fill_type, fill_id=f"f{self._fill_seq}"),
            kind=kind,
            order_id=order.order_id if order is not None else None,
            instrument=instrument,
            side=side,
            price=price,
            size=size,
            fee=price * size * _FEE_RATE,
            fee_currency="USD",
            liquidity=Liquidity.TAKER if kind is FillKind.LIQUIDATION else Liquidity.MAKER,
            time=self._now,
            source=Source.REST,
            client_id=order.client_id if order is not None else None,
        )

    def _record_fill(self, account: str, fill: Fill) -> None:
        self._books[account].fills.append(fill)
        self.publish(account, attrs.evolve(fill, source=Source.WS))
        self._move_position(account, fill, sign=1, last_fill_id=fill.key.fill_id)

    def _move_position(self, account: str, fill: Fill, *, sign: int, last_fill_id: str | None) -> None:
        versions = self._books[account].positions.setdefault(fill.instrument, [])
        previous = versions[-1] if versions else None
        size = (previous.size if previous is not None else Decimal(0)) + sign * fill.signed_size
        position = Position(
            instrument=fill.instrument,
            size=size,
            entry_price=None if size == 0 else fill.price,
            last_fill_id=last_fill_id if last_fill_id is not None else (previous.last_fill_id if previous else None),
            updated_at=self._now,
            sequence=self._next_version(),
            source=Source.REST,
        )
        versions.append(position)
        self.publish(account, attrs.evolve(position, source=Source.WS))


def _as_of(versions: list[_V], as_of: int | None, time_of: Callable[[_V], int]) -> _V | None:
    if as_of is None:
        return versions[-1] if versions else None
    found = None
    for version in versions:
        if time_of(version) <= as_of:
            found = version
        else:
            break
    return found
