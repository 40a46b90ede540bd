"""Child processes for the ledger tests: ``python _child.py COMMAND ...``.

* ``crash PATH SEED RUN`` — record fills in batches and acknowledge some, forever,
  reporting each step on stdout *after* it happened (the parent SIGKILLs it).
* ``hold PATH`` — open the ledger, print ``ready``, keep it until stdin closes.
* ``open PATH`` — try to open the ledger; print the outcome as JSON.
* ``full-commit PATH`` — with a file-size limit just above the current file,
  record a large batch and commit; print what happened as JSON.
"""

from __future__ import annotations

import json
import random
import resource
import signal
import sys
from decimal import Decimal

from reconcile_core import Fill, FillKey, FillKind, Liquidity, RecordOutcome, Side, Source
from reconcile_core.errors import LedgerError
from reconcile_core.sqlite import SqliteLedger

VENUE = "crashvenue"
ACCOUNT = "0xabc"


def make_fill(fill_id: str, n: int) -> Fill:
    return Fill(
        key=FillKey(venue=VENUE, account=ACCOUNT, fill_type="FILL", fill_id=fill_id),
        kind=FillKind.TRADE,
        order_id=f"order-{n % 7}",
        instrument="BTC-USD-PERP",
        side=Side.BUY if n % 2 else Side.SELL,
        price=Decimal("65000.1") + n,
        size=Decimal("0.001") * (n % 5 + 1),
        fee=Decimal("-0.0001"),
        fee_currency="USDC",
        liquidity=Liquidity.MAKER,
        time=1_700_000_000_000 + n,
        source=Source.WS,
    )


def say(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def crash(path: str, seed: int, run: int) -> None:
    """Lines: ``R id:offset ...`` recorded (uncommitted), ``C`` committed, ``A offsets`` acking, ``K`` ack committed."""
    rng = random.Random(seed)
    ledger = SqliteLedger(path, synchronous="normal")
    say("O")
    unacked = [d.offset for d in ledger.undelivered(venue=VENUE, account=ACCOUNT, limit=10**9)]
    mine: list[Fill] = []
    n = 0
    while True:
        recorded = []
        for _ in range(rng.randint(1, 25)):
            if mine and rng.random() < 0.1:
                again = rng.choice(mine)
                assert ledger.record(again).outcome is RecordOutcome.DUPLICATE
                continue
            fill = make_fill(f"{run}-{n}", n)
            n += 1
            result = ledger.record(fill)
            assert result.outcome is RecordOutcome.RECORDED, result
            assert result.offset is not None
            recorded.append(f"{fill.key.fill_id}:{result.offset}")
            mine.append(fill)
            unacked.append(result.offset)
        if len(mine) > 200:
            del mine[:100]
        say("R", *recorded)
        ledger.commit()
        say("C")
        rng.shuffle(unacked)
        cut = rng.randint(0, len(unacked))
        acked, unacked = unacked[:cut], unacked[cut:]
        say("A", *acked)
        ledger.acknowledge(acked)
        ledger.commit()
        say("K")


def hold(path: str) -> None:
    with SqliteLedger(path):
        say("ready")
        sys.stdin.read()


def try_open(path: str) -> None:
    try:
        ledger = SqliteLedger(path)
    except LedgerError as exc:
        say(json.dumps({"error": type(exc).__name__, "message": str(exc), "path": exc.path}))
    else:
        ledger.close()
        say(json.dumps({"error": None}))


def full_commit(path: str) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write returns EFBIG instead of killing us
    ledger = SqliteLedger(path)
    ledger.record(make_fill("committed", 0))
    ledger.commit()
    ledger.close()
    ledger = SqliteLedger(path)
    limit = 64 * 1024  # the WAL (and the database) may not grow past this
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    outcome: dict[str, object] = {}
    for n in range(1, 3000):
        ledger.record(make_fill(f"batch-{n}", n))
    try:
        ledger.commit()
    except LedgerError as exc:
        outcome["commit_error"] = type(exc).__name__
        outcome["message"] = str(exc)
        outcome["cause"] = type(exc.__cause__).__name__
    outcome["committed_present"] = ledger.get(make_fill("committed", 0).key) is not None
    outcome["batch_present"] = ledger.get(make_fill("batch-1", 1).key) is not None
    outcome["count"] = ledger.count()
    outcome["undelivered"] = len(ledger.undelivered(venue=VENUE, account=ACCOUNT))
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    again = ledger.record(make_fill("after", 10**6))
    ledger.commit()
    outcome["after"] = again.outcome.value
    outcome["after_offset"] = again.offset
    ledger.close()
    say(json.dumps(outcome))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "crash":
        crash(args[0], int(args[1]), int(args[2]))
    elif command == "hold":
        hold(args[0])
    elif command == "open":
        try_open(args[0])
    elif command == "full-commit":
        full_commit(args[0])
    else:
        sys.exit(f"unknown command {command!r}")
