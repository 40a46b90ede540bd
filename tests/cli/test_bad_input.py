"""Bad input gets one clear line and the documented exit code: never a traceback, never a loss."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from reconcile_core._cli import main
from reconcile_core.sqlite import SqliteLedger
from reconcile_paradex.testing import LoopbackEndpoints
from reconcile_paradex.testing._loopback import LoopbackServer

from ._shell import reconcile

#: A token whose payload names an account (``{"sub": "0x123"}``); the venue is never reached with it.
TOKEN = "x.eyJzdWIiOiIweDEyMyJ9.y"  # noqa: S105 - a sample, not a secret


def fails(argv: list[str], capsys: pytest.CaptureFixture[str], *, code: int = 2) -> str:
    """Run ``main``; the one error line it printed."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("reconcile: error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def refused_option(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """argparse's refusal of a bad option value: exit 2 and its one-line message."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("reconcile: error: argument "), err
    assert err.count("\n") == 1, err  # one line, as every error of the command line
    return err


def urls(endpoints: LoopbackEndpoints) -> list[str]:
    return ["--rest-url", endpoints.rest_url, "--ws-url", endpoints.ws_url]


class TestTokenFile:
    """A token file that is not a short text file is refused, and its content never shown."""

    def run(self, token_file: Path, tmp_path: Path) -> list[str]:
        return ["run", "paradex", "--token-file", str(token_file), "--ledger", str(tmp_path / "l.sqlite")]

    def test_not_utf8(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        token_file = tmp_path / "token"
        token_file.write_bytes(b"secret\xff\xfe")
        err = fails(self.run(token_file, tmp_path), capsys)
        assert f"the token file {token_file} is not UTF-8 text" in err
        assert "secret" not in err

    def test_endless(self, tmp_path: Path) -> None:
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero here")
        # A child with little memory: reading all of /dev/zero must not be what stops it.
        argv = self.run(Path("/dev/zero"), tmp_path)
        done = reconcile(*argv, limit_memory=1 << 30)
        assert done.returncode == 2, done.stderr[-500:]
        assert done.stderr == "reconcile: error: the token file /dev/zero is larger than 64 KiB: is it the token?\n"

    def test_too_large(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        token_file = tmp_path / "token"
        token_file.write_text("a" * (64 * 1024 + 1))
        assert "is larger than 64 KiB" in fails(self.run(token_file, tmp_path), capsys)

    def test_deeply_nested_payload(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        payload = base64.urlsafe_b64encode(b"[" * 10_000 + b"]" * 10_000).rstrip(b"=").decode()
        token_file = tmp_path / "token"
        token_file.write_text(f"x.{payload}.y")
        assert "cannot tell the account from the token" in fails(self.run(token_file, tmp_path), capsys)


class TestNumbers:
    """Durations must be finite and positive; a port must be a TCP port."""

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("--timeout", "nan"),
            ("--timeout", "inf"),
            ("--timeout", "-1"),
            ("--timeout", "0"),
            ("--timeout", "soon"),
            ("--reconcile-interval", "nan"),
            ("--reconcile-interval", "-1"),
            ("--reconcile-interval", "0"),
        ],
    )
    def test_run_durations(self, option: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
        err = refused_option(["run", "paradex", f"{option}={value}"], capsys)
        assert f"argument {option}: " in err
        assert "positive number of seconds" in err

    @pytest.mark.parametrize("value", ["inf", "nan", "0"])
    def test_demo_duration(self, value: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert "positive number of seconds" in refused_option(["demo", f"--duration={value}"], capsys)

    @pytest.mark.parametrize("value", ["nan", "-1"])
    def test_audit_timeout(self, value: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert "positive number of seconds" in refused_option(["audit", "paradex", f"--timeout={value}"], capsys)

    @pytest.mark.parametrize("value", ["70000", "-1", "0", "http"])
    def test_metrics_port(self, value: str, capsys: pytest.CaptureFixture[str]) -> None:
        err = refused_option(["run", "paradex", f"--metrics-port={value}"], capsys)
        assert "argument --metrics-port: " in err
        assert "1 to 65535" in err


class TestFiles:
    def test_ledger_under_a_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("PARADEX_TOKEN", TOKEN)
        (tmp_path / "notdb.txt").write_text("my notes\n")
        err = fails(["run", "paradex", "--ledger", str(tmp_path / "notdb.txt" / "x.sqlite")], capsys)
        assert f"cannot create the ledger's directory {tmp_path / 'notdb.txt'}" in err
        assert (tmp_path / "notdb.txt").read_text() == "my notes\n"

    def test_run_into_a_full_device(self, sim: Any, tmp_path: Path) -> None:
        """Nothing is lost: the fills not printed are printed by the next run."""
        if not Path("/dev/full").exists():
            pytest.skip("no /dev/full here")
        simulator, endpoints = sim
        account = simulator.accounts[0]
        env = {"PARADEX_TOKEN": simulator.issue_read_only_token(account)}
        run = ["run", "paradex", *urls(endpoints), "--ledger", str(tmp_path / "l.sqlite"), "--once"]
        with Path("/dev/full").open("w") as full:
            done = reconcile(*run, "--output", "jsonl", stdout=full, env=env)
        assert done.returncode == 2
        assert done.stderr == "reconcile: error: cannot write the standard output: No space left on device\n"
        again = reconcile(*run, "--output", "jsonl", env=env)
        assert again.returncode == 0, again.stderr
        printed = {p["fill_id"] for p in map(json.loads, again.stdout.splitlines()) if p["type"] == "fill"}
        truth = simulator.truth(account)
        assert printed == {f.id for f in truth.fills} | {f.id for f in truth.busted_fills}


class TestAuditDeadline:
    def test_a_venue_too_slow_in_all(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each request may be quick enough while the whole read is not: one line, exit 1."""
        server = LoopbackServer(_stalling_app)
        endpoints = server.start()
        try:
            monkeypatch.setenv("PARADEX_TOKEN", TOKEN)
            ledger = tmp_path / "l.sqlite"
            SqliteLedger(ledger).close()
            argv = ["audit", "paradex", *urls(endpoints), "--ledger", str(ledger), "--timeout", "0.3"]
            err = fails(argv, capsys, code=1)
        finally:
            server.stop()
        assert err.startswith("reconcile: error: cannot reach the venue: ")
        assert "within 3 s" in err


async def _stalling_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A venue that tells the time and lists no open order at once, and never lists its fills."""
    if scope["type"] != "http":
        return
    if scope["path"].endswith("/system/time"):
        body: dict[str, Any] = {"server_time": "1893456000000"}
    elif scope["path"].endswith("/orders"):
        body = {"results": []}
    else:
        while (await receive())["type"] != "http.disconnect":
            pass  # never answer; return when the client gives up
        return
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})
