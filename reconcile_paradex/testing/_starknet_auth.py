"""``POST /v1/auth[/{public_key}]``: the simulator mints JWTs for Starknet-signed requests.

The simulator rebuilds the signed typed data (API.md §2.2) from the request
headers itself, with starknet-py (extra ``reconcile-trading[starknet]``),
and checks, in this order:

* the headers are there and well formed (400 ``VALIDATION_ERROR``; a
  signature that is not ``["<r>","<s>"]``: 400 ``INVALID_STARKNET_SIGNATURE``);
* the account is one of the simulator's (else 400 ``NOT_ONBOARDED``);
* the public key (from the path, or the account's main key for plain
  ``/v1/auth``) is registered for that account (else 401
  ``STARKNET_SIGNATURE_VERIFICATION_FAILED``), and, for a subkey, not revoked
  (else 401 ``INVALID_SUBKEY``);
* the timestamp is not ahead of the virtual clock by more than
  ``max_clock_skew_ms`` (400 ``INVALID_TIMESTAMP``), the expiration is after
  the timestamp and at most a week later (400 ``INVALID_REQUEST_PARAMETER``),
  and not passed (401 ``INVALID_STARKNET_SIGNATURE``, "signature expired");
* the signature verifies against the public key (else 401
  ``STARKNET_SIGNATURE_VERIFICATION_FAILED``).

Then ``{"jwt_token": ...}`` comes from the simulator's token authority, valid
for ``jwt_ttl_ms`` of virtual time. The simulator requires
``PARADEX-SIGNATURE-EXPIRATION`` (Paradex's default for it is not
documented well enough to copy). Fault injection does not apply here.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

import attrs

from reconcile_core.errors import UsageError

from ._context import Receive, Scope, Send, ServerContext
from ._rest import SYSTEM_CONFIG

__all__ = ["EC_ORDER", "JWT_TTL_MS", "StarknetKeyRegistry", "handle_starknet_auth", "is_starknet_auth"]

#: Paradex JWTs live five minutes.
JWT_TTL_MS: Final = 300_000
#: ``PARADEX-SIGNATURE-EXPIRATION`` may be at most a week after the timestamp (spec).
MAX_SIGNATURE_TTL_S: Final = 7 * 24 * 3600
_INSTALL_HINT: Final = "pip install 'reconcile-trading[starknet]'"
#: The order of the Stark curve: private keys and signature values are below it.
EC_ORDER: Final = 0x800000000000010FFFFFFFFFFFFFFFFB781126DCAE7B2321E66A241ADC64D2F
_MAX_HEADER_CHARS: Final = 400


def _starknet() -> Any:
    """The starknet-py functions the verification needs; ``UsageError`` naming the extra if absent."""
    try:
        from starknet_py.cairo.felt import encode_shortstring
        from starknet_py.hash.utils import private_to_stark_key, verify_message_signature
        from starknet_py.utils.typed_data import TypedData
    except (ImportError, OSError) as exc:
        raise UsageError(f"Starknet auth in the simulator needs starknet-py: {_INSTALL_HINT}") from exc
    return encode_shortstring, private_to_stark_key, verify_message_signature, TypedData


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hex_int(value: int | str, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.lower().startswith("0x"):
        try:
            number = int(value, 16)
        except ValueError:
            raise UsageError(f"{what} must be hex ('0x...'), got {value[:80]!r}") from None
    else:
        raise UsageError(f"{what} must be an int or a hex str, got {value!r}")
    if not 0 < number < 2**251:
        raise UsageError(f"{what} {hex(number)} is out of range")
    return number


@attrs.frozen
class _Key:
    account: str
    subkey: bool
    revoked: bool = False


class StarknetKeyRegistry:
    """Which Starknet public keys sign for which simulated account, and the JWT lifetime. Thread-safe."""

    def __init__(self, accounts: tuple[str, ...], *, jwt_ttl_ms: int = JWT_TTL_MS) -> None:
        # Accounts that are not Starknet addresses (a test may name them "alice") cannot use key auth.
        parsed = ((_parse_hex(account), account) for account in accounts)
        self._accounts = {number: account for number, account in parsed if number is not None}
        self._lock = threading.Lock()
        self._keys: dict[int, _Key] = {}
        self._counts: Counter[str] = Counter()
        self.jwt_ttl_ms = jwt_ttl_ms
        #: How far ``PARADEX-TIMESTAMP`` may be ahead of the virtual clock.
        self.max_clock_skew_ms = 60_000

    def __repr__(self) -> str:
        return f"StarknetKeyRegistry(keys={len(self._keys)}, jwt_ttl_ms={self.jwt_ttl_ms})"

    @property
    def jwt_ttl_ms(self) -> int:
        return self._jwt_ttl_ms

    @jwt_ttl_ms.setter
    def jwt_ttl_ms(self, value: int) -> None:
        if not _is_int(value) or value <= 0:
            raise UsageError(f"jwt_ttl_ms must be an int > 0, got {value!r}")
        self._jwt_ttl_ms = value

    def register(self, account: str, public_key: int | str, *, subkey: bool = False) -> None:
        _starknet()  # fail now, naming the extra, rather than at the first request
        number = _parse_hex(account) if _is_str(account) else None
        if number is None:
            raise UsageError(f"account {account!r} is not a Starknet address ('0x...'): key auth needs one")
        address = self._accounts.get(number)
        if address is None:
            raise UsageError(f"unknown account {account!r}")
        key = _hex_int(public_key, "public_key")
        with self._lock:
            known = self._keys.get(key)
            if known is not None and (known.account != address or known.subkey != subkey):
                raise UsageError(f"public key {hex(key)} is already registered for {known.account}")
            if not subkey:
                main = self._main_key(address)
                if main is not None and main != key:
                    raise UsageError(f"account {address} already has the main key {hex(main)}")
            self._keys[key] = _Key(account=address, subkey=subkey)

    def register_private_key(self, account: str, private_key: int, *, subkey: bool = False) -> int:
        """Register the public key of ``private_key``; return that public key."""
        if not _is_int(private_key) or not 0 < private_key < EC_ORDER:
            raise UsageError("private_key must be an int within the Stark curve's order (value not shown)")
        _, private_to_stark_key, _, _ = _starknet()
        public_key = int(private_to_stark_key(private_key))
        self.register(account, public_key, subkey=subkey)
        return public_key

    def revoke(self, public_key: int | str) -> None:
        key = _hex_int(public_key, "public_key")
        with self._lock:
            known = self._keys.get(key)
            if known is None:
                raise UsageError(f"public key {hex(key)} is not registered")
            self._keys[key] = attrs.evolve(known, revoked=True)

    def counts(self) -> dict[str, int]:
        """Outcomes of ``POST /v1/auth`` so far: ``"ok"`` and the error codes."""
        with self._lock:
            return dict(self._counts)

    def _main_key(self, account: str) -> int | None:
        for key, entry in self._keys.items():
            if entry.account == account and not entry.subkey:
                return key
        return None

    def _count(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1

    # -- the request ---------------------------------------------------------------

    def authenticate(self, context: ServerContext, path_key: str | None, headers: Mapping[str, str]) -> tuple[int, Any]:
        """The status and JSON body answering one auth request."""
        status, body = self._authenticate(context, path_key, headers)
        self._count("ok" if status == 200 else str(body.get("error")))
        return status, body

    def _authenticate(
        self, context: ServerContext, path_key: str | None, headers: Mapping[str, str]
    ) -> tuple[int, Any]:
        encode_shortstring, _, verify_message_signature, typed_data = _starknet()
        raw_account = headers.get("paradex-starknet-account")
        raw_signature = headers.get("paradex-starknet-signature")
        raw_timestamp = headers.get("paradex-timestamp")
        raw_expiration = headers.get("paradex-signature-expiration")
        missing = [
            name
            for name, value in (
                ("PARADEX-STARKNET-ACCOUNT", raw_account),
                ("PARADEX-STARKNET-SIGNATURE", raw_signature),
                ("PARADEX-TIMESTAMP", raw_timestamp),
                ("PARADEX-SIGNATURE-EXPIRATION", raw_expiration),
            )
            if not value
        ]
        if missing or raw_account is None or raw_signature is None or raw_timestamp is None or raw_expiration is None:
            return _error(400, "VALIDATION_ERROR", f"missing header(s): {', '.join(missing)}")
        account_int = _parse_hex(raw_account)
        timestamp = _parse_decimal(raw_timestamp)
        expiration = _parse_decimal(raw_expiration)
        if account_int is None:
            return _error(400, "VALIDATION_ERROR", "PARADEX-STARKNET-ACCOUNT must be a hex address")
        if timestamp is None or expiration is None:
            return _error(
                400, "VALIDATION_ERROR", "PARADEX-TIMESTAMP and PARADEX-SIGNATURE-EXPIRATION must be integers"
            )
        signature = _parse_signature(raw_signature)
        if signature is None:
            return _error(400, "INVALID_STARKNET_SIGNATURE", 'the signature must be ["<r>","<s>"] in decimal')
        account = self._accounts.get(account_int)
        if account is None:
            return _error(400, "NOT_ONBOARDED", "User has never called /onboarding endpoint")
        with self._lock:
            if path_key is None:
                public_key = self._main_key(account)
            else:
                public_key = _parse_hex(path_key)
                if public_key is None:
                    return _error(400, "VALIDATION_ERROR", "the public key in the path must be hex")
            entry = None if public_key is None else self._keys.get(public_key)
        if public_key is None or entry is None or entry.account != account:
            return _error(
                401, "STARKNET_SIGNATURE_VERIFICATION_FAILED", "the public key is not a signer of this account"
            )
        if entry.revoked:
            return _error(401, "INVALID_SUBKEY" if entry.subkey else "UNAUTHORIZED_ERROR", "the key was revoked")
        now_ms = context.now()
        if timestamp * 1000 > now_ms + self.max_clock_skew_ms:
            return _error(400, "INVALID_TIMESTAMP", "the timestamp is in the future")
        if not timestamp < expiration <= timestamp + MAX_SIGNATURE_TTL_S:
            return _error(
                400, "INVALID_REQUEST_PARAMETER", "the signature expiration must be after the timestamp, within a week"
            )
        if expiration * 1000 <= now_ms:
            return _error(401, "INVALID_STARKNET_SIGNATURE", "signature expired")
        chain_id = _chain_id()
        document = {
            "domain": {"name": "Paradex", "chainId": hex(encode_shortstring(chain_id)), "version": "1"},
            "primaryType": "Request",
            "types": {
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
            },
            "message": {
                "method": "POST",
                "path": "/v1/auth",
                "body": "",
                "timestamp": timestamp,
                "expiration": expiration,
            },
        }
        try:
            message_hash = typed_data.from_dict(document).message_hash(account_int)
            valid = bool(verify_message_signature(message_hash, list(signature), public_key))
        except (ValueError, ArithmeticError):
            valid = False
        if not valid:
            return _error(401, "STARKNET_SIGNATURE_VERIFICATION_FAILED", "signature verification failed")
        token = context.authority.issue(account, now=now_ms, ttl_ms=self._jwt_ttl_ms, read_only=False)
        return 200, {"jwt_token": token}


def _chain_id() -> str:
    chain_id = SYSTEM_CONFIG["starknet_chain_id"]
    assert isinstance(chain_id, str)
    return chain_id


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": code, "message": message, "data": None}


def _parse_hex(text: str) -> int | None:
    text = text.strip()
    if not text.lower().startswith("0x") or len(text) > 70:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value if 0 < value < 2**251 else None


def _parse_decimal(text: str) -> int | None:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        return None
    return int(text)


def _parse_signature(text: str) -> tuple[int, int] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or len(value) != 2:
        return None
    numbers = []
    for part in value:
        if not isinstance(part, str):
            return None
        number = _parse_hex(part) if part.lower().startswith("0x") else _parse_decimal_felt(part)
        if number is None or not 0 < number < EC_ORDER:
            return None
        numbers.append(number)
    return numbers[0], numbers[1]


def _parse_decimal_felt(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 80:
        return None
    return int(text)


def is_starknet_auth(scope: Scope) -> bool:
    """True for ``POST /v1/auth`` and ``POST /v1/auth/{public_key}``."""
    if scope.get("method") != "POST":
        return False
    path: str = scope.get("path", "")
    parts = path.rstrip("/").split("/")
    return parts[:3] == ["", "v1", "auth"] and len(parts) <= 4


async def handle_starknet_auth(
    context: ServerContext, registry: StarknetKeyRegistry, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve one ``POST /v1/auth[/{public_key}]`` request."""
    while True:  # the request body (there is none) must be read
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        headers[name.decode("latin-1").lower()] = value.decode("latin-1")[:_MAX_HEADER_CHARS]
    parts = scope.get("path", "").rstrip("/").split("/")
    status, body = registry.authenticate(context, parts[3] if len(parts) == 4 else None, headers)
    data = json.dumps(body, separators=(",", ":")).encode()
    response_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": data})
