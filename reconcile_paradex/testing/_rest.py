"""The REST half of the simulator: the read endpoints a reconciler uses, under ``/v1``.

Shapes follow the official OpenAPI spec (``responses.OrderResp``,
``responses.FillResult``, ``responses.PaginatedAPIResults``, ...). Errors are
``{"error", "message", "data"}`` with an ``ErrorCode``; auth failures are
401 with only a ``message``, like Paradex's JWT middleware. Only ``GET`` is
served: the simulator's orders come from its activity generator (or its
Python API), not from ``POST /orders``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

import anyio

from . import _wire
from ._context import Receive, Scope, Send, ServerContext
from ._faults import RestFault
from ._pagination import Cursor

__all__ = ["handle_http"]

JSON = dict[str, Any]
MAX_PAGE_SIZE = 5000
DEFAULT_PAGE_SIZE = 100

SYSTEM_CONFIG: JSON = {
    "starknet_chain_id": "PRIVATE_SN_PARACLEAR_SIMULATOR",
    "environment": "simulator",
    "paraclear_decimals": 8,
    "paraclear_address": "0x1",
    "paraclear_account_hash": "0x2",
    "paraclear_account_proxy_hash": "0x3",
    "l1_chain_id": "1",
    "liquidation_fee": "0.0005",
    "bridged_tokens": [
        {
            "name": "USD Coin",
            "symbol": "USDC",
            "decimals": 6,
            "l1_token_address": "0x4",
            "l1_bridge_address": "0x5",
            "l2_token_address": "0x6",
            "l2_bridge_address": "0x7",
        }
    ],
}


class _BadRequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: JSON, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []


def _error(status: int, code: str, message: str) -> _Response:
    return _Response(status, {"error": code, "message": message, "data": None})


async def _send(send: Send, response: _Response) -> None:
    body = json.dumps(response.body, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *response.headers,
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            text = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


def _int_param(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _BadRequestError("INVALID_REQUEST_PARAMETER", f"{name} must be an integer, got {raw!r}") from None


async def handle_http(context: ServerContext, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one HTTP request (faults first, then auth, then the endpoint)."""
    # Drain the request body: GET requests carry none, but ASGI wants it read.
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    fault = context.faults.rest()
    if fault.delay_s:
        await anyio.sleep(fault.delay_s)
    response = _injected(context, fault)
    if response is None:
        try:
            response = _route(context, scope, fault)
        except _BadRequestError as exc:
            response = _error(400, exc.code, exc.message)
    await _send(send, response)


def _injected(context: ServerContext, fault: RestFault) -> _Response | None:
    if fault.status == 429:
        reset = context.now() // 1000 + fault.retry_after_s
        return _Response(
            429,
            {"message": "Too Many Requests"},
            [
                (b"retry-after", str(fault.retry_after_s).encode()),
                (b"x-ratelimit-limit", b"600"),
                (b"x-ratelimit-remaining", b"0"),
                (b"x-ratelimit-reset", str(reset).encode()),
                (b"x-ratelimit-window", b"60"),
            ],
        )
    if fault.status == 503:
        return _error(503, "SERVICE_UNAVAILABLE", "service unavailable")
    if fault.status is not None:
        return _error(fault.status, "INTERNAL_ERROR", "internal server error")
    return None


def _route(context: ServerContext, scope: Scope, fault: RestFault) -> _Response:
    method = scope.get("method", "GET")
    path: str = scope.get("path", "")
    if not path.startswith("/v1/"):
        return _error(404, "NOT_FOUND", f"no such endpoint: {path}")
    parts = [unquote(p) for p in path[len("/v1/") :].rstrip("/").split("/")]
    if method != "GET":
        return _Response(405, {"message": "Method Not Allowed"})
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    params = {name: values[-1] for name, values in query.items()}

    public = _PUBLIC.get(tuple(parts))
    if public is not None:
        return public(context, params)

    now = context.now()
    auth = context.authority.check(_bearer(scope), now=now)
    if not auth.ok:
        return _Response(401, {"message": auth.rest_message()})
    account = auth.account
    as_of = now
    if fault.stale_lag_ms:
        as_of = max(now - fault.stale_lag_ms, context.venue.opened_at)
        context.faults.count("rest_stale")
    venue = context.venue

    if parts == ["orders"]:
        orders = venue.open_orders(account, as_of=as_of, market=params.get("market") or None)
        return _Response(200, {"results": [_wire.order_json(o, seq_no=o.seq_no, published_at=now) for o in orders]})
    if len(parts) == 2 and parts[0] == "orders":
        order = venue.order(account, parts[1], as_of=as_of)
        if order is None:
            return _error(400, "ORDER_ID_NOT_FOUND", f"order {parts[1]} not found")
        return _Response(200, _wire.order_json(order, seq_no=order.seq_no, published_at=now))
    if len(parts) == 3 and parts[:2] == ["orders", "by_client_id"]:
        order = venue.order_by_client_id(account, parts[2], as_of=as_of)
        if order is None:
            return _error(400, "CLIENT_ORDER_ID_NOT_FOUND", f"client order id {parts[2]} not found")
        return _Response(200, _wire.order_json(order, seq_no=order.seq_no, published_at=now))
    if parts == ["orders-history"]:
        return _page(
            context,
            "orders",
            account,
            params,
            as_of=as_of,
            fault=fault,
            accept=_order_filter(params),
            render=_order_renderer(now),
        )
    if parts == ["fills"]:
        if params.get("asset_kind", "PERP") not in ("", "PERP"):
            return _Response(200, {"next": None, "prev": None, "results": []})
        return _page(context, "fills", account, params, as_of=as_of, fault=fault, accept=None, render=_wire.fill_json)
    if parts == ["tradebusts"]:
        return _page(context, "busts", account, params, as_of=as_of, fault=fault, accept=None, render=_wire.bust_json)
    if parts == ["positions"]:
        positions = venue.positions(account, as_of=as_of)
        if context.open_positions_only:
            positions = [p for p in positions if p.size != 0]
        return _Response(200, {"results": [_wire.position_json(p, seq_no=p.seq_no) for p in positions]})
    if parts == ["account"]:
        summary = venue.summary(account, as_of=as_of)
        return _Response(200, _wire.account_json(summary, seq_no=summary.seq_no))
    if parts == ["balance"]:
        return _Response(200, {"results": [_wire.balance_json(venue.summary(account, as_of=as_of))]})
    return _error(404, "NOT_FOUND", f"no such endpoint: {path}")


def _order_filter(params: dict[str, str]) -> Callable[[Any], bool] | None:
    wanted = {name: params[name] for name in ("client_id", "side", "status", "type") if params.get(name)}
    if not wanted:
        return None
    return lambda order: all(getattr(order, name) == value for name, value in wanted.items())


def _order_renderer(now: int) -> Callable[[Any], JSON]:
    return lambda order: _wire.order_json(order, seq_no=order.seq_no, published_at=now)


def _page(
    context: ServerContext,
    kind: str,
    account: str,
    params: dict[str, str],
    *,
    as_of: int,
    fault: RestFault,
    accept: Callable[[Any], bool] | None,
    render: Callable[[Any], JSON],
) -> _Response:
    page_size = _int_param(params, "page_size")
    if page_size is None:
        page_size = DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise _BadRequestError("INVALID_REQUEST_PARAMETER", f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    start_at = _int_param(params, "start_at")
    end_at = _int_param(params, "end_at")
    below = above = None
    raw_cursor = params.get("cursor")
    if raw_cursor:
        cursor = context.cursors.decode(raw_cursor, endpoint=kind, account=account)
        if cursor is None:
            raise _BadRequestError("INVALID_REQUEST_PARAMETER", "invalid cursor")
        if cursor.direction == "next":
            below = cursor.sequence
        else:
            above = cursor.sequence
    records, more = context.venue.scan(
        kind,
        account,
        as_of=as_of,
        below=below,
        above=above,
        limit=page_size,
        start_at=start_at,
        end_at=end_at,
        market=params.get("market") or None,
        accept=accept,
    )
    if fault.page_split and above is None:
        for index in range(1, len(records)):
            if records[index - 1].created_at == records[index].created_at:
                records = records[:index]
                more = True
                context.faults.count("page_split")
                break

    def encode(direction: str, sequence: int) -> str:
        return context.cursors.encode(Cursor(direction, sequence), endpoint=kind, account=account)

    next_cursor: str | None = None
    prev_cursor: str | None = None
    if above is None:
        if more:
            next_cursor = encode("next", records[-1].sequence)
        if raw_cursor and records:
            prev_cursor = encode("prev", records[0].sequence)
    else:
        next_cursor = encode("next", records[-1].sequence if records else above + 1)
        if more:
            prev_cursor = encode("prev", records[0].sequence)
    return _Response(200, {"next": next_cursor, "prev": prev_cursor, "results": [render(r) for r in records]})


def _markets(context: ServerContext, params: dict[str, str]) -> _Response:
    wanted = params.get("market") or None
    venue = context.venue
    results = [
        _wire.market_json(m, open_at=venue.opened_at)
        for m in venue.markets.values()
        if wanted is None or m.symbol == wanted
    ]
    return _Response(200, {"results": results})


def _system_time(context: ServerContext, _params: dict[str, str]) -> _Response:
    return _Response(200, {"server_time": str(context.now())})


def _system_state(_context: ServerContext, _params: dict[str, str]) -> _Response:
    return _Response(200, {"status": "ok"})


def _system_config(_context: ServerContext, _params: dict[str, str]) -> _Response:
    return _Response(200, SYSTEM_CONFIG)


_PUBLIC: dict[tuple[str, ...], Callable[[ServerContext, dict[str, str]], _Response]] = {
    ("markets",): _markets,
    ("system", "time"): _system_time,
    ("system", "state"): _system_state,
    ("system", "config"): _system_config,
}
