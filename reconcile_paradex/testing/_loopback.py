"""The loopback mode: the simulator's ASGI app on a real uvicorn server.

uvicorn (with its wsproto WebSocket implementation, lifespan off) runs in a
background thread with its own asyncio loop, so the caller may use asyncio
or trio. The listening socket is bound on 127.0.0.1 with an ephemeral port
*before* the thread starts: clients can connect at once (the kernel queues
them until uvicorn accepts), so there is nothing to wait for.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from reconcile_core.errors import UsageError

if TYPE_CHECKING:
    import uvicorn

__all__ = ["LoopbackEndpoints", "LoopbackServer"]

#: Seconds stop() waits for a graceful shutdown before forcing it.
STOP_GRACE_S = 5.0


class LoopbackEndpoints(NamedTuple):
    """Where a loopback simulator listens: ``rest_url`` and ``ws_url`` (both end in ``/v1``)."""

    rest_url: str
    ws_url: str


class LoopbackServer:
    """One uvicorn server on 127.0.0.1 in a background thread; start() then stop()."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", ws_ping_interval: float | None = 20.0) -> None:
        self._app = app
        self._host = host
        self._ping = ws_ping_interval
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"LoopbackServer(host={self._host!r}, running={self._thread is not None})"

    def start(self) -> LoopbackEndpoints:
        if self._thread is not None:
            raise RuntimeError("this loopback server is already started")
        try:
            import uvicorn  # optional: only the loopback mode needs it
        except ImportError as exc:
            raise UsageError(
                "the loopback simulator needs uvicorn: pip install 'reconcile-trading[simulator]'"
            ) from exc
        # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets
        # only then. Without it every request after the first on a keep-alive
        # connection waited ~40 ms (Nagle's algorithm against delayed ACKs).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            ws="wsproto",
            http="h11",
            lifespan="off",
            log_config=None,
            access_log=False,
            ws_ping_interval=self._ping,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=self._run, args=(server, sock), name=f"paradex-sim-{port}", daemon=True)
        self._server, self._socket, self._thread = server, sock, thread
        thread.start()
        return LoopbackEndpoints(f"http://{self._host}:{port}/v1", f"ws://{self._host}:{port}/v1")

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # noqa: BLE001 - reported by stop() in the caller's thread
            self._error = exc

    def stop(self) -> None:
        """Shut down (gracefully, then forcibly) and wait for the thread. Idempotent."""
        server, thread, sock = self._server, self._thread, self._socket
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(STOP_GRACE_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(STOP_GRACE_S)
        if sock is not None:
            sock.close()
        self._server = self._thread = self._socket = None
        error, self._error = self._error, None
        if error is not None and not isinstance(error, SystemExit | KeyboardInterrupt):
            raise RuntimeError(f"the loopback simulator server failed: {error!r}") from error
