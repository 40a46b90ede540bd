"""ParadexSource as a StateSource, the plugin object, and a real loopback end-to-end run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import anyio
import anyio.abc
import pytest

from reconcile_core import Fill, Order, OrderStatus, Source
from reconcile_core.errors import ConnectionLostError, UsageError
from reconcile_core.typing import StateSource, VenuePlugin
from reconcile_paradex import (
    PROD_REST_URL,
    PROD_WS_URL,
    TESTNET_REST_URL,
    TESTNET_WS_URL,
    CallableTokenProvider,
    ParadexRestClient,
    ParadexSource,
    ParadexWebSocket,
    ReadOnlyToken,
    Secret,
    venue,
)
from reconcile_paradex.testing import ParadexSimulator

from .fake_venue import (
    ACCOUNT,
    FakeParadex,
    fill_payload,
    order_payload,
    paradex_source,
    position_payload,
    serve_http,
    token_minter,
)

pytestmark = pytest.mark.anyio

READ_ONLY = "read-only-token-value"


async def test_paradex_source_is_a_state_source() -> None:
    async with paradex_source(FakeParadex(), settlement_lag_ms=5000) as source:
        assert isinstance(source, StateSource)
        assert source.venue == "paradex"
        assert source.account == ACCOUNT
        assert source.settlement_lag_ms == 5000


async def test_aclose_is_idempotent_and_closes_the_door() -> None:
    async with paradex_source(FakeParadex()) as source:
        await source.aclose()
        await source.aclose()
        with pytest.raises(UsageError, match="closed"):
            await source.open_orders()
        with pytest.raises(UsageError, match="closed"):
            source.subscribe()


async def test_snapshots_and_reads() -> None:
    fake = FakeParadex()
    fake.orders = {
        "o1": order_payload("o1", status="OPEN"),
        "o2": order_payload("o2", status="CLOSED", remaining_size="0"),
        "o3": order_payload("o3", status="UNTRIGGERED", type="STOP_MARKET", price="0"),
    }
    fake.positions = [position_payload("BTC-USD-PERP", "-1", last_updated_at=7)]
    async with paradex_source(fake) as source:
        orders = await source.open_orders()
        positions = await source.positions()
        one = await source.order("o2")
    assert orders.complete
    assert {o.order_id for o in orders.orders} == {"o1", "o3"}
    assert all(o.source is Source.REST for o in orders.orders)
    assert positions.as_of == 7
    assert positions.positions[0].size == Decimal(-1)
    assert one is not None
    assert one.status is OrderStatus.FILLED


def test_environments_and_urls() -> None:
    prod = ParadexSource(account=ACCOUNT, token="t" * 20, env="prod")
    assert (prod.rest.base_url, prod._ws.url) == (PROD_REST_URL, PROD_WS_URL)
    testnet = ParadexSource(account=ACCOUNT, token="t" * 20)
    assert (testnet.rest.base_url, testnet._ws.url) == (TESTNET_REST_URL, TESTNET_WS_URL)
    custom = ParadexSource(account=ACCOUNT, token="t" * 20, env=None, rest_url="http://x/v1/", ws_url="ws://y/v1")
    assert (custom.rest.base_url, custom._ws.url) == ("http://x/v1", "ws://y/v1")
    with pytest.raises(UsageError, match="unknown Paradex environment"):
        ParadexSource(account=ACCOUNT, token="t" * 20, env="mainnet")
    with pytest.raises(UsageError, match="needs both"):
        ParadexSource(account=ACCOUNT, token="t" * 20, env=None, rest_url="http://x")
    with pytest.raises(UsageError, match="account"):
        ParadexSource(account="", token="t" * 20)
    with pytest.raises(UsageError, match="TokenProvider"):
        ParadexSource(account=ACCOUNT, token=42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rest_url", "ws_url", "problem"),
    [
        ("http://[::1/v1", "ws://y/v1", "rest_url is not a usable URL"),
        ("http:///v1", "ws://y/v1", "no host"),
        ("http://x:99999/v1", "ws://y/v1", "port 99999"),
        ("http://x/v1", "ws://\x00y/v1", "ws_url is not a usable URL"),
        ("ftp://x/v1", "ws://y/v1", "must start with http"),
    ],
)
def test_an_unusable_url_is_a_usage_error_at_construction(rest_url: str, ws_url: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem) as caught:
        ParadexSource(account=ACCOUNT, token="t" * 20, env=None, rest_url=rest_url, ws_url=ws_url)
    assert caught.value.__cause__ is None


def test_the_rest_client_checks_its_url_too() -> None:
    with pytest.raises(UsageError, match="rest_url is not a usable URL"):
        ParadexRestClient(rest_url="https://[::1/v1", account=ACCOUNT, token=ReadOnlyToken("t" * 20))
    with pytest.raises(UsageError, match="must start with http"):
        ParadexRestClient(rest_url="api.paradex.trade", account=ACCOUNT, token=ReadOnlyToken("t" * 20))


@pytest.mark.parametrize(
    "rest_url",
    ["http://user:PASS@[::1/v1", "http://user:PASS/WORD@x/v1", "ftp://user:PASS@x/v1", "http://user:PASS@x:99999/v1"],
)
def test_a_password_in_an_unusable_url_is_not_quoted(rest_url: str) -> None:
    with pytest.raises(UsageError) as caught:
        ParadexSource(account=ACCOUNT, token="t" * 20, env=None, rest_url=rest_url, ws_url="ws://y/v1")
    assert "PASS" not in str(caught.value)
    assert "WORD" not in str(caught.value)


def test_a_password_in_a_url_is_not_in_reprs() -> None:
    rest = ParadexRestClient(rest_url="https://user:PASSWORD@x/v1", account=ACCOUNT, token="t" * 20)
    socket = ParadexWebSocket(url="wss://user:PASSWORD@y/v1", token=ReadOnlyToken("t" * 20))
    for shown in (repr(rest), repr(socket)):
        assert "PASSWORD" not in shown
        assert "***@" in shown


def test_a_token_naming_another_account_is_refused() -> None:
    sim = ParadexSimulator(seed=1)
    mine, other = sim.accounts[0], sim.accounts[1]
    token = sim.issue_read_only_token(mine)
    with pytest.raises(UsageError, match=f"account {other} is not the token's account \\({mine}\\)"):
        ParadexSource(account=other, token=token, env=None, rest_url=sim.rest_url, ws_url=sim.ws_url)
    with pytest.raises(UsageError, match="is not the token's account"):
        ParadexSource(account=other, token=Secret(token), env=None, rest_url=sim.rest_url, ws_url=sim.ws_url)
    zero_padded = "0x0" + mine.removeprefix("0x")  # the same account, written otherwise
    ParadexSource(account=zero_padded, token=token, env=None, rest_url=sim.rest_url, ws_url=sim.ws_url)


def test_the_plugin_object() -> None:
    assert isinstance(venue, VenuePlugin)
    assert venue.name == "paradex"
    assert venue.description
    source = venue.create_source(account=ACCOUNT, token=READ_ONLY, env="prod")
    assert isinstance(source, ParadexSource)
    assert isinstance(source._rest._token, ReadOnlyToken)
    with pytest.raises(UsageError, match=r"unknown option.*colour"):
        venue.create_source(account=ACCOUNT, token="x" * 20, colour="blue")
    with pytest.raises(UsageError, match=r"needs option.*token"):
        venue.create_source(account=ACCOUNT)


# -- end to end over real loopback sockets ------------------------------------------


@asynccontextmanager
async def loopback_venue(fake: FakeParadex) -> AsyncIterator[tuple[str, str]]:
    """Serve the fake's REST (HTTP/1.1, h11) and WebSocket (wsproto) on 127.0.0.1 ports."""
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as http_listener,
        await anyio.create_tcp_listener(local_host="127.0.0.1") as ws_listener,
        anyio.create_task_group() as tg,
    ):

        async def http(stream: anyio.abc.SocketStream) -> None:
            await serve_http(fake, stream)

        tg.start_soon(http_listener.serve, http)
        tg.start_soon(ws_listener.serve, fake.serve_ws)
        http_port = http_listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - not Django
        ws_port = ws_listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - not Django
        try:
            yield f"http://127.0.0.1:{http_port}/v1", f"ws://127.0.0.1:{ws_port}/v1"
        finally:
            tg.cancel_scope.cancel()


async def test_end_to_end_over_loopback_sockets() -> None:
    fake = FakeParadex()
    fake.orders = {"o1": order_payload("o1")}
    fake.fills = [fill_payload(f"f{i}", created_at=100 + i) for i in range(7)]
    async with (
        loopback_venue(fake) as (rest_url, ws_url),
        ParadexSource(
            account=ACCOUNT,
            token=CallableTokenProvider(token_minter(fake)),
            env=None,
            rest_url=rest_url,
            ws_url=ws_url,
            page_size=3,
        ) as source,
        source.subscribe() as hints,
    ):
        # subscribed first, then REST (the runtime's order)
        assert fake.subscribe_counts["fills.ALL"] == 1
        orders = await source.open_orders()
        fills = [f async for page in source.fills(since=0) for f in page.items]
        assert [o.order_id for o in orders.orders] == ["o1"]
        assert [f.key.fill_id for f in fills] == [f"f{i}" for i in range(7)]
        assert await source.server_time() == fake.server_time

        await fake.push("fills.ALL", fill_payload("f7", created_at=200))
        await fake.push("orders.ALL", order_payload("o1", status="CLOSED", remaining_size="0"))
        with anyio.fail_after(5):
            fill = await anext(hints)
            order = await anext(hints)
        assert isinstance(fill, Fill)
        assert fill.source is Source.WS
        assert isinstance(order, Order)
        assert order.status is OrderStatus.FILLED

        await fake.drop_all()
        with anyio.fail_after(5), pytest.raises(ConnectionLostError):
            await anext(hints)
    assert len(fake.requests_to("/fills")) == 3
