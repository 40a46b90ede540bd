"""The Paradex REST client against the fake venue: pagination, retries, rate limits, auth refresh, errors."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import httpx
import pytest

from reconcile_core import OrderStatus, Source
from reconcile_core.errors import (
    AuthenticationError,
    NotFoundError,
    RateLimitedError,
    TransportError,
    UsageError,
    VenueError,
)
from reconcile_core.errors import TimeoutError as RequestTimeoutError
from reconcile_paradex import (
    CallableTokenProvider,
    ParadexRestClient,
    ReadOnlyToken,
    RetryPolicy,
    TokenBucket,
)
from reconcile_paradex._ratelimit import shared_bucket

from .fake_venue import (
    ACCOUNT,
    REST_URL,
    FakeClock,
    FakeParadex,
    bust_payload,
    fill_payload,
    order_payload,
    paradex_source,
    position_payload,
    token_minter,
)

pytestmark = pytest.mark.anyio


def _client(fake: FakeParadex, http: httpx.AsyncClient, **options: object) -> ParadexRestClient:
    options.setdefault("token", CallableTokenProvider(token_minter(fake)))
    options.setdefault("clock", FakeClock())
    options.setdefault("rate_limiter", TokenBucket())
    options.setdefault("rng", random.Random(3))
    return ParadexRestClient(rest_url=REST_URL, account=ACCOUNT, http_client=http, **options)  # type: ignore[arg-type]


# -- pagination -----------------------------------------------------------------------


async def test_fills_follow_the_venue_cursor_over_several_pages() -> None:
    fake = FakeParadex()
    fake.fills = [fill_payload(f"f{i:02}", created_at=1_000 + i) for i in range(12)]
    async with paradex_source(fake, page_size=5) as source:
        pages = [page async for page in source.fills(since=1_000)]
    assert [len(page.items) for page in pages] == [5, 5, 2]
    ids = [fill.key.fill_id for page in pages for fill in page.items]
    assert ids == [f"f{i:02}" for i in range(12)]
    requests = fake.requests_to("/fills")
    assert len(requests) == 3
    # The first request has no cursor; later ones carry the server's cursor verbatim with the same filters.
    assert "cursor" not in requests[0].url.params
    assert all(r.url.params["start_at"] == "1000" and r.url.params["page_size"] == "5" for r in requests)
    assert requests[1].url.params["cursor"] != requests[2].url.params["cursor"]


async def test_pagination_filters_and_starts_at_since() -> None:
    fake = FakeParadex()
    fake.fills = [
        fill_payload(f"f{i}", created_at=1_000 + i, market="ETH-USD-PERP" if i % 2 else "BTC-USD-PERP")
        for i in range(6)
    ]
    async with paradex_source(fake, page_size=2) as source:
        fills = [f async for page in source.fills(since=1_002, instrument="ETH-USD-PERP") for f in page.items]
    assert [f.key.fill_id for f in fills] == ["f3", "f5"]
    assert all(r.url.params["market"] == "ETH-USD-PERP" for r in fake.requests_to("/fills"))


async def test_order_history_and_busts_paginate() -> None:
    fake = FakeParadex()
    for i in range(7):
        fake.orders[f"o{i}"] = order_payload(f"o{i}", created_at=2_000 + i, status="CLOSED", remaining_size="0")
    fake.busts = [bust_payload(f"f{i}", created_at=3_000 + i) for i in range(4)]
    async with paradex_source(fake, page_size=3) as source:
        orders = [o async for page in source.order_history(since=0) for o in page.items]
        busts = [b async for page in source.busts(since=0) for b in page.items]
    assert [o.order_id for o in orders] == [f"o{i}" for i in range(7)]
    assert all(o.status is OrderStatus.FILLED and o.source is Source.REST for o in orders)
    assert [b.fill_id for b in busts] == ["f0", "f1", "f2", "f3"]
    assert len(fake.requests_to("/orders-history")) == 3
    assert len(fake.requests_to("/tradebusts")) == 2


async def test_a_malformed_row_becomes_a_problem_and_the_page_goes_on() -> None:
    fake = FakeParadex()
    fake.fills = [fill_payload("good", created_at=1), fill_payload("bad", created_at=2, price="NaN")]
    async with paradex_source(fake) as source:
        pages = [page async for page in source.fills(since=0)]
    assert [f.key.fill_id for f in pages[0].items] == ["good"]
    (problem,) = pages[0].problems
    assert problem.kind.value == "malformed_message"
    assert "price" in problem.detail


async def test_a_repeated_cursor_stops_with_a_venue_error() -> None:
    fake = FakeParadex()
    page = {"next": "same-cursor", "prev": None, "results": []}
    fake.script("/fills", 200, page, times=3)
    async with paradex_source(fake) as source:
        with pytest.raises(VenueError, match="same cursor twice"):
            [p async for p in source.fills(since=0)]


# -- rate limits and retries --------------------------------------------------------


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    fake = FakeParadex()
    fake.positions = [position_payload("BTC-USD-PERP", "1")]
    fake.script("/positions", 429, {"message": "rate limited"}, headers={"Retry-After": "7"})
    clock = FakeClock()
    async with paradex_source(fake, clock=clock) as source:
        snapshot = await source.positions()
    assert [p.instrument for p in snapshot.positions] == ["BTC-USD-PERP"]
    assert clock.sleeps == [7.0]
    assert len(fake.requests_to("/positions")) == 2


async def test_429_pauses_the_whole_account_bucket() -> None:
    bucket = TokenBucket()
    clock = FakeClock()
    bucket.pause(clock.now(), 3.0)
    await bucket.acquire(clock)
    assert clock.sleeps == [3.0]


async def test_429_beyond_the_attempts_raises_rate_limited() -> None:
    fake = FakeParadex()
    fake.script("/positions", 429, {}, headers={"Retry-After": "1"}, times=10)
    async with paradex_source(fake, retry=RetryPolicy(attempts=3)) as source:
        with pytest.raises(RateLimitedError) as caught:
            await source.positions()
    assert caught.value.retry_after == 1.0
    assert caught.value.status == 429
    assert len(fake.requests_to("/positions")) == 3


async def test_a_retry_after_longer_than_allowed_fails_at_once() -> None:
    fake = FakeParadex()
    fake.script("/positions", 429, {}, headers={"Retry-After": "3600"})
    clock = FakeClock()
    async with paradex_source(fake, clock=clock) as source:
        with pytest.raises(RateLimitedError, match="3600"):
            await source.positions()
    assert clock.sleeps == []


@pytest.mark.parametrize(("asked", "held"), [(120, 120.0), (86_400, 900.0)])
async def test_a_retry_after_not_waited_out_still_holds_back_the_next_request(asked: int, held: float) -> None:
    # The request fails at once, but the venue's word stands: the account's next request
    # waits until then (at most 15 minutes), instead of being sent a second later.
    fake = FakeParadex()
    fake.script("/positions", 429, {}, headers={"Retry-After": str(asked)})
    clock = FakeClock()
    async with paradex_source(fake, clock=clock) as source:
        with pytest.raises(RateLimitedError):
            await source.positions()
        await source.positions()
    assert clock.sleeps == [held]
    assert len(fake.requests_to("/positions")) == 2


async def test_the_same_rows_under_fresh_cursors_stop_with_a_venue_error() -> None:
    # Re-signed cursors defeat the repeated-cursor check; the repeated rows do not.
    fake = FakeParadex()
    for n in range(10):
        fake.script("/fills", 200, {"next": f"cursor-{n}", "prev": None, "results": [fill_payload("f1", created_at=1)]})
    async with paradex_source(fake) as source:
        with pytest.raises(VenueError, match="same page 4 times in a row"):
            [p async for p in source.fills(since=0)]
    assert len(fake.requests_to("/fills")) == 4


@pytest.mark.parametrize("body", [{}, {"error": "SERVICE_UNAVAILABLE", "message": "try later", "data": None}])
async def test_a_listing_without_results_is_an_error_not_an_empty_page(body: dict[str, object]) -> None:
    # Taken as empty, it let a pass move its watermark past fills it never read.
    fake = FakeParadex()
    fake.fills = [fill_payload("f1", created_at=1)]
    fake.script("/fills", 200, body)
    async with paradex_source(fake) as source:
        with pytest.raises(VenueError, match="no 'results'"):
            [p async for p in source.fills(since=0)]
        pages = [p async for p in source.fills(since=0)]
    assert [f.key.fill_id for f in pages[0].items] == ["f1"]
    fake.positions = []
    fake.script("/positions", 200, {"results": None})  # null is an empty list, as Go writes one
    async with paradex_source(fake) as source:
        assert (await source.positions()).positions == ()


@pytest.mark.parametrize("code", ["ORDER_IS_CLOSED", "ORDER_IS_NOT_OPEN"])
async def test_a_closed_order_refused_with_its_own_code_is_read_from_the_history(code: str) -> None:
    # The spec's ErrorCode has these; the endpoints show open orders only, so the order exists.
    fake = FakeParadex()
    fake.orders["o1"] = order_payload("o1", client_id="c1", status="CLOSED", remaining_size="0")
    fake.script("/orders/o1", 400, {"error": code, "message": "order is closed", "data": None})
    fake.script("/orders/by_client_id/c1", 400, {"error": code, "message": "order is closed", "data": None})
    async with paradex_source(fake) as source:
        by_id = await source.order("o1")
        by_client_id = await source.order_by_client_id("c1")
    assert by_id is not None
    assert by_id.status is OrderStatus.FILLED
    assert by_client_id == by_id


async def test_another_order_error_code_is_still_an_error() -> None:
    fake = FakeParadex()
    fake.script("/orders/o1", 400, {"error": "VALIDATION_ERROR", "message": "bad", "data": None})
    async with paradex_source(fake) as source:
        with pytest.raises(VenueError, match="VALIDATION_ERROR"):
            await source.order("o1")


@pytest.mark.parametrize(
    ("path", "body", "call"),
    [
        ("/system/time", {"server_time": "{token}"}, "server_time"),
        ("/orders/o1", {"id": "o1", "size": ["{token}"]}, "order"),
        ("/fills", {"next": ["{token}"], "results": []}, "fills"),
    ],
)
async def test_a_parse_error_of_a_whole_answer_never_shows_the_token(
    path: str, body: dict[str, object], call: str
) -> None:
    fake = FakeParadex()
    token = "plain-read-only-token-0123456789"  # noqa: S105 - a test value
    fake.valid_tokens.add(token)
    echoed = json.loads(json.dumps(body).replace("{token}", token))
    fake.script(path, 200, echoed)
    async with paradex_source(fake, token=token) as source:

        async def read() -> object:
            if call == "server_time":
                return await source.server_time()
            if call == "order":
                return await source.order("o1")
            return [p async for p in source.fills(since=0)]

        with pytest.raises(VenueError) as caught:
            await read()
    assert token not in str(caught.value)
    assert caught.value.__cause__ is None or token not in str(caught.value.__cause__)


async def test_5xx_is_retried_with_backoff_then_succeeds() -> None:
    fake = FakeParadex()
    fake.script("/positions", 503, b"<html><body>Service Unavailable</body></html>", times=2)
    clock = FakeClock()
    async with paradex_source(fake, clock=clock, retry=RetryPolicy(base_backoff=1.0, max_backoff=30)) as source:
        snapshot = await source.positions()
    assert snapshot.positions == ()
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 1.0
    assert 0 <= clock.sleeps[1] <= 2.0


async def test_5xx_beyond_the_attempts_is_a_venue_error_that_says_the_body_was_html() -> None:
    fake = FakeParadex()
    fake.script("/positions", 502, b"<html>Bad Gateway</html>", headers={"content-type": "text/html"}, times=9)
    async with paradex_source(fake, retry=RetryPolicy(attempts=4)) as source:
        with pytest.raises(VenueError) as caught:
            await source.positions()
    assert caught.value.status == 502
    assert "HTTP 502" in str(caught.value)
    assert "Bad Gateway" in str(caught.value)
    assert len(fake.requests_to("/positions")) == 4


async def test_a_non_json_success_body_is_a_clear_venue_error() -> None:
    fake = FakeParadex()
    fake.script("/positions", 200, b"<html>maintenance</html>", headers={"content-type": "text/html"})
    async with paradex_source(fake) as source:
        with pytest.raises(VenueError, match="not JSON") as caught:
            await source.positions()
    assert "text/html" in str(caught.value)
    assert not isinstance(caught.value.__cause__, ValueError) or "JSON" in str(caught.value)


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (httpx.ReadTimeout("slow"), RequestTimeoutError),
        (httpx.ConnectError("refused"), TransportError),
    ],
)
async def test_network_errors_are_retried_then_mapped(exception: Exception, expected: type[Exception]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise exception

    clock = FakeClock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = _client(FakeParadex(), http, clock=clock, retry=RetryPolicy(attempts=3))
        with pytest.raises(expected) as caught:
            await client.server_time()
    assert calls == 3
    assert len(clock.sleeps) == 2
    assert isinstance(caught.value.__cause__, httpx.HTTPError)


async def test_a_transient_network_error_then_success() -> None:
    fake = FakeParadex()
    failures = iter([httpx.ConnectError("reset")])

    def handler(request: httpx.Request) -> httpx.Response:
        for exc in failures:
            raise exc
        return fake.handle(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = _client(fake, http)
        assert await client.server_time() == fake.server_time


async def test_the_token_bucket_spaces_requests_of_one_account() -> None:
    fake = FakeParadex()
    clock = FakeClock()
    async with paradex_source(fake, clock=clock, rate_limiter=TokenBucket(rate=10, capacity=2)) as source:
        for _ in range(5):
            await source.positions()
    # two from the burst, then one every 0.1 s
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1])


def test_token_bucket_reservations_queue_in_order() -> None:
    bucket = TokenBucket(rate=10, capacity=1)
    assert bucket.reserve(0.0) == 0
    assert bucket.reserve(0.0) == pytest.approx(0.1)
    assert bucket.reserve(0.0) == pytest.approx(0.2)
    assert bucket.reserve(1.0) == 0  # refilled (capped at capacity)


def test_one_account_shares_one_bucket() -> None:
    a = shared_bucket("https://x/v1", "0xAB")
    b = shared_bucket("https://x/v1/", "0xab")
    c = shared_bucket("https://x/v1", "0xcd")
    assert a is b
    assert a is not c


def test_token_bucket_rejects_nonsense() -> None:
    with pytest.raises(UsageError):
        TokenBucket(rate=0)


# -- auth ---------------------------------------------------------------------------


async def test_an_expired_jwt_is_refreshed_once_and_the_request_retried() -> None:
    fake = FakeParadex()
    forced: list[bool] = []
    minter = token_minter(fake)

    class Recording(CallableTokenProvider):
        async def token(self, *, force_refresh: bool = False) -> str:
            forced.append(force_refresh)
            return await super().token(force_refresh=force_refresh)

    async with paradex_source(fake, token=Recording(minter)) as source:
        await source.positions()
        first = fake.requests_to("/positions")[0].headers["authorization"]
        fake.expired_tokens.add(first.removeprefix("Bearer "))
        await source.open_orders()
    orders_requests = fake.requests_to("/orders")
    assert len(orders_requests) == 2
    assert orders_requests[0].headers["authorization"] == first
    assert orders_requests[1].headers["authorization"] != first
    assert forced == [False, False, True]


@pytest.mark.parametrize(
    ("failure", "retried"),
    [
        (VenueError("POST /auth: HTTP 503", status=503), True),
        (TransportError("POST /auth: connection refused"), True),
        (RequestTimeoutError("POST /auth: no answer"), True),
        (AuthenticationError("POST /auth: HTTP 401 INVALID_SIGNATURE", status=401), False),
        (RateLimitedError("POST /auth: HTTP 429", status=429), False),
    ],
    ids=["5xx", "transport", "timeout", "refused", "rate-limited"],
)
async def test_a_token_provider_failing_transiently_is_retried_like_a_request(
    failure: Exception, retried: bool
) -> None:
    # A provider that mints over the network (StarknetKeyTokenProvider's POST /auth) can fail
    # like any request; one 503 from /auth must not fail a read a 503 from /orders would not.
    fake = FakeParadex()
    minter = token_minter(fake)
    calls = 0

    class Minting:
        async def token(self, *, force_refresh: bool = False) -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise failure
            return minter()

    async with fake.running(), httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as http:
        client = _client(fake, http, token=Minting(), retry=RetryPolicy(attempts=3))
        if retried:
            assert (await client.open_orders()).value.orders == ()
            assert calls == 2
        else:
            with pytest.raises(type(failure)):
                await client.open_orders()
            assert calls == 1
            assert fake.requests_to("/orders") == []


async def test_the_rest_client_takes_a_read_only_token_string_and_refuses_what_is_no_provider() -> None:
    fake = FakeParadex()
    text = "read-only-token-as-text"
    fake.valid_tokens.add(text)
    async with fake.running(), httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as http:
        client = _client(fake, http, token=text)
        assert (await client.open_orders()).value.orders == ()
        for wrong in (42, object(), text.encode()):
            with pytest.raises(UsageError, match="token must be a TokenProvider") as caught:
                _client(fake, http, token=wrong)
            assert text not in str(caught.value)


async def test_a_second_401_is_an_authentication_error() -> None:
    fake = FakeParadex()
    async with paradex_source(fake, token=ReadOnlyToken("revoked-read-only-token")) as source:
        with pytest.raises(AuthenticationError) as caught:
            await source.positions()
    assert caught.value.status == 401
    assert len(fake.requests_to("/positions")) == 2
    assert "revoked-read-only-token" not in str(caught.value)


async def test_geo_block_says_so() -> None:
    fake = FakeParadex()
    fake.script("/positions", 403, {"error": "GEO_IP_BLOCK", "message": "blocked", "data": None})
    async with paradex_source(fake) as source:
        with pytest.raises(AuthenticationError, match="restricted jurisdictions") as caught:
            await source.positions()
    assert caught.value.code == "GEO_IP_BLOCK"


# -- error mapping and endpoints ----------------------------------------------------------


async def test_not_found_orders_are_none_and_client_id_falls_back_to_history() -> None:
    fake = FakeParadex()
    fake.orders["o1"] = order_payload("o1", client_id="c1", status="CLOSED", remaining_size="0", last_updated_at=5)
    async with paradex_source(fake) as source:
        assert await source.order("missing") is None
        with pytest.raises(NotFoundError) as caught:
            await source.rest.order("missing")
        assert caught.value.code == "ORDER_ID_NOT_FOUND"
        found = await source.order("o1")
        assert found is not None
        assert found.status is OrderStatus.FILLED
        by_client = await source.order_by_client_id("c1")  # closed: not on /by_client_id, found in history
        assert by_client is not None
        assert by_client.order_id == "o1"
        assert await source.order_by_client_id("nope") is None


@pytest.mark.parametrize(
    ("order_id", "created_at", "start_at"),
    [
        ("1718941725080201704028870000", 1_718_941_725_082, 1_718_941_725_080 - 60_000),  # time-prefixed, as Paradex's
        ("o7", 3_000, 0),  # no time in the id: from the start
        ("8615262148007718462", 3_000, 0),  # the spec's example id: digits that would date it in 2243
    ],
)
async def test_a_closed_order_the_by_id_endpoint_no_longer_answers_is_found_in_the_history(
    order_id: str, created_at: int, start_at: int
) -> None:
    # The spec: GET /orders/{id} "Only return orders in OPEN or NEW status" (API.md 3.2).
    fake = FakeParadex()
    fake.orders_by_id_open_only = True
    fake.orders["o0"] = order_payload("o0", created_at=1_000, status="CLOSED", remaining_size="0")
    fake.orders[order_id] = order_payload(
        order_id, client_id="", created_at=created_at, last_updated_at=created_at + 9, status="CLOSED"
    )
    async with paradex_source(fake) as source:
        # The venue clock read long before the order was made (a pass's reading grows old):
        # an id dated after it is still a time, as long as it is not far past our clocks.
        fake.server_time = 1_700_000_500_000
        await source.server_time()
        found = await source.order(order_id)
        assert found is not None
        assert (found.order_id, found.status, found.updated_at) == (order_id, OrderStatus.CANCELED, created_at + 9)
        (search,) = fake.requests_to("/orders-history")
        assert int(search.url.params["start_at"]) == start_at
        assert await source.order("1718941725080201704028879999") is None  # in no page: not found


async def test_path_segments_are_quoted() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source:
        assert await source.order_by_client_id("a/b c") is None
    raw_paths = [r.url.raw_path for r in fake.requests]
    assert b"/v1/orders/by_client_id/a%2Fb%20c" in raw_paths


async def test_other_4xx_is_a_venue_error_with_the_code() -> None:
    fake = FakeParadex()
    fake.script("/positions", 400, {"error": "VALIDATION_ERROR", "message": "bad thing", "data": None})
    async with paradex_source(fake) as source:
        with pytest.raises(VenueError) as caught:
            await source.positions()
    assert type(caught.value) is VenueError
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.status == 400
    assert "bad thing" in str(caught.value)


async def test_account_balance_markets_and_time() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source:
        summary = await source.fetch_account_summary()
        balances = await source.balances()
        markets = await source.markets()
        now = await source.server_time()
    assert summary.account_value == Decimal(1000)
    assert source.account_summary == summary
    assert balances[0].size == Decimal("1000.5")
    assert markets[0].open_at == 1
    assert markets[0].expiry_at is None
    assert now == fake.server_time
    # public endpoints carry no token
    assert "authorization" not in fake.requests_to("/system/time")[0].headers
    assert "authorization" not in fake.requests_to("/markets")[0].headers


async def test_page_size_is_validated() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source:
        with pytest.raises(UsageError):
            source.rest.fills(start_at=0, page_size=5001)
        with pytest.raises(UsageError):
            source.rest.fills(start_at=-1)


async def test_the_client_uses_the_injected_http_client_and_leaves_it_open() -> None:
    fake = FakeParadex()
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as http:
        client = _client(fake, http)
        await client.server_time()
        await client.aclose()
        await client.aclose()
        assert not http.is_closed
        with pytest.raises(UsageError, match="closed"):
            await client.server_time()


async def test_an_owned_http_client_is_closed() -> None:
    client = ParadexRestClient(rest_url=REST_URL, account=ACCOUNT, token=ReadOnlyToken("x" * 20))
    await client.aclose()
    assert client._http.is_closed


async def test_the_history_search_for_one_order_reads_at_most_100_pages() -> None:
    fake = FakeParadex()
    fake.orders_by_id_open_only = True
    for i in range(130):
        fake.orders[f"h{i}"] = order_payload(f"h{i}", created_at=1_000 + i, status="CLOSED", remaining_size="0")
    async with paradex_source(fake, page_size=1, rate_limiter=TokenBucket(rate=1e6, capacity=1e6)) as source:
        assert await source.order("absent") is None
    assert len(fake.requests_to("/orders-history")) == 100


async def test_a_position_without_a_time_is_dated_by_the_venue_clock_reading() -> None:
    # The spec's PositionResp requires no field: a venue may leave every time out.
    fake = FakeParadex()
    undated = position_payload("ETH-USD-PERP", "2")
    closed = position_payload("SOL-USD-PERP", "0", status="CLOSED", closed_at=5_000)
    for field in ("last_updated_at", "created_at"):
        del undated[field], closed[field]
    fake.positions = [
        undated,
        closed,
        position_payload("BTC-USD-PERP", "1", last_updated_at=1_000, created_at=1_000),
    ]
    async with paradex_source(fake, settlement_lag_ms=120_000) as source:
        before = await source.positions()  # the venue clock not read yet: nothing dates it
        assert not before.complete
        assert [p.instrument for p in before.positions] == ["SOL-USD-PERP", "BTC-USD-PERP"]
        await source.server_time()
        snapshot = await source.positions()
    assert snapshot.complete
    assert snapshot.problems == ()
    eth = next(p for p in snapshot.positions if p.instrument == "ETH-USD-PERP")
    assert (eth.size, eth.updated_at) == (Decimal(2), fake.server_time - 120_000)
    sol = next(p for p in snapshot.positions if p.instrument == "SOL-USD-PERP")
    assert sol.updated_at == 5_000  # closed_at, the one time it carries
    assert snapshot.as_of == fake.server_time - 120_000


async def test_an_undated_position_keeps_its_date_while_it_reads_the_same() -> None:
    # Dated anew by every pass's reading, an unchanged position would be a new version each pass.
    fake = FakeParadex()
    undated = position_payload("ETH-USD-PERP", "2")
    del undated["last_updated_at"], undated["created_at"]
    fake.positions = [undated]
    async with paradex_source(fake, settlement_lag_ms=0) as source:
        await source.server_time()
        first = (await source.positions()).positions[0]
        fake.server_time += 60_000
        await source.server_time()
        again = await source.positions()
        assert again.positions[0] == first
        assert again.as_of == fake.server_time  # the snapshot itself is current to the new reading
        fake.positions = [{**undated, "size": "3"}]
        fake.server_time += 60_000
        await source.server_time()
        changed = (await source.positions()).positions[0]
        # A reading behind the date it was given (that one ran ahead): dated anew, not kept.
        fake.server_time -= 3_600_000
        await source.server_time()
        back = (await source.positions()).positions[0]
        assert back.updated_at == fake.server_time
    assert (changed.size, changed.updated_at) == (Decimal(3), fake.server_time + 3_600_000)
    assert first.updated_at == fake.server_time + 3_600_000 - 120_000


async def test_a_positions_snapshot_is_current_to_the_venue_clock_reading_minus_the_lag() -> None:
    # /positions may list only open ones: a position closed after the listed ones were last
    # updated must still be judged absent (flat), so as_of cannot be the newest listed time.
    fake = FakeParadex()
    fake.positions = [position_payload("BTC-USD-PERP", "1", last_updated_at=1_000, created_at=1_000)]
    async with paradex_source(fake, settlement_lag_ms=120_000) as source:
        assert (await source.positions()).as_of == 1_000  # the venue clock not read yet
        fake.positions = []
        assert (await source.positions()).as_of is None  # nothing to judge absence by yet
        fake.positions = [position_payload("BTC-USD-PERP", "1", last_updated_at=1_000, created_at=1_000)]
        assert await source.server_time() == fake.server_time
        read = fake.server_time
        # Not carried forward by our clock: its rate need not be the venue's (a venue whose
        # clock ran slower would see positions it still lists judged flat).
        source.rest._clock.time += 30.0
        fake.server_time += 5_000
        snapshot = await source.positions()
        assert snapshot.as_of == read - 120_000
        # A venue listing only open positions answers an empty list once the account is flat
        # everywhere: it is as current as any other answer (else the positions stayed open).
        fake.positions = []
        empty = await source.positions()
        assert empty.complete
        assert empty.positions == ()
        assert empty.as_of == read - 120_000
        assert await source.server_time() == read + 5_000
        assert (await source.positions()).as_of == read + 5_000 - 120_000
