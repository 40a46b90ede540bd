"""``reconcile ledger``: inspect, export and verify a ledger file."""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from reconcile_core.errors import UsageError
from reconcile_core.jsonl import FILL_FIELDS, encode_fill
from reconcile_core.sqlite import SqliteLedger

from ._output import print_table, say, writing
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
    # A closed pipe before the verdict is known must not read as "no problem".
    verify.set_defaults(handler=_verify, closed_pipe_exit=1)

    for sub in (stats, export, verify):
        sub.add_argument(
            "--ledger",
            type=Path,
            default=None,
            help=f"the SQLite ledger file (default: {default_ledger_path()})",
        )


def _ledger_file(args: argparse.Namespace) -> Path:
    path: Path = args.ledger or default_ledger_path()
    return path


def _open(args: argparse.Namespace) -> SqliteLedger:
    path = _ledger_file(args)
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
        say(json.dumps(fields))
    else:
        print_table(("field", "value"), list(fields.items()))
    return 0


#: The files SQLite and the single-writer lock keep beside a ledger: writing an export over
#: any of them would damage the ledger or let a second writer in.
LEDGER_COMPANIONS = ("", "-wal", "-shm", "-journal", ".lock")


def _export(args: argparse.Namespace) -> int:
    if args.output is None:
        with _open(args) as ledger, writing():
            _write_fills(args, ledger, sys.stdout)
            sys.stdout.flush()
        return 0
    _refuse_ledger_files(args.output, _ledger_file(args))
    with _open(args) as ledger, replacing(args.output) as out:
        _write_fills(args, ledger, out)
    return 0


def _write_fills(args: argparse.Namespace, ledger: SqliteLedger, out: TextIO) -> None:
    """JSONL lines are the contract's ``fill`` lines (``type`` included), without ``offset`` and ``redelivery``."""
    writer = csv.DictWriter(out, fieldnames=FILL_FIELDS) if args.format == "csv" else None
    if writer is not None:
        writer.writeheader()
    for fill in ledger.iter_fills(venue=args.venue, account=args.account):
        row = encode_fill(fill)
        if writer is not None:
            writer.writerow(row)
        else:
            out.write(json.dumps({"type": "fill", **row}, separators=(",", ":")) + "\n")


def _refuse_ledger_files(output: Path, ledger: Path) -> None:
    """``-o`` naming the ledger (or a file SQLite keeps beside it) would destroy what it exports."""
    for suffix in LEDGER_COMPANIONS:
        companion = Path(f"{ledger}{suffix}")
        same = os.path.realpath(output) == os.path.realpath(companion)
        with contextlib.suppress(OSError):
            same = same or output.samefile(companion)  # a hard link; absent files are not the same
        if same:
            msg = f"--output {output} is the ledger's own file {companion}: choose another path"
            raise UsageError(msg)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[TextIO]:
    """Write ``path`` through a temporary file renamed into place only when all went well.

    A failed export leaves the previous file (or none), never a truncated one.
    What a rename would break is written in place instead, as ``>`` would: a
    symbolic link (``/dev/stdout``, ``/proc/self/fd/1``, a link you keep to
    the latest export), a device or a FIFO, and a file in a directory where
    no other file can be made.
    """
    with writing(path):
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        in_place = path.is_symlink() or (path.exists() and not path.is_file()) or not os.access(path.parent, os.W_OK)
    if in_place:
        with writing(path), path.open("w", newline="", encoding="utf-8") as out:
            yield out
        return
    with writing(path):
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with writing(path), os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            # mkstemp makes the file private; the export gets the mode open() would have given it.
            os.fchmod(out.fileno(), _mode_of(path))
            yield out
            out.flush()
            os.fsync(out.fileno())  # on disk before it takes the name: a power cut leaves old or new
        with writing(path):
            Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _mode_of(path: Path) -> int:
    """The replaced file's permissions, or for a new file those the umask leaves of 0o666."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _verify(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        problems = ledger.integrity_check()
    verdict = args.closed_pipe_exit = 1 if problems else 0
    for problem in problems:
        say(f"problem: {problem}")
    if not problems:
        say("ok")
    return verdict
