"""Fixtures shared by the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconcile_paradex.testing import LoopbackEndpoints, ParadexSimulator


@pytest.fixture
def sim() -> Iterator[tuple[ParadexSimulator, LoopbackEndpoints]]:
    """A loopback Paradex simulator with 40 settled fills, served while the test runs."""
    simulator = ParadexSimulator(seed=11, accounts=1, settlement_lag_ms=50)
    simulator.run_until(fills=40)
    simulator.advance(1_000)  # every fill settled: REST lists them all
    with simulator.serve_loopback_sync() as endpoints:
        yield simulator, endpoints
