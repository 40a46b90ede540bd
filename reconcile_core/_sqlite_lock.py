"""The single-writer lock of a ledger file: an exclusive advisory lock on ``<file>.lock``.

The lock belongs to the open file description, so the operating system drops
it when the holder exits, including on ``SIGKILL``. A second holder (another
process, or a second ledger object in the same process) is refused at once.
The lock file keeps the holder's process id, for the error message; it is
never deleted (deleting lock files races with the next opener).
"""

from __future__ import annotations

import os
import sys

from .errors import LedgerLockedError, LedgerWriteError

__all__ = ["FileLock"]

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


class FileLock:
    """An exclusive, non-blocking lock held for the life of one ledger object."""

    def __init__(self, *, ledger_path: str) -> None:
        self.ledger_path = ledger_path
        self.path = ledger_path + ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`LedgerLockedError` / :class:`LedgerWriteError`."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            msg = f"fill ledger {self.ledger_path!r}: cannot create its lock file {self.path!r}: {exc.strerror}"
            raise LedgerWriteError(msg, path=self.ledger_path) from exc
        try:
            locked = _try_lock(fd)
        except OSError as exc:
            os.close(fd)
            msg = f"fill ledger {self.ledger_path!r}: cannot lock {self.path!r}: {exc.strerror}"
            raise LedgerWriteError(msg, path=self.ledger_path) from exc
        if not locked:
            holder = _read_holder(fd)
            os.close(fd)
            msg = (
                f"fill ledger {self.ledger_path!r} is held by another running process{holder}: "
                "a ledger file has a single writer; within one process, share one SqliteLedger"
            )
            raise LedgerLockedError(msg, path=self.ledger_path)
        self._fd = fd
        try:  # fixed width, so no digits of an earlier holder's pid survive (and no slow truncate)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid():<20}\n".encode())
        except OSError:
            pass  # the pid is a courtesy for error messages; the lock is what counts

    def release(self) -> None:
        """Drop the lock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        # A ledger dropped without close() must not keep its file locked until the process exits.
        self.release()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""
