"""``SessionConfig``: every knob of a live session, with documented defaults."""

from __future__ import annotations

from typing import Any

import attrs
from attrs import validators as v

__all__ = ["SessionConfig"]


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        msg = f"{attribute.name} must be a number of seconds > 0, got {value!r}"
        raise ValueError(msg)


def _fraction(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1:
        msg = f"{attribute.name} must be a fraction in [0, 1), got {value!r}"
        raise ValueError(msg)


def _count(minimum: int) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            msg = f"{attribute.name} must be an int >= {minimum}, got {value!r}"
            raise ValueError(msg)

    return check


@attrs.frozen(kw_only=True)
class SessionConfig:
    """How a :class:`~reconcile_core.runtime.Session` paces itself.

    Durations are seconds of the local monotonic clock (``float``); venue
    times are ``int`` milliseconds. Every value is validated on construction.
    """

    #: Seconds between periodic full reconciliation passes (DESIGN.md §4).
    reconcile_interval: float = attrs.field(default=300.0, validator=_positive)
    #: Each periodic interval is scaled by a random factor in
    #: ``[1 - interval_jitter, 1 + interval_jitter]`` so many sessions do not
    #: hit the venue in lockstep.
    interval_jitter: float = attrs.field(default=0.1, validator=_fraction)
    #: How far before the ledger's watermark (venue ms) each backfill starts,
    #: to absorb clock skew and late settlement.
    fill_overlap_ms: int = attrs.field(default=60_000, validator=_count(0))
    #: How far back (venue ms) a pass reads the order history to find the orders
    #: an earlier process left live (default seven days); older ones are
    #: looked up one by one.
    carried_history_ms: int = attrs.field(default=7 * 86_400_000, validator=_count(0))
    #: Where the first backfill starts (venue ms) when the ledger has no
    #: watermark for the account yet. ``0`` reads the whole history.
    initial_backfill_since: int = attrs.field(default=0, validator=_count(0))
    #: Size of the bounded channel between the session and its consumer. When
    #: it is full, ingestion waits for the consumer (memory does not grow).
    event_buffer: int = attrs.field(default=1024, validator=_count(1))
    #: Hints read from the stream but not merged yet, at most. Also the largest
    #: batch merged under one ledger commit.
    hint_buffer: int = attrs.field(default=256, validator=_count(1))
    #: First delay before reconnecting, in seconds; doubles per failed attempt.
    reconnect_initial: float = attrs.field(default=0.5, validator=_positive)
    #: Longest delay between reconnect attempts, in seconds.
    reconnect_max: float = attrs.field(default=30.0, validator=_positive)
    #: First delay before retrying a failed REST pass or an unanswered need.
    retry_initial: float = attrs.field(default=1.0, validator=_positive)
    #: Longest delay between retries of a failed pass or an unanswered need.
    retry_max: float = attrs.field(default=60.0, validator=_positive)
    #: Each backoff delay is reduced by a random fraction up to this much.
    backoff_jitter: float = attrs.field(default=0.2, validator=_fraction)
    #: While the stream cannot connect (or keeps dropping), a full REST pass
    #: still runs at most this often (seconds): REST is the truth, so a dead
    #: stream (say, a venue that refuses the token on its WebSocket) degrades
    #: the session to REST polling instead of stopping reconciliation.
    offline_pass_interval: float = attrs.field(default=30.0, validator=_positive)
    #: Run a full pass when the stream has been silent this long (seconds)
    #: while orders are live: a quiet stream may be a dead one.
    silence_timeout: float = attrs.field(default=60.0, validator=_positive)
    #: Triggered reconciliation (a gap revealed by a hint, a silent stream)
    #: runs at most once per this many seconds per trigger.
    trigger_min_interval: float = attrs.field(default=5.0, validator=_positive)
    #: Longest wait for entering ``source.subscribe()``, in seconds.
    connect_timeout: float = attrs.field(default=30.0, validator=_positive)
    #: Longest wait for one REST read (one call or one page), in seconds.
    request_timeout: float = attrs.field(default=30.0, validator=_positive)
    #: Acknowledge a fill or bust to the ledger when the consumer asks for the
    #: next event (see :class:`~reconcile_core.runtime.Session`). When false,
    #: the consumer calls :meth:`~reconcile_core.runtime.Session.acknowledge`.
    auto_ack: bool = attrs.field(default=True, validator=v.instance_of(bool))
    #: Acknowledgements are written to the ledger in batches of at most this
    #: many (also whenever the consumer catches up, and on close).
    ack_batch: int = attrs.field(default=256, validator=_count(1))
    #: Passed to :class:`~reconcile_core.AccountReconciler`: terminal orders
    #: kept in memory.
    max_terminal_orders: int = attrs.field(default=10_000, validator=_count(1))

    def __attrs_post_init__(self) -> None:
        if self.reconnect_max < self.reconnect_initial:
            msg = f"reconnect_max ({self.reconnect_max}) must be >= reconnect_initial ({self.reconnect_initial})"
            raise ValueError(msg)
        if self.retry_max < self.retry_initial:
            msg = f"retry_max ({self.retry_max}) must be >= retry_initial ({self.retry_initial})"
            raise ValueError(msg)
