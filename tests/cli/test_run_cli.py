"""``reconcile run`` and ``reconcile audit`` against the Paradex simulator on real loopback sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reconcile_core._cli import main
from reconcile_core.jsonl import REQUIRED_FIELDS
from reconcile_core.sqlite import SqliteLedger
from reconcile_paradex.testing import LoopbackEndpoints
from reconcile_paradex.testing._loopback import LoopbackServer

from ._shell import closed_pipe, reconcile

DECIMAL_FIELDS = {"price", "size", "fee", "filled", "avg_price"}
TIME_FIELDS = {"created_at", "updated_at", "started_at"}


def run_args(endpoints: LoopbackEndpoints, ledger: Path, *extra: str) -> list[str]:
    return [
        "run",
        "paradex",
        "--rest-url",
        endpoints.rest_url,
        "--ws-url",
        endpoints.ws_url,
        "--ledger",
        str(ledger),
        *extra,
    ]


def check_contract(line: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(line)
    kind = payload["type"]
    missing = REQUIRED_FIELDS[kind] - set(payload)
    assert not missing, f"{kind} lacks {missing}: {line}"
    for name in DECIMAL_FIELDS & set(payload):
        assert payload[name] is None or isinstance(payload[name], str), f"{name} must be a string: {line}"
    for name in TIME_FIELDS & set(payload):
        assert isinstance(payload[name], int), f"{name} must be integer ms: {line}"
    return payload


class TestRunOnce:
    """``--once --output jsonl``: every line follows the contract, every fill arrives."""

    def test_once_jsonl(
        self, sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        simulator, endpoints = sim
        account = simulator.accounts[0]
        monkeypatch.setenv("PARADEX_TOKEN", simulator.issue_read_only_token(account))
        ledger = tmp_path / "ledger.sqlite"
        assert main(run_args(endpoints, ledger, "--once", "--output", "jsonl")) == 0
        lines = capsys.readouterr().out.splitlines()
        payloads = [check_contract(line) for line in lines]
        fills = [p for p in payloads if p["type"] == "fill"]
        truth = simulator.truth(account)
        every_fill = {f.id for f in truth.fills} | {f.id for f in truth.busted_fills}
        assert {p["fill_id"] for p in fills} == every_fill
        assert len(fills) == len(every_fill), "each fill exactly once"
        busted = [p["fill_id"] for p in payloads if p["type"] == "fill_busted"]
        assert sorted(busted) == sorted(f.id for f in truth.busted_fills)
        assert payloads[-1]["type"] == "cycle"
        assert payloads[-1]["ok"] is True
        assert {p["account"] for p in fills} == {account}

        # A second --once on the same ledger delivers no fill again.
        assert main(run_args(endpoints, ledger, "--once", "--output", "jsonl")) == 0
        again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [p for p in again if p["type"] == "fill"] == []


class TestSigterm:
    """SIGTERM exits cleanly; a restart delivers no acknowledged fill again."""

    def test_sigterm_then_restart(self, sim: Any, tmp_path: Path) -> None:
        simulator, endpoints = sim
        account = simulator.accounts[0]
        env = {**os.environ, "PARADEX_TOKEN": simulator.issue_read_only_token(account)}
        ledger = tmp_path / "ledger.sqlite"
        command = [sys.executable, "-m", "reconcile_core._cli", *run_args(endpoints, ledger, "--output", "jsonl")]
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            first: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = child.stdout.readline()
                assert line, f"run exited early: {child.stderr.read() if child.stderr else ''}"
                first.append(check_contract(line))
                if first[-1]["type"] == "cycle" and first[-1]["ok"]:
                    break
            child.send_signal(signal.SIGTERM)
            rest, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
        assert child.returncode == 0, err
        assert "Traceback" not in err
        first += [check_contract(line) for line in rest.splitlines()]
        delivered = {p["fill_id"] for p in first if p["type"] == "fill"}
        truth = simulator.truth(account)
        assert delivered == {f.id for f in truth.fills} | {f.id for f in truth.busted_fills}

        with SqliteLedger(ledger, read_only=True) as opened:
            assert opened.integrity_check() == []
            assert opened.undelivered(venue="paradex", account=account) == [], "SIGTERM acknowledged what was printed"

        again = subprocess.run([*command, "--once"], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode == 0, again.stderr
        redelivered = [json.loads(line) for line in again.stdout.splitlines()]
        assert [p for p in redelivered if p["type"] == "fill"] == []


class TestAudit:
    """``reconcile audit`` exits 0 when the ledger agrees, 1 with a table when it does not."""

    def test_audit_clean_then_dirty(
        self, sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        simulator, endpoints = sim
        account = simulator.accounts[0]
        monkeypatch.setenv("PARADEX_TOKEN", simulator.issue_read_only_token(account))
        ledger = tmp_path / "ledger.sqlite"
        assert main(run_args(endpoints, ledger, "--once", "--output", "jsonl")) == 0
        capsys.readouterr()
        audit = [
            "audit",
            "paradex",
            "--rest-url",
            endpoints.rest_url,
            "--ws-url",
            endpoints.ws_url,
            "--ledger",
            str(ledger),
            "--since",
            "0",
        ]
        assert main(audit) == 0, capsys.readouterr().out
        assert "ok" in capsys.readouterr().out

        simulator.run_until(fills=60)  # new activity the ledger has not seen
        simulator.advance(200_000)  # older than the plugin's settlement lag (120 s): REST must list it
        assert main([*audit, "--json"]) == 1
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        kinds = {r["kind"] for r in rows}
        assert "fill missing from ledger" in kinds
        assert "position not explained by fills" in kinds


class TestClosedPipe:
    """A reader that goes away (``| head -1``) neither hides a verdict nor loses a fill."""

    def test_audit_keeps_its_verdict(self, sim: Any, tmp_path: Path) -> None:
        simulator, endpoints = sim
        env = {**os.environ, "PARADEX_TOKEN": simulator.issue_read_only_token(simulator.accounts[0])}
        ledger = tmp_path / "empty.sqlite"
        SqliteLedger(ledger).close()  # the venue has fills this ledger lacks
        audit = ["audit", "paradex", "--rest-url", endpoints.rest_url, "--ws-url", endpoints.ws_url]
        for output in ([], ["--json"]):
            with closed_pipe() as stdout:
                done = reconcile(*audit, "--ledger", str(ledger), "--since", "0", *output, stdout=stdout, env=env)
            assert done.returncode == 1, done.stderr
            assert "Traceback" not in done.stderr

    def test_run_loses_nothing(self, sim: Any, tmp_path: Path) -> None:
        simulator, endpoints = sim
        account = simulator.accounts[0]
        env = {**os.environ, "PARADEX_TOKEN": simulator.issue_read_only_token(account)}
        ledger = tmp_path / "ledger.sqlite"
        with closed_pipe() as stdout:
            done = reconcile(*run_args(endpoints, ledger, "--once", "--output", "jsonl"), stdout=stdout, env=env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        again = reconcile(*run_args(endpoints, ledger, "--once", "--output", "jsonl"), env=env)
        assert again.returncode == 0, again.stderr
        printed = [json.loads(line) for line in again.stdout.splitlines()]
        truth = simulator.truth(account)
        every_fill = {f.id for f in truth.fills} | {f.id for f in truth.busted_fills}
        assert {p["fill_id"] for p in printed if p["type"] == "fill"} == every_fill, "what was not printed comes next"


class TestErrorsPeopleCanActOn:
    """Each failure is one line naming what to do; no traceback without --debug."""

    def _fails(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("reconcile: error: ")
        assert err.count("\n") == 1, err
        assert "Traceback" not in err
        return err

    def test_missing_token_names_the_variable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv("PARADEX_TOKEN", raising=False)
        err = self._fails(["run", "paradex", "--ledger", str(tmp_path / "l.sqlite")], capsys)
        assert "PARADEX_TOKEN" in err
        monkeypatch.delenv("MY_TOKEN", raising=False)
        err = self._fails(["run", "paradex", "--token-env", "MY_TOKEN", "--ledger", str(tmp_path / "l.sqlite")], capsys)
        assert "MY_TOKEN" in err

    def test_bad_url(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        monkeypatch.setenv("PARADEX_TOKEN", "x.eyJzdWIiOiIweDEyMyJ9.y")
        err = self._fails(
            [
                "run",
                "paradex",
                "--rest-url",
                "not a url",
                "--ws-url",
                "ws://127.0.0.1:9/v1",
                "--ledger",
                str(tmp_path / "l.sqlite"),
            ],
            capsys,
        )
        assert "--rest-url" in err
        assert "not a URL" in err

    def test_unreachable_url(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("PARADEX_TOKEN", "x.eyJzdWIiOiIweDEyMyJ9.y")
        assert (
            main(
                [
                    "run",
                    "paradex",
                    "--rest-url",
                    "http://127.0.0.1:9/v1",
                    "--ws-url",
                    "ws://127.0.0.1:9/v1",
                    "--timeout",
                    "5",
                    "--once",
                    "--ledger",
                    str(tmp_path / "l.sqlite"),
                ]
            )
            == 1
        )
        err = capsys.readouterr().err
        assert "cannot reach the venue" in err
        assert "Traceback" not in err

    def test_expired_token(
        self, sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        simulator, endpoints = sim
        token = simulator.issue_token(simulator.accounts[0], ttl_ms=1_000)
        simulator.advance(5_000)
        monkeypatch.setenv("PARADEX_TOKEN", token)
        err = self._fails(run_args(endpoints, tmp_path / "l.sqlite", "--once"), capsys)
        assert "expired" in err
        assert token not in err

    def test_invalid_token(
        self, sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        simulator, endpoints = sim
        token = simulator.issue_read_only_token(simulator.accounts[0])
        simulator.revoke_token(token)
        monkeypatch.setenv("PARADEX_TOKEN", token)
        err = self._fails(run_args(endpoints, tmp_path / "l.sqlite", "--once"), capsys)
        assert "rejected the token" in err
        assert token not in err

    def test_geo_block(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server = LoopbackServer(_geo_blocking_app)
        endpoints = server.start()
        try:
            monkeypatch.setenv("PARADEX_TOKEN", "x.eyJzdWIiOiIweDEyMyJ9.y")
            err = self._fails(run_args(endpoints, tmp_path / "l.sqlite", "--once"), capsys)
        finally:
            server.stop()
        assert "geo-block" in err

    def test_ledger_held_by_another_process(
        self, sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        simulator, endpoints = sim
        monkeypatch.setenv("PARADEX_TOKEN", simulator.issue_read_only_token(simulator.accounts[0]))
        path = tmp_path / "l.sqlite"
        SqliteLedger(path).close()
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                (
                    "import sys, time; from reconcile_core.sqlite import SqliteLedger; "
                    "l = SqliteLedger(sys.argv[1]); print('held', flush=True); time.sleep(60)"
                ),
                str(path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            err = self._fails(run_args(endpoints, path, "--once"), capsys)
        finally:
            holder.kill()
            holder.communicate()
        assert "another running process" in err or "held" in err
        assert str(path) in err


async def _geo_blocking_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A venue that answers every private request with Paradex's geo-block error."""
    if scope["type"] != "http":
        return
    if scope["path"].endswith("/system/time"):
        status, body = 200, {"server_time": "1893456000000"}
    else:
        status, body = 403, {"error": "GEO_IP_BLOCK", "message": "geo ip blocked", "data": None}
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})
