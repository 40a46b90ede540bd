"""``reconcile ledger``: inspect, export and verify a ledger file."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from reconcile_core.errors import UsageError
from reconcile_core.jsonl import FILL_FIELDS, encode_fill
from reconcile_core.sqlite import SqliteLedger

from ._output import print_table
from ._paths import default_ledger_path

__all__ = ["add_ledger_parser"]


def add_ledger_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("ledger", help="inspect, export or verify a ledger file")
    commands = parser.add_subparsers(dest="ledger_command", required=True, metavar="COMMAND")

    stats = commands.add_parser("stats", help="counts of fills, busts and undelivered entries")
    stats.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    stats.set_defaults(handler=_stats)

    export = commands.add_parser("export", help="write every recorded fill, streaming")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--account", help="only this account")
    export.add_argument("--venue", help="only this venue")
    export.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    export.set_defaults(handler=_export)

    verify = commands.add_parser("verify", help="integrity check; exit code 1 when a problem is found")
    verify.set_defaults(handler=_verify)

    for sub in (stats, export, verify):
        sub.add_argument(
            "--ledger",
            type=Path,
            default=None,
            help=f"the SQLite ledger file (default: {default_ledger_path()})",
        )


def _open(args: argparse.Namespace) -> SqliteLedger:
    path: Path = args.ledger or default_ledger_path()
    if not path.exists():
        msg = f"no ledger at {path}; pass --ledger PATH (reconcile run creates one)"
        raise UsageError(msg)
    return SqliteLedger(path, read_only=True)


def _stats(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        stats = ledger.stats()
    fields = {
        "path": stats.path,
        "schema_version": stats.schema_version,
        "accounts": stats.accounts,
        "fills": stats.fills,
        "busts": stats.busts,
        "undelivered": stats.undelivered,
        "file_size": stats.file_size,
    }
    if args.json:
        print(json.dumps(fields), flush=True)
    else:
        print_table(("field", "value"), list(fields.items()))
    return 0


def _export(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        out = args.output.open("w", newline="", encoding="utf-8") if args.output else sys.stdout
        try:
            writer = csv.DictWriter(out, fieldnames=FILL_FIELDS) if args.format == "csv" else None
            if writer is not None:
                writer.writeheader()
            for fill in ledger.iter_fills(venue=args.venue, account=args.account):
                row = encode_fill(fill)
                if writer is not None:
                    writer.writerow(row)
                else:
                    out.write(json.dumps(row, separators=(",", ":")) + "\n")
        finally:
            if args.output:
                out.close()
            else:
                out.flush()
    return 0


def _verify(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        problems = ledger.integrity_check()
    if problems:
        for problem in problems:
            print(f"problem: {problem}", flush=True)
        return 1
    print("ok", flush=True)
    return 0
