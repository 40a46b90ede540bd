"""The simulator's ASGI application: REST under ``/v1`` and the WebSocket at ``/v1``.

``POST /v1/auth[/{public_key}]`` (Starknet-signed JWT minting) is served by
``_starknet_auth``; every other HTTP request by ``_rest``.

One app serves both ways of running the simulator: in-process (httpx's
ASGI transport for REST, the wsproto bridge for the WebSocket) and on a
real uvicorn server on loopback.
"""

from __future__ import annotations

from ._context import Message, Receive, Scope, Send, ServerContext
from ._rest import handle_http
from ._starknet_auth import StarknetKeyRegistry, handle_starknet_auth, is_starknet_auth
from ._ws import handle_websocket

__all__ = ["SimulatorApp"]

_INTERNAL_ERROR = b'{"error":"INTERNAL_ERROR","message":"simulator error","data":null}'


class SimulatorApp:
    """A raw ASGI 3 application (no framework): a small router over two handlers.

    A bug in a handler fails that one request or connection (500, or a
    dropped socket) and is recorded in the context; it never escapes into
    the server or the caller's task group.
    """

    def __init__(self, context: ServerContext, *, starknet: StarknetKeyRegistry | None = None) -> None:
        self._context = context
        self._starknet = starknet

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            if kind == "http" and self._starknet is not None and is_starknet_auth(scope):
                await handle_starknet_auth(self._context, self._starknet, scope, receive, tracked_send)
            elif kind == "http":
                await handle_http(self._context, scope, receive, tracked_send)
            elif kind == "websocket":
                await handle_websocket(self._context, scope, receive, tracked_send)
            elif kind == "lifespan":
                await self._lifespan(receive, send)
        except Exception as exc:  # noqa: BLE001 - contained and recorded, see the class docstring
            self._context.record_error(exc)
            if kind == "http" and not started:
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": _INTERNAL_ERROR})

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
