"""SqliteLedger's per-fill fast paths: what each shortcut must never change.

``record`` inserts first and looks up only when the key is taken (or looks up
first when the last fill from the same source was known); order totals live in
a bounded in-memory map and are written behind, before any other call reads the
file and at commit; a TEMP trigger fills the outbox. These tests pin what could
go wrong: a stale total after a rollback, a total not yet written when something
reads the file, a crash, an unbounded map, a trigger leaking into the file.
"""

from __future__ import annotations

import itertools
import signal
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile_core import FillKind, Liquidity, MemoryLedger, RecordOutcome, Side, Source, _sqlite_ledger
from reconcile_core._sqlite_codec import encode_fill
from reconcile_core._types import Fill
from reconcile_core.errors import LedgerError, LedgerWriteError
from reconcile_core.sqlite import SqliteLedger
from reconcile_core.testing._ledger_contract import make_bust, make_fill

VENUE, ACCOUNT = "venue", "account"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


def quantity(ledger: SqliteLedger | MemoryLedger, order_id: str = "order-1", account: str = ACCOUNT) -> Decimal:
    return ledger.recorded_quantity(venue=VENUE, account=account, order_id=order_id)


def stored_totals(path: Path) -> dict[str, str]:
    """order_totals as another connection sees it (committed rows only)."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT order_id, quantity FROM order_totals").fetchall())
    finally:
        conn.close()


def refuse(ledger: SqliteLedger, when: str) -> sqlite3.Connection:
    """Make the writes ``when`` names fail ("refused"): a TEMP trigger on the writer's connection.

    Created outside a transaction, so that the rollback it causes keeps it; drop it with
    ``DROP TRIGGER refuse``.
    """
    conn = ledger._conn
    assert conn is not None
    conn.execute(f"CREATE TEMP TRIGGER refuse {when} BEGIN SELECT RAISE(ABORT, 'refused'); END")
    return conn


# -- encode_fill ------------------------------------------------------------------------------

_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9)


_fills = st.builds(
    make_fill,
    kind=st.sampled_from(list(FillKind)),
    side=st.sampled_from(list(Side)),
    liquidity=st.sampled_from(list(Liquidity)),
    source=st.sampled_from(list(Source)),
    price=_decimals,
    fee=_decimals,
    realized_pnl=st.none() | _decimals,
    order_id=st.none() | st.text(max_size=5),
    client_id=st.none() | st.text(max_size=5),
)


@given(fill=_fills)
def test_encode_fill_is_the_plain_encoding(fill: Fill) -> None:
    assert encode_fill(fill) == _reference_encoding(fill)


def _reference_encoding(fill: Fill) -> tuple[object, ...]:
    """What encode_fill wrote before it was made fast: the column order and text the files hold."""
    return (
        fill.kind.value,
        fill.order_id,
        fill.instrument,
        fill.side.value,
        str(fill.price),
        str(fill.size),
        str(fill.fee),
        fill.fee_currency,
        fill.liquidity.value,
        fill.time,
        fill.source.value,
        fill.client_id,
        None if fill.realized_pnl is None else str(fill.realized_pnl),
    )


# -- record: insert first or look up first, the same answers ----------------------------------


@pytest.mark.parametrize("expect_known", [False, True])
@pytest.mark.parametrize("source", [Source.WS, Source.REST])
def test_both_record_orders_give_the_same_outcomes(path: Path, expect_known: bool, source: Source) -> None:
    """Whichever order record guesses, every outcome is the one MemoryLedger gives."""
    sqlite_ledger = SqliteLedger(path, synchronous="normal")
    memory = MemoryLedger()
    fills = [
        make_fill("new", source=source),
        make_fill("new", source=source),  # duplicate
        make_fill("new", source=source, size=Decimal("0.0100")),  # duplicate in another notation
        make_fill("new", source=source, price=Decimal(1)),  # conflict
        make_fill("new", source=source, price=Decimal(1)),  # the same conflict: reported once
        make_fill("late", source=source),  # busted before it arrives
        make_fill("late", source=source, fill_type="LIQUIDATION"),
        make_fill("other", source=source, order_id=None),
    ]
    try:
        for ledger in (sqlite_ledger, memory):
            ledger.bust(make_bust("late"))
        for fill in fills:
            sqlite_ledger._expect_known = [expect_known, expect_known]
            got, want = sqlite_ledger.record(fill), memory.record(fill)
            assert got == want, fill
        assert quantity(sqlite_ledger) == quantity(memory)
        assert sqlite_ledger.integrity_check() == []
        sqlite_ledger.commit()
        assert [d.offset for d in sqlite_ledger.undelivered(venue=VENUE, account=ACCOUNT)] == [
            d.offset for d in memory.undelivered(venue=VENUE, account=ACCOUNT)
        ]
    finally:
        sqlite_ledger.close()


def test_the_outbox_trigger_stays_out_of_the_file(path: Path) -> None:
    with SqliteLedger(path, synchronous="normal") as ledger:
        ledger.record(make_fill("1"))
        ledger.commit()
        other = sqlite3.connect(path)
        try:
            assert other.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall() == []
            assert other.execute("SELECT delivery_offset, fill_id FROM outbox").fetchall() == [(1, "1")]
        finally:
            other.close()


# -- order totals: coherent after a rollback ----------------------------------------------------


def test_a_failed_record_restores_the_totals(path: Path) -> None:
    with SqliteLedger(path, synchronous="normal") as ledger:
        ledger.record(make_fill("1"))
        ledger.commit()
        conn = refuse(ledger, "BEFORE INSERT ON outbox WHEN NEW.fill_id = '3'")
        ledger.record(make_fill("2"))  # uncommitted: remembered and held back
        assert quantity(ledger) == Decimal("0.020")
        with pytest.raises(LedgerError, match="refused"):
            ledger.record(make_fill("3"))
        conn.execute("DROP TRIGGER refuse")
        # The whole transaction is gone (fill 2 with it); so is what the map knew of it.
        assert quantity(ledger) == Decimal("0.010")
        assert ledger._pending_totals == {}
        with pytest.raises(LedgerWriteError, match="rolled back"):
            ledger.commit()
        assert quantity(ledger) == Decimal("0.010")
        assert ledger.record(make_fill("2")).outcome is RecordOutcome.RECORDED
        assert quantity(ledger) == Decimal("0.020")
        ledger.commit()
        assert ledger.integrity_check() == []
    assert stored_totals(path) == {"order-1": "0.020"}


def test_a_failed_record_many_records_none_of_the_batch_and_names_the_failing_fill(path: Path) -> None:
    with SqliteLedger(path, synchronous="normal") as ledger:
        ledger.record(make_fill("1"))
        ledger.commit()
        conn = refuse(ledger, "BEFORE INSERT ON outbox WHEN NEW.fill_id = '4'")
        with pytest.raises(LedgerError, match=r"record the fill venue:account:FILL:4\b.*refused"):
            ledger.record_many([make_fill("2"), make_fill("3", order_id="order-2"), make_fill("4"), make_fill("5")])
        conn.execute("DROP TRIGGER refuse")
        assert quantity(ledger) == Decimal("0.010")
        assert quantity(ledger, "order-2") == 0
        with pytest.raises(LedgerWriteError, match="rolled back"):
            ledger.commit()
        assert ledger.count() == 1
        results = ledger.record_many([make_fill("2"), make_fill("3", order_id="order-2")])
        assert [r.outcome for r in results] == [RecordOutcome.RECORDED, RecordOutcome.RECORDED]
        ledger.commit()
        assert ledger.integrity_check() == []
    assert stored_totals(path) == {"order-1": "0.020", "order-2": "0.010"}


def test_a_full_disk_in_the_middle_of_a_batch_restores_the_totals(path: Path) -> None:
    ledger = SqliteLedger(path, synchronous="normal")
    try:
        for n in range(5):
            ledger.record(make_fill(f"c{n}", order_id=f"o{n}"))
        ledger.commit()
        conn = ledger._conn
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(LedgerWriteError, match="full"):  # noqa: PT012 - the loop is the setup
            for n in range(5000):
                ledger.record(make_fill(f"more-{n}", order_id=f"o{n % 7}", size=Decimal(1)))
        conn.execute("PRAGMA max_page_count = 1073741823")
        for n in range(7):
            expected = Decimal("0.010") if n < 5 else Decimal(0)
            assert quantity(ledger, f"o{n}") == expected
        with pytest.raises(LedgerWriteError, match="rolled back"):
            ledger.commit()
        assert ledger.integrity_check() == []
    finally:
        ledger.close()


def test_a_failed_commit_restores_the_totals(path: Path) -> None:
    with SqliteLedger(path, synchronous="normal") as ledger:
        ledger.record(make_fill("1"))
        ledger.commit()
        # The held-back totals are written at commit: make that write fail.
        conn = refuse(ledger, "BEFORE UPDATE ON order_totals")
        ledger.record(make_fill("2"))
        with pytest.raises(LedgerError, match="refused"):
            ledger.commit()
        conn.execute("DROP TRIGGER refuse")
        assert quantity(ledger) == Decimal("0.010")
        assert ledger.get(make_fill("2").key) is None
        ledger.commit()  # the failure was reported by the commit that failed
        assert ledger.integrity_check() == []


def test_a_failed_write_behind_before_a_read_rolls_back(path: Path) -> None:
    with SqliteLedger(path, synchronous="normal") as ledger:
        ledger.record(make_fill("1"))
        ledger.commit()
        conn = refuse(ledger, "BEFORE UPDATE ON order_totals")
        ledger.record(make_fill("2"))
        with pytest.raises(LedgerError, match="refused"):
            ledger.count()
        conn.execute("DROP TRIGGER refuse")
        # Fill 2 cannot stay without its total: the transaction went, as a failed write's does.
        assert ledger.count() == 1
        assert quantity(ledger) == Decimal("0.010")
        with pytest.raises(LedgerWriteError, match="rolled back"):
            ledger.commit()
        assert ledger.integrity_check() == []


# -- order totals: written behind, but before anything reads them -----------------------------


def test_totals_are_written_before_other_calls_read_the_file(path: Path) -> None:
    with SqliteLedger(path, synchronous="normal") as ledger:
        for n in range(3):
            ledger.record(make_fill(f"f{n}", order_id=f"o{n % 2}"))
        assert ledger._pending_totals, "the totals are held back"
        conn = ledger._conn
        assert conn is not None
        for n, read in enumerate(
            (
                ledger.count,
                lambda: ledger.get(make_fill("f0").key),
                lambda: ledger.undelivered(venue=VENUE, account=ACCOUNT),
                ledger.stats,
                lambda: list(ledger.iter_fills()),
                ledger.integrity_check,
                lambda: ledger.bust(make_bust("f2")),
                lambda: ledger.acknowledge([1]),
                lambda: ledger.knows_fill_id(venue=VENUE, account=ACCOUNT, fill_id="f0"),
                lambda: ledger.is_busted(venue=VENUE, account=ACCOUNT, fill_id="f0"),
                lambda: ledger.watermark(venue=VENUE, account=ACCOUNT),
                lambda: ledger.advance_watermark(venue=VENUE, account=ACCOUNT, value=1),
            )
        ):
            ledger.record(make_fill(f"x{n}", order_id="o0"))
            assert ledger._pending_totals
            read()
            assert ledger._pending_totals == {}
            in_file = dict(conn.execute("SELECT order_id, quantity FROM order_totals").fetchall())
            assert in_file == {o: str(quantity(ledger, o)) for o in ("o0", "o1")}
        assert ledger.integrity_check() == []


def test_totals_are_written_at_commit(path: Path) -> None:
    with SqliteLedger(path, synchronous="normal") as ledger:
        for n in range(5):
            ledger.record(make_fill(f"f{n}", order_id=f"o{n % 2}", size=Decimal("1.5")))
        assert stored_totals(path) == {}
        ledger.commit()
        assert ledger._pending_totals == {}
        assert stored_totals(path) == {"o0": "4.5", "o1": "3.0"}
        ledger.record(make_fill("f9", order_id="o1", size=Decimal("0.25")))
    assert stored_totals(path) == {"o0": "4.5", "o1": "3.25"}  # close commits


def test_a_crash_before_commit_loses_only_the_uncommitted_batch(path: Path) -> None:
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        from decimal import Decimal
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from reconcile_core.sqlite import SqliteLedger
        from reconcile_core.testing._ledger_contract import make_fill
        ledger = SqliteLedger(sys.argv[1], synchronous="normal")
        for n in range(30):
            ledger.record(make_fill(f"c{{n}}", order_id=f"o{{n % 4}}", size=Decimal(1)))
        ledger.commit()
        for n in range(30):
            ledger.record(make_fill(f"u{{n}}", order_id=f"o{{n % 5}}", size=Decimal(2)))
        assert ledger._pending_totals
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with SqliteLedger(path, synchronous="normal") as ledger:
        assert ledger.integrity_check() == []
        assert ledger.count() == 30
        assert [quantity(ledger, f"o{n}") for n in range(5)] == [Decimal(8), Decimal(8), Decimal(7), Decimal(7), 0]
        assert len(ledger.undelivered(venue=VENUE, account=ACCOUNT)) == 30


# -- order totals: bounded, and never kept by a reader --------------------------------------------


def test_the_totals_map_and_the_held_back_writes_are_bounded(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sqlite_ledger, "_ORDER_CACHE_SIZE", 8)
    monkeypatch.setattr(_sqlite_ledger, "_PENDING_TOTALS_LIMIT", 5)
    memory = MemoryLedger()
    with SqliteLedger(path, synchronous="normal") as ledger:
        for n in range(200):
            fill = make_fill(f"f{n}", order_id=f"o{(n * 7) % 23}", size=Decimal(n % 4 + 1))
            assert ledger.record(fill) == memory.record(fill)
            assert len(ledger._totals) <= 8
            assert len(ledger._pending_totals) < 5
            if n % 3 == 0:
                order_id = f"o{(n * 5) % 29}"
                assert quantity(ledger, order_id) == quantity(memory, order_id)
            if n % 50 == 49:
                ledger.commit()
        for n in range(29):
            assert quantity(ledger, f"o{n}") == quantity(memory, f"o{n}")
        assert len(ledger._totals) <= 8
        assert ledger.integrity_check() == []


def test_a_reader_keeps_no_totals(path: Path) -> None:
    with SqliteLedger(path, synchronous="normal") as writer:
        writer.record(make_fill("1"))
        writer.commit()
        with SqliteLedger(path, read_only=True) as reader:
            assert quantity(reader) == Decimal("0.010")
            writer.record(make_fill("2"))
            writer.commit()
            assert quantity(reader) == Decimal("0.020"), "a reader sees every new commit"
            assert not reader._totals


def test_a_total_pushed_out_of_the_map_before_it_is_written_is_not_lost(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite_ledger, "_ORDER_CACHE_SIZE", 4)
    with SqliteLedger(path, synchronous="normal") as ledger:
        ledger.record(make_fill("a1", order_id="a", size=Decimal(1)))
        ledger.commit()
        ledger.record(make_fill("a2", order_id="a", size=Decimal(2)))  # 3, held back
        for n in range(10):  # reading other orders pushes "a" out of the map
            assert quantity(ledger, f"other-{n}") == 0
        assert ledger._pending_totals
        assert quantity(ledger, "a") == Decimal(3)
        for n in range(10):
            assert quantity(ledger, f"other-{n}") == 0
        ledger.record(make_fill("a3", order_id="a", size=Decimal(4)))
        assert quantity(ledger, "a") == Decimal(7)
        ledger.commit()
        assert ledger.integrity_check() == []
    assert stored_totals(path) == {"a": "7"}


# -- acknowledgements: deleted as runs of offsets ------------------------------------------------


@given(st.lists(st.integers(1, 60), max_size=40))
def test_runs_cover_exactly_the_offsets(offsets: list[int]) -> None:
    runs = _sqlite_ledger._runs(offsets)
    covered = [n for first, last in runs for n in range(first, last + 1)]
    assert covered == sorted(set(offsets))
    for (_, last), (first, _) in itertools.pairwise(runs):
        assert first > last + 1  # apart: two runs that touch would be one


def test_acknowledging_a_sparse_set_deletes_exactly_those_entries(path: Path) -> None:
    with SqliteLedger(path, synchronous="normal") as ledger:
        offsets: list[int] = []
        for n in range(12):
            if n == 5:  # another account's entry between two acknowledged ones
                other = ledger.record(make_fill("x", account="other")).offset
            offset = ledger.record(make_fill(str(n))).offset
            assert offset is not None
            offsets.append(offset)
        ledger.commit()
        taken = [offsets[i] for i in (0, 1, 2, 4, 5, 7, 8, 11)] + [offsets[1]]  # a repeat, too
        ledger.acknowledge(taken)
        ledger.commit()
        left = [d.offset for d in ledger.undelivered(venue=VENUE, account=ACCOUNT)]
        assert left == [offsets[i] for i in (3, 6, 9, 10)]
        assert [d.offset for d in ledger.undelivered(venue=VENUE, account="other")] == [other]
