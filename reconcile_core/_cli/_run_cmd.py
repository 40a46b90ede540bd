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
from reconcile_core.errors import UsageError
from reconcile_core.runtime import Session, SessionConfig
from reconcile_core.sqlite import SqliteLedger
from reconcile_core.typing import StateSource

from ._metrics import serve_metrics
from ._source_options import (
    add_source_arguments,
    build_source,
    check_source,
    ledger_path,
    positive_seconds,
    read_token,
    venue_plugin,
)
from ._writers import make_writer

__all__ = ["add_run_parser"]


def add_run_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("run", help="keep an account reconciled and stream its events")
    add_source_arguments(parser)
    parser.add_argument(
        "--reconcile-interval",
        type=positive_seconds,
        default=300.0,
        metavar="SECONDS",
        help="periodic pass (default 300)",
    )
    parser.add_argument(
        "--output", choices=("jsonl", "pretty"), default=None, help="default: pretty on a terminal, jsonl otherwise"
    )
    parser.add_argument("--once", action="store_true", help="connect, reconcile once, print, exit")
    parser.add_argument(
        "--metrics-port", type=tcp_port, metavar="PORT", help="serve Prometheus metrics on 127.0.0.1:PORT"
    )
    parser.add_argument("--timeout", type=positive_seconds, default=30.0, metavar="SECONDS", help="per-request timeout")
    parser.set_defaults(handler=_run)


def tcp_port(text: str) -> int:
    """An argparse ``type``: a port to listen on, 1 to 65535 (0 would be a port nobody knows to scrape)."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        msg = f"expected a TCP port, 1 to 65535, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return port


def _run(args: argparse.Namespace) -> int:
    plugin = venue_plugin(args)
    token = read_token(args)
    source = build_source(args, plugin, token)
    path = ledger_path(args)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create the ledger's directory {path.parent}: {exc.strerror or type(exc).__name__}"
        raise UsageError(msg) from None
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
