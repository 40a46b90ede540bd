"""The plugin guide's Toy venue is a working plugin: it loads through an entry point and passes the contracts.

The page's ``# file: NAME`` blocks are assembled into files in a temporary
directory, and pytest runs the page's own contract test modules there, in a
subprocess (as a plugin author would run them).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import anyio
import pytest

from reconcile_core import FillRecorded, MemoryLedger
from reconcile_core.plugins import GROUP, VenueRegistry
from reconcile_core.runtime import Session
from reconcile_core.typing import StateSource

from ._blocks import blocks, page, python_blocks

GUIDE = page("plugins.md")

# A short Hypothesis run: the ledger contract's state machine is exercised, not soaked.
CONFTEST = """
from hypothesis import settings

settings.register_profile("docs", max_examples=10, deadline=None)
settings.load_profile("docs")
"""


def files() -> dict[str, str]:
    """File name -> the concatenation of the page's blocks for that file."""
    parts: dict[str, list[str]] = defaultdict(list)
    for block in python_blocks(GUIDE):
        assert block.file_name is not None, f"{block.where()}: every Python block of the guide names its file"
        parts[block.file_name].append(block.code)
    return {name: "\n\n".join(code) for name, code in parts.items()}


def write_plugin(directory: Path, *, change: tuple[str, str] | None = None) -> None:
    for name, code in files().items():
        text = code.replace(*change) if change is not None else code
        (directory / name).write_text(text, encoding="utf-8")
    (directory / "conftest.py").write_text(CONFTEST, encoding="utf-8")


def run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(directory), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "-rs", str(directory)]
    return subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_guide_has_the_plugin_and_its_tests() -> None:
    assert set(files()) == {"toy_venue.py", "test_toy_venue.py", "test_my_ledger.py"}


def test_the_toy_plugin_passes_the_source_and_ledger_contracts(tmp_path: Path) -> None:
    write_plugin(tmp_path)
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, summary
    assert int(passed.group(1)) >= 40, summary
    assert "skipped" not in summary, "the scenario describes everything the contract can check"


def test_a_broken_toy_fails_the_contract(tmp_path: Path) -> None:
    """The check above can fail: overlapping pages (a fill yielded twice) are caught."""
    bug = ('"next": str(end)', '"next": str(end - 1)')
    assert bug[0] in files()["toy_venue.py"]
    write_plugin(tmp_path, change=bug)
    result = run_pytest(tmp_path)
    assert result.returncode == 1
    assert "yielded twice" in result.stdout


def test_the_entry_point_loads_the_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_venue", raising=False)
    (toml,) = blocks(GUIDE, "toml")
    declared = tomllib.loads(toml.code)["project"]["entry-points"][GROUP]
    registry = VenueRegistry(
        [importlib.metadata.EntryPoint(name=name, value=value, group=GROUP) for name, value in declared.items()]
    )
    try:
        plugin = registry.load("toy")
        source = plugin.create_source(account="alice")
        assert isinstance(source, StateSource)
        # What `reconcile run toy` passes.
        assert isinstance(plugin.create_source(account="alice", token="t", env="testnet"), StateSource)  # noqa: S106
        assert plugin.name == "toy"
        exchange = plugin.exchange  # type: ignore[attr-defined]
        exchange.place("o1")
        exchange.fill("o1", "f1", "2")
        seen = anyio.run(_first_fills, source, 1)
    finally:
        sys.modules.pop("toy_venue", None)
    assert seen == ["f1"]


async def _first_fills(source: StateSource, count: int) -> list[str]:
    """A whole Session over the Toy source delivers the fills."""
    seen: list[str] = []
    with anyio.fail_after(10):
        async with Session(source, MemoryLedger()) as session:
            async for event in session.events():
                if isinstance(event, FillRecorded):
                    seen.append(event.fill.key.fill_id)
                if len(seen) >= count:
                    break
    return seen
