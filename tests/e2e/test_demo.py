"""``reconcile demo``: the simulator with faults, real sessions over loopback, a verdict and an exit code."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconcile_core import FillRecorded
from reconcile_core._cli import _demo_cmd as demo_cmd
from reconcile_core._cli import main
from reconcile_core.errors import LedgerWriteError, PluginLoadError, UsageError
from reconcile_core.sqlite import SqliteLedger
from reconcile_paradex import _demo as demo_module
from reconcile_paradex import _demo_verify


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["demo", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_light_faults_converge(capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = run_json(capsys, "--duration", "3", "--seed", "3")
    assert code == 0, summary
    assert summary["venue"] == "paradex"
    assert summary["ok"] is True
    assert summary["converged"] is True
    assert summary["exactly_once"] is True
    assert summary["faults"] == "light"
    assert summary["seed"] == 3
    assert len(summary["accounts"]) == 2
    for account in summary["accounts"]:
        assert account["ok"] is True
        assert account["problems"] == []
        assert account["venue_fills"] > 0
        assert account["matched_orders"] == account["venue_orders"] > 0
        # The first pass recovers the history made before the session started; the stream carries the rest.
        assert account["fills_from_rest"] > 0
        assert account["fills_from_stream"] > 0


def test_heavy_faults_converge(capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = run_json(capsys, "--duration", "3", "--seed", "4", "--faults", "heavy", "--accounts", "1")
    assert code == 0, summary
    assert summary["ok"] is True
    assert summary["faults"] == "heavy"
    assert len(summary["accounts"]) == 1
    assert sum(summary["faults_injected"].values()) > 0


def test_a_lost_fill_fails_the_demo(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A consumer that misses one fill: the verification says so, and the exit code is 1."""
    take = _demo_verify.DemoConsumer.take
    lost: list[FillRecorded] = []

    def forgetful(self: _demo_verify.DemoConsumer, event: object) -> None:
        if isinstance(event, FillRecorded) and not lost:
            lost.append(event)
            return
        take(self, event)  # type: ignore[arg-type]

    monkeypatch.setattr(_demo_verify.DemoConsumer, "take", forgetful)
    code = main(["demo", "--duration", "1", "--seed", "5", "--accounts", "1", "--faults", "none"])
    out = capsys.readouterr().out
    assert code == 1
    assert lost
    assert f"fill {lost[0].fill.key.fill_id} was delivered 0 times" in out
    assert "FAILED" in out
    assert "Not converged" in out
    assert "--seed 5" in out  # how to replay it


def test_the_command_line_in_a_pipe_reads_well() -> None:
    """Not a terminal (CI logs): no escape codes, a status line, the verification table, exit 0."""
    env = {**os.environ, "TERM": "dumb"}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "reconcile_core._cli", "demo", "--duration", "2", "--accounts", "1", "--seed", "6"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\x1b[" not in done.stdout
    assert "Verification against the simulator's truth" in done.stdout
    assert "Converged" in done.stdout
    assert "done; venue fills" in done.stdout
    assert "Traceback" not in done.stderr
    assert done.stderr == "", "the faults' warnings stay out of the demo's output"


@pytest.mark.parametrize("output", ["closed pipe", "full device"])
def test_an_output_that_cannot_be_written_is_not_a_traceback(output: str) -> None:
    """``demo | head -1`` exits 1 (its verdict went unread); ``demo > /dev/full`` is one error line, exit 2."""
    if output == "full device" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    argv = [sys.executable, "-m", "reconcile_core", "demo", "--duration", "1", "--accounts", "1"]
    with contextlib.ExitStack() as stack:
        if output == "closed pipe":
            read, write = os.pipe()
            os.close(read)
            stack.callback(os.close, write)
            stdout: object = write
        else:
            stdout = stack.enter_context(Path("/dev/full").open("w"))
        done = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    if output == "closed pipe":
        assert done.returncode == 1
        assert done.stderr == ""
    else:
        assert done.returncode == 2
        assert done.stderr == "reconcile: error: cannot write the standard output: No space left on device\n"


class TestChoosingTheVenue:
    """The core finds the plugin that offers a demo without knowing any venue."""

    class WithDemo:
        description = "has a demo"

        def __init__(self, name: str) -> None:
            self.name = name

        def create_source(self, **options: object) -> object:
            raise NotImplementedError

        def run_demo(self, *, seed: int, faults: str, duration: float, accounts: int, json_output: bool) -> int:
            return 0

    class WithoutDemo:
        name = "plain"
        description = "no demo"

        def create_source(self, **options: object) -> object:
            raise NotImplementedError

    def installed(self, monkeypatch: pytest.MonkeyPatch, plugins: dict[str, object], broken: tuple[str, ...] = ()):
        def load(name: str) -> object:
            if name in broken:
                raise PluginLoadError(f"{name} failed to import")
            return plugins[name]

        monkeypatch.setattr(demo_cmd, "available_venues", lambda: tuple(sorted([*plugins, *broken])))
        monkeypatch.setattr(demo_cmd, "load_venue", load)

    def test_the_only_plugin_with_a_demo(self, monkeypatch: pytest.MonkeyPatch) -> None:
        chosen = self.WithDemo("alpha")
        self.installed(monkeypatch, {"alpha": chosen, "plain": self.WithoutDemo()}, broken=("gamma",))
        assert demo_cmd.find_demo_venue(None) is chosen

    def test_none_offers_a_demo(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.installed(monkeypatch, {"plain": self.WithoutDemo()}, broken=("gamma",))
        with pytest.raises(UsageError, match=r"no installed venue plugin offers a demo \(installed: gamma, plain\)"):
            demo_cmd.find_demo_venue(None)

    def test_two_offer_a_demo(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.installed(monkeypatch, {"alpha": self.WithDemo("alpha"), "beta": self.WithDemo("beta")})
        with pytest.raises(UsageError, match=r"alpha, beta.*--venue"):
            demo_cmd.find_demo_venue(None)
        assert demo_cmd.find_demo_venue("beta").name == "beta"

    def test_a_named_plugin_without_a_demo(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.installed(monkeypatch, {"plain": self.WithoutDemo()})
        with pytest.raises(UsageError, match="'plain' offers no demo"):
            demo_cmd.find_demo_venue("plain")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accounts", "0"], "--accounts must be >= 1"),
        (["--venue", "no-such-venue"], "no venue plugin named 'no-such-venue'"),
    ],
)
def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["demo", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_a_failing_ledger_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library error inside the demo's task group reaches the user as itself, not an ExceptionGroup."""

    class FullDisk(SqliteLedger):
        commits = 0

        def commit(self) -> None:
            FullDisk.commits += 1
            if FullDisk.commits > 3:
                raise LedgerWriteError("the disk is full (simulated)")
            super().commit()

    monkeypatch.setattr(demo_module, "SqliteLedger", FullDisk)
    code = main(["demo", "--json", "--duration", "1", "--accounts", "1", "--faults", "none"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("reconcile: error: ledger: ")
    assert "the disk is full (simulated)" in captured.err
    assert "Traceback" not in captured.err
