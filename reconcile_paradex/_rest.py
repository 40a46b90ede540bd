"""The Paradex REST client: one ``httpx.AsyncClient``, rate limited, retried, errors mapped.

Every method returns library types and raises only :mod:`reconcile_core.errors`:

* ``NotFoundError`` — ``ORDER_ID_NOT_FOUND``, ``CLIENT_ORDER_ID_NOT_FOUND``,
  ``NOT_FOUND`` or HTTP 404;
* ``AuthenticationError`` — 401/403 and the auth error codes; geo-blocking
  (``GEO_IP_BLOCK``) says so plainly;
* ``RateLimitedError`` — still 429 after the allowed retries;
* ``VenueError`` — any other refusal, or a body that is not the JSON promised
  (an HTML error page, say), or a malformed envelope (``ParseError``);
* ``TimeoutError`` / ``TransportError`` — the network, after the retries.

Retries (:class:`RetryPolicy`): 5xx, timeouts and connection errors back off
exponentially with full jitter; 429 waits ``Retry-After`` and pauses the
account's whole token bucket. A 401 refreshes the token once
(``force_refresh=True``) and retries: Paradex JWTs expire every 5 minutes,
and the expiry answer is ``401 {"message": "... token is expired by ..."}``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import random
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Final, ParamSpec, Self, TypeVar
from urllib.parse import quote

import attrs
import httpx

from reconcile_core import Discrepancy, Fill, FillBust, OpenOrdersSnapshot, Order, Page, PositionsSnapshot, Source
from reconcile_core.errors import (
    AuthenticationError,
    NotFoundError,
    ParseError,
    RateLimitedError,
    TransportError,
    UsageError,
    VenueError,
)
from reconcile_core.errors import TimeoutError as RequestTimeoutError

from ._auth import GEO_BLOCK_MESSAGE, ReadOnlyToken, Secret, TokenProvider, as_provider, fetch_token
from ._fields import decode_json, is_ms, is_nonempty_str
from ._models import AccountSummary, Balance, Market, Parsed
from ._parse import (
    parse_account_summary,
    parse_balances,
    parse_error_body,
    parse_fill,
    parse_fill_bust,
    parse_markets,
    parse_open_orders,
    parse_order,
    parse_page,
    parse_positions,
    parse_server_time,
)
from ._ratelimit import Clock, RetryPolicy, SystemClock, TokenBucket, shared_bucket
from ._redact import body_excerpt, cut, redact
from ._urls import check_url, shown_url
from ._wire import fills_page, orders_page

__all__ = ["MAX_PAGE_SIZE", "ParadexRestClient"]

#: Empty pages in a row, each with a ``next`` cursor, after which a listing stops as a venue error.
_MAX_EMPTY_PAGES: Final = 100
#: The same rows again, each time with a fresh ``next`` cursor: after this many pages in a row
#: a listing stops as a venue error (re-signed cursors defeat the repeated-cursor check).
_MAX_REPEATED_PAGES: Final = 3
#: The longest a ``Retry-After`` holds the account's later requests back, in seconds.
_LONGEST_PAUSE: Final = 900.0

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

logger = logging.getLogger("reconcile_paradex.rest")

#: The largest ``page_size`` Paradex accepts on ``/fills``, ``/orders-history`` and ``/tradebusts``.
MAX_PAGE_SIZE: Final = 5000
_USER_AGENT: Final = "reconcile-trading (reconcile_paradex)"

_NOT_FOUND_CODES: Final = frozenset({"ORDER_ID_NOT_FOUND", "CLIENT_ORDER_ID_NOT_FOUND", "NOT_FOUND"})
_AUTH_CODES: Final = frozenset(
    {
        "INVALID_TOKEN",
        "INVALID_TOKEN_SCOPE",
        "UNAUTHORIZED_ERROR",
        "IP_NOT_ALLOWED",
        "NOT_ONBOARDED",
        "ACCOUNT_NOT_FOUND",
        "GEO_IP_BLOCK",
    }
)
#: What an ``Authorization: Bearer`` value may hold: printable ASCII, no whitespace (RFC 7230
#: field-value and RFC 6750 token68 are stricter still; the venue judges the rest).
_HEADER_TOKEN_RE: Final = re.compile(r"[\x21-\x7e]+")


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if unusable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)  # float ok: seconds, not money
    except ValueError:
        when = _http_date(value)
        now = _http_date(response.headers.get("Date"))
        if when is None or now is None:
            return None
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _http_date(value: str | None) -> dt.datetime | None:
    """An HTTP date (RFC 7231: IMF-fixdate, RFC 850 or asctime) as an aware UTC datetime, else ``None``."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    # asctime dates and the "-0000" zone parse naive; HTTP dates are all UTC (RFC 7231 §7.1.1.1).
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


class ParadexRestClient:
    """Authenticated reads from the Paradex REST API for one account.

    ``http_client`` is used as is (and not closed by :meth:`aclose`); without
    one, the client makes its own and closes it. ``rate_limiter`` defaults to
    the process-wide bucket of ``(rest_url, account)``, so every client of one
    account shares it. ``clock`` and ``rng`` are for tests.
    """

    def __init__(
        self,
        *,
        rest_url: str,
        account: str,
        token: TokenProvider | str | Secret,
        http_client: httpx.AsyncClient | None = None,
        rate_limiter: TokenBucket | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        timeout: float = 15.0,
    ) -> None:
        if not account:
            raise UsageError("account must be a non-empty Paradex account address")
        check_url("rest_url", rest_url, ("http", "https"))
        self._base = rest_url.rstrip("/")
        self._account = account
        self._token = token = as_provider(token)
        self._owns_client = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": _USER_AGENT},
            follow_redirects=False,
        )
        self._bucket = rate_limiter if rate_limiter is not None else shared_bucket(self._base, account)
        self._retry = retry or RetryPolicy()
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._closed = False
        # The token to scrub from what the venue says: known from the start when it never
        # changes (a read-only token), else the last one sent.
        self._last_token = token._secret.reveal() if isinstance(token, ReadOnlyToken) else ""

    def __repr__(self) -> str:
        return f"<ParadexRestClient {shown_url(self._base)} account={self._account}>"

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- the request loop ------------------------------------------------------

    def _clean(self, text: str) -> str:
        return redact(text, self._last_token)

    def _parse(self, parse: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``parse(*args, **kwargs)``; a ``ParseError`` comes out redacted.

        It may quote a value the venue echoed back: the token.
        """
        try:
            return parse(*args, **kwargs)
        except ParseError as exc:
            error = ParseError(self._clean(str(exc)), field=exc.field)
        raise error

    def _showable(self, exc: BaseException) -> BaseException | None:
        """``exc`` to chain as a cause, or ``None`` if it or anything it chains shows the token.

        httpx errors may quote the request (an h11 ``LocalProtocolError`` quotes the header it
        refused), and a chained cause reaches every log that prints the traceback.
        """
        seen: set[int] = set()
        todo: list[BaseException | None] = [exc]
        while todo:
            node = todo.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if any(self._clean(text) != text for text in (str(node), repr(node))):
                return None
            todo += [node.__cause__, node.__context__]
        return exc

    async def get_json(self, path: str, params: Mapping[str, str | int] | None = None, *, auth: bool = True) -> object:
        """``GET {rest_url}{path}``: the decoded JSON body, after retries and error mapping."""
        return self._decode(await self._get(path, params, auth=auth), f"GET {path}")

    async def _get(
        self, path: str, params: Mapping[str, str | int] | None = None, *, auth: bool = True
    ) -> httpx.Response:
        """``GET {rest_url}{path}``: the 2xx response, after retries and error mapping (body not decoded)."""
        if self._closed:
            raise UsageError("the Paradex REST client is closed")
        url = self._base + path
        what = f"GET {path}"
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            headers = {"Accept": "application/json"}
            if auth:
                await self._bucket.acquire(self._clock)
                try:
                    token = await fetch_token(self._token, force_refresh=refreshed)
                except (TransportError, VenueError) as exc:
                    # A provider minting over the network (POST /auth) may fail the way a
                    # request does: retried like one, with the same backoff and attempts.
                    if not _transient(exc) or attempt >= self._retry.attempts:
                        raise
                    delay = self._retry.backoff(attempt, self._rng)
                    logger.warning("%s: no token (%s); retry %d in %.3f s", what, exc, attempt, delay)
                    await self._clock.sleep(delay)
                    continue
                self._last_token = token
                headers["Authorization"] = f"Bearer {_header_token(token, what)}"
            failure: Exception
            cause: BaseException
            final = False
            # Mapped outside the handlers (below) so that a dropped cause is not kept as __context__.
            try:
                response = await self._http.get(url, params=dict(params or {}), headers=headers)
            except httpx.TimeoutException as exc:
                failure = RequestTimeoutError(f"{what}: Paradex did not answer in time ({type(exc).__name__})")
                cause = exc
            except httpx.TransportError as exc:
                failure = TransportError(
                    f"{what}: connection to Paradex failed ({type(exc).__name__}: {self._clean(str(exc))})"
                )
                cause = exc
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                failure = TransportError(f"{what}: HTTP error ({type(exc).__name__}: {self._clean(str(exc))})")
                cause, final = exc, True
            else:
                status = response.status_code
                logger.debug("%s -> HTTP %d (attempt %d)", what, status, attempt)
                if 200 <= status < 300:
                    return response
                if status == 401 and auth and not refreshed:
                    # Expired JWT (they live 5 minutes): one refresh, one retry.
                    refreshed = True
                    attempt -= 1
                    logger.info("%s: HTTP 401, refreshing the token and retrying once", what)
                    continue
                if status == 429:
                    retry_after = _retry_after(response)
                    wait = self._retry.after_rate_limit(attempt, self._rng, retry_after)
                    if attempt >= self._retry.attempts or wait > self._retry.max_retry_after:
                        if retry_after is not None:  # the venue's word holds for the next requests too
                            self._bucket.pause(self._clock.now(), min(retry_after, _LONGEST_PAUSE))
                        raise RateLimitedError(
                            f"{what}: Paradex rate-limited the account (HTTP 429) after {attempt} attempt(s)"
                            + (f"; it asks to wait {retry_after:g} s" if retry_after is not None else ""),
                            status=429,
                            retry_after=retry_after,
                        )
                    logger.warning("%s: HTTP 429, waiting %.3f s before retrying", what, wait)
                    self._bucket.pause(self._clock.now(), wait)
                    if not auth:  # public calls skip the account bucket: wait here
                        await self._clock.sleep(wait)
                    continue
                error = self._error(response, what)
                if status < 500:
                    raise error
                failure, cause = error, error
            if final or attempt >= self._retry.attempts:
                raise failure from self._showable(cause)
            delay = self._retry.backoff(attempt, self._rng)
            logger.warning("%s failed (%s); retry %d in %.3f s", what, failure, attempt, delay)
            await self._clock.sleep(delay)

    def _decode(self, response: httpx.Response, what: str) -> object:
        try:
            return decode_json(response.content)
        except ParseError as exc:
            raise VenueError(
                f"{what}: Paradex sent a body that is not JSON (HTTP {response.status_code}, "
                f"content-type {self._content_type(response)}): {self._excerpt(response)}",
                status=response.status_code,
            ) from exc

    def _content_type(self, response: httpx.Response) -> str:
        # A header is venue text too: it may echo the token, and may be long.
        return repr(cut(response.headers.get("content-type", "unknown"), 80, self._last_token))

    def _excerpt(self, response: httpx.Response) -> str:
        return body_excerpt(response.content, self._last_token)

    def _redacted(self, problems: tuple[Discrepancy, ...]) -> tuple[Discrepancy, ...]:
        """``problems`` without the token: a discrepancy quotes the venue's fields, and the venue
        may echo the token into any of them (an id, a status)."""
        token = self._last_token
        return tuple(
            attrs.evolve(
                p,
                subject=redact(p.subject, token),
                detail=redact(p.detail, token),
                seen=None if p.seen is None else redact(p.seen, token),
            )
            for p in problems
        )

    def _scrubbed(self, parsed: Parsed[T]) -> Parsed[T]:
        """``parsed`` with its problems (and its snapshot's) redacted (see :meth:`_redacted`)."""
        value = parsed.value
        if isinstance(value, OpenOrdersSnapshot | PositionsSnapshot) and value.problems:
            value = attrs.evolve(value, problems=self._redacted(value.problems))
        if not parsed.problems and value is parsed.value:
            return parsed
        return Parsed(value, self._redacted(parsed.problems))

    def _error(self, response: httpx.Response, what: str) -> VenueError:
        status = response.status_code
        try:
            code, message = parse_error_body(decode_json(response.content))
        except ParseError:
            code, message = None, None
        code = self._clean(code) if code else None  # venues echo what they were sent, the token included
        detail = self._clean(message) if message else f"non-JSON body {self._excerpt(response)}"
        text = f"{what}: Paradex answered HTTP {status}" + (f" {code}" if code else "") + f": {detail}"
        if code == "GEO_IP_BLOCK":
            return AuthenticationError(f"{what}: {GEO_BLOCK_MESSAGE}", code=code, status=status)
        if code in _NOT_FOUND_CODES or (status == 404 and code is None):
            return NotFoundError(text, code=code, status=status)
        if status in (401, 403) or code in _AUTH_CODES:
            return AuthenticationError(text, code=code, status=status)
        return VenueError(text, code=code, status=status)

    async def _paginate(
        self,
        path: str,
        params: Mapping[str, str | int],
        what: str,
        parse_item: Callable[[object], Parsed[T]],
        fast: Callable[[bytes], tuple[Page[T], str | None] | None] | None = None,
    ) -> AsyncGenerator[Page[T], None]:
        """Every page from ``path``; ``fast`` (see ``_wire``) parses a body first, and where it
        declines, ``decode_json`` and ``parse_page`` with ``parse_item`` decide."""
        cursor: str | None = None
        seen: set[str] = set()
        empty = 0  # pages in a row with no row, each with a next cursor
        repeated = 0  # pages in a row with the rows of the page before
        previous: tuple[T, ...] = ()
        while True:
            query: dict[str, str | int] = dict(params)
            if cursor is not None:
                query["cursor"] = cursor  # exactly as the venue sent it: cursors are signed
            response = await self._get(path, query)
            parsed = None if fast is None else fast(response.content)
            if parsed is None:
                parsed = self._parse(parse_page, self._decode(response, f"GET {path}"), what, parse_item)
            page, next_cursor = parsed
            if page.problems:
                page = attrs.evolve(page, problems=self._redacted(page.problems))
            yield page
            if next_cursor is None:
                return
            if next_cursor in seen:
                # A->B->A cycles too, not only A->A: any repeat would loop forever.
                raise VenueError(f"GET {path}: Paradex returned the same cursor twice; stopping to avoid a loop")
            empty = 0 if page.items or page.problems else empty + 1
            if empty >= _MAX_EMPTY_PAGES:
                # Fresh cursors and no rows, forever: a loop the cursor check cannot see.
                raise VenueError(f"GET {path}: Paradex returned {empty} empty pages in a row, each with a next cursor")
            repeated = repeated + 1 if page.items and page.items == previous else 0
            if repeated >= _MAX_REPEATED_PAGES:
                # The same page again and again, under fresh cursors: a loop the cursor check cannot see.
                raise VenueError(
                    f"GET {path}: Paradex returned the same page {repeated + 1} times in a row, each with a new cursor"
                )
            previous = page.items
            seen.add(next_cursor)
            cursor = next_cursor

    async def _snapshot(self, path: str, params: Mapping[str, str | int], what: str) -> dict[str, object]:
        """``{"results": [...]}``: the raw rows of every page of a snapshot endpoint.

        The spec does not paginate ``/orders`` or ``/positions``, but the SDK documents
        ``next``/``prev`` there: a ``next`` is followed like any cursor, since a snapshot cut
        at page 1 would call everything on later pages gone or flat. Rows are parsed after,
        as one snapshot.
        """
        rows: list[object] = []
        async for page in self._paginate(path, params, what, Parsed):
            rows += page.items
        return {"results": rows}

    # -- endpoints -------------------------------------------------------------

    async def open_orders(self, *, market: str | None = None) -> Parsed[OpenOrdersSnapshot]:
        """``GET /v1/orders``: every open order (a complete snapshot, of one market if given; every page)."""
        params = {"market": market} if market else {}
        parsed = self._parse(parse_open_orders, await self._snapshot("/orders", params, "open orders"))
        if market:
            snapshot = attrs.evolve(parsed.value, instrument=market)
            parsed = Parsed(snapshot, parsed.problems)
        return self._scrubbed(parsed)

    async def order(self, order_id: str) -> Parsed[Order]:
        """``GET /v1/orders/{id}``; ``NotFoundError`` when Paradex does not know it.

        An answer about another order is a :class:`VenueError`.
        """
        path = f"/orders/{_segment(order_id, 'order_id')}"
        parsed = self._scrubbed(self._parse(parse_order, await self.get_json(path), source=Source.REST))
        if parsed.value.order_id != order_id:
            raise VenueError(f"GET {path}: Paradex answered with another order, {self._clean(parsed.value.order_id)!r}")
        return parsed

    async def order_by_client_id(self, client_id: str) -> Parsed[Order]:
        """``GET /v1/orders/by_client_id/{client_id}``; ``NotFoundError`` when unknown.

        An answer about an order with another client id is a :class:`VenueError`.
        """
        path = f"/orders/by_client_id/{_segment(client_id, 'client_id')}"
        parsed = self._scrubbed(self._parse(parse_order, await self.get_json(path), source=Source.REST))
        if parsed.value.client_id != client_id:
            raise VenueError(
                f"GET {path}: Paradex answered with an order of another client id, "
                f"{self._clean(parsed.value.client_id or '')!r}"
            )
        return parsed

    def orders_history(
        self,
        *,
        start_at: int,
        end_at: int | None = None,
        client_id: str | None = None,
        market: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncGenerator[Page[Order], None]:
        """``GET /v1/orders-history`` from ``start_at`` (ms), every page."""
        params = _window(start_at, end_at, page_size)
        if client_id:
            params["client_id"] = client_id
        if market:
            params["market"] = market
        return self._paginate(
            "/orders-history",
            params,
            "orders history",
            lambda row: parse_order(row, source=Source.REST),
            lambda body: orders_page(body, what="orders history", source=Source.REST),
        )

    def fills(
        self,
        *,
        start_at: int,
        end_at: int | None = None,
        market: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Page[Fill]]:
        """``GET /v1/fills`` from ``start_at`` (ms), following ``next`` until it is null."""
        params = _window(start_at, end_at, page_size)
        if market:
            params["market"] = market
        account = self._account
        return self._paginate(
            "/fills",
            params,
            "fills",
            lambda row: parse_fill(row, account=account, source=Source.REST),
            lambda body: fills_page(body, account=account, source=Source.REST),
        )

    def tradebusts(
        self, *, start_at: int, end_at: int | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> AsyncIterator[Page[FillBust]]:
        """``GET /v1/tradebusts`` from ``start_at`` (ms), every page."""
        account = self._account
        return self._paginate(
            "/tradebusts",
            _window(start_at, end_at, page_size),
            "trade busts",
            lambda row: parse_fill_bust(row, account=account, source=Source.REST),
        )

    async def positions(self, *, undated_at: int | None = None) -> Parsed[PositionsSnapshot]:
        """``GET /v1/positions``: the complete positions snapshot (every page, if Paradex pages it).

        ``undated_at`` dates a row without a time (see :func:`parse_position`).
        """
        payload = await self._snapshot("/positions", {}, "positions")
        return self._scrubbed(self._parse(parse_positions, payload, undated_at=undated_at))

    async def account_summary(self) -> Parsed[AccountSummary]:
        """``GET /v1/account``."""
        return self._scrubbed(self._parse(parse_account_summary, await self.get_json("/account")))

    async def balances(self) -> Parsed[tuple[Balance, ...]]:
        """``GET /v1/balance``."""
        return self._scrubbed(self._parse(parse_balances, await self.get_json("/balance")))

    async def markets(self, *, market: str | None = None) -> Parsed[tuple[Market, ...]]:
        """``GET /v1/markets`` (public)."""
        params = {"market": market} if market else {}
        return self._scrubbed(self._parse(parse_markets, await self.get_json("/markets", params, auth=False)))

    async def server_time(self) -> int:
        """``GET /v1/system/time`` (public): the venue clock in ms."""
        return self._parse(parse_server_time, await self.get_json("/system/time", auth=False))


def _segment(value: str, name: str) -> str:
    if not is_nonempty_str(value):
        raise UsageError(f"{name} must be a non-empty str, got {value!r}")
    if value in (".", ".."):
        # A dot segment names another path once resolved: httpx resolves a bare one, and proxies
        # may resolve even %2E%2E (RFC 3986 §6.2.2). No Paradex id is one, so none is asked for.
        raise NotFoundError(f"{name} {value!r} cannot name an order (a URL path resolves it away); not asked")
    return quote(value, safe="")


def _transient(exc: BaseException) -> bool:
    """Whether a token provider's failure is worth retrying: a transport failure, or a venue 5xx."""
    if isinstance(exc, TransportError):
        return True
    return (
        type(exc) is VenueError and isinstance(exc.status, int) and exc.status >= 500  # not a refusal, not a 429
    )


def _header_token(token: object, what: str) -> str:
    """``token`` if an HTTP header can carry it. The message never quotes it: it is a secret."""
    if not isinstance(token, str):
        raise AuthenticationError(f"{what}: the token provider returned {type(token).__name__}, expected a str")
    if not _HEADER_TOKEN_RE.fullmatch(token):
        raise AuthenticationError(
            f"{what}: the token holds a character an HTTP header cannot carry "
            "(whitespace, a control or non-ASCII character; a trailing newline from a file?)"
        )
    return token


def _window(start_at: int, end_at: int | None, page_size: int) -> dict[str, str | int]:
    if not is_ms(start_at):
        raise UsageError(f"start_at must be an int of ms >= 0, got {start_at!r}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise UsageError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size!r}")
    params: dict[str, str | int] = {"start_at": start_at, "page_size": page_size}
    if end_at is not None:
        params["end_at"] = end_at
    return params
