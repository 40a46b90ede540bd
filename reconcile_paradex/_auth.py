"""Bearer tokens for Paradex: where they come from, and how they stay out of logs.

A :class:`TokenProvider` returns a token that is valid *now*. REST asks for
one before every request and forces a refresh after a 401; the WebSocket asks
for one at every (re)connect, forcing a refresh after an auth error (API.md
§2.4, §6.1).

Two providers ship:

* :class:`ReadOnlyToken` — a long-lived read-only JWT made in the Paradex UI
  (Key Management → Read-only). No private key involved; the natural
  credential for reconciliation.
* :class:`CallableTokenProvider` — wraps a function of yours (sync or async)
  that mints a JWT, e.g. a Starknet-key signer calling ``POST /v1/auth``. It
  caches the token and calls the function again shortly before the JWT's
  ``exp`` (Paradex JWTs live 5 minutes), or when forced.

Tokens are held in :class:`Secret`, whose ``repr`` and ``str`` never show
the value.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio

from reconcile_core.errors import AuthenticationError, ReconcileError, UsageError

from ._fields import is_nonempty_str
from ._redact import redact

__all__ = [
    "GEO_BLOCK_MESSAGE",
    "CallableTokenProvider",
    "ReadOnlyToken",
    "Secret",
    "TokenProvider",
    "jwt_expiry",
    "redact",
]

GEO_BLOCK_MESSAGE = (
    "Paradex refuses service to this IP address's region (GEO_IP_BLOCK / 40112). "
    "Paradex serves no API traffic to restricted jurisdictions; run from an allowed location."
)


class Secret:
    """A string that does not show itself: ``repr``/``str``/f-strings print ``'***'``.

    Call :meth:`reveal` at the single place the value is needed (the
    ``Authorization`` header, the WS ``auth`` message).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not is_nonempty_str(value):
            raise UsageError("a secret must be a non-empty str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, format_spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the value somewhere we cannot see.
        raise TypeError("Secret cannot be pickled")


@runtime_checkable
class TokenProvider(Protocol):
    """Protocol: supplies a bearer token valid at the time of the call."""

    async def token(self, *, force_refresh: bool = False) -> str:
        """A token valid now; ``force_refresh`` says the last one was rejected."""
        ...


async def fetch_token(provider: TokenProvider, *, force_refresh: bool = False) -> str:
    """``provider.token()``, for any provider, yours included: a token, or :class:`AuthenticationError`.

    The library's own errors pass through. Any other exception becomes an
    ``AuthenticationError`` naming only its type (its message may hold key
    material), and so does a result that is not a non-empty ``str``.
    """
    failed: str | None = None
    try:
        token: object = await provider.token(force_refresh=force_refresh)
    except ReconcileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the provider means no token
        failed = type(exc).__name__
    if failed is not None:
        # Raised outside the handler, so the provider's exception is neither cause nor context.
        raise AuthenticationError(f"the token provider raised {failed}; no token available") from None
    if not isinstance(token, str) or not token:
        raise AuthenticationError(f"the token provider returned {type(token).__name__}, expected a non-empty str")
    return token


def _as_secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


class ReadOnlyToken:
    """A long-lived Paradex read-only token (a JWT restricted to GET requests).

    ``force_refresh`` cannot mint a new one: the same token is returned, and a
    venue that keeps rejecting it yields :class:`AuthenticationError` upstream.
    """

    __slots__ = ("_secret",)

    def __init__(self, token: str | Secret) -> None:
        self._secret = _as_secret(token)

    async def token(self, *, force_refresh: bool = False) -> str:  # noqa: ARG002 - protocol signature
        return self._secret.reveal()

    def __repr__(self) -> str:
        return "ReadOnlyToken(token=Secret('***'))"


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (unix seconds), read without verifying; ``None`` if unreadable."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return float(exp)  # float ok: seconds, not money
    return None


TokenFunction = Callable[[], "str | Secret | Awaitable[str | Secret]"]


class CallableTokenProvider:
    """Tokens from a function you supply (sync or async, no arguments).

    The token is cached and the function called again when ``force_refresh``
    is set, or when the JWT's ``exp`` is less than ``refresh_margin`` seconds
    away. A token without a readable ``exp`` is reused for
    ``default_lifetime`` seconds (Paradex JWTs live 300 s). Concurrent callers
    share one call. ``wall_clock`` (unix seconds) is injectable for tests.
    """

    __slots__ = ("_cached", "_default_lifetime", "_func", "_lock", "_refresh_margin", "_valid_until", "_wall_clock")

    def __init__(
        self,
        func: TokenFunction,
        *,
        refresh_margin: float = 30.0,
        default_lifetime: float = 240.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not callable(func):
            raise UsageError("CallableTokenProvider needs a callable returning a token")
        self._func = func
        self._refresh_margin = refresh_margin
        self._default_lifetime = default_lifetime
        self._wall_clock = wall_clock
        self._cached: Secret | None = None
        self._valid_until = 0.0
        self._lock: anyio.Lock | None = None

    def __repr__(self) -> str:
        name = getattr(self._func, "__qualname__", type(self._func).__name__)
        return f"CallableTokenProvider({name})"

    async def token(self, *, force_refresh: bool = False) -> str:
        if self._lock is None:
            self._lock = anyio.Lock()
        stale = self._cached
        async with self._lock:
            # Another caller may have refreshed while we waited for the lock.
            fresh_meanwhile = self._cached is not stale
            if self._cached is not None and (fresh_meanwhile or not force_refresh) and not self._expiring():
                return self._cached.reveal()
            secret = await self._mint()
            self._cached = secret
            exp = jwt_expiry(secret.reveal())
            now = self._wall_clock()
            self._valid_until = (exp - self._refresh_margin) if exp is not None else now + self._default_lifetime
            return secret.reveal()

    def _expiring(self) -> bool:
        return self._wall_clock() >= self._valid_until

    async def _mint(self) -> Secret:
        failed: str | None = None
        try:
            result: object = self._func()
            if inspect.isawaitable(result):
                result = await result
        except AuthenticationError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the user's function means no token
            failed = type(exc).__name__
        if failed is not None:
            # The function's own message may contain key material: name only its type, and raise
            # outside the handler so it is neither __cause__ nor __context__ (tracebacks show both).
            raise AuthenticationError(f"the token function raised {failed}; no token available") from None
        if isinstance(result, Secret):
            return result
        if isinstance(result, str) and is_nonempty_str(result):
            return Secret(result)
        raise AuthenticationError(f"the token function returned {type(result).__name__}, expected a non-empty str")
