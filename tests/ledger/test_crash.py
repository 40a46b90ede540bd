"""Crash safety: a child process is SIGKILLed at random points while it records and acknowledges.

The child (``_child.py crash``) reports each step on stdout only *after* it
happened: ``R id:offset ...`` recorded (not yet committed), ``C`` committed,
``A offset ...`` acknowledging, ``K`` acknowledgement committed. After each kill
the parent reopens the ledger and checks what it holds against those reports.

``RECONCILE_CRASH_KILLS`` sets the number of kills (the ``soak`` nox session
runs 300); ``RECONCILE_CRASH_SEED`` replays a run.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import attrs

from reconcile_core import FillKey
from reconcile_core.sqlite import SqliteLedger
from reconcile_core.testing._ledger_contract import make_fill

CHILD = str(Path(__file__).with_name("_child.py"))
VENUE = "crashvenue"
ACCOUNT = "0xabc"
KILLS = int(os.environ.get("RECONCILE_CRASH_KILLS", "30"))
SEED = int(os.environ.get("RECONCILE_CRASH_SEED", str(random.randrange(2**32))))


def key(fill_id: str) -> FillKey:
    return FillKey(venue=VENUE, account=ACCOUNT, fill_type="FILL", fill_id=fill_id)


@attrs.define
class Reported:
    """What the children reported, across every run on one ledger file."""

    #: fill id -> offset, for fills whose commit was reported.
    committed: dict[str, int] = attrs.field(factory=dict)
    #: Recorded, commit not (yet) reported: present after a kill or not.
    recording: dict[str, int] = attrs.field(factory=dict)
    acked: set[int] = attrs.field(factory=set)
    #: Acknowledged, commit not (yet) reported.
    acking: set[int] = attrs.field(factory=set)
    highest_committed: int = 0

    def apply(self, line: str, where: str) -> None:
        tag, *items = line.split()
        if tag == "R":
            for item in items:
                fill_id, offset_text = item.split(":")
                offset = int(offset_text)
                assert offset > self.highest_committed, f"{where}: offset {offset} reuses a committed offset"
                assert fill_id not in self.committed, f"{where}: {fill_id} recorded twice"
                self.recording[fill_id] = offset
        elif tag == "C":
            self.committed.update(self.recording)
            self.highest_committed = max([self.highest_committed, *self.recording.values()])
            self.recording.clear()
        elif tag == "A":
            self.acking = {int(item) for item in items}
            assert self.acking <= set(self.committed.values()), f"{where}: acking an uncommitted offset"
        elif tag == "K":
            self.acked |= self.acking
            self.acking = set()
        else:
            assert tag == "O", f"{where}: unexpected line {line!r}"


def run_and_kill(path: Path, *, seed: int, run: int, after_lines: int, stderr_path: Path) -> list[str]:
    """Start a child, SIGKILL it once it has printed ``after_lines`` lines; every complete line it printed."""
    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, CHILD, "crash", str(path), str(seed), str(run)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as child,
    ):
        watchdog = threading.Timer(60, child.kill)  # a hung child fails the test instead of hanging it
        watchdog.start()
        try:
            assert child.stdout is not None
            lines: list[str] = []
            while len(lines) < after_lines:
                line = child.stdout.readline()
                if not line:
                    break
                lines.append(line)
            child.send_signal(signal.SIGKILL)
            rest = child.stdout.read()
            child.wait()
        finally:
            watchdog.cancel()
    assert child.returncode == -signal.SIGKILL, f"the child died on its own:\n{stderr_path.read_text()}"
    text = "".join(lines) + rest
    complete, _, _partial = text.rpartition("\n")  # a line cut by the kill is not a report
    return complete.splitlines()


def check_after_crash(path: Path, reported: Reported, where: str) -> None:
    with SqliteLedger(path, synchronous="normal") as ledger:
        assert ledger.integrity_check() == [], where
        deliveries = ledger.undelivered(venue=VENUE, account=ACCOUNT, limit=10**9)
        pending: dict[str, int] = {}
        for delivery in deliveries:
            assert delivery.fill is not None, where
            fill_id = delivery.fill.key.fill_id
            assert fill_id not in pending, f"{where}: {fill_id} would be delivered twice"
            pending[fill_id] = delivery.offset
        # A commit or an acknowledgement in flight at the kill went through, or did not.
        for fill_id, offset in reported.recording.items():
            if ledger.get(key(fill_id)) is not None:
                reported.committed[fill_id] = offset
                reported.highest_committed = max(reported.highest_committed, offset)
        reported.recording.clear()
        reported.acked |= reported.acking - set(pending.values())
        reported.acking = set()

        for fill_id, offset in reported.committed.items():
            stored = ledger.get(key(fill_id))
            assert stored is not None, f"{where}: committed fill {fill_id} is lost"
            if offset in reported.acked:
                assert fill_id not in pending, f"{where}: acknowledged {fill_id} would be delivered again"
            else:
                assert pending.get(fill_id) == offset, f"{where}: unacknowledged {fill_id} is not delivered"
        assert set(pending) <= set(reported.committed), f"{where}: unknown fills in the outbox"
        assert ledger.count() == len(reported.committed), where
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], where
    finally:
        conn.close()


def test_sigkill_at_random_points_loses_nothing_committed(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "crash.sqlite"
    reported = Reported()
    for run in range(KILLS):
        where = f"run {run} (RECONCILE_CRASH_SEED={SEED})"
        after_lines = 0 if rng.random() < 0.1 else rng.randint(1, 30)
        lines = run_and_kill(
            path, seed=rng.randrange(2**32), run=run, after_lines=after_lines, stderr_path=tmp_path / "stderr.txt"
        )
        for line in lines:
            reported.apply(line, where)
        check_after_crash(path, reported, where)
    assert reported.committed, "no child ever committed: the test proved nothing"
    assert reported.acked, "no child ever acknowledged: the test proved nothing"


def offset_of(ledger: SqliteLedger, fill_id: str) -> int:
    offset = ledger.record(make_fill(fill_id)).offset
    assert offset is not None
    return offset


def test_delivery_and_acknowledgement_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "restart.sqlite"
    with SqliteLedger(path, synchronous="normal") as ledger:
        first = [offset_of(ledger, f"a{n}") for n in range(6)]
        ledger.commit()
        # Deliver with a cursor: within one process nothing is delivered twice.
        batch = ledger.undelivered(venue="venue", account="account", limit=4)
        assert [d.offset for d in batch] == first[:4]
        cursor = batch[-1].offset
        second = [offset_of(ledger, f"b{n}") for n in range(2)]
        ledger.commit()
        batch = ledger.undelivered(venue="venue", account="account", after=cursor)
        assert [d.offset for d in batch] == [*first[4:], *second]
        ledger.acknowledge(first[::2])
        ledger.commit()
    # A restart: everything not acknowledged is delivered again, once.
    with SqliteLedger(path, synchronous="normal") as ledger:
        again = ledger.undelivered(venue="venue", account="account")
        assert [d.offset for d in again] == [*first[1::2], *second]
        assert [d.fill.key.fill_id for d in again if d.fill] == ["a1", "a3", "a5", "b0", "b1"]
        ledger.acknowledge(d.offset for d in again)
        # Acknowledged but not committed when the process ends: close commits.
    with SqliteLedger(path, synchronous="normal") as ledger:
        assert ledger.undelivered(venue="venue", account="account") == []
        assert offset_of(ledger, "c0") > max(*first, *second)
        assert ledger.count() == 9
