"""``merge_many`` is merging each observation in turn, also when the ledger records runs of fills at once.

With a ledger that has ``record_many`` (both built-in ledgers do), the
reconciler hands it each run of consecutive fills in one call. The output must
not tell: the same events in the same order, the same needs, the same state,
the same ledger. The subtle part is the gap check, which must see each
order's recorded quantity as it was right after *that* fill, not after the run;
the broken variant below checks against the quantity after the run, and the
property must catch it.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile_core import (
    AccountReconciler,
    Discrepancy,
    DiscrepancyKind,
    Event,
    Fill,
    MemoryLedger,
    OrderStatus,
    RecordResult,
)
from reconcile_core._reconciler import _Out
from reconcile_core.errors import UsageError
from reconcile_core.sqlite import SqliteLedger
from reconcile_core.typing import FillLedger, Observation

from ._builders import ACCOUNT, VENUE, fill, order
from .test_laws import BROKEN_SETTINGS, ORDER_IDS, busts, orders, positions

FILL_IDS = ("f1", "f2", "f3", "f4")

# Fills whose content varies (conflicts), of a few orders or none, some of another account.
varied_fills = st.builds(
    lambda fill_id, order_id, size, price, account: fill(
        fill_id, order_id=order_id, size=size, price=price, account=account
    ),
    st.sampled_from(FILL_IDS),
    st.sampled_from((*ORDER_IDS, None)),
    st.sampled_from((Decimal("0.5"), Decimal(1), Decimal(2))),
    st.sampled_from((Decimal(100), Decimal(101))),
    st.sampled_from((ACCOUNT, ACCOUNT, ACCOUNT, "someone-else")),
)
# Fill-heavy histories, so that runs of fills are common; orders say how much is filled.
histories = st.lists(st.one_of(varied_fills, varied_fills, varied_fills, orders, busts, positions), max_size=30)
# Where the history is cut into merge_many calls.
cuts = st.lists(st.integers(0, 30), max_size=4)


class OneByOne(MemoryLedger):
    """A ledger without ``record_many``: the reconciler records fill by fill."""

    record_many = None  # type: ignore[assignment]


class GapCheckAfterTheRun(AccountReconciler):
    """Broken: checks every fill's order against its recorded quantity after the whole run."""

    def _merge_fills(
        self, fills: list[Fill], record_many: Callable[[list[Fill]], Sequence[RecordResult]] | None, out: _Out
    ) -> None:
        assert record_many is not None
        for one, result in zip(fills, record_many(fills), strict=True):
            self._fill_recorded(one, result, out, None)


def _rejected(item: Observation, exc: UsageError) -> Event:
    return Discrepancy(kind=DiscrepancyKind.MALFORMED_MESSAGE, subject=type(item).__name__, detail=str(exc))


def _run(reconciler: AccountReconciler, items: list[Observation], cut_at: list[int]) -> tuple[list[Event], list[Any]]:
    events: list[Event] = []
    needs: list[Any] = []
    bounds = sorted({0, len(items), *(c for c in cut_at if c < len(items))})
    for start, end in itertools.pairwise(bounds):
        step = reconciler.merge_many(items[start:end], on_rejected=_rejected)
        events.extend(step.events)
        needs.extend(step.needs)
    return events, needs


def _one_by_one(reconciler: AccountReconciler, items: list[Observation]) -> tuple[list[Event], list[Any]]:
    events: list[Event] = []
    needs: list[Any] = []
    for item in items:
        try:
            step = reconciler.merge(item)
        except UsageError as exc:
            events.append(_rejected(item, exc))
            continue
        events.extend(step.events)
        needs.extend(step.needs)
    return events, needs


def _state(reconciler: AccountReconciler) -> tuple[Any, ...]:
    ledger = reconciler.ledger
    quantities = {
        order_id: ledger.recorded_quantity(venue=VENUE, account=ACCOUNT, order_id=order_id) for order_id in ORDER_IDS
    }
    deliveries = [(d.offset, d.fill, d.bust, d.busted_fill) for d in ledger.undelivered(venue=VENUE, account=ACCOUNT)]
    return (
        dict(reconciler.orders),
        dict(reconciler.positions),
        tuple(reconciler.needs),
        reconciler.stats,
        quantities,
        deliveries,
        ledger.count(),
    )


def _same_as_one_by_one(
    items: list[Observation],
    cut_at: list[int],
    ledger: FillLedger,
    factory: type[AccountReconciler] = AccountReconciler,
) -> None:
    expected = AccountReconciler(venue=VENUE, account=ACCOUNT, ledger=OneByOne())
    want = _one_by_one(expected, items)
    batched = factory(venue=VENUE, account=ACCOUNT, ledger=ledger)
    got = _run(batched, items, cut_at)
    assert got == want
    assert _state(batched) == _state(expected)


def merge_many_law(factory: type[AccountReconciler], the_settings: settings) -> Callable[[], None]:
    @the_settings
    @given(histories, cuts)
    def law(items: list[Observation], cut_at: list[int]) -> None:
        _same_as_one_by_one(items, cut_at, MemoryLedger(), factory)

    return law


def test_merge_many_over_a_memory_ledger_is_merging_one_by_one() -> None:
    merge_many_law(AccountReconciler, settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow]))()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, cuts)
def test_merge_many_over_a_sqlite_ledger_is_merging_one_by_one(items: list[Observation], cut_at: list[int]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        ledger = SqliteLedger(Path(scratch) / "ledger.sqlite")
        try:
            _same_as_one_by_one(items, cut_at, ledger)
        finally:
            ledger.close()


def test_the_law_catches_a_gap_check_after_the_run() -> None:
    with pytest.raises(AssertionError):
        merge_many_law(GapCheckAfterTheRun, BROKEN_SETTINGS)()


def test_a_gap_check_after_the_run_differs_on_an_overfill() -> None:
    """A filled order of 1, then two fills of 1 in one run: the overfill shows after the second, not the first."""
    items: list[Observation] = [
        order("o1", quantity=Decimal(1), filled_quantity=Decimal(1), status=OrderStatus.FILLED),
        fill("f1", order_id="o1", size=Decimal(1)),
        fill("f2", order_id="o1", size=Decimal(1)),
    ]
    _same_as_one_by_one(items, [], MemoryLedger())
    events = AccountReconciler(venue=VENUE, account=ACCOUNT, ledger=MemoryLedger()).merge_many(items).events
    assert [type(e).__name__ for e in events] == ["OrderUpdated", "FillRecorded", "FillRecorded", "Discrepancy"]
    with pytest.raises(AssertionError):
        _same_as_one_by_one(items, [], MemoryLedger(), GapCheckAfterTheRun)
