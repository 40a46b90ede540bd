"""Crash-restart: a session in a child process, SIGKILLed mid-run and restarted on the same SQLite ledger.

The simulator lives in this (parent) process, served on loopback, so the
venue's truth survives the kills; the parent drives the activity. Across
the child's lives:

* no acknowledged fill is ever delivered again: after each kill, the
  ledger's outbox (what was not acknowledged) is exactly what the next life
  redelivers first, marked ``redelivery=True``;
* every fill reaches a consumer at least once, and more than once only as
  such a redelivery; every bust likewise;
* no order event moves an order backwards;
* the orders the venue cancels between lives are reported, and the
  consumer's view of its orders (the last version any life delivered)
  equals the venue's;
* the last life converges: its orders and positions equal the truth, and
  the ledger holds every fill with nothing left unacknowledged.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pytest

from reconcile_core import OrderUpdated, PositionUpdated, Source
from reconcile_core.jsonl import encode_event
from reconcile_core.sqlite import SqliteLedger
from reconcile_paradex import parse_position
from reconcile_paradex.testing import ParadexSimulator
from reconcile_paradex.testing import _wire as wire

from ._harness import CONFIG, VENUE, settlement_lag_for, truth_fills, truth_orders

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("CHAOS_CRASH_SEED", "7"))
#: Lives of the child: all but the last end in SIGKILL.
LIVES = 3
#: Fills the venue makes per life, and fills a life must deliver before it may be killed.
FILLS_PER_LIFE = 120
DELIVERED_BEFORE_KILL = 25
DEADLINE = 60.0


class Child:
    """One life of the child process, its stdout read by a thread into a queue."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if line.endswith("\n"):  # a line cut by SIGKILL was not fully taken: ignore it
                self._queue.put(json.loads(line))
        self._queue.put(None)

    def pump(self) -> None:
        """Move what the child printed so far into :attr:`lines`."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is None:
                return
            self.lines.append(item)

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], *, within: float = DEADLINE) -> None:
        deadline = time.monotonic() + within
        while not predicate(self.lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the child did not get there in {within} s; stderr: {self.stderr_so_far()}")
            try:
                item = self._queue.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if item is None:
                pytest.fail(f"the child exited early ({self.process.poll()}); stderr: {self.stderr_so_far()}")
            self.lines.append(item)

    def stderr_so_far(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read()[-3000:]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        self.pump()
        self._close_pipes()

    def finish(self) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write("finish\n")
        self.process.stdin.flush()
        self.wait_for(lambda lines: any(line["event"] == "state" for line in lines))
        _out, err = self.process.communicate(timeout=DEADLINE)
        self._reader.join(timeout=30)
        self.pump()
        return err

    def _close_pipes(self) -> None:
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def delivered(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["event"] == "taken" and line["type"] == kind]


def drive(sim: ParadexSimulator, rng: random.Random, child: Child, *, fills: int) -> None:
    """Venue activity in small bursts, paced in real time so the child follows over its sockets."""
    while sim.venue.fill_count() < fills:
        for _ in range(rng.randint(1, 6)):
            sim.step()
        time.sleep(0.002)  # pacing the venue, not waiting for an event
        child.pump()


def test_kill_and_restart_on_the_same_ledger(tmp_path: Path) -> None:
    sim = ParadexSimulator(seed=SEED, accounts=1, faults="light")
    rng = random.Random(SEED)
    account = sim.accounts[0]
    sim.run_until(fills=40)
    ledger = tmp_path / "ledger.sqlite"
    env = {**os.environ, "CHAOS_TOKEN": sim.issue_read_only_token(account)}
    lives: list[Child] = []
    outboxes: list[list[int]] = []
    watermark: int | None = None
    canceled_while_down: list[str] = []
    with sim.serve_loopback_sync() as endpoints:
        command = [
            sys.executable,
            "-m",
            "tests.e2e._crash_child",
            "--rest-url",
            endpoints.rest_url,
            "--ws-url",
            endpoints.ws_url,
            "--account",
            account,
            "--ledger",
            str(ledger),
            "--lag-ms",
            str(settlement_lag_for(sim, sim.faults)),
        ]
        for life in range(LIVES):
            backend = ("asyncio", "trio")[life % 2]
            child = Child([*command, "--seed", str(life), "--backend", backend, "--slow-ms", "1"], env)
            lives.append(child)
            try:
                child.wait_for(lambda lines: any(line["event"] == "ready" for line in lines))
                if life < LIVES - 1:
                    start = len(child.delivered("fill"))
                    drive(sim, rng, child, fills=sim.venue.fill_count() + FILLS_PER_LIFE)
                    child.wait_for(
                        lambda _lines, c=child, s=start: len(c.delivered("fill")) >= s + DELIVERED_BEFORE_KILL
                    )
                    for _ in range(rng.randint(0, 30)):  # die in the middle of something
                        sim.step()
                    child.kill()
                    with SqliteLedger(ledger, read_only=True) as opened:
                        assert opened.integrity_check() == []
                        outboxes.append(
                            [d.offset for d in opened.undelivered(venue=VENUE, account=account, limit=10**6)]
                        )
                        watermark = opened.watermark(venue=VENUE, account=account)
                    # While no life runs, the venue cancels every live order; the next life must
                    # report them (checked with the consumer's view below). Here its order history
                    # lists them (a life's watermark lags its orders); tests/runtime/test_sqlite.py
                    # has the case where only the ledger's live orders report them.
                    for order in truth_orders(sim.truth(account)).values():
                        if order.is_live:
                            sim.venue.cancel_order(order.order_id)
                            canceled_while_down.append(order.order_id)
                else:
                    drive(sim, rng, child, fills=sim.venue.fill_count() + FILLS_PER_LIFE)
                    sim.quiesce()
                    err = child.finish()
                    assert child.process.returncode == 0, err
                    assert "Traceback" not in err, err
            finally:
                if child.process.poll() is None:
                    child.process.kill()
                    child.process.wait(timeout=30)
    assert not sim.server_errors
    assert watermark is not None
    assert canceled_while_down, "no order was live at a kill: the cancels between lives were not exercised"
    check_lives(sim, account, lives, outboxes, ledger, since=watermark - CONFIG.fill_overlap_ms)


def _key(line: dict[str, Any]) -> tuple[str, str]:
    return (line["fill_type"], line["fill_id"])


def check_lives(
    sim: ParadexSimulator, account: str, lives: list[Child], outboxes: list[list[int]], ledger: Path, *, since: int
) -> None:
    truth = sim.truth(account)
    unbusted, busted = truth_fills(truth)
    fills_total: Counter[tuple[str, str]] = Counter()
    busts_total: Counter[str] = Counter()
    fresh_offsets: set[int] = set()
    for index, child in enumerate(lives):
        assert not [line for line in child.lines if line["event"] == "backwards"], f"life {index}"
        taken = [line for line in child.lines if line["event"] == "taken" and line["type"] in ("fill", "fill_busted")]
        redelivered = [line for line in taken if line["redelivery"]]
        # Redeliveries come first, and they are exactly the outbox the previous life left behind.
        assert taken[: len(redelivered)] == redelivered, f"life {index}: redeliveries are not first"
        expected = outboxes[index - 1] if index else []
        assert [line["offset"] for line in redelivered] == expected, f"life {index}: redelivered != outbox"
        for line in taken:
            if line["redelivery"]:
                continue
            assert line["offset"] not in fresh_offsets, f"life {index}: offset {line['offset']} delivered fresh twice"
            fresh_offsets.add(line["offset"])
        for line in taken:
            if line["type"] == "fill":
                fills_total[_key(line)] += 1
            else:
                busts_total[line["fill_id"]] += 1

    # Every fill at least once; more than once only through redeliveries of unacknowledged ones
    # (a redelivered fill may never have been taken before: it sat in the outbox at the kill).
    fresh = Counter(_key(line) for child in lives for line in child.delivered("fill") if not line["redelivery"])
    assert all(count == 1 for count in fresh.values()), "a fill delivered fresh twice"
    for key in unbusted:
        assert fills_total[(key.fill_type, key.fill_id)] >= 1, f"fill {key.fill_id} never delivered"
    assert set(busts_total) == {b.fill_id for b in truth.busts}
    known = {(k.fill_type, k.fill_id) for k in (*unbusted, *busted)}
    assert set(fills_total) <= known, "a fill the venue never had"
    assert any(outboxes), "no life left anything unacknowledged: the redelivery path was not exercised"

    # The last life converged to the truth.
    (state,) = [line for line in lives[-1].lines if line["event"] == "state"]
    assert state["health"]["outstanding_needs"] == 0
    assert state["health"]["unknown_orders"] == 0
    # A fresh process knows the live orders and the order history created since its watermark
    # (minus the overlap; /orders-history filters on created_at), and looks up the orders the
    # ledger last knew live; each order it knows equals the venue's newest version.
    local_orders = {o["order_id"]: _strip(o) for o in state["orders"]}
    want_orders = {
        oid: _strip({"event": "taken", **encode_event(OrderUpdated(order=o, previous=None), account=account)})
        for oid, o in truth_orders(truth).items()
    }
    must_know = {o.order_id for o in truth_orders(truth).values() if o.is_live or o.created_at >= since}
    assert must_know <= set(local_orders), sorted(must_know - set(local_orders))[:5]
    assert {oid: want_orders.get(oid) for oid in local_orders} == local_orders
    # The consumer's view of its orders (the last version any life delivered) equals the venue's:
    # an order live when a life was killed, and ended before the next life started, is delivered
    # again with its final state, however old it is (the ledger carries live orders across lives).
    view = {line["order_id"]: _strip(line) for child in lives for line in child.delivered("order")}
    stale = sorted(oid for oid, line in view.items() if line != want_orders.get(oid))
    assert not stale, [(view[oid]["status"], want_orders.get(oid, {}).get("status")) for oid in stale[:5]]
    local_positions = {p["market"]: _strip(p) for p in state["positions"] if Decimal(p["size"]) != 0}
    want_positions = {}
    for market, p in truth.positions.items():
        position = parse_position(wire.position_json(p, seq_no=0), source=Source.REST).value
        if position.size != 0:
            want_positions[market] = _strip(
                {"event": "taken", **encode_event(PositionUpdated(position=position, previous=None), account=account)}
            )
    assert local_positions == want_positions

    with SqliteLedger(ledger, read_only=True) as opened:
        assert opened.undelivered(venue=VENUE, account=account) == []
        for key, fill in unbusted.items():
            stored = opened.get(key)
            assert stored is not None, key
            assert stored.content() == fill.content()
        for key in busted:
            assert opened.is_busted(venue=VENUE, account=account, fill_id=key.fill_id)


def _strip(document: dict[str, Any]) -> dict[str, Any]:
    """Provenance aside (the same order seen on the stream or over REST is the same order)."""
    return {k: v for k, v in document.items() if k not in ("source", "event")}
