"""reconcile_paradex: the Paradex venue plugin for reconcile_core.

* :class:`ParadexSource` — one account as a ``reconcile_core.typing.StateSource``:
  REST (httpx) is the truth, the WebSocket (wsproto over anyio) gives hints.
* Credentials: :class:`ReadOnlyToken` (a long-lived read-only JWT, no private
  key), :class:`CallableTokenProvider` (your function mints JWTs) or
  :class:`StarknetKeyTokenProvider` (mints JWTs with a Starknet key or subkey;
  extra ``reconcile-trading[starknet]``, imported only when used), all
  :class:`TokenProvider`; tokens are kept in :class:`Secret`.
* The parsers (``parse_order``, ``parse_fill``, ...) are pure functions from
  Paradex JSON to core types; they raise only ``ParseError``.
* ``venue`` is the plugin object registered under the ``reconcile_core.venues``
  entry point (``reconcile_core.plugins.load_venue("paradex")``).
"""

from __future__ import annotations

from ._auth import CallableTokenProvider, ReadOnlyToken, Secret, TokenProvider, jwt_expiry
from ._fields import decode_json
from ._models import AccountSummary, Balance, Market, Parsed
from ._parse import (
    FILL_TYPES,
    REJECTION_REASONS,
    parse_account_summary,
    parse_balances,
    parse_fill,
    parse_fill_bust,
    parse_markets,
    parse_open_orders,
    parse_order,
    parse_page,
    parse_position,
    parse_positions,
    parse_server_time,
)
from ._plugin import ParadexVenue, venue
from ._ratelimit import Clock, RetryPolicy, SystemClock, TokenBucket
from ._rest import MAX_PAGE_SIZE, ParadexRestClient
from ._source import DEFAULT_SETTLEMENT_LAG_MS, ParadexSource
from ._starknet import StarknetKeyTokenProvider, auth_message_hash, auth_typed_data
from ._urls import PROD_REST_URL, PROD_WS_URL, TESTNET_REST_URL, TESTNET_WS_URL
from ._ws import DEFAULT_CHANNELS, ParadexWebSocket, WebSocketConnector, WebSocketSettings, default_connector

__all__ = [
    "DEFAULT_CHANNELS",
    "DEFAULT_SETTLEMENT_LAG_MS",
    "FILL_TYPES",
    "MAX_PAGE_SIZE",
    "PROD_REST_URL",
    "PROD_WS_URL",
    "REJECTION_REASONS",
    "TESTNET_REST_URL",
    "TESTNET_WS_URL",
    "AccountSummary",
    "Balance",
    "CallableTokenProvider",
    "Clock",
    "Market",
    "ParadexRestClient",
    "ParadexSource",
    "ParadexVenue",
    "ParadexWebSocket",
    "Parsed",
    "ReadOnlyToken",
    "RetryPolicy",
    "Secret",
    "StarknetKeyTokenProvider",
    "SystemClock",
    "TokenBucket",
    "TokenProvider",
    "WebSocketConnector",
    "WebSocketSettings",
    "auth_message_hash",
    "auth_typed_data",
    "decode_json",
    "default_connector",
    "jwt_expiry",
    "parse_account_summary",
    "parse_balances",
    "parse_fill",
    "parse_fill_bust",
    "parse_markets",
    "parse_open_orders",
    "parse_order",
    "parse_page",
    "parse_position",
    "parse_positions",
    "parse_server_time",
    "venue",
]
