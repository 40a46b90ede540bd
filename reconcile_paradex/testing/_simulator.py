"""``ParadexSimulator``: the venue, its clock, its activity, its faults, its servers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import anyio
import anyio.abc
import anyio.lowlevel
import httpx

from reconcile_core.errors import UsageError

from . import _wire
from ._activity import ActivityGenerator, ActivityMix, StepReport
from ._app import SimulatorApp
from ._auth import TokenAuthority
from ._bridge import memory_stream_pair, serve_websocket_over_stream
from ._clock import DEFAULT_START_MS, VirtualClock
from ._context import ServerContext
from ._faults import FaultCounts, FaultInjector, FaultSettings
from ._loopback import LoopbackEndpoints, LoopbackServer
from ._markets import DEFAULT_MARKETS, MarketSpec
from ._pagination import CursorCodec
from ._starknet_auth import EC_ORDER, StarknetKeyRegistry
from ._truth import AccountTruth
from ._venue import Venue

__all__ = ["ParadexSimulator"]

#: Paradex JWTs live five minutes.
JWT_TTL_MS = 300_000
#: Read-only tokens are long-lived (a year here).
READ_ONLY_TTL_MS = 365 * 24 * 3_600_000


def _derive(seed: int, label: str) -> bytes:
    return hashlib.sha256(f"paradex-sim:{seed}:{label}".encode()).digest()


def _address(seed: int, index: int) -> str:
    # 62 hex digits (248 bits): a valid Starknet address is below the field prime (~2**251).
    digits = hashlib.sha256(f"paradex-sim:{seed}:account:{index}".encode()).hexdigest()[:62].lstrip("0")
    return "0x" + (digits or "1")


class ParadexSimulator:
    """A simulated Paradex venue: ground truth, seeded activity, fault injection, REST and WS.

    The same ``seed`` (and the same calls) always gives the same history:
    all randomness comes from seeded streams and time is a virtual clock of
    milliseconds starting at ``start_ms``. Faults come from their own streams
    and never change the history.

    Serving, in-process::

        sim = ParadexSimulator(seed=7, faults="light")
        async with sim:                               # owns the WS server tasks
            client = httpx.AsyncClient(transport=sim.http_transport(), base_url=sim.rest_url)
            stream = await sim.ws_connector(sim.ws_url)  # a raw anyio ByteStream
            await sim.run(fills=300)

    or over real sockets, whatever the caller's async backend::

        async with sim.serve_loopback() as (rest_url, ws_url):
            ...

    The truth is guarded by a threading lock: the activity generator may run
    on the caller's loop (or a worker thread) while the loopback server reads
    from its own thread.

    ``open_positions_only=True`` makes ``GET /positions`` list open positions
    only, as the spec's summary words it ("List open positions"); by default
    it also lists closed ones (``status: "CLOSED"``, size ``"0"``), as the
    API reference allows. The ``positions`` channel sends closes either way.
    """

    #: Base URLs of the in-process mode (any host works: nothing is resolved).
    rest_url = "http://paradex.simulator/v1"
    ws_url = "ws://paradex.simulator/v1"

    def __init__(
        self,
        *,
        seed: int = 0,
        accounts: int | Sequence[str] = 2,
        faults: str | FaultSettings = "none",
        settlement_lag_ms: int = 100,
        start_ms: int = DEFAULT_START_MS,
        activity: ActivityMix | None = None,
        markets: Sequence[MarketSpec] = DEFAULT_MARKETS,
        history_window_ms: int = 60_000,
        open_positions_only: bool = False,
    ) -> None:
        if isinstance(accounts, int):
            if accounts < 1:
                raise UsageError(f"accounts must be >= 1, got {accounts}")
            addresses = tuple(_address(seed, i) for i in range(accounts))
        else:
            addresses = tuple(accounts)
            if not addresses or len(set(addresses)) != len(addresses):
                raise UsageError("accounts must be a non-empty sequence of distinct addresses")
        if settlement_lag_ms < 0:
            raise UsageError(f"settlement_lag_ms must be >= 0, got {settlement_lag_ms}")
        settings = FaultSettings.profile(faults) if isinstance(faults, str) else faults
        if settings.max_stale_ms > history_window_ms:
            raise UsageError(f"stale reads of {settings.max_stale_ms} ms exceed history_window_ms={history_window_ms}")
        self._seed = seed
        self._settlement_lag_ms = settlement_lag_ms
        self._max_settlement_lag_ms = settlement_lag_ms
        self._settlement_rng = random.Random(f"paradex-sim:{seed}:settlement")
        self._clock = VirtualClock(start_ms)
        self._faults = FaultInjector(seed, settings)
        self._venue = Venue(
            accounts=addresses,
            markets=markets,
            clock=self._clock,
            settlement_delay=self._draw_settlement_delay,
            history_window_ms=history_window_ms,
        )
        self._authority = TokenAuthority(_derive(seed, "jwt"), addresses)
        self._context = ServerContext(
            venue=self._venue,
            authority=self._authority,
            faults=self._faults,
            cursors=CursorCodec(_derive(seed, "cursor")),
            node_id=_derive(seed, "node").hex()[:16],
            open_positions_only=open_positions_only,
        )
        self._starknet = StarknetKeyRegistry(addresses, jwt_ttl_ms=JWT_TTL_MS)
        self._starknet_keys_made = 0
        self._app = SimulatorApp(self._context, starknet=self._starknet)
        self._activity = ActivityGenerator(
            self._venue, random.Random(f"paradex-sim:{seed}:activity"), activity or ActivityMix()
        )
        self._group: anyio.abc.TaskGroup | None = None

    def __repr__(self) -> str:
        return (
            f"ParadexSimulator(seed={self._seed}, accounts={len(self.accounts)}, now={self.now}, "
            f"fills={self._venue.fill_count()})"
        )

    def _draw_settlement_delay(self) -> int:
        low, high = self._faults.settings.settlement_jitter_ms
        delay = self._settlement_lag_ms + self._settlement_rng.randint(int(low), int(high))
        self._max_settlement_lag_ms = max(self._max_settlement_lag_ms, delay)
        return delay

    # ------------------------------------------------------------------ properties

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def accounts(self) -> tuple[str, ...]:
        """The simulated accounts' addresses (``0x...``)."""
        return self._venue.accounts

    @property
    def markets(self) -> tuple[MarketSpec, ...]:
        return tuple(self._venue.markets.values())

    @property
    def venue(self) -> Venue:
        """The ground truth, for tests that script exact scenarios (``place_order``, ``fill_order``, ...)."""
        return self._venue

    @property
    def now(self) -> int:
        """The virtual clock, ms since the epoch."""
        with self._venue.lock:
            return self._clock.now

    @property
    def faults(self) -> FaultSettings:
        return self._faults.settings

    @faults.setter
    def faults(self, value: str | FaultSettings) -> None:
        settings = FaultSettings.profile(value) if isinstance(value, str) else value
        if settings.max_stale_ms > self._venue.history_window_ms:
            raise UsageError(f"stale reads of {settings.max_stale_ms} ms exceed the history window")
        self._faults.settings = settings

    @property
    def settlement_lag_ms(self) -> int:
        """The base settlement lag: how long after a fill REST ``/fills`` lists it."""
        return self._settlement_lag_ms

    @property
    def max_settlement_lag_ms(self) -> int:
        """The longest settlement lag any fill has had (base plus jitter)."""
        with self._venue.lock:
            return self._max_settlement_lag_ms

    @property
    def app(self) -> SimulatorApp:
        """The ASGI application (REST + WebSocket), for any ASGI server."""
        return self._app

    @property
    def server_errors(self) -> tuple[str, ...]:
        """Bugs of the simulator caught while serving (should stay empty)."""
        return self._context.errors()

    # ------------------------------------------------------------------ time and activity

    def advance(self, ms: int) -> int:
        """Move the virtual clock forward by ``ms``; return the new time."""
        with self._venue.transaction():
            return self._clock.advance(ms)

    def step(self) -> StepReport:
        """Perform one random venue action."""
        return self._activity.step()

    def run_until(self, *, steps: int | None = None, fills: int | None = None) -> int:
        """Step (synchronously) until ``steps`` were made or the venue has ``fills`` fills; return the steps."""
        if steps is None and fills is None:
            raise UsageError("run_until needs steps= or fills=")
        done = 0
        while (steps is None or done < steps) and (fills is None or self._venue.fill_count() < fills):
            self.step()
            done += 1
        return done

    async def run(
        self, *, steps: int | None = None, fills: int | None = None, batch: int = 10, pause_s: float = 0.0
    ) -> int:
        """Like :meth:`run_until`, yielding to the event loop (``sleep(pause_s)``) every ``batch`` steps.

        The yields let in-process servers and your client run between
        bursts of venue activity.
        """
        if steps is None and fills is None:
            raise UsageError("run needs steps= or fills=")
        if batch < 1:
            raise UsageError(f"batch must be >= 1, got {batch}")
        done = 0
        while (steps is None or done < steps) and (fills is None or self._venue.fill_count() < fills):
            self.step()
            done += 1
            if done % batch == 0:
                await anyio.sleep(pause_s)
        await anyio.lowlevel.checkpoint()
        return done

    def quiesce(self) -> int:
        """Turn faults off and move the clock past every lag, so a final reconciliation can converge.

        After this, REST lists every fill, no read is stale and no new fault
        is injected (notifications already delayed still arrive). Returns the
        new virtual time.
        """
        with self._venue.transaction():
            stale = self._faults.settings.max_stale_ms
            self._faults.settings = FaultSettings.profile("none")
            return self._clock.advance(max(self._max_settlement_lag_ms, stale) + 1)

    # ------------------------------------------------------------------ auth

    def issue_token(self, account: str, *, ttl_ms: int = JWT_TTL_MS) -> str:
        """A JWT for ``account`` that expires ``ttl_ms`` from now (virtual time)."""
        return self._issue(account, ttl_ms, read_only=False)

    def issue_read_only_token(self, account: str, *, ttl_ms: int = READ_ONLY_TTL_MS) -> str:
        """A long-lived read-only token (GET only; the simulator serves only GETs anyway)."""
        return self._issue(account, ttl_ms, read_only=True)

    def _issue(self, account: str, ttl_ms: int, *, read_only: bool) -> str:
        if account not in self.accounts:
            raise UsageError(f"unknown account {account!r}")
        if ttl_ms <= 0:
            raise UsageError(f"ttl_ms must be > 0, got {ttl_ms}")
        return self._authority.issue(account, now=self.now, ttl_ms=ttl_ms, read_only=read_only)

    def revoke_token(self, token: str) -> None:
        """From now on the token gets 401 on REST and 40111 on WS ``auth``."""
        self._authority.revoke(token)

    # ------------------------------------------------------------------ Starknet key auth (POST /v1/auth)

    def wall_clock(self) -> float:
        """The virtual clock in unix seconds: pass ``sim.wall_clock`` as a token provider's ``wall_clock``.

        ``POST /v1/auth`` judges signature timestamps by virtual time, which
        starts in 2030: a signer reading the real clock would look expired.
        """
        return self.now / 1000

    @property
    def jwt_ttl_ms(self) -> int:
        """Lifetime (virtual ms) of the JWTs ``POST /v1/auth`` mints; Paradex's is 300 000. Settable."""
        return self._starknet.jwt_ttl_ms

    @jwt_ttl_ms.setter
    def jwt_ttl_ms(self, value: int) -> None:
        self._starknet.jwt_ttl_ms = value

    def register_starknet_key(self, account: str, public_key: int | str, *, subkey: bool = False) -> None:
        """Let ``public_key`` (an int or ``"0x..."``) sign ``POST /v1/auth`` for ``account``.

        One main key per account; any number of subkeys. Verifying signatures
        needs starknet-py (``pip install 'reconcile-trading[starknet]'``).
        """
        self._starknet.register(account, public_key, subkey=subkey)

    def new_starknet_key(self, account: str, *, subkey: bool = False) -> int:
        """A fresh private key (deterministic for the seed), registered for ``account``; returns it."""
        with self._venue.lock:
            self._starknet_keys_made += 1
            number = self._starknet_keys_made
        private_key = int.from_bytes(_derive(self._seed, f"starknet-key:{number}"), "big") % (EC_ORDER - 1) + 1
        self._starknet.register_private_key(account, private_key, subkey=subkey)
        return private_key

    def revoke_starknet_key(self, public_key: int | str) -> None:
        """From now on ``POST /v1/auth`` refuses this key (401 ``INVALID_SUBKEY`` for a subkey)."""
        self._starknet.revoke(public_key)

    def starknet_auth_counts(self) -> dict[str, int]:
        """Answers of ``POST /v1/auth`` so far: ``"ok"`` (a JWT minted) and each error code."""
        return self._starknet.counts()

    # ------------------------------------------------------------------ serving in-process

    def http_transport(self) -> httpx.ASGITransport:
        """An httpx transport that serves requests with this simulator in-process.

        httpx does not enforce timeouts on ASGI transports: a "slow
        response" fault simply takes its time; bound it on the client side.
        """
        return httpx.ASGITransport(app=self._app)

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise UsageError("this simulator is already entered")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        group, self._group = self._group, None
        if group is None:
            return
        group.cancel_scope.cancel()
        # The body's own exception is not handed to the group: it propagates
        # unchanged instead of wrapped in an ExceptionGroup.
        await group.__aexit__(None, None, None)

    async def ws_connector(self, url: str) -> anyio.abc.ByteStream:
        """Open an in-process connection: a raw byte stream whose peer is a WebSocket server.

        The caller performs the client handshake itself (e.g. with
        wsproto). Valid only inside ``async with simulator:``, on that task
        group's event loop.
        """
        group = self._group
        if group is None:
            raise UsageError("ws_connector needs a running simulator: use it inside `async with simulator:`")
        scheme = urlsplit(url).scheme
        if scheme not in ("ws", "wss"):
            raise UsageError(f"a WebSocket URL must start with ws:// or wss://, got scheme {scheme!r}")
        client, server = memory_stream_pair()
        group.start_soon(serve_websocket_over_stream, self._app, server)
        return client

    def disconnect_websockets(self, *, abrupt: bool = True, code: int = 1011) -> int:
        """End every open WebSocket: without a close frame, or with close ``code``. Returns how many."""
        connections = self._context.connections()
        for connection in connections:
            connection.request_end("abrupt" if abrupt else "close", code)
        return len(connections)

    # ------------------------------------------------------------------ serving on loopback

    @contextlib.asynccontextmanager
    async def serve_loopback(self, *, ws_ping_interval: float | None = 20.0) -> AsyncIterator[LoopbackEndpoints]:
        """Serve on a real uvicorn server on 127.0.0.1 (ephemeral port); yields ``(rest_url, ws_url)``."""
        server = LoopbackServer(self._app, ws_ping_interval=ws_ping_interval)
        endpoints = server.start()
        try:
            yield endpoints
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(server.stop)

    @contextlib.contextmanager
    def serve_loopback_sync(self, *, ws_ping_interval: float | None = 20.0) -> Iterator[LoopbackEndpoints]:
        """:meth:`serve_loopback` for synchronous callers."""
        server = LoopbackServer(self._app, ws_ping_interval=ws_ping_interval)
        endpoints = server.start()
        try:
            yield endpoints
        finally:
            server.stop()

    # ------------------------------------------------------------------ inspection

    def truth(self, account: str) -> AccountTruth:
        """Everything the venue knows about ``account`` right now."""
        return self._venue.truth(account)

    def fault_counts(self) -> FaultCounts:
        return self._faults.counts()

    def history(self) -> dict[str, Any]:
        """The whole history as JSON-ready data (the same for the same seed and calls)."""
        with self._venue.lock:
            accounts: dict[str, Any] = {}
            for address in self.accounts:
                truth = self._venue.truth(address)
                accounts[address] = {
                    "orders": [
                        _wire.order_json(o, seq_no=o.seq_no, published_at=o.last_updated_at)
                        for o in truth.orders.values()
                    ],
                    "fills": [
                        {**_wire.fill_json(f), "settled_at": f.settled_at}
                        for f in sorted((*truth.fills, *truth.busted_fills), key=lambda f: f.sequence)
                    ],
                    "busts": [_wire.bust_json(b) for b in truth.busts],
                    "positions": [_wire.position_json(p, seq_no=p.seq_no) for p in truth.positions.values()],
                    "account": _wire.account_json(truth.summary, seq_no=truth.summary.seq_no),
                }
            return {"seed": self._seed, "now": self._clock.now, "accounts": accounts}

    def history_json(self) -> str:
        return json.dumps(self.history(), sort_keys=True, separators=(",", ":"))
