"""The library's exceptions: one root, split by who is to blame.

* :class:`UsageError` — the caller broke a precondition (local misuse).
* :class:`VenueError` — the venue refused us or sent something impossible.
* :class:`TransportError` — the network failed: connect errors, timeouts, drops.
* :class:`LedgerError` — the durable ledger cannot be opened or written.
* :class:`PluginError` — a venue plugin cannot be found, loaded or used.

Exceptions of httpx, wsproto, anyio or sqlite3 never cross the public
boundary: plugins and ledgers map them once, chaining the original with
``raise ... from exc``. Messages never contain secrets.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConnectionLostError",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerLockedError",
    "LedgerSchemaError",
    "LedgerWriteError",
    "NotFoundError",
    "ParseError",
    "PluginError",
    "PluginLoadError",
    "PluginNotFoundError",
    "PluginValidationError",
    "RateLimitedError",
    "ReconcileError",
    "TimeoutError",
    "TransportError",
    "UsageError",
    "VenueError",
]


class ReconcileError(Exception):
    """Root of every exception this library raises on purpose."""


class UsageError(ReconcileError):
    """The caller used the API wrongly (bad argument, closed session, ...)."""


class VenueError(ReconcileError):
    """The venue refused a request or sent something impossible.

    ``code`` is the venue's own error code when it sent one.
    """

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class AuthenticationError(VenueError):
    """The venue rejected our credentials (expired, invalid, geo-blocked, ...)."""


class NotFoundError(VenueError):
    """The venue says the requested object does not exist."""


class RateLimitedError(VenueError):
    """The venue kept rate-limiting us after the allowed retries.

    ``retry_after`` is the venue's advice in seconds, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class ParseError(VenueError):
    """A venue payload could not be turned into library types.

    ``field`` names the offending field when one is to blame.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TransportError(ReconcileError):
    """The network failed: connection refused or reset, TLS, timeouts."""


class TimeoutError(TransportError):  # noqa: A001 - the library's own, distinct from the builtin
    """A request or connection attempt took too long."""


class ConnectionLostError(TransportError):
    """An established stream connection closed or broke."""


class LedgerError(ReconcileError):
    """The durable fill ledger cannot be used. ``path`` names the file."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class LedgerCorruptError(LedgerError):
    """The ledger file is not a ledger, or it is damaged."""


class LedgerLockedError(LedgerError):
    """Another process holds the ledger."""


class LedgerSchemaError(LedgerError):
    """The ledger was written by a newer version of this library."""


class LedgerWriteError(LedgerError):
    """Writing the ledger failed (read-only location, full disk, ...)."""


class PluginError(ReconcileError):
    """A venue plugin is missing, broken or ambiguous."""


class PluginNotFoundError(PluginError, LookupError):
    """No installed plugin has the requested name."""


class PluginLoadError(PluginError):
    """The plugin's entry point failed to import."""


class PluginValidationError(PluginError):
    """The plugin loaded, but its object does not satisfy the venue protocol."""
