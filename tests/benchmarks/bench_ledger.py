"""Benchmark of SqliteLedger (not a test): throughput, open time, memory.

Run it through nox (``nox -s bench``) or directly::

    python tests/benchmarks/bench_ledger.py              # full run, up to 1M fills
    python tests/benchmarks/bench_ledger.py --quick      # up to 100k fills

It measures, in one run on one machine:

1. record throughput, committing after every fill and in batches, each
   compared with a baseline measured in the same run: raw ``sqlite3`` inserts
   of the same encoded rows into a table of the same shape (``executemany``
   in one transaction for batches; ``execute`` + ``COMMIT`` per row for single);
2. the time to open a ledger and be ready (first outbox and watermark reads
   answered) at 10k, 100k and 1M recorded fills (goal: flat, <= 100 ms at 1M);
3. the growth of the process's resident memory while recording 1M fills
   (goal: <= 100 MiB).

Figures go to stdout as a Markdown table (and to ``--json FILE``). Absolute
numbers depend on the machine; the ratios against the baseline travel better.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from reconcile_core import Fill, FillKey, FillKind, Liquidity, Side, Source
from reconcile_core._sqlite_codec import FILL_COLUMNS, encode_fill
from reconcile_core.sqlite import SqliteLedger

VENUE = "paradex"
ROUNDS = 3
ACCOUNTS = tuple(f"0x{n:064x}" for n in (0x49DDD7A564C978F6E4089FF8355B56A42B7E2D48BA282CB5AAD60F04BEA0EC3, 7, 11))
INSTRUMENTS = ("BTC-USD-PERP", "ETH-USD-PERP", "SOL-USD-PERP")


def fill(n: int) -> Fill:
    """A Paradex-shaped fill: 28-digit time-ordered ids, 0x accounts, a few orders per fill."""
    return Fill(
        key=FillKey(
            venue=VENUE,
            account=ACCOUNTS[n % len(ACCOUNTS)],
            fill_type="FILL",
            fill_id=f"{1718941725080 + n // 4}{(n * 2654435761) % 10**15:015d}",
        ),
        kind=FillKind.TRADE,
        order_id=f"{1718941725000 + n // 3}{(n * 40503) % 10**14:014d}",
        instrument=INSTRUMENTS[n % len(INSTRUMENTS)],
        side=Side.BUY if n % 2 else Side.SELL,
        price=Decimal(64000 + n % 997) + Decimal("0.5"),
        size=Decimal("0.001") * (1 + n % 50),
        fee=Decimal("-0.00012"),
        fee_currency="USDC",
        liquidity=Liquidity.MAKER if n % 3 else Liquidity.TAKER,
        time=1_718_941_725_080 + n,
        source=Source.WS if n % 2 else Source.REST,
        client_id=f"client-{n}",
        realized_pnl=Decimal("1.25") if n % 5 == 0 else None,
    )


def fills(start: int, stop: int) -> Iterator[Fill]:
    return (fill(n) for n in range(start, stop))


def rss_bytes() -> int:
    """Current resident set size (Linux /proc), or the peak where /proc is missing."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    return pages * os.sysconf("SC_PAGE_SIZE")


# -- baseline: raw sqlite3 ------------------------------------------------------------------

_BASELINE_SCHEMA = f"""
CREATE TABLE fills (
    venue TEXT NOT NULL, account TEXT NOT NULL, fill_id TEXT NOT NULL, fill_type TEXT NOT NULL,
    {", ".join(f"{column} {'INTEGER' if column == 'time' else 'TEXT'}" for column in FILL_COLUMNS)},
    PRIMARY KEY (venue, account, fill_id, fill_type)
) WITHOUT ROWID
"""
_BASELINE_INSERT = f"INSERT INTO fills VALUES ({', '.join('?' * (4 + len(FILL_COLUMNS)))})"  # noqa: S608


def baseline_rows(count: int) -> list[tuple[object, ...]]:
    return [(f.key.venue, f.key.account, f.key.fill_id, f.key.fill_type, *encode_fill(f)) for f in fills(0, count)]


def baseline_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(_BASELINE_SCHEMA)
    return conn


def baseline_batched(path: Path, rows: list[tuple[object, ...]], batch: int) -> float:
    conn = baseline_connection(path, "FULL")
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        conn.execute("BEGIN")
        conn.executemany(_BASELINE_INSERT, rows[start : start + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def baseline_single(path: Path, rows: list[tuple[object, ...]], synchronous: str) -> float:
    conn = baseline_connection(path, synchronous)
    started = time.perf_counter()
    for row in rows:
        conn.execute("BEGIN")
        conn.execute(_BASELINE_INSERT, row)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


# -- the ledger -------------------------------------------------------------------------------


def ledger_rate(path: Path, batch: list[Fill], *, commit_every: int, synchronous: str) -> float:
    ledger = SqliteLedger(path, synchronous=synchronous)  # type: ignore[arg-type]
    started = time.perf_counter()
    for n, item in enumerate(batch, 1):
        ledger.record(item)
        if n % commit_every == 0:
            ledger.commit()
    ledger.commit()
    elapsed = time.perf_counter() - started
    ledger.close()
    return len(batch) / elapsed


def time_to_ready(path: Path, repeat: int) -> list[float]:
    """Open, answer the first outbox and watermark reads, close; the open+ready part, in ms."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        ledger = SqliteLedger(path)
        ledger.undelivered(venue=VENUE, account=ACCOUNTS[0], limit=100)
        ledger.watermark(venue=VENUE, account=ACCOUNTS[0])
        timings.append((time.perf_counter() - started) * 1000)
        ledger.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="stop at 100k fills, fewer throughput rows")
    parser.add_argument("--dir", type=Path, help="where to put the ledger files (default: a temporary directory)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args()
    sizes = (10_000, 100_000) if options.quick else (10_000, 100_000, 1_000_000)
    throughput_count = 5_000 if options.quick else 20_000
    single_count = 300 if options.quick else 1_000
    figures: dict[str, object] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
    }
    with tempfile.TemporaryDirectory(dir=options.dir) as scratch:
        root = Path(scratch)

        # 1. Throughput: baseline and ledger alternate, ROUNDS times, on fresh files; medians.
        rows = baseline_rows(throughput_count)
        batch = list(fills(0, throughput_count))
        single_rows, single_batch = rows[:single_count], batch[:single_count]
        runs: dict[str, dict[str, list[float]]] = {
            name: {"baseline": [], "ledger": []} for name in ("batched_1000_full", "single_full", "single_normal")
        }
        for round_ in range(ROUNDS):
            scratch_round = root / f"round-{round_}"
            scratch_round.mkdir()
            runs["batched_1000_full"]["baseline"].append(baseline_batched(scratch_round / "bb.sqlite", rows, 1000))
            runs["batched_1000_full"]["ledger"].append(
                ledger_rate(scratch_round / "lb.sqlite", batch, commit_every=1000, synchronous="full")
            )
            runs["single_full"]["baseline"].append(baseline_single(scratch_round / "bs.sqlite", single_rows, "FULL"))
            runs["single_full"]["ledger"].append(
                ledger_rate(scratch_round / "ls.sqlite", single_batch, commit_every=1, synchronous="full")
            )
            runs["single_normal"]["baseline"].append(
                baseline_single(scratch_round / "bn.sqlite", single_rows, "NORMAL")
            )
            runs["single_normal"]["ledger"].append(
                ledger_rate(scratch_round / "ln.sqlite", single_batch, commit_every=1, synchronous="normal")
            )
        del rows, batch, single_rows, single_batch
        figures["throughput"] = {
            name: {side: statistics.median(rates) for side, rates in pair.items()} for name, pair in runs.items()
        }
        figures["throughput_rounds"] = runs

        # 2 and 3. Grow one ledger to each size; open time at each; RSS over the whole run.
        gc.collect()
        path = root / "grow.sqlite"
        rss_before = rss_bytes()
        ledger = SqliteLedger(path)
        recorded = 0
        opens: dict[int, list[float]] = {}
        build_started = time.perf_counter()
        rss_peak_during = rss_before
        for size in sizes:
            for item in fills(recorded, size):
                ledger.record(item)
                recorded += 1
                if recorded % 5000 == 0:
                    ledger.commit()
                    rss_peak_during = max(rss_peak_during, rss_bytes())
            ledger.commit()
            rss_peak_during = max(rss_peak_during, rss_bytes())
            ledger.close()
            opens[size] = time_to_ready(path, repeat=7)
            ledger = SqliteLedger(path)
        build_seconds = time.perf_counter() - build_started
        rss_after = rss_bytes()
        ledger.close()
        figures["open_ready_ms"] = {
            str(size): {"median": statistics.median(t), "max": max(t)} for size, t in opens.items()
        }
        figures["rss_mib"] = {
            "fills": recorded,
            "before": rss_before / 2**20,
            "after": rss_after / 2**20,
            "growth": (rss_after - rss_before) / 2**20,
            "peak_growth": (rss_peak_during - rss_before) / 2**20,
        }
        figures["build"] = {"fills": recorded, "seconds": build_seconds, "file_mib": path.stat().st_size / 2**20}

    report(figures)
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")


def report(figures: dict[str, object]) -> None:
    out = sys.stdout.write
    out(f"\nSqliteLedger benchmark — Python {figures['python']}, SQLite {figures['sqlite']}, {figures['machine']}\n\n")
    out(f"Record throughput: medians of {ROUNDS} alternating rounds; the last column is the per-round range.\n\n")
    out("| record throughput | baseline (raw sqlite3), fills/s | SqliteLedger, fills/s | ledger / baseline | range |\n")
    out("|---|---:|---:|---:|---:|\n")
    labels = {
        "batched_1000_full": "batched: commit every 1000 (synchronous=full)",
        "single_full": "single: commit every fill (synchronous=full)",
        "single_normal": "single: commit every fill (synchronous=normal)",
    }
    throughput = figures["throughput"]
    rounds = figures["throughput_rounds"]
    assert isinstance(throughput, dict)
    assert isinstance(rounds, dict)
    for name, label in labels.items():
        pair = throughput[name]
        ratio = pair["ledger"] / pair["baseline"]
        each = [led / base for led, base in zip(rounds[name]["ledger"], rounds[name]["baseline"], strict=True)]
        spread = f"{min(each):.2f} to {max(each):.2f}"
        out(f"| {label} | {pair['baseline']:,.0f} | {pair['ledger']:,.0f} | {ratio:.2f} | {spread} |\n")
    out("\n| recorded fills | open + ready, median ms | max ms |\n|---:|---:|---:|\n")
    opens = figures["open_ready_ms"]
    assert isinstance(opens, dict)
    for size, timing in opens.items():
        out(f"| {int(size):,} | {timing['median']:.1f} | {timing['max']:.1f} |\n")
    rss = figures["rss_mib"]
    build = figures["build"]
    assert isinstance(rss, dict)
    assert isinstance(build, dict)
    out(
        f"\nRSS while recording {rss['fills']:,} fills: {rss['before']:.1f} MiB before, {rss['after']:.1f} MiB after "
        f"(growth {rss['growth']:.1f} MiB, peak growth {rss['peak_growth']:.1f} MiB).\n"
        f"Building that ledger took {build['seconds']:.1f} s ({build['fills'] / build['seconds']:,.0f} fills/s "
        f"with a commit every 5000); the file is {build['file_mib']:.0f} MiB.\n"
    )


if __name__ == "__main__":
    main()
