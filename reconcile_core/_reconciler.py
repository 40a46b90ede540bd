"""``AccountReconciler``: the sans-IO merge of one account's observations.

Observations go in; events (for the consumer) and needs (for the I/O layer)
come out. No I/O, no clock: time arrives as arguments. The fill ledger is
injected and only called synchronously.

Laws (DESIGN.md §3, proven by the Hypothesis tests in ``tests/core``):

* merging an observation twice emits nothing the second time;
* any order of the same single observations reaches the same state;
* an emitted order never moves back under :func:`order_version`, and a stale
  observation changes nothing;
* one final complete snapshot plus backfill makes the state equal to the venue.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import assert_never

import attrs

from ._events import (
    BackfillFills,
    Discrepancy,
    DiscrepancyKind,
    Event,
    FillBusted,
    FillRecorded,
    Need,
    OrderUpdated,
    PositionUpdated,
    ResolveOrder,
    Severity,
)
from ._ledger import OrderRef, RecordOutcome, RecordResult
from ._types import (
    Fill,
    FillBust,
    OpenOrdersSnapshot,
    Order,
    OrderStatus,
    Position,
    PositionsSnapshot,
    Side,
    Source,
)
from ._versions import compare_order_versions, position_version
from .errors import UsageError
from .typing import FillLedger, Observation

__all__ = ["AccountReconciler", "MergeStep", "ReconcilerStats"]


@attrs.frozen
class MergeStep:
    """What one reconciler input produced: events for the consumer, new needs."""

    events: tuple[Event, ...] = ()
    needs: tuple[Need, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.events or self.needs)


@attrs.define
class ReconcilerStats:
    """Counters the runtime reports in its health snapshot."""

    fills_from_ws: int = 0
    fills_from_rest: int = 0
    duplicate_fills: int = 0
    stale_observations: int = 0
    late_busted_fills: int = 0
    evicted_orders: int = 0


def order_notes(ledger: FillLedger) -> Callable[..., None] | None:
    """The ledger's ``note_orders``, if it keeps live orders and can be written (else ``None``)."""
    note: Callable[..., None] | None = getattr(ledger, "note_orders", None)
    if note is None or getattr(ledger, "read_only", False):
        return None
    return note


def _flat(instrument: str, at: int) -> Position:
    """The flat position a complete snapshot of time ``at`` implies by not listing ``instrument``."""
    return Position(
        instrument=instrument,
        size=Decimal(0),
        entry_price=None,
        last_fill_id=None,
        updated_at=at,
        sequence=None,
        source=Source.REST,
    )


def _need_key(need: Need) -> Hashable:
    if isinstance(need, ResolveOrder):
        return ("resolve", need.order_id)
    if isinstance(need, BackfillFills):
        if need.order_id is not None:
            return ("order-fills", need.order_id)
        return ("position-fills", need.instrument)
    msg = f"unknown need {need!r}"
    raise UsageError(msg)


@attrs.define(eq=False)
class AccountReconciler:
    """Merges one venue account's orders, fills and positions.

    ``max_terminal_orders`` bounds memory: the oldest terminal orders beyond it
    are forgotten (live orders never are). ``max_needs`` bounds the
    outstanding needs; beyond it new needs are dropped and the next full
    reconciliation finds the same gaps again. ``missing_recheck_ms`` (venue
    ms, default one hour) is how long a gap reported as ``MISSING_FILLS``
    stays a need (see :meth:`backfill_done`).
    """

    venue: str = attrs.field(validator=attrs.validators.min_len(1))
    account: str = attrs.field(validator=attrs.validators.min_len(1))
    ledger: FillLedger
    max_terminal_orders: int = attrs.field(default=10_000, validator=attrs.validators.ge(1))
    max_needs: int = attrs.field(default=10_000, validator=attrs.validators.ge(1))
    missing_recheck_ms: int = attrs.field(default=3_600_000, validator=attrs.validators.ge(0))
    #: Whether orders that end are noted with the ledger as they are merged. The
    #: runtime sets it false and notes them once the consumer has handled their
    #: final state (see :class:`~reconcile_core.runtime.Session`).
    note_ended: bool = attrs.field(default=True, kw_only=True)

    stats: ReconcilerStats = attrs.field(init=False, factory=ReconcilerStats)
    _orders: dict[str, Order] = attrs.field(init=False, factory=dict)
    # Orders a ledger last knew live, from an earlier process (see carry()), and those of
    # them the venue could not find.
    _carried: dict[str, OrderRef] = attrs.field(init=False, factory=dict)
    _carried_unknown: set[str] = attrs.field(init=False, factory=set)
    _unknown: set[str] = attrs.field(init=False, factory=set)
    _terminal: OrderedDict[str, None] = attrs.field(init=False, factory=OrderedDict)
    #: Orders evicted from ``_terminal``, with their last ``updated_at`` (as many as it holds).
    _evicted: OrderedDict[str, int] = attrs.field(init=False, factory=OrderedDict)
    _positions: dict[str, tuple[tuple[object, ...], Position]] = attrs.field(init=False, factory=dict)
    #: The newest complete positions snapshot with a time: (its ``as_of``, the instruments it
    #: listed; at one time, those every such snapshot listed). An instrument it did not list was
    #: flat at ``as_of``, so an older observation of it counts as that flat.
    _absent_at: tuple[int, frozenset[str]] | None = attrs.field(init=False, default=None)
    _needs: dict[Hashable, Need] = attrs.field(init=False, factory=dict)
    #: For each position-fills need: the last fill that raised it, and that position's time (a
    #: flat one inferred later names no fill, but the gap it left is still open).
    _position_gaps: dict[str, tuple[str, int]] = attrs.field(init=False, factory=dict)
    # Discrepancies already reported (so each is reported once); oldest first, bounded.
    _reported: dict[Hashable, None] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self.carry_from_ledger()

    def __repr__(self) -> str:
        return (
            f"<AccountReconciler {self.venue}:{self.account} orders={len(self._orders)} "
            f"positions={len(self._positions)} needs={len(self._needs)}>"
        )

    # -- views ---------------------------------------------------------------

    @property
    def orders(self) -> Mapping[str, Order]:
        """Merged orders by id; an order the venue cannot account for shows ``UNKNOWN``."""
        return {oid: self._effective(o) for oid, o in self._orders.items()}

    @property
    def positions(self) -> Mapping[str, Position]:
        """Merged positions by instrument."""
        return {instrument: p for instrument, (_, p) in self._positions.items()}

    @property
    def needs(self) -> Sequence[Need]:
        """Needs raised and not yet answered, oldest first."""
        return tuple(self._needs.values())

    @property
    def live_orders(self) -> Sequence[Order]:
        """Orders the venue may still fill (``UNKNOWN`` ones included)."""
        return tuple(self._effective(o) for o in self._orders.values() if o.is_live)

    @property
    def carried(self) -> Mapping[str, OrderRef]:
        """Orders carried from an earlier process (see :meth:`carry`) and not merged since, by id."""
        return dict(self._carried)

    @property
    def carried_unknown(self) -> Sequence[str]:
        """Ids of orders carried from an earlier process (see :meth:`carry`) that the venue could not find."""
        return tuple(self._carried_unknown)

    def _effective(self, order: Order) -> Order:
        if order.order_id in self._unknown:
            return attrs.evolve(order, status=OrderStatus.UNKNOWN)
        return order

    # -- inputs --------------------------------------------------------------

    def carry(self, orders: Iterable[OrderRef]) -> None:
        """Take over the orders a ledger last knew live (``FillLedger.live_orders``), from an earlier process.

        A new reconciler does this itself with its ledger's ``live_orders``,
        when the ledger has them. A carried order is not shown in
        :attr:`orders` (nothing is known of its state). The first complete
        open-orders snapshot that does not list it raises a
        :class:`ResolveOrder` need, so an order that ended while no process
        was watching is looked up and reported like any other; one merged
        meanwhile is no longer carried. One the venue cannot find is listed
        in :attr:`carried_unknown`. Orders this reconciler knows already are
        ignored.
        """
        for ref in orders:
            if not isinstance(ref, OrderRef):
                msg = f"carry() takes OrderRef values, got {ref!r}"  # type: ignore[unreachable]
                raise UsageError(msg)
            if ref.order_id not in self._orders:
                self._carried[ref.order_id] = ref

    def carry_from_ledger(self) -> None:
        """Carry exactly what the ledger keeps live now (``FillLedger.live_orders``), if it keeps any.

        Done on construction; the runtime does it again when a session starts,
        since the ledger may have changed in between (another session on it).
        Orders this reconciler knows are not carried.
        """
        live_orders = getattr(self.ledger, "live_orders", None)
        if live_orders is None:
            return
        refs = list(live_orders(venue=self.venue, account=self.account))
        self._carried.clear()
        self.carry(refs)
        self._carried_unknown &= self._carried.keys()

    def _finish(self, out: _Out) -> MergeStep:
        """The step's output, after noting the orders that became live or ended with the ledger.

        A read-only ledger cannot hold notes: it gets none (it still answers
        everything else a merge asks).
        """
        ended = [*out.ended, *out.forget] if self.note_ended else out.forget
        if out.live or ended:
            note = order_notes(self.ledger)
            if note is not None:
                live = [
                    OrderRef(
                        order_id=o.order_id,
                        client_id=o.client_id,
                        instrument=o.instrument,
                        created_at=o.created_at,
                    )
                    for o in out.live.values()
                ]
                note(venue=self.venue, account=self.account, live=live, ended=list(ended))
        return out.step()

    def merge(self, observation: Observation) -> MergeStep:
        """Merge one observation (order, fill, position or bust)."""
        out = _Out()
        self._merge_one(observation, out)
        return self._finish(out)

    def merge_many(
        self,
        observations: Sequence[Observation],
        *,
        on_rejected: Callable[[Observation, UsageError], Event | None] | None = None,
    ) -> MergeStep:
        """Merge observations in sequence; one step with all their output.

        An observation of another venue or account raises :class:`UsageError`
        before anything of it is merged. With ``on_rejected``, it is handed to
        ``on_rejected`` instead and skipped, the others are merged, and the
        event ``on_rejected`` returns (if any) takes its place in the output.
        """
        out = _Out()
        # Runs of this account's fills go to the ledger's record_many, when it has one
        # (one call per run instead of one per fill); the output is the same.
        record_many: Callable[[list[Fill]], Sequence[RecordResult]] | None = getattr(self.ledger, "record_many", None)
        run: list[Fill] = []
        venue, account = self.venue, self.account
        for observation in observations:
            if (
                record_many is not None
                and type(observation) is Fill
                and observation.key.venue == venue
                and observation.key.account == account
            ):
                run.append(observation)
                continue
            if run:
                self._merge_fills(run, record_many, out)
                run = []
            try:
                self._merge_one(observation, out)
            except UsageError as exc:
                if on_rejected is None:
                    raise
                event = on_rejected(observation, exc)
                if event is not None:
                    out.events.append(event)
        if run:
            self._merge_fills(run, record_many, out)
        return self._finish(out)

    def merge_open_orders(self, snapshot: OpenOrdersSnapshot) -> MergeStep:
        """Merge a complete open-orders snapshot.

        Listed orders merge like single observations. A locally live order
        missing from a complete snapshot is *not* thereby closed: it raises a
        :class:`ResolveOrder` need.
        """
        out = _Out()
        listed: set[str] = set()
        for order in snapshot.orders:
            listed.add(order.order_id)
            self._merge_order(order, out)
        if snapshot.complete:
            for order_id, order in list(self._orders.items()):
                if not order.is_live or order_id in listed:
                    continue
                if snapshot.instrument is not None and order.instrument != snapshot.instrument:
                    continue
                self._raise_need(ResolveOrder(order_id=order_id, client_id=order.client_id), out)
            for order_id, ref in self._carried.items():
                if order_id in listed:
                    continue
                if snapshot.instrument is not None and ref.instrument != snapshot.instrument:
                    continue
                self._raise_need(ResolveOrder(order_id=order_id, client_id=ref.client_id), out)
        return self._finish(out)

    def merge_positions(self, snapshot: PositionsSnapshot) -> MergeStep:
        """Merge a complete positions snapshot.

        A known position absent from the snapshot, and older than its
        ``as_of``, is flat at ``as_of`` (a flat one silently, without an
        event); the newest such snapshot is remembered, so that an older
        observation of an instrument it did not list, arriving later, is
        merged as that flat too (the order of arrival does not matter).
        Without ``as_of``, absence proves nothing: a non-flat one is a
        ``POSITION_MISMATCH`` discrepancy, reported once per local version.
        """
        out = _Out()
        listed: set[str] = set()
        for position in snapshot.positions:
            listed.add(position.instrument)
            self._merge_position(position, out, inferred=False)
        if snapshot.complete and snapshot.as_of is not None:
            absent_at = self._absent_at
            if absent_at is None or snapshot.as_of > absent_at[0]:
                self._absent_at = (snapshot.as_of, frozenset(listed))
            elif snapshot.as_of == absent_at[0]:
                self._absent_at = (snapshot.as_of, absent_at[1] & listed)
            for instrument, (_, current) in list(self._positions.items()):
                if instrument in listed or current.updated_at >= snapshot.as_of:
                    continue
                self._merge_position(_flat(instrument, snapshot.as_of), out, inferred=True)
        elif snapshot.complete:
            # No time to judge absence by (an empty list, say): a venue that lists
            # only open positions may be saying "flat", or a lagging replica may
            # be missing one. Say so instead of guessing either way.
            for instrument, (_, current) in self._positions.items():
                if instrument in listed or current.size == 0:
                    continue
                if self._first_report(("absent-position", instrument, current.updated_at)):
                    out.events.append(
                        Discrepancy(
                            kind=DiscrepancyKind.POSITION_MISMATCH,
                            subject=f"position {instrument}",
                            detail="non-flat locally but absent from a complete positions snapshot without a time",
                            expected=str(current.size),
                            seen="absent",
                            severity=Severity.WARNING,
                        )
                    )
        return self._finish(out)

    def venue_clock_went_back(self, now: int) -> MergeStep:
        """The venue clock reads ``now``, behind a reading that ran ahead.

        A complete positions snapshot dated by that reading judged positions
        flat at a time that has not come yet, and a venue that sends no time
        with a position has it dated by that reading: positions dated after
        ``now`` are forgotten (the next positions snapshot says what they
        are; dated in the future, they would outrank every true version until
        the clock caught up), and so is the remembered snapshot if it is dated
        after ``now``. This steps outside the merge laws, as any reset of a
        wrong clock does.
        """
        absent_at = self._absent_at
        if absent_at is not None and absent_at[0] > now:
            self._absent_at = None
        for instrument, (_key, position) in list(self._positions.items()):
            if position.updated_at > now:
                del self._positions[instrument]
        return self._finish(_Out())

    def resolve_failed(self, order_id: str, *, reason: str, not_found: bool = False) -> MergeStep:
        """The venue could not account for ``order_id`` (not found, or the read failed).

        A live order becomes ``UNKNOWN`` with an ``ORDER_UNKNOWN`` discrepancy,
        once; its :class:`ResolveOrder` need stays outstanding for retries. No
        terminal state is ever inferred. An order known only from fills is
        reported once too; if the venue answered it does not know it
        (``not_found``), its need is dropped (a later fill naming it raises
        it again). A carried order (see :meth:`carry`)
        the venue answered it does not know (``not_found``) is reported the
        same way and stays looked up in this process, but the ledger forgets
        it: a later process does not carry it again.
        """
        out = _Out()
        current = self._orders.get(order_id)
        if current is None and order_id in self._carried:
            self._carried_unknown.add(order_id)
            if not_found:
                out.forget.append(order_id)
            if self._first_report(("unknown-carried", order_id)):
                out.events.append(
                    Discrepancy(
                        kind=DiscrepancyKind.ORDER_UNKNOWN,
                        subject=f"order {order_id}",
                        detail=(
                            "live when the ledger last saw it (an earlier process), absent from the open orders,"
                            f" and not resolvable: {reason}"
                        ),
                        expected="live",
                        seen="not found",
                        severity=Severity.ERROR,
                    )
                )
        elif current is None:
            if not_found:
                # Known only from fills, and the venue answered it does not know it: looking it
                # up again and again (a lookup per retry, for good) would only hold a place among
                # the needs a real gap may need. A later fill naming it asks again; a full pass
                # lists it if the venue ever does.
                self._needs.pop(("resolve", order_id), None)
            marker = ("unknown-ref", order_id)
            if self._first_report(marker):
                out.events.append(
                    Discrepancy(
                        kind=DiscrepancyKind.ORDER_UNKNOWN,
                        subject=f"order {order_id}",
                        detail=f"fills name this order but the venue cannot find it: {reason}",
                        severity=Severity.WARNING,
                    )
                )
        elif current.is_live and order_id not in self._unknown:
            self._unknown.add(order_id)
            out.events.append(OrderUpdated(order=self._effective(current), previous=current))
            out.events.append(
                Discrepancy(
                    kind=DiscrepancyKind.ORDER_UNKNOWN,
                    subject=f"order {order_id}",
                    detail=f"live locally, absent from the open orders, and not resolvable: {reason}",
                    expected=current.status.value,
                    seen="not found",
                    severity=Severity.ERROR,
                )
            )
        return self._finish(out)

    def backfill_done(self, need: BackfillFills, *, complete_up_to: int) -> MergeStep:
        """A backfill for ``need`` finished; REST is complete up to ``complete_up_to``.

        A gap that is still open and older than ``complete_up_to`` becomes a
        ``MISSING_FILLS`` discrepancy (once); a younger gap stays outstanding
        (the fills may still be settling). A reported gap stays a need too,
        until it is ``missing_recheck_ms`` older than ``complete_up_to``: a
        venue may settle a fill later than the source's settlement lag says,
        and no later pass reads that far back otherwise.
        """
        out = _Out()
        key = _need_key(need)
        if key not in self._needs:
            return self._finish(out)
        if need.order_id is not None:
            order = self._orders.get(need.order_id)
            gap = self._order_gap(order) if order is not None else None
            if gap is None or order is None:
                del self._needs[key]
            elif order.updated_at <= complete_up_to:
                if order.updated_at <= complete_up_to - self.missing_recheck_ms:
                    del self._needs[key]
                recorded, filled = gap
                self._report_missing(
                    ("missing-order", order.order_id),
                    subject=f"order {order.order_id}",
                    detail="the order's filled quantity is ahead of its recorded fills after a backfill",
                    expected=str(filled),
                    seen=str(recorded),
                    out=out,
                )
        elif need.instrument is not None:
            left = self._position_gaps.get(need.instrument)
            if left is None or self.ledger.knows_fill_id(venue=self.venue, account=self.account, fill_id=left[0]):
                del self._needs[key]
                self._position_gaps.pop(need.instrument, None)
            elif left[1] <= complete_up_to:
                fill_id, updated_at = left
                if updated_at <= complete_up_to - self.missing_recheck_ms:
                    del self._needs[key]
                    del self._position_gaps[need.instrument]
                self._report_missing(
                    ("missing-position", need.instrument, fill_id),
                    subject=f"position {need.instrument}",
                    detail="the position's last fill is not in the ledger after a backfill",
                    expected=fill_id,
                    seen="absent",
                    out=out,
                )
        return self._finish(out)

    # -- merging -------------------------------------------------------------

    def _merge_one(self, observation: Observation, out: _Out) -> None:
        if isinstance(observation, Order):
            self._merge_order(observation, out)
        elif isinstance(observation, Fill):
            self._merge_fill(observation, out)
        elif isinstance(observation, Position):
            self._merge_position(observation, out, inferred=False)
        elif isinstance(observation, FillBust):
            self._merge_bust(observation, out)
        else:
            assert_never(observation)

    def _merge_order(self, order: Order, out: _Out) -> None:
        if order.status is OrderStatus.UNKNOWN:
            # A status the plugin could not map: the observation says nothing
            # about where the order is in its lifecycle, so it cannot be ranked.
            # It is reported and skipped; the order is resolved again later.
            self.stats.stale_observations += 1
            if self._first_report(("unmapped-status", order.order_id, order.updated_at)):
                out.events.append(
                    Discrepancy(
                        kind=DiscrepancyKind.UNKNOWN_VALUE,
                        subject=f"order {order.order_id}",
                        detail="the venue reported a status this library does not know; the update was skipped",
                        seen="unknown",
                        severity=Severity.WARNING,
                    )
                )
            return
        order_id = order.order_id
        current = self._orders.get(order_id)
        if current is not None:
            newer = compare_order_versions(order, current)
            if newer < 0:
                self.stats.stale_observations += 1
                return
            if newer == 0:
                # Venue evidence for the order as we know it: resolves UNKNOWN.
                self._needs.pop(("resolve", order_id), None)
                if order_id in self._unknown:
                    shown = self._effective(current)
                    self._unknown.discard(order_id)
                    out.events.append(OrderUpdated(order=current, previous=shown))
                return
        if current is None and order.source is Source.WS and order.updated_at <= self._evicted.get(order_id, -1):
            # A delayed stream message of an order this reconciler forgot once it ended (evicted):
            # merged, it would bring the ended order back to life for the consumer.
            self.stats.stale_observations += 1
            return
        previous = None if current is None else self._effective(current)
        # Live before this observation: known live, or carried from an earlier process.
        if current is None and self._carried.pop(order_id, None) is not None:
            was_live = True
            self._carried_unknown.discard(order_id)
        else:
            was_live = current is not None and current.is_live
        if order.is_live:
            if not was_live or (
                current is not None
                and (current.client_id, current.instrument, current.created_at)
                != (order.client_id, order.instrument, order.created_at)
            ):  # new, or what the ledger keeps of it changed
                out.live[order_id] = order
        elif was_live and out.live.pop(order_id, None) is None:  # noted live before this step: forget it
            out.ended.append(order_id)
        self._unknown.discard(order_id)
        self._orders[order_id] = order
        self._needs.pop(("resolve", order_id), None)
        out.events.append(OrderUpdated(order=order, previous=previous))
        self._check_order_gap(order, out)
        if order.status.is_terminal:
            self._terminal[order_id] = None
            self._terminal.move_to_end(order_id)
            self._evict()

    def _evict(self) -> None:
        while len(self._terminal) > self.max_terminal_orders:
            order_id, _ = self._terminal.popitem(last=False)
            evicted = self._orders.pop(order_id, None)
            if evicted is not None:
                self._evicted[order_id] = evicted.updated_at
                if len(self._evicted) > self.max_terminal_orders:
                    self._evicted.popitem(last=False)
            self._unknown.discard(order_id)
            self._needs.pop(("order-fills", order_id), None)
            self._needs.pop(("resolve", order_id), None)
            self._reported.pop(("missing-order", order_id), None)
            self._reported.pop(("overfill", order_id), None)
            self.stats.evicted_orders += 1

    def _merge_fill(self, fill: Fill, out: _Out) -> None:
        key = fill.key
        if key.venue != self.venue or key.account != self.account:
            msg = f"fill {key} does not belong to {self.venue}:{self.account}"
            raise UsageError(msg)
        self._fill_recorded(fill, self.ledger.record(fill), out, None)

    def _merge_fills(
        self, fills: list[Fill], record_many: Callable[[list[Fill]], Sequence[RecordResult]] | None, out: _Out
    ) -> None:
        """Merge a run of this account's fills, recorded by one ``record_many`` call if there is one.

        The same as merging them one by one: each fill's gap check sees the
        recorded quantity of its order as it was right after that fill was
        recorded (the quantity before the run plus the sizes recorded in the
        run up to it), not the quantity after the whole run.
        """
        if record_many is None or len(fills) == 1:
            for fill in fills:
                self._merge_fill(fill, out)
            return
        # The totals before the run, of the orders a gap check will look at (known ones:
        # a fill of an unknown order raises ResolveOrder instead, and no merge of a fill
        # adds or drops an order).
        recorded_quantity = self.ledger.recorded_quantity
        orders = self._orders
        totals: dict[str | None, Decimal] = {}
        for fill in fills:
            order_id = fill.order_id
            if order_id not in totals and order_id in orders:
                totals[order_id] = recorded_quantity(venue=self.venue, account=self.account, order_id=order_id)
        results = record_many(fills)
        if len(results) != len(fills):
            msg = f"the fill ledger's record_many returned {len(results)} results for {len(fills)} fills"
            raise UsageError(msg)
        counted = (RecordOutcome.RECORDED, RecordOutcome.BUSTED)  # what adds to an order's recorded quantity
        for fill, result in zip(fills, results, strict=True):
            order_id = fill.order_id
            total = totals.get(order_id)
            if total is not None and result.outcome in counted:
                total = totals[order_id] = total + fill.size
            self._fill_recorded(fill, result, out, total)

    def _fill_recorded(self, fill: Fill, result: RecordResult, out: _Out, recorded: Decimal | None) -> None:
        """Events and needs of ``fill`` once the ledger recorded it; ``recorded``: its order's
        recorded quantity now, when known (else the ledger is asked)."""
        key = fill.key
        outcome = result.outcome
        if outcome is RecordOutcome.RECORDED:
            assert result.offset is not None  # noqa: S101 - ledger contract
            if fill.source is Source.WS:
                self.stats.fills_from_ws += 1
            else:
                self.stats.fills_from_rest += 1
            out.events.append(FillRecorded(fill=fill, offset=result.offset))
        elif outcome is RecordOutcome.DUPLICATE:
            self.stats.duplicate_fills += 1
            return
        elif outcome is RecordOutcome.CONFLICT:
            existing = result.existing
            out.events.append(
                Discrepancy(
                    kind=DiscrepancyKind.FILL_CONFLICT,
                    subject=f"fill {key}",
                    detail="the same fill key arrived with different content; the first is kept",
                    expected=repr(existing.content()) if existing else None,
                    seen=repr(fill.content()),
                    severity=Severity.ERROR,
                )
            )
            return
        elif outcome is RecordOutcome.BUSTED:
            self.stats.late_busted_fills += 1
        else:
            assert_never(outcome)
        # A new fill may close (or reveal) gaps.
        if fill.order_id is not None:
            order = self._orders.get(fill.order_id)
            if order is None:
                self._raise_need(ResolveOrder(order_id=fill.order_id, client_id=fill.client_id), out)
            else:
                if outcome is RecordOutcome.RECORDED and (
                    fill.side is not order.side or fill.instrument != order.instrument
                ):
                    self._check_fill_against_order(fill, order, out)
                self._check_order_gap(order, out, recorded)
        gap = self._position_gaps.get(fill.instrument)
        if gap is not None and gap[0] == key.fill_id:
            self._needs.pop(("position-fills", fill.instrument), None)
            del self._position_gaps[fill.instrument]

    def _check_fill_against_order(self, fill: Fill, order: Order, out: _Out) -> None:
        """A fill of an order is on the order's side, in its instrument: report a new fill that is not.

        The fill stays recorded as the venue sent it (the ledger keeps what the
        venue said); a consumer summing fills into positions must not trust it.
        A side the venue sent that this library does not know was reported
        when it was parsed, and is not compared.
        """
        differences = []
        if fill.side is not order.side and Side.UNKNOWN not in (fill.side, order.side):
            differences.append(f"side {fill.side.value} (the order's: {order.side.value})")
        if fill.instrument != order.instrument:
            differences.append(f"instrument {fill.instrument} (the order's: {order.instrument})")
        if not differences:
            return
        out.events.append(
            Discrepancy(
                kind=DiscrepancyKind.FILL_ORDER_MISMATCH,
                subject=f"fill {fill.key}",
                detail=(
                    f"the fill of order {order.order_id} has {' and '.join(differences)}; it is recorded as the"
                    " venue sent it, and positions summed from fills would be wrong"
                ),
                expected=f"{order.side.value} {order.instrument}",
                seen=f"{fill.side.value} {fill.instrument}",
                severity=Severity.ERROR,
            )
        )

    def _merge_bust(self, bust: FillBust, out: _Out) -> None:
        if bust.venue != self.venue or bust.account != self.account:
            msg = f"bust of {bust.fill_id} does not belong to {self.venue}:{self.account}"
            raise UsageError(msg)
        result = self.ledger.bust(bust)
        if not result.new:
            return
        assert result.offset is not None  # noqa: S101 - ledger contract
        fill = result.fills[0] if result.fills else None
        out.events.append(FillBusted(bust=bust, fill=fill, offset=result.offset))

    def _merge_position(self, position: Position, out: _Out, *, inferred: bool) -> None:
        instrument = position.instrument
        absent_at = self._absent_at
        if (
            not inferred
            and absent_at is not None
            and position.updated_at < absent_at[0]
            and instrument not in absent_at[1]
        ):
            # Older than a complete snapshot that did not list it: had it come before that
            # snapshot, the snapshot would have judged it flat at its time. Merged as that flat,
            # the result does not depend on the order they came in.
            position = _flat(instrument, absent_at[0])
            inferred = True
        key = position_version(position, inferred=inferred)
        current = self._positions.get(instrument)
        if current is not None and key <= current[0]:
            if key < current[0]:
                self.stats.stale_observations += 1
            return
        previous = current[1] if current is not None else None
        self._positions[instrument] = (key, position)
        # A flat one judged flat again, at a later snapshot's time, is no news for the consumer.
        if previous is None or (previous != position and not (inferred and previous.size == 0)):
            out.events.append(PositionUpdated(position=position, previous=previous))
        if self._position_gap(position):
            since = previous.updated_at if previous is not None else position.updated_at
            self._raise_need(
                BackfillFills(
                    since=min(since, position.updated_at),
                    instrument=instrument,
                    reason=f"position {instrument} last fill {position.last_fill_id} not recorded",
                ),
                out,
            )
            if ("position-fills", instrument) in self._needs:
                self._position_gaps[instrument] = (str(position.last_fill_id), position.updated_at)
        elif not inferred:  # an inferred flat names no fill: the gap a real version left stays
            self._needs.pop(("position-fills", instrument), None)
            self._position_gaps.pop(instrument, None)

    # -- gaps and needs ------------------------------------------------------

    def _order_gap(self, order: Order, recorded: Decimal | None = None) -> tuple[Decimal, Decimal] | None:
        """(recorded, filled) when the order's fills lag its filled quantity.

        ``recorded``: the order's recorded quantity, when the caller knows it.
        """
        if order.filled_quantity <= 0:
            return None
        if recorded is None:
            recorded = self.ledger.recorded_quantity(venue=self.venue, account=self.account, order_id=order.order_id)
        if recorded < order.filled_quantity:
            return recorded, order.filled_quantity
        return None

    def _position_gap(self, position: Position) -> bool:
        fill_id = position.last_fill_id
        if not fill_id:
            return False
        return not self.ledger.knows_fill_id(venue=self.venue, account=self.account, fill_id=fill_id)

    def _check_order_gap(self, order: Order, out: _Out, recorded: Decimal | None = None) -> None:
        key = ("order-fills", order.order_id)
        if recorded is None and (order.filled_quantity > 0 or order.status.is_terminal):
            # Read once, for both checks below.
            recorded = self.ledger.recorded_quantity(venue=self.venue, account=self.account, order_id=order.order_id)
        if self._order_gap(order, recorded) is not None:
            if key in self._needs:  # raised already (by an earlier fill of a sweep, say)
                return
            self._raise_need(
                BackfillFills(
                    since=order.created_at,
                    order_id=order.order_id,
                    instrument=order.instrument,
                    reason=f"order {order.order_id} filled {order.filled_quantity} ahead of recorded fills",
                ),
                out,
            )
            return
        self._needs.pop(key, None)
        if order.status.is_terminal:
            assert recorded is not None  # noqa: S101 - read above for a terminal order
            if recorded > order.filled_quantity:
                marker = ("overfill", order.order_id)
                if self._first_report(marker):
                    out.events.append(
                        Discrepancy(
                            kind=DiscrepancyKind.OVERFILL,
                            subject=f"order {order.order_id}",
                            detail="recorded fills add up to more than the order's final filled quantity",
                            expected=str(order.filled_quantity),
                            seen=str(recorded),
                            severity=Severity.ERROR,
                        )
                    )

    def _first_report(self, marker: Hashable) -> bool:
        """True the first time ``marker`` is seen. The memory of reports is bounded:
        past ``4 * max_needs`` the oldest are forgotten (at worst, reported again)."""
        if marker in self._reported:
            return False
        self._reported[marker] = None
        while len(self._reported) > 4 * self.max_needs:
            del self._reported[next(iter(self._reported))]
        return True

    def _raise_need(self, need: Need, out: _Out) -> None:
        key = _need_key(need)
        if key in self._needs or len(self._needs) >= self.max_needs:
            return
        self._needs[key] = need
        out.needs.append(need)

    def _report_missing(
        self,
        marker: Hashable,
        *,
        subject: str,
        detail: str,
        expected: str | None,
        seen: str | None,
        out: _Out,
    ) -> None:
        if not self._first_report(marker):
            return
        out.events.append(
            Discrepancy(
                kind=DiscrepancyKind.MISSING_FILLS,
                subject=subject,
                detail=detail,
                expected=expected,
                seen=seen,
                severity=Severity.ERROR,
            )
        )


@attrs.define
class _Out:
    events: list[Event] = attrs.field(factory=list)
    needs: list[Need] = attrs.field(factory=list)
    #: Orders that became live in this step, and ids of orders that ended (for the ledger's notes).
    live: dict[str, Order] = attrs.field(factory=dict)
    ended: list[str] = attrs.field(factory=list)
    #: Ids the ledger must forget whoever notes ended orders (carried ones the venue does not know).
    forget: list[str] = attrs.field(factory=list)

    def step(self) -> MergeStep:
        return MergeStep(events=tuple(self.events), needs=tuple(self.needs))
