"""SqliteLedger beyond the contract: the file, the lock, failures, tools."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from reconcile_core import AccountReconciler, OrderRef, OrderUpdated, RecordOutcome
from reconcile_core import _sqlite_schema as schema
from reconcile_core.errors import (
    LedgerCorruptError,
    LedgerError,
    LedgerLockedError,
    LedgerSchemaError,
    LedgerWriteError,
    UsageError,
)
from reconcile_core.sqlite import SCHEMA_VERSION, LedgerStats, SqliteLedger
from reconcile_core.testing._ledger_contract import make_bust, make_fill

from ..core._builders import order as make_order

CHILD = str(Path(__file__).with_name("_child.py"))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


def open_ledger(path: Path, **options: object) -> SqliteLedger:
    options.setdefault("synchronous", "normal")
    return SqliteLedger(path, **options)  # type: ignore[arg-type]


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def record_many(ledger: SqliteLedger, count: int, **changes: object) -> list[int]:
    offsets = []
    for n in range(count):
        result = ledger.record(make_fill(f"f{n}", **changes))
        assert result.offset is not None
        offsets.append(result.offset)
    return offsets


# -- the file ---------------------------------------------------------------------------


def test_the_file_is_a_versioned_wal_database(path: Path) -> None:
    with open_ledger(path) as ledger:
        ledger.record(make_fill("1"))
    conn = raw(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
        assert conn.execute("SELECT price, size FROM fills").fetchall() == [("65000.5", "0.010")]
    finally:
        conn.close()


def test_an_empty_file_becomes_a_ledger(path: Path) -> None:
    path.touch()
    with open_ledger(path) as ledger:
        assert ledger.record(make_fill("1")).outcome is RecordOutcome.RECORDED


def test_accepts_str_and_pathlike(path: Path) -> None:
    with SqliteLedger(str(path)) as ledger:
        assert ledger.path == str(path)
    with SqliteLedger(path) as ledger:
        assert ledger.path == str(path)


def test_repr_names_the_file_and_its_state(path: Path) -> None:
    ledger = open_ledger(path)
    assert repr(ledger) == f"<SqliteLedger {str(path)!r} open>"
    ledger.close()
    assert repr(ledger) == f"<SqliteLedger {str(path)!r} closed>"


def test_a_closed_ledger_refuses_work(path: Path) -> None:
    ledger = open_ledger(path)
    ledger.close()
    with pytest.raises(UsageError, match="closed"):
        ledger.record(make_fill("1"))
    with pytest.raises(UsageError, match="closed"):
        ledger.count()
    ledger.close()


def test_bad_arguments_are_usage_errors(path: Path) -> None:
    with pytest.raises(UsageError, match="synchronous"):
        SqliteLedger(path, synchronous="off")  # type: ignore[arg-type]
    with open_ledger(path) as ledger:
        offset = ledger.record(make_fill("1")).offset
        with pytest.raises(UsageError, match="ints"):
            ledger.acknowledge([offset, "2"])  # type: ignore[list-item]
        assert [d.offset for d in ledger.undelivered(venue="venue", account="account")] == [offset]
        with pytest.raises(UsageError, match="watermark"):
            ledger.advance_watermark(venue="venue", account="account", value="5")  # type: ignore[arg-type]
        assert ledger.undelivered(venue="venue", account="account", limit=0) == []


def test_usable_from_another_thread(path: Path) -> None:
    with open_ledger(path) as ledger:
        results = []
        worker = threading.Thread(target=lambda: results.append(ledger.record(make_fill("1"))))
        worker.start()
        worker.join(timeout=10)
        assert [r.outcome for r in results] == [RecordOutcome.RECORDED]
        ledger.commit()
        assert ledger.count() == 1


# -- the lock -------------------------------------------------------------------------------


def test_a_second_ledger_on_the_same_file_is_refused(path: Path) -> None:
    first = open_ledger(path)
    try:
        with pytest.raises(LedgerLockedError, match="held by another running process") as info:
            open_ledger(path)
        assert info.value.path == str(path)
        assert str(path) in str(info.value)
        assert str(os.getpid()) in str(info.value)
    finally:
        first.close()
    with open_ledger(path) as again:  # released on close
        assert again.count() == 0


def test_another_process_holding_the_ledger_locks_it_out(path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, CHILD, "hold", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        with pytest.raises(LedgerLockedError, match="held by another running process") as info:
            open_ledger(path)
        assert f"pid {child.pid}" in str(info.value)
    finally:
        child.communicate(timeout=30)  # closes stdin: the child closes its ledger and exits
    assert child.returncode == 0
    with open_ledger(path) as ledger:
        assert ledger.count() == 0


def test_a_locked_database_is_reported_and_survived(path: Path) -> None:
    with open_ledger(path) as ledger:
        committed = make_fill("committed")
        ledger.record(committed)
        ledger.commit()
    blocker = raw(path)
    blocker.execute("BEGIN EXCLUSIVE")  # e.g. a backup tool
    try:
        ledger = open_ledger(path, timeout=0.01)
        with pytest.raises(LedgerLockedError, match="locked") as info:
            ledger.record(make_fill("new"))
        assert str(path) in str(info.value)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    try:
        assert ledger.get(committed.key) == committed
        assert ledger.record(make_fill("new")).outcome is RecordOutcome.RECORDED
        ledger.commit()
    finally:
        ledger.close()


# -- failures ---------------------------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_corrupt(path: Path) -> None:
    path.write_bytes(b"this is not a database at all, just some bytes\n" * 100)
    with pytest.raises(LedgerCorruptError, match="not an SQLite database") as info:
        open_ledger(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    with pytest.raises(LedgerCorruptError):  # the lock was released, so: the same answer
        open_ledger(path)


def test_another_sqlite_database_is_not_a_ledger(path: Path) -> None:
    conn = raw(path)
    conn.execute("CREATE TABLE customers (name TEXT)")
    conn.close()
    with pytest.raises(LedgerCorruptError, match="not a fill ledger") as info:
        open_ledger(path)
    assert str(path) in str(info.value)
    conn = raw(path)  # and it was left alone
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("customers",)]
    conn.close()


def test_a_damaged_ledger_is_reported(path: Path) -> None:
    with open_ledger(path) as ledger:
        record_many(ledger, 3000)
    with path.open("r+b") as f:
        f.seek(4096 * 20)
        f.write(b"\xa5" * 4096 * 5)
    ledger = open_ledger(path)
    try:
        problems = ledger.integrity_check()
        assert problems
        assert any("malformed" in p or "sqlite" in p for p in problems)
        with pytest.raises(LedgerCorruptError) as info:
            list(ledger.iter_fills())
        assert str(path) in str(info.value)
    finally:
        ledger.close()


def test_a_newer_schema_is_refused(path: Path) -> None:
    with open_ledger(path) as ledger:
        ledger.record(make_fill("1"))
    conn = raw(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(LedgerSchemaError, match=f"schema version {SCHEMA_VERSION + 1}") as info:
        open_ledger(path)
    assert str(path) in str(info.value)
    assert f"up to {SCHEMA_VERSION}" in str(info.value)
    with pytest.raises(LedgerSchemaError):  # lock released
        open_ledger(path)


def test_older_schemas_are_migrated_in_order(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_ledger(path) as ledger:
        fill = make_fill("1")
        ledger.record(fill)
    v2 = ("CREATE TABLE notes (text TEXT)", "INSERT INTO notes VALUES ('v2')")
    v3 = ("INSERT INTO notes SELECT text || '+v3' FROM notes",)
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, v2, v3))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
    with open_ledger(path) as ledger:
        assert ledger.get(fill.key) == fill
        assert ledger.stats().schema_version == SCHEMA_VERSION + 2
    conn = raw(path)
    assert conn.execute("SELECT text FROM notes ORDER BY text").fetchall() == [("v2",), ("v2+v3",)]
    conn.close()


def test_a_version_1_file_gains_the_live_orders_and_keeps_its_fills(path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:  # a file written by a release before live orders were noted
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        patch.setattr(schema, "SCHEMA_VERSION", 1)
        with open_ledger(path) as ledger:
            fill = make_fill("1")
            ledger.record(fill)
            assert ledger.stats().schema_version == 1
    ref = OrderRef(order_id="order-1", client_id=None, instrument="BTC-USD-PERP", created_at=5)
    with open_ledger(path) as ledger:
        assert ledger.stats().schema_version == SCHEMA_VERSION == 2
        assert ledger.get(fill.key) == fill
        assert ledger.live_orders(venue="venue", account="account") == []
        ledger.note_orders(venue="venue", account="account", live=[ref], ended=[])
    with SqliteLedger(path, read_only=True) as reader:
        assert reader.live_orders(venue="venue", account="account") == [ref]
        with pytest.raises(UsageError, match="read-only"):
            reader.note_orders(venue="venue", account="account", live=[], ended=["order-1"])


def test_a_reconciler_merges_orders_over_a_read_only_ledger_without_notes(path: Path) -> None:
    with open_ledger(path) as ledger:
        ledger.note_orders(
            venue="venue",
            account="account",
            live=[OrderRef(order_id="o0", client_id=None, instrument="X", created_at=5)],
            ended=[],
        )
    with SqliteLedger(path, read_only=True) as reader:
        r = AccountReconciler(venue="venue", account="account", ledger=reader)
        step = r.merge(make_order("o1"))
        assert [type(e) for e in step.events] == [OrderUpdated]
        assert reader.live_orders(venue="venue", account="account") == [
            OrderRef(order_id="o0", client_id=None, instrument="X", created_at=5)
        ]


def test_noting_orders_takes_any_iterable(path: Path) -> None:
    refs = [OrderRef(order_id=f"o{i}", client_id=None, instrument="X", created_at=5) for i in range(3)]
    with open_ledger(path) as ledger:
        ledger.note_orders(venue="venue", account="account", live=(r for r in refs), ended=iter(["o1"]))  # type: ignore[arg-type]
        assert ledger.live_orders(venue="venue", account="account") == [refs[0], refs[2]]


def test_noting_orders_checks_its_arguments(path: Path) -> None:
    with open_ledger(path) as ledger:
        with pytest.raises(UsageError, match="OrderRef"):
            ledger.note_orders(venue="venue", account="account", live=[("order-1", None, "BTC")], ended=[])  # type: ignore[list-item]
        with pytest.raises(UsageError, match="order ids"):
            ledger.note_orders(venue="venue", account="account", live=[], ended=[1])  # type: ignore[list-item]
        assert ledger.live_orders(venue="venue", account="account") == []


def test_a_failed_migration_changes_nothing(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_ledger(path) as ledger:
        fill = make_fill("1")
        ledger.record(fill)
    broken = ("CREATE TABLE notes (text TEXT)", "INSERT INTO no_such_table VALUES (1)")
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
        patch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
        with pytest.raises(LedgerError, match="migrate the schema") as info:
            open_ledger(path)
        assert str(path) in str(info.value)
    with open_ledger(path) as ledger:
        assert ledger.stats().schema_version == SCHEMA_VERSION
        assert ledger.get(fill.key) == fill
        assert ledger.integrity_check() == []


def test_a_missing_directory_cannot_be_written(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "ledger.sqlite"
    with pytest.raises(LedgerWriteError) as info:
        open_ledger(path)
    assert str(path) in str(info.value)


def test_a_read_only_directory_cannot_be_written(tmp_path: Path) -> None:
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        probe = directory / "probe"
        try:
            probe.touch()
        except PermissionError:
            with pytest.raises(LedgerWriteError, match="lock file") as info:
                open_ledger(directory / "ledger.sqlite")
            outcome = {"error": type(info.value).__name__, "path": info.value.path}
        else:  # running as root: drop the capability that ignores permissions, in a child
            probe.unlink()
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without setpriv: permissions cannot be enforced")
            tmp_path.chmod(0o755)
            command = [
                setpriv,
                "--bounding-set",
                "-dac_override,-dac_read_search,-fowner",
                "--",
                sys.executable,
                CHILD,
                "open",
                str(directory / "ledger.sqlite"),
            ]
            child = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
            if child.returncode != 0 and "setpriv" in child.stderr:
                pytest.skip(f"setpriv cannot drop capabilities here: {child.stderr.strip()}")
            assert child.returncode == 0, child.stderr
            outcome = json.loads(child.stdout)
            assert "lock file" in outcome["message"]
    finally:
        directory.chmod(0o755)
    assert outcome["error"] == "LedgerWriteError"
    assert outcome["path"] == str(directory / "ledger.sqlite")
    assert not (directory / "ledger.sqlite").exists()


def test_a_full_disk_fails_the_write_and_the_ledger_recovers(path: Path) -> None:
    ledger = open_ledger(path)
    try:
        committed = record_many(ledger, 5)
        ledger.commit()
        pages = ledger._conn.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[union-attr]
        ledger._conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # type: ignore[union-attr]
        error = None
        for n in range(5000):
            try:
                ledger.record(make_fill(f"more-{n}", account=f"new-account-{n % 3}", order_id=f"o{n}"))
            except LedgerWriteError as exc:
                error, failed_at = exc, n
                break
        assert error is not None, "the size limit was never hit"
        assert "full" in str(error)
        assert str(path) in str(error)
        assert isinstance(error.__cause__, sqlite3.Error)
        # The whole uncommitted batch is gone, and the next commit says so.
        assert ledger.get(make_fill("more-0", account="new-account-0").key) is None
        assert ledger.count() == 5
        with pytest.raises(LedgerWriteError, match="rolled back"):
            ledger.commit()
        ledger.commit()  # reported once
        # Reads keep working; the committed state is intact.
        assert [d.offset for d in ledger.undelivered(venue="venue", account="account")] == committed
        assert ledger.integrity_check() == []
        # Space again: writes work, offsets keep growing, the cache holds no stale account numbers.
        ledger._conn.execute("PRAGMA max_page_count = 1073741823")  # type: ignore[union-attr]
        result = ledger.record(make_fill("later", account="new-account-0"))
        assert result.outcome is RecordOutcome.RECORDED
        assert result.offset is not None
        assert result.offset > failed_at
        ledger.commit()
        assert ledger.count(account="new-account-0") == 1
        assert ledger.integrity_check() == []
    finally:
        ledger.close()


def test_a_failed_commit_rolls_back_and_reads_go_on(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    child = subprocess.run(
        [sys.executable, CHILD, "full-commit", str(path)], capture_output=True, text=True, check=False, timeout=120
    )
    assert child.returncode == 0, child.stderr
    outcome = json.loads(child.stdout)
    assert outcome["commit_error"] == "LedgerWriteError"
    assert str(path) in outcome["message"]
    assert outcome["cause"] == "OperationalError"
    assert outcome["committed_present"]
    assert not outcome["batch_present"]
    assert outcome["count"] == 1
    assert outcome["undelivered"] == 1
    assert outcome["after"] == "recorded"
    assert outcome["after_offset"] > 2999  # no offset handed out before the failure is reused
    with open_ledger(path) as ledger:
        assert ledger.count() == 2
        assert ledger.integrity_check() == []


def test_an_error_in_the_middle_of_a_record_leaves_no_partial_record(path: Path) -> None:
    with open_ledger(path) as ledger:
        ledger.record(make_fill("1"))
        ledger.commit()
        conn = ledger._conn
        assert conn is not None
        # The outbox insert (the second write of a record) fails.
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.fill_id = '2' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        with pytest.raises(LedgerError, match="refused"):
            ledger.record(make_fill("2"))
        conn.execute("DROP TRIGGER refuse")
        assert ledger.get(make_fill("2").key) is None
        assert ledger.recorded_quantity(venue="venue", account="account", order_id="order-1") == Decimal("0.010")
        assert ledger.record(make_fill("2")).outcome is RecordOutcome.RECORDED
        assert ledger.integrity_check() == []


# -- tools ------------------------------------------------------------------------------------


def test_stats(path: Path) -> None:
    with open_ledger(path) as ledger:
        offsets = record_many(ledger, 4)
        ledger.record(make_fill("x", account="other"))
        ledger.bust(make_bust("f0"))
        ledger.acknowledge(offsets[:2])
        ledger.advance_watermark(venue="third", account="account", value=1)
        ledger.commit()
        stats = ledger.stats()
    assert stats == LedgerStats(
        path=str(path),
        schema_version=SCHEMA_VERSION,
        accounts=3,
        fills=5,
        busts=1,
        undelivered=4,
        file_size=stats.file_size,
    )
    assert stats.file_size >= path.stat().st_size > 0


def test_iter_fills_streams_every_fill_in_key_order(path: Path) -> None:
    with open_ledger(path) as ledger:
        mine = [make_fill(f"{n:04d}") for n in range(1100)]  # more than one chunk
        theirs = [make_fill(f"{n:04d}", account="other", venue="another") for n in range(3)]
        for fill in [*theirs, *mine]:
            ledger.record(fill)
        ledger.bust(make_bust("0001"))
        assert list(ledger.iter_fills(venue="venue", account="account")) == mine
        assert list(ledger.iter_fills(venue="another")) == theirs
        assert list(ledger.iter_fills(account="nobody")) == []
        assert list(ledger.iter_fills()) == [*theirs, *mine]
        # Writing while iterating is fine: the iterator reads in chunks by key.
        seen = 0
        for fill in ledger.iter_fills(venue="venue"):
            seen += 1
            if seen == 10:
                ledger.record(make_fill("9999"))
                ledger.acknowledge([1])
                ledger.commit()
            assert fill.key.venue == "venue"
        assert seen == 1101


def test_integrity_check_passes_on_a_sound_ledger(path: Path) -> None:
    with open_ledger(path) as ledger:
        record_many(ledger, 20)
        ledger.bust(make_bust("f3"))
        ledger.bust(make_bust("late"))
        ledger.record(make_fill("late"))
        ledger.record(make_fill("f4", size=Decimal(99)))
        assert ledger.integrity_check() == []  # uncommitted
        ledger.commit()
        assert ledger.integrity_check() == []


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("INSERT INTO outbox VALUES (1000, 1, 'ghost', 'FILL')", "outbox entry 1000 points at fill ghost"),
        ("INSERT INTO outbox VALUES (1001, 1, 'ghost', NULL)", "outbox entry 1001 points at the bust of ghost"),
        ("UPDATE fills SET delivery_offset = 500 WHERE fill_id = 'late'", "recorded after its bust"),
        ("UPDATE fills SET delivery_offset = 2 WHERE fill_id = 'f0'", "delivery offset 2 is used 2 times"),
        ("UPDATE order_totals SET quantity = '7'", "recorded quantity 7"),
        ("UPDATE ledger_meta SET value = 1", "next delivery offset 1"),
        ("UPDATE fills SET kind = 'martian' WHERE fill_id = 'f1'", "fill f1/FILL has an unknown kind"),
        ("DELETE FROM accounts", "not in the accounts table"),
        ("UPDATE busts SET busted_type = 'NOPE'", "reverts fill type NOPE"),
    ],
)
def test_integrity_check_finds_broken_invariants(path: Path, tamper: str, expected: str) -> None:
    with open_ledger(path) as ledger:
        record_many(ledger, 3)
        ledger.bust(make_bust("late"))
        ledger.record(make_fill("late"))
        ledger.bust(make_bust("f2"))
    conn = raw(path)
    conn.execute(tamper)
    conn.close()
    with open_ledger(path) as ledger:
        problems = ledger.integrity_check()
    assert any(expected in problem for problem in problems), problems


def test_unreadable_rows_are_corruption_not_crashes(path: Path) -> None:
    with open_ledger(path) as ledger:
        fill = make_fill("1")
        ledger.record(fill)
    conn = raw(path)
    conn.execute("UPDATE fills SET price = 'lots', side = 'up'")
    conn.close()
    with open_ledger(path) as ledger:
        with pytest.raises(LedgerCorruptError, match="unreadable") as info:
            ledger.get(fill.key)
        assert str(path) in str(info.value)
        with pytest.raises(LedgerCorruptError):
            ledger.undelivered(venue="venue", account="account")
        with pytest.raises(LedgerCorruptError):
            ledger.record(fill)
        assert ledger.count() == 1  # still usable


def test_the_account_cache_is_bounded_and_never_trusted_blindly(path: Path) -> None:
    with open_ledger(path) as ledger:
        for n in range(300):
            ledger.record(make_fill("1", account=f"account-{n}"))
        assert len(ledger._accounts) <= 256
        ledger.commit()
        ledger._accounts.clear()
        assert ledger.count(account="account-7") == 1
        assert ledger.record(make_fill("1", account="account-7")).outcome is RecordOutcome.DUPLICATE


def test_a_dropped_ledger_releases_its_lock(path: Path) -> None:
    ledger = open_ledger(path)
    ledger.record(make_fill("1"))
    ledger.commit()
    conn = ledger._conn
    assert conn is not None
    conn.close()  # what garbage collection would do to the connection
    del ledger, conn
    gc.collect()
    with open_ledger(path) as again:
        assert again.count() == 1
