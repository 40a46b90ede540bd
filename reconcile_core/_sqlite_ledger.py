"""``SqliteLedger``: the durable :class:`~reconcile_core.typing.FillLedger` on stdlib ``sqlite3``."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import attrs

from . import _sqlite_schema as schema
from ._ledger import BustResult, Delivery, OrderRef, RecordOutcome, RecordResult
from ._sqlite_codec import FILL_COLUMNS, canonical_content, decode_bust, decode_fill, encode_fill
from ._sqlite_errors import translate
from ._sqlite_lock import FileLock
from ._types import Fill, FillBust, FillKey, FillKind, Liquidity, Side, Source
from .errors import LedgerCorruptError, LedgerSchemaError, LedgerWriteError, UsageError

if TYPE_CHECKING:
    from .typing import FillLedger

__all__ = ["LedgerStats", "SqliteLedger"]

_ACCOUNT_CACHE_SIZE = 256
#: Order totals remembered in memory (about 250 bytes each, 4 MiB in all): the
#: reconciler's gap check and every recorded fill read one, answered without a query.
_ORDER_CACHE_SIZE = 16384
#: Order-total updates held back before they are written (see ``_pending_totals``).
_PENDING_TOTALS_LIMIT = 4096
_ITER_CHUNK = 512
_MAX_PROBLEMS_PER_CHECK = 20
_PAGE_CACHE_KIB = 8192

_COLS = ", ".join(FILL_COLUMNS)
_COLS_F = ", ".join(f"f.{c}" for c in FILL_COLUMNS)
_COLS_BF = ", ".join(f"bf.{c}" for c in FILL_COLUMNS)
_N = len(FILL_COLUMNS)
_BUSTED = "EXISTS (SELECT 1 FROM busts WHERE aid = ?1 AND fill_id = ?2)"
# Recording a fill is two statements (no lookup first). This one inserts the fill
# unless its key is recorded (then it changes no row: a duplicate or a conflict),
# with a delivery offset unless its fill id is busted;
_INSERT_NEW_FILL = (
    f"INSERT INTO fills (aid, fill_id, fill_type, delivery_offset, {_COLS}) "  # noqa: S608 - fixed column names
    f"VALUES (?1, ?2, ?3, CASE WHEN {_BUSTED} THEN NULL ELSE ?4 END, "
    f"{', '.join(f'?{n}' for n in range(5, 5 + _N))}) ON CONFLICT DO NOTHING"
)
# this trigger puts a fill given an offset in the outbox within the same statement.
# It is TEMP: it lives in the writer's connection, not in the file, whose schema
# and contents stay as they were. Changed rows (total_changes): 2 for a recorded
# fill, 1 for a busted one, 0 for a key recorded already.
_OUTBOX_TRIGGER = """
    CREATE TEMP TRIGGER IF NOT EXISTS ledger_fill_to_outbox AFTER INSERT ON fills
    WHEN NEW.delivery_offset IS NOT NULL
    BEGIN
        INSERT INTO outbox (delivery_offset, aid, fill_id, fill_type)
        VALUES (NEW.delivery_offset, NEW.aid, NEW.fill_id, NEW.fill_type);
    END
"""
_SELECT_FILL = f"SELECT {_COLS} FROM fills WHERE aid = ? AND fill_id = ? AND fill_type = ?"  # noqa: S608
_SELECT_FILLS_OF_ID = (
    f"SELECT fill_type, {_COLS} FROM fills WHERE aid = ? AND fill_id = ? "  # noqa: S608
    "ORDER BY delivery_offset"
)
_SELECT_UNDELIVERED = f"""
    SELECT o.delivery_offset, o.fill_id, o.fill_type, f.fill_id, {_COLS_F},
           b.time, b.source, b.busted_type, bf.fill_id, {_COLS_BF}
    FROM outbox AS o
    LEFT JOIN fills AS f
        ON o.fill_type IS NOT NULL AND f.aid = o.aid AND f.fill_id = o.fill_id AND f.fill_type = o.fill_type
    LEFT JOIN busts AS b
        ON o.fill_type IS NULL AND b.aid = o.aid AND b.fill_id = o.fill_id
    LEFT JOIN fills AS bf
        ON bf.aid = o.aid AND bf.fill_id = o.fill_id AND bf.fill_type = b.busted_type
    WHERE o.aid = ? AND o.delivery_offset > ?
    ORDER BY o.delivery_offset
    LIMIT ?
"""  # noqa: S608
_SELECT_ORDER_TOTAL = "SELECT quantity FROM order_totals WHERE aid = ? AND order_id = ?"
_UPSERT_ORDER_TOTAL = (
    "INSERT INTO order_totals (aid, order_id, quantity) VALUES (?, ?, ?) "
    "ON CONFLICT (aid, order_id) DO UPDATE SET quantity = excluded.quantity"
)
_UPSERT_LIVE_ORDER = (
    "INSERT INTO live_orders (aid, order_id, client_id, instrument, created_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (aid, order_id) DO UPDATE SET client_id = excluded.client_id, instrument = excluded.instrument, "
    "created_at = excluded.created_at"
)
_SELECT_FILL_CHUNK = (
    f"SELECT fill_id, fill_type, {_COLS} FROM fills "  # noqa: S608
    "WHERE aid = ? AND (fill_id, fill_type) > (?, ?) ORDER BY fill_id, fill_type LIMIT ?"
)


@attrs.frozen(kw_only=True)
class LedgerStats:
    """A summary of one ledger file (see :meth:`SqliteLedger.stats`)."""

    path: str
    #: The schema version of the file (``PRAGMA user_version``).
    schema_version: int
    #: (venue, account) pairs with at least one fill, bust or watermark.
    accounts: int
    #: Recorded fills, busted ones included.
    fills: int
    busts: int
    #: Outbox entries (fills and busts) not yet acknowledged.
    undelivered: int
    #: Bytes on disk: the database file plus its write-ahead log.
    file_size: int


class SqliteLedger:
    """A durable fill ledger in one SQLite file (WAL mode); the embedded default.

    ``SqliteLedger(path)`` opens the file, creating it (and migrating an older
    schema) as needed. One file holds any number of venues and accounts: both
    are part of every fill key.

    **Durability: group commit.** :meth:`record`, :meth:`bust`,
    :meth:`acknowledge` and :meth:`advance_watermark` write inside an open
    transaction; :meth:`commit` makes everything since the last commit durable
    at once (one ``fsync`` with the default ``synchronous="full"``). The
    caller's rule is **a fill is durable before it is delivered**: call
    :meth:`commit` before handing the events of a batch to the consumer. If a
    write or :meth:`commit` raises, *everything since the last successful
    commit* is rolled back, and the next :meth:`commit` raises too (so a batch
    cannot be delivered by mistake); do not deliver that batch. Delivery
    offsets only grow: committed offsets are never reused, not even after a
    crash or after every entry was acknowledged. :meth:`close` commits.

    Acknowledgements are the exception: a transaction begun by
    :meth:`acknowledge` holds acknowledgements only and commits at
    ``synchronous=NORMAL``, without an ``fsync`` (any other write first
    commits it and begins its own transaction at the configured level;
    acknowledgements written into a transaction already holding other writes
    are committed with them). A consumer commits after each batch it
    acknowledges, so this halves the ``fsync`` calls of a live session. A
    crash of the process loses no such commit (it is in the write-ahead log,
    in the operating system's cache); a power cut or an OS crash may undo the
    last ones, and those entries are then delivered again, marked as
    redeliveries, as after any crash before an acknowledgement was committed.
    Notes of ended orders (:meth:`note_orders`) are treated the same way:
    with acknowledgements only, they commit without an ``fsync``. Fills,
    busts, conflicts, watermarks, order totals and notes of live orders
    always get the configured durability.

    **One writer.** The ledger holds an exclusive lock on ``<path>.lock`` for
    its lifetime. A second ledger on the same file, in this process or any
    other, gets :class:`~reconcile_core.errors.LedgerLockedError`. Inside one
    process, every session shares one ``SqliteLedger`` instance; its methods
    are serialized by an internal lock, so it may also be called from worker
    threads.

    **Bounded memory.** Every lookup of fills, busts and the outbox goes to
    SQLite. The caches are SQLite's own page cache (8 MiB), a small map of
    account numbers and a bounded map of per-order recorded quantities (the
    hot read of the reconciler's gap check). The quantities are exact because
    this object is the file's only writer; a read-only ledger, beside a writer
    in another process, keeps none. A rollback empties both maps.

    **Errors.** ``sqlite3`` exceptions never escape: they become
    :class:`~reconcile_core.errors.LedgerError` subclasses naming the file
    (``LedgerCorruptError``, ``LedgerLockedError``, ``LedgerSchemaError``,
    ``LedgerWriteError``), chained to the original. A failed call leaves no
    partial record, and the ledger stays usable.

    ``synchronous`` is SQLite's setting: ``"full"`` (default) survives power
    loss; ``"normal"`` survives a crash of the process but may lose the last
    commits on power loss. ``timeout`` is how long to wait, in seconds, for
    another SQLite connection (a backup tool, say) to release the database.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["full", "normal"] = "full",
        timeout: float = 5.0,
        read_only: bool = False,
    ) -> None:
        if synchronous not in ("full", "normal"):
            msg = f"synchronous must be 'full' or 'normal', got {synchronous!r}"
            raise UsageError(msg)
        self._path = os.fspath(path)
        self._mutex = threading.RLock()
        self._file_lock = FileLock(ledger_path=self._path)
        self._conn: sqlite3.Connection | None = None
        self._accounts: dict[tuple[str, str], int] = {}
        # (aid, order_id) -> recorded quantity, as committed or as written by the open
        # transaction (never kept when read-only: another process writes the file).
        # Least recently used first (OrderedDict: dropping the oldest entry is O(1)).
        self._totals: OrderedDict[tuple[int, str], Decimal] = OrderedDict()
        # Order totals changed by the open transaction but not yet written to
        # order_totals: written with one executemany before commit and before any
        # other call reads the file (see _Call), dropped with a rollback. A crash
        # before the commit loses them together with the transaction, as before.
        self._pending_totals: dict[tuple[int, str], Decimal] = {}
        # Notes of live (an OrderRef) and ended (None) orders, written at the next commit.
        self._pending_notes: dict[tuple[int, str], OrderRef | None] = {}
        # Whether the last fill recorded from REST ([False]) or the stream ([True]) was
        # recorded already: then record looks the key up before it tries to insert.
        # Both orders give the same answer; the guess only picks the cheaper one (a
        # stream mostly brings new fills, a REST pass mostly fills seen on the stream).
        self._expect_known = [False, False]
        self._next_offset = 1
        self._dirty = False
        # Acknowledgement-only transactions commit without an fsync (see the class
        # docstring): _full says the configured level is FULL; _relaxed that the
        # connection may be at NORMAL now. It is set before lowering the level and
        # cleared only once FULL is restored, and any transaction but one begun by
        # acknowledge() restores FULL before its BEGIN: with _relaxed clear, or with
        # no open transaction begun by acknowledge(), every commit is at FULL.
        self._full = synchronous == "full"
        self._relaxed = False
        self._lost: str | None = None
        self._read_only = read_only
        if read_only:
            self._conn = self._open_read_only(timeout=timeout)
        else:
            self._file_lock.acquire()
            try:
                self._conn = self._open(synchronous=synchronous, timeout=timeout)
            except BaseException:
                self._file_lock.release()
                raise
        # Reused by record's two inserts: a cursor per call costs more than either's binding.
        self._cursor = self._conn.cursor()

    # -- opening --------------------------------------------------------------

    def _open(self, *, synchronous: str, timeout: float) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=64,
            )
        except sqlite3.Error as exc:
            raise translate(exc, path=self._path, action="open the file") from exc
        try:
            self._prepare(conn, synchronous)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self, *, timeout: float) -> sqlite3.Connection:
        """A reader beside the writer (WAL allows it): no lock, no migration, no writes."""
        if not Path(self._path).is_file():
            msg = f"fill ledger {self._path!r} does not exist"
            raise LedgerCorruptError(msg, path=self._path)
        uri = Path(self._path).resolve().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise translate(exc, path=self._path, action="open the file read-only") from exc
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            conn.close()
            raise translate(exc, path=self._path, action="read the file header") from exc
        if application_id != schema.APPLICATION_ID or version != schema.SCHEMA_VERSION:
            conn.close()
            msg = (
                f"fill ledger {self._path!r} cannot be read read-only: schema version {version} "
                f"(this library writes {schema.SCHEMA_VERSION}); open it once for writing to migrate it"
            )
            error_type = LedgerSchemaError if version > schema.SCHEMA_VERSION else LedgerCorruptError
            raise error_type(msg, path=self._path)
        return conn

    def _prepare(self, conn: sqlite3.Connection, synchronous: str) -> None:
        action = "read the file header"
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
            if application_id != schema.APPLICATION_ID and (application_id or version or tables):
                msg = (
                    f"fill ledger {self._path!r}: the file is an SQLite database but not a fill ledger "
                    f"(application_id {application_id:#x}, {tables} schema objects)"
                )
                raise LedgerCorruptError(msg, path=self._path)
            if version > schema.SCHEMA_VERSION:
                msg = (
                    f"fill ledger {self._path!r} has schema version {version}, but this version of the "
                    f"library knows versions up to {schema.SCHEMA_VERSION}: it was written by a newer "
                    "release; upgrade reconcile-trading to open it"
                )
                raise LedgerSchemaError(msg, path=self._path)
            action = "switch to write-ahead logging"
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                msg = f"fill ledger {self._path!r}: cannot switch to write-ahead logging (journal mode {mode!r})"
                raise LedgerWriteError(msg, path=self._path)
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            conn.execute(f"PRAGMA cache_size=-{_PAGE_CACHE_KIB}")
            if version < schema.SCHEMA_VERSION:
                action = f"migrate the schema from version {version} to {schema.SCHEMA_VERSION}"
                self._migrate(conn, version)
            action = "prepare the connection"
            conn.execute(_OUTBOX_TRIGGER)
            action = "read the next delivery offset"
            stored = conn.execute("SELECT value FROM ledger_meta WHERE name = 'next_offset'").fetchone()
            highest = conn.execute("SELECT MAX(delivery_offset) FROM outbox").fetchone()[0]
        except sqlite3.Error as exc:
            raise translate(exc, path=self._path, action=action) from exc
        if stored is None or not isinstance(stored[0], int):
            msg = f"fill ledger {self._path!r}: the next delivery offset is missing"
            raise LedgerCorruptError(msg, path=self._path)
        self._next_offset = max(stored[0], (highest or 0) + 1, 1)

    @staticmethod
    def _migrate(conn: sqlite3.Connection, version: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for migration in schema.MIGRATIONS[version:]:
                for statement in migration:
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id={schema.APPLICATION_ID:d}")
            conn.execute(f"PRAGMA user_version={schema.SCHEMA_VERSION:d}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    # -- plumbing ---------------------------------------------------------------

    @property
    def path(self) -> str:
        """The ledger file."""
        return self._path

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"<SqliteLedger {self._path!r} {state}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def read_only(self) -> bool:
        """Whether this object was opened with ``read_only=True`` (no lock, no writes)."""
        return self._read_only

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            msg = f"fill ledger {self._path!r} is closed"
            raise UsageError(msg)
        return conn

    def _forget_transaction(self, reason: str) -> None:
        """The open transaction is gone (rolled back): remember it if work was lost."""
        if self._dirty and self._lost is None:
            self._lost = f"the changes since the last commit were rolled back after an error ({reason})"
        self._dirty = False
        self._accounts.clear()  # may name accounts created by the rolled-back transaction
        self._forget_totals()  # may hold totals written by the rolled-back transaction
        self._pending_notes.clear()  # they belonged to it
        self._restore_synchronous()

    def _restore_synchronous(self) -> None:
        """Back to ``synchronous=FULL`` after an acknowledgement-only transaction ended.

        Best effort: if it fails, ``_relaxed`` stays set, and the next
        transaction that is not acknowledgement-only tries again before its
        ``BEGIN`` (and fails instead of writing at ``NORMAL``).
        """
        conn = self._conn
        if self._relaxed and conn is not None and not conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA synchronous=FULL")
                self._relaxed = False

    def _begin(self, conn: sqlite3.Connection, *, ack: bool) -> None:
        """Open a transaction: at ``synchronous=NORMAL`` if it is for acknowledgements (``ack``).

        Not after a failure not yet reported (``_lost``): the next commit rolls
        back whatever is written until then, so nothing in that transaction
        is committed at ``NORMAL``, and writes may share it as before.
        """
        if ack and self._full and self._lost is None:
            if not self._relaxed:
                self._relaxed = True  # before: if the PRAGMA fails, the level is uncertain
                conn.execute("PRAGMA synchronous=NORMAL")
        elif self._relaxed:
            conn.execute("PRAGMA synchronous=FULL")
            self._relaxed = False
        conn.execute("BEGIN IMMEDIATE")

    def _commit_acknowledgements(self, conn: sqlite3.Connection, action: str) -> None:
        """End the open acknowledgement-only transaction, so that a durable write starts its own.

        Called by a write other than :meth:`acknowledge` while a transaction
        begun by it is open: that transaction holds acknowledgements only.
        Committing it here (at ``NORMAL``) keeps the write out of it; if this
        commit fails, the acknowledgements are rolled back and the write
        raises, as any failed write does.
        """
        try:
            if self._pending_notes:
                self._flush_notes(conn)
            conn.execute("UPDATE ledger_meta SET value = ? WHERE name = 'next_offset'", (self._next_offset,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            error = translate(exc, path=self._path, action=f"commit the acknowledgements (before trying to {action})")
            self._abort(str(error))
            raise error from exc
        except Exception as exc:  # a held-back note SQLite refused
            self._abort(f"{type(exc).__name__} while committing the acknowledgements")
            msg = f"fill ledger {self._path!r}: the acknowledgements were not committed: {type(exc).__name__}"
            raise LedgerWriteError(msg, path=self._path) from exc
        self._dirty = False
        self._restore_synchronous()

    def _forget_totals(self) -> None:
        self._totals.clear()
        self._pending_totals.clear()

    def _abort(self, reason: str) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        self._forget_transaction(reason)

    def _writing(self, action: str, subject: object = "", *, flush: bool = True, ack: bool = False) -> _Call:
        """A write inside the open transaction; on any failure the transaction is rolled back.

        ``ack``: the write is an acknowledgement, which may open a transaction
        that commits without an fsync; any other write keeps the configured level.
        """
        return _Call(self, action, subject, write=True, flush=flush, ack=ack)

    def _reading(self, action: str, subject: object = "", *, flush: bool = True) -> _Call:
        return _Call(self, action, subject, write=False, flush=flush, ack=False)

    def _flush_totals(self, conn: sqlite3.Connection) -> None:
        """Write the held-back order totals (inside the open transaction)."""
        pending = self._pending_totals
        if not conn.in_transaction:
            # Their transaction ended behind this object's back (only someone else using
            # the connection can do that): never write them outside it.
            self._forget_totals()
            return
        conn.executemany(_UPSERT_ORDER_TOTAL, [(aid, order_id, str(q)) for (aid, order_id), q in pending.items()])
        pending.clear()

    def _flush_notes(self, conn: sqlite3.Connection) -> None:
        """Write the held-back notes of live and ended orders (inside the open transaction)."""
        notes, self._pending_notes = self._pending_notes, {}
        live = [
            (aid, ref.order_id, ref.client_id, ref.instrument, ref.created_at)
            for (aid, _), ref in notes.items()
            if ref is not None
        ]
        ended = [key for key, ref in notes.items() if ref is None]
        if live:
            conn.executemany(_UPSERT_LIVE_ORDER, live)
        if ended:
            conn.executemany("DELETE FROM live_orders WHERE aid = ? AND order_id = ?", ended)

    def _remember_total(self, key: tuple[int, str], total: Decimal) -> None:
        totals = self._totals
        if key in totals:
            totals.move_to_end(key)
        elif len(totals) >= _ORDER_CACHE_SIZE:
            totals.popitem(last=False)  # the least recently used
        totals[key] = total

    def _order_total(self, conn: sqlite3.Connection, aid: int, order_id: str) -> Decimal:
        """The recorded quantity of one order: remembered, held back, or read (then remembered)."""
        key = (aid, order_id)
        total = self._totals.get(key)
        if total is not None:
            self._totals.move_to_end(key)
            return total
        total = self._pending_totals.get(key)  # evicted from _totals but not written yet
        if total is None:
            row = conn.execute(_SELECT_ORDER_TOTAL, key).fetchone()
            try:
                total = Decimal(0) if row is None else Decimal(row[0])
            except (ArithmeticError, TypeError, ValueError) as exc:
                msg = f"fill ledger {self._path!r}: the recorded quantity of order {order_id!r} is unreadable"
                raise LedgerCorruptError(msg, path=self._path) from exc
        if not self._read_only:
            self._remember_total(key, total)
        return total

    def _account_id(self, conn: sqlite3.Connection, venue: str, account: str, *, create: bool) -> int | None:
        cache_key = (venue, account)
        aid = self._accounts.get(cache_key)
        if aid is not None:
            return aid
        row = conn.execute("SELECT aid FROM accounts WHERE venue = ? AND account = ?", cache_key).fetchone()
        if row is not None:
            aid = int(row[0])
        elif create:
            aid = conn.execute("INSERT INTO accounts (venue, account) VALUES (?, ?)", cache_key).lastrowid
            assert aid is not None  # noqa: S101 - an INSERT sets lastrowid
        else:
            return None
        if len(self._accounts) >= _ACCOUNT_CACHE_SIZE:
            self._accounts.pop(next(iter(self._accounts)))
        self._accounts[cache_key] = aid
        return aid

    def _decode_fill(self, *, venue: str, account: str, fill_id: str, fill_type: str, row: Sequence[Any]) -> Fill:
        try:
            return decode_fill(venue=venue, account=account, fill_id=fill_id, fill_type=fill_type, row=row)
        except (ValueError, TypeError, ArithmeticError) as exc:
            msg = f"fill ledger {self._path!r}: the stored fill {venue}:{account}:{fill_type}:{fill_id} is unreadable"
            raise LedgerCorruptError(msg, path=self._path) from exc

    def _decode_bust(self, *, venue: str, account: str, fill_id: str, time: Any, source: Any) -> FillBust:
        try:
            return decode_bust(venue=venue, account=account, fill_id=fill_id, time=time, source=source)
        except (ValueError, TypeError) as exc:
            msg = f"fill ledger {self._path!r}: the stored bust of {venue}:{account}:{fill_id} is unreadable"
            raise LedgerCorruptError(msg, path=self._path) from exc

    # -- FillLedger -----------------------------------------------------------

    def record(self, fill: Fill) -> RecordResult:
        """Record ``fill`` once; see :class:`~reconcile_core.typing.FillLedger`."""
        with self._writing("record the fill", fill.key, flush=False) as conn:
            return self._record(conn, fill)

    def record_many(self, fills: Sequence[Fill]) -> list[RecordResult]:
        """``[record(fill) for fill in fills]``, in one call (one lock, one transaction check).

        If recording one of them fails, the transaction is rolled back as
        after a failed :meth:`record`: the fills before it are not recorded
        either, and the error names the fill that failed.
        """
        if not fills:
            return []
        call = self._writing("record the fill", fills[0].key, flush=False)
        with call as conn:
            results = []
            record = self._record
            for fill in fills:
                call.subject = fill.key
                results.append(record(conn, fill))
            return results

    def _record(self, conn: sqlite3.Connection, fill: Fill) -> RecordResult:
        """:meth:`record` inside its call (the mutex held, a transaction open)."""
        key = fill.key
        aid = self._account_id(conn, key.venue, key.account, create=True)
        assert aid is not None  # noqa: S101 - create=True
        cursor = self._cursor
        from_ws = fill.source is Source.WS
        row = None
        if self._expect_known[from_ws]:
            row = cursor.execute(_SELECT_FILL, (aid, key.fill_id, key.fill_type)).fetchone()
        if row is None:
            offset = self._next_offset
            values = (aid, key.fill_id, key.fill_type, offset, *encode_fill(fill))
            changes = conn.total_changes
            if cursor.execute(_INSERT_NEW_FILL, values).rowcount:
                self._expect_known[from_ws] = False
                busted = conn.total_changes - changes == 1
                if fill.order_id is not None:
                    self._add_to_order(conn, aid, fill.order_id, fill.size)
                self._dirty = True
                if busted:
                    return RecordResult(outcome=RecordOutcome.BUSTED)
                self._next_offset = offset + 1
                return RecordResult(outcome=RecordOutcome.RECORDED, offset=offset)
            row = cursor.execute(_SELECT_FILL, values[:3]).fetchone()
            if row is None:
                msg = f"fill ledger {self._path!r}: the fill {key} is neither recorded nor insertable"
                raise LedgerCorruptError(msg, path=self._path)
        # The key is recorded already: a duplicate or a conflict.
        self._expect_known[from_ws] = True
        existing = self._decode_fill(
            venue=key.venue, account=key.account, fill_id=key.fill_id, fill_type=key.fill_type, row=row
        )
        if existing.content() == fill.content():
            return RecordResult(outcome=RecordOutcome.DUPLICATE)
        inserted = conn.execute(
            "INSERT INTO conflicts (aid, fill_id, fill_type, content) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (aid, key.fill_id, key.fill_type, canonical_content(fill)),
        ).rowcount
        if not inserted:
            return RecordResult(outcome=RecordOutcome.DUPLICATE)
        self._dirty = True
        return RecordResult(outcome=RecordOutcome.CONFLICT, existing=existing)

    def _add_to_order(self, conn: sqlite3.Connection, aid: int, order_id: str, size: Decimal) -> None:
        previous = self._order_total(conn, aid, order_id)
        try:
            total = previous + size
        except (ArithmeticError, TypeError, ValueError) as exc:
            msg = f"fill ledger {self._path!r}: the recorded quantity of order {order_id!r} is unreadable"
            raise LedgerCorruptError(msg, path=self._path) from exc
        key = (aid, order_id)
        self._remember_total(key, total)
        pending = self._pending_totals
        pending[key] = total
        if len(pending) >= _PENDING_TOTALS_LIMIT:
            self._flush_totals(conn)

    def note_orders(self, *, venue: str, account: str, live: Sequence[OrderRef], ended: Sequence[str]) -> None:
        """Remember ``live`` orders and forget ``ended`` ones (order ids), in the open transaction.

        Live orders get the configured durability. A transaction that holds
        only acknowledgements and ended orders commits without an ``fsync``:
        after a power cut the last ended orders may be back, and the next
        process reports their final state once more.
        """
        live, ended = list(live), list(ended)
        for ref in live:
            if not isinstance(ref, OrderRef):
                msg = f"live orders are OrderRef values, got {ref!r}"  # type: ignore[unreachable]
                raise UsageError(msg)
        for order_id in ended:
            if type(order_id) is not str:
                msg = f"ended orders are order ids (str), got {order_id!r}"
                raise UsageError(msg)
        if not live and not ended:
            return
        # Held back and written at the commit, in one statement each for live and ended
        # orders (like the order totals); the transaction is opened now, so the commit
        # has one to write them in. A live order lost to a power cut would go unreported
        # if it ends unwatched, so it gets the configured durability; an ended one lost
        # is only reported once more, so it may commit without an fsync.
        with self._writing("note live orders", ack=not live, flush=False) as conn:
            aid = self._account_id(conn, venue, account, create=True)
            assert aid is not None  # noqa: S101 - create=True
            pending = self._pending_notes
            for ref in live:
                pending[(aid, ref.order_id)] = ref
            for order_id in ended:
                pending[(aid, order_id)] = None
            self._dirty = True

    def live_orders(self, *, venue: str, account: str) -> list[OrderRef]:
        """The orders noted live and not noted ended since (committed or not), by order id."""
        with self._reading("read the live orders of", account, flush=False) as conn:
            aid = self._account_id(conn, venue, account, create=False)
            if aid is None:
                return []
            rows = conn.execute(
                "SELECT order_id, client_id, instrument, created_at FROM live_orders WHERE aid = ?", (aid,)
            ).fetchall()
            held = {order_id: ref for (a, order_id), ref in self._pending_notes.items() if a == aid}
        try:
            refs = {r[0]: OrderRef(order_id=r[0], client_id=r[1], instrument=r[2], created_at=r[3]) for r in rows}
        except (TypeError, ValueError) as exc:
            msg = f"fill ledger {self._path!r}: a live order of {account!r} is unreadable: {exc}"
            raise LedgerCorruptError(msg, path=self._path) from exc
        for order_id, ref in held.items():
            if ref is None:
                refs.pop(order_id, None)
            else:
                refs[order_id] = ref
        return [refs[order_id] for order_id in sorted(refs)]

    def bust(self, bust: FillBust) -> BustResult:
        """Tombstone a fill id once; see :class:`~reconcile_core.typing.FillLedger`."""
        with self._writing("record the bust of fill id", bust.fill_id) as conn:
            aid = self._account_id(conn, bust.venue, bust.account, create=True)
            if conn.execute("SELECT 1 FROM busts WHERE aid = ? AND fill_id = ?", (aid, bust.fill_id)).fetchone():
                return BustResult(new=False)
            fills = tuple(
                self._decode_fill(
                    venue=bust.venue, account=bust.account, fill_id=bust.fill_id, fill_type=r[0], row=r[1:]
                )
                for r in conn.execute(_SELECT_FILLS_OF_ID, (aid, bust.fill_id)).fetchall()
            )
            offset = self._next_offset
            conn.execute(
                "INSERT INTO busts (aid, fill_id, time, source, delivery_offset, busted_type) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (aid, bust.fill_id, bust.time, bust.source.value, offset, fills[0].key.fill_type if fills else None),
            )
            conn.execute(
                "INSERT INTO outbox (delivery_offset, aid, fill_id, fill_type) VALUES (?, ?, ?, NULL)",
                (offset, aid, bust.fill_id),
            )
            self._dirty = True
            self._next_offset = offset + 1
            return BustResult(new=True, offset=offset, fills=fills)

    def get(self, key: FillKey) -> Fill | None:
        """The fill recorded under ``key``, busted or not."""
        with self._reading("read the fill", key) as conn:
            aid = self._account_id(conn, key.venue, key.account, create=False)
            if aid is None:
                return None
            row = conn.execute(_SELECT_FILL, (aid, key.fill_id, key.fill_type)).fetchone()
            if row is None:
                return None
            return self._decode_fill(
                venue=key.venue, account=key.account, fill_id=key.fill_id, fill_type=key.fill_type, row=row
            )

    def is_busted(self, *, venue: str, account: str, fill_id: str) -> bool:
        """Whether a bust for this fill id was recorded."""
        with self._reading("look up the bust of fill id", fill_id) as conn:
            aid = self._account_id(conn, venue, account, create=False)
            if aid is None:
                return False
            return (
                conn.execute("SELECT 1 FROM busts WHERE aid = ? AND fill_id = ?", (aid, fill_id)).fetchone() is not None
            )

    def knows_fill_id(self, *, venue: str, account: str, fill_id: str) -> bool:
        """Whether any fill or bust with this id was recorded."""
        with self._reading("look up the fill id", fill_id) as conn:
            aid = self._account_id(conn, venue, account, create=False)
            if aid is None:
                return False
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM fills WHERE aid = ?1 AND fill_id = ?2) "
                "OR EXISTS (SELECT 1 FROM busts WHERE aid = ?1 AND fill_id = ?2)",
                (aid, fill_id),
            ).fetchone()
            return bool(row[0])

    def recorded_quantity(self, *, venue: str, account: str, order_id: str) -> Decimal:
        """Sum of sizes of every recorded fill of ``order_id``, busted ones included."""
        with self._mutex:  # the hot path: a remembered total, no query
            if self._conn is not None:
                aid = self._accounts.get((venue, account))
                if aid is not None:
                    key = (aid, order_id)
                    total = self._totals.get(key)
                    if total is not None:
                        self._totals.move_to_end(key)
                        return total
        with self._reading("read the recorded quantity of order", order_id, flush=False) as conn:
            aid = self._account_id(conn, venue, account, create=False)
            if aid is None:
                return Decimal(0)
            return self._order_total(conn, aid, order_id)

    def count(self, *, venue: str | None = None, account: str | None = None) -> int:
        """How many fills are recorded (busted ones included)."""
        with self._reading("count fills") as conn:
            if venue is None and account is None:
                row = conn.execute("SELECT COUNT(*) FROM fills").fetchone()
            else:
                row = conn.execute(
                    "SELECT COUNT(*) FROM fills WHERE aid IN "
                    "(SELECT aid FROM accounts WHERE (?1 IS NULL OR venue = ?1) AND (?2 IS NULL OR account = ?2))",
                    (venue, account),
                ).fetchone()
            return int(row[0])

    def watermark(self, *, venue: str, account: str, scope: str = "") -> int | None:
        """The persisted "REST is complete up to" time, or ``None``."""
        with self._reading("read the watermark of account", account) as conn:
            aid = self._account_id(conn, venue, account, create=False)
            if aid is None:
                return None
            row = conn.execute("SELECT value FROM watermarks WHERE aid = ? AND scope = ?", (aid, scope)).fetchone()
            return None if row is None else int(row[0])

    def advance_watermark(self, *, venue: str, account: str, value: int, scope: str = "") -> int:
        """Move the watermark forward to ``value``; it never moves back. Returns the watermark."""
        if not isinstance(value, int) or isinstance(value, bool):  # type: ignore[redundant-expr]
            msg = f"a watermark is an int of milliseconds, got {value!r}"
            raise UsageError(msg)
        with self._writing("advance the watermark of account", account) as conn:
            aid = self._account_id(conn, venue, account, create=True)
            row = conn.execute("SELECT value FROM watermarks WHERE aid = ? AND scope = ?", (aid, scope)).fetchone()
            if row is not None and int(row[0]) >= value:
                return int(row[0])
            conn.execute(
                "INSERT INTO watermarks (aid, scope, value) VALUES (?, ?, ?) "
                "ON CONFLICT (aid, scope) DO UPDATE SET value = excluded.value",
                (aid, scope, value),
            )
            self._dirty = True
            return value

    def undelivered(self, *, venue: str, account: str, after: int = 0, limit: int = 1000) -> Sequence[Delivery]:
        """Unacknowledged outbox entries of one account, by offset, after ``after`` (at most ``limit``)."""
        if limit < 1:
            return []
        with self._reading("read the outbox of account", account) as conn:
            aid = self._account_id(conn, venue, account, create=False)
            if aid is None:
                return []
            rows = conn.execute(_SELECT_UNDELIVERED, (aid, after, limit)).fetchall()
        return [self._delivery(venue, account, row) for row in rows]

    def _delivery(self, venue: str, account: str, row: Sequence[Any]) -> Delivery:
        offset, fill_id, fill_type = row[0], row[1], row[2]
        fill_part = row[3 : 4 + _N]
        bust_part = row[4 + _N : 7 + _N]
        busted_part = row[7 + _N :]
        if fill_type is not None:
            if fill_part[0] is None:
                msg = f"fill ledger {self._path!r}: outbox entry {offset} points at a fill that is not recorded"
                raise LedgerCorruptError(msg, path=self._path)
            fill = self._decode_fill(
                venue=venue, account=account, fill_id=fill_id, fill_type=fill_type, row=fill_part[1:]
            )
            return Delivery(offset=offset, fill=fill)
        time, source, busted_type = bust_part
        if time is None:
            msg = f"fill ledger {self._path!r}: outbox entry {offset} points at a bust that is not recorded"
            raise LedgerCorruptError(msg, path=self._path)
        bust = self._decode_bust(venue=venue, account=account, fill_id=fill_id, time=time, source=source)
        busted_fill = None
        if busted_type is not None and busted_part[0] is not None:
            busted_fill = self._decode_fill(
                venue=venue, account=account, fill_id=fill_id, fill_type=busted_type, row=busted_part[1:]
            )
        return Delivery(offset=offset, bust=bust, busted_fill=busted_fill)

    def acknowledge(self, offsets: Iterable[int]) -> None:
        """Mark outbox entries handled; they are never delivered again (once committed)."""
        wanted = list(offsets)
        for offset in wanted:
            if not isinstance(offset, int) or isinstance(offset, bool):  # type: ignore[redundant-expr]
                msg = f"delivery offsets are ints, got {offset!r}"
                raise UsageError(msg)
        if not wanted:
            return
        with self._writing("acknowledge deliveries", ack=True) as conn:
            conn.executemany("DELETE FROM outbox WHERE delivery_offset BETWEEN ? AND ?", _runs(wanted))
            self._dirty = True

    def commit(self) -> None:
        """Make everything since the last commit durable.

        Raises :class:`~reconcile_core.errors.LedgerWriteError` when the
        commit fails, or when an earlier error already rolled back changes
        made since the last commit; either way the ledger is back at the last
        successful commit and keeps working.
        """
        with self._mutex:
            conn = self._connection()
            lost, self._lost = self._lost, None
            if lost is not None:
                self._abort("an earlier error")
                self._lost = None
                msg = f"fill ledger {self._path!r}: nothing was committed: {lost}"
                raise LedgerWriteError(msg, path=self._path)
            if not conn.in_transaction:
                if self._pending_totals:
                    self._forget_totals()  # their transaction is gone
                self._pending_notes.clear()
                return
            try:
                if self._pending_totals:
                    self._flush_totals(conn)
                if self._pending_notes:
                    self._flush_notes(conn)
                conn.execute("UPDATE ledger_meta SET value = ? WHERE name = 'next_offset'", (self._next_offset,))
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                error = translate(exc, path=self._path, action="commit")
                self._abort(str(error))
                self._lost = None  # reported right here
                raise error from exc
            except Exception as exc:  # a held-back value SQLite refused (not a sqlite3 error): the same
                self._abort(f"{type(exc).__name__} while writing held-back values")
                self._lost = None
                msg = f"fill ledger {self._path!r}: nothing was committed: {type(exc).__name__}: {exc}"
                raise LedgerWriteError(msg, path=self._path) from exc
            self._dirty = False
            if self._relaxed:
                self._restore_synchronous()

    def close(self) -> None:
        """Commit, release the file and its lock. Idempotent."""
        with self._mutex:
            conn = self._conn
            if conn is None:
                return
            try:
                self.commit()
            finally:
                self._conn = None
                self._accounts.clear()
                self._forget_totals()
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
                self._file_lock.release()

    # -- tools (the CLI) ----------------------------------------------------------

    def stats(self) -> LedgerStats:
        """Counts and sizes, for ``reconcile ledger stats``. Counting reads the whole index."""
        with self._reading("read statistics") as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            accounts = conn.execute("SELECT COUNT(*) FROM accounts").fetchone()[0]
            fills = conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
            busts = conn.execute("SELECT COUNT(*) FROM busts").fetchone()[0]
            undelivered = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        size = 0
        for name in (self._path, self._path + "-wal"):
            with contextlib.suppress(OSError):
                size += Path(name).stat().st_size
        return LedgerStats(
            path=self._path,
            schema_version=version,
            accounts=accounts,
            fills=fills,
            busts=busts,
            undelivered=undelivered,
            file_size=size,
        )

    def iter_fills(self, *, venue: str | None = None, account: str | None = None) -> Iterator[Fill]:
        """Every recorded fill (busted ones included), streamed in key order, optionally filtered.

        Reads in small chunks: memory stays flat however many fills there are.
        """
        with self._reading("list accounts") as conn:
            accounts = conn.execute(
                "SELECT aid, venue, account FROM accounts "
                "WHERE (?1 IS NULL OR venue = ?1) AND (?2 IS NULL OR account = ?2) ORDER BY venue, account",
                (venue, account),
            ).fetchall()
        for aid, account_venue, account_name in accounts:
            last: tuple[str, str] = ("", "")
            while True:
                with self._reading("list fills") as conn:
                    rows = conn.execute(_SELECT_FILL_CHUNK, (aid, *last, _ITER_CHUNK)).fetchall()
                if not rows:
                    break
                for row in rows:
                    yield self._decode_fill(
                        venue=account_venue, account=account_name, fill_id=row[0], fill_type=row[1], row=row[2:]
                    )
                last = (rows[-1][0], rows[-1][1])

    def integrity_check(self) -> list[str]:
        """Problems found in the file; an empty list means it is sound.

        Runs SQLite's ``PRAGMA integrity_check`` and checks the ledger's own
        invariants (outbox entries point at recorded fills and busts, no fill
        recorded after its bust was given an offset, offsets are unique and
        below the next offset, per-order totals match the fills, stored values
        decode). Reads the whole file: for tools, not for the hot path. A file
        too damaged to check is reported as a problem, not raised.
        """
        try:
            return self._integrity_problems()
        except LedgerCorruptError as exc:
            return [str(exc)]

    def _integrity_problems(self) -> list[str]:
        with self._reading("check integrity") as conn:
            problems = [f"sqlite: {row[0]}" for row in conn.execute("PRAGMA integrity_check") if row[0] != "ok"]
            if problems:
                return problems  # the invariants below assume a readable file
            for description, query in _INVARIANTS:
                rows = conn.execute(query).fetchmany(_MAX_PROBLEMS_PER_CHECK)
                problems.extend(description.format(*row) for row in rows)
            problems.extend(self._check_header(conn))
            problems.extend(self._check_order_totals(conn))
            return problems

    def _check_header(self, conn: sqlite3.Connection) -> list[str]:
        problems = []
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if application_id != schema.APPLICATION_ID:
            problems.append(f"application_id is {application_id:#x}, expected {schema.APPLICATION_ID:#x}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != schema.SCHEMA_VERSION:
            problems.append(f"schema version is {version}, expected {schema.SCHEMA_VERSION}")
        stored = conn.execute("SELECT value FROM ledger_meta WHERE name = 'next_offset'").fetchone()
        highest = conn.execute(
            "SELECT MAX(m) FROM (SELECT MAX(delivery_offset) AS m FROM fills UNION ALL "
            "SELECT MAX(delivery_offset) FROM busts UNION ALL SELECT MAX(delivery_offset) FROM outbox)"
        ).fetchone()[0]
        if stored is None:
            problems.append("the next delivery offset is missing")
        elif highest is not None and not self._dirty and stored[0] <= highest:
            problems.append(f"the next delivery offset {stored[0]} is not above the highest offset used, {highest}")
        return problems

    def _check_order_totals(self, conn: sqlite3.Connection) -> list[str]:
        problems: list[str] = []
        current: tuple[int, str] | None = None
        total = Decimal(0)

        def compare(group: tuple[int, str], total: Decimal) -> None:
            row = conn.execute("SELECT quantity FROM order_totals WHERE aid = ? AND order_id = ?", group).fetchone()
            if row is None or Decimal(row[0]) != total:
                problems.append(
                    f"order {group[1]!r} (account #{group[0]}): recorded quantity "
                    f"{None if row is None else row[0]} but its fills sum to {total}"
                )

        try:
            for aid, order_id, size in conn.execute(
                "SELECT aid, order_id, size FROM fills WHERE order_id IS NOT NULL ORDER BY aid, order_id"
            ):
                if current != (aid, order_id):
                    if current is not None:
                        compare(current, total)
                    current, total = (aid, order_id), Decimal(0)
                total += Decimal(size)
                if len(problems) >= _MAX_PROBLEMS_PER_CHECK:
                    return problems
            if current is not None:
                compare(current, total)
            orphans = conn.execute(
                "SELECT t.aid, t.order_id FROM order_totals AS t WHERE NOT EXISTS "
                "(SELECT 1 FROM fills AS f WHERE f.aid = t.aid AND f.order_id = t.order_id)"
            ).fetchmany(_MAX_PROBLEMS_PER_CHECK)
        except (ArithmeticError, TypeError, ValueError) as exc:
            problems.append(f"a stored quantity is not a decimal: {exc!r}")
            return problems
        problems.extend(f"order {o!r} (account #{a}) has a recorded quantity but no fills" for a, o in orphans)
        return problems


def _runs(offsets: Iterable[int]) -> list[tuple[int, int]]:
    """The distinct ``offsets`` as runs of consecutive integers, ``(first, last)`` each, ascending.

    An acknowledged batch is mostly one run: deleting it as a range costs one
    search of the outbox instead of one per entry, and deletes the same rows.
    """
    runs: list[tuple[int, int]] = []
    for offset in sorted(set(offsets)):
        if runs and offset == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    return runs


def _values(enum_type: type[FillKind | Side | Liquidity | Source]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum_type)


_INVARIANTS: tuple[tuple[str, str], ...] = (
    (
        "outbox entry {0} points at fill {1}/{2}, which is not recorded with that offset",
        """SELECT o.delivery_offset, o.fill_id, o.fill_type FROM outbox AS o
           LEFT JOIN fills AS f ON f.aid = o.aid AND f.fill_id = o.fill_id AND f.fill_type = o.fill_type
           WHERE o.fill_type IS NOT NULL AND (f.fill_id IS NULL OR f.delivery_offset IS NOT o.delivery_offset)""",
    ),
    (
        "outbox entry {0} points at the bust of {1}, which is not recorded with that offset",
        """SELECT o.delivery_offset, o.fill_id FROM outbox AS o
           LEFT JOIN busts AS b ON b.aid = o.aid AND b.fill_id = o.fill_id
           WHERE o.fill_type IS NULL AND (b.fill_id IS NULL OR b.delivery_offset IS NOT o.delivery_offset)""",
    ),
    (
        "fill {0}/{1} has delivery offset {2} although it was recorded after its bust (offset {3})",
        """SELECT f.fill_id, f.fill_type, f.delivery_offset, b.delivery_offset FROM fills AS f
           JOIN busts AS b ON b.aid = f.aid AND b.fill_id = f.fill_id
           WHERE f.delivery_offset > b.delivery_offset""",
    ),
    (
        "the bust of {0} reverts fill type {1}, which is not recorded",
        """SELECT b.fill_id, b.busted_type FROM busts AS b WHERE b.busted_type IS NOT NULL AND NOT EXISTS
           (SELECT 1 FROM fills AS f WHERE f.aid = b.aid AND f.fill_id = b.fill_id AND f.fill_type = b.busted_type)""",
    ),
    (
        "delivery offset {0} is used {1} times",
        """SELECT delivery_offset, COUNT(*) FROM
           (SELECT delivery_offset FROM fills WHERE delivery_offset IS NOT NULL
            UNION ALL SELECT delivery_offset FROM busts)
           GROUP BY delivery_offset HAVING COUNT(*) > 1""",
    ),
    (
        "account #{0} of a fill, bust, watermark or outbox entry is not in the accounts table",
        """SELECT aid FROM (SELECT aid FROM fills UNION SELECT aid FROM busts UNION SELECT aid FROM outbox
           UNION SELECT aid FROM watermarks UNION SELECT aid FROM order_totals UNION SELECT aid FROM conflicts)
           WHERE aid NOT IN (SELECT aid FROM accounts)""",
    ),
    (
        "fill {0}/{1} has an unknown kind, side, liquidity or source",
        f"""SELECT fill_id, fill_type FROM fills WHERE kind NOT IN ({_values(FillKind)})
            OR side NOT IN ({_values(Side)}) OR liquidity NOT IN ({_values(Liquidity)})
            OR source NOT IN ({_values(Source)})""",  # noqa: S608 - enum values of this library
    ),
)


class _Call:
    """One ledger call: holds the mutex, maps ``sqlite3`` errors, rolls back a failed write.

    The message is only formatted when something fails (``action`` + ``subject``).
    """

    __slots__ = ("_ack", "_action", "_conn", "_flush", "_ledger", "_was_open", "_write", "subject")

    def __init__(
        self, ledger: SqliteLedger, action: str, subject: object, *, write: bool, flush: bool, ack: bool
    ) -> None:
        self._ledger = ledger
        self._action = action
        self.subject = subject  # what the call is about; record_many moves it along
        self._write = write
        self._flush = flush
        self._ack = ack
        self._was_open = False
        self._conn: sqlite3.Connection | None = None

    def describe(self) -> str:
        return f"{self._action} {self.subject}" if self.subject != "" else self._action

    def __enter__(self) -> sqlite3.Connection:
        ledger = self._ledger
        if self._write and ledger.read_only:
            msg = f"fill ledger {ledger.path!r} was opened read-only; {self.describe()} needs a writer"
            raise UsageError(msg)
        ledger._mutex.acquire()
        try:
            conn = ledger._connection()
            self._was_open = conn.in_transaction
            if self._write:
                if self._was_open and ledger._relaxed and not self._ack:
                    # The open transaction holds acknowledgements only: this write gets its own.
                    ledger._commit_acknowledgements(conn, self.describe())
                    self._was_open = False
                if not self._was_open:
                    try:
                        ledger._begin(conn, ack=self._ack)
                    except sqlite3.Error as exc:
                        raise translate(exc, path=ledger.path, action=self.describe()) from exc
            if self._flush and ledger._pending_totals:
                # Whatever this call reads or writes sees the held-back totals; a failure
                # to write them loses the transaction, as a failed write would have.
                try:
                    ledger._flush_totals(conn)
                except BaseException as exc:
                    if isinstance(exc, sqlite3.Error):
                        error = translate(exc, path=ledger.path, action="write the recorded quantities of orders")
                        ledger._abort(str(error))
                        raise error from exc
                    ledger._abort(f"{type(exc).__name__} while trying to write the recorded quantities of orders")
                    raise
        except BaseException:
            ledger._mutex.release()
            raise
        self._conn = conn
        return conn

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        ledger = self._ledger
        try:
            if exc is None:
                return
            if isinstance(exc, sqlite3.Error):
                error = translate(exc, path=ledger.path, action=self.describe())
                if self._write:
                    ledger._abort(str(error))
                elif self._was_open and self._conn is not None and not self._conn.in_transaction:
                    ledger._forget_transaction(str(error))  # SQLite rolled back on its own
                raise error from exc
            if self._write:
                ledger._abort(f"{type(exc).__name__} while trying to {self.describe()}")
        finally:
            ledger._mutex.release()


if TYPE_CHECKING:  # mypy proves that SqliteLedger satisfies the protocol

    def _is_a_fill_ledger(ledger: SqliteLedger) -> FillLedger:
        return ledger
