"""``Session``: one venue account kept equal to the venue's truth, live (DESIGN.md §4)."""

from __future__ import annotations

import logging
import math
import random
import types
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, NoReturn, Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from reconcile_core import errors
from reconcile_core._events import CycleSummary, Discrepancy, DiscrepancyKind, Event, Severity
from reconcile_core._reconciler import AccountReconciler, order_notes
from reconcile_core._types import Order, OrderStatus, Position
from reconcile_core.typing import FillLedger, Hint, StateSource

from ._backoff import Backoff, jittered
from ._config import SessionConfig
from ._delivery import EventChannel, EventIterator, MergeGate, from_outbox
from ._health import ConnectionState, Health, Metrics
from ._passes import Reconciliation, describe

__all__ = ["Session"]

logger = logging.getLogger("reconcile_core.runtime")

#: Pass summaries kept for :meth:`Session.reconcile_now` callers.
_KEPT_SUMMARIES = 64
#: (ledger object id, venue, account) of every session running in this process: one at a
#: time per account and ledger (a second SqliteLedger on the same file is refused by its lock).
_RUNNING: set[tuple[int, str, str]] = set()


class Session:
    """Keeps one venue account's orders, fills and positions equal to the venue, live.

    ``Session(source, ledger, config=SessionConfig())`` drives a
    :class:`~reconcile_core.typing.StateSource` with a fresh
    :class:`~reconcile_core.AccountReconciler` over ``ledger``. Use it as an
    async context manager, or start :meth:`run` in your own task group with
    ``await tg.start(session.run)`` and call :meth:`close` to stop it. The
    session does not close the source or the ledger: their owner does. Several
    sessions (one per account) may share one ledger.

    **Sequence.** On every connect and reconnect: subscribe (hints merge as
    they arrive), then one full pass — the venue clock, open orders,
    positions, order history and fills from the ledger's watermark minus
    ``fill_overlap_ms`` (all pages), busts — then the reconciler's needs are
    served, the watermark advances to the pass start minus the source's
    settlement lag, and the session is *synced*. Afterwards a full pass runs
    every ``reconcile_interval`` (jittered), after ``silence_timeout`` without
    hints while orders are live, and on :meth:`reconcile_now`; needs raised
    by hints (a gap) are served promptly. Triggered work runs at most once per
    ``trigger_min_interval``. Failed reads become ``SOURCE_ERROR``
    discrepancies and are retried with backoff; lost connections are retried
    with exponential backoff and jitter. While the stream cannot connect, a
    full REST pass still runs every ``offline_pass_interval`` (and on
    :meth:`reconcile_now`): the session degrades to REST polling, it does not
    stop reconciling (it is not *synced* until the stream is back). No terminal order state is ever
    invented: an order the venue cannot account for is ``UNKNOWN`` and is
    retried.

    **Delivery.** :meth:`events` yields from a bounded channel of
    ``config.event_buffer`` events. When it is full the session waits: a slow
    consumer slows ingestion and memory does not grow.

    **Durability rule.** Fills and busts are committed to the ledger
    (``ledger.commit()``) before any event of their batch enters the channel.

    **Acknowledgement rule.** A :class:`~reconcile_core.FillRecorded` or
    :class:`~reconcile_core.FillBusted` event is acknowledged to the ledger
    (its offset is passed to ``ledger.acknowledge`` and committed, in
    batches) when

    * the consumer asks :meth:`events` for the *next* event, i.e. the loop
      body that handled it has completed; or
    * the session closes normally (:meth:`close`, or the ``async with`` block
      ends without an exception) after the consumer took it.

    If the ``async with`` body raises (or is cancelled), the event being
    handled is *not* acknowledged. Events still in the channel when the
    session closes were never delivered. In both cases the fill stays in the
    ledger's outbox, and the next session on that ledger delivers it first,
    with ``redelivery=True``. With ``SessionConfig(auto_ack=False)`` nothing
    is acknowledged automatically: call :meth:`acknowledge` for each handled
    event. Acknowledgements are written when ``ack_batch`` are pending,
    whenever the consumer has emptied the channel (between batches), and on
    close.

    **Orders across restarts.** The ledger keeps the orders that became live
    (if it can: ``FillLedger.note_orders``). An ``OrderUpdated`` that shows
    an order's final state is handled like a fill under the rule above: only
    once it is acknowledged does the ledger forget the order (with
    ``auto_ack=False``, once it is taken). A new session
    takes over the orders its ledger still keeps; a complete open-orders
    snapshot that lacks one raises a ``ResolveOrder`` need, so an order that
    ended while no process was watching (or whose final state no consumer
    handled) is reported with its final state.

    **On start**, before connecting, the ledger's unacknowledged entries for
    this account are delivered again, in offset order, marked
    ``redelivery=True``. Within one session, each fill key is delivered at
    most once (exactly once if the consumer keeps reading), and each bust
    once.

    **Exceptions.** ``async with Session(...)``, :meth:`run` and :meth:`close`
    raise only :mod:`reconcile_core.errors`: ``LedgerError`` when the ledger
    cannot record or commit (the session stops: it can no longer keep its
    durability promise), ``UsageError`` on misuse. Source failures never
    escape; they show in :meth:`health` and as ``SOURCE_ERROR``
    discrepancies. An exception raised by your own ``async with`` body
    propagates unchanged (never inside an ``ExceptionGroup``).
    """

    def __init__(
        self,
        source: StateSource,
        ledger: FillLedger,
        *,
        config: SessionConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._source = source
        self._ledger = ledger
        self._config = config = config if config is not None else SessionConfig()
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._venue = source.venue
        self._account = source.account
        # The reconciler takes over the orders the ledger last knew live (an earlier process's),
        # and notes those that end only once the consumer has handled their final state.
        self._reconciler = AccountReconciler(
            venue=self._venue,
            account=self._account,
            ledger=ledger,
            max_terminal_orders=config.max_terminal_orders,
            note_ended=False,
        )
        self._metrics = Metrics()
        self._channel = EventChannel(
            ledger=ledger,
            size=config.event_buffer,
            auto_ack=config.auto_ack,
            ack_batch=config.ack_batch,
            on_change=self._notify,
            note_ended=self._note_ended_orders(),
        )
        self._gate = MergeGate(
            reconciler=self._reconciler,
            ledger=ledger,
            channel=self._channel,
            on_change=self._notify,
            discrepancies=self._metrics.discrepancies,
        )
        self._passes = Reconciliation(
            source=source,
            ledger=ledger,
            reconciler=self._reconciler,
            gate=self._gate,
            config=config,
            metrics=self._metrics,
        )
        self._reconnect_backoff = Backoff(
            initial=config.reconnect_initial, maximum=config.reconnect_max, jitter=config.backoff_jitter
        )
        self._retry_backoff = Backoff(
            initial=config.retry_initial, maximum=config.retry_max, jitter=config.backoff_jitter
        )

        self._state = ConnectionState.IDLE
        self._synced = False
        self._tasks: Counter[str] = Counter()
        self._run_started = False
        self._closing = False
        self._close_normally = True
        self._finished = False
        self._failure: BaseException | None = None
        self._scope: anyio.CancelScope | None = None
        self._stopped: anyio.Event | None = None
        self._changed: anyio.Event | None = None
        self._wakeup: anyio.Event | None = None
        self._stack: AsyncExitStack | None = None
        self._hints_send: MemoryObjectSendStream[Hint]
        self._hints_receive: MemoryObjectReceiveStream[Hint]

        self._connection_error: BaseException | None = None
        self._last_hint = 0.0
        self._gap_raised = False
        self._manual_reason: str | None = None
        self._last_pass_end = -math.inf
        self._passes_started = 0
        self._passes_finished = 0
        self._summaries: dict[int, CycleSummary] = {}

    def __repr__(self) -> str:
        return f"<Session {self._venue}:{self._account} {self._state.value}>"

    # -- views ---------------------------------------------------------------

    @property
    def venue(self) -> str:
        """The source's venue name."""
        return self._venue

    @property
    def account(self) -> str:
        """The source's account."""
        return self._account

    @property
    def config(self) -> SessionConfig:
        """The configuration this session runs with."""
        return self._config

    @property
    def orders(self) -> Mapping[str, Order]:
        """The merged orders by id (``UNKNOWN`` while the venue cannot account for one)."""
        return self._reconciler.orders

    @property
    def positions(self) -> Mapping[str, Position]:
        """The merged positions by instrument."""
        return self._reconciler.positions

    def health(self) -> Health:
        """A snapshot of the connection, sync state and counters."""
        stats = self._reconciler.stats
        metrics = self._metrics
        return Health(
            venue=self._venue,
            account=self._account,
            state=self._state,
            synced=self._synced,
            last_reconcile_at=metrics.last_reconcile_at,
            last_reconcile_duration_ms=metrics.last_reconcile_duration_ms,
            last_error=metrics.last_error,
            authentication_failing=metrics.authentication_failing,
            fills_from_stream=stats.fills_from_ws,
            fills_from_rest=stats.fills_from_rest,
            duplicates_suppressed=stats.duplicate_fills,
            stale_ignored=stats.stale_observations,
            discrepancies=metrics.discrepancies,
            reconnects=metrics.reconnects,
            passes_ok=metrics.passes_ok,
            passes_failed=metrics.passes_failed,
            events_buffered=self._channel.buffered,
            unacknowledged=self._channel.unacknowledged,
            outstanding_needs=len(self._reconciler.needs),
            unknown_orders=sum(1 for o in self._reconciler.live_orders if o.status is OrderStatus.UNKNOWN)
            + len(self._reconciler.carried_unknown),
            tasks=tuple(sorted(self._tasks.elements())),
        )

    # -- the consumer's side -------------------------------------------------

    def events(self) -> AsyncIterator[Event]:
        """The events, in delivery order, from the bounded channel.

        Iteration ends when the session stops. See the class docstring for
        when fills are acknowledged. Meant for one consumer task; with several,
        set ``auto_ack=False`` and :meth:`acknowledge` explicitly. Raises
        :class:`~reconcile_core.errors.UsageError` once the session is closed;
        iterating raises :class:`~reconcile_core.errors.LedgerError` if
        acknowledgements cannot be written.
        """
        iterator: EventIterator = self._channel.iterate()
        return iterator

    def acknowledge(self, event: Event) -> None:
        """Acknowledge a handled fill or bust event (needed with ``auto_ack=False``).

        Other events are ignored. Acknowledging twice is harmless. Raises
        :class:`~reconcile_core.errors.LedgerError` if the ledger cannot be
        written.
        """
        self._channel.acknowledge(event)

    async def reconcile_now(self, *, reason: str = "manual") -> CycleSummary:
        """Run a full pass that starts after this call, wait for it, and return its summary.

        While disconnected, a REST-only pass runs at once. The summary's
        ``ok`` says whether the pass succeeded (a failed one is retried with
        backoff anyway). As with :meth:`wait_synced`, a pass that brings more
        events than ``event_buffer`` finishes only while :meth:`events` is
        read. Raises :class:`~reconcile_core.errors.UsageError` if the
        session stops first.
        """
        target = self._passes_started + 1
        if self._manual_reason is None:
            self._manual_reason = reason
        self._wake()
        await self._wait_until(lambda: self._passes_finished >= target)
        later = [summary for sequence, summary in sorted(self._summaries.items()) if sequence >= target]
        return later[0] if later else self._summaries[max(self._summaries)]

    async def wait_synced(self) -> None:
        """Wait until a full pass has finished since the latest (re)connect.

        A pass delivers its events before it finishes, and waits for room in
        the channel (``event_buffer``): when it may bring more events than
        that (a first backfill of a long history), read :meth:`events` in
        another task while waiting, or this waits for good. Raises
        :class:`~reconcile_core.errors.UsageError` if the session stops first.
        """
        await self._wait_until(lambda: self._synced)

    async def wait_health(self, predicate: Callable[[Health], bool]) -> Health:
        """Wait until ``predicate(self.health())`` holds, and return that snapshot.

        Re-checked whenever the session's state changes. Combine with
        ``anyio.fail_after`` for a deadline. Raises
        :class:`~reconcile_core.errors.UsageError` if the session stops first
        (after a last check).
        """
        snapshot = self.health()
        while not predicate(snapshot):
            if self._finished:
                msg = f"session {self._venue}:{self._account} stopped"
                raise errors.UsageError(msg) from self._failure
            await self._next_change()
            snapshot = self.health()
        return snapshot

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            task_group = await stack.enter_async_context(anyio.create_task_group())
            await task_group.start(self.run)
        except BaseException as exc:
            try:
                await stack.__aexit__(type(exc), exc, exc.__traceback__)
            except BaseExceptionGroup as group:
                _reraise(_unwrap(group, exc))
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> bool:
        stack, self._stack = self._stack, None
        if stack is None:
            return False
        self._begin_close(normal=exc is None)
        try:
            return bool(await stack.__aexit__(exc_type, exc, traceback))
        except BaseExceptionGroup as group:
            _reraise(_unwrap(group, exc))
        finally:
            self._finish_close()

    async def close(self) -> None:
        """Stop the session and wait until every task it started has ended. Idempotent.

        Acknowledges what the consumer took (see the class docstring) and
        writes pending acknowledgements to the ledger. Does not close the
        source or the ledger.
        """
        self._begin_close(normal=True)
        if self._run_started and self._stopped is not None:
            await self._stopped.wait()
        self._finish_close()

    def _begin_close(self, *, normal: bool) -> None:
        if not self._closing:
            self._closing = True
            self._close_normally = normal
        self._channel.abort()
        if self._scope is not None:
            self._scope.cancel()
        self._notify()

    def _finish_close(self) -> None:
        self._state = ConnectionState.CLOSED
        self._finished = True
        self._notify()
        try:
            self._channel.close(acknowledge_taken=self._close_normally)
        except errors.LedgerError:
            if not isinstance(self._failure, errors.LedgerError):
                raise
            # The ledger already failed (that error is on its way to the caller):
            # these acknowledgements are lost, so those fills are delivered again later.
            logger.warning("%s:%s: acknowledgements not written: the ledger failed", self._venue, self._account)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the session until :meth:`close` (or cancellation); for ``tg.start(session.run)``.

        Reports started at once (before the first connect); use
        :meth:`wait_synced` to wait for the first full pass. A session runs
        once. Raises only ``LedgerError`` (the session cannot go on) or
        ``UsageError``. Stopped by cancellation rather than :meth:`close`, it
        still writes the acknowledgements the consumer made, and ends its
        events; an event taken but not finished is delivered again later.
        """
        if self._run_started:
            msg = f"session {self._venue}:{self._account} was already started; create a new Session"
            raise errors.UsageError(msg)
        claim = (id(self._ledger), self._venue, self._account)
        if claim in _RUNNING:
            # Both would deliver the ledger's unacknowledged fills, and each fill of the stream.
            msg = (
                f"another session of {self._venue}:{self._account} is running on this ledger; "
                "close it first (one session per account and ledger)"
            )
            raise errors.UsageError(msg)
        _RUNNING.add(claim)
        self._run_started = True
        self._stopped = anyio.Event()
        self._hints_send, self._hints_receive = anyio.create_memory_object_stream[Hint](self._config.hint_buffer)
        try:
            async with anyio.create_task_group() as task_group:
                self._scope = task_group.cancel_scope
                if self._closing:
                    task_group.cancel_scope.cancel()
                self._spawn(task_group, "main", self._main, task_group)
                task_status.started()
                try:
                    await anyio.sleep_forever()
                finally:
                    # Whoever stops the session (close, a failing task, outer
                    # cancellation) cancels this wait first: lift the send shield.
                    self._channel.abort()
        except BaseExceptionGroup as group:
            error = _unwrap(group, None)
            if not isinstance(error, anyio.get_cancelled_exc_class()):
                self._failure = error
            _reraise(error)
        except BaseException as exc:
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                self._failure = exc
            raise
        finally:
            try:
                self._state = ConnectionState.CLOSED
                self._synced = False
                self._hints_send.close()
                self._hints_receive.close()
                self._channel.close_sending()
                if not self._closing:
                    # Stopped from outside (cancellation, a failure), not by close(): the channel
                    # ends here, and what the consumer acknowledged already is written, or those
                    # fills would be delivered again. What it took but did not finish comes again.
                    self._end_channel()
            finally:
                self._finished = True
                _RUNNING.discard(claim)
                self._stopped.set()
                self._notify()

    def _end_channel(self) -> None:
        try:
            self._channel.close(acknowledge_taken=False)
        except (errors.LedgerError, errors.UsageError) as exc:  # a failed, or closed, ledger: it ends all the same
            logger.warning(
                "%s:%s: acknowledgements not written (%s): those fills are delivered again later",
                self._venue,
                self._account,
                type(exc).__name__,
            )

    # -- tasks ---------------------------------------------------------------

    def _spawn(
        self,
        task_group: anyio.abc.TaskGroup,
        name: str,
        function: Callable[..., Awaitable[Any]],
        *args: object,
    ) -> None:
        task_group.start_soon(self._tracked, name, function, *args, name=f"{self._venue}:{self._account}:{name}")

    async def _tracked(self, name: str, function: Callable[..., Awaitable[Any]], *args: object) -> None:
        self._tasks[name] += 1
        self._notify()
        try:
            await function(*args)
        finally:
            self._tasks[name] -= 1
            if self._tasks[name] <= 0:
                del self._tasks[name]
            self._notify()

    def _note_ended_orders(self) -> Callable[[list[str]], None] | None:
        """Notes ended orders with the ledger, if it keeps live orders (and can be written)."""
        note = order_notes(self._ledger)
        if note is None:
            return None
        venue, account = self._venue, self._account

        def note_ended(order_ids: list[str]) -> None:
            note(venue=venue, account=account, live=[], ended=order_ids)

        return note_ended

    async def _main(self, task_group: anyio.abc.TaskGroup) -> None:
        self._reconciler.carry_from_ledger()  # the ledger as it is now, not when the session was made
        await self._redeliver()
        self._spawn(task_group, "merger", self._merge_hints)
        await self._connection_loop()

    async def _redeliver(self) -> None:
        after = 0
        while True:
            entries = self._ledger.undelivered(
                venue=self._venue, account=self._account, after=after, limit=self._config.ack_batch
            )
            if not entries:
                return
            events = [e for e in (from_outbox(d) for d in entries) if e is not None]
            await self._gate.emit(events)
            after = entries[-1].offset

    async def _merge_hints(self) -> None:
        receive = self._hints_receive
        limit = self._config.hint_buffer
        while True:
            batch: list[object] = [await receive.receive()]
            # When hints last arrived (for the silence check): stamped per batch, not per
            # hint (a clock read costs about a microsecond); the reader stamps it too when
            # it has to wait for room, so hints read while a batch merges count as well.
            self._last_hint = anyio.current_time()
            while len(batch) < limit:
                try:
                    batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            needs = await self._gate.merge(batch)
            if needs:
                self._gap_raised = True
                self._wake()

    # -- connections -----------------------------------------------------------

    async def _connection_loop(self) -> None:
        attempt = 0
        connects = 0
        while True:
            self._set_state(ConnectionState.CONNECTING)
            subscribed = False
            body_failed = False
            ended_by: BaseException | None
            ended_by = None
            try:
                async with AsyncExitStack() as stack:
                    # The connect deadline must enclose the source's context
                    # (which may own a task group), so it sits on the stack
                    # below it and is lifted once subscribed.
                    deadline = stack.enter_context(
                        anyio.CancelScope(deadline=anyio.current_time() + self._config.connect_timeout)
                    )
                    hints = await self._subscribe(stack, deadline)
                    subscribed = True
                    connects += 1
                    if connects > 1:
                        self._metrics.reconnects += 1
                    self._metrics.authentication_failing = False
                    try:
                        await self._connected(hints, "connect" if connects == 1 else "reconnect")
                    except BaseException:
                        body_failed = True
                        raise
                    ended_by = self._connection_error
                if deadline.cancelled_caught and not subscribed:
                    raise _connect_timeout(self._config.connect_timeout)  # noqa: TRY301 - ends this attempt
            except Exception as exc:
                if body_failed:
                    raise
                ended_by = exc
            if self._synced:
                attempt = 0
            self._synced = False
            await self._connection_ended(ended_by, subscribed=subscribed)
            self._set_state(ConnectionState.BACKOFF)
            delay = self._reconnect_backoff.delay(attempt, self._rng)
            attempt += 1
            await self._offline_wait(delay)

    async def _offline_wait(self, delay: float) -> None:
        """Wait ``delay`` seconds before reconnecting, reconciling over REST meanwhile.

        A full pass runs when one is due (none finished for
        ``offline_pass_interval``) or asked for (:meth:`reconcile_now`). It
        does not make the session *synced* (that needs the stream), but fills
        and orders keep flowing while the stream is down.
        """
        interval = self._config.offline_pass_interval
        deadline = anyio.current_time() + delay
        while True:
            now = anyio.current_time()
            if self._manual_reason is not None or now >= self._last_pass_end + interval:
                reason = self._manual_reason or "offline"
                self._manual_reason = None
                await self._full_pass(reason, connected=False)
                now = anyio.current_time()
            if now >= deadline:
                return
            wakeup = self._wakeup_event()
            with anyio.move_on_after(max(0.0, min(deadline, self._last_pass_end + interval) - now)):
                await wakeup.wait()

    async def _subscribe(self, stack: AsyncExitStack, deadline: anyio.CancelScope) -> AsyncIterator[Hint]:
        hints = await stack.enter_async_context(self._source.subscribe())
        deadline.deadline = math.inf
        return hints.__aiter__()

    async def _connection_ended(self, error: BaseException | None, *, subscribed: bool) -> None:
        error = error if error is not None else errors.ConnectionLostError("the stream ended")
        self._metrics.last_error = describe(error)
        if isinstance(error, errors.AuthenticationError):
            self._metrics.authentication_failing = True
        if subscribed:
            logger.warning("%s:%s: stream lost (%s); reconnecting", self._venue, self._account, describe(error))
            return
        logger.warning("%s:%s: connect failed (%s); retrying", self._venue, self._account, describe(error))
        severity = Severity.ERROR if isinstance(error, errors.AuthenticationError) else Severity.WARNING
        await self._gate.emit(
            [
                Discrepancy(
                    kind=DiscrepancyKind.SOURCE_ERROR,
                    subject="source subscribe",
                    detail=f"{describe(error)} (connecting; retrying with backoff)",
                    severity=severity,
                )
            ]
        )

    async def _connected(self, hints: AsyncIterator[Hint], reason: str) -> None:
        self._set_state(ConnectionState.SYNCING)
        self._connection_error = None
        self._last_hint = anyio.current_time()
        async with anyio.create_task_group() as connection:
            self._spawn(connection, "reader", self._read_hints, hints, connection.cancel_scope)
            self._spawn(connection, "periodic", self._schedule, reason)

    async def _read_hints(self, hints: AsyncIterator[Hint], scope: anyio.CancelScope) -> None:
        error: BaseException
        try:
            send = self._hints_send
            async for hint in hints:
                # No yield while there is room: a burst reaches the merger as one
                # batch, merged under one ledger commit (group commit).
                try:
                    send.send_nowait(hint)
                except anyio.WouldBlock:
                    self._last_hint = anyio.current_time()
                    await send.send(hint)
            error = errors.ConnectionLostError("the stream ended")
        except Exception as exc:  # noqa: BLE001 - any stream failure ends this connection only
            error = exc
        self._connection_error = error
        scope.cancel()

    # -- scheduling ------------------------------------------------------------

    async def _schedule(self, first_reason: str) -> None:
        """The periodic task: the connect pass, periodic and triggered passes, needs."""
        config = self._config
        now = anyio.current_time
        full_due = now()
        full_reason = first_reason
        failures = 0
        needs_due = math.inf
        needs_failures = 0
        last_needs = -math.inf
        last_silence = -math.inf
        last_full_end = now()
        while True:
            wakeup = self._wakeup_event()
            t = now()
            if self._gap_raised:
                self._gap_raised = False
                if self._reconciler.needs:
                    needs_due = min(needs_due, max(t, last_needs + config.trigger_min_interval))
            silence_due = math.inf
            if self._reconciler.live_orders:
                silence_due = max(
                    max(self._last_hint, last_full_end) + config.silence_timeout,
                    last_silence + config.trigger_min_interval,
                )
            # Until a full pass succeeds, its retry serves the needs too.
            needs_ready = needs_due if self._synced else math.inf
            if self._manual_reason is not None or t >= full_due or t >= silence_due:
                if t >= full_due:
                    reason = full_reason
                elif self._manual_reason is not None:
                    reason = self._manual_reason
                else:
                    reason = "silence"
                    last_silence = t
                # Any full pass starting now answers pending reconcile_now() calls.
                self._manual_reason = None
                ok = await self._full_pass(reason)
                last_full_end = now()
                last_needs = last_full_end
                if ok:
                    failures = 0
                    full_reason = "periodic"
                    full_due = last_full_end + jittered(config.reconcile_interval, config.interval_jitter, self._rng)
                else:
                    failures += 1
                    if self._synced:
                        full_reason = "retry"
                    full_due = last_full_end + self._retry_backoff.delay(failures - 1, self._rng)
            elif t >= needs_ready:
                last_needs = t
                summary = await self._passes.gap_pass()
                await self._gate.emit([summary])
            else:
                # Re-check at least every silence_timeout: orders may have gone live.
                deadline = min(full_due, silence_due, needs_ready, t + config.silence_timeout)
                with anyio.move_on_after(max(0.0, deadline - t)):
                    await wakeup.wait()
                continue
            if self._reconciler.needs:
                backoff = self._retry_backoff.delay(needs_failures, self._rng)
                needs_due = now() + max(config.trigger_min_interval, backoff)
                needs_failures += 1
            else:
                needs_due = math.inf
                needs_failures = 0

    async def _full_pass(self, reason: str, *, connected: bool = True) -> bool:
        self._passes_started += 1
        sequence = self._passes_started
        summary = await self._passes.full_pass(reason)
        self._last_pass_end = anyio.current_time()
        metrics = self._metrics
        if summary.ok:
            metrics.passes_ok += 1
            metrics.last_reconcile_at = summary.started_at
            metrics.last_reconcile_duration_ms = summary.duration_ms
            if connected and not self._synced:
                self._synced = True
                self._set_state(ConnectionState.LIVE)
        else:
            metrics.passes_failed += 1
        await self._gate.emit([summary])
        self._summaries[sequence] = summary
        while len(self._summaries) > _KEPT_SUMMARIES:
            del self._summaries[min(self._summaries)]
        self._passes_finished = sequence
        self._notify()
        return summary.ok

    # -- notifications -----------------------------------------------------------

    def _set_state(self, state: ConnectionState) -> None:
        if not self._finished:
            self._state = state
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _next_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            if self._finished:
                msg = f"session {self._venue}:{self._account} stopped"
                raise errors.UsageError(msg) from self._failure
            await self._next_change()

    def _wakeup_event(self) -> anyio.Event:
        if self._wakeup is None or self._wakeup.is_set():
            self._wakeup = anyio.Event()
        return self._wakeup

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
        self._notify()


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out


def _unwrap(group: BaseExceptionGroup[BaseException], own: BaseException | None) -> BaseException:
    """The one exception a user should see instead of ``group``.

    The caller's own exception wins; then a library error; several errors
    become one :class:`~reconcile_core.errors.ReconcileError` chained from the
    group; cancellation passes through as itself.
    """
    leaves = _leaves(group)
    cancelled = anyio.get_cancelled_exc_class()
    real = [leaf for leaf in leaves if not isinstance(leaf, cancelled)]
    if own is not None and any(leaf is own for leaf in leaves):
        for leaf in real:
            if leaf is not own:
                logger.error("the session failed while its block raised: %s", describe(leaf), exc_info=leaf)
        return own
    if not real:
        return leaves[0] if leaves else group
    if len(real) == 1:
        return real[0]
    library = [leaf for leaf in real if isinstance(leaf, errors.ReconcileError)]
    if len(library) == 1 and all(isinstance(leaf, cancelled | errors.ReconcileError) for leaf in leaves):
        return library[0]
    error = errors.ReconcileError(f"the session failed with {len(real)} errors: {'; '.join(map(describe, real))}")
    error.__cause__ = group
    return error


def _reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` keeping its own ``__context__`` (not the group it was found in)."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


def _connect_timeout(seconds: float) -> errors.TimeoutError:
    return errors.TimeoutError(f"subscribing took longer than {seconds} s")
