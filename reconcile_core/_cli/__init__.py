"""The ``reconcile`` command line.

Every failure the user can act on is one line on stderr (no traceback unless
``--debug``). Exit codes: 0 success, 1 a problem was found (discrepancies,
failed verification, failed demo), 2 a usage or configuration error, 130
interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from reconcile_core.errors import (
    AuthenticationError,
    LedgerError,
    PluginError,
    ReconcileError,
    TransportError,
    UsageError,
)

from ._output import OutputError, redact_urls, say_error

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in the command line's one-line form (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        say_error(f"{message} (see '{self.prog} --help')")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    from ._audit_cmd import add_audit_parser  # noqa: PLC0415 - keep `reconcile --help` light
    from ._demo_cmd import add_demo_parser  # noqa: PLC0415
    from ._ledger_cmd import add_ledger_parser  # noqa: PLC0415
    from ._run_cmd import add_run_parser  # noqa: PLC0415
    from ._venues_cmd import add_venues_parser  # noqa: PLC0415

    parser: argparse.ArgumentParser = _Parser(
        prog="reconcile",
        description="Keep a trading account's orders, fills and positions equal to the venue's truth.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_parser(subparsers)
    add_audit_parser(subparsers)
    add_ledger_parser(subparsers)
    add_venues_parser(subparsers)
    add_demo_parser(subparsers)
    return parser


def _explain(exc: ReconcileError) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, AuthenticationError):
        return f"authentication failed: {text}"
    if isinstance(exc, TransportError):
        return f"cannot reach the venue: {text}"
    if isinstance(exc, LedgerError):
        return f"ledger: {text}"
    return text


def _silence_stdout() -> None:
    """Point stdout at devnull, so the interpreter's final flush of what could not be written stays quiet."""
    with contextlib.suppress(OSError, ValueError):  # stdout is not a file (an embedding program, a test's capture)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``reconcile ledger export | head``): not an error in itself,
        # but it must not turn a verdict ("differences found") into a success.
        _silence_stdout()
        return int(getattr(args, "closed_pipe_exit", EXIT_OK))
    except ReconcileError as exc:
        if isinstance(exc, OutputError) and exc.path is None:
            _silence_stdout()
        if args.debug:  # the traceback, then the same line and exit code as without --debug
            sys.stderr.write(redact_urls("".join(traceback.format_exception(exc))))
        say_error(_explain(exc))
        configuration = UsageError | LedgerError | AuthenticationError | PluginError
        return EXIT_USAGE if isinstance(exc, configuration) else EXIT_PROBLEM
