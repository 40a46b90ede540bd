"""Reconciliation passes against the source of truth (DESIGN.md §4).

A *full pass* reads the venue clock, the open-orders and positions
snapshots, the order history, fills and busts from the ledger's watermark
minus an overlap (all pages), then serves the reconciler's needs and advances
the watermark. *Serving needs* alone is what a gap revealed by a hint
triggers. Source failures never escape: they become ``SOURCE_ERROR``
discrepancies and a failed :class:`CycleSummary`; the caller retries.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TypeVar

import anyio
import anyio.lowlevel
import attrs

from reconcile_core import errors
from reconcile_core._events import (
    BackfillFills,
    CycleSummary,
    Discrepancy,
    DiscrepancyKind,
    Need,
    Page,
    ResolveOrder,
    Severity,
)
from reconcile_core._reconciler import AccountReconciler
from reconcile_core._types import Fill, FillBust, Order
from reconcile_core.typing import FillLedger, StateSource

from ._config import SessionConfig
from ._delivery import MergeGate, Tally
from ._health import Metrics

__all__ = ["Reconciliation", "SourceFailedError", "describe"]

logger = logging.getLogger("reconcile_core.runtime")

T = TypeVar("T")

#: Full passes remembered for a venue clock that ran ahead (see ``Reconciliation.read_from``).
_HISTORY = 64

#: At most this many rounds of needs per call: answers can raise new needs
#: (a resolved order reveals a fill gap); the rest wait for the next round.
_NEED_ROUNDS = 3
#: Event-loop steps given to the page reader after each hand-over, before the
#: page's merge (synchronous) runs: enough for it to send the next request, so
#: that the venue prepares the next page while this one merges.
_READER_STEPS = 4


def describe(exc: BaseException) -> str:
    """``"Type: message"`` for logs and health (sources keep secrets out of messages)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class SourceFailedError(Exception):
    """A read from the source failed; carries the library error it maps to."""

    def __init__(self, what: str, error: BaseException) -> None:
        super().__init__(f"{what}: {describe(error)}")
        self.what = what
        self.error = error


@attrs.define(eq=False)
class Reconciliation:
    """Runs passes and serves needs for one session."""

    source: StateSource
    ledger: FillLedger
    reconciler: AccountReconciler
    gate: MergeGate
    config: SessionConfig
    metrics: Metrics
    #: The last venue time read, and the local monotonic time it was read at.
    _clock: tuple[int, float] | None = attrs.field(init=False, default=None)
    #: Carried orders (see ``AccountReconciler.carry``) an order-history read already covered.
    _carried_read: set[str] = attrs.field(init=False, factory=set)
    #: The last full passes' (venue clock reading, local monotonic time, where reads began); see
    #: :meth:`read_from`.
    _history: deque[tuple[int, float, int]] = attrs.field(init=False, factory=lambda: deque(maxlen=_HISTORY))
    #: After a venue clock reading that ran ahead: (where reads begin at the latest, until a
    #: pass whose clock reads at least this completes); see :meth:`read_from`.
    _pinned: tuple[int, int] | None = attrs.field(init=False, default=None)
    #: Set by :meth:`read_from` when its reading showed an earlier one ran ahead.
    _went_back: bool = attrs.field(init=False, default=False)

    # -- reads with timeouts -------------------------------------------------

    async def call(self, what: str, function: Callable[[], Awaitable[T]]) -> T:
        """One REST read under ``request_timeout``; any failure becomes :class:`SourceFailedError`."""
        timeout = self.config.request_timeout
        try:
            with anyio.fail_after(timeout):
                return await function()
        except TimeoutError as exc:
            error = errors.TimeoutError(f"{what} took longer than {timeout} s")
            error.__cause__ = exc
            raise SourceFailedError(what, error) from exc
        except Exception as exc:
            raise SourceFailedError(what, exc) from exc

    async def pages(
        self,
        what: str,
        open_pages: Callable[[], AsyncIterator[Page[T]]],
        on_page: Callable[[Page[T]], Awaitable[None]],
    ) -> None:
        """Read every page of a paginated read (each page under the timeout), in order.

        The next page is read while ``on_page`` merges the current one (one
        page ahead, never more): the venue's time to answer, and the network's
        round trip, overlap with the merge instead of adding to it. Pages are
        handed on in the order they were read, and a failure to read a page
        is raised after every page before it was handed on, as without the
        read-ahead. A page read ahead of a failing ``on_page`` is dropped
        unmerged (the next pass reads it again).
        """
        try:
            iterator = open_pages().__aiter__()
        except Exception as exc:
            raise SourceFailedError(what, exc) from exc
        # Buffer 0: the reader holds the page it read until the merger takes it.
        send, receive = anyio.create_memory_object_stream[Page[T] | SourceFailedError](0)

        async def read_ahead() -> None:
            with send:
                while True:
                    item: Page[T] | SourceFailedError
                    try:
                        item = await self.call(what, iterator.__anext__)
                    except SourceFailedError as failed:
                        if isinstance(failed.error, StopAsyncIteration):
                            return
                        item = failed  # raised by the merger, in its own context
                    try:
                        await send.send(item)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        return  # the merger stopped
                    if isinstance(item, SourceFailedError):
                        return

        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as reader:
                reader.start_soon(read_ahead, name=f"read ahead: {what}")
                # Failures are raised after the task group, never from inside it:
                # a task group may wrap what its body raises in an exception group.
                try:
                    async for received in receive:
                        if isinstance(received, SourceFailedError):
                            failure = received
                            break
                        # The hand-over woke the reader; a merge holds the event loop,
                        # so first give the reader the few steps it needs to put the
                        # next request on the wire (measured: 1-2 steps with httpx).
                        for _ in range(_READER_STEPS):
                            await anyio.lowlevel.checkpoint()
                        await on_page(received)
                except Exception as exc:  # noqa: BLE001 - re-raised below, as it is
                    failure = exc
                finally:
                    reader.cancel_scope.cancel()  # before the stream closes under the reader
                    receive.close()
        finally:
            await _close_quietly(iterator)
        if failure is not None:
            raise failure

    async def venue_time(self) -> int:
        """The venue clock, read from the source."""
        now = await self.call("server_time", self.source.server_time)
        self._clock = (now, anyio.current_time())
        return now

    def estimated_venue_time(self) -> int:
        """The venue clock extrapolated from the last reading (0 before the first)."""
        if self._clock is None:
            return 0
        venue_ms, local = self._clock
        return venue_ms + int((anyio.current_time() - local) * 1000)

    def read_from(self, venue_now: int) -> int:
        """Where a full pass whose venue clock reads ``venue_now`` begins its reads (ms).

        The watermark minus ``fill_overlap_ms``, normally. The watermark never
        moves back, so one reading of the venue clock that ran ahead would
        mark REST complete where it is not. A reading behind an earlier one of
        this process carried forward by the local clock, or behind the
        watermark minus the settlement lag, by more than the overlap, shows
        that: reads then begin where the earliest pass whose reading ran
        ahead began (in a new process: the lag and the overlap before this
        reading), and from then on where the last completed pass leaves them
        (an in-memory watermark), until the clock passes the highest reading.
        """
        config, source = self.config, self.source
        local_now = self._clock[1] if self._clock is not None else anyio.current_time()
        watermark = self.ledger.watermark(venue=source.venue, account=source.account)
        if watermark is None:
            since = config.initial_backfill_since
        else:
            since = max(0, watermark - config.fill_overlap_ms)
            lag, overlap = source.settlement_lag_ms, config.fill_overlap_ms
            ahead: list[tuple[int, int]] = []
            kept: deque[tuple[int, float, int]] = deque(maxlen=_HISTORY)
            for reading, local, began in self._history:
                if reading + int((local_now - local) * 1000) > venue_now + overlap:
                    ahead.append((reading, began))
                else:
                    kept.append((reading, local, began))
            self._history = kept  # the ones that ran ahead are accounted for here, once
            if ahead or watermark > venue_now - lag + overlap:
                pin = ahead[0][1] if ahead else max(0, venue_now - lag - overlap)
                until = max([watermark + lag, *(reading for reading, _ in ahead)])
                if self._pinned is not None:
                    pin, until = min(pin, self._pinned[0]), max(until, self._pinned[1])
                if self._pinned is None or pin < self._pinned[0]:
                    logger.warning(
                        "%s:%s: the venue clock reads %d, behind an earlier reading (or what REST was "
                        "marked complete up to, %d): that reading ran ahead; reads begin at %d until "
                        "the clock reads %d",
                        source.venue,
                        source.account,
                        venue_now,
                        watermark,
                        pin,
                        until,
                    )
                self._pinned = (pin, until)
                self._went_back = True
            if self._pinned is not None:
                since = min(since, self._pinned[0])
        self._history.append((venue_now, local_now, since))
        return since

    def completed(self, started_at: int) -> None:
        """A full pass whose venue clock read ``started_at`` completed (see :meth:`read_from`).

        While reads are pinned, it read everything up to ``started_at`` minus
        the lag: the next pass begins there (minus the overlap), unless a later
        reading shows this one ran ahead too. Once the clock has passed the
        highest reading, the watermark holds again.
        """
        pinned = self._pinned
        if pinned is None:
            return
        if started_at >= pinned[1]:
            self._pinned = None
            return
        moved = started_at - self.source.settlement_lag_ms - self.config.fill_overlap_ms
        self._pinned = (max(pinned[0], moved), pinned[1])

    # -- a full pass ---------------------------------------------------------

    async def full_pass(self, reason: str) -> CycleSummary:
        """Run one full pass; a failure is reported, never raised (the caller retries)."""
        source, gate = self.source, self.gate
        tally = Tally()
        started = anyio.current_time()
        started_at = self.estimated_venue_time()
        ok = False
        try:
            started_at = await self.venue_time()
            since = self.read_from(started_at)
            if self._went_back:  # what was dated by the reading that ran ahead is undone first
                self._went_back = False
                await gate.step(partial(self.reconciler.venue_clock_went_back, started_at), tally)
            open_orders = await self.call("open_orders", source.open_orders)
            tally.orders_seen += len(open_orders.orders)
            await gate.step(lambda: self.reconciler.merge_open_orders(open_orders), tally)
            if open_orders.problems:
                await gate.merge(list(open_orders.problems), tally)
            positions = await self.call("positions", source.positions)
            tally.positions_seen += len(positions.positions)
            await gate.step(lambda: self.reconciler.merge_positions(positions), tally)
            if positions.problems:
                await gate.merge(list(positions.problems), tally)

            async def orders_page(page: Page[Order]) -> None:
                tally.orders_seen += len(page.items)
                await gate.merge([*page.items, *page.problems], tally)

            await self.pages("order_history", lambda: source.order_history(since=since), orders_page)

            async def fills_page(page: Page[Fill]) -> None:
                tally.fills_seen += len(page.items)
                await gate.merge([*page.items, *page.problems], tally)

            await self.pages("fills", lambda: source.fills(since=since), fills_page)

            async def busts_page(page: Page[FillBust]) -> None:
                tally.busts_seen += len(page.items)
                await gate.merge([*page.items, *page.problems], tally)

            await self.pages("busts", lambda: source.busts(since=since), busts_page)
            await self._read_carried(tally, since=since, now=started_at, on_page=orders_page)

            complete_up_to = max(0, started_at - source.settlement_lag_ms)
            await self.serve_needs(tally, complete_up_to=complete_up_to)
            self.ledger.advance_watermark(venue=source.venue, account=source.account, value=complete_up_to)
            self.ledger.commit()
            self.completed(started_at)
            ok = True
        except SourceFailedError as failed:
            await self.report(failed, tally, during=f"the {reason} pass")
        return CycleSummary(
            reason=reason,
            started_at=started_at,
            duration_ms=int((anyio.current_time() - started) * 1000),
            orders_seen=tally.orders_seen,
            positions_seen=tally.positions_seen,
            fills_seen=tally.fills_seen,
            fills_recovered=tally.fills_recovered,
            busts_seen=tally.busts_seen,
            orders_resolved=tally.orders_resolved,
            discrepancies=tally.discrepancies,
            ok=ok,
        )

    async def gap_pass(self, reason: str = "gap") -> CycleSummary:
        """Serve the outstanding needs only (targeted resolves and backfills)."""
        tally = Tally()
        started = anyio.current_time()
        started_at = self.estimated_venue_time()
        ok = False
        try:
            started_at = await self.venue_time()
            ok = await self.serve_needs(tally, complete_up_to=max(0, started_at - self.source.settlement_lag_ms))
        except SourceFailedError as failed:
            await self.report(failed, tally, during="serving needs")
        return CycleSummary(
            reason=reason,
            started_at=started_at,
            duration_ms=int((anyio.current_time() - started) * 1000),
            orders_seen=tally.orders_seen,
            positions_seen=0,
            fills_seen=tally.fills_seen,
            fills_recovered=tally.fills_recovered,
            busts_seen=0,
            orders_resolved=tally.orders_resolved,
            discrepancies=tally.discrepancies,
            ok=ok,
        )

    async def report(self, failed: SourceFailedError, tally: Tally, *, during: str) -> None:
        """Log a source failure and deliver it as a ``SOURCE_ERROR`` discrepancy."""
        self.metrics.last_error = describe(failed.error)
        logger.warning(
            "%s:%s: %s failed during %s (%s); retrying with backoff",
            self.source.venue,
            self.source.account,
            failed.what,
            during,
            describe(failed.error),
        )
        logger.debug("the failure of %s", failed.what, exc_info=failed.error)
        severity = Severity.ERROR if isinstance(failed.error, errors.AuthenticationError) else Severity.WARNING
        await self.gate.emit(
            [
                Discrepancy(
                    kind=DiscrepancyKind.SOURCE_ERROR,
                    subject=f"source {failed.what}",
                    detail=f"{describe(failed.error)} (during {during}; retrying with backoff)",
                    severity=severity,
                )
            ],
            tally,
        )

    async def _read_carried(
        self, tally: Tally, *, since: int, now: int, on_page: Callable[[Page[Order]], Awaitable[None]]
    ) -> None:
        """Read back the orders an earlier process left live with the order history, once each.

        One paged read from the oldest one's creation (at most
        ``carried_history_ms`` back) instead of a lookup per order; the ones it
        does not list are looked up one by one, as needs. Tried once per
        order and process, and its failure does not fail the pass (the
        lookups remain).
        """
        unread = [r for r in self.reconciler.carried.values() if r.order_id not in self._carried_read]
        if not unread:
            return
        self._carried_read.update(r.order_id for r in unread)
        start = max(0, min(r.created_at for r in unread) - self.config.fill_overlap_ms)
        start = max(start, now - self.config.carried_history_ms)
        if start >= since:
            return  # the pass's own order history covered them
        try:
            await self.pages("order_history", lambda: self.source.order_history(since=start), on_page)
        except SourceFailedError as failed:
            await self.report(failed, tally, during="the read of the orders an earlier process left live")

    # -- needs ---------------------------------------------------------------

    async def serve_needs(self, tally: Tally, *, complete_up_to: int) -> bool:
        """Answer the outstanding needs; True when no read failed.

        ``complete_up_to`` is the venue time up to which REST fills are known
        complete (read time minus the settlement lag): a gap younger than that
        stays outstanding for a later round.
        """
        ok = True
        attempted: set[tuple[str, str | None]] = set()
        for _ in range(_NEED_ROUNDS):
            fresh = [n for n in self.reconciler.needs if _need_id(n) not in attempted]
            if not fresh:
                break
            attempted.update(_need_id(n) for n in fresh)
            for need in fresh:
                if isinstance(need, ResolveOrder):
                    ok = await self._resolve(need, tally) and ok
            backfills = [n for n in fresh if isinstance(n, BackfillFills)]
            if backfills:
                ok = await self._backfill(backfills, tally, complete_up_to=complete_up_to) and ok
        return ok

    def _outstanding(self, order_id: str) -> bool:
        return any(isinstance(n, ResolveOrder) and n.order_id == order_id for n in self.reconciler.needs)

    async def _resolve(self, need: ResolveOrder, tally: Tally) -> bool:
        order: Order | None = None
        failure: SourceFailedError | None = None
        try:
            order = await self._fetch_order(need)
        except SourceFailedError as failed:
            failure = failed
        if order is not None:
            tally.orders_seen += 1
            await self.gate.merge([order], tally)
        if not self._outstanding(need.order_id):
            tally.orders_resolved += 1
            return True
        if failure is not None:
            logger.warning(
                "%s:%s: resolving order %s failed: %s",
                self.source.venue,
                self.source.account,
                need.order_id,
                describe(failure.error),
            )
            reason = describe(failure.error)
        elif order is None:
            reason = "the venue does not know it"
        else:
            reason = "the venue's answer is older than the local state"
        not_found = failure is None and order is None
        await self.gate.step(
            lambda: self.reconciler.resolve_failed(need.order_id, reason=reason, not_found=not_found), tally
        )
        return failure is None

    async def _fetch_order(self, need: ResolveOrder) -> Order | None:
        source = self.source
        order = await self._order_or_none("order", lambda: source.order(need.order_id))
        if order is None and need.client_id is not None:
            client_id = need.client_id
            order = await self._order_or_none("order_by_client_id", lambda: source.order_by_client_id(client_id))
        return order

    async def _order_or_none(self, what: str, function: Callable[[], Awaitable[Order | None]]) -> Order | None:
        try:
            return await self.call(what, function)
        except SourceFailedError as failed:
            if isinstance(failed.error, errors.NotFoundError):
                return None
            raise

    async def _backfill(self, needs: list[BackfillFills], tally: Tally, *, complete_up_to: int) -> bool:
        ok = True
        by_instrument: dict[str | None, list[BackfillFills]] = {}
        for need in needs:
            by_instrument.setdefault(need.instrument, []).append(need)

        async def fills_page(page: Page[Fill]) -> None:
            tally.fills_seen += len(page.items)
            await self.gate.merge([*page.items, *page.problems], tally)

        for instrument, group in by_instrument.items():
            since = max(0, min(n.since for n in group) - self.config.fill_overlap_ms)

            def open_pages(since: int = since, instrument: str | None = instrument) -> AsyncIterator[Page[Fill]]:
                return self.source.fills(since=since, instrument=instrument)

            try:
                await self.pages("fills", open_pages, fills_page)
            except SourceFailedError as failed:
                ok = False
                await self.report(failed, tally, during="a targeted backfill")
                continue
            for need in group:
                await self.gate.step(partial(self.reconciler.backfill_done, need, complete_up_to=complete_up_to), tally)
        return ok


def _need_id(need: Need) -> tuple[str, str | None]:
    if isinstance(need, ResolveOrder):
        return ("resolve", need.order_id)
    if isinstance(need, BackfillFills):
        return ("backfill", need.order_id or need.instrument)
    return ("other", repr(need))


async def _close_quietly(iterator: object) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(5, shield=True):
        try:
            await aclose()
        except Exception:
            logger.debug("closing a page iterator failed", exc_info=True)
