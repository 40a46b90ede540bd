"""The Paradex simulator on loopback, in a child process, for the REST benchmarks.

``serve_loopback()`` runs uvicorn in a thread of the calling process; the
benchmarks run it in a child process instead, so the server's JSON rendering
does not compete with the measured client for one interpreter lock (the venue
is another machine in real life). The child scripts the history, serves it
with ``ParadexSimulator.serve_loopback_sync()``, prints one JSON line (URLs,
a read-only token, counts) and serves until its stdin closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: Fills per scripted order: one sweep of this many parts.
FILLS_PER_ORDER = 10


def script(sim: Any, account: str, *, fills: int, open_orders: int) -> None:
    """``fills`` fills (sweeps of ``FILLS_PER_ORDER``), then ``open_orders`` resting orders.

    The history ends ten minutes (virtual) before the open orders are placed,
    and the clock then moves ten more minutes: what a reconciliation pass
    reads from its recent window is the open orders only.
    """
    venue = sim.venue
    markets = sim.markets
    made = 0
    number = 0
    while made < fills:
        market = markets[number % len(markets)]
        parts = min(FILLS_PER_ORDER, fills - made)
        size = market.size_increment * parts
        order = venue.place_order(
            account,
            market=market.symbol,
            side="BUY" if number % 2 == 0 else "SELL",
            size=size,
            price=market.initial_price,
            client_id=f"hist-{number}",
        )
        venue.accept_order(order.id)
        venue.fill_order(order.id, [(market.initial_price, market.size_increment)] * parts)
        made += parts
        number += 1
        sim.advance(7)
    sim.quiesce()
    sim.advance(600_000)
    for rest in range(open_orders):
        market = markets[rest % len(markets)]
        order = venue.place_order(
            account,
            market=market.symbol,
            side="BUY" if rest % 2 == 0 else "SELL",
            size=market.size_increment,
            price=market.initial_price * (Decimal("0.5") if rest % 2 == 0 else Decimal(2)),
            client_id=f"open-{rest}",
        )
        venue.accept_order(order.id)
    sim.advance(600_000)


def serve(config: dict[str, Any]) -> None:
    from reconcile_paradex.testing import ParadexSimulator

    account = config["account"]
    sim = ParadexSimulator(seed=config.get("seed", 11), accounts=[account], settlement_lag_ms=100)
    script(sim, account, fills=config["fills"], open_orders=config["open_orders"])
    truth = sim.truth(account)
    with sim.serve_loopback_sync(ws_ping_interval=None) as (rest_url, ws_url):
        info = {
            "rest_url": rest_url,
            "ws_url": ws_url,
            "token": sim.issue_read_only_token(account),
            "fills": len(truth.fills),
            "orders": len(truth.orders),
            "open_orders": len(sim.venue.live_orders(account)),
            "now": sim.now,
        }
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        sys.stdin.read()  # serve until the parent closes our stdin


class SimServer:
    """``with SimServer(account=..., fills=..., open_orders=...) as info:`` a loopback simulator in a child."""

    def __init__(self, *, account: str, fills: int, open_orders: int = 0, seed: int = 11) -> None:
        self._config = {"account": account, "fills": fills, "open_orders": open_orders, "seed": seed}
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> dict[str, Any]:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks._simserver", json.dumps(self._config)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            self._stop()
            raise RuntimeError(f"the simulator process exited with {process.returncode}")
        info: dict[str, Any] = json.loads(line)
        return info

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    def __exit__(self, *exc_info: object) -> None:
        self._stop()


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
