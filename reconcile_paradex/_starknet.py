"""Paradex JWTs minted from a Starknet private key or subkey (extra ``reconcile-trading[starknet]``).

:class:`StarknetKeyTokenProvider` is a :class:`~reconcile_paradex.TokenProvider`
that signs Paradex's auth request itself (API.md §2.2):

1. ``GET {rest_url}/system/config`` once, for ``starknet_chain_id`` (cached);
2. sign the legacy SNIP-12 "revision 0" typed-data ``Request`` message
   (StarkNetDomain, Pedersen) for ``POST /v1/auth`` with the key, through
   starknet-py (``TypedData``, ``message_signature``);
3. ``POST {rest_url}/auth/{public_key}`` with the headers
   ``PARADEX-STARKNET-ACCOUNT``, ``PARADEX-STARKNET-SIGNATURE``,
   ``PARADEX-TIMESTAMP`` and ``PARADEX-SIGNATURE-EXPIRATION``; the answer's
   ``jwt_token`` is the bearer token.

A subkey works the same way: the account is the main account, the key is the
subkey, and the URL names the subkey's public key.

starknet-py is imported lazily: ``import reconcile_paradex`` never needs it,
and constructing the provider without it raises
:class:`~reconcile_core.errors.UsageError` saying what to install. The private
key is held in a :class:`~reconcile_paradex.Secret`; it never appears in a
``repr``, a log line or an error message.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import anyio
import anyio.to_thread
import httpx

from reconcile_core.errors import (
    AuthenticationError,
    ParseError,
    RateLimitedError,
    TransportError,
    UsageError,
    VenueError,
)
from reconcile_core.errors import TimeoutError as RequestTimeoutError

from ._auth import DEFAULT_JWT_LIFETIME, GEO_BLOCK_MESSAGE, Secret, check_seconds, redact, usable_for
from ._fields import decode_json, is_nonempty_str
from ._parse import parse_error_body
from ._redact import body_excerpt
from ._urls import ENVIRONMENTS, shown_url

__all__ = [
    "AUTH_PATH",
    "DEFAULT_JWT_LIFETIME",
    "INSTALL_HINT",
    "StarknetKeyTokenProvider",
    "auth_message_hash",
    "auth_typed_data",
]

logger = logging.getLogger("reconcile_paradex.auth")

#: What to install when starknet-py is missing.
INSTALL_HINT: Final = "pip install 'reconcile-trading[starknet]'"
#: The ``path`` of the signed message: ``/v1/auth`` also when POSTing to ``/v1/auth/{public_key}``.
AUTH_PATH: Final = "/v1/auth"
_USER_AGENT: Final = "reconcile-trading (reconcile_paradex)"
#: The shortest signature part worth redacting (shorter ones would hide ordinary numbers).
_MIN_SIGNATURE_CHARS: Final = 16
_EC_ORDER: Final = 0x800000000000010FFFFFFFFFFFFFFFFB781126DCAE7B2321E66A241ADC64D2F

# The typed-data types of the auth message, exactly as API.md §2.2 (and paradex-py) write them.
_TYPES: Final = {
    "StarkNetDomain": [
        {"name": "name", "type": "felt"},
        {"name": "chainId", "type": "felt"},
        {"name": "version", "type": "felt"},
    ],
    "Request": [
        {"name": "method", "type": "felt"},
        {"name": "path", "type": "felt"},
        {"name": "body", "type": "felt"},
        {"name": "timestamp", "type": "felt"},
        {"name": "expiration", "type": "felt"},
    ],
}

_SIGNATURE_CODES: Final = frozenset(
    {"INVALID_STARKNET_SIGNATURE", "STARKNET_SIGNATURE_VERIFICATION_FAILED", "INVALID_SUBKEY", "INVALID_TIMESTAMP"}
)


def _missing_extra(exc: BaseException) -> UsageError:
    return UsageError(
        f"Starknet key authentication needs starknet-py, which cannot be imported ({type(exc).__name__}); "
        f"install the extra: {INSTALL_HINT}"
    )


def _shortstring(text: str) -> int:
    try:
        from starknet_py.cairo.felt import encode_shortstring  # noqa: PLC0415 - optional extra, imported lazily
    except (ImportError, OSError) as exc:
        raise _missing_extra(exc) from exc
    return int(encode_shortstring(text))


def _public_key(private_key: int) -> int:
    try:
        from starknet_py.hash.utils import private_to_stark_key  # noqa: PLC0415 - optional extra
    except (ImportError, OSError) as exc:
        raise _missing_extra(exc) from exc
    return int(private_to_stark_key(private_key))


def _sign(message_hash: int, private_key: int) -> tuple[int, int]:
    try:
        from starknet_py.hash.utils import message_signature  # noqa: PLC0415 - optional extra
    except (ImportError, OSError) as exc:
        raise _missing_extra(exc) from exc
    r, s = message_signature(message_hash, private_key)
    return int(r), int(s)


def _chain_id_felt(chain_id: str) -> int:
    if not is_nonempty_str(chain_id):
        raise UsageError(f"chain_id must be a non-empty str (Paradex's starknet_chain_id), got {chain_id!r}")
    try:
        return _shortstring(chain_id)
    except ValueError as exc:
        raise UsageError(f"chain_id {chain_id[:80]!r} is not a Cairo short string (<= 31 ASCII characters)") from exc


def _unix_seconds(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an int of unix seconds, got {type(value).__name__}")
    if not 0 <= value < 2**63:
        raise UsageError(f"{name} must be within 0..2**63-1, got {value}")
    return value


def _address(account: str | int) -> int:
    if isinstance(account, int) and not isinstance(account, bool):
        value = account
    elif isinstance(account, str) and account.lower().startswith("0x"):
        try:
            value = int(account, 16)
        except ValueError:
            raise UsageError(f"account must be a hex Starknet address ('0x...'), got {account[:80]!r}") from None
    else:
        raise UsageError(f"account must be a hex Starknet address ('0x...'), got {str(account)[:80]!r}")
    if not 0 < value < 2**251:
        raise UsageError(f"account {hex(value)} is not a Starknet address (0 < address < 2**251)")
    return value


def auth_typed_data(*, chain_id: str, timestamp: int, expiration: int) -> dict[str, Any]:
    """The typed-data document Paradex's ``POST /v1/auth`` signature covers (API.md §2.2).

    ``chain_id`` is ``starknet_chain_id`` from ``GET /v1/system/config`` (e.g.
    ``"PRIVATE_SN_POTC_SEPOLIA"``); it enters the domain as the hex of its
    short-string felt. ``timestamp`` and ``expiration`` are unix seconds.
    """
    felt = _chain_id_felt(chain_id)
    return {
        "domain": {"name": "Paradex", "chainId": hex(felt), "version": "1"},
        "primaryType": "Request",
        "types": {name: [dict(field) for field in fields] for name, fields in _TYPES.items()},
        "message": {
            "method": "POST",
            "path": AUTH_PATH,
            "body": "",
            "timestamp": _unix_seconds(timestamp, "timestamp"),
            "expiration": _unix_seconds(expiration, "expiration"),
        },
    }


def auth_message_hash(*, account: str | int, chain_id: str, timestamp: int, expiration: int) -> int:
    """The Pedersen message hash a Paradex auth signature signs, via starknet-py's ``TypedData``.

    ``account`` is the (main) account address; with a subkey too.
    """
    document = auth_typed_data(chain_id=chain_id, timestamp=timestamp, expiration=expiration)
    address = _address(account)
    try:
        from starknet_py.utils.typed_data import TypedData  # noqa: PLC0415 - optional extra
    except (ImportError, OSError) as exc:
        raise _missing_extra(exc) from exc
    typed = TypedData.from_dict(document)  # type: ignore[arg-type]  # a plain dict of the TypedDataDict shape
    return int(typed.message_hash(address))


def _private_key(value: object) -> int:
    """The key as an int, from an int, a hex/decimal str or a :class:`Secret`; errors never echo it."""
    if isinstance(value, Secret):
        value = value.reveal()
    key: int
    if isinstance(value, int) and not isinstance(value, bool):
        key = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            key = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
        except ValueError:
            raise UsageError(
                "private_key must be a Starknet private key: an int, or a str of hex ('0x...') or decimal "
                "digits (the value is not shown)"
            ) from None
    else:
        raise UsageError(f"private_key must be an int, a str or a Secret, got {type(value).__name__}")
    if not 0 < key < _EC_ORDER:
        raise UsageError("private_key is out of range for the Stark curve (the value is not shown)")
    return key


class StarknetKeyTokenProvider:
    """Mints Paradex JWTs with a Starknet private key (or subkey): a :class:`TokenProvider`.

    ``account`` is the Paradex account address (for a subkey: the main
    account); ``private_key`` the account's Starknet key or a subkey (an int,
    a hex ``"0x..."`` str, or a :class:`Secret` holding one). ``env``
    (``"prod"``/``"testnet"``) or ``rest_url`` (which wins) says where to
    mint. ``http_client`` is used as is and never closed (share the
    ``ParadexSource``'s); without one, each mint opens and closes its own.

    **Refresh.** A token is reused until ``refresh_after`` seconds after it
    was minted (180: Paradex JWTs live 300 s) or ``refresh_margin`` seconds
    before its own ``exp`` (30), whichever comes first (and at least half its
    lifetime, for short-lived tokens). ``force_refresh=True`` (a REST 401, a
    WS 40111) always mints a new one, unless another caller did so while this
    one waited. Concurrent callers share one mint. Each signature is valid
    for ``signature_ttl`` seconds (``PARADEX-SIGNATURE-EXPIRATION``).
    ``wall_clock`` gives unix seconds (injectable for tests and simulators).

    **Errors.** Refusals of ``POST /auth`` raise ``AuthenticationError`` (its
    ``code`` is the venue's: ``STARKNET_SIGNATURE_VERIFICATION_FAILED``,
    ``NOT_ONBOARDED``, ...); 429 ``RateLimitedError``; 5xx and unusable
    answers ``VenueError``; the network ``TransportError``/``TimeoutError``.
    A refusal's message quotes the venue (redacted: neither the key nor the
    request's signature shows), or an excerpt of a body that is not JSON (a
    proxy's page). Nothing is retried here: the REST client retries the 5xx
    and network failures like a failed request, and the session backs off.
    """

    __slots__ = (
        "_account",
        "_cached",
        "_chain_id",
        "_http",
        "_lock",
        "_mints",
        "_private_key",
        "_public_key",
        "_refresh_after",
        "_refresh_at",
        "_refresh_margin",
        "_rest_url",
        "_signature_ttl",
        "_timeout",
        "_wall_clock",
    )

    def __init__(
        self,
        *,
        account: str,
        private_key: int | str | Secret,
        env: str | None = "testnet",
        rest_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        wall_clock: Callable[[], float] = time.time,
        refresh_after: float = 180.0,
        refresh_margin: float = 30.0,
        signature_ttl: int = 300,
        timeout: float = 15.0,
    ) -> None:
        self._account = hex(_address(account))
        key = _private_key(private_key)
        # Derive the public key now: fails fast (and names the extra) when starknet-py is missing.
        self._public_key = _public_key(key)
        self._private_key = Secret(hex(key))
        self._rest_url = _rest_url(env, rest_url)
        check_seconds("refresh_after", refresh_after, allow_zero=False)
        check_seconds("refresh_margin", refresh_margin, allow_zero=True)
        check_seconds("timeout", timeout, allow_zero=False)
        _check_signature_ttl(signature_ttl)
        if not callable(wall_clock):
            raise UsageError("wall_clock must be a callable returning unix seconds")
        self._http = http_client
        self._wall_clock = wall_clock
        self._refresh_after = float(refresh_after)  # float ok: seconds, not money
        self._refresh_margin = float(refresh_margin)  # float ok: seconds, not money
        self._signature_ttl = signature_ttl
        self._timeout = float(timeout)  # float ok: seconds, not money
        self._chain_id: str | None = None
        self._cached: Secret | None = None
        self._refresh_at = 0.0
        self._mints = 0
        self._lock: anyio.Lock | None = None

    def __repr__(self) -> str:
        return (
            f"StarknetKeyTokenProvider(account={self._account!r}, public_key={self.public_key!r}, "
            f"rest_url={shown_url(self._rest_url)!r}, private_key=Secret('***'))"
        )

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("StarknetKeyTokenProvider cannot be pickled: it holds a private key")

    @property
    def account(self) -> str:
        """The account address sent as ``PARADEX-STARKNET-ACCOUNT`` (the main account for a subkey)."""
        return self._account

    @property
    def public_key(self) -> str:
        """The key's public key, hex: the ``{public_key}`` of ``POST /v1/auth/{public_key}``."""
        return hex(self._public_key)

    @property
    def rest_url(self) -> str:
        return self._rest_url

    @property
    def mints(self) -> int:
        """How many JWTs this provider has minted."""
        return self._mints

    # -- the TokenProvider protocol ---------------------------------------------------

    async def token(self, *, force_refresh: bool = False) -> str:
        """A JWT valid now; minted when none is cached, it is due for refresh, or ``force_refresh``."""
        if self._lock is None:
            self._lock = anyio.Lock()
        seen = self._cached
        async with self._lock:
            cached = self._cached
            # A caller that waited while another one minted takes that fresh token.
            fresh_meanwhile = cached is not seen
            if cached is not None and (fresh_meanwhile or not force_refresh) and self._wall_clock() < self._refresh_at:
                return cached.reveal()
            return (await self._mint(reason="forced" if force_refresh else "due")).reveal()

    async def chain_id(self) -> str:
        """``starknet_chain_id`` from ``GET /v1/system/config`` (read once, then cached)."""
        if self._chain_id is None:
            async with self._client() as client:
                self._chain_id = await self._fetch_chain_id(client)
        return self._chain_id

    # -- minting ------------------------------------------------------------------------

    def _client(self) -> _ClientScope:
        return _ClientScope(self._http, self._timeout)

    async def _mint(self, *, reason: str) -> Secret:
        async with self._client() as client:
            if self._chain_id is None:
                self._chain_id = await self._fetch_chain_id(client)
            chain_id = self._chain_id
            timestamp = int(self._wall_clock())
            expiration = timestamp + self._signature_ttl
            # Signing takes ~0.1 s of CPU: keep it off the event loop (the WS reader must not stall).
            headers = await anyio.to_thread.run_sync(self._signed_headers, chain_id, timestamp, expiration)
            url = f"{self._rest_url}/auth/{self.public_key}"
            response = await self._send(client, "POST", url, headers)
        token = self._read_token(response)
        minted_at = self._wall_clock()
        usable, basis = usable_for(
            token.reveal(), minted_at=minted_at, refresh_after=self._refresh_after, refresh_margin=self._refresh_margin
        )
        self._cached = token
        self._refresh_at = minted_at + usable
        self._mints += 1
        logger.info(
            "minted a Paradex JWT for account %s with key %s (%s; %s; refresh in %.3g s)",
            self._account,
            self.public_key,
            reason,
            basis,
            usable,
        )
        return token

    def _signed_headers(self, chain_id: str, timestamp: int, expiration: int) -> dict[str, str]:
        message_hash = auth_message_hash(
            account=self._account, chain_id=chain_id, timestamp=timestamp, expiration=expiration
        )
        r, s = _sign(message_hash, int(self._private_key.reveal(), 16))
        return {
            "Accept": "application/json",
            "PARADEX-STARKNET-ACCOUNT": self._account,
            "PARADEX-STARKNET-SIGNATURE": json.dumps([str(r), str(s)]),
            "PARADEX-TIMESTAMP": str(timestamp),
            "PARADEX-SIGNATURE-EXPIRATION": str(expiration),
        }

    async def _fetch_chain_id(self, client: httpx.AsyncClient) -> str:
        response = await self._send(client, "GET", f"{self._rest_url}/system/config", {"Accept": "application/json"})
        payload = self._json(response, "GET /system/config")
        chain_id = payload.get("starknet_chain_id") if isinstance(payload, dict) else None
        if not is_nonempty_str(chain_id) or not isinstance(chain_id, str):
            raise VenueError("GET /system/config: Paradex sent no starknet_chain_id (a non-empty str)")
        try:
            _chain_id_felt(chain_id)
        except UsageError as exc:
            raise VenueError(f"GET /system/config: unusable starknet_chain_id: {exc}") from exc
        logger.debug("Paradex starknet_chain_id is %r", chain_id[:80])
        return chain_id

    def _clean(self, text: str, *signature: str) -> str:
        """``text`` without the key (in the forms it is written) or the request's signature.

        The venue never sees the key, but it sees the signature, and may quote it back; a
        signature mints JWTs until it expires (API.md §2.3).
        """
        return redact(text, *self._secrets(signature))

    def _secrets(self, signature: tuple[str, ...]) -> tuple[str, ...]:
        key = self._private_key.reveal()
        return (key, key[2:], str(int(key, 16)), *signature)

    async def _send(self, client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
        what = f"{method} {url.removeprefix(self._rest_url)}"
        signature = _signature_parts(headers)
        try:
            response = await client.request(method, url, headers=headers)
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(f"{what}: Paradex did not answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise TransportError(
                f"{what}: connection to Paradex failed ({type(exc).__name__}: {self._clean(str(exc), *signature)})"
            ) from exc
        status = response.status_code
        logger.debug("%s -> HTTP %d", what, status)
        if 200 <= status < 300:
            return response
        from_api = True
        try:
            code, message = parse_error_body(decode_json(response.content))
        except ParseError:
            code, message, from_api = None, None, False
        code = self._clean(code, *signature) if code else None
        if message:
            detail = self._clean(message, *signature)
        elif from_api:
            detail = "no error message"
        else:  # an HTML page from a proxy, a CDN or a wrong URL: show what it was
            detail = f"a body that is not JSON: {body_excerpt(response.content, *self._secrets(signature))}"
        text = f"{what}: Paradex answered HTTP {status}" + (f" {code}" if code else "") + f": {detail}"
        if status == 429:
            retry_after = _seconds_header(response.headers.get("Retry-After"))
            raise RateLimitedError(text, code=code, status=status, retry_after=retry_after)
        if status >= 500 or method != "POST":
            raise VenueError(text, code=code, status=status)
        raise AuthenticationError(self._explain(code, text, from_api=from_api), code=code, status=status)

    def _explain(self, code: str | None, text: str, *, from_api: bool) -> str:
        if code == "GEO_IP_BLOCK":
            return f"POST /auth: {GEO_BLOCK_MESSAGE}"
        if code == "NOT_ONBOARDED":
            return (
                f"{text}. Account {self._account} has not been onboarded on Paradex: onboard it once "
                "(connect it in the Paradex app, or call POST /v1/onboarding, e.g. with paradex-py), then retry"
            )
        if not from_api:
            return (
                f"{text}. That is not an answer from Paradex's API: check rest_url ({shown_url(self._rest_url)}), "
                "and any proxy or firewall between here and Paradex"
            )
        if code in _SIGNATURE_CODES or code is None:
            return (
                f"{text}. Paradex did not accept the signature made with public key {self.public_key} for account "
                f"{self._account} (chain {self._chain_id!r}): check that the key (or subkey) belongs to that account "
                "and that the local clock is right"
            )
        return text

    def _json(self, response: httpx.Response, what: str) -> object:
        try:
            return decode_json(response.content)
        except ParseError as exc:
            raise VenueError(f"{what}: Paradex sent a body that is not JSON (HTTP {response.status_code})") from exc

    def _read_token(self, response: httpx.Response) -> Secret:
        payload = self._json(response, "POST /auth")
        token = payload.get("jwt_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise VenueError("POST /auth: Paradex answered without a jwt_token (a non-empty str)")
        return Secret(token)


class _ClientScope:
    """The injected client as is, or a fresh one closed after use."""

    __slots__ = ("_given", "_own", "_timeout")

    def __init__(self, given: httpx.AsyncClient | None, timeout: float) -> None:
        self._given = given
        self._timeout = timeout
        self._own: httpx.AsyncClient | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        self._own = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 10.0)),
            headers={"User-Agent": _USER_AGENT},
            follow_redirects=False,
        )
        return self._own

    async def __aexit__(self, *exc_info: object) -> None:
        if self._own is not None:
            with anyio.CancelScope(shield=True):
                await self._own.aclose()


def _seconds_header(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())  # float ok: seconds, not money
    except ValueError:
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _signature_parts(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The signature's ``r`` and ``s`` in the forms a venue may quote them (decimal, hex), for redaction."""
    sent = headers.get("PARADEX-STARKNET-SIGNATURE")
    if sent is None:
        return ()
    parts = [str(p) for p in json.loads(sent)]
    forms = (*parts, *(hex(int(p)) for p in parts if p.isdigit()))
    # A real r or s is a ~250-bit number; a short one (a test's stand-in) would redact plain digits.
    return tuple(form for form in forms if len(form) >= _MIN_SIGNATURE_CHARS)


def _check_signature_ttl(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 604_800:
        raise UsageError(f"signature_ttl must be an int of seconds within 1..604800 (a week), got {value!r}")


def _is_http_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _rest_url(env: str | None, rest_url: str | None) -> str:
    if rest_url is None:
        if env is None:
            raise UsageError("env=None (a custom venue) needs rest_url")
        found = ENVIRONMENTS.get(env)
        if found is None:
            known = ", ".join(repr(name) for name in ENVIRONMENTS)
            raise UsageError(f"unknown Paradex environment {env!r}; expected one of {known}, or rest_url")
        rest_url = found[0]
    if not _is_http_url(rest_url):
        raise UsageError(f"rest_url must start with http:// or https://, got {rest_url!r}")
    return rest_url.rstrip("/")
