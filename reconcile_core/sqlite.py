"""The durable fill ledger on SQLite: the embedded default.

Import it explicitly (``from reconcile_core.sqlite import SqliteLedger``);
the pure :mod:`reconcile_core` never loads ``sqlite3``.

* :class:`SqliteLedger` — a :class:`~reconcile_core.typing.FillLedger` in one
  file: WAL mode, group commit, a single writer per file, bounded memory.
* :class:`LedgerStats` — what :meth:`SqliteLedger.stats` reports.
* :data:`SCHEMA_VERSION` — the file schema version this release writes.
"""

from __future__ import annotations

from ._sqlite_ledger import LedgerStats, SqliteLedger
from ._sqlite_schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "LedgerStats", "SqliteLedger"]
