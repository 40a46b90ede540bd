"""REST under /v1: endpoints, auth, pagination with signed cursors, settlement lag, stale reads."""

from __future__ import annotations

import base64
import itertools
from decimal import Decimal
from typing import Any

import httpx
import pytest

from reconcile_paradex.testing import FaultSettings, ParadexSimulator

pytestmark = pytest.mark.anyio


def make_client(sim: ParadexSimulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=sim.http_transport(), base_url=sim.rest_url)


async def get(http: httpx.AsyncClient, path: str, token: str | None, **params: Any) -> tuple[int, Any, httpx.Headers]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = await http.get(path, params=params, headers=headers)
    return response.status_code, response.json(), response.headers


async def all_pages(http: httpx.AsyncClient, path: str, token: str, **params: Any) -> list[list[dict[str, Any]]]:
    pages = []
    cursor = None
    while True:
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        status, body, _ = await get(http, path, token, **query)
        assert status == 200, body
        pages.append(body["results"])
        cursor = body["next"]
        if cursor is None:
            return pages
        assert len(pages) < 10_000


def _burst_history(sim: ParadexSimulator, account: str, *, orders: int, parts: int) -> None:
    """Orders each swept in one millisecond: ``parts`` fills sharing a ``created_at``."""
    venue = sim.venue
    for _ in range(orders):
        order = venue.place_order(account, market="SOL-USD-PERP", side="BUY", size=Decimal(100), price=Decimal(180))
        venue.accept_order(order.id)
        venue.fill_order(order.id, [(Decimal(180), Decimal(1))] * parts)
    sim.advance(sim.max_settlement_lag_ms)


async def test_pagination_returns_every_fill_once_across_same_millisecond_bursts() -> None:
    sim = ParadexSimulator(seed=1, accounts=1)
    account = sim.accounts[0]
    _burst_history(sim, account, orders=7, parts=5)
    token = sim.issue_token(account)
    async with make_client(sim) as http:
        pages = await all_pages(http, "/fills", token, page_size=3)
    fills = [f for page in pages for f in page]
    truth = sim.truth(account).fills
    assert sorted(f["id"] for f in fills) == sorted(f.id for f in truth)
    assert len({f["id"] for f in fills}) == len(fills) == 35
    # Newest first, and page edges really fall inside bursts.
    stamps = [f["created_at"] for f in fills]
    assert stamps == sorted(stamps, reverse=True)
    edges = [(a[-1]["created_at"], b[0]["created_at"]) for a, b in itertools.pairwise(pages) if b]
    assert any(left == right for left, right in edges)


async def test_pagination_over_a_random_history_matches_the_truth() -> None:
    sim = ParadexSimulator(seed=2, accounts=2)
    sim.run_until(fills=400)
    sim.advance(sim.max_settlement_lag_ms)
    account = sim.accounts[1]
    token = sim.issue_token(account)
    truth = sim.truth(account)
    async with make_client(sim) as http:
        fills = [f for page in await all_pages(http, "/fills", token, page_size=7) for f in page]
        busts = [b for page in await all_pages(http, "/tradebusts", token, page_size=2) for b in page]
        orders = [o for page in await all_pages(http, "/orders-history", token, page_size=11) for o in page]
        btc = [
            f for page in await all_pages(http, "/fills", token, market="BTC-USD-PERP", page_size=5000) for f in page
        ]
    # Busted fills stay listed on REST; the bust list says which.
    assert [f["id"] for f in fills] == [
        f.id for f in sorted((*truth.fills, *truth.busted_fills), key=lambda f: -f.sequence)
    ]
    assert {b["busted_fill_id"] for b in busts} == {f.id for f in truth.busted_fills}
    assert {o["id"] for o in orders} == set(truth.orders)
    assert {o["id"]: o["status"] for o in orders} == {o.id: o.status for o in truth.orders.values()}
    assert btc
    assert all(f["market"] == "BTC-USD-PERP" for f in btc)


async def test_prev_cursor_walks_back_and_filters_bound_the_window() -> None:
    sim = ParadexSimulator(seed=3, accounts=1)
    account = sim.accounts[0]
    _burst_history(sim, account, orders=4, parts=3)
    token = sim.issue_token(account)
    async with make_client(sim) as http:
        _, first, _ = await get(http, "/fills", token, page_size=4)
        assert first["prev"] is None
        _, second, _ = await get(http, "/fills", token, page_size=4, cursor=first["next"])
        _, back, _ = await get(http, "/fills", token, page_size=4, cursor=second["prev"])
        assert [f["id"] for f in back["results"]] == [f["id"] for f in first["results"]]
        assert back["prev"] is None
        stamps = sorted({f.created_at for f in sim.truth(account).fills})
        _, window, _ = await get(http, "/fills", token, start_at=stamps[1], end_at=stamps[2], page_size=100)
        assert {f["created_at"] for f in window["results"]} == {stamps[1], stamps[2]}
        assert len(window["results"]) == 6


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-3] + ("AAA" if not c.endswith("AAA") else "BBB"),
        lambda c: base64.urlsafe_b64encode(base64.urlsafe_b64decode(c).replace(b'"s":', b'"s": ')).decode(),
        lambda c: "not a cursor",
        lambda c: c[: len(c) // 2],
    ],
)
async def test_tampered_cursors_are_refused(tamper: Any) -> None:
    sim = ParadexSimulator(seed=4, accounts=1)
    account = sim.accounts[0]
    _burst_history(sim, account, orders=2, parts=3)
    token = sim.issue_token(account)
    async with make_client(sim) as http:
        _, page, _ = await get(http, "/fills", token, page_size=2)
        status, body, _ = await get(http, "/fills", token, page_size=2, cursor=tamper(page["next"]))
    assert status == 400
    assert body["error"] == "INVALID_REQUEST_PARAMETER"


async def test_cursors_are_bound_to_their_endpoint_and_account() -> None:
    sim = ParadexSimulator(seed=4, accounts=2)
    first, second = sim.accounts
    _burst_history(sim, first, orders=2, parts=3)
    token = sim.issue_token(first)
    async with make_client(sim) as http:
        _, page, _ = await get(http, "/fills", token, page_size=2)
        status, _, _ = await get(http, "/tradebusts", token, cursor=page["next"])
        assert status == 400
        status, _, _ = await get(http, "/fills", sim.issue_token(second), cursor=page["next"])
        assert status == 400


@pytest.mark.parametrize(
    ("size", "ok"), [("0", False), ("5001", False), ("-1", False), ("x", False), ("5000", True), ("1", True)]
)
async def test_page_size_limits(size: str, ok: bool) -> None:
    sim = ParadexSimulator(seed=0, accounts=1)
    token = sim.issue_token(sim.accounts[0])
    async with make_client(sim) as http:
        for path in ("/fills", "/orders-history", "/tradebusts"):
            status, body, _ = await get(http, path, token, page_size=size)
            assert status == (200 if ok else 400), body
            if not ok:
                assert body["error"] == "INVALID_REQUEST_PARAMETER"


async def test_settlement_lag_hides_fresh_fills_from_rest() -> None:
    sim = ParadexSimulator(seed=5, accounts=1, settlement_lag_ms=250)
    account = sim.accounts[0]
    venue = sim.venue
    order = venue.place_order(account, market="ETH-USD-PERP", side="SELL", size=Decimal(1), price=Decimal(3500))
    venue.accept_order(order.id)
    (fill,) = venue.fill_order(order.id, [(Decimal(3500), Decimal("0.5"))])
    token = sim.issue_token(account)
    async with make_client(sim) as http:
        _, page, _ = await get(http, "/fills", token)
        assert page["results"] == []
        # The order already shows the fill: a gap the client must wait out.
        _, seen, _ = await get(http, f"/orders/{order.id}", token)
        assert seen["remaining_size"] == "0.5"
        sim.advance(249)
        _, page, _ = await get(http, "/fills", token)
        assert page["results"] == []
        sim.advance(1)
        _, page, _ = await get(http, "/fills", token)
    assert [f["id"] for f in page["results"]] == [fill.id]


async def test_auth_failures_are_401_with_paradex_messages() -> None:
    sim = ParadexSimulator(seed=6, accounts=1)
    account = sim.accounts[0]
    stranger = ParadexSimulator(seed=7, accounts=[account])
    token = sim.issue_token(account, ttl_ms=1_000)
    revoked = sim.issue_token(account)
    sim.revoke_token(revoked)
    async with make_client(sim) as http:
        assert (await get(http, "/account", token))[0] == 200
        status, body, _ = await get(http, "/account", None)
        assert (status, body) == (401, {"message": "missing or malformed jwt"})
        status, body, _ = await get(http, "/fills", "garbage")
        assert status == 401
        assert body["message"].startswith("missing or malformed jwt")
        status, body, _ = await get(http, "/fills", stranger.issue_token(account))
        assert status == 401
        status, body, _ = await get(http, "/fills", revoked)
        assert (status, body) == (401, {"message": "invalid or expired jwt"})
        sim.advance(1_000 + 9_468)
        status, body, _ = await get(http, "/account", token)
        assert (status, body) == (401, {"message": "missing or malformed jwt: token is expired by 9.468s"})
        status, _, _ = await get(http, "/positions", sim.issue_read_only_token(account))
        assert status == 200
        # Public endpoints need no token.
        status, body, _ = await get(http, "/system/time", None)
        assert (status, body) == (200, {"server_time": str(sim.now)})


async def test_single_orders_by_id_and_client_id() -> None:
    sim = ParadexSimulator(seed=8, accounts=2)
    first, second = sim.accounts
    venue = sim.venue
    order = venue.place_order(
        first, market="BTC-USD-PERP", side="BUY", size=Decimal(1), price=Decimal(90000), client_id="mine"
    )
    venue.accept_order(order.id)
    venue.cancel_order(order.id)
    again = venue.place_order(
        first, market="BTC-USD-PERP", side="BUY", size=Decimal(2), price=Decimal(90000), client_id="mine"
    )
    token = sim.issue_token(first)
    async with make_client(sim) as http:
        status, body, _ = await get(http, f"/orders/{order.id}", token)
        assert (status, body["status"], body["cancel_reason"]) == (200, "CLOSED", "USER_CANCELED")
        status, body, _ = await get(http, "/orders/by_client_id/mine", token)
        assert (status, body["id"], body["status"]) == (200, again.id, "NEW")
        status, body, _ = await get(http, "/orders/123", token)
        assert (status, body["error"]) == (400, "ORDER_ID_NOT_FOUND")
        status, body, _ = await get(http, "/orders/by_client_id/nope", token)
        assert (status, body["error"]) == (400, "CLIENT_ORDER_ID_NOT_FOUND")
        status, body, _ = await get(http, f"/orders/{order.id}", sim.issue_token(second))
        assert (status, body["error"]) == (400, "ORDER_ID_NOT_FOUND")
        _, opened, _ = await get(http, "/orders", token)
        assert [o["id"] for o in opened["results"]] == [again.id]
        status, _, _ = await get(http, "/nothing-here", token)
        assert status == 404
        response = await http.post("/orders", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 405


async def test_positions_list_every_market_ever_traded() -> None:
    sim = ParadexSimulator(seed=9, accounts=1)
    account = sim.accounts[0]
    venue = sim.venue
    venue.orderless_fill(
        account, market="ETH-USD-PERP", fill_type="BLOCK_TRADE", side="BUY", size=Decimal(1), price=Decimal(3500)
    )
    fill = venue.orderless_fill(
        account, market="ETH-USD-PERP", fill_type="LIQUIDATION", side="SELL", size=Decimal(1), price=Decimal(3400)
    )
    venue.orderless_fill(
        account, market="SOL-USD-PERP", fill_type="BLOCK_TRADE", side="SELL", size=Decimal(3), price=Decimal(180)
    )
    token = sim.issue_token(account)
    async with make_client(sim) as http:
        _, body, _ = await get(http, "/positions", token)
    positions = {p["market"]: p for p in body["results"]}
    assert positions["ETH-USD-PERP"]["status"] == "CLOSED"
    assert positions["ETH-USD-PERP"]["size"] == "0"
    assert positions["ETH-USD-PERP"]["last_fill_id"] == fill.id
    assert (positions["SOL-USD-PERP"]["size"], positions["SOL-USD-PERP"]["side"]) == ("-3", "SHORT")


async def test_positions_list_open_ones_only_on_request() -> None:
    # The spec's summary of GET /positions is "List open positions": a venue may leave closed ones out.
    sim = ParadexSimulator(seed=9, accounts=1, open_positions_only=True)
    account = sim.accounts[0]
    venue = sim.venue
    for side, size in (("BUY", 1), ("SELL", 1)):
        venue.orderless_fill(
            account, market="ETH-USD-PERP", fill_type="BLOCK_TRADE", side=side, size=Decimal(size), price=Decimal(3500)
        )
    token = sim.issue_token(account)
    async with make_client(sim) as http:
        _, body, _ = await get(http, "/positions", token)
        assert body == {"results": []}  # flat everywhere: nothing listed
        venue.orderless_fill(
            account, market="SOL-USD-PERP", fill_type="BLOCK_TRADE", side="SELL", size=Decimal(3), price=Decimal(180)
        )
        _, body, _ = await get(http, "/positions", token)
    assert [(p["market"], p["status"], p["size"]) for p in body["results"]] == [("SOL-USD-PERP", "OPEN", "-3")]
    assert sim.truth(account).positions["ETH-USD-PERP"].size == 0  # the truth keeps the closed one


async def test_stale_reads_serve_an_older_state() -> None:
    stale = FaultSettings(rest_stale=1.0, stale_lag_ms=(500, 500))
    sim = ParadexSimulator(seed=10, accounts=1, faults=stale)
    account = sim.accounts[0]
    venue = sim.venue
    old = venue.place_order(account, market="BTC-USD-PERP", side="SELL", size=Decimal(1), price=Decimal(99000))
    sim.advance(1_000)
    venue.accept_order(old.id)
    sim.advance(100)
    new = venue.place_order(account, market="BTC-USD-PERP", side="SELL", size=Decimal(1), price=Decimal(99000))
    token = sim.issue_token(account)
    async with make_client(sim) as http:
        status, body, _ = await get(http, f"/orders/{new.id}", token)
        assert (status, body["error"]) == (400, "ORDER_ID_NOT_FOUND")
        _, body, _ = await get(http, f"/orders/{old.id}", token)
        assert body["status"] == "NEW"
        sim.quiesce()
        _, body, _ = await get(http, "/orders", token)
        assert {o["id"]: o["status"] for o in body["results"]} == {old.id: "OPEN", new.id: "NEW"}
    assert sim.fault_counts().rest_stale == 2


async def test_rate_limits_and_server_errors_are_injected() -> None:
    sim = ParadexSimulator(seed=11, accounts=1, faults=FaultSettings(rest_429=1.0, retry_after_s=(1, 1)))
    token = sim.issue_token(sim.accounts[0])
    async with make_client(sim) as http:
        status, body, headers = await get(http, "/fills", token)
        assert (status, headers["retry-after"]) == (429, "1")
        sim.faults = FaultSettings(rest_500=1.0)
        status, body, _ = await get(http, "/fills", token)
        assert status in (500, 503)
        assert body["error"] in ("INTERNAL_ERROR", "SERVICE_UNAVAILABLE")
        sim.faults = "none"
        assert (await get(http, "/fills", token))[0] == 200
    counts = sim.fault_counts()
    assert (counts.rest_429, counts.rest_500) == (1, 1)


def test_loopback_server_for_synchronous_callers() -> None:
    sim = ParadexSimulator(seed=12, accounts=1)
    sim.run_until(fills=20)
    token = sim.issue_token(sim.accounts[0])
    with sim.serve_loopback_sync() as (rest_url, ws_url), httpx.Client(base_url=rest_url) as http:
        assert rest_url.startswith("http://127.0.0.1:")
        assert ws_url == rest_url.replace("http://", "ws://")
        response = http.get("/positions", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert {p["market"] for p in response.json()["results"]} == set(sim.truth(sim.accounts[0]).positions)
    # Stopped: the port no longer answers.
    with pytest.raises(httpx.ConnectError), httpx.Client(base_url=rest_url) as http:
        http.get("/system/time")
