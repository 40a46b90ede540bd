"""The chaos tests end their run with the commands that replay each failing seed."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    commands = [
        value
        for report in terminalreporter.stats.get("failed", [])
        for name, value in getattr(report, "user_properties", ())
        if name == "replay"
    ]
    if commands:
        terminalreporter.section("replay the failing chaos seeds")
        for command in commands:
            terminalreporter.line(str(command))
