"""The simulator's ground truth: determinism and Paradex's lifecycle invariants."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from reconcile_core.errors import UsageError
from reconcile_paradex.testing import FILL_TYPES, WS_SEQ_SKEW_MS, AccountTruth, ActivityMix, ParadexSimulator
from reconcile_paradex.testing._venue import Feed

SEEDS = [0, 1, 2, 3, 4]


def _history_without_settlement(sim: ParadexSimulator) -> str:
    history = sim.history()
    for account in history["accounts"].values():
        for fill in account["fills"]:
            del fill["settled_at"]
    return json.dumps(history, sort_keys=True)


def _spy(sim: ParadexSimulator) -> list[Feed]:
    """Feeds that see every event of every account, as a WebSocket subscriber would."""
    feeds = []
    markets = [m.symbol for m in sim.markets]
    for account in sim.accounts:
        feed = Feed(account)
        feed.CAPACITY = 1_000_000
        feed.channels |= {"orders.ALL", "fills.ALL", "positions", "tradebusts", "account"}
        feed.channels |= {f"fills.{m}" for m in markets}
        sim.venue.attach(feed)
        feeds.append(feed)
    return feeds


def test_same_seed_same_history() -> None:
    first, second = ParadexSimulator(seed=42), ParadexSimulator(seed=42)
    first.run_until(steps=800)
    second.run_until(steps=800)
    assert first.history_json() == second.history_json()
    other = ParadexSimulator(seed=43)
    other.run_until(steps=800)
    assert other.history_json() != first.history_json()


def test_faults_do_not_change_the_history() -> None:
    quiet, noisy = ParadexSimulator(seed=9), ParadexSimulator(seed=9, faults="heavy")
    quiet.run_until(steps=600)
    noisy.run_until(steps=600)
    # Only the settlement jitter (a fault) may differ.
    assert _history_without_settlement(quiet) == _history_without_settlement(noisy)
    assert quiet.history_json() != noisy.history_json()


def test_histories_with_300_fills_come_quickly() -> None:
    sim = ParadexSimulator(seed=5)
    steps = sim.run_until(fills=300)
    fills = sum(len(sim.truth(a).fills) + len(sim.truth(a).busted_fills) for a in sim.accounts)
    assert fills >= 300
    assert steps < 1500


def test_every_fill_type_and_order_path_occurs() -> None:
    sim = ParadexSimulator(seed=11)
    sim.run_until(steps=4000)
    fill_types: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    types: Counter[str] = Counter()
    replaced = 0
    for account in sim.accounts:
        truth = sim.truth(account)
        fill_types.update(f.fill_type for f in truth.fills)
        reasons.update(o.cancel_reason for o in truth.orders.values() if o.status == "CLOSED")
        types.update(o.type for o in truth.orders.values())
        replaced += sum(o.replaced_by is not None for o in truth.orders.values())
        assert truth.busts
    assert set(fill_types) == FILL_TYPES
    assert {"", "USER_CANCELED", "NOT_ENOUGH_MARGIN", "ORDER_EXCEEDS_POSITION_LIMIT", "EXPIRED"} <= set(reasons)
    assert {"LIMIT", "MARKET"} <= set(types)
    assert any(t.startswith(("STOP", "TAKE_PROFIT")) for t in types)
    assert replaced > 0


def _check_account(truth: AccountTruth, sim: ParadexSimulator) -> None:
    all_fills = sorted((*truth.fills, *truth.busted_fills), key=lambda f: f.sequence)
    by_order: dict[str, list[Decimal]] = defaultdict(list)
    notional: dict[str, Decimal] = defaultdict(Decimal)
    for fill in all_fills:
        assert fill.remaining_size >= 0
        assert fill.settled_at >= fill.created_at + sim.settlement_lag_ms
        assert len(fill.id) == 28
        assert fill.id.startswith(str(fill.created_at))
        if fill.fill_type in ("FILL", "RPI"):
            by_order[fill.order_id].append(fill.size)
            notional[fill.order_id] += fill.price * fill.size
        else:
            assert fill.order_id == ""
    for order in truth.orders.values():
        assert order.id.startswith(str(order.created_at))
        assert 0 <= order.remaining_size <= order.size
        # Fills (busted or not: a bust does not change the order) sum to the filled size.
        assert sum(by_order.get(order.id, []), Decimal(0)) == order.size - order.remaining_size
        if order.id in by_order:
            expected = (notional[order.id] / sum(by_order[order.id])).quantize(Decimal("0.00000001"))
            assert order.avg_fill_price == expected
        else:
            assert order.avg_fill_price is None
        if order.status == "CLOSED":
            # Filled iff nothing remains; otherwise canceled or rejected with a reason.
            assert (order.remaining_size == 0) == (order.cancel_reason == "")
        else:
            assert order.cancel_reason == ""
        if order.replaced_by is not None:
            assert order.status == "CLOSED"
            assert order.replaced_by in truth.orders
    traded = {f.market for f in all_fills}
    assert set(truth.positions) == traded
    for market, position in truth.positions.items():
        kept = [f for f in truth.fills if f.market == market]
        assert position.size == sum((f.signed_size for f in kept), Decimal(0))
        assert position.last_fill_id == (kept[-1].id if kept else "")
        assert (position.status == "CLOSED") == (position.size == 0)
        assert position.id == f"{truth.account}-{market}"
    busted = {f.id for f in truth.busted_fills}
    assert busted == {b.fill_id for b in truth.busts}


@pytest.mark.parametrize("seed", SEEDS)
def test_lifecycle_invariants(seed: int) -> None:
    sim = ParadexSimulator(seed=seed, accounts=3)
    sim.run_until(steps=1500)
    for account in sim.accounts:
        _check_account(sim.truth(account), sim)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_every_version_is_newer_and_seq_series_are_separate(seed: int) -> None:
    sim = ParadexSimulator(seed=seed)
    feeds = _spy(sim)
    sim.run_until(steps=1500)
    for feed in feeds:
        messages = feed.drain()
        assert not feed.overflowed
        last_time: dict[tuple[str, str], int] = {}
        last_seq: dict[tuple[str, str], int] = {}
        statuses: dict[str, list[str]] = defaultdict(list)
        for channel, data in messages:
            if channel in ("orders.ALL", "positions", "account"):
                key = (channel, data.get("id", data["account"]))
                stamp = data.get("last_updated_at", data.get("updated_at"))
                assert stamp > last_time.get(key, 0), (channel, data)
                assert data["seq_no"] > last_seq.get(key, 0)
                last_time[key], last_seq[key] = stamp, data["seq_no"]
            if channel == "orders.ALL":
                statuses[data["id"]].append(data["status"])
        truth = sim.truth(feed.account)
        for order_id, seen in statuses.items():
            order = truth.orders[order_id]
            assert seen[0] == ("UNTRIGGERED" if order.type.startswith(("STOP", "TAKE")) else "NEW")
            assert "CLOSED" not in seen[:-1]
            assert seen[-1] == order.status
            # The last WS version and the REST version are the same version, with
            # seq_no from two series: the WS one is "older" by the skew.
            assert order.seq_no // 1_000_000 - last_seq[("orders.ALL", order_id)] // 1_000_000 == WS_SEQ_SKEW_MS


def test_bust_reverts_the_position_but_not_the_order() -> None:
    sim = ParadexSimulator(seed=0, accounts=1)
    venue = sim.venue
    account = sim.accounts[0]
    order = venue.place_order(account, market="BTC-USD-PERP", side="BUY", size=Decimal("0.01"), price=Decimal(95000))
    venue.accept_order(order.id)
    first, second = venue.fill_order(order.id, [(Decimal(95000), Decimal("0.004")), (Decimal(95000), Decimal("0.006"))])
    assert first.created_at == second.created_at
    assert second.remaining_size == 0
    venue.bust_fill(account, first.id)
    truth = sim.truth(account)
    assert truth.orders[order.id].remaining_size == 0
    assert truth.orders[order.id].status == "CLOSED"
    assert truth.positions["BTC-USD-PERP"].size == Decimal("0.006")
    assert truth.positions["BTC-USD-PERP"].last_fill_id == second.id
    venue.bust_fill(account, second.id)
    position = sim.truth(account).positions["BTC-USD-PERP"]
    assert (position.size, position.status, position.last_fill_id) == (0, "CLOSED", "")
    with pytest.raises(UsageError, match="already busted"):
        venue.bust_fill(account, second.id)


def test_scripted_misuse_is_refused_with_a_usage_error() -> None:
    sim = ParadexSimulator(seed=0, accounts=1)
    venue = sim.venue
    account = sim.accounts[0]
    with pytest.raises(UsageError, match="unknown account"):
        venue.place_order("0xnobody", market="BTC-USD-PERP", side="BUY", size=Decimal(1))
    with pytest.raises(UsageError, match="unknown market"):
        venue.place_order(account, market="DOGE-USD-PERP", side="BUY", size=Decimal(1))
    order = venue.place_order(account, market="ETH-USD-PERP", side="SELL", size=Decimal(1), client_id="c1")
    with pytest.raises(UsageError, match="DUPLICATED_CLIENT_ID"):
        venue.place_order(account, market="ETH-USD-PERP", side="SELL", size=Decimal(1), client_id="c1")
    venue.cancel_order(order.id)
    with pytest.raises(UsageError, match="status is CLOSED"):
        venue.cancel_order(order.id)
    with pytest.raises(UsageError, match="steps= or fills="):
        sim.run_until()
    with pytest.raises(ValueError, match="fill must be an int >= 0"):
        ActivityMix(fill=-1)
    with pytest.raises(ValueError, match="same_ms_probability"):
        ActivityMix(same_ms_probability=1.5)
