"""The README's embedding example runs, against the Paradex simulator, on asyncio and trio."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile_core import CycleSummary, FillRecorded
from reconcile_core.sqlite import SqliteLedger

from ._blocks import README, Block, python_blocks
from ._programs import run_program, simulated_testnet


def _example() -> Block:
    found = python_blocks(README)
    assert len(found) == 1, "the README has one Python example, and this test runs it"
    return found[0]


def test_the_example_is_short_and_uses_the_session_as_documented() -> None:
    code = _example().code.rstrip()
    assert len(code.split("\n")) < 15, "the README promises an embedding example under 15 lines"
    assert "async with Session(" in code
    assert "async for event in session.events():" in code
    assert 'os.environ["PARADEX_TOKEN"]' in code, "the token comes from the environment"
    assert "SqliteLedger(" in code


def _stop_at_pass(args: tuple[object, ...]) -> bool:
    return any(isinstance(arg, CycleSummary) for arg in args)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_example_prints_every_fill_once_then_none_again(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = _example()
    with simulated_testnet(monkeypatch, tmp_path) as testnet:
        printed = run_program(block, testnet, backend=backend, stop=_stop_at_pass)
        events = [arg for args in printed for arg in args]
        fills = [e.fill.key.fill_id for e in events if isinstance(e, FillRecorded)]
        assert isinstance(events[-1], CycleSummary)
        assert events[-1].ok
        assert sorted(fills) == sorted(testnet.every_fill_id()), "every venue fill printed exactly once"
        assert not any(e.redelivery for e in events if isinstance(e, FillRecorded))
        with SqliteLedger(tmp_path / "fills.sqlite", read_only=True) as ledger:
            assert ledger.count(venue="paradex", account=testnet.account) == len(fills)

        # The program stopped; started again on the same ledger, it prints no fill again.
        again = run_program(block, testnet, backend=backend, stop=_stop_at_pass)
        assert [a for args in again for a in args if isinstance(a, FillRecorded)] == []
        assert isinstance(again[-1][0], CycleSummary)
