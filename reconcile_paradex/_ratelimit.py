"""Proactive and reactive rate limiting for Paradex REST.

Paradex limits private GETs to 600 per minute per account (120/s bursts),
with a continuously refilled token bucket (API.md §5.1). :class:`TokenBucket`
mirrors that on our side so we rarely see a 429; when we do, the bucket is
paused for the venue's ``Retry-After`` so *every* request of the account
waits, not only the one that was refused.

The bucket is lock-free: a request reserves its slot synchronously (no await
between reading and updating the state) and then sleeps until the slot.
Requests are therefore served in arrival order, and the bucket can be shared
by any number of tasks. Time comes from a :class:`Clock` (monotonic seconds
plus a sleep), injectable so tests never sleep for real.
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from typing import Protocol

import anyio
import attrs

from reconcile_core.errors import UsageError

__all__ = ["Clock", "RetryPolicy", "SystemClock", "TokenBucket", "shared_bucket"]

#: Paradex's documented private GET limit, per account.
PRIVATE_GETS_PER_MINUTE = 600


class Clock(Protocol):
    """Protocol: monotonic time in seconds, and a way to wait."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """``time.monotonic`` and ``anyio.sleep``: the same time line on every event loop."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


@attrs.define
class TokenBucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``capacity``.

    Defaults: 600 per minute, bursts of up to 50. The burst is well below
    the venue's 120/s, so a full bucket never trips the per-second limit.
    """

    rate: float = attrs.field(default=PRIVATE_GETS_PER_MINUTE / 60)
    capacity: float = attrs.field(default=50.0)
    _tokens: float = attrs.field(init=False, default=-1.0)
    _stamp: float | None = attrs.field(init=False, default=None)
    _paused_until: float = attrs.field(init=False, default=0.0)

    def __attrs_post_init__(self) -> None:
        if self.rate <= 0 or self.capacity < 1:
            raise UsageError(f"TokenBucket needs rate > 0 and capacity >= 1, got {self.rate}, {self.capacity}")
        self._tokens = self.capacity

    def reserve(self, now: float) -> float:
        """Take one token; return how long to wait (seconds) before using it.

        The balance may go negative: later callers queue behind earlier ones.
        """
        if self._stamp is not None and now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        if self._stamp is None or now > self._stamp:
            self._stamp = now
        self._tokens -= 1
        wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        return max(wait, self._paused_until - now)

    def pause(self, now: float, seconds: float) -> None:
        """The venue said "slow down": nobody proceeds for ``seconds``."""
        self._paused_until = max(self._paused_until, now + seconds)

    async def acquire(self, clock: Clock) -> None:
        """Wait for a token."""
        wait = self.reserve(clock.now())
        if wait > 0:
            await clock.sleep(wait)


_shared: weakref.WeakValueDictionary[tuple[str, str], TokenBucket] = weakref.WeakValueDictionary()
_shared_lock = threading.Lock()


def shared_bucket(base_url: str, account: str) -> TokenBucket:
    """The process-wide bucket of one account at one venue URL.

    Every client of that account shares it while any of them is alive.
    """
    key = (base_url.rstrip("/"), account.lower())
    with _shared_lock:
        bucket = _shared.get(key)
        if bucket is None:
            bucket = TokenBucket()
            _shared[key] = bucket
        return bucket


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How REST retries transient failures (5xx, 429, timeouts, connection errors).

    ``attempts`` counts every try, the first included. Backoff before retry
    *n* (1-based) is uniform in ``[0, min(max_backoff, base_backoff * 2**(n-1))]``
    ("full jitter"). A 429 waits for ``Retry-After``, but at least a random
    time in the upper half of that backoff range (:meth:`after_rate_limit`: a
    ``Retry-After`` in whole seconds rounds a sub-second wait down to ``0``); a
    ``Retry-After`` longer than ``max_retry_after`` is not waited out: the
    request fails with ``RateLimitedError`` at once, and the account's later
    requests wait until then (at most 15 minutes from the answer).
    """

    attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    base_backoff: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    max_backoff: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return rng.uniform(0, self._ceiling(retry))

    def after_rate_limit(self, retry: int, rng: random.Random, retry_after: float | None) -> float:
        """Seconds to wait after a 429 before retry number ``retry``: ``Retry-After``, and at least
        a random time in the upper half of the backoff range, so retries never go out at once."""
        ceiling = self._ceiling(retry)
        floor = rng.uniform(ceiling / 2, ceiling)
        return floor if retry_after is None else max(retry_after, floor)

    def _ceiling(self, retry: int) -> float:
        return min(self.max_backoff, self.base_backoff * 2.0 ** (retry - 1))
