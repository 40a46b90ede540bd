"""The ``FillLedger`` contract: behaviour tests and a stateful model, for every ledger.

A ledger backend proves itself the way keyring backends do: subclass the
contract in a test module and provide a ``make_ledger`` fixture, a factory
that opens the ledger store called ``name``::

    from reconcile_core.testing import PersistentFillLedgerContract

    class TestMyLedger(PersistentFillLedgerContract):
        @pytest.fixture
        def make_ledger(self, tmp_path):
            return lambda name: MyLedger(tmp_path / f"{name}.db")

For a persistent ledger, opening the same ``name`` again (after ``close``)
must give back everything committed; ``close`` commits (DESIGN.md §4: close
flushes the ledger). A non-persistent ledger (``MemoryLedger``) subclasses
:class:`FillLedgerContract` and returns a fresh ledger on each call.

The contract includes :class:`LedgerStateMachine`, a Hypothesis
``RuleBasedStateMachine`` that runs random sequences of records (new,
duplicate, conflicting), busts (before and after their fill), acknowledgements,
commits, watermark moves and, for persistent ledgers, reopens, and compares
the ledger with a small reference model after every step.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from reconcile_core._ledger import Delivery, OrderRef, RecordOutcome
from reconcile_core._types import Fill, FillBust, FillKey, FillKind, Liquidity, Side, Source
from reconcile_core.typing import FillLedger

__all__ = [
    "FillLedgerContract",
    "LedgerFactory",
    "LedgerStateMachine",
    "PersistentFillLedgerContract",
    "ledger_state_machine",
]

#: Opens the ledger store called ``name`` (the same store for the same name,
#: for a persistent ledger).
LedgerFactory = Callable[[str], FillLedger]


def make_fill(fill_id: str = "1", **changes: Any) -> Fill:
    """A valid fill for contract tests; keyword arguments replace fields (``venue``, ``size``...)."""
    key = FillKey(
        venue=changes.pop("venue", "venue"),
        account=changes.pop("account", "account"),
        fill_type=changes.pop("fill_type", "FILL"),
        fill_id=fill_id,
    )
    fields: dict[str, Any] = {
        "key": key,
        "kind": FillKind.TRADE,
        "order_id": "order-1",
        "instrument": "BTC-USD-PERP",
        "side": Side.BUY,
        "price": Decimal("65000.5"),
        "size": Decimal("0.010"),
        "fee": Decimal("-0.0012"),
        "fee_currency": "USDC",
        "liquidity": Liquidity.MAKER,
        "time": 1_700_000_000_000,
        "source": Source.WS,
    }
    fields.update(changes)
    return Fill(**fields)


def make_bust(fill_id: str = "1", *, venue: str = "venue", account: str = "account", time: int = 1) -> FillBust:
    """A bust of ``fill_id`` for contract tests."""
    return FillBust(venue=venue, account=account, fill_id=fill_id, time=time, source=Source.REST)


def _exact(fill: Fill | None) -> object:
    """A fill with its decimals as text: equal only if stored losslessly (``1.50`` is not ``1.5``)."""
    if fill is None:
        return None
    return (fill, str(fill.price), str(fill.size), str(fill.fee), str(fill.realized_pnl))


def _record_new(ledger: FillLedger, fill: Fill) -> int:
    """Record a fill that must be new; its offset."""
    result = ledger.record(fill)
    assert result.outcome is RecordOutcome.RECORDED, result
    assert isinstance(result.offset, int), result
    return result.offset


def _offsets(deliveries: Any) -> list[int]:
    return [d.offset for d in deliveries]


class FillLedgerContract:
    """Behaviour tests every :class:`~reconcile_core.typing.FillLedger` passes.

    Subclass it (the class name must start with ``Test``) and override the
    ``make_ledger`` fixture. The ``ledger`` fixture opens ``make_ledger("contract")``
    and closes it after the test.
    """

    #: Whether reopening a store gives back what was committed.
    persistent: ClassVar[bool] = False

    @pytest.fixture
    def make_ledger(self) -> LedgerFactory:
        """Override: return a factory opening the ledger store called ``name``."""
        msg = f"{type(self).__name__} must override the make_ledger fixture"
        raise NotImplementedError(msg)

    @pytest.fixture
    def open_ledger(self, make_ledger: LedgerFactory) -> Iterator[LedgerFactory]:
        """Like ``make_ledger``, but closes whatever it opened when the test ends."""
        opened: list[FillLedger] = []

        def open_(name: str = "contract") -> FillLedger:
            ledger = make_ledger(name)
            opened.append(ledger)
            return ledger

        yield open_
        for ledger in reversed(opened):
            ledger.close()

    @pytest.fixture
    def ledger(self, open_ledger: LedgerFactory) -> FillLedger:
        """An empty ledger."""
        return open_ledger("contract")

    # -- the protocol ------------------------------------------------------------

    def test_satisfies_the_protocol(self, ledger: FillLedger) -> None:
        assert isinstance(ledger, FillLedger)

    def test_first_sighting_is_recorded_with_an_offset(self, ledger: FillLedger) -> None:
        fill = make_fill("1")
        result = ledger.record(fill)
        assert result.outcome is RecordOutcome.RECORDED
        assert isinstance(result.offset, int)
        assert result.existing is None
        assert ledger.get(fill.key) == fill
        assert ledger.count() == 1

    def test_same_fill_again_is_a_duplicate(self, ledger: FillLedger) -> None:
        fill = make_fill("1")
        ledger.record(fill)
        again = ledger.record(fill)
        assert again.outcome is RecordOutcome.DUPLICATE
        assert again.offset is None
        assert ledger.count() == 1
        assert len(ledger.undelivered(venue="venue", account="account")) == 1

    def test_provenance_and_extras_are_not_content(self, ledger: FillLedger) -> None:
        first = make_fill("1", source=Source.WS)
        ledger.record(first)
        later = make_fill("1", source=Source.REST, client_id="c-1", realized_pnl=Decimal(5))
        assert ledger.record(later).outcome is RecordOutcome.DUPLICATE
        assert ledger.get(first.key) == first  # the first sighting is kept

    def test_equal_decimals_in_another_notation_are_a_duplicate(self, ledger: FillLedger) -> None:
        ledger.record(make_fill("1", size=Decimal("0.010"), price=Decimal(65000)))
        again = make_fill("1", size=Decimal("0.01"), price=Decimal("65000.000"))
        assert ledger.record(again).outcome is RecordOutcome.DUPLICATE

    def test_decimals_are_stored_losslessly(self, ledger: FillLedger) -> None:
        fill = make_fill(
            "1",
            price=Decimal("65000.50"),
            size=Decimal("1E-18"),
            fee=Decimal("-0.000000000000000000000000000000123456789"),
            realized_pnl=Decimal("-0"),
        )
        ledger.record(fill)
        assert _exact(ledger.get(fill.key)) == _exact(fill)

    def test_every_field_round_trips(self, ledger: FillLedger) -> None:
        fills = [
            make_fill("a", order_id=None, client_id=None, realized_pnl=None, kind=FillKind.SETTLEMENT),
            make_fill(
                "b",
                kind=FillKind.LIQUIDATION,
                side=Side.SELL,
                liquidity=Liquidity.TAKER,
                source=Source.REST,
                client_id="client 🚀 ünïcode",
                realized_pnl=Decimal("12.3400"),
                fee_currency="",
                time=0,
            ),
            make_fill("c", side=Side.UNKNOWN, liquidity=Liquidity.UNKNOWN, kind=FillKind.UNKNOWN, time=2**62),
            make_fill("x" * 500, instrument="I" * 300, order_id="'; DROP TABLE fills; --"),
        ]
        for fill in fills:
            assert ledger.record(fill).outcome is RecordOutcome.RECORDED
        for fill in fills:
            assert _exact(ledger.get(fill.key)) == _exact(fill)

    def test_different_content_is_a_conflict_and_the_first_is_kept(self, ledger: FillLedger) -> None:
        first = make_fill("1", size=Decimal(1))
        ledger.record(first)
        second = make_fill("1", size=Decimal(2))
        result = ledger.record(second)
        assert result.outcome is RecordOutcome.CONFLICT
        assert result.existing == first
        assert result.offset is None
        assert ledger.get(first.key) == first
        assert ledger.count() == 1
        assert _offsets(ledger.undelivered(venue="venue", account="account")) == [ledger_offset(ledger, first)]
        assert ledger.recorded_quantity(venue="venue", account="account", order_id="order-1") == Decimal(1)

    def test_the_same_conflict_reports_once(self, ledger: FillLedger) -> None:
        ledger.record(make_fill("1", size=Decimal(1)))
        assert ledger.record(make_fill("1", size=Decimal(2))).outcome is RecordOutcome.CONFLICT
        assert ledger.record(make_fill("1", size=Decimal("2.00"))).outcome is RecordOutcome.DUPLICATE
        assert ledger.record(make_fill("1", size=Decimal(3))).outcome is RecordOutcome.CONFLICT
        assert ledger.record(make_fill("1", size=Decimal(3))).outcome is RecordOutcome.DUPLICATE
        assert ledger.record(make_fill("1", size=Decimal(1))).outcome is RecordOutcome.DUPLICATE

    @pytest.mark.parametrize(
        "change",
        [
            {"kind": FillKind.LIQUIDATION},
            {"order_id": None},
            {"order_id": "order-2"},
            {"instrument": "ETH-USD-PERP"},
            {"side": Side.SELL},
            {"price": Decimal(1)},
            {"size": Decimal(1)},
            {"fee": Decimal(0)},
            {"fee_currency": "USD"},
            {"time": 1},
        ],
        ids=lambda change: next(iter(change)),
    )
    def test_every_content_field_can_conflict(self, ledger: FillLedger, change: dict[str, Any]) -> None:
        ledger.record(make_fill("1"))
        assert ledger.record(make_fill("1", **change)).outcome is RecordOutcome.CONFLICT

    def test_every_key_field_separates_fills(self, ledger: FillLedger) -> None:
        fills = [
            make_fill("1"),
            make_fill("2"),
            make_fill("1", fill_type="LIQUIDATION"),
            make_fill("1", account="other-account"),
            make_fill("1", venue="other-venue"),
        ]
        results = [ledger.record(fill) for fill in fills]
        assert [r.outcome for r in results] == [RecordOutcome.RECORDED] * len(fills)
        assert len({r.offset for r in results}) == len(fills)
        assert ledger.count() == 5
        assert ledger.count(venue="venue") == 4
        assert ledger.count(account="account") == 4
        assert ledger.count(venue="venue", account="account") == 3
        assert ledger.count(venue="nowhere") == 0
        for fill in fills:
            assert ledger.get(fill.key) == fill

    def test_noted_live_orders_are_those_not_noted_ended_since(self, ledger: FillLedger) -> None:
        """``note_orders`` / ``live_orders`` are optional; a ledger that has them keeps live orders per account."""
        note = getattr(ledger, "note_orders", None)
        live = getattr(ledger, "live_orders", None)
        if note is None or live is None:
            pytest.skip("this ledger does not note live orders")
        a = OrderRef(order_id="order-a", client_id="client-a", instrument="BTC-USD-PERP", created_at=1)
        b = OrderRef(order_id="order-b", client_id=None, instrument="ETH-USD-PERP", created_at=2**62)
        elsewhere = OrderRef(order_id="order-a", client_id=None, instrument="SOL-USD-PERP", created_at=0)
        assert list(live(venue="venue", account="account")) == []
        note(venue="venue", account="account", live=[a, b], ended=[])
        note(venue="venue", account="other-account", live=[elsewhere], ended=[])
        assert sorted(live(venue="venue", account="account"), key=lambda r: r.order_id) == [a, b]
        note(venue="venue", account="account", live=[], ended=["order-a", "never-noted"])
        note(venue="venue", account="account", live=[], ended=[])  # nothing to note: fine
        assert list(live(venue="venue", account="account")) == [b]
        assert list(live(venue="venue", account="other-account")) == [elsewhere]
        assert list(live(venue="other-venue", account="account")) == []
        ledger.commit()
        assert list(live(venue="venue", account="account")) == [b]

    def test_record_many_is_record_in_turn(self, open_ledger: LedgerFactory) -> None:
        """``record_many`` is optional; a ledger that has it answers as ``record`` would, fill by fill."""
        one_by_one, batched = open_ledger("one-by-one"), open_ledger("batched")
        record_many = getattr(batched, "record_many", None)
        if record_many is None:
            pytest.skip("this ledger has no record_many")
        before = [make_fill("1"), make_fill("2", order_id="order-2")]
        batch = [
            make_fill("3"),
            make_fill("1"),  # recorded before the batch: a duplicate
            make_fill("2", price=Decimal(1)),  # a conflict with one recorded before the batch
            make_fill("4", order_id="order-2", size=Decimal("0.5")),
            make_fill("3"),  # a duplicate of one earlier in the batch
            make_fill("4", order_id="order-2", size=Decimal(2)),  # a conflict with one earlier in the batch
            make_fill("5"),  # busted before the batch: stored, never delivered
            make_fill("6", account="other-account"),
            make_fill("7", order_id=None),
            make_fill("2", price=Decimal(1)),  # the same conflict again: reported once
        ]
        for ledger in (one_by_one, batched):
            for fill in before:
                ledger.record(fill)
            ledger.bust(make_bust("5"))
        expected = [one_by_one.record(fill) for fill in batch]
        assert list(record_many(batch)) == expected
        assert [r.outcome for r in expected] == [
            RecordOutcome.RECORDED,
            RecordOutcome.DUPLICATE,
            RecordOutcome.CONFLICT,
            RecordOutcome.RECORDED,
            RecordOutcome.DUPLICATE,
            RecordOutcome.CONFLICT,
            RecordOutcome.BUSTED,
            RecordOutcome.RECORDED,
            RecordOutcome.RECORDED,
            RecordOutcome.DUPLICATE,
        ]
        assert list(record_many([])) == []
        for ledger in (one_by_one, batched):
            ledger.commit()
        for order_id in ("order-1", "order-2"):
            assert batched.recorded_quantity(
                venue="venue", account="account", order_id=order_id
            ) == one_by_one.recorded_quantity(venue="venue", account="account", order_id=order_id)
        for account in ("account", "other-account"):
            assert _offsets(batched.undelivered(venue="venue", account=account)) == _offsets(
                one_by_one.undelivered(venue="venue", account=account)
            )
        assert batched.count() == one_by_one.count() == 7

    def test_unknown_key_is_none(self, ledger: FillLedger) -> None:
        ledger.record(make_fill("1"))
        assert ledger.get(make_fill("2").key) is None
        assert ledger.get(make_fill("1", account="other").key) is None

    def test_offsets_grow_across_fills_and_busts(self, ledger: FillLedger) -> None:
        offsets = [
            _record_new(ledger, make_fill("1")),
            ledger.bust(make_bust("1")).offset or 0,
            _record_new(ledger, make_fill("2", account="other")),
            ledger.bust(make_bust("9")).offset or 0,
            _record_new(ledger, make_fill("3")),
        ]
        assert all(o > 0 for o in offsets)
        assert offsets == sorted(offsets)
        assert len(set(offsets)) == len(offsets)

    def test_offsets_are_not_reused_after_acknowledging_everything(self, ledger: FillLedger) -> None:
        first = ledger.record(make_fill("1")).offset
        assert first is not None
        ledger.acknowledge([first])
        ledger.commit()
        second = ledger.record(make_fill("2")).offset
        assert second is not None
        assert second > first

    # -- busts ------------------------------------------------------------------------

    def test_bust_after_fill(self, ledger: FillLedger) -> None:
        fill = make_fill("1")
        ledger.record(fill)
        result = ledger.bust(make_bust("1"))
        assert result.new
        assert isinstance(result.offset, int)
        assert result.fills == (fill,)
        assert ledger.is_busted(venue="venue", account="account", fill_id="1")
        assert ledger.get(fill.key) == fill  # kept for the record
        deliveries = ledger.undelivered(venue="venue", account="account")
        assert [(d.fill, d.bust, d.busted_fill) for d in deliveries] == [
            (fill, None, None),
            (None, make_bust("1"), fill),
        ]

    def test_bust_is_recorded_once(self, ledger: FillLedger) -> None:
        ledger.record(make_fill("1"))
        ledger.bust(make_bust("1"))
        again = ledger.bust(make_bust("1", time=99))
        assert not again.new
        assert again.offset is None
        assert again.fills == ()
        assert [d.bust for d in ledger.undelivered(venue="venue", account="account") if d.bust] == [make_bust("1")]

    def test_bust_before_fill_keeps_the_fill_out_of_the_outbox(self, ledger: FillLedger) -> None:
        bust = ledger.bust(make_bust("1"))
        assert bust.new
        assert bust.fills == ()
        fill = make_fill("1")
        result = ledger.record(fill)
        assert result.outcome is RecordOutcome.BUSTED
        assert result.offset is None
        assert ledger.get(fill.key) == fill
        assert ledger.count() == 1
        assert ledger.recorded_quantity(venue="venue", account="account", order_id="order-1") == fill.size
        deliveries = ledger.undelivered(venue="venue", account="account")
        assert [(d.offset, d.fill, d.bust, d.busted_fill) for d in deliveries] == [
            (bust.offset, None, make_bust("1"), None)
        ]
        assert ledger.record(fill).outcome is RecordOutcome.DUPLICATE

    def test_bust_is_never_undone(self, ledger: FillLedger) -> None:
        ledger.bust(make_bust("1"))
        ledger.record(make_fill("1"))
        ledger.record(make_fill("1", fill_type="LIQUIDATION"))
        ledger.bust(make_bust("1"))
        assert ledger.is_busted(venue="venue", account="account", fill_id="1")
        assert all(d.fill is None for d in ledger.undelivered(venue="venue", account="account"))

    def test_bust_reverts_every_fill_type_with_that_id(self, ledger: FillLedger) -> None:
        trade = make_fill("1")
        liquidation = make_fill("1", fill_type="LIQUIDATION")
        other = make_fill("2")
        for fill in (trade, liquidation, other):
            ledger.record(fill)
        result = ledger.bust(make_bust("1"))
        assert result.fills == (trade, liquidation)
        assert ledger.undelivered(venue="venue", account="account")[-1].busted_fill == trade
        assert not ledger.is_busted(venue="venue", account="account", fill_id="2")

    def test_bust_is_per_account_and_venue(self, ledger: FillLedger) -> None:
        ledger.bust(make_bust("1"))
        assert not ledger.is_busted(venue="venue", account="other", fill_id="1")
        assert not ledger.is_busted(venue="other", account="account", fill_id="1")
        assert ledger.record(make_fill("1", account="other")).outcome is RecordOutcome.RECORDED

    def test_knows_fill_id(self, ledger: FillLedger) -> None:
        ledger.record(make_fill("1", fill_type="LIQUIDATION"))
        ledger.bust(make_bust("2"))
        assert ledger.knows_fill_id(venue="venue", account="account", fill_id="1")
        assert ledger.knows_fill_id(venue="venue", account="account", fill_id="2")
        assert not ledger.knows_fill_id(venue="venue", account="account", fill_id="3")
        assert not ledger.knows_fill_id(venue="venue", account="other", fill_id="1")
        assert not ledger.is_busted(venue="venue", account="account", fill_id="1")

    # -- quantities -------------------------------------------------------------

    def test_recorded_quantity_sums_every_recorded_fill_of_an_order(self, ledger: FillLedger) -> None:
        ledger.record(make_fill("1", size=Decimal("0.10")))
        ledger.record(make_fill("2", size=Decimal("0.25")))
        ledger.record(make_fill("2", size=Decimal("0.25")))  # duplicate
        ledger.record(make_fill("3", size=Decimal(9)))
        ledger.bust(make_bust("3"))  # busted fills still count
        ledger.record(make_fill("1", size=Decimal(7)))  # conflict: not counted
        ledger.record(make_fill("4", size=Decimal(5), order_id="order-2"))
        ledger.record(make_fill("5", size=Decimal(5), order_id=None))
        ledger.record(make_fill("6", size=Decimal(5), account="other"))
        assert ledger.recorded_quantity(venue="venue", account="account", order_id="order-1") == Decimal("9.35")
        assert ledger.recorded_quantity(venue="venue", account="account", order_id="order-2") == Decimal(5)
        assert ledger.recorded_quantity(venue="venue", account="account", order_id="unknown") == Decimal(0)
        assert ledger.recorded_quantity(venue="venue", account="nobody", order_id="order-1") == Decimal(0)

    def test_recorded_quantity_is_exact(self, ledger: FillLedger) -> None:
        for n in range(10):
            ledger.record(make_fill(str(n), size=Decimal("0.1")))
        assert ledger.recorded_quantity(venue="venue", account="account", order_id="order-1") == Decimal(1)

    # -- the watermark ----------------------------------------------------------

    def test_watermark_starts_unset(self, ledger: FillLedger) -> None:
        assert ledger.watermark(venue="venue", account="account") is None

    def test_watermark_only_moves_forward(self, ledger: FillLedger) -> None:
        assert ledger.advance_watermark(venue="venue", account="account", value=100) == 100
        assert ledger.advance_watermark(venue="venue", account="account", value=50) == 100
        assert ledger.watermark(venue="venue", account="account") == 100
        assert ledger.advance_watermark(venue="venue", account="account", value=100) == 100
        assert ledger.advance_watermark(venue="venue", account="account", value=101) == 101
        assert ledger.watermark(venue="venue", account="account") == 101

    def test_watermarks_are_per_account_and_scope(self, ledger: FillLedger) -> None:
        ledger.advance_watermark(venue="venue", account="account", value=100)
        ledger.advance_watermark(venue="venue", account="account", value=7, scope="ETH-USD-PERP")
        assert ledger.watermark(venue="venue", account="account", scope="ETH-USD-PERP") == 7
        assert ledger.watermark(venue="venue", account="account") == 100
        assert ledger.watermark(venue="venue", account="other") is None
        assert ledger.watermark(venue="other", account="account") is None
        assert ledger.watermark(venue="venue", account="account", scope="BTC-USD-PERP") is None

    # -- the outbox ------------------------------------------------------------------

    def test_undelivered_is_per_account_in_offset_order(self, ledger: FillLedger) -> None:
        mine = [_record_new(ledger, make_fill(str(n))) for n in range(5)]
        ledger.record(make_fill("x", account="other"))
        deliveries = ledger.undelivered(venue="venue", account="account")
        assert _offsets(deliveries) == mine
        assert [d.fill.key.fill_id for d in deliveries if d.fill] == ["0", "1", "2", "3", "4"]
        assert ledger.undelivered(venue="venue", account="nobody") == []

    def test_undelivered_after_and_limit(self, ledger: FillLedger) -> None:
        offsets = [_record_new(ledger, make_fill(str(n))) for n in range(6)]
        assert _offsets(ledger.undelivered(venue="venue", account="account", limit=2)) == offsets[:2]
        assert _offsets(ledger.undelivered(venue="venue", account="account", after=offsets[1], limit=3)) == offsets[2:5]
        assert _offsets(ledger.undelivered(venue="venue", account="account", after=offsets[-1])) == []

    def test_acknowledged_entries_leave_the_outbox(self, ledger: FillLedger) -> None:
        offsets = [_record_new(ledger, make_fill(str(n))) for n in range(4)]
        ledger.acknowledge([offsets[0], offsets[2]])
        assert _offsets(ledger.undelivered(venue="venue", account="account")) == [offsets[1], offsets[3]]
        ledger.acknowledge([offsets[0], 10**9])  # again, and unknown: no effect
        ledger.acknowledge([])
        assert _offsets(ledger.undelivered(venue="venue", account="account")) == [offsets[1], offsets[3]]
        ledger.commit()
        assert _offsets(ledger.undelivered(venue="venue", account="account")) == [offsets[1], offsets[3]]

    def test_acknowledged_fills_are_still_known(self, ledger: FillLedger) -> None:
        fill = make_fill("1")
        offset = ledger.record(fill).offset
        assert offset is not None
        ledger.acknowledge([offset])
        ledger.commit()
        assert ledger.get(fill.key) == fill
        assert ledger.record(fill).outcome is RecordOutcome.DUPLICATE
        assert ledger.undelivered(venue="venue", account="account") == []

    def test_acknowledge_accepts_any_iterable(self, ledger: FillLedger) -> None:
        offsets = [_record_new(ledger, make_fill(str(n))) for n in range(3)]
        ledger.acknowledge(o for o in offsets[:2])
        assert _offsets(ledger.undelivered(venue="venue", account="account")) == offsets[2:]

    def test_commit_and_close_are_idempotent(self, make_ledger: LedgerFactory) -> None:
        ledger = make_ledger("closing")
        ledger.record(make_fill("1"))
        ledger.commit()
        ledger.commit()
        ledger.close()
        ledger.close()

    # -- the state machine ------------------------------------------------------

    def test_state_machine(self, make_ledger: LedgerFactory) -> None:
        run_state_machine_as_test(ledger_state_machine(make_ledger, persistent=self.persistent))


def ledger_offset(ledger: FillLedger, fill: Fill) -> int:
    """The outbox offset of ``fill`` (which must be undelivered)."""
    for delivery in ledger.undelivered(venue=fill.key.venue, account=fill.key.account, limit=10**6):
        if delivery.fill is not None and delivery.fill.key == fill.key:
            return delivery.offset
    msg = f"{fill.key} is not in the outbox"
    raise AssertionError(msg)


class PersistentFillLedgerContract(FillLedgerContract):
    """The contract of a durable ledger: everything committed survives a reopen."""

    persistent: ClassVar[bool] = True

    @staticmethod
    def reopen(ledger: FillLedger, open_ledger: LedgerFactory, name: str = "contract") -> FillLedger:
        """Commit, close and open the same store again."""
        ledger.commit()
        ledger.close()
        return open_ledger(name)

    def test_committed_state_survives_a_reopen(self, ledger: FillLedger, open_ledger: LedgerFactory) -> None:
        fill = make_fill("1", size=Decimal("1.50"))
        late = make_fill("2")
        conflict = make_fill("1", size=Decimal(3))
        offset = ledger.record(fill).offset
        ledger.record(conflict)
        bust = ledger.bust(make_bust("2"))
        ledger.record(late)
        ledger.advance_watermark(venue="venue", account="account", value=42)
        ledger.advance_watermark(venue="venue", account="account", value=7, scope="BTC-USD-PERP")
        before = list(ledger.undelivered(venue="venue", account="account"))

        ledger = self.reopen(ledger, open_ledger)
        assert _exact(ledger.get(fill.key)) == _exact(fill)
        assert ledger.get(late.key) == late
        assert ledger.count() == 2
        assert ledger.is_busted(venue="venue", account="account", fill_id="2")
        assert ledger.knows_fill_id(venue="venue", account="account", fill_id="1")
        assert ledger.recorded_quantity(venue="venue", account="account", order_id="order-1") == Decimal("1.510")
        assert ledger.watermark(venue="venue", account="account") == 42
        assert ledger.watermark(venue="venue", account="account", scope="BTC-USD-PERP") == 7
        assert list(ledger.undelivered(venue="venue", account="account")) == before
        assert _offsets(before) == [offset, bust.offset]
        assert ledger.record(conflict).outcome is RecordOutcome.DUPLICATE  # the conflict was reported
        assert ledger.record(late).outcome is RecordOutcome.DUPLICATE
        assert not ledger.bust(make_bust("2")).new
        assert ledger.record(make_fill("2", fill_type="LIQUIDATION")).outcome is RecordOutcome.BUSTED

    def test_noted_live_orders_survive_a_reopen(self, ledger: FillLedger, open_ledger: LedgerFactory) -> None:
        note = getattr(ledger, "note_orders", None)
        if note is None or getattr(ledger, "live_orders", None) is None:
            pytest.skip("this ledger does not note live orders")
        kept = OrderRef(
            order_id="order-a", client_id="client-a", instrument="BTC-USD-PERP", created_at=1_700_000_000_000
        )
        note(venue="venue", account="account", live=[kept, attrs.evolve(kept, order_id="order-b")], ended=[])
        note(venue="venue", account="account", live=[], ended=["order-b"])
        ledger = self.reopen(ledger, open_ledger)
        assert list(ledger.live_orders(venue="venue", account="account")) == [kept]  # type: ignore[attr-defined]

    def test_only_unacknowledged_entries_are_delivered_after_a_reopen(
        self, ledger: FillLedger, open_ledger: LedgerFactory
    ) -> None:
        offsets = [_record_new(ledger, make_fill(str(n))) for n in range(6)]
        ledger.commit()
        ledger.acknowledge(o for o in offsets[::2])
        ledger = self.reopen(ledger, open_ledger)
        assert _offsets(ledger.undelivered(venue="venue", account="account")) == offsets[1::2]

    def test_offsets_keep_growing_after_a_reopen(self, ledger: FillLedger, open_ledger: LedgerFactory) -> None:
        offsets = [_record_new(ledger, make_fill(str(n))) for n in range(3)]
        ledger.acknowledge(offsets)
        ledger = self.reopen(ledger, open_ledger)
        assert ledger.undelivered(venue="venue", account="account") == []
        fresh = ledger.record(make_fill("new")).offset
        assert fresh is not None
        assert fresh > max(offsets)

    def test_close_commits(self, open_ledger: LedgerFactory) -> None:
        ledger = open_ledger("flush")
        fill = make_fill("1")
        ledger.record(fill)
        ledger.advance_watermark(venue="venue", account="account", value=5)
        ledger.close()
        ledger = open_ledger("flush")
        assert ledger.get(fill.key) == fill
        assert ledger.watermark(venue="venue", account="account") == 5

    def test_stores_are_independent(self, open_ledger: LedgerFactory) -> None:
        one = open_ledger("one")
        two = open_ledger("two")
        one.record(make_fill("1"))
        assert two.get(make_fill("1").key) is None
        assert two.count() == 0


# -- the stateful model ----------------------------------------------------------------------

_VENUES = ("v1", "v2")
_ACCOUNTS = ("a1", "a2")
_TYPES = ("FILL", "LIQUIDATION")
_IDS = ("1", "2", "3", "4")
_ORDERS = (None, "o1", "o2")
_SCOPES = ("", "BTC-USD-PERP")

_fills = st.builds(
    make_fill,
    fill_id=st.sampled_from(_IDS),
    venue=st.sampled_from(_VENUES),
    account=st.sampled_from(_ACCOUNTS),
    fill_type=st.sampled_from(_TYPES),
    order_id=st.sampled_from(_ORDERS),
    size=st.sampled_from([Decimal(1), Decimal("1.0"), Decimal("2.50"), Decimal(0)]),
    price=st.sampled_from([Decimal(100), Decimal("100.5")]),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    time=st.sampled_from([1, 2]),
    source=st.sampled_from(list(Source)),
    client_id=st.sampled_from([None, "c-1"]),
    realized_pnl=st.sampled_from([None, Decimal("1.10")]),
)
_busts = st.builds(
    make_bust,
    fill_id=st.sampled_from(_IDS),
    venue=st.sampled_from(_VENUES),
    account=st.sampled_from(_ACCOUNTS),
    time=st.integers(0, 3),
)


@attrs.define
class _Model:
    """The reference: what a ledger must hold, in plain dictionaries."""

    fills: dict[FillKey, Fill] = attrs.field(factory=dict)
    order: list[FillKey] = attrs.field(factory=list)
    conflicts: set[tuple[FillKey, tuple[object, ...]]] = attrs.field(factory=set)
    busts: dict[tuple[str, str, str], FillBust] = attrs.field(factory=dict)
    outbox: dict[int, tuple[tuple[str, str], Delivery]] = attrs.field(factory=dict)
    watermarks: dict[tuple[str, str, str], int] = attrs.field(factory=dict)

    def quantity(self, venue: str, account: str, order_id: str) -> Decimal:
        return sum(
            (f.size for k, f in self.fills.items() if (k.venue, k.account, f.order_id) == (venue, account, order_id)),
            Decimal(0),
        )


_machine_names = itertools.count()


class LedgerStateMachine(RuleBasedStateMachine):
    """Random ledger histories checked against a reference model.

    Use :func:`ledger_state_machine` to bind it to a ledger factory.
    """

    make_ledger: ClassVar[LedgerFactory]
    persistent: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.name = f"machine-{next(_machine_names)}"
        self.ledger = type(self).make_ledger(self.name)
        self.model = _Model()
        #: The highest offset handed out, and the highest one committed.
        self.highest_issued = 0
        self.highest_committed = 0

    def teardown(self) -> None:
        self.ledger.close()

    def _take(self, offset: int | None) -> int:
        assert isinstance(offset, int), f"expected a delivery offset, got {offset!r}"
        assert offset > self.highest_issued, f"offset {offset} is not above {self.highest_issued}"
        assert offset > self.highest_committed, f"committed offset {self.highest_committed} was reused"
        self.highest_issued = offset
        return offset

    @rule(fill=_fills)
    def record(self, fill: Fill) -> None:
        model = self.model
        result = self.ledger.record(fill)
        key = fill.key
        existing = model.fills.get(key)
        if existing is not None:
            if existing.content() == fill.content() or (key, fill.content()) in model.conflicts:
                assert result.outcome is RecordOutcome.DUPLICATE, result
                return
            model.conflicts.add((key, fill.content()))
            assert result.outcome is RecordOutcome.CONFLICT, result
            assert _exact(result.existing) == _exact(existing)
            return
        model.fills[key] = fill
        model.order.append(key)
        if (key.venue, key.account, key.fill_id) in model.busts:
            assert result.outcome is RecordOutcome.BUSTED, result
            assert result.offset is None
            return
        assert result.outcome is RecordOutcome.RECORDED, result
        offset = self._take(result.offset)
        model.outbox[offset] = ((key.venue, key.account), Delivery(offset=offset, fill=fill))

    @rule(fill=_fills)
    def record_again(self, fill: Fill) -> None:
        """Re-record a fill already in the model (a duplicate, or an altered copy)."""
        if self.model.order:
            key = self.model.order[len(self.model.order) // 2]
            same = self.model.fills[key]
            assert self.ledger.record(same).outcome is RecordOutcome.DUPLICATE
            self.record(attrs.evolve(fill, key=key))

    @rule(bust=_busts)
    def bust(self, bust: FillBust) -> None:
        model = self.model
        result = self.ledger.bust(bust)
        id_key = (bust.venue, bust.account, bust.fill_id)
        if id_key in model.busts:
            assert not result.new
            assert result.offset is None
            return
        assert result.new
        offset = self._take(result.offset)
        reverted = tuple(model.fills[k] for k in model.order if (k.venue, k.account, k.fill_id) == id_key)
        assert [_exact(f) for f in result.fills] == [_exact(f) for f in reverted]
        model.busts[id_key] = bust
        delivery = Delivery(offset=offset, bust=bust, busted_fill=reverted[0] if reverted else None)
        model.outbox[offset] = ((bust.venue, bust.account), delivery)

    @rule(data=st.data())
    def acknowledge(self, data: st.DataObject) -> None:
        known = sorted(self.model.outbox)
        chosen = data.draw(st.lists(st.sampled_from(known), unique=True) if known else st.just([]), label="acked")
        stray = data.draw(st.lists(st.integers(10**9, 10**9 + 5), max_size=1), label="unknown offsets")
        self.ledger.acknowledge([*chosen, *stray])
        for offset in chosen:
            del self.model.outbox[offset]

    @rule()
    def commit(self) -> None:
        self.ledger.commit()
        self.highest_committed = self.highest_issued

    @rule(
        venue=st.sampled_from(_VENUES),
        account=st.sampled_from(_ACCOUNTS),
        scope=st.sampled_from(_SCOPES),
        value=st.integers(0, 5),
    )
    def advance_watermark(self, venue: str, account: str, scope: str, value: int) -> None:
        key = (venue, account, scope)
        expected = max(value, self.model.watermarks.get(key, value))
        assert self.ledger.advance_watermark(venue=venue, account=account, value=value, scope=scope) == expected
        self.model.watermarks[key] = expected

    @precondition(lambda self: self.persistent)
    @rule(commit_first=st.booleans())
    def reopen(self, commit_first: bool) -> None:
        """Close (which commits) and open the same store again."""
        if commit_first:
            self.ledger.commit()
        self.ledger.close()
        self.ledger = type(self).make_ledger(self.name)
        self.highest_committed = self.highest_issued

    @invariant()
    def agrees_with_the_model(self) -> None:
        ledger, model = self.ledger, self.model
        for key, fill in model.fills.items():
            assert _exact(ledger.get(key)) == _exact(fill), key
        for venue, account in itertools.product(_VENUES, _ACCOUNTS):
            in_account = sum(1 for k in model.fills if (k.venue, k.account) == (venue, account))
            assert ledger.count(venue=venue, account=account) == in_account
            expected = [d for offset, (where, d) in sorted(model.outbox.items()) if where == (venue, account)]
            got = list(ledger.undelivered(venue=venue, account=account, limit=10**6))
            assert got == expected, (venue, account)
            if len(expected) > 1:
                window = ledger.undelivered(venue=venue, account=account, after=expected[0].offset, limit=2)
                assert list(window) == expected[1:3]
            for fill_id in _IDS:
                id_key = (venue, account, fill_id)
                assert ledger.is_busted(venue=venue, account=account, fill_id=fill_id) == (id_key in model.busts)
                knows = id_key in model.busts or any((k.venue, k.account, k.fill_id) == id_key for k in model.fills)
                assert ledger.knows_fill_id(venue=venue, account=account, fill_id=fill_id) == knows
            for order_id in _ORDERS:
                if order_id is not None:
                    quantity = ledger.recorded_quantity(venue=venue, account=account, order_id=order_id)
                    assert quantity == model.quantity(venue, account, order_id)
            for scope in _SCOPES:
                expected_mark = model.watermarks.get((venue, account, scope))
                assert ledger.watermark(venue=venue, account=account, scope=scope) == expected_mark
        assert ledger.count() == len(model.fills)
        assert ledger.count(venue=_VENUES[0]) == sum(1 for k in model.fills if k.venue == _VENUES[0])
        assert ledger.count(account=_ACCOUNTS[1]) == sum(1 for k in model.fills if k.account == _ACCOUNTS[1])


def ledger_state_machine(make_ledger: LedgerFactory, *, persistent: bool) -> type[LedgerStateMachine]:
    """A :class:`LedgerStateMachine` bound to ``make_ledger``; run it with ``run_state_machine_as_test``."""
    return type(
        "BoundLedgerStateMachine",
        (LedgerStateMachine,),
        {"make_ledger": staticmethod(make_ledger), "persistent": persistent},
    )
