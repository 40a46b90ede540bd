"""The chaos checks can fail: each broken promise, planted in a real clean run, is reported."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import anyio
import attrs
import pytest

from reconcile_core import Discrepancy, DiscrepancyKind, OrderStatus, OrderUpdated

from ._harness import Case, Consumer, Outcome, Run, problems, run_case, truth_fills


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Run:
    case = Case(seed=0, profile="light", backend="asyncio", fills=80)
    return anyio.run(run_case, case, Path(tmp_path_factory.mktemp("checks")), backend="asyncio")


def clone(run: Run) -> Run:
    """A copy of ``run`` whose parts can be broken without touching the original."""
    outcomes = []
    for outcome in run.outcomes:
        consumer = copy.copy(outcome.consumer)
        consumer.fills = Counter(consumer.fills)
        consumer.redelivered = Counter(consumer.redelivered)
        consumer.busts = Counter(consumer.busts)
        consumer.bust_carried_fill = set(consumer.bust_carried_fill)
        consumer.backwards = list(consumer.backwards)
        consumer.incoherent = list(consumer.incoherent)
        consumer.forbidden = list(consumer.forbidden)
        consumer._last = dict(consumer._last)
        consumer._last_known = dict(consumer._last_known)
        outcomes.append(
            attrs.evolve(
                outcome,
                orders=dict(outcome.orders),
                positions=dict(outcome.positions),
                consumer=consumer,
                ledger=attrs.evolve(outcome.ledger, stored=dict(outcome.ledger.stored)),
            )
        )
    return attrs.evolve(run, outcomes=outcomes, error_logs=list(run.error_logs))


def _outcome(run: Run) -> Outcome:
    return run.outcomes[0]


def _a_fill(run: Run) -> object:
    unbusted, _busted = truth_fills(_outcome(run).truth)
    return next(iter(unbusted))


def deliver_twice(run: Run) -> None:
    _outcome(run).consumer.fills[_a_fill(run)] += 1  # type: ignore[index]


def lose_a_fill(run: Run) -> None:
    del _outcome(run).consumer.fills[_a_fill(run)]  # type: ignore[arg-type]


def extra_bust(run: Run) -> None:
    _outcome(run).consumer.busts["no-such-fill"] += 1


def forget_an_order(run: Run) -> None:
    orders = _outcome(run).orders
    del orders[next(iter(orders))]


def corrupt_an_order(run: Run) -> None:
    orders = _outcome(run).orders
    oid = next(iter(orders))
    orders[oid] = attrs.evolve(orders[oid], filled_quantity=orders[oid].filled_quantity + 1)


def invent_an_order(run: Run) -> None:
    orders = _outcome(run).orders
    order = next(iter(orders.values()))
    orders["invented"] = attrs.evolve(order, order_id="invented")


def shift_a_position(run: Run) -> None:
    positions = _outcome(run).positions
    market = next(iter(positions))
    positions[market] = attrs.evolve(positions[market], size=positions[market].size + Decimal(1))


def lose_from_ledger(run: Run) -> None:
    _outcome(run).ledger.stored[_a_fill(run)] = None  # type: ignore[index]


def leave_unacknowledged(run: Run) -> None:
    outcome = _outcome(run)
    outcome.ledger = attrs.evolve(outcome.ledger, undelivered=3)


def stay_unknown(run: Run) -> None:
    outcome = _outcome(run)
    outcome.health = attrs.evolve(outcome.health, unknown_orders=1)


def simulator_bug(run: Run) -> None:
    run.server_errors = ("KeyError in /fills",)


def error_log(run: Run) -> None:
    run.error_logs.append("reconcile_core.runtime: the session failed")


def move_an_order_back(run: Run) -> None:
    consumer: Consumer = _outcome(run).consumer
    newer = next(o for o in _outcome(run).orders.values() if o.status is OrderStatus.FILLED)
    older = attrs.evolve(newer, status=OrderStatus.OPEN, updated_at=newer.updated_at - 1)
    consumer._last = {}
    consumer._last_known = {}
    consumer.take(OrderUpdated(order=newer, previous=None))
    consumer.take(OrderUpdated(order=older, previous=newer))


def conflicting_fill(run: Run) -> None:
    _outcome(run).consumer.take(
        Discrepancy(kind=DiscrepancyKind.FILL_CONFLICT, subject="fill FILL:1", detail="same key, other content")
    )


BREAKAGES: list[tuple[Callable[[Run], None], str]] = [
    (deliver_twice, "delivered 2 times"),
    (lose_a_fill, "delivered 0 times"),
    (extra_bust, "busts delivered"),
    (forget_an_order, "unknown to the session"),
    (corrupt_an_order, "differs"),
    (invent_an_order, "never had"),
    (shift_a_position, "position"),
    (lose_from_ledger, "not in the ledger"),
    (leave_unacknowledged, "unacknowledged"),
    (stay_unknown, "did not converge"),
    (simulator_bug, "simulator hit bugs"),
    (error_log, "error logs"),
    (move_an_order_back, "moved back"),
    (conflicting_fill, "fill_conflict"),
]


def test_the_clean_run_keeps_every_promise(clean: Run) -> None:
    assert problems(clean) == []
    truth = _outcome(clean).truth
    assert len(truth.fills) >= 80 // 2
    assert _outcome(clean).consumer.fills


@pytest.mark.parametrize(("breakage", "reported"), BREAKAGES, ids=[b.__name__ for b, _ in BREAKAGES])
def test_a_broken_promise_is_reported(clean: Run, breakage: Callable[[Run], None], reported: str) -> None:
    broken = clone(clean)
    breakage(broken)
    found = problems(broken)
    assert any(reported in problem for problem in found), found
    assert problems(clean) == [], "breaking the clone touched the original"
