"""``reconcile demo`` for Paradex: the simulator with faults, real sessions over sockets, a verdict.

No account and no network: the Paradex simulator
(:mod:`reconcile_paradex.testing`) serves on 127.0.0.1 with a fault
profile; one real :class:`~reconcile_core.runtime.Session` per simulated
account follows it over real sockets into a :class:`~reconcile_core.sqlite.SqliteLedger`
in a temporary directory, while seeded activity runs for ``duration``
seconds. Then the venue goes quiet (faults off, every fill settled), each
session reconciles until nothing is outstanding, and the final orders,
positions, ledger and deliveries are checked against the simulator's truth.

The exit code is 0 only when every account converged and every fill was
delivered exactly once.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

import anyio
import attrs

from reconcile_core.errors import ReconcileError, UsageError
from reconcile_core.runtime import Session, SessionConfig
from reconcile_core.sqlite import SqliteLedger

from ._demo_verify import AccountReport, DemoConsumer, verify_account
from ._demo_view import AccountProgress, DemoView, Progress, make_view
from ._ratelimit import RetryPolicy
from ._source import ParadexSource
from .testing import FaultSettings, ParadexSimulator

__all__ = ["DemoResult", "DemoSettings", "run_demo"]

PROFILES: Final = ("none", "light", "heavy")
#: Sessions pace themselves for a short demo: a pass every few seconds, quick retries.
DEMO_CONFIG: Final = SessionConfig(
    reconcile_interval=3.0,
    fill_overlap_ms=2_000,
    reconnect_initial=0.05,
    reconnect_max=1.0,
    retry_initial=0.1,
    retry_max=1.0,
    silence_timeout=5.0,
    trigger_min_interval=0.25,
    connect_timeout=5.0,
    request_timeout=2.0,
)
#: Venue actions per account per tick, and the tick (real seconds): about 20 fills a second.
_STEPS_PER_TICK = 3
_TICK_S = 0.05
#: How often the progress view refreshes (real seconds).
_REFRESH_S = 0.25
#: Fills per account made before the sessions start: the first pass recovers them over REST.
_HISTORY_FILLS = 25
#: Longest wait (real seconds) for the final reconciliation to converge.
_CONVERGE_S = 30.0
#: Final reconciliation passes per account before giving up.
_CONVERGE_ROUNDS = 10


@attrs.frozen(kw_only=True)
class DemoSettings:
    """What ``reconcile demo`` was asked to do."""

    seed: int = 1
    faults: str = "light"
    duration: float = 15.0
    accounts: int = 2

    def __attrs_post_init__(self) -> None:
        if self.faults not in PROFILES:
            raise UsageError(f"--faults must be one of {', '.join(PROFILES)}, got {self.faults!r}")
        if not self.duration > 0:
            raise UsageError(f"--duration must be > 0 seconds, got {self.duration:g}")
        if not 1 <= self.accounts <= 20:
            raise UsageError(f"--accounts must be within 1..20, got {self.accounts}")


@attrs.frozen(kw_only=True)
class DemoResult:
    """The demo's verdict."""

    settings: DemoSettings
    accounts: tuple[AccountReport, ...]
    faults_injected: dict[str, int]
    seconds: float
    #: The final reconciliation finished in time (else the reports show what was left).
    settled: bool
    simulator_errors: tuple[str, ...]

    @property
    def converged(self) -> bool:
        return self.settled and not self.simulator_errors and all(a.converged for a in self.accounts)

    @property
    def exactly_once(self) -> bool:
        return all(a.exactly_once for a in self.accounts)

    @property
    def ok(self) -> bool:
        return self.converged and self.exactly_once

    def as_json(self) -> dict[str, object]:
        return {
            "venue": "paradex",
            "seed": self.settings.seed,
            "faults": self.settings.faults,
            "duration_s": self.settings.duration,
            "elapsed_s": round(self.seconds, 3),
            "ok": self.ok,
            "converged": self.converged,
            "exactly_once": self.exactly_once,
            "faults_injected": self.faults_injected,
            "simulator_errors": list(self.simulator_errors),
            "accounts": [a.as_json() for a in self.accounts],
        }


def run_demo(
    *,
    seed: int = 1,
    faults: str = "light",
    duration: float = 15.0,
    accounts: int = 2,
    json_output: bool = False,
    stream: IO[str] | None = None,
) -> int:
    """Run the demo; print live progress and a verification table (or one JSON document); return the exit code.

    0 when every account converged to the simulator's truth and every fill
    was delivered exactly once, 1 otherwise. Raises
    :class:`~reconcile_core.errors.UsageError` for bad settings or a
    missing extra (``pip install 'reconcile-trading[demo]'``).
    """
    settings = DemoSettings(seed=seed, faults=faults, duration=duration, accounts=accounts)
    view = make_view(json_output=json_output, stream=stream)
    with _quiet_library_logs():
        try:
            result = anyio.run(_demo, settings, view)
        except BaseExceptionGroup as group:
            error = _library_error(group)
            if error is group:
                error = _output_failure(group)
            if error is group:
                raise
            raise error from group
    view.finish(result)
    return 0 if result.ok else 1


def _library_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The library error inside a task group's exception group (a failing ledger, say), else the group."""
    return _first(group, ReconcileError) or group


def _output_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The display's failure to write inside a task group's exception group, else the group.

    A closed pipe is a :class:`BrokenPipeError` (rich ends the process with
    ``SystemExit`` when it meets one: the same thing, said its way); any other
    ``OSError`` (a full disk) comes out as it is, for the caller to report.
    """
    if _first(group, lambda e: isinstance(e, BrokenPipeError | SystemExit)) is not None:
        return BrokenPipeError("the reader of the demo's output went away")
    return _first(group, OSError) or group


def _first(
    group: BaseExceptionGroup[BaseException],
    condition: type[BaseException] | Callable[[BaseException], bool],
) -> BaseException | None:
    """The first exception in ``group`` (nested groups included) that meets ``condition``."""
    matched, _rest = group.split(condition)
    while matched is not None:
        first = matched.exceptions[0]
        if not isinstance(first, BaseExceptionGroup):
            return first
        matched = first
    return None


@contextmanager
def _quiet_library_logs() -> Iterator[None]:
    """The faults are the point of the demo: their warnings would only drown the display.

    Errors still show; ``reconcile --debug demo`` keeps everything.
    """
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    names = ("reconcile_core", "reconcile_paradex", "uvicorn")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def settlement_lag_ms(sim: ParadexSimulator, faults: FaultSettings) -> int:
    """How far behind "now" the simulator's REST is complete: settlement with jitter, plus stale replicas."""
    return sim.settlement_lag_ms + int(faults.settlement_jitter_ms[1]) + faults.max_stale_ms + 1


async def _demo(settings: DemoSettings, view: DemoView) -> DemoResult:
    started = time.monotonic()
    sim = ParadexSimulator(seed=settings.seed, accounts=settings.accounts, faults=settings.faults)
    sim.run_until(fills=_HISTORY_FILLS * settings.accounts)
    rng = random.Random(f"demo:{settings.seed}")  # noqa: S311 - jitter, not cryptography
    with tempfile.TemporaryDirectory(prefix="reconcile-demo-") as directory:
        async with sim.serve_loopback() as (rest_url, ws_url):
            sources = [
                ParadexSource(
                    account=account,
                    token=sim.issue_read_only_token(account),
                    env=None,
                    rest_url=rest_url,
                    ws_url=ws_url,
                    settlement_lag_ms=settlement_lag_ms(sim, sim.faults),
                    page_size=200,
                    retry=RetryPolicy(attempts=5, base_backoff=0.05, max_backoff=0.5, max_retry_after=2.0),
                    rng=random.Random(rng.random()),  # noqa: S311
                    timeout=DEMO_CONFIG.request_timeout,
                )
                for account in sim.accounts
            ]
            try:
                with SqliteLedger(Path(directory) / "demo.sqlite") as ledger:
                    reports, settled = await _follow(
                        settings, sim, sources, ledger, view=view, rng=rng, started=started, where=rest_url
                    )
            finally:
                for source in sources:
                    await source.aclose()
    return DemoResult(
        settings=settings,
        accounts=tuple(reports),
        faults_injected={name: count for name, count in sim.fault_counts().as_dict().items() if count},
        seconds=time.monotonic() - started,
        settled=settled,
        simulator_errors=sim.server_errors,
    )


async def _follow(
    settings: DemoSettings,
    sim: ParadexSimulator,
    sources: list[ParadexSource],
    ledger: SqliteLedger,
    *,
    view: DemoView,
    rng: random.Random,
    started: float,
    where: str,
) -> tuple[list[AccountReport], bool]:
    sessions = [
        Session(source, ledger, config=DEMO_CONFIG, rng=random.Random(rng.random()))  # noqa: S311
        for source in sources
    ]
    consumers = [DemoConsumer(session) for session in sessions]

    def progress(phase: str) -> Progress:
        return Progress(
            phase=phase,
            elapsed=time.monotonic() - started,
            duration=settings.duration,
            venue_fills=sim.venue.fill_count(),
            faults_injected=sim.fault_counts().total,
            accounts=tuple(
                AccountProgress(account=s.account, health=s.health(), delivered=sum(c.fills.values()))
                for s, c in zip(sessions, consumers, strict=True)
            ),
        )

    settled = False
    try:
        async with anyio.create_task_group() as tg:
            for session in sessions:
                await tg.start(session.run)
            for consumer in consumers:
                tg.start_soon(consumer.run)
            view.start(settings, progress("connecting"), where=where.removesuffix("/v1"))
            phase = ["live"]
            tg.start_soon(_refresh, view, lambda: progress(phase[0]))
            deadline = anyio.current_time() + settings.duration
            while anyio.current_time() < deadline:
                await sim.run(steps=_STEPS_PER_TICK * settings.accounts)
                await anyio.sleep(_TICK_S)
            phase[0] = "settling: the venue is quiet, reconciling"
            sim.quiesce()
            with anyio.move_on_after(_CONVERGE_S):
                for session, consumer in zip(sessions, consumers, strict=True):
                    await _converge(session, consumer)
                settled = True
            states = [(dict(s.orders), dict(s.positions), s.health()) for s in sessions]
            for session in sessions:
                await session.close()
            tg.cancel_scope.cancel()
    finally:
        # Also when a session failed on its own (a ledger error, say): close() releases its channel.
        with anyio.CancelScope(shield=True):
            for session in sessions:
                await session.close()
    view.update(progress("done"))
    reports = [
        verify_account(
            truth=sim.truth(session.account),
            orders=orders,
            positions=positions,
            consumer=consumer,
            health=health,
            ledger=ledger,
        )
        for session, consumer, (orders, positions, health) in zip(sessions, consumers, states, strict=True)
    ]
    return reports, settled


async def _refresh(view: DemoView, progress: Callable[[], Progress]) -> None:
    while True:
        view.update(progress())
        await anyio.sleep(_REFRESH_S)


async def _converge(session: Session, consumer: DemoConsumer) -> None:
    """Reconcile until a pass succeeds with nothing outstanding; wait until the consumer took it all."""
    for _ in range(_CONVERGE_ROUNDS):
        summary = await session.reconcile_now(reason="final")
        health = session.health()
        if summary.ok and health.outstanding_needs == 0 and health.unknown_orders == 0:
            break
    await consumer.wait_taken(summary)
