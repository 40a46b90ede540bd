"""``ParadexSource``: one Paradex account as a ``reconcile_core.typing.StateSource``."""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from types import TracebackType
from typing import Final, Self

import attrs
import httpx

from reconcile_core import (
    Discrepancy,
    Fill,
    FillBust,
    OpenOrdersSnapshot,
    Order,
    Page,
    PositionsSnapshot,
    Source,
)
from reconcile_core.errors import NotFoundError, ParseError, UsageError, VenueError
from reconcile_core.typing import Hint

from ._auth import Secret, TokenProvider, as_provider, jwt_subject
from ._fields import is_ms, is_nonempty_str
from ._models import AccountSummary, Balance, Market
from ._parse import (
    VENUE,
    malformed,
    parse_account_summary,
    parse_fill,
    parse_fill_bust,
    parse_order,
    parse_position,
    same_account,
)
from ._ratelimit import Clock, RetryPolicy, SystemClock, TokenBucket
from ._rest import MAX_PAGE_SIZE, ParadexRestClient
from ._urls import resolve_urls
from ._wire import value_from_wire
from ._ws import (
    _DETAIL_CHARS,
    DEFAULT_CHANNELS,
    JsonRpcConnection,
    Notification,
    ParadexWebSocket,
    WebSocketConnector,
    WebSocketSettings,
)

__all__ = ["DEFAULT_SETTLEMENT_LAG_MS", "ParadexSource"]

logger = logging.getLogger("reconcile_paradex")

#: How long a fill may show on the WebSocket before ``GET /fills`` lists it.
#: ``/fills`` only lists fills "sent to chain for settlement" (API.md §3.4);
#: the lag is undocumented, so this is generous.
DEFAULT_SETTLEMENT_LAG_MS: Final = 120_000
#: ``Source.WS`` as a constant: reading a member off its class costs more, once per message.
_WS: Final = Source.WS
#: How far before the time in an order id the history search for that order starts (ms).
_ID_TIME_SLACK_MS: Final = 60_000
#: How far past the clocks we know an order id's time may be and still be taken as its creation time.
_ID_FUTURE_SLACK_MS: Final = 86_400_000
#: Pages of ``/orders-history`` read at most when looking for one order there.
_HISTORY_SEARCH_PAGES: Final = 100
#: Error codes of the spec's ``ErrorCode`` with which a venue may refuse to show a closed order
#: on the endpoints that show open ones: the order exists, so the history is read instead.
_NOT_OPEN_CODES: Final = frozenset({"ORDER_IS_CLOSED", "ORDER_IS_NOT_OPEN"})
#: Order ids whose first 13 digits are taken as their creation time: within these bounds (ms).
_ID_TIMES: Final = range(1_500_000_000_000, 10_000_000_000_000)


def _log_problems(what: str, problems: Sequence[Discrepancy]) -> None:
    for problem in problems:
        logger.warning("%s: %s: %s (%s)", what, problem.kind.value, problem.detail, problem.subject)


def _foreign(account: str) -> ParseError:
    return ParseError(f"an account summary of account {account!r}, not of this session's account", field="account")


class _HintStream:
    """The iterator ``subscribe()`` yields: notifications parsed into hints.

    A value comes first, then the discrepancies its parsing raised. Account
    summaries are not hints: they update :attr:`ParadexSource.account_summary`.
    """

    def __init__(self, connection: JsonRpcConnection, source: ParadexSource) -> None:
        self._connection = connection
        self._source = source
        self._ready: deque[Hint] = deque()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Hint:
        ready = self._ready
        if ready:
            return ready.popleft()
        connection = self._connection
        source = self._source
        account = source._account
        while True:
            # A buffered item is taken without a coroutine; only an empty buffer waits.
            item = connection.incoming_nowait()
            if item is None:
                item = await connection.next_incoming()
            if isinstance(item, Discrepancy):
                return item
            wire = item.wire  # as in ParadexSource._fast_hint, without the call
            if wire is not None:
                value = value_from_wire(wire, account=account, source=_WS)
                if value is not None:  # the usual case: one order or fill, nothing to queue
                    return value
            for hint in source._strict_hints(item):
                ready.append(_scrubbed(hint, connection) if isinstance(hint, Discrepancy) else hint)
            if ready:
                return ready.popleft()


def _scrubbed(discrepancy: Discrepancy, connection: JsonRpcConnection) -> Discrepancy:
    """``discrepancy`` with the connection's secrets out of its texts (redacted, then cut to what it keeps)."""
    quote = connection.quote
    return attrs.evolve(
        discrepancy,
        subject=quote(discrepancy.subject, _DETAIL_CHARS),
        detail=quote(discrepancy.detail, _DETAIL_CHARS),
        seen=None if discrepancy.seen is None else quote(discrepancy.seen, _DETAIL_CHARS),
    )


class ParadexSource:
    """One Paradex account, read over REST (the truth) and the WebSocket (hints).

    Implements :class:`reconcile_core.typing.StateSource`.

    ``token`` is a :class:`TokenProvider`, or a read-only token string (or
    :class:`Secret`), which is wrapped in :class:`ReadOnlyToken`. ``env`` is
    ``"prod"`` or ``"testnet"``; ``rest_url``/``ws_url`` override it
    (``env=None`` needs both). ``http_client`` and ``ws_connector`` are
    injectable transports (tests, proxies); an injected ``http_client`` is
    not closed by :meth:`aclose`. The ``rate_limiter`` defaults to the
    process-wide bucket of this account.

    Use as an async context manager, or call :meth:`aclose` (idempotent).
    """

    def __init__(
        self,
        *,
        account: str,
        token: TokenProvider | str | Secret,
        env: str | None = "testnet",
        rest_url: str | None = None,
        ws_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        ws_connector: WebSocketConnector | None = None,
        settlement_lag_ms: int = DEFAULT_SETTLEMENT_LAG_MS,
        page_size: int = MAX_PAGE_SIZE,
        ws_settings: WebSocketSettings | None = None,
        channels: Sequence[str] = DEFAULT_CHANNELS,
        retry: RetryPolicy | None = None,
        rate_limiter: TokenBucket | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        timeout: float = 15.0,
    ) -> None:
        if not is_nonempty_str(account):
            raise UsageError("account must be the Paradex account address (a non-empty str)")
        if not is_ms(settlement_lag_ms):
            raise UsageError(f"settlement_lag_ms must be an int >= 0, got {settlement_lag_ms!r}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise UsageError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size!r}")
        provider = as_provider(token)
        if isinstance(token, str | Secret):
            _check_token_account(token, account)
        rest, ws = resolve_urls(env, rest_url, ws_url)
        self._account = account
        self._settlement_lag_ms = settlement_lag_ms
        self._page_size = page_size
        self._clock: Clock = clock if clock is not None else SystemClock()
        #: The venue clock (ms) as the last server_time() read it; None before the first.
        self._venue_read_ms: int | None = None
        #: Per instrument, a position that came without a time: what it read, and the date given then.
        self._undated: dict[str, tuple[tuple[object, ...], int]] = {}
        self._rest = ParadexRestClient(
            rest_url=rest,
            account=account,
            token=provider,
            http_client=http_client,
            rate_limiter=rate_limiter,
            retry=retry,
            clock=self._clock,
            rng=rng,
            timeout=timeout,
        )
        self._ws = ParadexWebSocket(
            url=ws, token=provider, connector=ws_connector, settings=ws_settings, channels=channels
        )
        self._account_summary: AccountSummary | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<ParadexSource account={self._account} rest={self._rest.base_url} ws={self._ws.url}>"

    # -- identity ---------------------------------------------------------------

    @property
    def venue(self) -> str:
        return VENUE

    @property
    def account(self) -> str:
        return self._account

    @property
    def settlement_lag_ms(self) -> int:
        return self._settlement_lag_ms

    @property
    def rest(self) -> ParadexRestClient:
        """The underlying REST client (for the endpoints beyond the protocol)."""
        return self._rest

    @property
    def account_summary(self) -> AccountSummary | None:
        """The latest account summary seen on the ``account`` channel, if any."""
        return self._account_summary

    # -- lifecycle ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this ParadexSource is closed")

    async def aclose(self) -> None:
        """Release the HTTP client (if this source made it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._rest.aclose()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- the stream -----------------------------------------------------------------

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[Hint]]:
        """Connect, authenticate and subscribe; entering returns once every channel is acked.

        The iterator yields orders, fills, positions, busts (``Source.WS``) and
        discrepancies; when the connection ends it raises
        ``ConnectionLostError`` (or ``AuthenticationError`` / ``TransportError``).
        """
        self._check_open()
        return self._subscribe()

    @asynccontextmanager
    async def _subscribe(self) -> AsyncIterator[AsyncIterator[Hint]]:
        async with self._ws.connect() as connection:
            yield _HintStream(connection, self)

    def _hints(self, notification: Notification) -> list[Hint]:
        value = self._fast_hint(notification)
        if value is not None:
            return [value]
        return self._strict_hints(notification)

    def _fast_hint(self, notification: Notification) -> Order | Fill | None:
        """The fast path's order or fill, or ``None`` when it declines (or has none)."""
        wire = notification.wire
        if wire is None:
            return None
        return value_from_wire(wire, account=self._account, source=_WS)

    def _strict_hints(self, notification: Notification) -> list[Hint]:
        """The hints of a notification the fast path declined: the strict parsers decide."""
        channel = notification.channel
        kind = channel.split(".", 1)[0]
        try:
            data = notification.data
        except ParseError as exc:  # never, unless decode_notification broke its promise
            return [malformed(f"WebSocket {channel[:50]} message", exc, notification.raw)]
        try:
            if kind == "orders":
                order = parse_order(data, source=Source.WS, account=self._account)
                return [order.value, *order.problems]
            if kind == "fills":
                fill = parse_fill(data, account=self._account, source=Source.WS)
                return [fill.value, *fill.problems]
            if kind == "positions":
                position = parse_position(data, source=Source.WS, account=self._account)
                return [position.value, *position.problems]
            if kind == "tradebusts":
                bust = parse_fill_bust(data, account=self._account, source=Source.WS)
                return [bust.value, *bust.problems]
            if kind == "account":
                summary = parse_account_summary(data)
                if not same_account(summary.value.account, self._account):  # as fills and busts are checked
                    return [malformed(f"WebSocket {channel[:50]} message", _foreign(summary.value.account), data)]
                self._account_summary = summary.value
                return list(summary.problems)
        except ParseError as exc:
            return [malformed(f"WebSocket {channel[:50]} message", exc, data)]
        logger.debug("ignoring a notification on channel %r", notification.quote(channel, 50))
        return []

    # -- snapshots and reads ------------------------------------------------------------

    async def open_orders(self) -> OpenOrdersSnapshot:
        """``GET /v1/orders``: complete unless a row failed to parse (then logged and marked incomplete)."""
        self._check_open()
        parsed = await self._rest.open_orders()
        _log_problems("open orders", parsed.problems)
        return parsed.value

    async def positions(self) -> PositionsSnapshot:
        """``GET /v1/positions``; ``as_of`` is the newest ``last_updated_at`` listed, or later.

        ``/positions`` may list only open positions, so a position closed
        after every listed one was last updated would never be judged absent.
        Once :meth:`server_time` has read the venue clock, a complete snapshot
        is taken as current up to that reading minus the settlement lag (a
        margin for a lagging replica), an empty one too: a venue that lists
        only open positions answers an empty list when the account is flat,
        and a lagging replica that predates a position omits it from an empty
        list as from any other. The reading came before this request (a pass
        reads the clock first), so it is never later than the venue's time of
        the answer; it is not carried forward by our clock, whose rate need
        not match the venue's. Before the clock is read, an empty list keeps
        no ``as_of``: absence there is a discrepancy, not a close. A listed
        position without any time (``last_updated_at``, ``created_at``,
        ``closed_at``: the spec requires none) is dated by the same reading,
        and keeps that date while it reads the same (else every pass would
        report it changed); before the clock is read, such a row is a problem
        and the snapshot incomplete.
        """
        self._check_open()
        read_at = self._venue_read_ms
        undated_at = None if read_at is None else max(0, read_at - self._settlement_lag_ms)
        parsed = await self._rest.positions(undated_at=undated_at)
        _log_problems("positions", parsed.problems)
        snapshot = parsed.value
        if undated_at is not None:
            snapshot = self._keep_undated_dates(snapshot, undated_at)
        if read_at is not None and snapshot.complete:
            current_to = read_at - self._settlement_lag_ms
            if snapshot.as_of is None or current_to > snapshot.as_of:
                snapshot = attrs.evolve(snapshot, as_of=current_to)
        return snapshot

    def _keep_undated_dates(self, snapshot: PositionsSnapshot, undated_at: int) -> PositionsSnapshot:
        """``snapshot`` with each position dated ``undated_at`` (it carried no time) given back the
        date it first had, if it reads the same as then: a new date is a new version."""
        positions = list(snapshot.positions)
        for index, position in enumerate(positions):
            if position.updated_at != undated_at:
                continue
            content = (position.size, position.entry_price, position.last_fill_id, position.sequence)
            known = self._undated.get(position.instrument)
            # A date later than this reading came from a reading that ran ahead: not kept.
            if known is not None and known[0] == content and known[1] <= undated_at:
                positions[index] = attrs.evolve(position, updated_at=known[1])
            else:
                self._undated[position.instrument] = (content, undated_at)
        return attrs.evolve(snapshot, positions=tuple(positions))

    async def order(self, order_id: str) -> Order | None:
        """``GET /v1/orders/{id}``; ``None`` when Paradex does not know it.

        The spec says that endpoint only returns orders in ``OPEN`` or ``NEW``
        status (API.md §3.2), so a not-found (or an ``ORDER_IS_CLOSED`` or
        ``ORDER_IS_NOT_OPEN`` error, as a venue may word it) falls back to
        ``/orders-history``, from a minute before the creation time that
        Paradex order ids begin with (from the start, for an id that does
        not), taking the newest version of the order found there.
        """
        self._check_open()
        try:
            parsed = await self._rest.order(order_id)
        except NotFoundError:
            return await self._order_in_history(order_id)
        except VenueError as exc:
            if exc.code not in _NOT_OPEN_CODES:
                raise
            return await self._order_in_history(order_id)
        _log_problems(f"order {order_id}", parsed.problems)
        return parsed.value

    async def _order_in_history(self, order_id: str) -> Order | None:
        prefix = order_id[:13]
        since = int(prefix) if len(order_id) > 13 and prefix.isdigit() and prefix.isascii() else 0
        since = max(0, since - _ID_TIME_SLACK_MS) if since in _ID_TIMES else 0
        # Paradex's ids begin with their creation time, but the spec makes an id any string (its
        # example, 8615262148007718462, would date it in 2243): digits that date it more than a
        # day past both clocks we know (the last venue reading may be old) are no time.
        latest = max(self._venue_read_ms or 0, int(time.time() * 1000))
        if since > latest + _ID_FUTURE_SLACK_MS:
            since = 0
        newest: Order | None = None
        pages = 0
        async with aclosing(self._rest.orders_history(start_at=since, page_size=self._page_size)) as history:
            async for page in history:
                _log_problems("orders history", page.problems)
                for order in page.items:
                    if order.order_id == order_id and (newest is None or order.updated_at > newest.updated_at):
                        newest = order
                pages += 1
                if pages >= _HISTORY_SEARCH_PAGES:
                    logger.warning("order %s: looked for in %d pages of the order history; stopping", order_id, pages)
                    break
        return newest

    async def order_by_client_id(self, client_id: str) -> Order | None:
        """By client id; ``None`` when Paradex does not know it.

        ``GET /v1/orders/by_client_id`` may only list open orders (API.md
        §3.2), so a not-found (or an ``ORDER_IS_CLOSED`` or ``ORDER_IS_NOT_OPEN``
        error) falls back to ``/orders-history?client_id=``,
        taking the newest version found there.
        """
        self._check_open()
        try:
            parsed = await self._rest.order_by_client_id(client_id)
        except NotFoundError:
            pass
        except VenueError as exc:
            if exc.code not in _NOT_OPEN_CODES:
                raise
        else:
            _log_problems(f"order with client id {client_id}", parsed.problems)
            return parsed.value
        newest: Order | None = None
        async for page in self._rest.orders_history(start_at=0, client_id=client_id, page_size=self._page_size):
            _log_problems("orders history", page.problems)
            for order in page.items:
                if order.client_id == client_id and (newest is None or order.updated_at > newest.updated_at):
                    newest = order
        return newest

    def order_history(self, *, since: int) -> AsyncIterator[Page[Order]]:
        """``GET /v1/orders-history`` from ``since`` (ms), all pages."""
        self._check_open()
        return self._rest.orders_history(start_at=since, page_size=self._page_size)

    def fills(self, *, since: int, instrument: str | None = None) -> AsyncIterator[Page[Fill]]:
        """``GET /v1/fills`` from ``since`` (ms), all pages (the venue's cursor, never built by hand)."""
        self._check_open()
        return self._rest.fills(start_at=since, market=instrument, page_size=self._page_size)

    def busts(self, *, since: int) -> AsyncIterator[Page[FillBust]]:
        """``GET /v1/tradebusts`` from ``since`` (ms), all pages."""
        self._check_open()
        return self._rest.tradebusts(start_at=since, page_size=self._page_size)

    async def server_time(self) -> int:
        """``GET /v1/system/time``, ms; also remembered, to date later snapshots (see :meth:`positions`)."""
        self._check_open()
        venue_ms = await self._rest.server_time()
        self._venue_read_ms = venue_ms
        return venue_ms

    # -- beyond the protocol ----------------------------------------------------------

    async def fetch_account_summary(self) -> AccountSummary:
        """``GET /v1/account``."""
        self._check_open()
        parsed = await self._rest.account_summary()
        self._account_summary = parsed.value
        return parsed.value

    async def balances(self) -> tuple[Balance, ...]:
        """``GET /v1/balance``."""
        self._check_open()
        parsed = await self._rest.balances()
        _log_problems("balances", parsed.problems)
        return parsed.value

    async def markets(self) -> tuple[Market, ...]:
        """``GET /v1/markets``."""
        self._check_open()
        parsed = await self._rest.markets()
        _log_problems("markets", parsed.problems)
        return parsed.value


def _check_token_account(token: str | Secret, account: str) -> None:
    """A Paradex JWT names its account (``sub``) and reads only that one: another ``account`` is a mistake.

    Left alone, the venue would answer with the token's account, and its
    state would be reported as ``account``'s (the fills refused as another
    account's, the orders and positions not). A token whose ``sub`` is
    unreadable (not a JWT) is left to the venue.
    """
    subject = jwt_subject(token.reveal() if isinstance(token, Secret) else token)
    if subject is not None and not same_account(subject, account):
        raise UsageError(
            f"account {account} is not the token's account ({subject}): a Paradex token reads its own account only"
        )
