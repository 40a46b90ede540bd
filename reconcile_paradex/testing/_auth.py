"""JWT-shaped bearer tokens, issued and checked in virtual time.

Tokens are real three-part JWTs (HS256 over a key derived from the seed),
so a client can decode ``exp`` as it would for Paradex. Expiry is judged on
the simulator's virtual clock, at millisecond precision (a private
``sim_exp_ms`` claim); ``exp`` is that time in whole seconds, rounded down.
Token values never appear in messages, reprs or logs.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import threading

import attrs

__all__ = ["AuthOutcome", "AuthResult", "TokenAuthority", "go_duration"]


class AuthOutcome(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    REVOKED = "revoked"


@attrs.frozen
class AuthResult:
    outcome: AuthOutcome
    account: str = ""
    read_only: bool = False
    expired_by_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK

    def rest_message(self) -> str:
        """The 401 body's ``message``, worded like Paradex's JWT middleware."""
        if self.outcome is AuthOutcome.MISSING:
            return "missing or malformed jwt"
        if self.outcome is AuthOutcome.MALFORMED:
            return "missing or malformed jwt: token is malformed: could not decode the token"
        if self.outcome is AuthOutcome.BAD_SIGNATURE:
            return "missing or malformed jwt: token signature is invalid: signature is invalid"
        if self.outcome is AuthOutcome.EXPIRED:
            return f"missing or malformed jwt: token is expired by {go_duration(self.expired_by_ms)}"
        return "invalid or expired jwt"

    def ws_error(self) -> tuple[int, str]:
        """The JSON-RPC error of a failed WS ``auth``: 40110 malformed, else 40111."""
        if self.outcome in (AuthOutcome.MISSING, AuthOutcome.MALFORMED):
            return 40110, "Malformed Bearer Token"
        return 40111, "Invalid Bearer Token"


def go_duration(ms: int) -> str:
    """``ms`` written like Go's ``time.Duration.String`` (``"9.468s"``, ``"250ms"``, ``"1m2s"``)."""
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    text = f"{seconds}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Mints and verifies the simulator's bearer tokens. Thread-safe."""

    def __init__(self, key: bytes, accounts: tuple[str, ...]) -> None:
        self._key = key
        self._accounts = frozenset(accounts)
        self._lock = threading.Lock()
        self._issued = 0
        self._revoked: set[str] = set()

    def __repr__(self) -> str:
        return f"TokenAuthority(accounts={len(self._accounts)}, issued={self._issued})"

    def issue(self, account: str, *, now: int, ttl_ms: int, read_only: bool) -> str:
        with self._lock:
            self._issued += 1
            serial = self._issued
        expires_at = now + ttl_ms
        header = {"alg": "HS256", "typ": "at+JWT"}
        claims = {
            "exp": expires_at // 1000,
            "iat": now // 1000,
            "iss": "Paradex simulator",
            "sub": account,
            "jti": str(serial),
            "token_usage": "readonly" if read_only else "trading",
            "sim_exp_ms": expires_at,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def revoke(self, token: str) -> None:
        with self._lock:
            self._revoked.add(hashlib.sha256(token.encode()).hexdigest())

    def check(self, token: str | None, *, now: int) -> AuthResult:
        if not token:
            return AuthResult(AuthOutcome.MISSING)
        parts = token.split(".")
        if len(parts) != 3:
            return AuthResult(AuthOutcome.MALFORMED)
        try:
            signature = _unb64(parts[2])
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            return AuthResult(AuthOutcome.MALFORMED)
        if not isinstance(claims, dict):
            return AuthResult(AuthOutcome.MALFORMED)
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode("ascii", "replace"), hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            return AuthResult(AuthOutcome.BAD_SIGNATURE)
        account = claims.get("sub")
        expires_at = claims.get("sim_exp_ms")
        if not isinstance(account, str) or not isinstance(expires_at, int) or account not in self._accounts:
            return AuthResult(AuthOutcome.BAD_SIGNATURE)
        with self._lock:
            if hashlib.sha256(token.encode()).hexdigest() in self._revoked:
                return AuthResult(AuthOutcome.REVOKED)
        if now >= expires_at:
            return AuthResult(AuthOutcome.EXPIRED, account=account, expired_by_ms=now - expires_at)
        return AuthResult(AuthOutcome.OK, account=account, read_only=claims.get("token_usage") == "readonly")
