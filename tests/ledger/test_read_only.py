"""A read-only SqliteLedger reads beside the running writer, and refuses to write."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile_core.errors import LedgerCorruptError, UsageError
from reconcile_core.sqlite import SqliteLedger

from ..core._builders import ACCOUNT, VENUE, fill


class TestReadOnly:
    """Readers need no lock; writes are usage errors."""

    def test_reads_beside_a_writer(self, tmp_path: Path) -> None:
        path = tmp_path / "ledger.sqlite"
        with SqliteLedger(path) as writer:
            writer.record(fill("f1"))
            writer.commit()
            with SqliteLedger(path, read_only=True) as reader:
                assert reader.read_only
                assert reader.count(venue=VENUE, account=ACCOUNT) == 1
                writer.record(fill("f2"))
                writer.commit()
                assert reader.count(venue=VENUE, account=ACCOUNT) == 2, "a reader sees new commits"
                assert reader.integrity_check() == []

    def test_writes_are_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "ledger.sqlite"
        SqliteLedger(path).close()
        with SqliteLedger(path, read_only=True) as reader:
            with pytest.raises(UsageError, match="read-only"):
                reader.record(fill("f1"))
            with pytest.raises(UsageError, match="read-only"):
                reader.acknowledge([1])
            reader.commit()  # nothing to commit: a no-op, not an error

    def test_missing_file_is_not_created(self, tmp_path: Path) -> None:
        path = tmp_path / "nope.sqlite"
        with pytest.raises(LedgerCorruptError, match="does not exist"):
            SqliteLedger(path, read_only=True)
        assert not path.exists()

    def test_not_a_ledger(self, tmp_path: Path) -> None:
        path = tmp_path / "other.sqlite"
        import sqlite3

        conn = sqlite3.connect(path)
        conn.execute("create table t (x)")
        conn.close()
        with pytest.raises(LedgerCorruptError, match="schema version"):
            SqliteLedger(path, read_only=True)
