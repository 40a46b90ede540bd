"""The tutorial works: its commands and its program, against the Paradex simulator standing in for testnet."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from reconcile_core._cli import build_parser, main

from ._blocks import Block, blocks, page, python_blocks
from ._programs import SimulatedTestnet, run_program, simulated_testnet

TUTORIAL = page("tutorial.md")
# Shell operators end a command: what follows is the shell's business.
_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&", "2>&1"}


def commands(text: str) -> list[list[str]]:
    """Every ``reconcile ...`` command of a shell block, as argv (without the program name)."""
    found = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0] != "reconcile":
            continue
        argv = []
        for word in words[1:]:
            if word in _OPERATORS or word.startswith((">", "2>")):
                break
            argv.append(word)
        found.append(argv)
    return found


def _tutorial_commands() -> list[list[str]]:
    return [argv for block in blocks(TUTORIAL, "bash") for argv in commands(block.code)]


def _on_the_simulator(argv: list[str], testnet: SimulatedTestnet) -> list[str]:
    """``--env testnet`` replaced by the simulator's URLs."""
    if "--env" not in argv:
        return argv
    at = argv.index("--env")
    assert argv[at + 1] == "testnet", f"the tutorial uses testnet: {argv}"
    urls = ["--rest-url", testnet.endpoints.rest_url, "--ws-url", testnet.endpoints.ws_url]
    return [*argv[:at], *urls, *argv[at + 2 :]]


def test_every_command_of_the_tutorial_parses() -> None:
    found = _tutorial_commands()
    assert len(found) >= 8
    parser = build_parser()
    for argv in found:
        parser.parse_args(argv)  # SystemExit on an unknown option or a missing argument


def test_the_cron_line_runs_a_valid_audit() -> None:
    (cron,) = [b for b in blocks(TUTORIAL, "text") if "* * * *" in b.code]
    command = cron.code.split("$(", 1)[1].split(")", 1)[0].replace("2>&1", "")
    words = shlex.split(command)
    assert words[0].endswith("/reconcile")
    args = build_parser().parse_args(words[1:])
    assert args.command == "audit"
    assert args.token_file is not None, "cron has no PARADEX_TOKEN: the token comes from a file"


@pytest.mark.skipif(sys.platform != "linux", reason="the default ledger location checked here is Linux's")
def test_the_tutorial_commands_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command that ends by itself runs, in the tutorial's order, and succeeds."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    ran = []
    with simulated_testnet(monkeypatch, tmp_path) as testnet:
        for argv in _tutorial_commands():
            if argv[0] == "run" and "--once" not in argv:
                continue  # runs until stopped: covered by tests/cli
            if argv[0] == "demo":
                continue  # runs its own simulator for seconds: covered by tests/e2e/test_demo.py
            # "Run the same command again": the tutorial's --once run goes twice.
            for _ in range(2 if argv[0] == "run" else 1):
                capsys.readouterr()
                code = main(_on_the_simulator(argv, testnet))
                out, err = capsys.readouterr()
                assert code == 0, f"reconcile {shlex.join(argv)} exited {code}: {err}"
                ran.append((argv, out))
    ledger = tmp_path / "data" / "reconcile" / "ledger.sqlite"
    assert ledger.is_file(), "reconcile run wrote the default ledger"
    assert (tmp_path / "fills.csv").is_file(), "ledger export wrote the CSV"
    outputs = {shlex.join(argv): out for argv, out in ran}
    assert "paradex" in outputs["venues"]
    first, second = [out for argv, out in ran if argv[0] == "run"]
    assert first.count('"type":"fill"') == len(testnet.every_fill_id())
    assert second.count('"type":"fill"') == 0, "the second run prints no fill again"
    assert "ok: the ledger agrees with the venue" in outputs["audit paradex --env testnet"]


def _program() -> Block:
    (block,) = python_blocks(TUTORIAL)
    return block


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_python_program(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with simulated_testnet(monkeypatch, tmp_path) as testnet:
        printed = run_program(_program(), testnet, backend=backend, stop=lambda args: str(args[0]).startswith("pass ("))
        truth = testnet.simulator.truth(testnet.account)
    lines = [str(args[0]) for args in printed]
    fills = [line.split()[1].rstrip(":") for line in lines if line.startswith("fill ")]
    assert sorted(fills) == sorted(testnet.every_fill_id())
    assert not any("redelivered" in line for line in lines)
    busts = [line.split()[1] for line in lines if line.startswith("bust ")]
    assert sorted(busts) == sorted(b.fill_id for b in truth.busts)
    assert lines[-1].startswith("pass (connect)")
    assert lines[-1].endswith("live")
    assert (tmp_path / "fills.sqlite").is_file()
