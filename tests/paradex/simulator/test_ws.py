"""The WebSocket JSON-RPC: auth, subscribe, notifications, disconnects; in-process and on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest

from reconcile_core.errors import UsageError
from reconcile_paradex.testing import FaultSettings, ParadexSimulator
from tests.paradex.simulator._helpers import (
    ALL_CHANNELS,
    TIMEOUT,
    MiniWsClient,
    WsClosedError,
    authed_ws,
    open_ws,
    tcp_connector,
)

pytestmark = pytest.mark.anyio

Connector = Callable[[str], Any]


@asynccontextmanager
async def serving(sim: ParadexSimulator, mode: str) -> AsyncIterator[tuple[Connector, str, httpx.AsyncClient]]:
    """(connector, ws_url, REST client) for one way of running the simulator."""
    if mode == "in-process":
        async with sim, httpx.AsyncClient(transport=sim.http_transport(), base_url=sim.rest_url) as http:
            yield sim.ws_connector, sim.ws_url, http
    else:
        async with sim.serve_loopback() as (rest_url, ws_url), httpx.AsyncClient(base_url=rest_url) as http:
            yield tcp_connector, ws_url, http


def _sans_versions(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("seq_no", "published_at")}


@pytest.mark.parametrize("mode", ["in-process", "loopback"])
async def test_auth_subscribe_and_notifications(mode: str) -> None:
    sim = ParadexSimulator(seed=21, accounts=2, settlement_lag_ms=10_000)
    account = sim.accounts[0]
    async with serving(sim, mode) as (connector, url, http):
        client = await authed_ws(sim, connector, url, account, [*ALL_CHANNELS, "fills.BTC-USD-PERP"])
        await sim.run(steps=300)
        truth = sim.truth(account)
        fills = [f for f in truth.fills + truth.busted_fills if f.created_at <= sim.now]
        expected = len(fills) + sum(f.market == "BTC-USD-PERP" for f in fills)
        notes = await client.notifications_until(1)
        with anyio.fail_after(TIMEOUT):
            while sum(n["params"]["channel"].startswith("fills.") for n in client.notifications) < expected:
                await client.notifications_until(len(client.notifications) + 1)
        notes = client.notifications
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for note in notes:
            by_channel.setdefault(note["params"]["channel"], []).append(note["params"]["data"])
        # Fills are on the WebSocket at once; REST has none yet (settlement lag).
        assert {f["id"] for f in by_channel["fills.ALL"]} == {f.id for f in fills}
        assert all(f["market"] == "BTC-USD-PERP" for f in by_channel["fills.BTC-USD-PERP"])
        token = sim.issue_token(account)
        response = await http.get("/fills", headers={"Authorization": f"Bearer {token}"})
        assert response.json()["results"] == []
        assert by_channel["tradebusts"]
        assert {b["busted_fill_id"] for b in by_channel["tradebusts"]} <= {f.id for f in truth.busted_fills}
        # The last WS version of each order is the REST version, but for the seq_no series.
        final = {o.id: o.last_updated_at for o in truth.orders.values()}
        with anyio.fail_after(TIMEOUT):
            while True:
                latest = {
                    n["params"]["data"]["id"]: n["params"]["data"]
                    for n in client.notifications
                    if n["params"]["channel"] == "orders.ALL"
                }
                if {i: o["last_updated_at"] for i, o in latest.items()} == final:
                    break
                await client.notifications_until(len(client.notifications) + 1)
        response = await http.get(
            "/orders-history", params={"page_size": 5000}, headers={"Authorization": f"Bearer {token}"}
        )
        history = {o["id"]: o for o in response.json()["results"]}
        assert set(history) == set(latest)
        for order_id, data in latest.items():
            assert _sans_versions(history[order_id]) == _sans_versions(data)
            assert history[order_id]["seq_no"] != data["seq_no"]
        assert by_channel["positions"]
        assert by_channel["account"]
        assert all(n["params"]["data"].get("account", account) == account for n in notes)
        await client.aclose()
    assert sim.server_errors == ()


@pytest.mark.parametrize("mode", ["in-process", "loopback"])
async def test_auth_errors_and_subscribe_rules(mode: str) -> None:
    sim = ParadexSimulator(seed=22, accounts=1)
    account = sim.accounts[0]
    async with serving(sim, mode) as (connector, url, _):
        client = await open_ws(connector, url)
        reply = await client.call("subscribe", {"channel": "orders.ALL"}, 1)
        assert reply["error"]["code"] == 40111
        reply = await client.call("auth", {"bearer": "not-a-jwt"}, 2)
        assert reply["error"] == {"code": 40110, "message": "Malformed Bearer Token"}
        expired = sim.issue_token(account, ttl_ms=10)
        sim.advance(10)
        reply = await client.call("auth", {"bearer": expired}, 3)
        assert reply["error"] == {"code": 40111, "message": "Invalid Bearer Token"}
        reply = await client.call("auth", {"bearer": sim.issue_token(account)}, 4)
        assert set(reply["result"]) == {"node_id"}
        assert (await client.call("subscribe", {"channel": "orders.ALL"}, 5))["result"] == {"channel": "orders.ALL"}
        reply = await client.call("subscribe", {"channel": "orders.ALL"}, 6)
        assert reply["error"]["code"] == -32600
        assert reply["error"]["data"] == "already subscribed"
        reply = await client.call("subscribe", {"channel": "trades.LUNA"}, 7)
        assert reply["error"]["data"] == "invalid channel"
        reply = await client.call("order.create", {}, 8)
        assert reply["error"]["code"] == -32601
        await client.send_json({"jsonrpc": "2.0"})
        reply = await client.receive_json()
        assert reply["error"]["code"] == -32600
        await client.aclose()


@pytest.mark.parametrize("mode", ["in-process", "loopback"])
@pytest.mark.parametrize(("abrupt", "code"), [(True, None), (False, 1012)])
async def test_forced_disconnects(mode: str, abrupt: bool, code: int | None) -> None:
    sim = ParadexSimulator(seed=23, accounts=1)
    async with serving(sim, mode) as (connector, url, _):
        client = await authed_ws(sim, connector, url, sim.accounts[0], ["orders.ALL"])
        assert sim.disconnect_websockets(abrupt=abrupt, code=1012) == 1
        assert await client.read_until_closed() == code
        await client.aclose()


async def test_fault_injected_close_frames_and_abrupt_drops() -> None:
    sim = ParadexSimulator(seed=24, accounts=1, faults=FaultSettings(ws_close_frame=1.0))
    account = sim.accounts[0]
    async with sim:
        client = await authed_ws(sim, sim.ws_connector, sim.ws_url, account, ["orders.ALL"])
        sim.venue.place_order(account, market="BTC-USD-PERP", side="BUY", size=Decimal(1), price=Decimal(1000))
        with anyio.fail_after(TIMEOUT), pytest.raises(WsClosedError) as closed:
            await client.notifications_until(2)
        assert len(client.notifications) == 1
        assert closed.value.code in (1001, 1011, 1012)
        await client.aclose()
        sim.faults = FaultSettings(ws_disconnect=1.0)
        client = await authed_ws(sim, sim.ws_connector, sim.ws_url, account, ["orders.ALL"])
        sim.venue.place_order(account, market="BTC-USD-PERP", side="BUY", size=Decimal(1), price=Decimal(1000))
        with anyio.fail_after(TIMEOUT), pytest.raises(WsClosedError) as closed:
            await client.notifications_until(2)
        assert closed.value.code is None
        await client.aclose()
    counts = sim.fault_counts()
    assert (counts.ws_close_frame, counts.ws_disconnect) == (1, 1)


async def test_clients_that_fall_2000_messages_behind_are_dropped() -> None:
    sim = ParadexSimulator(seed=25, accounts=1)
    account = sim.accounts[0]
    async with sim:
        client = await authed_ws(sim, sim.ws_connector, sim.ws_url, account, ["orders.ALL"])
        with sim.venue.transaction():  # the server gets no chance to send meanwhile
            for _ in range(1001):
                order = sim.venue.place_order(
                    account, market="SOL-USD-PERP", side="SELL", size=Decimal(1), price=Decimal(500)
                )
                sim.venue.cancel_order(order.id)
        assert await client.read_until_closed() == 1008
        await client.aclose()
    assert sim.fault_counts().ws_slow_consumer == 1


async def test_handshake_on_another_path_is_refused_and_connector_needs_the_context() -> None:
    sim = ParadexSimulator(seed=26, accounts=1)
    with pytest.raises(UsageError, match="async with"):
        await sim.ws_connector(sim.ws_url)
    async with sim:
        with pytest.raises(WsClosedError) as refused:
            await open_ws(sim.ws_connector, "ws://paradex.simulator/v2")
        assert refused.value.code == 403
        with pytest.raises(UsageError, match="ws://"):
            await sim.ws_connector("http://paradex.simulator/v1")


async def test_wsproto_client_answers_server_pings_over_loopback() -> None:
    sim = ParadexSimulator(seed=27, accounts=1)
    account = sim.accounts[0]
    async with sim.serve_loopback(ws_ping_interval=0.05) as (_, url):
        client = await authed_ws(sim, tcp_connector, url, account, ["orders.ALL"])
        # Stay connected across several server pings, then still get notifications.
        with anyio.fail_after(TIMEOUT):
            while client.pings < 3:
                await client.read_once()
        sim.venue.place_order(account, market="ETH-USD-PERP", side="BUY", size=Decimal(1), price=Decimal(3000))
        notes = await client.notifications_until(1)
        assert notes[0]["params"]["channel"] == "orders.ALL"
        await client.aclose()


async def test_in_process_stream_behaves_like_a_socket() -> None:
    sim = ParadexSimulator(seed=28, accounts=1)
    async with sim:
        stream = await sim.ws_connector(sim.ws_url)
        client = MiniWsClient(stream, sim.ws_url)
        await client.handshake()
    # Leaving the simulator's context ends its server side: the client reads EOF.
    with anyio.fail_after(TIMEOUT), pytest.raises(WsClosedError) as closed:
        await client.receive_json()
    assert closed.value.code is None
    await stream.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await stream.send(b"x")


async def test_errors_in_the_body_leave_the_simulator_unwrapped() -> None:
    sim = ParadexSimulator(seed=29, accounts=1)
    clients: list[MiniWsClient] = []

    async def fail_inside() -> None:
        async with sim:
            clients.append(await authed_ws(sim, sim.ws_connector, sim.ws_url, sim.accounts[0], ["orders.ALL"]))
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await fail_inside()
    (client,) = clients
    assert await client.read_until_closed() is None
    await client.aclose()
    # The simulator can be entered again afterwards.
    async with sim:
        client = await authed_ws(sim, sim.ws_connector, sim.ws_url, sim.accounts[0], ["fills.ALL"])
        await client.aclose()


async def test_a_client_leaving_during_the_handshake_is_not_a_simulator_bug() -> None:
    """The accept lands on a closed peer: normal client behaviour, not an error of the simulator."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import Request

    sim = ParadexSimulator(seed=5, accounts=1)
    async with sim:
        for _ in range(5):
            stream = await sim.ws_connector(sim.ws_url)
            await stream.send(WSConnection(ConnectionType.CLIENT).send(Request(host="sim", target="/v1")))
            await stream.aclose()
    assert sim.server_errors == ()
