"""The child of the crash-restart test: one real session over loopback, reporting on stdout.

``python -m tests.e2e._crash_child --rest-url URL --ws-url URL --account ADDR --ledger PATH``
(the read-only token in ``CHAOS_TOKEN``). It runs a :class:`Session` of a
:class:`ParadexSource` on a :class:`SqliteLedger` and prints one JSON line
per event its consumer takes, *before* taking the next one (which is what
acknowledges a fill):

* ``{"event": "ready"}`` once the first pass is done;
* every event in the ``reconcile_core.jsonl`` contract (fills carry their
  offset and ``redelivery``);
* ``{"event": "backwards", ...}`` if an order event moved an order back;
* on ``finish`` from stdin: it reconciles until nothing is outstanding, prints
  ``{"event": "state", "orders": [...], "positions": [...], "health": {...}}``
  and exits 0, closing the session normally.

The parent SIGKILLs it at random moments. ``--slow-ms`` makes the consumer
take that long per fill, so unread fills pile up in the ledger's outbox.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import anyio
import attrs
import httpx

from reconcile_core import (
    CycleSummary,
    Event,
    FillBusted,
    FillRecorded,
    Order,
    OrderStatus,
    OrderUpdated,
    PositionUpdated,
    order_version,
)
from reconcile_core.jsonl import encode_event
from reconcile_core.runtime import Session
from reconcile_core.sqlite import SqliteLedger
from reconcile_paradex import ParadexSource

from ._harness import CONFIG, make_source_options


def say(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> int:
    options = make_source_options(
        account=args.account,
        token=os.environ["CHAOS_TOKEN"],
        rest_url=args.rest_url,
        ws_url=args.ws_url,
        lag_ms=args.lag_ms,
        seed=args.seed,
        timeout=1.0,
    )
    config = attrs.evolve(CONFIG, request_timeout=1.0)
    async with httpx.AsyncClient(timeout=1.0) as http:
        source = ParadexSource(**options, http_client=http)
        with SqliteLedger(args.ledger) as ledger:
            async with Session(source, ledger, config=config) as session, anyio.create_task_group() as tg:
                tg.start_soon(_read_commands, session)
                last: dict[str, Order] = {}
                ready = False
                async for event in session.events():
                    say(_encode(event, session.account))
                    _check_order(event, last)
                    if isinstance(event, FillRecorded | FillBusted) and args.slow_ms:
                        await anyio.sleep(args.slow_ms / 1000)  # a slow consumer: the outbox fills up
                    if not ready and session.health().synced:
                        ready = True
                        say({"event": "ready"})
                    if isinstance(event, CycleSummary) and event.reason == "final-done":
                        break
                health = session.health()
                say(
                    {
                        "event": "state",
                        "orders": [
                            _encode(OrderUpdated(order=o, previous=None), session.account)
                            for o in session.orders.values()
                        ],
                        "positions": [
                            _encode(PositionUpdated(position=p, previous=None), session.account)
                            for p in session.positions.values()
                        ],
                        "health": {
                            "outstanding_needs": health.outstanding_needs,
                            "unknown_orders": health.unknown_orders,
                            "reconnects": health.reconnects,
                            "fills_from_stream": health.fills_from_stream,
                            "fills_from_rest": health.fills_from_rest,
                        },
                    }
                )
                tg.cancel_scope.cancel()
    return 0


def _encode(event: Event, account: str) -> dict[str, Any]:
    return {"event": "taken", **encode_event(event, account=account)}


def _check_order(event: Event, last: dict[str, Order]) -> None:
    if not isinstance(event, OrderUpdated) or event.order.status is OrderStatus.UNKNOWN:
        return
    order = event.order
    known = last.get(order.order_id)
    if known is not None and order_version(order) < order_version(known):
        say({"event": "backwards", "order_id": order.order_id, "from": repr(known), "to": repr(order)})
    last[order.order_id] = order


async def _read_commands(session: Session) -> None:
    while True:
        line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not line:
            return
        if line.strip() == "finish":
            await _converge(session)
            return


async def _converge(session: Session) -> None:
    """Reconcile until a pass succeeds with nothing outstanding, then mark the end with a summary."""
    for _ in range(20):
        summary = await session.reconcile_now(reason="final")
        health = session.health()
        if summary.ok and health.outstanding_needs == 0 and health.unknown_orders == 0:
            break
    await session.reconcile_now(reason="final-done")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rest-url", required=True)
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--lag-ms", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow-ms", type=float, default=0.0)
    parser.add_argument("--backend", default="asyncio")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    sys.exit(anyio.run(main, arguments, backend=arguments.backend))
