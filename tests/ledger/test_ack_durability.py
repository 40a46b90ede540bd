"""SqliteLedger: a transaction of acknowledgements only commits without an fsync.

Losing the last acknowledgements to a power cut only means those fills are
delivered again (marked as redeliveries), which any crash allows; losing a
fill, a bust, a conflict, a watermark or an order total would not be
allowed. So a transaction begun by ``acknowledge()`` commits at
``synchronous=NORMAL``, any other write gets a transaction of its own at the
configured level, and the connection is back at ``FULL`` whenever no
acknowledgement-only transaction is open.

A spy stands in for the ledger's connection and notes the synchronous level
SQLite reports at every ``COMMIT`` (and can make one statement fail, as a
disk error would).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from reconcile_core import OrderRef, RecordOutcome
from reconcile_core.errors import LedgerError, LedgerWriteError
from reconcile_core.sqlite import SqliteLedger
from reconcile_core.testing._ledger_contract import make_bust, make_fill

FULL = 2
NORMAL = 1


class Spy:
    """The ledger's connection, noting the ``PRAGMA synchronous`` level of every ``COMMIT``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        #: ("commit", level) per COMMIT; the tests add their own entries between them.
        self.log: list[tuple[str, object]] = []
        #: Statements (upper case, single spaces) that fail with a disk error, and how often.
        self.failing: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        statement = " ".join(sql.split()).upper()
        if self.failing.get(statement, 0) > 0:
            self.failing[statement] -= 1
            raise sqlite3.OperationalError("disk I/O error")
        if statement == "COMMIT":
            self.log.append(("commit", level(self.conn)))
        return self.conn.execute(sql, *args)

    def commits(self) -> list[object]:
        return [value for kind, value in self.log if kind == "commit"]


def level(conn: sqlite3.Connection | Spy) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


def spy_on(ledger: SqliteLedger) -> Spy:
    real = ledger._conn
    assert real is not None
    spy = Spy(real)
    ledger._conn = spy  # type: ignore[assignment]
    return spy


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


def undelivered(ledger: SqliteLedger) -> list[int]:
    return [d.offset for d in ledger.undelivered(venue="venue", account="account")]


def committed_outbox(path: Path) -> list[int]:
    """The outbox as another connection sees it: only what was committed."""
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT delivery_offset FROM outbox ORDER BY delivery_offset")]
    finally:
        conn.close()


def test_an_acknowledgement_only_transaction_commits_at_normal(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        spy = spy_on(ledger)
        assert level(spy) == FULL
        first = ledger.record(make_fill("1")).offset
        second = ledger.record(make_fill("2")).offset
        assert first is not None
        assert second is not None
        ledger.commit()
        ledger.acknowledge([first])
        assert level(spy) == NORMAL  # inside the acknowledgement-only transaction
        ledger.commit()
        assert level(spy) == FULL  # restored at once
        ledger.acknowledge([second])
        ledger.commit()
        ledger.record(make_fill("3"))
        ledger.commit()
        assert spy.commits() == [FULL, NORMAL, NORMAL, FULL]
        assert level(spy) == FULL
        assert undelivered(ledger) == [second + 1]
        assert committed_outbox(path) == [second + 1]
        assert ledger.integrity_check() == []


def test_live_orders_are_noted_durably_and_ended_ones_like_acknowledgements(path: Path) -> None:
    ref = OrderRef(order_id="o1", client_id=None, instrument="BTC-USD-PERP", created_at=1)
    with SqliteLedger(path) as ledger:
        spy = spy_on(ledger)
        ledger.note_orders(venue="venue", account="account", live=[ref], ended=[])
        ledger.commit()
        ledger.note_orders(venue="venue", account="account", live=[], ended=["o1"])
        ledger.commit()
        assert spy.commits() == [FULL, NORMAL]
        assert level(spy) == FULL


WRITES: dict[str, Callable[[SqliteLedger], object]] = {
    "record": lambda ledger: ledger.record(make_fill("new")),
    "conflict": lambda ledger: ledger.record(make_fill("1", price=Decimal(1))),
    "duplicate": lambda ledger: ledger.record(make_fill("1")),
    "bust": lambda ledger: ledger.bust(make_bust("2")),
    "watermark": lambda ledger: ledger.advance_watermark(venue="venue", account="account", value=5),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_after_acknowledgements_gets_a_durable_transaction_of_its_own(path: Path, write: str) -> None:
    with SqliteLedger(path) as ledger:
        offsets = [ledger.record(make_fill(str(n))).offset for n in (1, 2, 3)]
        ledger.commit()
        spy = spy_on(ledger)
        ledger.acknowledge([offsets[0]])
        ledger.acknowledge([offsets[1]])  # rides along in the same acknowledgement-only transaction
        assert spy.commits() == []
        WRITES[write](ledger)
        # The acknowledgements were committed first, alone, at NORMAL...
        assert spy.commits() == [NORMAL]
        assert committed_outbox(path) == [offsets[2]]
        # ... and the write is in a transaction at FULL.
        assert ledger._conn is not None
        assert ledger._conn.in_transaction
        assert level(spy) == FULL
        ledger.commit()
        assert spy.commits() == [NORMAL, FULL]
        assert level(spy) == FULL
        assert ledger.integrity_check() == []
    with SqliteLedger(path) as reopened:
        # Offsets go on growing: the commit of the acknowledgements kept the next offset.
        result = reopened.record(make_fill("after"))
        assert result.offset is not None
        assert result.offset > max(o for o in offsets if o is not None)
        if write in ("record", "bust"):
            assert result.offset == offsets[2] + 2  # type: ignore[operator]
        assert reopened.watermark(venue="venue", account="account") == (5 if write == "watermark" else None)
        assert reopened.integrity_check() == []


def test_acknowledgements_in_a_durable_transaction_are_committed_with_it(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        first = ledger.record(make_fill("1")).offset
        ledger.commit()
        spy = spy_on(ledger)
        second = ledger.record(make_fill("2")).offset
        ledger.acknowledge([first])  # type: ignore[list-item]
        ledger.record(make_fill("3"))
        ledger.acknowledge([second])  # type: ignore[list-item]
        ledger.commit()
        assert spy.commits() == [FULL]
        assert level(spy) == FULL
        assert len(undelivered(ledger)) == 1


def test_with_synchronous_normal_nothing_changes(path: Path) -> None:
    with SqliteLedger(path, synchronous="normal") as ledger:
        spy = spy_on(ledger)
        offset = ledger.record(make_fill("1")).offset
        ledger.commit()
        ledger.acknowledge([offset])  # type: ignore[list-item]
        ledger.commit()
        ledger.acknowledge([offset])  # type: ignore[list-item]
        ledger.record(make_fill("2"))  # shares the transaction, as before
        ledger.commit()
        assert spy.commits() == [NORMAL, NORMAL, NORMAL]
        assert level(spy) == NORMAL
        assert not ledger._relaxed


# -- failures: back at FULL, and the ledger keeps working ---------------------------------------


def test_a_failed_acknowledgement_commit_restores_full(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        offset = ledger.record(make_fill("1")).offset
        ledger.commit()
        spy = spy_on(ledger)
        spy.failing["COMMIT"] = 1
        ledger.acknowledge([offset])  # type: ignore[list-item]
        with pytest.raises(LedgerWriteError, match="I/O"):
            ledger.commit()
        assert level(spy) == FULL
        assert undelivered(ledger) == [offset]  # rolled back
        ledger.commit()  # the failure was reported by the commit that failed
        ledger.record(make_fill("2"))
        ledger.commit()
        ledger.acknowledge([offset])  # type: ignore[list-item]
        ledger.commit()
        assert spy.commits() == [FULL, NORMAL]
        assert level(spy) == FULL
        assert committed_outbox(path) == [offset + 1]  # type: ignore[operator]
        assert ledger.integrity_check() == []


def test_a_failed_acknowledgement_commit_before_a_write_fails_the_write(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        offset = ledger.record(make_fill("1")).offset
        ledger.commit()
        spy = spy_on(ledger)
        ledger.acknowledge([offset])  # type: ignore[list-item]
        spy.failing["COMMIT"] = 1
        with pytest.raises(LedgerWriteError, match="commit the acknowledgements") as caught:
            ledger.record(make_fill("2"))
        assert isinstance(caught.value.__cause__, sqlite3.Error)
        assert level(spy) == FULL
        assert ledger.get(make_fill("2").key) is None
        assert undelivered(ledger) == [offset]
        # As after any failed write: the next commit says the changes were rolled back.
        with pytest.raises(LedgerWriteError, match="rolled back"):
            ledger.commit()
        assert ledger.record(make_fill("2")).outcome is RecordOutcome.RECORDED
        ledger.commit()
        assert spy.commits() == [FULL]
        assert level(spy) == FULL
        assert ledger.integrity_check() == []


def test_a_failed_acknowledgement_write_restores_full(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        offset = ledger.record(make_fill("1")).offset
        ledger.commit()
        spy = spy_on(ledger)
        spy.conn.execute("CREATE TEMP TRIGGER refuse BEFORE DELETE ON outbox BEGIN SELECT RAISE(ABORT, 'refused'); END")
        with pytest.raises(LedgerError, match="refused"):
            ledger.acknowledge([offset])  # type: ignore[list-item]
        spy.conn.execute("DROP TRIGGER refuse")
        assert level(spy) == FULL
        ledger.commit()  # nothing was written before the failed call: nothing lost
        ledger.acknowledge([offset])  # type: ignore[list-item]
        ledger.commit()
        assert spy.commits() == [NORMAL]
        assert level(spy) == FULL
        assert undelivered(ledger) == []


def test_acknowledgements_after_an_unreported_failure_share_the_doomed_transaction(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        offset = ledger.record(make_fill("1")).offset
        ledger.commit()
        spy = spy_on(ledger)
        spy.conn.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.fill_id = '2' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        ledger.record(make_fill("1b"))
        with pytest.raises(LedgerError, match="refused"):
            ledger.record(make_fill("2"))  # fill 1b goes with it, and the next commit will say so
        spy.conn.execute("DROP TRIGGER refuse")
        ledger.acknowledge([offset])  # type: ignore[list-item]
        ledger.record(make_fill("3"))
        # As before: everything since the last successful commit goes, acknowledgements too.
        with pytest.raises(LedgerWriteError, match="rolled back"):
            ledger.commit()
        assert spy.commits() == []
        assert undelivered(ledger) == [offset]
        assert ledger.get(make_fill("3").key) is None
        assert ledger.get(make_fill("1b").key) is None
        assert level(spy) == FULL


def test_a_failure_to_restore_full_never_lets_a_durable_write_begin_at_normal(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        offset = ledger.record(make_fill("1")).offset
        ledger.commit()
        spy = spy_on(ledger)
        spy.failing["PRAGMA SYNCHRONOUS=FULL"] = 2
        ledger.acknowledge([offset])  # type: ignore[list-item]
        ledger.commit()  # committed; restoring FULL failed (quietly: the commit did succeed)
        assert committed_outbox(path) == []
        assert level(spy) == NORMAL
        # The next durable write tries again before it begins, and fails rather than write at NORMAL.
        with pytest.raises(LedgerWriteError, match="I/O"):
            ledger.record(make_fill("2"))
        assert ledger._conn is not None
        assert not ledger._conn.in_transaction
        ledger.commit()  # nothing was written, nothing lost
        assert ledger.record(make_fill("2")).outcome is RecordOutcome.RECORDED
        assert level(spy) == FULL
        ledger.commit()
        assert spy.commits() == [NORMAL, FULL]
        assert ledger.integrity_check() == []


def test_a_process_crash_keeps_a_committed_acknowledgement(path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from reconcile_core.sqlite import SqliteLedger
        from reconcile_core.testing._ledger_contract import make_fill

        ledger = SqliteLedger({str(path)!r})
        offsets = [ledger.record(make_fill(str(n))).offset for n in range(3)]
        ledger.commit()
        ledger.acknowledge(offsets[:2])
        ledger.commit()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60)
    assert child.returncode == -9, child.stderr
    with SqliteLedger(path) as ledger:
        assert undelivered(ledger) == [3]
        assert ledger.integrity_check() == []


# -- any sequence: a transaction begun by acknowledge() commits at NORMAL and holds only acks --------

OPERATIONS = st.lists(
    st.sampled_from(["record", "duplicate", "bust", "watermark", "ack", "ack-old", "commit", "read"]),
    max_size=40,
)


@given(operations=OPERATIONS)
@example(operations=["record", "record", "ack", "commit", "ack", "commit"])
@example(operations=["record", "ack", "commit", "ack-old", "read", "bust", "ack", "commit"])
def test_only_acknowledgements_are_ever_committed_at_normal(
    tmp_path_factory: pytest.TempPathFactory, operations: list[str]
) -> None:
    path = tmp_path_factory.mktemp("acks") / "ledger.sqlite"
    ledger = SqliteLedger(path)
    try:
        spy = spy_on(ledger)
        recorded: list[int] = []
        acked: set[int] = set()
        for n, operation in enumerate(operations):
            if operation == "record":
                result = ledger.record(make_fill(f"f{n}", order_id=f"o{n % 3}"))
                if result.offset is not None:
                    recorded.append(result.offset)
            elif operation == "duplicate" and "record" in operations[:n]:
                ledger.record(make_fill(f"f{operations.index('record')}", order_id="o0"))
            elif operation == "bust":
                result_bust = ledger.bust(make_bust(f"f{n - 1}"))
                if result_bust.offset is not None:
                    recorded.append(result_bust.offset)
            elif operation == "watermark":
                ledger.advance_watermark(venue="venue", account="account", value=n)
            elif operation == "ack" and set(recorded) - acked:
                pending = [o for o in recorded if o not in acked]
                ledger.acknowledge(pending[:1])
                acked.update(pending[:1])
            elif operation == "ack-old" and acked:
                ledger.acknowledge([min(acked)])  # acknowledged already: deletes nothing
            elif operation == "commit":
                ledger.commit()
                assert level(spy) == FULL
            elif operation == "read":
                ledger.recorded_quantity(venue="venue", account="account", order_id="o0")
                ledger.count()
            else:
                continue  # nothing to do (nothing to acknowledge, say): no call to log
            # Logged after the call: a write that first commits acknowledgements logs after that commit.
            spy.log.append(("call", "ack" if operation.startswith("ack") else operation))
        ledger.commit()
        assert level(spy) == FULL
        calls: list[object] = []
        for kind, value in spy.log:
            if kind == "call":
                calls.append(value)
                continue
            # The transaction began with the first write after the last COMMIT.
            writes = [call for call in calls if call not in ("commit", "read")]
            assert writes, calls
            if writes[0] == "ack":
                assert value == NORMAL, calls
                assert set(writes) == {"ack"}, calls
            else:
                assert value == FULL, calls
            calls = []
        assert undelivered(ledger) == [o for o in recorded if o not in acked]
        assert ledger.integrity_check() == []
    finally:
        ledger.close()
    assert committed_outbox(path) == [o for o in recorded if o not in acked]
