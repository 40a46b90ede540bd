"""The live runtime: drive a ``StateSource`` with anyio (asyncio or trio).

Import it explicitly (``from reconcile_core.runtime import Session``); the
pure core never loads it. A :class:`Session` keeps one venue account equal
to the venue's truth: it subscribes, reconciles on every (re)connect,
periodically and when triggered, and delivers events to its consumer through
a bounded channel (DESIGN.md §4).
"""

from __future__ import annotations

from ._config import SessionConfig
from ._health import ConnectionState, Health
from ._session import Session

__all__ = ["ConnectionState", "Health", "Session", "SessionConfig"]
