"""The demo's rich display: a live table on a terminal, status lines in a pipe, the verification table."""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from ._demo import DemoResult, DemoSettings
    from ._demo_verify import AccountReport
    from ._demo_view import Progress

__all__ = ["RichView"]

#: In a pipe (CI logs), one status line per this many seconds instead of a live table.
_STATUS_EVERY_S = 3.0
_OK = "[green]✓[/green]"
_LEGEND = (
    "WS: fills first seen on the WebSocket; REST: fills it missed, recovered over REST; dup: duplicates "
    "suppressed; passes: full reconciliations ok/failed; delivered: fills the consumer took."
)
_BAD = "[bold red]✗[/bold red]"


def short(account: str) -> str:
    """``0x1234…cdef``."""
    return account if len(account) <= 14 else f"{account[:6]}…{account[-4:]}"


def _mark(ok: bool) -> str:
    return _OK if ok else _BAD


class RichView:
    """Live progress and the final verification, with rich."""

    def __init__(self, stream: IO[str]) -> None:
        console = Console(file=stream, highlight=False)
        if not console.is_terminal:
            console = Console(file=stream, highlight=False, width=120, no_color=True)
        self._console = console
        self._live: Live | None = None
        self._settings: DemoSettings | None = None
        self._last_status = 0.0

    def start(self, settings: DemoSettings, progress: Progress, *, where: str) -> None:
        self._settings = settings
        console = self._console
        console.print(
            f"[bold]reconcile demo[/bold]: a simulated Paradex on {where} (no account, no network);\n"
            f"{settings.accounts} account(s), faults [bold]{settings.faults}[/bold], seed {settings.seed}, "
            f"{settings.duration:g} s of trading. Each account runs a real session over loopback sockets:\n"
            "WebSocket hints, REST truth, a SQLite ledger."
        )
        if console.is_terminal:
            self._live = Live(self._render(progress), console=console, refresh_per_second=4, transient=False)
            self._live.start()
        else:
            console.print(_LEGEND)
            self._status(progress)

    def update(self, progress: Progress) -> None:
        if self._live is not None:
            self._live.update(self._render(progress))
            if progress.phase == "done":
                self._live.stop()
                self._live = None
        elif progress.phase == "done" or time.monotonic() - self._last_status >= _STATUS_EVERY_S:
            self._status(progress)

    def _status(self, progress: Progress) -> None:
        self._last_status = time.monotonic()
        console = self._console
        console.print(
            f"[{progress.elapsed:5.1f}s] {progress.phase}; venue fills {progress.venue_fills}, "
            f"faults injected {progress.faults_injected}"
        )
        for account in progress.accounts:
            health = account.health
            console.print(
                f"  {short(account.account)} {health.state.value:<10} WS {health.fills_from_stream:>4}"
                f"  REST {health.fills_from_rest:>4}  dup {health.duplicates_suppressed:>5}"
                f"  reconnects {health.reconnects:>3}  discrepancies {sum(health.discrepancies.values()):>3}"
                f"  delivered {account.delivered:>4}"
            )

    def _render(self, progress: Progress) -> Group:
        head = Text.from_markup(
            f"[bold]{progress.phase}[/bold]  {min(progress.elapsed, progress.duration):5.1f} / "
            f"{progress.duration:g} s   venue fills {progress.venue_fills}   faults injected {progress.faults_injected}"
        )
        table = Table(box=None, pad_edge=False, header_style="bold", caption=_LEGEND, caption_justify="left")
        for name in ("account", "state", "WS", "REST", "dup", "reconnects", "passes", "delivered"):
            table.add_column(name, justify="left" if name in ("account", "state") else "right")
        table.add_column("discrepancies")
        for account in progress.accounts:
            health = account.health
            kinds = ", ".join(f"{kind.value} {n}" for kind, n in sorted(health.discrepancies.items(), key=str)) or "-"
            table.add_row(
                short(account.account),
                health.state.value,
                str(health.fills_from_stream),
                str(health.fills_from_rest),
                str(health.duplicates_suppressed),
                str(health.reconnects),
                f"{health.passes_ok}/{health.passes_failed}",
                str(account.delivered),
                kinds,
            )
        return Group(head, table)

    def finish(self, result: DemoResult) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        console = self._console
        console.print()
        table = Table(
            title="Verification against the simulator's truth",
            caption="matched/venue for orders and positions; delivered/venue for fills and busts",
            header_style="bold",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        for name in ("account", "orders", "positions", "fills", "busts", "exactly once", "ledger", "verdict"):
            table.add_column(name)
        for report in result.accounts:
            table.add_row(*_verification_row(report))
        console.print(table)
        if any(r.delivered_fills < r.venue_fills for r in result.accounts):
            console.print("A fill busted before the session ever saw it is delivered as a bust only.")
        faults = ", ".join(f"{name} {n}" for name, n in sorted(result.faults_injected.items())) or "none"
        console.print(f"Faults injected: {faults}.")
        for report in result.accounts:
            for problem in report.problems:
                console.print(f"  {_BAD} {short(report.account)}: {escape(problem)}")
        for error in result.simulator_errors:
            console.print(f"  {_BAD} simulator error: {escape(error)}")
        if not result.settled:
            console.print(f"  {_BAD} the final reconciliation did not finish in time")
        if result.ok:
            console.print(
                f"{_OK} [bold]Converged[/bold] in {result.seconds:.1f} s: every account equals the venue's truth, "
                "and every fill was delivered exactly once."
            )
        else:
            console.print(
                f"{_BAD} [bold]Not converged[/bold] (converged: {result.converged}, exactly once: "
                f"{result.exactly_once}); replay with --seed {result.settings.seed} "
                f"--faults {result.settings.faults}."
            )


def _verification_row(report: AccountReport) -> tuple[str, ...]:
    return (
        short(report.account),
        f"{_mark(report.orders_ok)} {report.matched_orders}/{report.venue_orders}",
        f"{_mark(report.positions_ok)} {report.matched_positions}/{report.venue_positions}",
        f"{report.delivered_fills}/{report.venue_fills}",
        f"{report.delivered_busts}/{report.venue_busts}",
        _mark(report.exactly_once),
        _mark(report.ledger_ok),
        "[green]ok[/green]" if report.ok else "[bold red]FAILED[/bold red]",
    )
