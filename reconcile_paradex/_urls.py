"""Paradex base URLs (API.md §1)."""

from __future__ import annotations

from typing import Final

import httpx

from reconcile_core.errors import UsageError

__all__ = [
    "ENVIRONMENTS",
    "PROD_REST_URL",
    "PROD_WS_URL",
    "TESTNET_REST_URL",
    "TESTNET_WS_URL",
    "resolve_urls",
    "shown_url",
]

PROD_REST_URL: Final = "https://api.prod.paradex.trade/v1"
PROD_WS_URL: Final = "wss://ws.api.prod.paradex.trade/v1"
TESTNET_REST_URL: Final = "https://api.testnet.paradex.trade/v1"
TESTNET_WS_URL: Final = "wss://ws.api.testnet.paradex.trade/v1"

#: Environment name -> (REST base URL, WebSocket URL).
ENVIRONMENTS: Final = {
    "prod": (PROD_REST_URL, PROD_WS_URL),
    "testnet": (TESTNET_REST_URL, TESTNET_WS_URL),
}


def resolve_urls(env: str | None, rest_url: str | None, ws_url: str | None) -> tuple[str, str]:
    """The REST and WS URLs to use: explicit URLs win over the environment's defaults.

    ``env=None`` means "custom": both URLs must then be given.
    """
    if env is None:
        if rest_url is None or ws_url is None:
            raise UsageError("env=None (custom venue) needs both rest_url and ws_url")
        defaults = (rest_url, ws_url)
    else:
        found = ENVIRONMENTS.get(env)
        if found is None:
            known = ", ".join(repr(name) for name in ENVIRONMENTS)
            raise UsageError(f"unknown Paradex environment {env!r}; expected one of {known}, or None with custom URLs")
        defaults = found
    rest = (rest_url or defaults[0]).rstrip("/")
    ws = (ws_url or defaults[1]).rstrip("/")
    check_url("rest_url", rest, ("http", "https"))
    check_url("ws_url", ws, ("ws", "wss"))
    return rest, ws


def shown_url(url: str) -> str:
    """``url`` as messages and reprs show it: a user name and password (``user:pw@``) become ``***@``.

    Everything between ``://`` and the last ``@`` goes, so a password holding
    an unescaped ``/`` or ``@`` goes whole.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    return f"{scheme}{separator}***@{rest.rpartition('@')[2]}"


def check_url(name: str, url: object, schemes: tuple[str, str]) -> None:
    """Raise :class:`UsageError` unless ``url`` is a str with one of ``schemes`` that parses,
    with a host and a valid port."""
    if not isinstance(url, str) or not url.startswith(tuple(f"{scheme}://" for scheme in schemes)):
        shown = f"{shown_url(url)!r}" if isinstance(url, str) else f"a {type(url).__name__}"
        raise UsageError(f"{name} must start with {schemes[0]}:// or {schemes[1]}://, got {shown}")
    problem: str | None = None
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        problem = str(exc)
    else:
        if not parsed.host:
            problem = "no host"
        elif parsed.port is not None and not 0 < parsed.port < 65536:
            problem = f"port {parsed.port} is out of range"
    if problem is not None:
        if shown_url(url) != url:  # httpx may quote a piece of the password as the port or host
            problem = problem.split(":", 1)[0]
        # Raised outside the handler: httpx's exception adds nothing for the caller.
        raise UsageError(f"{name} is not a usable URL ({problem}): {shown_url(url)!r}")
