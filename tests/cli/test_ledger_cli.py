"""``reconcile ledger``: stats, export and verify on a real ledger file."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from reconcile_core._cli import main
from reconcile_core.sqlite import SqliteLedger

from ..core._builders import bust, fill


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    with SqliteLedger(path) as ledger:
        ledger.record(fill("f1", price=Decimal("64852.9")))
        ledger.record(fill("f2"))
        ledger.record(fill("f3", account="acct-2"))
        ledger.bust(bust("f2"))
        ledger.commit()
    return path


class TestLedgerCommands:
    """Each subcommand reads the real file and says what it found."""

    def test_stats_json(self, ledger_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["ledger", "stats", "--ledger", str(ledger_path), "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert (stats["fills"], stats["busts"], stats["accounts"]) == (3, 1, 2)
        assert stats["undelivered"] == 4

    def test_stats_table(self, ledger_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["ledger", "stats", "--ledger", str(ledger_path)]) == 0
        out = capsys.readouterr().out
        assert "fills" in out
        assert str(ledger_path) in out

    def test_export_jsonl_filters_by_account(self, ledger_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["ledger", "export", "--ledger", str(ledger_path), "--account", "acct-1"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert sorted(r["fill_id"] for r in rows) == ["f1", "f2"]
        assert {r["price"] for r in rows if r["fill_id"] == "f1"} == {"64852.9"}

    def test_export_csv_to_file(self, ledger_path: Path, tmp_path: Path) -> None:
        out = tmp_path / "fills.csv"
        assert main(["ledger", "export", "--ledger", str(ledger_path), "--format", "csv", "-o", str(out)]) == 0
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
        assert len(rows) == 3
        assert {r["account"] for r in rows} == {"acct-1", "acct-2"}

    def test_verify_ok(self, ledger_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["ledger", "verify", "--ledger", str(ledger_path)]) == 0
        assert capsys.readouterr().out.strip() == "ok"

    def test_verify_finds_corruption(self, ledger_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        import sqlite3

        conn = sqlite3.connect(ledger_path)
        # Damage a derived total so the ledger's own invariants catch it.
        changed = conn.execute("UPDATE order_totals SET quantity = '999'").rowcount
        conn.commit()
        conn.close()
        assert changed > 0
        assert main(["ledger", "verify", "--ledger", str(ledger_path)]) == 1
        assert "problem:" in capsys.readouterr().out

    def test_missing_ledger_says_what_to_do(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["ledger", "stats", "--ledger", str(tmp_path / "nope.sqlite")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("reconcile: error: no ledger at")
        assert "Traceback" not in err

    def test_reads_while_a_writer_holds_the_ledger(self, ledger_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`reconcile ledger` works beside a running `reconcile run` (the single writer)."""
        with SqliteLedger(ledger_path):
            assert main(["ledger", "stats", "--ledger", str(ledger_path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["fills"] == 3


class TestPipesAndPlugins:
    """A closed pipe is not an error; an unknown venue is a configuration error."""

    def test_export_into_a_closed_pipe(self, tmp_path: Path) -> None:
        import subprocess
        import sys

        path = tmp_path / "big.sqlite"
        with SqliteLedger(path) as ledger:
            for i in range(5_000):
                ledger.record(fill(f"f{i}"))
            ledger.commit()
        export = subprocess.Popen(
            [sys.executable, "-m", "reconcile_core", "ledger", "export", "--ledger", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert export.stdout is not None
        first = export.stdout.readline()
        export.stdout.close()  # like `| head -1`
        _, err = export.communicate(timeout=30)
        assert json.loads(first)["fill_id"]
        assert export.returncode == 0
        assert b"Traceback" not in err
        assert b"BrokenPipe" not in err

    def test_unknown_venue_exits_2(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("NOPE_TOKEN", "x.eyJzdWIiOiIweDEyMyJ9.y")
        assert main(["run", "nope", "--ledger", str(tmp_path / "l.sqlite")]) == 2
        err = capsys.readouterr().err
        assert "no venue plugin named 'nope'" in err
        assert "paradex" in err, "it lists what is installed"
