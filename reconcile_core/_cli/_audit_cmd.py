"""``reconcile audit VENUE``: one REST reconciliation against the ledger, for cron.

Read-only: it never writes the ledger (so it runs beside ``reconcile run``).
It reads the venue's truth over REST and compares:

* fills on the venue missing from the ledger (older than the settlement lag);
* fills in the ledger the venue does not list (not busted);
* busts on the venue the ledger has not recorded;
* positions not explained by the ledger's fills;
* orders the venue cannot account for (``UNKNOWN``), and fill gaps.

The exit code is 1 when it finds anything, 0 when all agree.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from decimal import Decimal

import anyio
import attrs

from reconcile_core._events import BackfillFills, Discrepancy, ResolveOrder
from reconcile_core._memory_ledger import MemoryLedger
from reconcile_core._reconciler import AccountReconciler
from reconcile_core._types import Fill, FillBust, FillKey, OpenOrdersSnapshot, Order
from reconcile_core.errors import NotFoundError, ReconcileError, TransportError, UsageError
from reconcile_core.sqlite import SqliteLedger
from reconcile_core.typing import StateSource

from ._output import print_table, say
from ._source_options import (
    add_source_arguments,
    build_source,
    check_source,
    ledger_path,
    positive_seconds,
    read_token,
    venue_plugin,
)

__all__ = ["AuditRow", "add_audit_parser", "audit"]

DAY_MS = 86_400_000


@attrs.frozen
class AuditRow:
    kind: str
    subject: str
    expected: str
    seen: str


def add_audit_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("audit", help="one REST reconciliation against the ledger; exit 1 on differences")
    add_source_arguments(parser)
    parser.add_argument(
        "--since",
        type=int,
        metavar="MS",
        help="compare fills from this venue time (ms); default: the ledger's watermark minus one day",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines instead of a table")
    parser.add_argument("--max-lookups", type=int, default=100, help="orders to look up by id, at most")
    parser.add_argument("--timeout", type=positive_seconds, default=30.0, metavar="SECONDS", help="per-request timeout")
    # A closed pipe before the verdict is known must not read as "no difference".
    parser.set_defaults(handler=_audit, closed_pipe_exit=1)


def _audit(args: argparse.Namespace) -> int:
    plugin = venue_plugin(args)
    token = read_token(args)
    source = build_source(args, plugin, token)
    path = ledger_path(args)
    if not path.exists():
        msg = f"no ledger at {path}; pass --ledger PATH (reconcile run creates one)"
        raise UsageError(msg)
    with SqliteLedger(path, read_only=True) as ledger:
        rows = anyio.run(_audit_async, args, source, ledger)
    verdict = args.closed_pipe_exit = 1 if rows else 0
    if args.json:
        for row in rows:
            say(json.dumps(attrs.asdict(row)))
    elif rows:
        print_table(("kind", "subject", "expected", "seen"), [attrs.astuple(r) for r in rows])
    else:
        say("ok: the ledger agrees with the venue")
    return verdict


async def _audit_async(args: argparse.Namespace, source: StateSource, ledger: SqliteLedger) -> list[AuditRow]:
    deadline = args.timeout * 10
    try:
        await check_source(source, timeout=args.timeout)
        return await audit(source, ledger, since=args.since, max_lookups=args.max_lookups, deadline=deadline)
    except TimeoutError:  # the builtin, from the deadline: each request was answered in time, the whole was not
        msg = f"the venue did not answer in full within {deadline:g} s (ten times --timeout); check your network"
        raise TransportError(msg) from None
    finally:
        await source.aclose()


async def audit(
    source: StateSource,
    ledger: SqliteLedger,
    *,
    since: int | None = None,
    max_lookups: int = 100,
    deadline: float = 300.0,
) -> list[AuditRow]:
    """Compare the venue (over REST) with the ledger; one row per difference."""
    venue, account = source.venue, source.account
    if since is None:
        watermark = ledger.watermark(venue=venue, account=account)
        since = max(0, watermark - DAY_MS) if watermark is not None else 0
    with anyio.fail_after(deadline):
        now = await source.server_time()
        settled = now - source.settlement_lag_ms
        venue_fills: dict[FillKey, Fill] = {}
        busts: dict[str, FillBust] = {}
        problems: list[Discrepancy] = []
        async for page in source.fills(since=since):
            venue_fills.update((f.key, f) for f in page.items)
            problems.extend(page.problems)
        async for bust_page in source.busts(since=since):
            busts.update((b.fill_id, b) for b in bust_page.items)
            problems.extend(bust_page.problems)
        open_orders = await source.open_orders()
        positions = await source.positions()
        history: list[Order] = []
        async for order_page in source.order_history(since=since):
            history.extend(order_page.items)
            problems.extend(order_page.problems)

    rows = [AuditRow("malformed", p.subject, "", p.detail) for p in problems]
    rows.extend(
        AuditRow("fill missing from ledger", str(key), f"{fill.size} @ {fill.price}", "absent")
        for key, fill in sorted(venue_fills.items(), key=lambda kv: kv[1].time)
        if fill.time <= settled and ledger.get(key) is None
    )
    # One read of the ledger serves both checks: fills the venue does not list,
    # and the signed totals that must explain the venue's positions.
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for fill in ledger.iter_fills(venue=venue, account=account):
        if ledger.is_busted(venue=venue, account=account, fill_id=fill.key.fill_id):
            continue
        totals[fill.instrument] += fill.signed_size
        if since <= fill.time <= settled and fill.key not in venue_fills:
            rows.append(AuditRow("fill not on venue", str(fill.key), "listed by the venue", "absent"))
    rows.extend(
        AuditRow("bust missing from ledger", f"fill {fill_id}", "busted", "not busted")
        for fill_id in sorted(busts)
        if not ledger.is_busted(venue=venue, account=account, fill_id=fill_id)
    )

    venue_sizes = {p.instrument: p.size for p in positions.positions}
    for instrument in sorted(set(totals) | set(venue_sizes)):
        expected, seen = venue_sizes.get(instrument, Decimal(0)), totals.get(instrument, Decimal(0))
        if expected != seen:
            rows.append(AuditRow("position not explained by fills", instrument, str(expected), str(seen)))

    rows.extend(
        await _order_rows(
            source, venue_fills, open_orders, history, max_lookups=max_lookups, since=since, settled=settled
        )
    )
    return rows


async def _order_rows(
    source: StateSource,
    venue_fills: dict[FillKey, Fill],
    open_orders: OpenOrdersSnapshot,
    history: list[Order],
    *,
    max_lookups: int,
    since: int,
    settled: int,
) -> list[AuditRow]:
    """Run the reconciler on the venue's own view to find UNKNOWN orders and fill gaps."""
    reconciler = AccountReconciler(venue=source.venue, account=source.account, ledger=MemoryLedger())
    events: list[object] = []
    for order in history:
        events.extend(reconciler.merge(order).events)
    events.extend(reconciler.merge_open_orders(open_orders).events)
    for fill in venue_fills.values():
        events.extend(reconciler.merge(fill).events)
    lookups = 0
    for need in list(reconciler.needs):
        if not isinstance(need, ResolveOrder):
            continue
        if lookups >= max_lookups:
            break
        lookups += 1
        try:
            answer = await source.order(need.order_id)
        except NotFoundError:
            answer = None
        except ReconcileError as exc:
            events.extend(reconciler.resolve_failed(need.order_id, reason=str(exc)).events)
            continue
        if answer is None:
            events.extend(reconciler.resolve_failed(need.order_id, reason="not found").events)
        else:
            events.extend(reconciler.merge(answer).events)
    for need in list(reconciler.needs):
        # Orders created before the window may have fills before it: no gap can be judged.
        if isinstance(need, BackfillFills) and need.since >= since:
            events.extend(reconciler.backfill_done(need, complete_up_to=settled).events)
    return [
        AuditRow(e.kind.value, e.subject, e.expected or "", e.seen or "") for e in events if isinstance(e, Discrepancy)
    ]
