"""Map ``sqlite3`` exceptions to :mod:`reconcile_core.errors`, once, at the ledger boundary."""

from __future__ import annotations

import sqlite3

from .errors import (
    LedgerCorruptError,
    LedgerError,
    LedgerLockedError,
    LedgerWriteError,
)

__all__ = ["translate"]

# Primary result codes (https://sqlite.org/rescode.html).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

_BY_CODE: dict[int, tuple[type[LedgerError], str]] = {
    _SQLITE_BUSY: (LedgerLockedError, "the database is locked by another connection"),
    _SQLITE_LOCKED: (LedgerLockedError, "the database is locked by another connection"),
    _SQLITE_READONLY: (LedgerWriteError, "the file or its directory is read-only"),
    _SQLITE_IOERR: (LedgerWriteError, "the operating system reported an I/O error (is the disk full?)"),
    _SQLITE_FULL: (LedgerWriteError, "the disk (or the ledger's size limit) is full"),
    _SQLITE_CANTOPEN: (LedgerWriteError, "the file cannot be opened or created"),
    _SQLITE_CORRUPT: (LedgerCorruptError, "the file is damaged"),
    _SQLITE_NOTADB: (LedgerCorruptError, "the file is not an SQLite database"),
}

# Fallbacks for exceptions raised without a result code.
_BY_TEXT: tuple[tuple[str, int], ...] = (
    ("locked", _SQLITE_BUSY),
    ("readonly", _SQLITE_READONLY),
    ("read-only", _SQLITE_READONLY),
    ("disk is full", _SQLITE_FULL),
    ("disk i/o", _SQLITE_IOERR),
    ("unable to open", _SQLITE_CANTOPEN),
    ("malformed", _SQLITE_CORRUPT),
    ("not a database", _SQLITE_NOTADB),
)


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(exc).lower()
    for needle, fallback in _BY_TEXT:
        if needle in text:
            return fallback
    return None


def translate(exc: sqlite3.Error, *, path: str, action: str) -> LedgerError:
    """The library error for ``exc``, raised while trying to ``action``.

    The caller raises it ``from exc``. The message names the file, says what
    was attempted and why it failed; it never contains row data.
    """
    code = _primary_code(exc)
    cls, reason = _BY_CODE.get(code if code is not None else -1, (LedgerError, "SQLite failed"))
    return cls(f"fill ledger {path!r}: cannot {action}: {reason} (sqlite3: {exc})", path=path)
