"""The SQLite ledger's schema: ordered migrations, keyed by ``PRAGMA user_version``.

``MIGRATIONS[n]`` brings a file from schema version ``n`` to ``n + 1``. A new
version appends a migration; it never edits an old one. A file whose
``user_version`` is above :data:`SCHEMA_VERSION` was written by a newer
release and is refused.

Layout (version 1):

* ``accounts`` numbers each (venue, account) pair once, so the wide key
  strings are stored once instead of in every row.
* ``fills`` holds every recorded fill. Its primary key is the whole
  :class:`~reconcile_core.FillKey` (the account number standing for venue and
  account). Decimals are TEXT (``str(Decimal)``), which round-trips exactly.
  ``delivery_offset`` is ``NULL`` for a fill recorded after its bust.
* ``conflicts`` remembers (key, canonical content) of every conflicting
  sighting, so the same conflict is reported once.
* ``busts`` holds the tombstones; ``busted_type`` names the first fill the bust
  reverted, if one was recorded before it.
* ``outbox`` lists the offsets not yet acknowledged; a row with a ``NULL``
  ``fill_type`` is a bust.
* ``order_totals`` keeps the recorded quantity per order, so
  ``recorded_quantity`` is one indexed read.
* ``watermarks`` holds "REST is complete up to T" per account and scope.
* ``ledger_meta`` holds ``next_offset``: offsets are never reused, even after
  every outbox row was acknowledged and deleted.

Version 2 adds:

* ``live_orders``: the orders the reconciler last knew live, per account
  (id, client id, instrument, creation time), so that a new process looks
  up the ones that ended while no process was watching.
"""

from __future__ import annotations

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION"]

#: ``PRAGMA application_id`` of a ledger file ("RCLG"): tells a ledger apart
#: from any other SQLite database.
APPLICATION_ID = 0x52434C47

_V1: tuple[str, ...] = (
    """
    CREATE TABLE ledger_meta (
        name TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    "INSERT INTO ledger_meta (name, value) VALUES ('next_offset', 1)",
    """
    CREATE TABLE accounts (
        aid INTEGER PRIMARY KEY,
        venue TEXT NOT NULL,
        account TEXT NOT NULL,
        UNIQUE (venue, account)
    )
    """,
    """
    CREATE TABLE fills (
        aid INTEGER NOT NULL,
        fill_id TEXT NOT NULL,
        fill_type TEXT NOT NULL,
        delivery_offset INTEGER,
        kind TEXT NOT NULL,
        order_id TEXT,
        instrument TEXT NOT NULL,
        side TEXT NOT NULL,
        price TEXT NOT NULL,
        size TEXT NOT NULL,
        fee TEXT NOT NULL,
        fee_currency TEXT NOT NULL,
        liquidity TEXT NOT NULL,
        time INTEGER NOT NULL,
        source TEXT NOT NULL,
        client_id TEXT,
        realized_pnl TEXT,
        PRIMARY KEY (aid, fill_id, fill_type)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE conflicts (
        aid INTEGER NOT NULL,
        fill_id TEXT NOT NULL,
        fill_type TEXT NOT NULL,
        content TEXT NOT NULL,
        PRIMARY KEY (aid, fill_id, fill_type, content)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE busts (
        aid INTEGER NOT NULL,
        fill_id TEXT NOT NULL,
        time INTEGER NOT NULL,
        source TEXT NOT NULL,
        delivery_offset INTEGER NOT NULL,
        busted_type TEXT,
        PRIMARY KEY (aid, fill_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE outbox (
        delivery_offset INTEGER PRIMARY KEY,
        aid INTEGER NOT NULL,
        fill_id TEXT NOT NULL,
        fill_type TEXT
    )
    """,
    "CREATE INDEX outbox_by_account ON outbox (aid, delivery_offset)",
    """
    CREATE TABLE order_totals (
        aid INTEGER NOT NULL,
        order_id TEXT NOT NULL,
        quantity TEXT NOT NULL,
        PRIMARY KEY (aid, order_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE watermarks (
        aid INTEGER NOT NULL,
        scope TEXT NOT NULL,
        value INTEGER NOT NULL,
        PRIMARY KEY (aid, scope)
    ) WITHOUT ROWID
    """,
)

_V2: tuple[str, ...] = (
    """
    CREATE TABLE live_orders (
        aid INTEGER NOT NULL,
        order_id TEXT NOT NULL,
        client_id TEXT,
        instrument TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (aid, order_id)
    ) WITHOUT ROWID
    """,
)

#: ``MIGRATIONS[n]``: the statements that bring schema version ``n`` to ``n + 1``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)

#: The schema version this code writes and understands.
SCHEMA_VERSION = len(MIGRATIONS)
