"""The venue's ground truth: accounts, orders, fills, busts, positions.

Everything here runs under one re-entrant threading lock (``Venue.lock``):
the activity generator mutates the truth on the test's event loop while a
loopback server may read it from its own thread. Records are immutable, so
readers copy references under the lock and render JSON outside it.

Rules the venue keeps (each one is checked by the test suite):

* ``last_updated_at`` strictly increases for every version of an order, a
  position and an account summary (the clock is bumped by >= 1 ms when
  needed). Fills of one sweep share one millisecond.
* An order's fills sum to ``size - remaining_size``; a trade bust does not
  change the order.
* A position's size is the signed sum of its market's unbusted fills.
* REST and WebSocket ``seq_no`` come from two independent series; the WS
  series is skewed by :data:`WS_SEQ_SKEW_MS` so that comparing numbers across
  the two sources gives wrong answers, as on the real venue.
* Fills reach WebSocket feeds at once and REST from ``settled_at`` on.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import attrs

from reconcile_core.errors import UsageError

from . import _wire
from ._clock import IdFactory, VirtualClock
from ._markets import MarketSpec
from ._positions import PositionState, apply_fill, quantize
from ._truth import (
    LIVE_STATUSES,
    AccountSummaryTruth,
    AccountTruth,
    BustTruth,
    FillTruth,
    ModifyRequest,
    OrderTruth,
    PositionTruth,
)

__all__ = ["FILL_TYPES", "STOP_TYPES", "WS_SEQ_SKEW_MS", "Feed", "Venue"]

ZERO = Decimal(0)
INITIAL_COLLATERAL = Decimal(100_000)
TAKER_FEE = Decimal("0.0003")
MAKER_FEE = Decimal("0.0001")
LIQUIDATION_FEE = Decimal("0.0005")
INITIAL_MARGIN_FRACTION = Decimal("0.02")

#: WS seq_no values are this much "older" than REST ones minted at the same time.
WS_SEQ_SKEW_MS = 1_000

STOP_TYPES = frozenset(
    {"STOP_LIMIT", "STOP_MARKET", "TAKE_PROFIT_LIMIT", "TAKE_PROFIT_MARKET", "STOP_LOSS_MARKET", "STOP_LOSS_LIMIT"}
)
ORDER_TYPES = frozenset({"MARKET", "LIMIT"}) | STOP_TYPES
#: Fill types that belong to an order.
ORDER_FILL_TYPES = frozenset({"FILL", "RPI"})
#: Fill types the venue makes without an order of the account.
ORDERLESS_FILL_TYPES = frozenset({"LIQUIDATION", "UNWIND_TRANSFER", "SETTLE_MARKET", "BLOCK_TRADE"})
FILL_TYPES = ORDER_FILL_TYPES | ORDERLESS_FILL_TYPES

JSON = dict[str, Any]


def _channels(kind: str, market: str | None) -> tuple[str, ...]:
    if kind in ("orders", "fills"):
        return (f"{kind}.ALL", f"{kind}.{market}")
    return (kind,)


class Feed:
    """What one WebSocket connection receives of one account's events.

    The venue appends under its lock; the connection drains under the same
    lock and is woken through the callable it registered. At
    :attr:`CAPACITY` undelivered messages the feed stops queueing and marks
    itself overflowed: Paradex drops clients that fall 2000 messages behind.
    """

    CAPACITY = 2000

    def __init__(self, account: str) -> None:
        self.account = account
        self.channels: set[str] = set()
        self.overflowed = False
        self._queue: deque[tuple[str, JSON]] = deque()
        self._waker: Callable[[], None] | None = None

    def offer(self, kind: str, market: str | None, data: JSON) -> bool:
        """Queue ``data`` on every subscribed channel it belongs to (venue lock held)."""
        queued = False
        for channel in _channels(kind, market):
            if channel not in self.channels:
                continue
            if len(self._queue) >= self.CAPACITY:
                self.overflowed = True
                return True
            self._queue.append((channel, data))
            queued = True
        return queued

    def set_waker(self, waker: Callable[[], None] | None) -> None:
        self._waker = waker

    def drain(self) -> list[tuple[str, JSON]]:
        items = list(self._queue)
        self._queue.clear()
        return items

    def wake(self) -> None:
        waker = self._waker
        if waker is not None:
            waker()


@attrs.define
class _Order:
    versions: list[OrderTruth]
    fill_ids: list[str] = attrs.Factory(list)
    filled: Decimal = ZERO
    notional: Decimal = ZERO

    @property
    def current(self) -> OrderTruth:
        return self.versions[-1]


@attrs.define
class _Position:
    state: PositionState
    versions: list[PositionTruth] = attrs.Factory(list)
    fills: list[FillTruth] = attrs.Factory(list)


@attrs.define
class _Account:
    address: str
    summaries: list[AccountSummaryTruth]
    orders: list[_Order] = attrs.Factory(list)
    live: dict[str, _Order] = attrs.Factory(dict)
    #: (closed_at, order) of orders closed within the history window.
    recently_closed: deque[tuple[int, _Order]] = attrs.Factory(deque)
    by_client_id: dict[str, list[_Order]] = attrs.Factory(dict)
    fills: list[FillTruth] = attrs.Factory(list)
    fill_by_id: dict[str, FillTruth] = attrs.Factory(dict)
    busts: list[BustTruth] = attrs.Factory(list)
    busted: set[str] = attrs.Factory(set)
    positions: dict[str, _Position] = attrs.Factory(dict)
    collateral: Decimal = INITIAL_COLLATERAL
    feeds: list[Feed] = attrs.Factory(list)


def _version_at(versions: Sequence[Any], as_of: int, *, key: str = "last_updated_at") -> Any:
    """The newest version whose time is <= ``as_of``, or None."""
    for version in reversed(versions):
        if getattr(version, key) <= as_of:
            return version
    return None


class Venue:
    """The simulated exchange's state. Thread-safe through :attr:`lock`."""

    def __init__(
        self,
        *,
        accounts: Sequence[str],
        markets: Sequence[MarketSpec],
        clock: VirtualClock,
        settlement_delay: Callable[[], int],
        history_window_ms: int = 60_000,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.markets: dict[str, MarketSpec] = {m.symbol: m for m in markets}
        self.marks: dict[str, Decimal] = {m.symbol: m.initial_price for m in markets}
        self.opened_at = clock.now
        self.history_window_ms = history_window_ms
        self._settlement_delay = settlement_delay
        self._ids = IdFactory()
        self._rest_counter = 0
        self._ws_counter = 0
        self._sequence = 0
        self._orderbook_seq = 0
        self._depth = 0
        self._touched: dict[int, Feed] = {}
        self._orders: dict[str, _Order] = {}
        self._accounts: dict[str, _Account] = {}
        for address in accounts:
            self._accounts[address] = _Account(address, [self._summary(address, INITIAL_COLLATERAL, ())])

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock; wake the WebSocket feeds touched once the outermost block ends."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                touched: list[Feed] = []
                if self._depth == 0:
                    touched = list(self._touched.values())
                    self._touched.clear()
        for feed in touched:
            feed.wake()

    def _rest_seq(self, now: int) -> int:
        self._rest_counter += 1
        return now * 1_000_000 + self._rest_counter % 1_000_000

    def ws_seq(self, now: int) -> int:
        self._ws_counter += 1
        return (now - WS_SEQ_SKEW_MS) * 1_000_000 + self._ws_counter % 1_000_000

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _emit(self, account: _Account, kind: str, market: str | None, render: Callable[[int, int], JSON]) -> None:
        if not account.feeds:
            return
        now = self.clock.now
        data = render(self.ws_seq(now), now)
        for feed in account.feeds:
            if feed.offer(kind, market, data):
                self._touched[id(feed)] = feed

    def _account(self, address: str) -> _Account:
        try:
            return self._accounts[address]
        except KeyError:
            raise UsageError(f"unknown account {address!r}; the simulator has {sorted(self._accounts)}") from None

    def _order(self, order_id: str) -> _Order:
        try:
            return self._orders[order_id]
        except KeyError:
            raise UsageError(f"unknown order id {order_id!r}") from None

    def _market(self, symbol: str) -> MarketSpec:
        try:
            return self.markets[symbol]
        except KeyError:
            raise UsageError(f"unknown market {symbol!r}; the simulator has {sorted(self.markets)}") from None

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(self._accounts)

    # ------------------------------------------------------------------ feeds

    def attach(self, feed: Feed) -> None:
        with self.lock:
            self._account(feed.account).feeds.append(feed)

    def detach(self, feed: Feed) -> None:
        with self.lock:
            account = self._accounts.get(feed.account)
            if account is not None and feed in account.feeds:
                account.feeds.remove(feed)
            self._touched.pop(id(feed), None)
            feed.set_waker(None)

    # ------------------------------------------------------------------ orders

    def _new_version(self, order: _Order, account: _Account, **changes: Any) -> OrderTruth:
        now = self.clock.at_least(order.current.last_updated_at + 1)
        version = attrs.evolve(order.current, last_updated_at=now, seq_no=self._rest_seq(now), **changes)
        self._store_version(order, account, version)
        return version

    def _store_version(self, order: _Order, account: _Account, version: OrderTruth) -> None:
        order.versions.append(version)
        horizon = version.last_updated_at - self.history_window_ms
        while len(order.versions) > 2 and order.versions[1].last_updated_at <= horizon:
            del order.versions[0]
        if not version.is_live and version.id in account.live:
            del account.live[version.id]
            account.recently_closed.append((version.last_updated_at, order))
            while account.recently_closed and account.recently_closed[0][0] <= horizon:
                account.recently_closed.popleft()
        self._emit(
            account,
            "orders",
            version.market,
            lambda seq, now: _wire.order_json(version, seq_no=seq, published_at=now),
        )

    def place_order(
        self,
        account: str,
        *,
        market: str,
        side: str,
        size: Decimal,
        price: Decimal = ZERO,
        order_type: str = "LIMIT",
        instruction: str = "GTC",
        client_id: str = "",
        trigger_price: Decimal = ZERO,
        flags: Sequence[str] = (),
        stp: str = "EXPIRE_TAKER",
    ) -> OrderTruth:
        """A new order: ``UNTRIGGERED`` for stop/take-profit types, else ``NEW``."""
        with self.transaction():
            acct = self._account(account)
            self._market(market)
            if side not in ("BUY", "SELL"):
                raise UsageError(f"side must be 'BUY' or 'SELL', got {side!r}")
            if order_type not in ORDER_TYPES:
                raise UsageError(f"unknown order type {order_type!r}")
            if size <= 0:
                raise UsageError(f"size must be > 0, got {size}")
            if client_id and any(o.current.is_live for o in acct.by_client_id.get(client_id, ())):
                raise UsageError(f"client id {client_id!r} is in use by a live order (DUPLICATED_CLIENT_ID)")
            now = self.clock.now
            version = OrderTruth(
                id=self._ids.next(now),
                account=account,
                market=market,
                client_id=client_id,
                side=side,
                type=order_type,
                instruction=instruction,
                status="UNTRIGGERED" if order_type in STOP_TYPES else "NEW",
                size=size,
                remaining_size=size,
                price=ZERO if order_type.endswith("MARKET") else price,
                trigger_price=trigger_price,
                avg_fill_price=None,
                cancel_reason="",
                flags=tuple(flags),
                stp=stp,
                created_at=now,
                last_updated_at=now,
                timestamp=max(now - 3, 0),
                received_at=now,
                seq_no=self._rest_seq(now),
                sequence=self._next_sequence(),
            )
            order = _Order([])
            self._orders[version.id] = order
            acct.orders.append(order)
            acct.live[version.id] = order
            if client_id:
                acct.by_client_id.setdefault(client_id, []).append(order)
            self._store_version(order, acct, version)
            return version

    def _require(self, order_id: str, statuses: frozenset[str], action: str) -> tuple[_Order, _Account]:
        order = self._order(order_id)
        if order.current.status not in statuses:
            raise UsageError(f"cannot {action} order {order_id}: its status is {order.current.status}")
        return order, self._accounts[order.current.account]

    def accept_order(self, order_id: str) -> OrderTruth:
        """NEW -> OPEN: the order passed risk checks and rests on the book."""
        with self.transaction():
            order, acct = self._require(order_id, frozenset({"NEW"}), "accept")
            return self._new_version(order, acct, status="OPEN")

    def trigger_order(self, order_id: str) -> OrderTruth:
        """UNTRIGGERED -> OPEN: the stop condition was met."""
        with self.transaction():
            order, acct = self._require(order_id, frozenset({"UNTRIGGERED"}), "trigger")
            return self._new_version(order, acct, status="OPEN")

    def reject_order(self, order_id: str, reason: str = "NOT_ENOUGH_MARGIN") -> OrderTruth:
        """NEW -> CLOSED with ``reason``, nothing filled."""
        with self.transaction():
            order, acct = self._require(order_id, frozenset({"NEW"}), "reject")
            return self._new_version(order, acct, status="CLOSED", cancel_reason=reason)

    def cancel_order(self, order_id: str, reason: str = "USER_CANCELED") -> OrderTruth:
        """A live order -> CLOSED with ``reason``; what was filled stays filled."""
        with self.transaction():
            order, acct = self._require(order_id, LIVE_STATUSES, "cancel")
            return self._new_version(order, acct, status="CLOSED", cancel_reason=reason)

    def modify_order(self, order_id: str, *, price: Decimal | None = None, size: Decimal | None = None) -> OrderTruth:
        """Change price and/or size of an OPEN order; the id is kept."""
        with self.transaction():
            order, acct = self._require(order_id, frozenset({"OPEN"}), "modify")
            current = order.current
            new_size = current.size if size is None else size
            if new_size <= current.filled:
                raise UsageError(f"new size {new_size} of order {order_id} must exceed its filled {current.filled}")
            request = ModifyRequest(id=self._ids.next(self.clock.now, suffix=9))
            return self._new_version(
                order,
                acct,
                price=current.price if price is None else price,
                size=new_size,
                remaining_size=new_size - current.filled,
                request_info=request,
            )

    def replace_order(
        self, order_id: str, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> tuple[OrderTruth, OrderTruth]:
        """Modify as cancel-and-replace: the old id closes, a new order takes its place."""
        with self.transaction():
            order, acct = self._require(order_id, frozenset({"OPEN"}), "replace")
            current = order.current
            replacement = self.place_order(
                current.account,
                market=current.market,
                side=current.side,
                size=current.remaining_size if size is None else size,
                price=current.price if price is None else price,
                order_type=current.type,
                instruction=current.instruction,
                client_id="",
                flags=current.flags,
                stp=current.stp,
            )
            closed = self._new_version(
                order, acct, status="CLOSED", cancel_reason="USER_CANCELED", replaced_by=replacement.id
            )
            return closed, replacement

    # ------------------------------------------------------------------ fills

    def _position(self, acct: _Account, market: str) -> _Position:
        position = acct.positions.get(market)
        if position is None:
            position = acct.positions[market] = _Position(PositionState())
        return position

    def _fill_time(self, acct: _Account, market: str, order: _Order | None) -> int:
        floor = acct.summaries[-1].updated_at
        position = acct.positions.get(market)
        if position is not None and position.versions:
            floor = max(floor, position.versions[-1].last_updated_at)
        if order is not None:
            floor = max(floor, order.current.last_updated_at)
        return self.clock.at_least(floor + 1)

    def _make_fill(
        self,
        acct: _Account,
        *,
        market: str,
        side: str,
        size: Decimal,
        price: Decimal,
        fill_type: str,
        liquidity: str,
        order: OrderTruth | None,
        remaining: Decimal,
        now: int,
    ) -> FillTruth:
        position = self._position(acct, market)
        fill_id = self._ids.next(now, suffix=2)
        signed = size if side == "BUY" else -size
        realized = apply_fill(position.state, signed_size=signed, price=price, fill_id=fill_id, at=now)
        rate = {"MAKER": MAKER_FEE}.get(liquidity, TAKER_FEE)
        if fill_type == "LIQUIDATION":
            rate = LIQUIDATION_FEE
        elif fill_type in ("UNWIND_TRANSFER", "SETTLE_MARKET"):
            rate = ZERO
        flags: tuple[str, ...] = ()
        if fill_type == "RPI":
            flags = ("rpi",)
        elif order is not None and "INTERACTIVE" in order.flags:
            flags = ("interactive",)
        orderbook_seq = 0
        if fill_type in ORDER_FILL_TYPES:
            self._orderbook_seq += 1
            orderbook_seq = self._orderbook_seq
        fill = FillTruth(
            id=fill_id,
            account=acct.address,
            market=market,
            order_id="" if order is None else order.id,
            client_id="" if order is None else order.client_id,
            fill_type=fill_type,
            side=side,
            liquidity=liquidity,
            price=price,
            size=size,
            remaining_size=remaining,
            fee=quantize(price * size * rate),
            realized_pnl=realized,
            underlying_price=self.marks[market],
            flags=flags,
            orderbook_seq_no=orderbook_seq,
            created_at=now,
            settled_at=now + max(self._settlement_delay(), 0),
            sequence=self._next_sequence(),
        )
        acct.fills.append(fill)
        acct.fill_by_id[fill.id] = fill
        position.fills.append(fill)
        acct.collateral += fill.realized_pnl - fill.fee
        self._emit(acct, "fills", market, lambda _seq, _now: _wire.fill_json(fill))
        return fill

    def fill_order(
        self,
        order_id: str,
        parts: Sequence[tuple[Decimal, Decimal]],
        *,
        liquidity: str = "MAKER",
        fill_type: str = "FILL",
        close_remainder: str | None = None,
    ) -> list[FillTruth]:
        """Fill an order with ``(price, size)`` parts, all in one millisecond (a sweep).

        Sizes are capped at what remains. The order then gets one new
        version: CLOSED when nothing remains, or when ``close_remainder``
        gives a cancel reason for the rest (IOC, market orders).
        """
        if fill_type not in ORDER_FILL_TYPES:
            raise UsageError(f"an order's fill type must be one of {sorted(ORDER_FILL_TYPES)}, got {fill_type!r}")
        with self.transaction():
            order, acct = self._require(order_id, frozenset({"NEW", "OPEN"}), "fill")
            current = order.current
            now = self._fill_time(acct, current.market, order)
            remaining = current.remaining_size
            fills = []
            for price, size in parts:
                take = min(size, remaining)
                if take <= 0:
                    break
                remaining -= take
                fill = self._make_fill(
                    acct,
                    market=current.market,
                    side=current.side,
                    size=take,
                    price=price,
                    fill_type=fill_type,
                    liquidity=liquidity,
                    order=current,
                    remaining=remaining,
                    now=now,
                )
                fills.append(fill)
                order.fill_ids.append(fill.id)
                order.filled += take
                order.notional += price * take
            if not fills:
                raise UsageError(f"fill of order {order_id} had nothing to fill")
            status, reason = "OPEN", ""
            if remaining == 0:
                status = "CLOSED"
            elif close_remainder:
                status, reason = "CLOSED", close_remainder
            self._new_version(
                order,
                acct,
                status=status,
                cancel_reason=reason,
                remaining_size=remaining,
                avg_fill_price=quantize(order.notional / order.filled),
            )
            self._position_changed(acct, current.market)
            self._summary_changed(acct)
            return fills

    def orderless_fill(
        self,
        account: str,
        *,
        market: str,
        fill_type: str,
        side: str,
        size: Decimal,
        price: Decimal,
        liquidity: str = "TAKER",
    ) -> FillTruth:
        """A fill that no order of the account made: liquidation, transfer, settlement, block trade."""
        if fill_type not in ORDERLESS_FILL_TYPES:
            raise UsageError(f"an orderless fill type must be one of {sorted(ORDERLESS_FILL_TYPES)}, got {fill_type!r}")
        with self.transaction():
            acct = self._account(account)
            self._market(market)
            now = self._fill_time(acct, market, None)
            fill = self._make_fill(
                acct,
                market=market,
                side=side,
                size=size,
                price=price,
                fill_type=fill_type,
                liquidity=liquidity,
                order=None,
                remaining=ZERO,
                now=now,
            )
            self._position_changed(acct, market)
            self._summary_changed(acct)
            return fill

    def bust_fill(self, account: str, fill_id: str) -> BustTruth:
        """Revert a fill: the position and collateral drop it; its order does not change."""
        with self.transaction():
            acct = self._account(account)
            fill = acct.fill_by_id.get(fill_id)
            if fill is None:
                raise UsageError(f"account {account} has no fill {fill_id!r}")
            if fill_id in acct.busted:
                raise UsageError(f"fill {fill_id} is already busted")
            now = self._fill_time(acct, fill.market, None)
            bust = BustTruth(account=account, fill_id=fill_id, created_at=now, sequence=self._next_sequence())
            acct.busts.append(bust)
            acct.busted.add(fill_id)
            acct.collateral -= fill.realized_pnl - fill.fee
            self._emit(acct, "tradebusts", None, lambda _seq, _now: _wire.bust_json(bust))
            position = acct.positions[fill.market]
            state = PositionState()
            for kept in position.fills:
                if kept.id not in acct.busted:
                    apply_fill(
                        state, signed_size=kept.signed_size, price=kept.price, fill_id=kept.id, at=kept.created_at
                    )
            position.state = state
            self._position_changed(acct, fill.market)
            self._summary_changed(acct)
            return bust

    # ------------------------------------------------------------------ positions and account

    def _position_changed(self, acct: _Account, market: str) -> None:
        position = acct.positions[market]
        state = position.state
        now = self.clock.now
        previous = position.versions[-1] if position.versions else None
        size = state.size
        if previous is not None:
            side = previous.side if size == 0 else ("LONG" if size > 0 else "SHORT")
        else:
            side = "SHORT" if size < 0 else "LONG"
        version = PositionTruth(
            id=f"{acct.address}-{market}",
            account=acct.address,
            market=market,
            status="OPEN" if size != 0 else "CLOSED",
            side=side,
            size=size,
            average_entry_price=state.average_entry_price if size != 0 else ZERO,
            average_exit_price=state.average_exit_price,
            realized_positional_pnl=state.realized,
            unrealized_pnl=quantize((self.marks[market] - state.average_entry_price) * size),
            last_fill_id=state.last_fill_id,
            created_at=state.opened_at,
            last_updated_at=now,
            closed_at=state.closed_at if size == 0 else 0,
            seq_no=self._rest_seq(now),
        )
        position.versions.append(version)
        horizon = now - self.history_window_ms
        while len(position.versions) > 2 and position.versions[1].last_updated_at <= horizon:
            del position.versions[0]
        self._emit(acct, "positions", None, lambda seq, _now: _wire.position_json(version, seq_no=seq))

    def _summary(self, address: str, collateral: Decimal, positions: Sequence[_Position]) -> AccountSummaryTruth:
        now = self.clock.now
        unrealized = ZERO
        margin = ZERO
        for position in positions:
            latest = position.versions[-1] if position.versions else None
            if latest is None or latest.size == 0:
                continue
            unrealized += latest.unrealized_pnl
            margin += abs(latest.size) * self.marks[latest.market] * INITIAL_MARGIN_FRACTION
        value = collateral + unrealized
        margin = quantize(margin)
        return AccountSummaryTruth(
            account=address,
            account_value=value,
            total_collateral=collateral,
            free_collateral=value - margin,
            initial_margin_requirement=margin,
            maintenance_margin_requirement=quantize(margin / 2),
            status="ACTIVE",
            updated_at=now,
            seq_no=self._rest_seq(now),
        )

    def _summary_changed(self, acct: _Account) -> None:
        summary = self._summary(acct.address, acct.collateral, list(acct.positions.values()))
        acct.summaries.append(summary)
        horizon = summary.updated_at - self.history_window_ms
        while len(acct.summaries) > 2 and acct.summaries[1].updated_at <= horizon:
            del acct.summaries[0]
        self._emit(acct, "account", None, lambda seq, _now: _wire.account_json(summary, seq_no=seq))

    def set_mark(self, market: str, price: Decimal) -> None:
        with self.transaction():
            self.marks[self._market(market).symbol] = price

    # ------------------------------------------------------------------ reads (REST, as of a time)

    def order(self, account: str, order_id: str, *, as_of: int) -> OrderTruth | None:
        with self.lock:
            order = self._orders.get(order_id)
            if order is None or order.current.account != account:
                return None
            version: OrderTruth | None = _version_at(order.versions, as_of)
            return version

    def order_by_client_id(self, account: str, client_id: str, *, as_of: int) -> OrderTruth | None:
        """The live order with this client id, else the newest one."""
        with self.lock:
            candidates = self._account(account).by_client_id.get(client_id, [])
            versions: list[OrderTruth] = [v for o in candidates if (v := _version_at(o.versions, as_of)) is not None]
            live = [v for v in versions if v.is_live]
            if live:
                return live[-1]
            return versions[-1] if versions else None

    def open_orders(self, account: str, *, as_of: int, market: str | None = None) -> list[OrderTruth]:
        with self.lock:
            acct = self._account(account)
            candidates = list(acct.live.values()) + [o for closed_at, o in acct.recently_closed if closed_at > as_of]
            result: list[OrderTruth] = []
            for order in candidates:
                version = _version_at(order.versions, as_of)
                if version is not None and version.is_live and (market is None or version.market == market):
                    result.append(version)
            result.sort(key=lambda v: v.sequence)
            return result

    def positions(self, account: str, *, as_of: int) -> list[PositionTruth]:
        with self.lock:
            acct = self._account(account)
            result = []
            for position in acct.positions.values():
                version = _version_at(position.versions, as_of)
                if version is not None:
                    result.append(version)
            return result

    def summary(self, account: str, *, as_of: int) -> AccountSummaryTruth:
        with self.lock:
            acct = self._account(account)
            version: AccountSummaryTruth | None = _version_at(acct.summaries, as_of, key="updated_at")
            return acct.summaries[0] if version is None else version

    def scan(
        self,
        kind: str,
        account: str,
        *,
        as_of: int,
        below: int | None,
        above: int | None,
        limit: int,
        start_at: int | None = None,
        end_at: int | None = None,
        market: str | None = None,
        accept: Callable[[Any], bool] | None = None,
    ) -> tuple[list[Any], bool]:
        """Up to ``limit`` visible records of one list, newest first, by ``sequence``.

        ``below``/``above`` bound the sequence (exclusive) and pick the
        direction: ``above`` scans upwards from it (the records are still
        returned newest first). ``start_at``/``end_at`` bound ``created_at``
        (inclusive). Returns the records and whether more visible records
        lie beyond them.
        """
        with self.lock:
            acct = self._account(account)
            entries: Sequence[Any]
            if kind == "fills":
                entries = acct.fills

                def pick(entry: Any) -> Any:
                    fill: FillTruth = entry
                    return fill if fill.settled_at <= as_of else None
            elif kind == "busts":
                entries = acct.busts

                def pick(entry: Any) -> Any:
                    bust: BustTruth = entry
                    return bust if bust.created_at <= as_of else None
            elif kind == "orders":
                entries = acct.orders

                def pick(entry: Any) -> Any:
                    order: _Order = entry
                    return _version_at(order.versions, as_of)
            else:  # pragma: no cover - programming error
                raise ValueError(kind)

            def sequence_of(entry: Any) -> int:
                value: int = entry.versions[0].sequence if kind == "orders" else entry.sequence
                return value

            found: list[Any] = []
            more = False
            if above is None:
                start = len(entries) if below is None else bisect.bisect_left(entries, below, key=sequence_of)
                indices: Iterator[int] = iter(range(start - 1, -1, -1))
            else:
                start = bisect.bisect_right(entries, above, key=sequence_of)
                indices = iter(range(start, len(entries)))
            for index in indices:
                record = pick(entries[index])
                if record is None:
                    continue
                created_at: int = record.created_at
                if start_at is not None and created_at < start_at:
                    if above is None:
                        break
                    continue
                if end_at is not None and created_at > end_at:
                    if above is not None:
                        break
                    continue
                if market is not None and getattr(record, "market", market) != market:
                    continue
                if accept is not None and not accept(record):
                    continue
                if len(found) == limit:
                    more = True
                    break
                found.append(record)
            if above is not None:
                found.reverse()
            return found, more

    # ------------------------------------------------------------------ inspection

    def truth(self, account: str) -> AccountTruth:
        with self.lock:
            acct = self._account(account)
            return AccountTruth(
                account=account,
                now=self.clock.now,
                orders={o.current.id: o.current for o in acct.orders},
                fills=tuple(f for f in acct.fills if f.id not in acct.busted),
                busted_fills=tuple(f for f in acct.fills if f.id in acct.busted),
                busts=tuple(acct.busts),
                positions={m: p.versions[-1] for m, p in acct.positions.items() if p.versions},
                summary=acct.summaries[-1],
            )

    def live_orders(self, account: str) -> list[OrderTruth]:
        with self.lock:
            return [o.current for o in self._account(account).live.values()]

    def order_fills(self, order_id: str) -> list[FillTruth]:
        with self.lock:
            order = self._order(order_id)
            acct = self._accounts[order.current.account]
            return [acct.fill_by_id[f] for f in order.fill_ids]

    def recent_fills(self, account: str, *, since: int) -> list[FillTruth]:
        """Unbusted fills created at or after ``since``."""
        with self.lock:
            acct = self._account(account)
            result = []
            for fill in reversed(acct.fills):
                if fill.created_at < since:
                    break
                if fill.id not in acct.busted:
                    result.append(fill)
            result.reverse()
            return result

    def position_size(self, account: str, market: str) -> Decimal:
        with self.lock:
            position = self._account(account).positions.get(market)
            return ZERO if position is None else position.state.size

    def fill_count(self) -> int:
        with self.lock:
            return sum(len(a.fills) for a in self._accounts.values())
