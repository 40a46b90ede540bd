"""The demo's consumer and its verification against the simulator's truth.

:class:`DemoConsumer` reads one session's events the way an application
would, and counts what it was given. :func:`verify_account` compares the
session's final orders and positions, the ledger and those counts with what
the simulated venue knows, and says in words what does not match.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping

import anyio
import attrs

from reconcile_core import (
    CycleSummary,
    Discrepancy,
    DiscrepancyKind,
    Event,
    Fill,
    FillBusted,
    FillKey,
    FillRecorded,
    Order,
    OrderStatus,
    OrderUpdated,
    Position,
    Source,
    order_version,
)
from reconcile_core.runtime import Health, Session
from reconcile_core.typing import FillLedger

from ._parse import VENUE, parse_fill, parse_order, parse_position
from .testing import AccountTruth, FillTruth
from .testing import _wire as wire

__all__ = ["AccountReport", "DemoConsumer", "verify_account"]

#: Problems listed per account at most (the counts say the rest).
_MAX_PROBLEMS = 5


class DemoConsumer:
    """Consumes one session's events like an application, counting fills and busts by key."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.fills: Counter[FillKey] = Counter()
        self.busts: Counter[str] = Counter()
        self.discrepancies: Counter[DiscrepancyKind] = Counter()
        self.backwards: list[str] = []
        self.summaries = 0
        self._last_known: dict[str, Order] = {}
        self._recent: deque[CycleSummary] = deque(maxlen=64)
        self._changed = anyio.Event()

    async def run(self) -> None:
        """Read events until the session stops."""
        async for event in self.session.events():
            self.take(event)

    def take(self, event: Event) -> None:
        """Count one event (and check that order events never go backwards)."""
        if isinstance(event, FillRecorded):
            self.fills[event.fill.key] += 1
        elif isinstance(event, FillBusted):
            self.busts[event.bust.fill_id] += 1
        elif isinstance(event, OrderUpdated):
            order = event.order
            if order.status is not OrderStatus.UNKNOWN:
                known = self._last_known.get(order.order_id)
                if known is not None and order_version(order) < order_version(known):
                    self.backwards.append(order.order_id)
                self._last_known[order.order_id] = order
        elif isinstance(event, Discrepancy):
            self.discrepancies[event.kind] += 1
        elif isinstance(event, CycleSummary):
            self.summaries += 1
            self._recent.append(event)
            changed, self._changed = self._changed, anyio.Event()
            changed.set()

    async def wait_taken(self, summary: CycleSummary) -> None:
        """Wait until the consumer has taken ``summary`` (and so every event before it)."""
        while not any(s is summary for s in self._recent):
            await self._changed.wait()


@attrs.frozen(kw_only=True)
class AccountReport:
    """How one account's session ended, checked against the simulated venue."""

    account: str
    #: Fills the venue made for the account (busted ones included), and those delivered.
    venue_fills: int
    delivered_fills: int
    #: Busts the venue made, and those delivered.
    venue_busts: int
    delivered_busts: int
    #: Orders the venue has for the account, and how many the session holds exactly.
    venue_orders: int
    matched_orders: int
    #: Markets with a non-flat position at the venue, and how many the session holds exactly.
    venue_positions: int
    matched_positions: int
    fills_from_stream: int
    fills_from_rest: int
    duplicates_suppressed: int
    reconnects: int
    passes_ok: int
    passes_failed: int
    discrepancies: Mapping[str, int]
    orders_ok: bool
    positions_ok: bool
    ledger_ok: bool
    exactly_once: bool
    converged: bool
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Converged, with every fill delivered exactly once."""
        return self.converged and self.exactly_once

    def as_json(self) -> dict[str, object]:
        document = attrs.asdict(self)
        document["discrepancies"] = dict(self.discrepancies)
        document["problems"] = list(self.problems)
        document["ok"] = self.ok
        return document


def _comparable_order(order: Order) -> Order:
    return attrs.evolve(order, source=Source.REST, sequence=None)


def _truth_fills(truth: AccountTruth) -> tuple[dict[FillKey, Fill], dict[FillKey, Fill]]:
    def read(fills: Iterable[FillTruth]) -> dict[FillKey, Fill]:
        parsed = (parse_fill(wire.fill_json(f), account=truth.account, source=Source.REST).value for f in fills)
        return {f.key: f for f in parsed}

    return read(truth.fills), read(truth.busted_fills)


def verify_account(
    *,
    truth: AccountTruth,
    orders: Mapping[str, Order],
    positions: Mapping[str, Position],
    consumer: DemoConsumer,
    health: Health,
    ledger: FillLedger,
) -> AccountReport:
    """Compare one account's final state, ledger and deliveries with the venue's truth."""
    problems: list[str] = []
    if health.outstanding_needs or health.unknown_orders:
        problems.append(
            f"{health.outstanding_needs} needs outstanding and {health.unknown_orders} orders UNKNOWN at the end"
        )

    want_orders = {
        oid: _comparable_order(parse_order(wire.order_json(o, seq_no=0, published_at=0), source=Source.REST).value)
        for oid, o in truth.orders.items()
    }
    local_orders = {oid: _comparable_order(o) for oid, o in orders.items()}
    matched_orders = sum(1 for oid, order in want_orders.items() if local_orders.get(oid) == order)
    problems.extend(
        f"order {oid}: the session has {local_orders.get(oid)!r}, the venue {order!r}"
        for oid, order in want_orders.items()
        if local_orders.get(oid) != order
    )
    invented = sorted(set(local_orders) - set(want_orders))
    problems.extend(f"order {oid} is unknown to the venue" for oid in invented)
    orders_ok = matched_orders == len(want_orders) and not invented

    venue_positions = 0
    matched_positions = 0
    positions_ok = True
    for market in sorted(set(truth.positions) | set(positions)):
        venue = truth.positions.get(market)
        want = None if venue is None else parse_position(wire.position_json(venue, seq_no=0), source=Source.REST).value
        seen = positions.get(market)
        want_size = want.size if want is not None else 0
        if want_size != 0:
            venue_positions += 1
        same = (seen.size if seen is not None else 0) == want_size and (
            want is None or want_size == 0 or (seen is not None and seen.last_fill_id == want.last_fill_id)
        )
        if same and want_size != 0:
            matched_positions += 1
        if not same:
            positions_ok = False
            problems.append(f"position {market}: the session has {seen!r}, the venue {want!r}")

    unbusted, busted = _truth_fills(truth)
    delivered = consumer.fills
    exactly_once = True
    for key in unbusted:
        if delivered[key] != 1:
            exactly_once = False
            problems.append(f"fill {key.fill_id} was delivered {delivered[key]} times")
    for key in busted:
        if delivered[key] > 1:
            exactly_once = False
            problems.append(f"busted fill {key.fill_id} was delivered {delivered[key]} times")
    strangers = set(delivered) - set(unbusted) - set(busted)
    if strangers:
        exactly_once = False
        problems.append(f"{len(strangers)} fills delivered that the venue never made")
    want_busts = Counter(b.fill_id for b in truth.busts)
    if consumer.busts != want_busts:
        exactly_once = False
        problems.append(f"busts delivered {dict(consumer.busts)} but the venue made {dict(want_busts)}")
    if consumer.backwards:
        exactly_once = False
        problems.append(f"order events moved {len(consumer.backwards)} orders backwards")

    ledger_ok = True
    for key, fill in unbusted.items():
        stored = ledger.get(key)
        if stored is None or stored.content() != fill.content():
            ledger_ok = False
            problems.append(f"fill {key.fill_id} is missing or different in the ledger")
    for key in busted:
        if not ledger.is_busted(venue=VENUE, account=truth.account, fill_id=key.fill_id):
            ledger_ok = False
            problems.append(f"fill {key.fill_id} is not marked busted in the ledger")

    converged = orders_ok and positions_ok and ledger_ok and not (health.outstanding_needs or health.unknown_orders)
    extra = len(problems) - _MAX_PROBLEMS
    shown = problems[:_MAX_PROBLEMS] + ([f"... and {extra} more"] if extra > 0 else [])
    return AccountReport(
        account=truth.account,
        venue_fills=len(unbusted) + len(busted),
        delivered_fills=sum(delivered.values()),
        venue_busts=len(truth.busts),
        delivered_busts=sum(consumer.busts.values()),
        venue_orders=len(want_orders),
        matched_orders=matched_orders,
        venue_positions=venue_positions,
        matched_positions=matched_positions,
        fills_from_stream=health.fills_from_stream,
        fills_from_rest=health.fills_from_rest,
        duplicates_suppressed=health.duplicates_suppressed,
        reconnects=health.reconnects,
        passes_ok=health.passes_ok,
        passes_failed=health.passes_failed,
        discrepancies={kind.value: count for kind, count in sorted(consumer.discrepancies.items(), key=str)},
        orders_ok=orders_ok,
        positions_ok=positions_ok,
        ledger_ok=ledger_ok,
        exactly_once=exactly_once,
        converged=converged,
        problems=tuple(shown),
    )
