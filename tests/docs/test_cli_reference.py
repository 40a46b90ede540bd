"""The CLI reference covers every command and option, and quotes the messages the CLI really prints."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from reconcile_core import _cli
from reconcile_core._cli import _metrics, build_parser, main

from ._blocks import page, section

PAGE = page("cli.md")
TEXT = PAGE.read_text()
SHARED = "The venue options"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings if o not in ("-h", "--help")}


def _shared_options() -> set[str]:
    from reconcile_core._cli._source_options import add_source_arguments

    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    return _options(parser)


COMMANDS = sorted(_subcommands(build_parser()))


def test_every_command_has_a_section() -> None:
    assert {"run", "audit", "ledger", "venues"} <= set(COMMANDS)
    for name in COMMANDS:
        assert f"## `reconcile {name}`" in TEXT, f"a new command needs a section '## `reconcile {name}`' in {PAGE}"
        assert section(TEXT, f"`reconcile {name}`").strip(), name


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_documented_where_it_belongs(command: str) -> None:
    parser = _subcommands(build_parser())[command]
    own = section(TEXT, f"`reconcile {command}`")
    shared_text = section(TEXT, SHARED)
    shared = _shared_options()
    nested = _subcommands(parser)
    options = set().union(*(_options(p) for p in nested.values())) if nested else _options(parser)
    for sub in nested:
        assert f"reconcile ledger {sub}" in own, sub
    for option in sorted(options):
        where = shared_text if option in shared else own
        assert re.search(rf"`{re.escape(option)}[` ]", where), f"{command} {option} is not documented"


def test_the_global_option_is_documented() -> None:
    assert _options(build_parser()) == {"--debug"}
    assert "`--debug`" in TEXT


def test_every_metric_is_documented() -> None:
    source = Path(_metrics.__file__).read_text()
    names = set(re.findall(r'"(reconcile_[a-z_]+)"', source))
    assert len(names) >= 10
    table = section(TEXT, "`reconcile run`")
    for name in names:
        assert f"`{name}`" in table, name


def test_the_exit_codes_are_the_code() -> None:
    table = section(TEXT, "Exit codes")
    documented = {int(code) for code in re.findall(r"^\| `(\d+)` \|", table, re.MULTILINE)}
    assert documented == {_cli.EXIT_OK, _cli.EXIT_PROBLEM, _cli.EXIT_USAGE, _cli.EXIT_INTERRUPTED}


@pytest.mark.parametrize(
    ("situation", "argv", "environment"),
    [
        ("no token", ["run", "paradex"], {}),
        ("unreadable token file", ["run", "paradex", "--token-file", "/path"], {}),
        ("the account cannot be read from the token", ["run", "paradex"], {"PARADEX_TOKEN": "not-a-jwt"}),
        (
            "a malformed URL",
            ["run", "paradex", "--rest-url", "localhost:8080", "--ws-url", "ws://127.0.0.1:9/v1"],
            {"PARADEX_TOKEN": "x.eyJzdWIiOiIweDEyMyJ9.y"},
        ),
        (
            "one URL without the other",
            ["run", "paradex", "--rest-url", "http://127.0.0.1:9/v1"],
            {"PARADEX_TOKEN": "x.eyJzdWIiOiIweDEyMyJ9.y"},
        ),
        ("no ledger for `audit` / `ledger`", ["ledger", "stats", "--ledger", "/path"], {}),
    ],
)
def test_the_quoted_messages_are_what_the_cli_prints(
    situation: str,
    argv: list[str],
    environment: dict[str, str],
    *,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("PARADEX_TOKEN", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if argv[:2] == ["run", "paradex"]:
        argv = [*argv, "--ledger", str(tmp_path / "ledger.sqlite")]
    row = re.search(rf"^\| {re.escape(situation)} \| `(.*)` \|$", section(TEXT, "Error messages"), re.MULTILINE)
    assert row is not None, situation
    assert main(argv) == _cli.EXIT_USAGE
    printed = capsys.readouterr().err
    assert printed == f"reconcile: error: {row.group(1)}\n"
