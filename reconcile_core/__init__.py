"""reconcile_core: keep a trading client's orders, fills and positions equal to the venue's truth.

This package is the pure, exchange-agnostic core: value types, the merge
rules, the sans-IO :class:`AccountReconciler`, and the in-memory ledger.
Importing it loads no I/O library (no anyio, httpx, wsproto or sqlite3).

* :mod:`reconcile_core.typing` — the ``StateSource``, ``FillLedger`` and
  ``Reconciler`` protocols.
* :mod:`reconcile_core.errors` — the exception hierarchy.
* :mod:`reconcile_core.testing` — contract tests, fakes and Hypothesis strategies.
"""

from __future__ import annotations

from ._events import (
    BackfillFills,
    CycleSummary,
    Discrepancy,
    DiscrepancyKind,
    Event,
    FillBusted,
    FillRecorded,
    Need,
    OrderUpdated,
    Page,
    PositionUpdated,
    ResolveOrder,
    Severity,
)
from ._ledger import BustResult, Delivery, OrderRef, RecordOutcome, RecordResult
from ._memory_ledger import MemoryLedger
from ._reconciler import AccountReconciler, MergeStep, ReconcilerStats
from ._types import (
    Fill,
    FillBust,
    FillKey,
    FillKind,
    Liquidity,
    OpenOrdersSnapshot,
    Order,
    OrderStatus,
    OrderType,
    Position,
    PositionsSnapshot,
    Side,
    Source,
)
from ._versions import order_version, position_version

__all__ = [
    "AccountReconciler",
    "BackfillFills",
    "BustResult",
    "CycleSummary",
    "Delivery",
    "Discrepancy",
    "DiscrepancyKind",
    "Event",
    "Fill",
    "FillBust",
    "FillBusted",
    "FillKey",
    "FillKind",
    "FillRecorded",
    "Liquidity",
    "MemoryLedger",
    "MergeStep",
    "Need",
    "OpenOrdersSnapshot",
    "Order",
    "OrderRef",
    "OrderStatus",
    "OrderType",
    "OrderUpdated",
    "Page",
    "Position",
    "PositionUpdated",
    "PositionsSnapshot",
    "ReconcilerStats",
    "RecordOutcome",
    "RecordResult",
    "ResolveOrder",
    "Severity",
    "Side",
    "Source",
    "order_version",
    "position_version",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - lazy, like attrs

        return version("reconcile-trading")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
