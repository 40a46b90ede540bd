"""The Paradex guide's examples run, against the Paradex simulator, and its tables match the code."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

from reconcile_paradex import DEFAULT_CHANNELS, FILL_TYPES, REJECTION_REASONS, WebSocketSettings

from ._blocks import Block, page, python_blocks
from ._programs import load_program, run_program, simulated_testnet

GUIDE = page("paradex.md")


def _block(containing: str) -> Block:
    (block,) = [b for b in python_blocks(GUIDE) if containing in b.code]
    return block


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_token_providers_example(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("starknet_py", reason="the example mints with a Starknet key: the 'starknet' extra")
    with simulated_testnet(monkeypatch, tmp_path) as testnet:
        simulator = testnet.simulator
        (tmp_path / "paradex.jwt").write_text(simulator.issue_token(testnet.account) + "\n")
        printed = run_program(_block("CallableTokenProvider("), testnet, backend=backend)
        truth = simulator.truth(testnet.account)
        minted = simulator.starknet_auth_counts().get("ok", 0)
    assert printed == [(len(truth.open_orders), "open orders"), (len(truth.positions), "positions")]
    assert minted >= 1, "the Starknet key minted the JWT that read the positions"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_fills_example_shows_each_type_and_kind(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with simulated_testnet(monkeypatch, tmp_path, fills=60) as testnet:
        printed = run_program(_block("source.fills(since=0)"), testnet, backend=backend)
    assert not [args for args in printed if args[0] == "problem:"]
    assert len(printed) == len(testnet.every_fill_id())
    kinds = {(args[0], args[1]) for args in printed}
    assert kinds <= {(canonical, kind.value) for canonical, kind in FILL_TYPES.values()}
    assert len({fill_type for fill_type, _ in kinds}) >= 2, "the simulated history has several fill types"


def test_the_simulator_example_is_a_passing_test(anyio_backend: str) -> None:
    namespace = load_program_without_entry(_block("ParadexSimulator("))
    anyio.run(namespace["test_every_fill_arrives_once"], backend=anyio_backend)


def load_program_without_entry(block: Block) -> dict[str, object]:
    """A block that defines functions and runs nothing (a test module)."""
    assert "anyio.run(" not in block.code
    return load_program(block, entry=None)


def test_the_fill_type_table_is_the_mapping() -> None:
    text = GUIDE.read_text()
    for paradex_type, (canonical, kind) in FILL_TYPES.items():
        row = re.search(rf"^\| `{paradex_type}`[^|]*\| `([A-Z_]+)` \| `([A-Z_]+)` \|$", text, re.MULTILINE)
        assert row is not None, f"no row for {paradex_type}"
        assert row.groups() == (canonical, kind.name), f"the row of {paradex_type} disagrees with FILL_TYPES"


def test_the_rejection_reasons_are_listed() -> None:
    section = GUIDE.read_text().split("## Order states", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([A-Z_]+)`", section)) & (REJECTION_REASONS | {"SYSTEM_STATUS_*"})
    assert listed == set(REJECTION_REASONS)


def test_the_websocket_defaults_are_the_code() -> None:
    text = GUIDE.read_text()
    settings = WebSocketSettings()
    for name in ("connect_timeout", "rpc_timeout", "ping_interval", "pong_timeout", "buffer_size"):
        assert f"{name}={getattr(settings, name):g}" in text, name
    assert settings.max_message_bytes == 4 * 1024 * 1024
    for channel in DEFAULT_CHANNELS:
        assert f"`{channel}`" in text
