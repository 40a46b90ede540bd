"""``Health``: a frozen snapshot of one session's connection, sync state and counters."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from reconcile_core._events import DiscrepancyKind

__all__ = ["ConnectionState", "Health", "Metrics"]


class ConnectionState(enum.Enum):
    """Where a session is in its connect / reconnect cycle."""

    #: Created, not started yet.
    IDLE = "idle"
    #: Opening and subscribing to the source's stream.
    CONNECTING = "connecting"
    #: Subscribed; the first full pass after this connect has not finished.
    SYNCING = "syncing"
    #: Subscribed, and a full pass finished since the connect.
    LIVE = "live"
    #: The connection failed or dropped; waiting before the next attempt.
    BACKOFF = "backoff"
    #: Closed (or stopped by a fatal ledger error). Final.
    CLOSED = "closed"


def _frozen_counts(value: Mapping[DiscrepancyKind, int]) -> Mapping[DiscrepancyKind, int]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True, hash=False)
class Health:
    """What a session is doing and what it has seen, at one moment.

    Counters start at zero when the session is created. "Stream" and "REST"
    refer to where a fill was *first* seen: a fill recovered by REST is one the
    stream did not deliver in time (dropped, delayed, or missed while
    disconnected). Not hashable: it holds a mapping.
    """

    venue: str
    account: str
    state: ConnectionState
    #: True once a full pass has finished after the latest (re)connect.
    synced: bool
    #: Venue time (ms) at which the last successful full pass started.
    last_reconcile_at: int | None
    #: How long the last successful full pass took, in ms of the local clock.
    last_reconcile_duration_ms: int | None
    #: The last source failure (connect, stream or REST), as ``"Type: message"``.
    last_error: str | None
    #: True while the latest connect attempt failed with an ``AuthenticationError``.
    authentication_failing: bool
    #: Fills first seen on the stream.
    fills_from_stream: int
    #: Fills first seen over REST: what the stream missed.
    fills_from_rest: int
    #: Fills seen again and suppressed (the ledger already had them).
    duplicates_suppressed: int
    #: Order and position observations older than the merged state, ignored.
    stale_ignored: int
    #: Discrepancy events delivered, by kind.
    discrepancies: Mapping[DiscrepancyKind, int] = attrs.field(converter=_frozen_counts)
    #: Successful connects after the first one.
    reconnects: int
    #: Full reconciliation passes that finished, and that failed (and were retried).
    passes_ok: int
    passes_failed: int
    #: Events waiting in the channel for the consumer.
    events_buffered: int
    #: Fills and busts the consumer took that are not acknowledged to the ledger yet.
    unacknowledged: int
    #: Needs (order resolutions, backfills) raised and not yet answered.
    outstanding_needs: int
    #: Orders the venue could not account for (``UNKNOWN``), being retried, and
    #: orders an earlier process left live that the venue cannot find.
    unknown_orders: int
    #: Names of the session's background tasks running now.
    tasks: tuple[str, ...]


@attrs.define
class Metrics:
    """The session's own mutable counters (the reconciler keeps the others)."""

    discrepancies: Counter[DiscrepancyKind] = attrs.field(factory=Counter)
    reconnects: int = 0
    passes_ok: int = 0
    passes_failed: int = 0
    last_reconcile_at: int | None = None
    last_reconcile_duration_ms: int | None = None
    last_error: str | None = None
    authentication_failing: bool = False
