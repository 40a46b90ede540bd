"""The Paradex REST client against a hostile or sloppy venue and caller: cursor cycles, paginated
snapshots, odd ``Retry-After`` dates, unsendable tokens, secrets in causes, dot-segment ids."""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable, Iterator

import httpx
import pytest

from reconcile_core.errors import AuthenticationError, NotFoundError, TransportError, VenueError
from reconcile_paradex import CallableTokenProvider, ParadexRestClient, ReadOnlyToken, RetryPolicy, TokenBucket
from reconcile_paradex._rest import _retry_after

from .fake_venue import ACCOUNT, REST_URL, FakeClock, fill_payload, order_payload, position_payload

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx.Request], httpx.Response]
PLAIN_TOKEN = "plainsecrettoken-ABCDEFGH-123456"  # noqa: S105 - a fake token


class Venue:
    """A MockTransport handler that records requests and answers with ``answer``."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def _client(venue: Venue, **options: object) -> ParadexRestClient:
    options.setdefault("token", ReadOnlyToken(PLAIN_TOKEN))
    options.setdefault("clock", FakeClock())
    options.setdefault("rate_limiter", TokenBucket())
    options.setdefault("rng", random.Random(3))
    http = httpx.AsyncClient(transport=httpx.MockTransport(venue))
    return ParadexRestClient(rest_url=REST_URL, account=ACCOUNT, http_client=http, **options)  # type: ignore[arg-type]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it chains (cause or context, shown or not)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        todo += [node.__cause__, node.__context__]


def _assert_hidden(secret: str, exc: BaseException, logs: str = "") -> None:
    texts = [str(e) for e in _chain(exc)] + [repr(e) for e in _chain(exc)]
    texts += ["".join(traceback.format_exception(exc)), logs]
    assert not [text for text in texts if secret in text]


def _cycling(cursors: dict[str | None, str | None], row: Callable[[int], object], limit: int = 4) -> Venue:
    """Pages whose ``next`` follows ``cursors``; after ``limit`` requests the venue ends the list, so
    a client without a cycle guard finishes quietly instead of looping forever."""

    def answer(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        nxt = cursors[cursor] if len(venue.requests) < limit else None
        return httpx.Response(200, json={"results": [row(len(venue.requests))], "next": nxt, "prev": None})

    venue = Venue(answer)
    return venue


# -- 1. cursor cycles -------------------------------------------------------------------


async def test_a_cursor_cycle_stops_with_a_venue_error() -> None:
    venue = _cycling({None: "A", "A": "B", "B": "A"}, lambda n: fill_payload(f"f{n}", created_at=n))
    async with _client(venue) as client:
        with pytest.raises(VenueError, match="same cursor twice"):
            [page async for page in client.fills(start_at=0)]
    assert [r.url.params.get("cursor") for r in venue.requests] == [None, "A", "B"]


# -- 2. paginated snapshots -----------------------------------------------------------


def _two_pages(first: object, second: object) -> Venue:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor") == "c2":
            return httpx.Response(200, json={"results": [second], "next": None, "prev": "c1"})
        return httpx.Response(200, json={"results": [first], "next": "c2", "prev": None})

    return Venue(answer)


async def test_a_paginated_positions_answer_is_followed_to_the_last_page() -> None:
    venue = _two_pages(position_payload("ETH-USD-PERP", "1"), position_payload("BTC-USD-PERP", "2.5"))
    async with _client(venue) as client:
        snapshot = (await client.positions()).value
    assert sorted(p.instrument for p in snapshot.positions) == ["BTC-USD-PERP", "ETH-USD-PERP"]
    assert snapshot.complete
    assert [r.url.params.get("cursor") for r in venue.requests] == [None, "c2"]


async def test_a_paginated_open_orders_answer_is_followed_with_the_same_filter() -> None:
    venue = _two_pages(order_payload("o1"), order_payload("o2"))
    async with _client(venue) as client:
        snapshot = (await client.open_orders(market="BTC-USD-PERP")).value
    assert sorted(o.order_id for o in snapshot.orders) == ["o1", "o2"]
    assert snapshot.complete
    assert snapshot.instrument == "BTC-USD-PERP"
    assert [r.url.params.get("cursor") for r in venue.requests] == [None, "c2"]
    assert all(r.url.params["market"] == "BTC-USD-PERP" for r in venue.requests)


async def test_a_bad_row_on_a_later_snapshot_page_makes_the_snapshot_incomplete() -> None:
    venue = _two_pages(position_payload("ETH-USD-PERP", "1"), position_payload("BTC-USD-PERP", "NaN"))
    async with _client(venue) as client:
        parsed = await client.positions()
    assert [p.instrument for p in parsed.value.positions] == ["ETH-USD-PERP"]
    assert not parsed.value.complete
    assert parsed.problems


async def test_a_cursor_cycle_in_a_snapshot_stops_with_a_venue_error() -> None:
    venue = _cycling({None: "c1", "c1": "c2", "c2": "c1"}, lambda n: position_payload(f"M{n}-USD-PERP", "1"))
    async with _client(venue) as client:
        with pytest.raises(VenueError, match="same cursor twice"):
            await client.positions()
    assert len(venue.requests) == 3


# -- 3. Retry-After dates -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "date"),
    [
        ("Sun Nov  6 08:49:40 1994", "Sun, 06 Nov 1994 08:49:37 GMT"),  # asctime (RFC 7231)
        ("Sun, 06 Nov 1994 08:49:40 -0000", "Sun, 06 Nov 1994 08:49:37 GMT"),  # -0000: UTC, naive
        ("Sun, 06 Nov 1994 08:49:40 GMT", "Sun Nov  6 08:49:37 1994"),
        ("Sunday, 06-Nov-94 08:49:40 GMT", "Sun, 06 Nov 1994 10:49:37 +0200"),  # RFC 850
    ],
)
async def test_retry_after_dates_of_every_http_form_are_honoured(retry_after: str, date: str) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": retry_after, "Date": date}, json={})])
    venue = Venue(lambda request: next(answers, httpx.Response(200, json={"results": []})))
    clock = FakeClock()
    async with _client(venue, clock=clock) as client:
        await client.positions()
    assert clock.sleeps == [3.0]


@pytest.mark.parametrize("headers", [{"Retry-After": "0"}, {"Retry-After": "0.0"}, {}])
async def test_a_429_asking_for_no_wait_still_backs_off(headers: dict[str, str]) -> None:
    # Retry-After in whole seconds rounds a sub-second wait (a 600/min bucket) down to 0:
    # retrying at once would spend every attempt in the same instant.
    answers = iter([httpx.Response(429, headers=headers, json={}) for _ in range(4)])
    venue = Venue(lambda request: next(answers, httpx.Response(200, json={"results": []})))
    clock = FakeClock()
    async with _client(venue, clock=clock) as client:
        await client.positions()
    assert len(venue.requests) == 5
    # Retry n waits in the upper half of the default backoff range: 0.5 * 2**(n-1).
    assert [0.25 <= clock.sleeps[0] <= 0.5, 0.5 <= clock.sleeps[1] <= 1.0] == [True, True]
    assert [1.0 <= clock.sleeps[2] <= 2.0, 2.0 <= clock.sleeps[3] <= 4.0] == [True, True]


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "Sun, 06 Nov 99999 08:49:40 GMT", "Date": "Sun, 06 Nov 1994 08:49:37 GMT"},
        {"Retry-After": "Sun, 06 Nov 1994 08:49:40 +9999", "Date": "Sun, 06 Nov 1994 08:49:37 GMT"},
        {"Retry-After": "Sun, 06 Nov 1994 08:49:40 GMT", "Date": "\x00"},
        {"Retry-After": "Mon, 1 Jan 1 00:00:00 -2359", "Date": "Fri, 31 Dec 9999 23:59:59 +2359"},
        {"Retry-After": "1e400"},
        {"Retry-After": "nan"},
    ],
)
def test_retry_after_is_seconds_or_none(headers: dict[str, str]) -> None:
    seconds = _retry_after(httpx.Response(429, headers=headers))
    assert seconds is None or (type(seconds) is float and seconds >= 0)


# -- 4. tokens an HTTP header cannot carry; secrets in chained causes -----------------------


@pytest.mark.parametrize("suffix", ["\n", "é", "\r\nX-Evil: 1", " x", "\t", "\x00"])
async def test_a_token_an_http_header_cannot_carry_is_refused_before_sending(suffix: str) -> None:
    token = PLAIN_TOKEN + suffix
    venue = Venue(lambda request: httpx.Response(200, json={"results": []}))
    async with _client(venue, token=ReadOnlyToken(token)) as client:
        with pytest.raises(AuthenticationError, match="cannot carry") as caught:
            await client.positions()
    assert venue.requests == []
    _assert_hidden(PLAIN_TOKEN, caught.value)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [(httpx.ConnectError, TransportError), (httpx.ReadTimeout, TransportError), (httpx.DecodingError, TransportError)],
)
async def test_no_chained_cause_shows_the_token(failure: type[httpx.HTTPError], expected: type[Exception]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise failure(f"failed after sending {request.headers['authorization']}", request=request)

    async with _client(Venue(answer), retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(expected) as caught:
            await client.positions()
    _assert_hidden(PLAIN_TOKEN, caught.value)


# -- 5. a token function raising with key material ---------------------------------------------


async def test_a_token_function_error_is_named_but_neither_shown_nor_chained(caplog: pytest.LogCaptureFixture) -> None:
    key = "0xDEADBEEFSECRETKEYMATERIAL123456"

    def mint() -> str:
        raise ValueError(f"cannot sign with private key {key}")

    venue = Venue(lambda request: httpx.Response(200, json={"results": []}))
    caplog.set_level(logging.DEBUG)
    async with _client(venue, token=CallableTokenProvider(mint)) as client:
        with pytest.raises(AuthenticationError, match="ValueError") as caught:
            await client.positions()
        logging.getLogger("test").debug("failed", exc_info=caught.value)
    assert venue.requests == []
    _assert_hidden(key, caught.value, caplog.text)


# -- 6. an error code echoing the token ------------------------------------------------------


async def test_an_error_code_echoing_the_token_is_redacted() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": request.headers["authorization"][7:], "message": "x"})

    async with _client(Venue(answer)) as client:
        with pytest.raises(VenueError) as caught:
            await client.positions()
    assert caught.value.status == 400
    _assert_hidden(PLAIN_TOKEN, caught.value)
    assert PLAIN_TOKEN not in str(caught.value.code)


async def test_a_content_type_echoing_the_token_is_redacted_and_cut() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        ctype = f"text/html; token={request.headers['authorization'][7:]}; " + "x" * 500
        return httpx.Response(200, content=b"<html>not json</html>", headers={"content-type": ctype})

    async with _client(Venue(answer)) as client:
        with pytest.raises(VenueError, match="content-type 'text/html; token=") as caught:
            await client.positions()
    _assert_hidden(PLAIN_TOKEN, caught.value)
    assert "x" * 100 not in str(caught.value)


# -- 7. dot-segment ids ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [".", ".."])
async def test_a_dot_segment_id_is_not_found_without_asking_another_endpoint(value: str) -> None:
    venue = Venue(lambda request: httpx.Response(200, json=order_payload("o1")))
    async with _client(venue) as client:
        with pytest.raises(NotFoundError):
            await client.order(value)
        with pytest.raises(NotFoundError):
            await client.order_by_client_id(value)
    assert venue.requests == []


async def test_ids_holding_dots_are_still_asked_for() -> None:
    answers = iter([order_payload("..."), order_payload("o1", client_id="../account")])
    venue = Venue(lambda request: httpx.Response(200, json=next(answers)))
    async with _client(venue) as client:
        await client.order("...")
        await client.order_by_client_id("../account")
    assert [r.url.raw_path for r in venue.requests] == [
        b"/v1/orders/...",
        b"/v1/orders/by_client_id/..%2Faccount",
    ]


# -- 7. a token provider of your own that fails --------------------------------------------------


class _OwnProvider:
    """A TokenProvider written by a user (not one of the library's), failing in its own way."""

    def __init__(self, outcome: object) -> None:
        self.outcome = outcome

    async def token(self, *, force_refresh: bool = False) -> str:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("outcome", "named"),
    [
        (RuntimeError("vault unreachable; key 0xDEADBEEFSECRETKEYMATERIAL123456"), "RuntimeError"),
        (KeyError("0xDEADBEEFSECRETKEYMATERIAL123456"), "KeyError"),
        (None, "NoneType"),
        (b"bytes-token", "bytes"),
        ("", "str"),
    ],
)
async def test_a_failing_provider_of_your_own_is_an_authentication_error(
    outcome: object, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    venue = Venue(lambda request: httpx.Response(200, json={"results": []}))
    caplog.set_level(logging.DEBUG)
    async with _client(venue, token=_OwnProvider(outcome)) as client:
        with pytest.raises(AuthenticationError, match=named) as caught:
            await client.positions()
    assert venue.requests == []
    _assert_hidden("0xDEADBEEFSECRETKEYMATERIAL123456", caught.value, caplog.text)


async def test_a_provider_raising_a_library_error_passes_it_through() -> None:
    venue = Venue(lambda request: httpx.Response(200, json={"results": []}))
    refused = AuthenticationError("the vault refused", status=403)
    async with _client(venue, token=_OwnProvider(refused)) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.positions()
    assert caught.value is refused


# -- 8. a venue echoing the token into a field that a discrepancy quotes ------------------------


async def test_discrepancies_about_fields_echoing_the_token_do_not_show_it(caplog: pytest.LogCaptureFixture) -> None:
    rows = {
        "/v1/fills": {
            "results": [fill_payload("f1", fill_type=PLAIN_TOKEN), fill_payload("f2", liquidity=PLAIN_TOKEN)],
        },
        "/v1/orders": {"results": [order_payload("o1", status=PLAIN_TOKEN)]},
        "/v1/orders/o2": order_payload("o2", side=PLAIN_TOKEN),
        "/v1/positions": {"results": [position_payload("BTC-USD-PERP", "1", side=PLAIN_TOKEN)]},
    }
    venue = Venue(lambda request: httpx.Response(200, json=rows[request.url.path]))
    caplog.set_level(logging.DEBUG)
    problems = []
    async with _client(venue) as client:
        async for page in client.fills(start_at=0):
            problems += page.problems
        open_orders = await client.open_orders()
        problems += [*open_orders.problems, *open_orders.value.problems]
        order = await client.order("o2")
        problems += order.problems
        positions = await client.positions()
        problems += [*positions.problems, *positions.value.problems]
    assert len(problems) >= 4  # each odd field is reported...
    for problem in problems:  # ...without the token
        assert PLAIN_TOKEN not in f"{problem.subject} {problem.detail} {problem.seen} {problem!r}"
    assert PLAIN_TOKEN not in caplog.text


# -- 9. an answer about another order ------------------------------------------------------------


async def test_an_answer_about_another_order_is_a_venue_error() -> None:
    answers = iter([order_payload("o2"), order_payload("o3", client_id="c9")])
    venue = Venue(lambda request: httpx.Response(200, json=next(answers)))
    async with _client(venue) as client:
        with pytest.raises(VenueError, match="another order, 'o2'"):
            await client.order("o1")
        with pytest.raises(VenueError, match="another client id, 'c9'"):
            await client.order_by_client_id("c1")


# -- 10. fresh cursors and no rows, forever ------------------------------------------------------


async def test_endless_empty_pages_stop_with_a_venue_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if len(venue.requests) > 500:  # a client without the guard ends here, quietly
            return httpx.Response(200, json={"results": [], "next": None})
        return httpx.Response(200, json={"results": [], "next": f"c{len(venue.requests)}"})

    venue = Venue(answer)
    async with _client(venue, rate_limiter=TokenBucket(rate=1e9, capacity=1e6)) as client:
        with pytest.raises(VenueError, match="100 empty pages in a row"):
            async for _ in client.fills(start_at=0):
                pass
    assert len(venue.requests) == 100


async def test_a_few_empty_pages_between_rows_are_followed() -> None:
    pages = [[], [], [fill_payload("f1")], [], [fill_payload("f2")]]

    def answer(request: httpx.Request) -> httpx.Response:
        index = len(venue.requests) - 1
        nxt = f"c{index + 1}" if index + 1 < len(pages) else None
        return httpx.Response(200, json={"results": pages[index], "next": nxt})

    venue = Venue(answer)
    async with _client(venue) as client:
        ids = [fill.key.fill_id async for page in client.fills(start_at=0) for fill in page.items]
    assert ids == ["f1", "f2"]
