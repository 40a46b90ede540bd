"""Running ``reconcile`` as a shell does: a child process, its stdout a file, a device or a pipe."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from typing import Any


def reconcile(
    *argv: str, stdout: Any = subprocess.PIPE, env: dict[str, str] | None = None, limit_memory: int | None = None
) -> subprocess.CompletedProcess[str]:
    """The command in a child process; stderr is captured as text.

    ``env`` is added to this process's environment; ``limit_memory`` caps the
    child's address space (bytes), so a runaway read fails fast instead of
    taking the machine's memory.
    """
    command = [sys.executable, "-m", "reconcile_core", *argv]

    def limit() -> None:
        if limit_memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))

    return subprocess.run(
        command,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **(env or {})},
        preexec_fn=limit,
    )


@contextlib.contextmanager
def closed_pipe() -> Iterator[int]:
    """The write end of a pipe whose reader is gone (``| head`` after its line)."""
    read, write = os.pipe()
    os.close(read)
    try:
        yield write
    finally:
        os.close(write)
