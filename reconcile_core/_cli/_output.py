"""Small helpers for printing to a terminal or a pipe."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, TextIO

from reconcile_core.errors import UsageError

__all__ = ["OutputError", "print_table", "redact_urls", "say", "say_error", "writing"]


class OutputError(UsageError):
    """The output cannot be written (a missing directory, a full disk); ``path`` is None for stdout."""

    def __init__(self, path: Path | None, exc: OSError) -> None:
        where = "the standard output" if path is None else str(path)
        super().__init__(f"cannot write {where}: {exc.strerror or exc}")
        self.path = path


@contextlib.contextmanager
def writing(path: Path | None = None) -> Iterator[None]:
    """Turn a failed write into one clear error line.

    A closed pipe stays a :class:`BrokenPipeError`: the reader went away,
    which is not a failure of ours, and ``main`` decides the exit code.
    """
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(path, exc) from exc


def say(line: str, *, stream: TextIO | None = None) -> None:
    """One line on stdout, flushed at once (a pipe sees it, cron mail keeps it)."""
    with writing():
        print(line, file=stream or sys.stdout, flush=True)


#: A URL's scheme (group 1) and userinfo (group 2): up to the last ``@`` before a space or a
#: quote, so that a password holding an unescaped ``/`` or ``@`` is hidden whole.
_USERINFO_RE: Final = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s'\"]*)@")
#: ``user:password@`` without a scheme (``--rest-url user:pw@host``, which is no URL, is quoted back).
_BARE_USERINFO_RE: Final = re.compile(r"(?<![\w.~%+-])([\w.~%+-]+):(?!//)([^\s'\"]+)@")


def _hide_password(match: re.Match[str]) -> str:
    user, colon, _password = match[2].partition(":")
    return f"{match[1]}{user}:***@" if colon else f"{match[1]}***@"


def redact_urls(text: str) -> str:
    """Hide the password of every URL in ``text`` (``http://user:***@host``).

    A URL with a user name and no password may carry a token as that name: it is hidden whole.
    Over-hiding (a path holding ``@``) is the lesser harm in an error message.
    """
    text = _USERINFO_RE.sub(_hide_password, text)
    return _BARE_USERINFO_RE.sub(lambda m: "***@" if m[2] == "***" and m[1] == "" else f"{m[1]}:***@", text)


def say_error(message: str, *, stream: TextIO | None = None) -> None:
    """One line on stderr, prefixed so it stands out in logs; a URL's password never shows."""
    print(f"reconcile: error: {redact_urls(message)}", file=stream or sys.stderr, flush=True)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, stream: TextIO | None = None) -> None:
    """A plain aligned text table (no colours: it must read well in a pipe and in cron mail)."""
    out = stream or sys.stdout
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    with writing():
        for index, row in enumerate(cells):
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip(), file=out)
            if index == 0:
                print("  ".join("-" * w for w in widths), file=out)
        out.flush()
