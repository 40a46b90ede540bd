"""The simulator's virtual clock and its Paradex-shaped identifiers.

The venue's truth never reads the wall clock: time is an ``int`` of
milliseconds that only moves when the activity generator steps or a test
calls ``advance``. That is what makes a seed replay the same history.
"""

from __future__ import annotations

__all__ = ["DEFAULT_START_MS", "IdFactory", "VirtualClock"]

#: 2030-01-01T00:00:00Z. Fixed so that a seed always gives the same history.
#: It lies in the future on purpose: a client that judges the simulator's
#: JWT ``exp`` claims by its wall clock keeps them until the venue says 401.
DEFAULT_START_MS = 1_893_456_000_000


class VirtualClock:
    """A monotonic clock of milliseconds since the epoch, moved by hand."""

    __slots__ = ("_now",)

    def __init__(self, start_ms: int) -> None:
        if start_ms < 0:
            raise ValueError(f"start_ms must be >= 0, got {start_ms}")
        self._now = start_ms

    @property
    def now(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        """Move forward by ``ms`` (>= 0) and return the new time."""
        if ms < 0:
            raise ValueError(f"the clock only moves forward; got advance({ms})")
        self._now += ms
        return self._now

    def at_least(self, ms: int) -> int:
        """Move forward to ``ms`` if the clock is behind it; return the new time."""
        self._now = max(self._now, ms)
        return self._now


class IdFactory:
    """Paradex-looking ids: 28 decimal digits, a 13-digit ms timestamp first.

    Real ids look like ``1718947571540201703992340000``: the creation time in
    ms, then digits the venue does not document. Ours are the time, a fixed
    node number, a counter and a 4-digit suffix. Clients must not parse them.
    """

    __slots__ = ("_counter",)

    def __init__(self) -> None:
        self._counter = 0

    def next(self, now_ms: int, *, suffix: int = 0) -> str:
        self._counter += 1
        return f"{now_ms:013d}2017{self._counter % 10_000_000:07d}{suffix % 10_000:04d}"
