"""Unit tests for the reconciler's rules, one behaviour each."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest

from reconcile_core import (
    AccountReconciler,
    BackfillFills,
    Discrepancy,
    DiscrepancyKind,
    FillBusted,
    FillRecorded,
    Liquidity,
    MemoryLedger,
    OpenOrdersSnapshot,
    OrderRef,
    OrderStatus,
    OrderUpdated,
    PositionsSnapshot,
    PositionUpdated,
    ResolveOrder,
    Severity,
    Side,
    Source,
)
from reconcile_core.errors import UsageError

from ._builders import ACCOUNT, VENUE, bust, fill, order, position


def make(ledger: MemoryLedger | None = None) -> AccountReconciler:
    return AccountReconciler(venue=VENUE, account=ACCOUNT, ledger=ledger or MemoryLedger())


class TestFillDedup:
    """A fill is emitted once per key, whatever the path it arrives by."""

    def test_ws_then_rest_emits_once(self) -> None:
        r = make()
        first = r.merge(fill("f1", source=Source.WS))
        second = r.merge(fill("f1", source=Source.REST))
        assert [type(e) for e in first.events] == [FillRecorded]
        assert second.events == ()
        assert r.stats.duplicate_fills == 1
        assert r.stats.fills_from_ws == 1
        assert r.stats.fills_from_rest == 0

    def test_dedup_survives_reconnect(self) -> None:
        """A reconnect (even a fresh reconciler) keeps the dedup memory: it is the ledger."""
        ledger = MemoryLedger()
        make(ledger).merge(fill("f1"))
        after_reconnect = make(ledger)
        assert after_reconnect.merge(fill("f1", source=Source.REST)).events == ()

    def test_same_id_other_type_is_another_fill(self) -> None:
        r = make()
        r.merge(fill("f1"))
        step = r.merge(fill("f1", fill_type="LIQUIDATION", order_id=None))
        assert [type(e) for e in step.events] == [FillRecorded]

    def test_conflict_keeps_first_and_reports_once(self) -> None:
        ledger = MemoryLedger()
        r = make(ledger)
        original = fill("f1", price=Decimal(100))
        r.merge(original)
        changed = fill("f1", price=Decimal(101))
        step = r.merge(changed)
        assert len(step.events) == 1
        event = step.events[0]
        assert isinstance(event, Discrepancy)
        assert event.kind is DiscrepancyKind.FILL_CONFLICT
        assert r.merge(changed).events == ()
        assert ledger.get(original.key) == original

    def test_foreign_account_is_a_usage_error(self) -> None:
        with pytest.raises(UsageError, match="does not belong"):
            make().merge(fill("f1", account="someone-else"))

    def test_merge_many_hands_a_foreign_fill_to_on_rejected_and_merges_the_rest(self) -> None:
        r = make()
        batch = [fill("f1"), fill("f2", account="someone-else"), fill("f3")]
        with pytest.raises(UsageError):
            r.merge_many(batch)
        r = make()
        rejected: list[str] = []
        note = Discrepancy(kind=DiscrepancyKind.MALFORMED_MESSAGE, subject="f2", detail="rejected")

        def on_rejected(item: object, exc: UsageError) -> Discrepancy:
            rejected.append(str(exc))
            return note

        step = r.merge_many(batch, on_rejected=on_rejected)
        assert [type(e) for e in step.events] == [FillRecorded, Discrepancy, FillRecorded]
        assert step.events[1] is note
        assert len(rejected) == 1
        assert "does not belong" in rejected[0]


class TestOrders:
    """Version-gated order merge."""

    def test_newer_replaces_older_and_emits(self) -> None:
        r = make()
        r.merge(order(updated_at=1))
        step = r.merge(order(updated_at=2, price=Decimal(101)))
        assert len(step.events) == 1
        event = step.events[0]
        assert isinstance(event, OrderUpdated)
        assert event.previous is not None
        assert event.previous.updated_at == 1
        assert r.orders["o1"].price == Decimal(101)

    def test_stale_changes_nothing(self) -> None:
        r = make()
        r.merge(order(updated_at=5, filled_quantity=Decimal("0.5")))
        before = dict(r.orders)
        assert r.merge(order(updated_at=4)).events == ()
        assert dict(r.orders) == before
        assert r.stats.stale_observations == 1

    def test_terminal_is_absorbing(self) -> None:
        r = make()
        r.merge(order(status=OrderStatus.CANCELED, updated_at=5, cancel_reason="USER_CANCELED"))
        assert r.merge(order(status=OrderStatus.OPEN, updated_at=9)).events == ()
        assert r.orders["o1"].status is OrderStatus.CANCELED

    def test_rest_and_ws_sequences_are_not_compared(self) -> None:
        """A REST sequence far above the stream's does not make an older REST read win."""
        r = make()
        r.merge(order(updated_at=10, sequence=5, source=Source.WS, filled_quantity=Decimal("0.3")))
        step = r.merge(order(updated_at=9, sequence=10**18, source=Source.REST))
        assert step.events == ()

    def test_same_source_sequence_breaks_a_time_tie(self) -> None:
        r = make()
        r.merge(order(updated_at=10, sequence=2, price=Decimal(2)))
        assert r.merge(order(updated_at=10, sequence=1, price=Decimal(1))).events == ()
        assert r.orders["o1"].price == Decimal(2)

    def test_an_unmapped_status_is_reported_and_skipped(self) -> None:
        """A status the plugin could not map never crashes, and never changes state."""
        r = make()
        r.merge(order(updated_at=1))
        step = r.merge_open_orders(OpenOrdersSnapshot(orders=(order(status=OrderStatus.UNKNOWN, updated_at=9),)))
        assert [e.kind for e in step.events if isinstance(e, Discrepancy)] == [DiscrepancyKind.UNKNOWN_VALUE]
        assert step.needs == (), "the order is listed: its absence is not inferred"
        assert r.orders["o1"].status is OrderStatus.OPEN
        assert r.merge(order(status=OrderStatus.UNKNOWN, updated_at=9)).events == (), "reported once"


class TestCompleteSnapshots:
    """Absence from a complete snapshot is a need, never a terminal state."""

    def test_missing_live_order_raises_resolve_need(self) -> None:
        r = make()
        r.merge(order("o1"))
        step = r.merge_open_orders(OpenOrdersSnapshot(orders=()))
        assert step.events == ()
        assert step.needs == (ResolveOrder(order_id="o1"),)
        assert r.orders["o1"].status is OrderStatus.OPEN

    def test_need_is_raised_once(self) -> None:
        r = make()
        r.merge(order("o1"))
        r.merge_open_orders(OpenOrdersSnapshot(orders=()))
        assert r.merge_open_orders(OpenOrdersSnapshot(orders=())).needs == ()
        assert r.needs == (ResolveOrder(order_id="o1"),)

    def test_incomplete_snapshot_proves_nothing(self) -> None:
        r = make()
        r.merge(order("o1"))
        assert r.merge_open_orders(OpenOrdersSnapshot(orders=(), complete=False)).needs == ()

    def test_instrument_scoped_snapshot(self) -> None:
        r = make()
        r.merge(order("o1", instrument="ETH-PERP"))
        assert r.merge_open_orders(OpenOrdersSnapshot(orders=(), instrument="BTC-PERP")).needs == ()

    def test_resolution_answer_clears_need(self) -> None:
        r = make()
        r.merge(order("o1"))
        r.merge_open_orders(OpenOrdersSnapshot(orders=()))
        closed = order("o1", status=OrderStatus.CANCELED, updated_at=2_000, source=Source.REST)
        step = r.merge(closed)
        assert isinstance(step.events[0], OrderUpdated)
        assert r.needs == ()
        assert r.orders["o1"].status is OrderStatus.CANCELED

    def test_unresolvable_order_becomes_unknown_not_terminal(self) -> None:
        r = make()
        r.merge(order("o1"))
        r.merge_open_orders(OpenOrdersSnapshot(orders=()))
        step = r.resolve_failed("o1", reason="not found")
        kinds = [type(e) for e in step.events]
        assert kinds == [OrderUpdated, Discrepancy]
        assert r.orders["o1"].status is OrderStatus.UNKNOWN
        assert r.needs == (ResolveOrder(order_id="o1"),), "the need stays for retries"
        assert r.resolve_failed("o1", reason="again").events == (), "reported once"

    def test_unknown_clears_on_venue_evidence(self) -> None:
        r = make()
        original = order("o1")
        r.merge(original)
        r.merge_open_orders(OpenOrdersSnapshot(orders=()))
        r.resolve_failed("o1", reason="timeout")
        step = r.merge(original)  # the venue confirms the very same version
        assert len(step.events) == 1
        assert r.orders["o1"].status is OrderStatus.OPEN
        assert r.needs == ()

    def test_absent_position_older_than_snapshot_is_flat(self) -> None:
        r = make()
        r.merge(position("BTC-PERP", updated_at=100))
        r.merge(position("ETH-PERP", updated_at=100))
        eth = position("ETH-PERP", updated_at=200, size=Decimal(2), source=Source.REST)
        step = r.merge_positions(PositionsSnapshot(positions=(eth,), as_of=200))
        assert r.positions["BTC-PERP"].size == 0
        assert r.positions["ETH-PERP"].size == 2
        assert len([e for e in step.events if isinstance(e, PositionUpdated)]) == 2

    def test_absent_position_newer_than_snapshot_stays(self) -> None:
        r = make()
        r.merge(position("BTC-PERP", updated_at=300))
        r.merge_positions(PositionsSnapshot(positions=(), as_of=200))
        assert r.positions["BTC-PERP"].size == Decimal("0.5")

    def test_an_older_hint_after_a_snapshot_that_lacks_it_is_the_flat_the_snapshot_implies(self) -> None:
        # Found by review: snapshot then hint left the position open; hint then snapshot, flat.
        hint = position("BTC-PERP", size=Decimal(2), updated_at=5)
        snapshot = PositionsSnapshot(positions=(), as_of=10)
        a, b = make(), make()
        a.merge(hint)
        a.merge_positions(snapshot)
        b.merge_positions(snapshot)
        (event,) = b.merge(hint).events
        assert isinstance(event, PositionUpdated)
        assert a.positions == b.positions
        assert b.positions["BTC-PERP"].size == 0
        assert b.positions["BTC-PERP"].updated_at == 10
        newer = position("BTC-PERP", size=Decimal(3), updated_at=11)
        assert b.merge(newer).events != ()  # a newer one is news
        assert b.positions["BTC-PERP"].size == 3

    def test_a_flat_inferred_over_a_close_keeps_the_close_s_missing_fill_looked_for(self) -> None:
        # The close names its last fill (not recorded); a later snapshot that lists open positions
        # only infers the same flat, naming no fill: the gap the close left is still open.
        r = make()
        (need,) = r.merge(position("BTC-PERP", size=Decimal(0), last_fill_id="f9", updated_at=5)).needs
        assert isinstance(need, BackfillFills)
        r.merge_positions(PositionsSnapshot(positions=(), as_of=10))
        assert r.positions["BTC-PERP"].last_fill_id is None
        assert r.needs == (need,)
        (missing,) = r.backfill_done(need, complete_up_to=20).events
        assert isinstance(missing, Discrepancy)
        assert missing.kind is DiscrepancyKind.MISSING_FILLS
        assert missing.expected == "f9"
        r.merge(fill("f9", order_id=None, instrument="BTC-PERP"))  # it settles after all
        assert r.needs == ()

    def test_what_a_snapshot_dated_by_a_clock_that_ran_ahead_inferred_is_undone(self) -> None:
        r = make()
        r.merge(position("BTC-PERP", size=Decimal(1), updated_at=1_000))
        r.merge_positions(PositionsSnapshot(positions=(), as_of=10_000))  # dated an hour ahead, say
        assert r.positions["BTC-PERP"].size == 0
        assert r.venue_clock_went_back(5_000).events == ()
        assert "BTC-PERP" not in r.positions  # the next snapshot says what it is
        # An instrument opened since is not judged by the snapshot from the future.
        r.merge(position("ETH-PERP", size=Decimal(2), updated_at=6_000))
        assert r.positions["ETH-PERP"].size == 2
        r.merge_positions(
            PositionsSnapshot(positions=(position("BTC-PERP", size=Decimal(1), updated_at=1_000),), as_of=5_000)
        )
        assert r.positions["BTC-PERP"].size == 1
        assert r.positions["ETH-PERP"].size == 2  # newer than this snapshot's time: kept

    def test_a_position_dated_by_a_clock_that_ran_ahead_is_forgotten_too(self) -> None:
        # A venue that sends positions without a time has them dated by the venue clock reading:
        # from a reading an hour ahead, one would outrank every true version for that hour.
        r = make()
        r.merge_positions(
            PositionsSnapshot(positions=(position("BTC-PERP", size=Decimal(2), updated_at=10_000),), as_of=10_000)
        )
        assert r.venue_clock_went_back(5_000).events == ()
        assert "BTC-PERP" not in r.positions
        r.merge(position("BTC-PERP", size=Decimal(5), updated_at=6_000))  # the true version, now taken
        assert r.positions["BTC-PERP"].size == 5

    def test_a_flat_position_judged_flat_again_is_no_news(self) -> None:
        r = make()
        r.merge(position("BTC-PERP", size=Decimal(0), updated_at=5))
        assert r.merge_positions(PositionsSnapshot(positions=(), as_of=10)).events == ()
        assert r.positions["BTC-PERP"].updated_at == 10  # kept at the snapshot's time, silently

    def test_absent_position_without_a_time_is_reported_not_flattened(self) -> None:
        r = make()
        r.merge(position("BTC-PERP", updated_at=100))
        step = r.merge_positions(PositionsSnapshot(positions=(), as_of=None))
        assert [e.kind for e in step.events if isinstance(e, Discrepancy)] == [DiscrepancyKind.POSITION_MISMATCH]
        assert r.positions["BTC-PERP"].size == Decimal("0.5")
        assert r.merge_positions(PositionsSnapshot(positions=(), as_of=None)).events == (), "reported once"

    def test_real_update_at_snapshot_time_beats_inferred_flat(self) -> None:
        r = make()
        r.merge(position("BTC-PERP", updated_at=100))
        r.merge_positions(PositionsSnapshot(positions=(), as_of=200))
        r.merge(position("BTC-PERP", updated_at=200, size=Decimal(3)))
        assert r.positions["BTC-PERP"].size == 3


class TestGaps:
    """Fill-gap detection raises targeted backfills, then a discrepancy."""

    def test_order_filled_ahead_of_fills(self) -> None:
        r = make()
        step = r.merge(order("o1", filled_quantity=Decimal(1), updated_at=1_600))
        needs = [n for n in step.needs if isinstance(n, BackfillFills)]
        assert len(needs) == 1
        assert needs[0].order_id == "o1"
        assert needs[0].since == 1_000

    def test_fills_close_the_gap(self) -> None:
        r = make()
        r.merge(order("o1", filled_quantity=Decimal(1), updated_at=1_600))
        r.merge(fill("f1", size=Decimal("0.5")))
        assert len(r.needs) == 1
        r.merge(fill("f2", size=Decimal("0.5")))
        assert r.needs == ()

    def test_gap_surviving_backfill_is_missing_fills(self) -> None:
        r = make()
        (need,) = r.merge(order("o1", filled_quantity=Decimal(1), updated_at=1_600)).needs
        assert isinstance(need, BackfillFills)
        step = r.backfill_done(need, complete_up_to=2_000)
        assert len(step.events) == 1
        event = step.events[0]
        assert isinstance(event, Discrepancy)
        assert event.kind is DiscrepancyKind.MISSING_FILLS
        assert event.expected == "1"
        # Reported once, but re-checked for missing_recheck_ms: a fill may settle late.
        assert r.needs == (need,)
        assert r.backfill_done(need, complete_up_to=2_000 + 3_599_000).events == ()
        assert r.needs == (need,)
        assert r.backfill_done(need, complete_up_to=1_600 + 3_600_000).events == ()
        assert r.needs == ()

    def test_a_fill_settling_after_the_report_still_closes_the_gap(self) -> None:
        r = make()
        (need,) = r.merge(order("o1", filled_quantity=Decimal(1), updated_at=1_600)).needs
        r.backfill_done(need, complete_up_to=2_000)
        assert r.needs == (need,)
        step = r.merge(fill("f1", size=Decimal(1)))  # the late fill, found by a later backfill
        assert [type(e).__name__ for e in step.events] == ["FillRecorded"]
        assert r.needs == ()

    def test_gap_younger_than_settlement_waits(self) -> None:
        r = make()
        (need,) = r.merge(order("o1", filled_quantity=Decimal(1), updated_at=1_600)).needs
        assert isinstance(need, BackfillFills)
        assert r.backfill_done(need, complete_up_to=1_500).events == ()
        assert r.needs == (need,)

    def test_position_last_fill_unknown(self) -> None:
        r = make()
        step = r.merge(position("BTC-PERP", last_fill_id="f9"))
        assert [n.instrument for n in step.needs if isinstance(n, BackfillFills)] == ["BTC-PERP"]
        r.merge(fill("f9", order_id=None))
        assert r.needs == ()

    def test_fill_for_unseen_order_resolves_it(self) -> None:
        r = make()
        step = r.merge(fill("f1", order_id="o7", client_id="c7"))
        assert ResolveOrder(order_id="o7", client_id="c7") in step.needs

    def test_overfill_is_reported(self) -> None:
        r = make()
        r.merge(fill("f1", size=Decimal(1)))
        r.merge(fill("f2", size=Decimal(1)))
        step = r.merge(order("o1", status=OrderStatus.FILLED, filled_quantity=Decimal(1), updated_at=3_000))
        kinds = [e.kind for e in step.events if isinstance(e, Discrepancy)]
        assert kinds == [DiscrepancyKind.OVERFILL]

    def test_an_order_known_only_from_fills_that_the_venue_does_not_know_is_not_looked_up_for_good(self) -> None:
        # Looked up on every retry, for good, its need held a place a real gap needed (max_needs).
        r = make()
        (need,) = r.merge(fill("f1", order_id="ghost")).needs
        assert need == ResolveOrder(order_id="ghost", client_id=None)
        step = r.resolve_failed("ghost", reason="the venue timed out")  # a failed read: retried
        assert [e.kind for e in step.events if isinstance(e, Discrepancy)] == [DiscrepancyKind.ORDER_UNKNOWN]
        assert r.needs == (need,)
        step = r.resolve_failed("ghost", reason="not found", not_found=True)
        assert step.events == ()  # reported once already
        assert r.needs == ()
        assert r.merge(fill("f2", order_id="ghost")).needs == (need,)  # a later fill asks again

    def test_a_live_order_the_venue_does_not_know_stays_looked_up(self) -> None:
        r = make()
        r.merge(order("o1"))
        r.merge_open_orders(OpenOrdersSnapshot(orders=()))
        r.resolve_failed("o1", reason="not found", not_found=True)
        assert [n.order_id for n in r.needs if isinstance(n, ResolveOrder)] == ["o1"]


class TestFillAgainstOrder:
    """A fill of an order is on its side, in its instrument; a new fill that is not is reported."""

    def test_a_fill_on_the_other_side_of_its_order_is_recorded_and_reported(self) -> None:
        r = make()
        r.merge(order("o1", side=Side.SELL, quantity=Decimal(1)))
        step = r.merge(fill("f1", side=Side.BUY, liquidity=Liquidity.MAKER))
        assert [type(e) for e in step.events] == [FillRecorded, Discrepancy]
        problem = step.events[1]
        assert isinstance(problem, Discrepancy)
        assert problem.kind is DiscrepancyKind.FILL_ORDER_MISMATCH
        assert problem.severity is Severity.ERROR
        assert (problem.expected, problem.seen) == ("sell BTC-PERP", "buy BTC-PERP")
        assert "side buy (the order's: sell)" in problem.detail
        assert r.ledger.recorded_quantity(venue=VENUE, account=ACCOUNT, order_id="o1") == Decimal("0.5")

    def test_a_fill_in_another_instrument_is_reported(self) -> None:
        r = make()
        r.merge(order("o1"))
        step = r.merge(fill("f1", instrument="ETH-PERP"))
        problems = [e for e in step.events if isinstance(e, Discrepancy)]
        assert [p.kind for p in problems] == [DiscrepancyKind.FILL_ORDER_MISMATCH]
        assert "instrument ETH-PERP (the order's: BTC-PERP)" in problems[0].detail

    def test_reported_once_per_fill_and_not_for_agreeing_or_unknown_sides(self) -> None:
        r = make()
        r.merge(order("o1", side=Side.SELL))
        first = r.merge(fill("f1", side=Side.BUY))
        again = r.merge(fill("f1", side=Side.BUY, source=Source.REST))  # a duplicate: nothing new
        agreeing = r.merge(fill("f2", side=Side.SELL))
        unknown = r.merge(fill("f3", side=Side.UNKNOWN))  # reported by the parser, not compared
        assert [e.kind for e in first.events if isinstance(e, Discrepancy)] == [DiscrepancyKind.FILL_ORDER_MISMATCH]
        assert again.events == ()
        assert [type(e) for e in agreeing.events] == [FillRecorded]
        assert [type(e) for e in unknown.events] == [FillRecorded]

    def test_the_same_through_merge_many(self) -> None:
        r = make()
        r.merge(order("o1", side=Side.SELL, quantity=Decimal(2)))
        step = r.merge_many([fill("f1", side=Side.SELL), fill("f2", side=Side.BUY), fill("f3", side=Side.SELL)])
        kinds = [type(e).__name__ if not isinstance(e, Discrepancy) else e.kind.value for e in step.events]
        assert kinds == ["FillRecorded", "FillRecorded", "fill_order_mismatch", "FillRecorded"]


class NotingLedger(MemoryLedger):
    """A MemoryLedger that records each ``note_orders`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[tuple[list[str], list[str]]] = []

    def note_orders(self, *, venue: str, account: str, live: Any, ended: Any) -> None:
        self.notes.append(([r.order_id for r in live], list(ended)))
        super().note_orders(venue=venue, account=account, live=live, ended=ended)


class TestLiveOrderNotes:
    """The ledger is told which orders became live and which ended, once per step."""

    def test_an_order_is_noted_live_once_and_forgotten_when_it_ends(self) -> None:
        ledger = NotingLedger()
        r = make(ledger)
        r.merge(order("o1", status=OrderStatus.NEW, client_id="c1"))
        r.merge(order("o1", status=OrderStatus.OPEN, client_id="c1", updated_at=2_000))  # still live: no note
        assert ledger.live_orders(venue=VENUE, account=ACCOUNT) == [
            OrderRef(order_id="o1", client_id="c1", instrument="BTC-PERP", created_at=1_000)
        ]
        r.merge(order("o1", status=OrderStatus.CANCELED, updated_at=3_000))
        assert ledger.notes == [(["o1"], []), ([], ["o1"])]
        assert ledger.live_orders(venue=VENUE, account=ACCOUNT) == []

    def test_an_order_that_lives_and_ends_within_one_step_is_never_noted(self) -> None:
        ledger = NotingLedger()
        r = make(ledger)
        r.merge_many([order("o1"), fill("f1"), order("o1", status=OrderStatus.CANCELED, updated_at=2_000)])
        r.merge(order("o2", status=OrderStatus.FILLED, filled_quantity=Decimal(0)))  # terminal when first seen
        assert ledger.notes == []

    def test_a_ledger_without_notes_is_fine(self) -> None:
        class Plain(MemoryLedger):
            def __getattribute__(self, name: str) -> Any:
                if name == "note_orders":
                    raise AttributeError(name)
                return super().__getattribute__(name)

        r = make(Plain())
        assert [type(e) for e in r.merge(order("o1")).events] == [OrderUpdated]


class TestCarriedOrders:
    """Orders an earlier process knew live are looked up when a complete snapshot lacks them."""

    REF = OrderRef(order_id="o1", client_id="c1", instrument="BTC-PERP", created_at=1_000)

    def test_a_carried_order_missing_from_a_complete_snapshot_is_resolved(self) -> None:
        ledger = NotingLedger()
        ledger.note_orders(venue=VENUE, account=ACCOUNT, live=[self.REF], ended=[])
        r = make(ledger)  # a new reconciler carries what its ledger last knew live
        assert r.orders == {}  # nothing is known of its state
        step = r.merge_open_orders(OpenOrdersSnapshot(orders=(order("o2"),), complete=True))
        assert ResolveOrder(order_id="o1", client_id="c1") in step.needs
        resolved = r.merge(order("o1", status=OrderStatus.CANCELED, client_id="c1", updated_at=4_000))
        assert [(e.order.status, e.previous) for e in resolved.events if isinstance(e, OrderUpdated)] == [
            (OrderStatus.CANCELED, None)
        ]
        assert r.needs == ()
        assert [ref.order_id for ref in ledger.live_orders(venue=VENUE, account=ACCOUNT)] == ["o2"]
        again = r.merge_open_orders(OpenOrdersSnapshot(orders=(order("o2"),), complete=True))
        assert again.needs == ()  # no longer carried

    def test_a_carried_order_that_is_listed_is_merged_as_any_other(self) -> None:
        ledger = NotingLedger()
        r = make(ledger)
        r.carry([self.REF])
        step = r.merge_open_orders(OpenOrdersSnapshot(orders=(order("o1"),), complete=True))
        assert step.needs == ()
        assert [type(e) for e in step.events] == [OrderUpdated]
        assert ledger.notes == []  # noted live by the earlier process already
        r.merge(order("o1", status=OrderStatus.CANCELED, updated_at=2_000))
        assert ledger.notes == [([], ["o1"])]

    def test_only_complete_snapshots_of_its_instrument_look_it_up(self) -> None:
        r = make()
        r.carry([self.REF])
        partial = r.merge_open_orders(OpenOrdersSnapshot(orders=(), complete=False))
        other = r.merge_open_orders(OpenOrdersSnapshot(orders=(), complete=True, instrument="ETH-PERP"))
        assert partial.needs == other.needs == ()
        mine = r.merge_open_orders(OpenOrdersSnapshot(orders=(), complete=True, instrument="BTC-PERP"))
        assert mine.needs == (ResolveOrder(order_id="o1", client_id="c1"),)

    def test_a_carried_order_the_venue_cannot_find_is_reported_once(self) -> None:
        r = make()
        r.carry([self.REF])
        r.merge_open_orders(OpenOrdersSnapshot(orders=(), complete=True))
        first = r.resolve_failed("o1", reason="not found")
        second = r.resolve_failed("o1", reason="not found")
        problems = [e for e in first.events if isinstance(e, Discrepancy)]
        assert [p.kind for p in problems] == [DiscrepancyKind.ORDER_UNKNOWN]
        assert "earlier process" in problems[0].detail
        assert second.events == ()
        assert r.needs == (ResolveOrder(order_id="o1", client_id="c1"),)  # still retried
        assert r.carried_unknown == ("o1",)  # counted by the session's health as unknown
        r.merge(order("o1", status=OrderStatus.CANCELED, client_id="c1"))
        assert r.carried_unknown == ()
        assert r.needs == ()

    def test_an_order_first_seen_ended_after_a_restart_is_forgotten_by_the_ledger(self) -> None:
        ledger = NotingLedger()
        make(ledger).merge(order("o1", client_id="c1"))  # process 1: live
        r = make(ledger)  # process 2, used without the runtime: it carries o1
        r.merge(order("o1", status=OrderStatus.CANCELED, client_id="c1", updated_at=5_000))
        assert ledger.live_orders(venue=VENUE, account=ACCOUNT) == []

    def test_a_carried_order_the_venue_does_not_know_is_forgotten_by_the_ledger(self) -> None:
        ledger = NotingLedger()
        ledger.note_orders(venue=VENUE, account=ACCOUNT, live=[self.REF], ended=[])
        r = AccountReconciler(venue=VENUE, account=ACCOUNT, ledger=ledger, note_ended=False)
        r.merge_open_orders(OpenOrdersSnapshot(orders=()))
        r.resolve_failed("o1", reason="the read failed")  # not an answer: the ledger keeps it
        assert [ref.order_id for ref in ledger.live_orders(venue=VENUE, account=ACCOUNT)] == ["o1"]
        r.resolve_failed("o1", reason="the venue does not know it", not_found=True)
        assert ledger.live_orders(venue=VENUE, account=ACCOUNT) == []
        assert r.carried_unknown == ("o1",)  # still looked up in this process
        assert r.needs == (ResolveOrder(order_id="o1", client_id="c1"),)

    def test_carry_from_ledger_takes_the_ledger_as_it_is_now(self) -> None:
        ledger = NotingLedger()
        ledger.note_orders(venue=VENUE, account=ACCOUNT, live=[self.REF], ended=[])
        r = make(ledger)
        other = OrderRef(order_id="o2", client_id=None, instrument="ETH-PERP", created_at=2_000)
        ledger.note_orders(venue=VENUE, account=ACCOUNT, live=[other], ended=["o1"])  # another session's work
        r.carry_from_ledger()
        assert r.carried == {"o2": other}

    def test_what_the_ledger_keeps_of_a_live_order_follows_its_newer_versions(self) -> None:
        ledger = NotingLedger()
        r = make(ledger)
        r.merge(order("o1", status=OrderStatus.NEW, client_id=None, created_at=900, updated_at=900))
        r.merge(order("o1", status=OrderStatus.OPEN, client_id="c1", created_at=100, updated_at=1_000))
        assert ledger.live_orders(venue=VENUE, account=ACCOUNT) == [
            OrderRef(order_id="o1", client_id="c1", instrument="BTC-PERP", created_at=100)
        ]
        r.merge(order("o1", status=OrderStatus.OPEN, client_id="c1", created_at=100, updated_at=2_000))
        assert len(ledger.notes) == 2  # nothing it keeps changed

    def test_no_time_is_beyond_what_a_ledger_stores(self) -> None:
        with pytest.raises(ValueError, match=r"milliseconds in \[0, 2\*\*63 - 1\]"):
            order("o1", created_at=2**63, updated_at=2**63)
        with pytest.raises(ValueError, match=r"milliseconds in \[0, 2\*\*63 - 1\]"):
            OrderRef(order_id="o1", client_id=None, instrument="X", created_at=2**63)
        ledger = NotingLedger()
        make(ledger).merge(order("o1", created_at=2**63 - 1, updated_at=2**63 - 1))
        assert [ref.created_at for ref in ledger.live_orders(venue=VENUE, account=ACCOUNT)] == [2**63 - 1]

    def test_with_note_ended_off_only_live_orders_are_noted(self) -> None:
        ledger = NotingLedger()
        r = AccountReconciler(venue=VENUE, account=ACCOUNT, ledger=ledger, note_ended=False)
        r.merge(order("o1"))
        r.merge(order("o1", status=OrderStatus.CANCELED, updated_at=2_000))
        assert ledger.notes == [(["o1"], [])]  # the runtime notes the end once the consumer handled it

    def test_carry_ignores_known_orders_and_checks_its_input(self) -> None:
        r = make()
        r.merge(order("o1", status=OrderStatus.CANCELED))
        r.carry([self.REF])
        assert r.merge_open_orders(OpenOrdersSnapshot(orders=(), complete=True)).needs == ()
        with pytest.raises(UsageError, match="OrderRef"):
            r.carry(["o1"])  # type: ignore[list-item]


class TestBusts:
    """Busts are tombstones: emitted once, never resurrected."""

    def test_bust_after_fill(self) -> None:
        r = make()
        recorded = r.merge(fill("f1")).events[0]
        assert isinstance(recorded, FillRecorded)
        step = r.merge(bust("f1"))
        assert len(step.events) == 1
        event = step.events[0]
        assert isinstance(event, FillBusted)
        assert event.fill == recorded.fill
        assert r.merge(bust("f1")).events == ()

    def test_fill_after_bust_is_never_delivered(self) -> None:
        ledger = MemoryLedger()
        r = make(ledger)
        r.merge(bust("f1"))
        assert r.merge(fill("f1")).events == ()
        assert r.merge(fill("f1", source=Source.REST)).events == ()
        assert ledger.is_busted(venue=VENUE, account=ACCOUNT, fill_id="f1")
        assert [d.bust for d in ledger.undelivered(venue=VENUE, account=ACCOUNT)] == [bust("f1")]

    def test_busted_fill_still_explains_the_order(self) -> None:
        """The venue keeps the order's filled quantity after a bust: no false gap."""
        r = make()
        r.merge(bust("f1"))
        r.merge(fill("f1", size=Decimal(1)))
        assert r.merge(order("o1", filled_quantity=Decimal(1), updated_at=1_600)).needs == ()


class TestBoundedMemory:
    """Terminal orders beyond the bound are forgotten; live ones never."""

    def test_eviction(self) -> None:
        r = AccountReconciler(venue=VENUE, account=ACCOUNT, ledger=MemoryLedger(), max_terminal_orders=2)
        r.merge(order("live"))
        for i in range(5):
            r.merge(order(f"t{i}", status=OrderStatus.CANCELED, updated_at=1_000 + i))
        assert set(r.orders) == {"live", "t3", "t4"}
        assert r.stats.evicted_orders == 3

    def test_a_delayed_stream_message_does_not_bring_an_evicted_order_back(self) -> None:
        ledger = MemoryLedger()
        r = AccountReconciler(venue=VENUE, account=ACCOUNT, ledger=ledger, max_terminal_orders=2)
        for i in range(3):
            r.merge(order(f"t{i}", status=OrderStatus.CANCELED, updated_at=1_000 + i))
        assert "t0" not in r.orders  # evicted
        # Its OPEN from before the cancel, delayed on the stream: the consumer saw it canceled.
        assert r.merge(order("t0", status=OrderStatus.OPEN, updated_at=900)).events == ()
        assert "t0" not in r.orders
        assert ledger.live_orders(venue=VENUE, account=ACCOUNT) == []
        # REST is the truth, and a newer stream message is news.
        assert r.merge(order("t0", status=OrderStatus.CANCELED, updated_at=1_000, source=Source.REST)).events
        assert r.merge(order("n1", updated_at=1_003)).events
        # Another order never seen, however old its first message, is not one of the forgotten.
        assert r.merge(order("n2", updated_at=800)).events

    def test_needs_are_bounded(self) -> None:
        r = AccountReconciler(venue=VENUE, account=ACCOUNT, ledger=MemoryLedger(), max_needs=3)
        for i in range(10):
            r.merge(fill(f"f{i}", order_id=f"o{i}"))
        assert len(r.needs) == 3


class TestValueTypes:
    """Validators say what is wrong, and types stay immutable."""

    def test_rejects_float_money(self) -> None:
        with pytest.raises(ValueError, match="price must be a finite Decimal"):
            fill("f1", price=100.0)

    def test_rejects_nan(self) -> None:
        with pytest.raises(ValueError, match="finite"):
            order(quantity=Decimal("NaN"))

    def test_rejects_negative_size(self) -> None:
        with pytest.raises(ValueError, match=">= 0"):
            fill("f1", size=Decimal(-1))

    def test_rejects_empty_ids(self) -> None:
        with pytest.raises(ValueError, match="non-empty"):
            order("")

    def test_rejects_negative_time(self) -> None:
        with pytest.raises(ValueError, match="milliseconds"):
            order(updated_at=-1)

    @pytest.mark.parametrize(
        ("build", "field", "value"),
        [
            (lambda v: fill("f1", side=v), "side", "buy"),
            (lambda v: order(status=v), "status", "open"),
            (lambda v: order(client_id=v), "client_id", 7),
            (lambda v: order(sequence=v), "sequence", "1"),
            (lambda v: fill("f1", fee_currency=v), "fee_currency", None),
        ],
    )
    def test_wrong_type_is_a_type_error_naming_the_field(self, build: Any, field: str, value: object) -> None:
        # The same error, and message, as attrs.validators.instance_of gives.
        with pytest.raises(TypeError) as caught:
            build(value)
        assert caught.value.args[0].startswith(f"'{field}' must be <")
        assert caught.value.args[3] == value

    def test_subclass_instances_are_accepted(self) -> None:
        class Text(str):
            __slots__ = ()

        assert fill("f1", fee_currency=Text("USDC")).fee_currency == "USDC"

    def test_frozen(self) -> None:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            order().status = OrderStatus.FILLED  # type: ignore[misc]

    def test_discrepancy_text_is_truncated(self) -> None:
        d = Discrepancy(kind=DiscrepancyKind.MALFORMED_MESSAGE, subject="x", detail="y" * 10_000)
        assert len(d.detail) <= 500


class TestBoundedReports:
    """The memory of what was already reported is bounded too."""

    def test_report_memory_is_bounded(self) -> None:
        r = AccountReconciler(venue=VENUE, account=ACCOUNT, ledger=MemoryLedger(), max_needs=2)
        for i in range(50):
            r.resolve_failed(f"ghost{i}", reason="not found")
        assert len(r._reported) <= 8
        assert r.resolve_failed("ghost49", reason="again").events == (), "recent reports are still remembered"
