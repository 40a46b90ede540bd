"""``reconcile ledger``: stats, export and verify on a real ledger file."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from reconcile_core._cli import main
from reconcile_core.sqlite import SqliteLedger

from ..core._builders import bust, fill
from ._shell import closed_pipe, reconcile


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

    def test_verify_keeps_its_verdict_into_a_closed_pipe(self, ledger_path: Path) -> None:
        """`reconcile ledger verify | head -1` still says a problem was found."""
        import sqlite3

        with contextlib.closing(sqlite3.connect(ledger_path)) as conn, conn:
            conn.execute("UPDATE order_totals SET quantity = '999'")
        with closed_pipe() as stdout:
            assert reconcile("ledger", "verify", "--ledger", str(ledger_path), stdout=stdout).returncode == 1

    def test_verify_keeps_a_clean_verdict_into_a_closed_pipe(self, ledger_path: Path) -> None:
        """The verdict is kept, not replaced by 1: a sound ledger still exits 0."""
        with closed_pipe() as stdout:
            done = reconcile("ledger", "verify", "--ledger", str(ledger_path), stdout=stdout)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr

    def test_verify_ok_into_a_closed_pipe(self, ledger_path: Path) -> None:
        with closed_pipe() as stdout:
            assert reconcile("ledger", "verify", "--ledger", str(ledger_path), stdout=stdout).returncode == 0

    def test_a_closed_pipe_before_the_verdict_is_not_a_success(
        self, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def closed(self: SqliteLedger) -> list[str]:
            raise BrokenPipeError(32, "Broken pipe")

        monkeypatch.setattr(SqliteLedger, "integrity_check", closed)
        assert main(["ledger", "verify", "--ledger", str(ledger_path)]) == 1

    def test_unknown_venue_exits_2(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("NOPE_TOKEN", "x.eyJzdWIiOiIweDEyMyJ9.y")
        assert main(["run", "nope", "--ledger", str(tmp_path / "l.sqlite")]) == 2
        err = capsys.readouterr().err
        assert "no venue plugin named 'nope'" in err
        assert "paradex" in err, "it lists what is installed"


class TestExportOutput:
    """``export -o`` never damages the ledger, and never leaves a truncated output."""

    @pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal", ".lock"])
    def test_refuses_to_write_over_the_ledger(self, ledger_path: Path, suffix: str) -> None:
        # In a child process: truncating a ledger SQLite has mapped kills its process (SIGBUS).
        target = Path(f"{ledger_path}{suffix}")
        before = target.read_bytes() if target.exists() else None
        done = reconcile("ledger", "export", "--ledger", str(ledger_path), "-o", str(target))
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("reconcile: error: --output"), done.stderr
        assert "the ledger's own file" in done.stderr
        assert (target.read_bytes() if target.exists() else None) == before
        with SqliteLedger(ledger_path, read_only=True) as ledger:
            assert len(list(ledger.iter_fills())) == 3

    def test_refuses_the_ledger_by_another_name(self, ledger_path: Path) -> None:
        alias = ledger_path.parent / "alias.sqlite"
        alias.symlink_to(ledger_path.name)
        done = reconcile("ledger", "export", "--ledger", str(ledger_path), "-o", str(alias))
        assert done.returncode == 2, done.stderr
        assert "the ledger's own file" in done.stderr
        with SqliteLedger(ledger_path, read_only=True) as ledger:
            assert len(list(ledger.iter_fills())) == 3

    def test_a_failed_export_leaves_the_old_output(
        self, ledger_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "fills.jsonl"
        out.write_text("previous export\n")

        def broken(self: SqliteLedger, **_: object) -> object:
            yield fill("f1")
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(SqliteLedger, "iter_fills", broken)
        assert main(["ledger", "export", "--ledger", str(ledger_path), "-o", str(out)]) != 0
        assert "Traceback" not in capsys.readouterr().err
        assert out.read_text() == "previous export\n"
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("fills", ".fills"))) == ["fills.jsonl"]

    @pytest.mark.parametrize("where", ["missing-dir/x.jsonl", "."])
    def test_an_unwritable_output_is_one_line(
        self, ledger_path: Path, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        target = tmp_path / where
        assert main(["ledger", "export", "--ledger", str(ledger_path), "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"reconcile: error: cannot write {target}")
        assert err.count("\n") == 1, err

    def test_the_output_gets_the_permissions_a_plain_write_would_give(self, ledger_path: Path, tmp_path: Path) -> None:
        fresh, replaced = tmp_path / "fresh.jsonl", tmp_path / "replaced.jsonl"
        replaced.write_text("old\n")
        replaced.chmod(0o640)
        umask = os.umask(0o022)
        try:
            for target in (fresh, replaced):
                assert main(["ledger", "export", "--ledger", str(ledger_path), "-o", str(target)]) == 0
        finally:
            os.umask(umask)
        assert fresh.stat().st_mode & 0o777 == 0o644
        assert replaced.stat().st_mode & 0o777 == 0o640
        assert len(replaced.read_text().splitlines()) == 3

    def test_export_to_a_device(self, ledger_path: Path) -> None:
        """A device (``-o /dev/null``) is written in place: there is nothing to rename."""
        assert main(["ledger", "export", "--ledger", str(ledger_path), "-o", os.devnull]) == 0

    @pytest.mark.parametrize("via", ["fd", "link"])
    def test_export_to_standard_output_by_name(self, ledger_path: Path, tmp_path: Path, via: str) -> None:
        """``-o /dev/stdout``: a link to ``/proc/self/fd/1``. Never the real ``/dev/stdout`` here: code
        that renamed over the name would replace the machine's (as root, the old code did)."""
        if not Path("/proc/self/fd/1").exists():
            pytest.skip("no /proc/self/fd here")
        name = Path("/proc/self/fd/1")
        if via == "link":
            name = tmp_path / "stdout"
            name.symlink_to("/proc/self/fd/1")
        out = tmp_path / "captured.jsonl"
        with out.open("w") as stdout:
            done = reconcile("ledger", "export", "--ledger", str(ledger_path), "-o", str(name), stdout=stdout)
        assert done.returncode == 0, done.stderr
        assert len(out.read_text().splitlines()) == 3
        assert name.is_symlink()  # still a link: the output went through it

    def test_a_symbolic_link_is_written_through_and_kept(self, ledger_path: Path, tmp_path: Path) -> None:
        target, link = tmp_path / "real.jsonl", tmp_path / "latest.jsonl"
        target.write_text("old\n")
        link.symlink_to(target.name)
        assert main(["ledger", "export", "--ledger", str(ledger_path), "-o", str(link)]) == 0
        assert link.is_symlink()
        assert len(target.read_text().splitlines()) == 3

    def test_export_to_a_full_device_is_one_line(self, ledger_path: Path) -> None:
        if not Path("/dev/full").exists():
            pytest.skip("no /dev/full here")
        with Path("/dev/full").open("w") as full:
            done = reconcile("ledger", "export", "--ledger", str(ledger_path), stdout=full)
        assert done.returncode == 2
        assert done.stderr == "reconcile: error: cannot write the standard output: No space left on device\n"
