"""``FaultySource``: a :class:`~reconcile_core.typing.StateSource` over a :class:`FakeVenue`, with faults.

Hints the venue publishes reach each open subscription through a fault
filter (drop, duplicate, reorder, delay, replace by a malformed-message
discrepancy, disconnect). REST reads answer from the venue's truth, but may
fail (``TransportError``, ``VenueError``), time out (``TimeoutError``, or
hang so the caller's own timeout fires), return a snapshot as it was
``stale_ms`` ago, and list fills only ``settlement_lag_ms`` after they
happened. Every random choice comes from one ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import attrs

from reconcile_core import errors
from reconcile_core._events import Discrepancy, DiscrepancyKind, Page
from reconcile_core._types import Fill, FillBust, OpenOrdersSnapshot, Order, PositionsSnapshot
from reconcile_core.typing import Hint

from ._fake_venue import FakeVenue

__all__ = ["NO_FAULTS", "Faults", "FaultySource"]

T = TypeVar("T")


def _probability(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        msg = f"{attribute.name} must be a probability in [0, 1], got {value!r}"
        raise ValueError(msg)


@attrs.frozen(kw_only=True)
class Faults:
    """Fault probabilities for a :class:`FaultySource` (all off by default).

    Stream faults apply to each published hint, per open subscription; REST
    faults to each call (each page of a paginated read is a call).
    """

    #: A hint is lost.
    drop: float = attrs.field(default=0.0, validator=_probability)
    #: A hint arrives twice.
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    #: A hint is held back and arrives after the next one.
    reorder: float = attrs.field(default=0.0, validator=_probability)
    #: A hint is held back until the venue clock passes a random 1..``delay_ms`` ms.
    delay: float = attrs.field(default=0.0, validator=_probability)
    delay_ms: int = attrs.field(default=1_000, validator=attrs.validators.ge(1))
    #: A hint is replaced by a ``MALFORMED_MESSAGE`` discrepancy (the payload "did not parse").
    malformed: float = attrs.field(default=0.0, validator=_probability)
    #: The connection drops instead of delivering a hint (queued hints are lost).
    disconnect: float = attrs.field(default=0.0, validator=_probability)
    #: ``subscribe()`` fails with a ``TransportError``.
    connect_error: float = attrs.field(default=0.0, validator=_probability)
    #: ``subscribe()`` fails with an ``AuthenticationError``.
    auth_error: float = attrs.field(default=0.0, validator=_probability)
    #: ``subscribe()`` never completes (the caller's connect timeout must fire).
    connect_hang: float = attrs.field(default=0.0, validator=_probability)
    #: A REST call raises ``TransportError`` or ``VenueError``.
    rest_error: float = attrs.field(default=0.0, validator=_probability)
    #: A REST call raises ``reconcile_core.errors.TimeoutError``.
    rest_timeout: float = attrs.field(default=0.0, validator=_probability)
    #: A REST call never answers (the caller's timeout must fire).
    rest_hang: float = attrs.field(default=0.0, validator=_probability)
    #: An open-orders or positions snapshot is as of ``stale_ms`` ago.
    stale: float = attrs.field(default=0.0, validator=_probability)
    stale_ms: int = attrs.field(default=5_000, validator=attrs.validators.ge(0))


#: No faults at all.
NO_FAULTS = Faults()


@attrs.define(eq=False)
class _Connection:
    pending: deque[Hint] = attrs.field(factory=deque)
    stash: list[Hint] = attrs.field(factory=list)
    delayed: list[tuple[int, int, Hint]] = attrs.field(factory=list)
    lost: str | None = None
    closed: bool = False
    wakeup: anyio.Event | None = None

    def wake(self) -> None:
        event, self.wakeup = self.wakeup, None
        if event is not None:
            event.set()


class _HintStream:
    __slots__ = ("_connection", "_source")

    def __init__(self, source: FaultySource, connection: _Connection) -> None:
        self._source = source
        self._connection = connection

    def __aiter__(self) -> _HintStream:
        return self

    async def __anext__(self) -> Hint:
        connection = self._connection
        await anyio.lowlevel.checkpoint()
        while True:
            if connection.lost is not None:
                raise errors.ConnectionLostError(connection.lost)
            if connection.closed:
                msg = "the subscription was closed"
                raise errors.ConnectionLostError(msg)
            if connection.pending:
                self._source.hints_delivered += 1
                return connection.pending.popleft()
            connection.wakeup = anyio.Event()
            await connection.wakeup.wait()


class FaultySource:
    """A fault-injecting :class:`~reconcile_core.typing.StateSource` over one account of a :class:`FakeVenue`.

    ``faults`` may be replaced at any time. Tests can also script failures
    (:meth:`fail_next`), drop the connection (:meth:`disconnect`), push raw
    hints (:meth:`inject`), run code before each REST call
    (``before_rest``), and inspect ``calls``, ``connects`` and
    ``hints_delivered``.
    """

    def __init__(
        self,
        venue: FakeVenue,
        account: str | None = None,
        *,
        faults: Faults = NO_FAULTS,
        seed: int = 0,
        settlement_lag_ms: int = 0,
        page_size: int = 50,
        max_backlog: int | None = None,
    ) -> None:
        if page_size < 1:
            msg = f"page_size must be >= 1, got {page_size}"
            raise errors.UsageError(msg)
        self.fake_venue = venue
        self._account = venue.accounts[0] if account is None else account
        if self._account not in venue.accounts:
            msg = f"unknown account {self._account!r}; the venue has {list(venue.accounts)}"
            raise errors.UsageError(msg)
        self.faults = faults
        self.rng = random.Random(seed)
        self._settlement_lag_ms = settlement_lag_ms
        self.page_size = page_size
        #: Drop the connection when this many hints wait unread (like a venue
        #: cutting off a slow client); ``None`` never does.
        self.max_backlog = max_backlog
        #: Called with the method name before every REST call (after counting it).
        self.before_rest: Callable[[str], object] | None = None
        #: How many times each method was called (``"subscribe"`` included).
        self.calls: Counter[str] = Counter()
        #: Successful subscriptions.
        self.connects = 0
        #: Hints handed to a subscriber.
        self.hints_delivered = 0
        self._connections: list[_Connection] = []
        self._scripted: dict[str, deque[BaseException]] = {}
        self._delay_seq = 0
        self._unlisten = venue.listen(self._published)
        self._unclock = venue.on_clock(self._clock_moved)

    def __repr__(self) -> str:
        return f"<FaultySource {self.venue}:{self.account} connections={len(self._connections)}>"

    # -- StateSource: identity -------------------------------------------------

    @property
    def venue(self) -> str:
        """The fake venue's name."""
        return self.fake_venue.name

    @property
    def account(self) -> str:
        """The account this source reads."""
        return self._account

    @property
    def settlement_lag_ms(self) -> int:
        """REST lists a fill only this long after its time."""
        return self._settlement_lag_ms

    # -- test controls -----------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Hints queued in open subscriptions, not yet read."""
        return sum(len(c.pending) + len(c.stash) + len(c.delayed) for c in self._connections)

    @property
    def open_connections(self) -> int:
        """Subscriptions currently open."""
        return sum(1 for c in self._connections if c.lost is None and not c.closed)

    def fail_next(self, method: str, error: BaseException | None = None) -> None:
        """Make the next call of ``method`` (e.g. ``"open_orders"``, ``"subscribe"``) raise ``error``."""
        if error is None:
            error = errors.TransportError(f"{method} failed (scripted)")
        self._scripted.setdefault(method, deque()).append(error)

    def disconnect(self, reason: str = "connection dropped (injected)") -> int:
        """Drop every open subscription; returns how many were dropped."""
        dropped = 0
        for connection in self._connections:
            if connection.lost is None and not connection.closed:
                self._lose(connection, reason)
                dropped += 1
        return dropped

    def inject(self, hint: object, *, faults: bool = False) -> None:
        """Push ``hint`` (anything, even garbage) to open subscriptions, through the faults if asked."""
        for connection in self._connections:
            if faults:
                self._route(connection, hint)  # type: ignore[arg-type]
            elif connection.lost is None and not connection.closed:
                connection.pending.append(hint)  # type: ignore[arg-type]
                connection.wake()

    # -- stream ----------------------------------------------------------------------

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[Hint]]:
        """Open a subscription; see :meth:`reconcile_core.typing.StateSource.subscribe`."""
        return self._subscribe()

    @asynccontextmanager
    async def _subscribe(self) -> AsyncIterator[AsyncIterator[Hint]]:
        await anyio.lowlevel.checkpoint()
        self.calls["subscribe"] += 1
        scripted = self._take_scripted("subscribe")
        if scripted is not None:
            raise scripted
        faults = self.faults
        if faults.auth_error and self.rng.random() < faults.auth_error:
            msg = "the venue rejected the credentials (injected)"
            raise errors.AuthenticationError(msg, status=401)
        if faults.connect_error and self.rng.random() < faults.connect_error:
            msg = "connection refused (injected)"
            raise errors.TransportError(msg)
        if faults.connect_hang and self.rng.random() < faults.connect_hang:
            await anyio.sleep_forever()
        connection = _Connection()
        self._connections.append(connection)
        self.connects += 1
        try:
            yield _HintStream(self, connection)
        finally:
            connection.closed = True
            connection.pending.clear()
            connection.wake()
            self._connections.remove(connection)

    def _published(self, account: str, hint: Hint) -> None:
        if account != self._account:
            return
        for connection in list(self._connections):
            self._route(connection, hint)

    def _route(self, connection: _Connection, hint: Hint) -> None:
        if connection.lost is not None or connection.closed:
            return
        faults, rng = self.faults, self.rng
        if faults.disconnect and rng.random() < faults.disconnect:
            self._lose(connection, "connection dropped (injected)")
            return
        if faults.drop and rng.random() < faults.drop:
            return
        if faults.malformed and rng.random() < faults.malformed:
            hint = Discrepancy(
                kind=DiscrepancyKind.MALFORMED_MESSAGE,
                subject="stream message",
                detail="the payload could not be parsed (injected)",
                seen="{garbage",
            )
        copies = 2 if faults.duplicate and rng.random() < faults.duplicate else 1
        for _ in range(copies):
            if faults.delay and rng.random() < faults.delay:
                self._delay_seq += 1
                release = self.fake_venue.now + rng.randint(1, faults.delay_ms)
                connection.delayed.append((release, self._delay_seq, hint))
            elif faults.reorder and not connection.stash and rng.random() < faults.reorder:
                connection.stash.append(hint)
            else:
                connection.pending.append(hint)
                connection.pending.extend(connection.stash)
                connection.stash.clear()
        if self.max_backlog is not None and len(connection.pending) > self.max_backlog:
            self._lose(connection, f"more than {self.max_backlog} messages behind (injected)")
            return
        connection.wake()

    def _clock_moved(self, now: int) -> None:
        for connection in self._connections:
            if connection.lost is not None or connection.closed:
                continue
            due = sorted(d for d in connection.delayed if d[0] <= now)
            if due:
                connection.delayed = [d for d in connection.delayed if d[0] > now]
                connection.pending.extend(hint for _, _, hint in due)
            connection.pending.extend(connection.stash)
            connection.stash.clear()
            connection.wake()

    def _lose(self, connection: _Connection, reason: str) -> None:
        connection.lost = reason
        connection.pending.clear()
        connection.stash.clear()
        connection.delayed.clear()
        connection.wake()

    # -- REST ------------------------------------------------------------------------

    def _take_scripted(self, method: str) -> BaseException | None:
        queue = self._scripted.get(method)
        if queue:
            return queue.popleft()
        return None

    async def _rest(self, method: str) -> None:
        await anyio.lowlevel.checkpoint()
        self.calls[method] += 1
        if self.before_rest is not None:
            self.before_rest(method)
        scripted = self._take_scripted(method)
        if scripted is not None:
            raise scripted
        faults, rng = self.faults, self.rng
        if faults.rest_error and rng.random() < faults.rest_error:
            if rng.random() < 0.5:
                msg = f"{method}: connection reset (injected)"
                raise errors.TransportError(msg)
            msg = f"{method}: internal server error (injected)"
            raise errors.VenueError(msg, status=500)
        if faults.rest_timeout and rng.random() < faults.rest_timeout:
            msg = f"{method}: request timed out (injected)"
            raise errors.TimeoutError(msg)
        if faults.rest_hang and rng.random() < faults.rest_hang:
            await anyio.sleep_forever()

    def _snapshot_time(self) -> int:
        faults = self.faults
        now = self.fake_venue.now
        if faults.stale and self.rng.random() < faults.stale:
            return max(self.fake_venue.start_time, now - faults.stale_ms)
        return now

    async def server_time(self) -> int:
        """The venue clock."""
        await self._rest("server_time")
        return self.fake_venue.now

    async def open_orders(self) -> OpenOrdersSnapshot:
        """The live orders (possibly as they were ``stale_ms`` ago)."""
        await self._rest("open_orders")
        as_of = self._snapshot_time()
        return OpenOrdersSnapshot(orders=self.fake_venue.open_orders(self._account, as_of=as_of))

    async def positions(self) -> PositionsSnapshot:
        """Every position (possibly as it was ``stale_ms`` ago), with an honest ``as_of``."""
        await self._rest("positions")
        as_of = self._snapshot_time()
        return PositionsSnapshot(positions=self.fake_venue.positions(self._account, as_of=as_of), as_of=as_of)

    async def order(self, order_id: str) -> Order | None:
        """One order's current version, or ``None``."""
        await self._rest("order")
        return self.fake_venue.order(order_id, self._account)

    async def order_by_client_id(self, client_id: str) -> Order | None:
        """One order by client id, or ``None``."""
        await self._rest("order_by_client_id")
        return next((o for o in self.fake_venue.orders(self._account).values() if o.client_id == client_id), None)

    def order_history(self, *, since: int) -> AsyncIterator[Page[Order]]:
        """Orders updated at or after ``since``, page by page."""
        return self._paged("order_history", lambda: list(self.fake_venue.order_history(self._account, since=since)))

    def fills(self, *, since: int, instrument: str | None = None) -> AsyncIterator[Page[Fill]]:
        """Settled fills at or after ``since`` (only ``settlement_lag_ms`` after they happened)."""

        def rows() -> list[Fill]:
            settled = self.fake_venue.now - self._settlement_lag_ms
            return [
                f
                for f in self.fake_venue.fills(self._account)
                if since <= f.time <= settled and (instrument is None or f.instrument == instrument)
            ]

        return self._paged("fills", rows)

    def busts(self, *, since: int) -> AsyncIterator[Page[FillBust]]:
        """Busts at or after ``since``, page by page."""
        return self._paged("busts", lambda: [b for b in self.fake_venue.busts(self._account) if b.time >= since])

    async def _paged(self, method: str, rows: Callable[[], list[T]]) -> AsyncIterator[Page[T]]:
        await self._rest(method)
        items = rows()
        size = self.page_size
        for start in range(0, max(len(items), 1), size):
            if start:
                await self._rest(method)
            yield Page(items=tuple(items[start : start + size]))

    async def aclose(self) -> None:
        """Drop subscriptions and stop listening to the venue. Idempotent."""
        self.disconnect("the source was closed")
        self._unlisten()
        self._unclock()
        await anyio.lowlevel.checkpoint()
