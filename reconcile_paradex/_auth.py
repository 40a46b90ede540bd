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
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol, cast, runtime_checkable

import anyio

from reconcile_core.errors import AuthenticationError, ReconcileError, UsageError

from ._fields import is_nonempty_str
from ._redact import redact

__all__ = [
    "DEFAULT_JWT_LIFETIME",
    "GEO_BLOCK_MESSAGE",
    "CallableTokenProvider",
    "ReadOnlyToken",
    "Secret",
    "TokenProvider",
    "as_provider",
    "check_seconds",
    "jwt_expiry",
    "jwt_subject",
    "redact",
    "seconds",
    "usable_for",
]

#: The least time :class:`CallableTokenProvider` keeps a token it was just given (seconds).
_MIN_REUSE: Final = 10.0
#: Paradex JWTs live five minutes (API.md §2.3); assumed when a token's ``exp`` is unreadable.
DEFAULT_JWT_LIFETIME: Final = 300.0

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


def as_provider(token: object) -> TokenProvider:
    """``token`` as a :class:`TokenProvider`: a ``str`` or :class:`Secret` is a read-only token.

    Anything else must have a callable ``token``: :class:`UsageError` otherwise, without
    quoting the value (it may be a secret of the wrong type).
    """
    if isinstance(token, str | Secret):
        return ReadOnlyToken(token)
    if not callable(getattr(token, "token", None)):
        raise UsageError(f"token must be a TokenProvider, or a read-only token string (got {type(token).__name__})")
    return cast("TokenProvider", token)


def _jwt_claims(token: str) -> Mapping[str, object]:
    """The JWT's payload claims, decoded without verification; empty when unreadable."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # RecursionError: nested too deep
        return {}
    return claims if isinstance(claims, dict) else {}


def seconds(value: object) -> float | None:
    """``value`` as finite seconds (an int or float, not a bool); ``None`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)  # float ok: seconds, not money
    return number if math.isfinite(number) else None


def check_seconds(name: str, value: object, *, allow_zero: bool) -> None:
    """:class:`UsageError` unless ``value`` is a number of seconds ``> 0`` (or ``>= 0``)."""
    number = seconds(value)
    if number is None or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise UsageError(f"{name} must be a number of seconds {bound}, got {value!r}")


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (unix seconds), read without verifying; ``None`` if unreadable."""
    return seconds(_jwt_claims(token).get("exp"))


def jwt_subject(token: str) -> str | None:
    """The ``sub`` claim of a JWT (Paradex: the account address), read without verifying; ``None`` if unreadable."""
    subject = _jwt_claims(token).get("sub")
    return subject if isinstance(subject, str) and subject else None


def usable_for(
    token: str, *, minted_at: float, refresh_margin: float, refresh_after: float = math.inf
) -> tuple[float, str]:
    """Seconds after ``minted_at`` to use ``token`` before minting anew, and how that was decided.

    The token's lifetime is its own ``exp - iat`` (the venue's clock on both
    sides, so local clock skew does not matter); with only ``exp``, it is
    ``exp`` minus the local minting time; unreadable (or an ``exp`` already
    past by the local clock), Paradex's 5 minutes. The token is used until
    ``refresh_margin`` before its end, at most ``refresh_after``, and at least
    half its lifetime: a local clock far ahead of the venue's must not make
    every fresh token look expired (one mint per request).
    """
    claims = _jwt_claims(token)
    exp, iat = seconds(claims.get("exp")), seconds(claims.get("iat"))
    if exp is not None and iat is not None and exp > iat:
        lifetime, basis = exp - iat, "exp - iat"
    elif exp is not None and exp > minted_at:
        lifetime, basis = exp - minted_at, "exp"
    else:
        lifetime, basis = DEFAULT_JWT_LIFETIME, "no readable exp; assumed"
    usable = min(refresh_after, max(lifetime - refresh_margin, lifetime / 2))
    return usable, f"lifetime {lifetime:g} s ({basis})"


TokenFunction = Callable[[], "str | Secret | Awaitable[str | Secret]"]


class CallableTokenProvider:
    """Tokens from a function you supply (sync or async, no arguments).

    The token is cached and the function called again when ``force_refresh``
    is set, or when the JWT's ``exp`` is less than ``refresh_margin`` seconds
    away, but not within 10 s of the last call: a local clock running ahead of
    the venue's makes every fresh token look expired, and must not call the
    function on every request. A token without a readable ``exp`` is reused
    for ``default_lifetime`` seconds (Paradex JWTs live 300 s). Concurrent
    callers share one call.
    ``wall_clock`` (unix seconds) is injectable for tests.
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
        check_seconds("refresh_margin", refresh_margin, allow_zero=True)
        check_seconds("default_lifetime", default_lifetime, allow_zero=False)
        if not callable(wall_clock):
            raise UsageError("wall_clock must be a callable returning unix seconds")
        self._func = func
        self._refresh_margin = float(refresh_margin)  # float ok: seconds, not money
        self._default_lifetime = float(default_lifetime)  # float ok: seconds, not money
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
            value, now = secret.reveal(), self._wall_clock()
            exp = jwt_expiry(value)
            if exp is None:
                self._valid_until = now + self._default_lifetime
            else:
                # The function may hand out a token minted a while ago (a file kept fresh by
                # another process): its exp says when it ends, not its lifetime. The floor keeps
                # a local clock running ahead of the venue's (every token "expired") from calling
                # the function on every request; a token really expired meets a 401 and a refresh.
                self._valid_until = max(exp - self._refresh_margin, now + _MIN_REUSE)
            return value

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
