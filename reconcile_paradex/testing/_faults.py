"""Fault injection: named profiles, explicit settings, a seeded injector, counters.

Faults are drawn from their own seeded ``random.Random`` streams (one for
REST, one per WebSocket connection), never from the history's stream, so
turning faults on or off does not change the venue's history and a run
replays as closely as the client's own timing allows.

Times: WebSocket delays, slow responses and ``Retry-After`` are real
seconds (they act on real sockets); stale-read lag and settlement jitter
are virtual milliseconds (they act on the venue's clock).
"""

from __future__ import annotations

import random
import threading
from typing import Any

import attrs

__all__ = ["FaultCounts", "FaultInjector", "FaultSettings", "RestFault", "WsFaults"]


def _probability(_inst: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


def _span(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(x, (int, float)) and x >= 0 for x in value)
        or value[0] > value[1]
    ):
        raise ValueError(f"{attribute.name} must be a (low, high) tuple with 0 <= low <= high, got {value!r}")


def _p() -> Any:
    return attrs.field(default=0.0, validator=_probability)


@attrs.frozen(kw_only=True)
class FaultSettings:
    """Which faults to inject, and how often.

    Probabilities are per WebSocket notification (``ws_*`` except
    ``ws_auth_error``, which is per ``auth`` call) and per REST request
    (``rest_*`` and ``page_split``). Build one by hand or take a named
    profile with :meth:`profile` (``"none"``, ``"light"``, ``"heavy"``).
    """

    #: Notification silently not sent.
    ws_drop: float = _p()
    #: Notification sent twice.
    ws_duplicate: float = _p()
    #: Notification held back and sent after the next one.
    ws_reorder: float = _p()
    #: Notification held back for ``ws_delay_s`` (real seconds).
    ws_delay: float = _p()
    ws_delay_s: tuple[float, float] = attrs.field(default=(0.005, 0.05), validator=_span)
    #: Connection dropped without a close frame after a notification.
    ws_disconnect: float = _p()
    #: Server close frame (1011, 1001 or 1012) after a notification.
    ws_close_frame: float = _p()
    #: A valid ``auth`` answered with error 40111.
    ws_auth_error: float = _p()
    #: 429 with ``Retry-After`` (whole seconds drawn from ``retry_after_s``).
    rest_429: float = _p()
    retry_after_s: tuple[int, int] = attrs.field(default=(0, 1), validator=_span)
    #: 500 INTERNAL_ERROR or 503 SERVICE_UNAVAILABLE.
    rest_500: float = _p()
    #: Response held back for ``rest_slow_s`` (real seconds): a client timeout.
    rest_slow: float = _p()
    rest_slow_s: tuple[float, float] = attrs.field(default=(0.05, 0.3), validator=_span)
    #: Served by a lagging replica: the state of ``stale_lag_ms`` (virtual) ago.
    rest_stale: float = _p()
    stale_lag_ms: tuple[int, int] = attrs.field(default=(50, 500), validator=_span)
    #: A page cut short inside a same-millisecond burst (``next`` still set).
    page_split: float = _p()
    #: Extra settlement lag per fill (virtual ms), on top of the simulator's base.
    settlement_jitter_ms: tuple[int, int] = attrs.field(default=(0, 0), validator=_span)

    @classmethod
    def profile(cls, name: str) -> FaultSettings:
        """The named profile: ``"none"``, ``"light"`` or ``"heavy"``."""
        try:
            return _PROFILES[name]
        except KeyError:
            raise ValueError(f"unknown fault profile {name!r}; known: {', '.join(_PROFILES)}") from None

    @property
    def max_stale_ms(self) -> int:
        return int(self.stale_lag_ms[1]) if self.rest_stale else 0


_PROFILES: dict[str, FaultSettings] = {
    "none": FaultSettings(),
    "light": FaultSettings(
        ws_drop=0.01,
        ws_duplicate=0.01,
        ws_reorder=0.01,
        ws_delay=0.02,
        ws_disconnect=0.002,
        ws_close_frame=0.001,
        ws_auth_error=0.05,
        rest_429=0.01,
        rest_500=0.01,
        rest_slow=0.01,
        rest_stale=0.05,
        page_split=0.1,
        settlement_jitter_ms=(0, 200),
    ),
    "heavy": FaultSettings(
        ws_drop=0.05,
        ws_duplicate=0.05,
        ws_reorder=0.05,
        ws_delay=0.05,
        ws_disconnect=0.01,
        ws_close_frame=0.005,
        ws_auth_error=0.2,
        rest_429=0.05,
        rest_500=0.05,
        rest_slow=0.03,
        rest_stale=0.2,
        stale_lag_ms=(50, 2000),
        page_split=0.3,
        settlement_jitter_ms=(0, 1000),
    ),
}


@attrs.frozen(kw_only=True)
class FaultCounts:
    """How many faults of each kind were injected so far."""

    ws_drop: int = 0
    ws_duplicate: int = 0
    ws_reorder: int = 0
    ws_delay: int = 0
    ws_disconnect: int = 0
    ws_close_frame: int = 0
    ws_auth_error: int = 0
    #: Not injected: a client that fell :attr:`Feed.CAPACITY` messages behind was dropped.
    ws_slow_consumer: int = 0
    rest_429: int = 0
    rest_500: int = 0
    rest_slow: int = 0
    rest_stale: int = 0
    page_split: int = 0

    @property
    def total(self) -> int:
        return sum(attrs.astuple(self))

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


@attrs.frozen
class RestFault:
    """What to do to one REST request (at most one failure, plus a stale lag)."""

    status: int | None = None
    retry_after_s: int = 0
    delay_s: float = 0.0
    stale_lag_ms: int = 0
    page_split: bool = False


class WsFaults:
    """One WebSocket connection's fault stream (its own RNG)."""

    def __init__(self, injector: FaultInjector, rng: random.Random) -> None:
        self._injector = injector
        self._rng = rng

    def _hit(self, name: str) -> bool:
        probability: float = getattr(self._injector.settings, name)
        if probability and self._rng.random() < probability:
            self._injector.count(name)
            return True
        return False

    def auth_error(self) -> bool:
        return self._hit("ws_auth_error")

    def notification(self) -> tuple[str, float]:
        """One of ``send``, ``drop``, ``duplicate``, ``reorder``, ``delay`` (with real seconds)."""
        for name in ("ws_drop", "ws_duplicate", "ws_reorder", "ws_delay"):
            if self._hit(name):
                if name == "ws_delay":
                    low, high = self._injector.settings.ws_delay_s
                    return "delay", self._rng.uniform(low, high)
                return name.removeprefix("ws_"), 0.0
        return "send", 0.0

    def after_notification(self) -> tuple[str, int]:
        """``("abrupt", 0)``, ``("close", code)`` or ``("", 0)``."""
        if self._hit("ws_disconnect"):
            return "abrupt", 0
        if self._hit("ws_close_frame"):
            return "close", self._rng.choice((1011, 1001, 1012))
        return "", 0


class FaultInjector:
    """Draws faults from seeded streams and counts them. Thread-safe."""

    def __init__(self, seed: int, settings: FaultSettings) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._settings = settings
        self._rest_rng = random.Random(f"paradex-sim:{seed}:rest-faults")
        self._connections = 0
        self._counts: dict[str, int] = dict.fromkeys(attrs.fields_dict(FaultCounts), 0)

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    @settings.setter
    def settings(self, value: FaultSettings) -> None:
        with self._lock:
            self._settings = value

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def counts(self) -> FaultCounts:
        with self._lock:
            return FaultCounts(**self._counts)

    def for_connection(self) -> WsFaults:
        with self._lock:
            self._connections += 1
            number = self._connections
        return WsFaults(self, random.Random(f"paradex-sim:{self._seed}:ws-faults:{number}"))

    def rest(self) -> RestFault:
        with self._lock:
            s = self._settings
            rng = self._rest_rng
            status: int | None = None
            retry_after = 0
            delay = 0.0
            if s.rest_429 and rng.random() < s.rest_429:
                status = 429
                retry_after = rng.randint(int(s.retry_after_s[0]), int(s.retry_after_s[1]))
                self._counts["rest_429"] += 1
            elif s.rest_500 and rng.random() < s.rest_500:
                status = rng.choice((500, 500, 503))
                self._counts["rest_500"] += 1
            elif s.rest_slow and rng.random() < s.rest_slow:
                delay = rng.uniform(*s.rest_slow_s)
                self._counts["rest_slow"] += 1
            stale = 0
            if status is None and s.rest_stale and rng.random() < s.rest_stale:
                stale = rng.randint(int(s.stale_lag_ms[0]), int(s.stale_lag_ms[1]))
            split = status is None and bool(s.page_split) and rng.random() < s.page_split
            return RestFault(status, retry_after, delay, stale, split)
