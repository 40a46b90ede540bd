"""What the command says, and with which exit code, is what docs/cli.md says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconcile_core._cli import main
from reconcile_core.jsonl import REQUIRED_FIELDS
from reconcile_core.sqlite import SqliteLedger

from ..core._builders import fill

#: A token naming the account ``0x123`` (``{"sub": "0x123"}``); the venue is never reached with it.
TOKEN = "x.eyJzdWIiOiIweDEyMyJ9.y"  # noqa: S105 - a sample, not a secret
#: Nothing listens there: the connection is refused at once.
CLOSED = ["--rest-url", "http://127.0.0.1:9/v1", "--ws-url", "ws://127.0.0.1:9/v1"]


class TestDebug:
    def test_keeps_the_exit_code_and_adds_the_traceback(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv("PARADEX_TOKEN", raising=False)
        assert main(["--debug", "run", "paradex", "--ledger", str(tmp_path / "l.sqlite")]) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err
        assert err.splitlines()[-1].startswith("reconcile: error: no token: ")


class TestUnknownVenue:
    def test_named_before_the_token_is_read(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv("KRAKEN_TOKEN", raising=False)
        for command in ("run", "audit"):
            assert main([command, "kraken", "--ledger", str(tmp_path / "l.sqlite")]) == 2
            err = capsys.readouterr().err
            assert err.startswith("reconcile: error: no venue plugin named 'kraken'"), err


class TestUnreachable:
    def test_says_it_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("PARADEX_TOKEN", TOKEN)
        # A --timeout longer than the plugin's retries: the refused connection is what is reported.
        argv = ["run", "paradex", *CLOSED, "--timeout", "60", "--once", "--ledger", str(tmp_path / "l.sqlite")]
        assert main(argv) == 1
        err = capsys.readouterr().err.splitlines()[-1]
        assert err.startswith("reconcile: error: cannot reach the venue: GET /system/time: "), err
        assert err.count("cannot reach the venue") == 1, err
        assert err.endswith("; check the URL and your network"), err


class TestExportFollowsTheContract:
    def test_each_line_is_a_fill_line(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "l.sqlite"
        with SqliteLedger(path) as ledger:
            ledger.record(fill("f1"))
            ledger.commit()
        assert main(["ledger", "export", "--ledger", str(path)]) == 0
        (line,) = capsys.readouterr().out.splitlines()
        row = json.loads(line)
        assert row["type"] == "fill"
        assert REQUIRED_FIELDS["fill"] <= set(row)
        assert not {"offset", "redelivery"} & set(row)


class TestAccountAndToken:
    """A token reads its own account: an --account that names another one is refused."""

    def test_another_account(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("PARADEX_TOKEN", TOKEN)
        for command in ("run", "audit"):
            argv = [command, "paradex", *CLOSED, "--account", "0xdeadbeef", "--ledger", str(tmp_path / "l.sqlite")]
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err == (
                "reconcile: error: account 0xdeadbeef is not the token's account (0x123): "
                "a Paradex token reads its own account only\n"
            )
            assert not (tmp_path / "l.sqlite").exists()

    @pytest.mark.parametrize("account", ["0x123", "0x0123", "0X00123"])
    def test_the_same_account_written_otherwise(
        self, account: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("PARADEX_TOKEN", TOKEN)
        argv = ["run", "paradex", *CLOSED, "--timeout", "1", "--account", account, "--ledger", str(tmp_path / "l")]
        assert main(argv) == 1, "accepted: it went on to the venue, which is not there"
        assert "cannot reach the venue" in capsys.readouterr().err


class TestCredentialsInUrls:
    """A password in a URL is never echoed."""

    @pytest.mark.parametrize(
        ("rest_url", "shown"),
        [
            ("http://user:PASSWORD@127.0.0.1:99999/v1", "http://***@127.0.0.1:99999/v1"),
            ("ftp://user:PASSWORD@127.0.0.1/v1", "ftp://user:***@127.0.0.1/v1"),
            ("https://PASSWORD@127.0.0.1:99999/v1", "https://***@127.0.0.1:99999/v1"),
            ("http://user:PASS/WORD@127.0.0.1:1/v1", "http://***@127.0.0.1:1/v1"),  # "/" makes PASS the port
            ("user:PASSWORD@127.0.0.1:1/v1", "user:***@127.0.0.1:1/v1"),  # no scheme: quoted back as no URL
        ],
    )
    def test_redacted(
        self,
        rest_url: str,
        shown: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("PARADEX_TOKEN", TOKEN)
        ws_url = rest_url.replace("http", "ws", 1).replace("ftp", "ws", 1) if "://" in rest_url else "ws://h/v1"
        argv = ["run", "paradex", "--rest-url", rest_url, "--ws-url", ws_url, "--ledger", str(tmp_path / "l.sqlite")]
        for debug in ([], ["--debug"]):
            assert main([*debug, *argv]) == 2
            err = capsys.readouterr().err
            assert "PASS" not in err
            assert "WORD" not in err
            assert shown in err.splitlines()[-1]
