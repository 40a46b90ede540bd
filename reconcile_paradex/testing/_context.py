"""What the REST and WebSocket handlers share, and the ASGI type aliases."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from ._auth import TokenAuthority
from ._faults import FaultInjector
from ._pagination import CursorCodec
from ._venue import Venue

if TYPE_CHECKING:
    from ._ws import WsConnection

__all__ = ["Message", "Receive", "Scope", "Send", "ServerContext"]


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ServerContext:
    """What the REST and WebSocket handlers share."""

    def __init__(
        self,
        *,
        venue: Venue,
        authority: TokenAuthority,
        faults: FaultInjector,
        cursors: CursorCodec,
        node_id: str,
        open_positions_only: bool = False,
    ) -> None:
        self.venue = venue
        #: ``GET /positions`` lists open positions only (the spec's "List open positions").
        self.open_positions_only = open_positions_only
        self.authority = authority
        self.faults = faults
        self.cursors = cursors
        self.node_id = node_id
        self._lock = threading.Lock()
        self._connections: set[WsConnection] = set()
        self._errors: list[str] = []

    def record_error(self, exc: BaseException) -> None:
        """Remember a bug of the simulator itself (tests assert there is none)."""
        with self._lock:
            if len(self._errors) < 100:
                self._errors.append(f"{type(exc).__name__}: {exc}")

    def errors(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._errors)

    def now(self) -> int:
        with self.venue.lock:
            return self.venue.clock.now

    def register(self, connection: WsConnection) -> None:
        with self._lock:
            self._connections.add(connection)

    def unregister(self, connection: WsConnection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def connections(self) -> list[WsConnection]:
        with self._lock:
            return list(self._connections)
