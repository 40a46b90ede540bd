"""The benchmark scripts still run: each measurement at a tiny size produces sane figures.

Timings are never asserted (performance belongs to the benchmarks
themselves); these only keep the benchmark code from rotting.
"""

from __future__ import annotations

import math
from pathlib import Path

from tests.benchmarks import bench_backfill, bench_ingest, bench_ledger, bench_peer, bench_runtime
from tests.benchmarks._support import machine


def _rates(figures: dict[str, dict[str, float]]) -> None:
    for name, figure in figures.items():
        assert figure["median"] > 0, name
        assert math.isfinite(figure["ratio"]), name
        assert figure["ratio_min"] <= figure["ratio"] <= figure["ratio_max"], name


def test_ingest(tmp_path: Path) -> None:
    result = bench_ingest.measure(500, 1, tmp_path)
    assert result["messages"] == 500
    assert result["fills"] == 200
    assert set(result["figures"]) == {"baseline", "parsed", "merged", "session", "memory"}
    _rates(result["figures"])
    assert result["figures"]["baseline"]["ratio"] == 1.0
    assert "WS ingest" in bench_ingest.report(result, machine())


def test_backfill(tmp_path: Path) -> None:
    result = bench_backfill.measure(600, 1, tmp_path)
    assert result["fills"] == 600
    assert set(result["figures"]) == {"baseline", "source", "backfill", "session"}
    _rates(result["figures"])
    assert "REST backfill" in bench_backfill.report(result, machine())


def test_runtime(tmp_path: Path) -> None:
    result = bench_runtime.measure((200, 600), tmp_path, open_orders=(3,), simulator_fills=20, repeat=1)
    assert set(result["restart"]) == {200, 600}
    for figure in result["restart"].values():
        assert 0 < figure["open"] <= figure["ready"] <= figure["connecting"]
    assert set(result["cycle"]) == {200, 600}
    for by_orders in result["cycle"].values():
        cycle = by_orders[3]
        assert cycle["pass_ms"] > 0
        assert cycle["raw_ms"] > 0
        assert cycle["fills_seen"] == [0]  # the watermark: nothing older than the window is read
        assert cycle["orders_seen"] == [3]
    memory = result["memory"]
    assert memory["fills"] == 600
    assert memory["before_mib"] > 0
    assert result["build"]["ledger_fills"] == 600 + 20  # the history and the simulator's own fills
    assert "restart" in bench_runtime.report(result, machine())


def test_peer(tmp_path: Path) -> None:
    result = bench_peer.measure(500, 1, tmp_path)
    assert result["fills"] == 200
    assert result["orders"] == 300
    expected = {"ours_fill", "ours_order", "naive", "ours_memory", "ours_sqlite"}
    if result["ccxt"] is not None:
        expected |= {"ccxt_fill", "ccxt_order", "ccxt"}
    assert set(result["figures"]) == expected
    _rates(result["figures"])
    assert "Peer" in bench_peer.report(result, machine())


def test_ledger(tmp_path: Path) -> None:
    rows = bench_ledger.baseline_rows(200)
    assert bench_ledger.baseline_batched(tmp_path / "b.sqlite", rows, 100) > 0
    batch = list(bench_ledger.fills(0, 200))
    assert bench_ledger.ledger_rate(tmp_path / "l.sqlite", batch, commit_every=100, synchronous="full") > 0
    timings = bench_ledger.time_to_ready(tmp_path / "l.sqlite", repeat=2)
    assert len(timings) == 2
    assert all(t > 0 for t in timings)
