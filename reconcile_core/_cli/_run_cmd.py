"""``reconcile run VENUE``: keep a session running and stream its events.

Ctrl-C and SIGTERM stop it cleanly: the consumer stops, the session closes
normally (the events already printed are acknowledged), and the ledger is
committed and closed.
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

import anyio
import anyio.abc

from reconcile_core._events import CycleSummary
from reconcile_core.runtime import Session, SessionConfig
from reconcile_core.sqlite import SqliteLedger
from reconcile_core.typing import StateSource

from ._metrics import serve_metrics
from ._source_options import add_source_arguments, build_source, check_source, ledger_path, read_token
from ._writers import make_writer

__all__ = ["add_run_parser"]


def add_run_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("run", help="keep an account reconciled and stream its events")
    add_source_arguments(parser)
    parser.add_argument(
        "--reconcile-interval", type=float, default=300.0, metavar="SECONDS", help="periodic pass (default 300)"
    )
    parser.add_argument(
        "--output", choices=("jsonl", "pretty"), default=None, help="default: pretty on a terminal, jsonl otherwise"
    )
    parser.add_argument("--once", action="store_true", help="connect, reconcile once, print, exit")
    parser.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on 127.0.0.1:PORT")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per-request timeout")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.reconcile_interval <= 0:
        from reconcile_core.errors import UsageError  # noqa: PLC0415

        msg = f"--reconcile-interval must be > 0 seconds, got {args.reconcile_interval:g}"
        raise UsageError(msg)
    token = read_token(args)
    _plugin, source = build_source(args, token)
    path = ledger_path(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    ledger = SqliteLedger(path)
    try:
        return anyio.run(_serve, args, source, ledger)
    finally:
        ledger.close()


async def _watch_signals(scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for _ in signals:
            scope.cancel()
            return


async def _serve(args: argparse.Namespace, source: StateSource, ledger: SqliteLedger) -> int:
    config = SessionConfig(reconcile_interval=args.reconcile_interval, request_timeout=args.timeout)
    writer = make_writer(args.output, account=source.account)
    try:
        await check_source(source, timeout=args.timeout)
        async with Session(source, ledger, config=config) as session:
            metrics: Any = serve_metrics(session, args.metrics_port) if args.metrics_port else None
            try:
                with anyio.CancelScope() as consumer:
                    async with anyio.create_task_group() as signals:
                        await signals.start(_watch_signals, consumer)
                        async for event in session.events():
                            writer.write(event)
                            if args.once and isinstance(event, CycleSummary) and event.ok:
                                break
                        signals.cancel_scope.cancel()
            finally:
                if metrics is not None:
                    metrics.close()
    finally:
        await source.aclose()
    return 0
