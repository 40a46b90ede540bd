"""Fault injection: profiles, each WebSocket fault's effect, REST faults, replay, quiesce."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import anyio
import attrs
import httpx
import pytest

from reconcile_core.errors import UsageError
from reconcile_paradex.testing import FaultSettings, ParadexSimulator
from reconcile_paradex.testing._venue import Feed
from tests.paradex.simulator._helpers import ALL_CHANNELS, TIMEOUT, RpcError, WsClosedError, authed_ws

pytestmark = pytest.mark.anyio


def test_profiles_and_validation() -> None:
    assert FaultSettings.profile("none") == FaultSettings()
    light, heavy = FaultSettings.profile("light"), FaultSettings.profile("heavy")
    assert 0 < light.ws_drop < heavy.ws_drop
    assert 0 < light.rest_429 < heavy.rest_429
    with pytest.raises(ValueError, match="none, light, heavy"):
        FaultSettings.profile("chaos")
    with pytest.raises(ValueError, match="probability"):
        FaultSettings(ws_drop=2.0)
    with pytest.raises(ValueError, match="low <= high"):
        FaultSettings(ws_delay_s=(1.0, 0.5))
    with pytest.raises(UsageError, match="history_window_ms"):
        ParadexSimulator(faults=FaultSettings(rest_stale=0.5, stale_lag_ms=(0, 120_000)))


async def test_ws_drops_duplicates_reorders_and_delays() -> None:
    faults = FaultSettings(ws_drop=0.1, ws_duplicate=0.1, ws_reorder=0.1, ws_delay=0.1, ws_delay_s=(0.001, 0.01))
    sim = ParadexSimulator(seed=41, accounts=1, faults=faults)
    account = sim.accounts[0]
    # A fault-free view of the same events, straight from the venue.
    spy = Feed(account)
    spy.CAPACITY = 1_000_000
    spy.channels.add("orders.ALL")
    sim.venue.attach(spy)
    sent: list[str] = []
    complete = anyio.Event()

    def texts() -> list[str]:
        return [json.dumps(n["params"]["data"], sort_keys=True) for n in client.notifications]

    async def read() -> None:
        while True:
            await client.notifications_until(len(client.notifications) + 1)
            # Drops are counted as they happen: done when every other message is here.
            if sent and len(set(texts())) == len(sent) - sim.fault_counts().ws_drop:
                complete.set()

    async with sim:
        client = await authed_ws(sim, sim.ws_connector, sim.ws_url, account, ["orders.ALL"])
        async with anyio.create_task_group() as group:
            group.start_soon(read)
            await sim.run(steps=300, batch=1)
            with sim.venue.lock:
                sent.extend(json.dumps(data, sort_keys=True) for _, data in spy.drain())
            with anyio.fail_after(TIMEOUT):
                await complete.wait()
            group.cancel_scope.cancel()
        await client.aclose()
    noisy = texts()
    counts = sim.fault_counts()
    assert min(counts.ws_drop, counts.ws_duplicate, counts.ws_reorder, counts.ws_delay) > 0
    assert set(noisy) < set(sent)
    assert len(set(sent) - set(noisy)) == counts.ws_drop
    assert sum(n - 1 for n in Counter(noisy).values()) == counts.ws_duplicate
    assert noisy != [m for m in sent if m in set(noisy)]  # something came out of order


async def test_spurious_auth_errors() -> None:
    sim = ParadexSimulator(seed=42, accounts=1, faults=FaultSettings(ws_auth_error=1.0))
    async with sim:
        with pytest.raises(RpcError, match="40111"):
            await authed_ws(sim, sim.ws_connector, sim.ws_url, sim.accounts[0], [])
    assert sim.fault_counts().ws_auth_error == 1


#: The heavy profile with short real-time waits, to keep the suite fast.
QUICK_HEAVY = attrs.evolve(FaultSettings.profile("heavy"), rest_slow_s=(0.001, 0.005), ws_delay_s=(0.001, 0.005))


async def test_heavy_profile_injects_faults_of_many_kinds() -> None:
    sim = ParadexSimulator(seed=43, accounts=1, faults=QUICK_HEAVY)
    account = sim.accounts[0]
    token = sim.issue_token(account)
    headers = {"Authorization": f"Bearer {token}"}
    statuses: Counter[int] = Counter()
    async with sim, httpx.AsyncClient(transport=sim.http_transport(), base_url=sim.rest_url) as http:
        received = 0
        while received < 250:
            try:
                client = await authed_ws(sim, sim.ws_connector, sim.ws_url, account, ALL_CHANNELS)
            except (RpcError, WsClosedError):  # a spurious 40111 or an early drop: connect again
                continue
            try:
                while received < 250:
                    await sim.run(steps=20)
                    before = len(client.notifications)
                    await client.notifications_until(before + 1)
                    received += len(client.notifications) - before
                    path = ("/fills", "/orders", "/positions", "/tradebusts")[received % 4]
                    response = await http.get(path, params={"page_size": 5}, headers=headers)
                    statuses[response.status_code] += 1
            except WsClosedError:
                pass
            finally:
                await client.aclose()
    counts = sim.fault_counts()
    for name in ("ws_drop", "ws_duplicate", "ws_reorder", "ws_delay", "rest_429", "rest_500", "rest_stale"):
        assert getattr(counts, name) > 0, counts
    assert counts.ws_disconnect + counts.ws_close_frame > 0
    assert statuses[429] == counts.rest_429
    assert statuses[500] + statuses[503] == counts.rest_500
    assert counts.total > 50


async def test_rest_faults_replay_for_a_seed() -> None:
    async def statuses(seed: int) -> list[int]:
        sim = ParadexSimulator(seed=seed, accounts=1, faults=QUICK_HEAVY)
        async with httpx.AsyncClient(transport=sim.http_transport(), base_url=sim.rest_url) as http:
            return [(await http.get("/system/state")).status_code for _ in range(200)]

    first, again, other = await statuses(5), await statuses(5), await statuses(6)
    assert first == again
    assert first != other
    assert set(first) > {200}


async def test_page_splits_fall_inside_bursts_and_lose_nothing() -> None:
    sim = ParadexSimulator(seed=44, accounts=1, faults=FaultSettings(page_split=1.0))
    account = sim.accounts[0]
    venue = sim.venue
    for _ in range(3):
        order = venue.place_order(account, market="ETH-USD-PERP", side="BUY", size=Decimal(9), price=Decimal(3000))
        venue.accept_order(order.id)
        venue.fill_order(order.id, [(Decimal(3000), Decimal(1))] * 4)
    sim.advance(sim.max_settlement_lag_ms)
    headers = {"Authorization": f"Bearer {sim.issue_token(account)}"}
    ids: list[str] = []
    sizes: list[int] = []
    async with httpx.AsyncClient(transport=sim.http_transport(), base_url=sim.rest_url) as http:
        params: dict[str, object] = {"page_size": 100}
        while True:
            body = (await http.get("/fills", params=params, headers=headers)).json()
            ids += [f["id"] for f in body["results"]]
            sizes.append(len(body["results"]))
            if body["next"] is None:
                break
            params["cursor"] = body["next"]
    assert sorted(ids) == sorted(f.id for f in sim.truth(account).fills)
    assert len(ids) == len(set(ids)) == 12
    assert sizes[0] == 1  # cut right after the first fill of the newest burst
    assert sim.fault_counts().page_split >= 3


async def test_quiesce_turns_faults_off_and_lets_settlement_catch_up() -> None:
    sim = ParadexSimulator(seed=45, accounts=1, faults="heavy", settlement_lag_ms=50)
    sim.run_until(fills=100)
    assert sim.max_settlement_lag_ms > 50
    now = sim.quiesce()
    assert sim.faults == FaultSettings.profile("none")
    truth = sim.truth(sim.accounts[0])
    assert all(f.settled_at <= now for f in (*truth.fills, *truth.busted_fills))
    before = sim.fault_counts()
    headers = {"Authorization": f"Bearer {sim.issue_token(sim.accounts[0])}"}
    async with httpx.AsyncClient(transport=sim.http_transport(), base_url=sim.rest_url) as http:
        body = (await http.get("/fills", params={"page_size": 5000}, headers=headers)).json()
        for _ in range(50):
            assert (await http.get("/orders", headers=headers)).status_code == 200
    assert len(body["results"]) == len(truth.fills) + len(truth.busted_fills)
    assert sim.fault_counts() == before
