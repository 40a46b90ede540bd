"""``MemoryLedger``: a :class:`~reconcile_core.typing.FillLedger` in process memory.

For tests and short-lived tools. It forgets everything when the process ends
and grows with the number of fills; use :class:`reconcile_core.sqlite.SqliteLedger`
for anything that must survive a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

import attrs

from ._ledger import BustResult, Delivery, OrderRef, RecordOutcome, RecordResult
from ._types import Fill, FillBust, FillKey

__all__ = ["MemoryLedger"]

_Account = tuple[str, str]


@attrs.define(eq=False)
class MemoryLedger:
    """A fill ledger held in dictionaries. Same contract as the SQLite ledger."""

    _fills: dict[FillKey, Fill] = attrs.field(init=False, factory=dict)
    _conflicts: set[tuple[FillKey, tuple[object, ...]]] = attrs.field(init=False, factory=set)
    _busted: dict[tuple[str, str, str], FillBust] = attrs.field(init=False, factory=dict)
    _by_id: dict[tuple[str, str, str], list[FillKey]] = attrs.field(init=False, factory=dict)
    _outbox: dict[int, tuple[_Account, Delivery]] = attrs.field(init=False, factory=dict)
    _watermarks: dict[tuple[str, str, str], int] = attrs.field(init=False, factory=dict)
    _by_order: dict[tuple[str, str, str], Decimal] = attrs.field(init=False, factory=dict)
    _live_orders: dict[_Account, dict[str, OrderRef]] = attrs.field(init=False, factory=dict)
    _next_offset: int = attrs.field(init=False, default=1)
    _closed: bool = attrs.field(init=False, default=False)

    def __repr__(self) -> str:
        return f"<MemoryLedger fills={len(self._fills)} busts={len(self._busted)}>"

    def _take_offset(self) -> int:
        offset = self._next_offset
        self._next_offset += 1
        return offset

    def record(self, fill: Fill) -> RecordResult:
        """Record ``fill`` once; see :class:`~reconcile_core.typing.FillLedger`."""
        key = fill.key
        existing = self._fills.get(key)
        if existing is not None:
            if existing.content() == fill.content():
                return RecordResult(outcome=RecordOutcome.DUPLICATE)
            marker = (key, fill.content())
            if marker in self._conflicts:
                return RecordResult(outcome=RecordOutcome.DUPLICATE)
            self._conflicts.add(marker)
            return RecordResult(outcome=RecordOutcome.CONFLICT, existing=existing)
        id_key = (key.venue, key.account, key.fill_id)
        self._fills[key] = fill
        self._by_id.setdefault(id_key, []).append(key)
        if fill.order_id is not None:
            order_key = (key.venue, key.account, fill.order_id)
            self._by_order[order_key] = self._by_order.get(order_key, Decimal(0)) + fill.size
        if id_key in self._busted:
            return RecordResult(outcome=RecordOutcome.BUSTED)
        offset = self._take_offset()
        self._outbox[offset] = ((key.venue, key.account), Delivery(offset=offset, fill=fill))
        return RecordResult(outcome=RecordOutcome.RECORDED, offset=offset)

    def record_many(self, fills: Sequence[Fill]) -> list[RecordResult]:
        """``[record(fill) for fill in fills]``."""
        return [self.record(fill) for fill in fills]

    def bust(self, bust: FillBust) -> BustResult:
        """Tombstone a fill id once; see :class:`~reconcile_core.typing.FillLedger`."""
        id_key = (bust.venue, bust.account, bust.fill_id)
        if id_key in self._busted:
            return BustResult(new=False)
        self._busted[id_key] = bust
        fills = tuple(self._fills[k] for k in self._by_id.get(id_key, ()))
        offset = self._take_offset()
        delivery = Delivery(offset=offset, bust=bust, busted_fill=fills[0] if fills else None)
        self._outbox[offset] = ((bust.venue, bust.account), delivery)
        return BustResult(new=True, offset=offset, fills=fills)

    def get(self, key: FillKey) -> Fill | None:
        """The fill recorded under ``key``, busted or not."""
        return self._fills.get(key)

    def is_busted(self, *, venue: str, account: str, fill_id: str) -> bool:
        """Whether a bust for this fill id was recorded."""
        return (venue, account, fill_id) in self._busted

    def knows_fill_id(self, *, venue: str, account: str, fill_id: str) -> bool:
        """Whether any fill or bust with this id was recorded."""
        id_key = (venue, account, fill_id)
        return id_key in self._by_id or id_key in self._busted

    def recorded_quantity(self, *, venue: str, account: str, order_id: str) -> Decimal:
        """Sum of sizes of every recorded fill of ``order_id``, busted ones included."""
        return self._by_order.get((venue, account, order_id), Decimal(0))

    def count(self, *, venue: str | None = None, account: str | None = None) -> int:
        """How many fills are recorded (busted ones included)."""
        return sum(
            1 for k in self._fills if (venue is None or k.venue == venue) and (account is None or k.account == account)
        )

    def note_orders(self, *, venue: str, account: str, live: Sequence[OrderRef], ended: Sequence[str]) -> None:
        """Remember ``live`` orders and forget ``ended`` ones (order ids); see ``live_orders``."""
        known = self._live_orders.setdefault((venue, account), {})
        for ref in live:
            known[ref.order_id] = ref
        for order_id in ended:
            known.pop(order_id, None)

    def live_orders(self, *, venue: str, account: str) -> list[OrderRef]:
        """The orders noted live and not noted ended since, oldest noted first."""
        return list(self._live_orders.get((venue, account), {}).values())

    def watermark(self, *, venue: str, account: str, scope: str = "") -> int | None:
        """The persisted "REST is complete up to" time, or ``None``."""
        return self._watermarks.get((venue, account, scope))

    def advance_watermark(self, *, venue: str, account: str, value: int, scope: str = "") -> int:
        """Move the watermark forward to ``value``; it never moves back."""
        key = (venue, account, scope)
        current = self._watermarks.get(key)
        if current is None or value > current:
            self._watermarks[key] = value
            return value
        return current

    def undelivered(self, *, venue: str, account: str, after: int = 0, limit: int = 1000) -> Sequence[Delivery]:
        """Unacknowledged outbox entries of one account, by offset, after ``after``."""
        out: list[Delivery] = []
        if limit < 1:
            return out
        for offset in sorted(self._outbox):
            scope, delivery = self._outbox[offset]
            if offset > after and scope == (venue, account):
                out.append(delivery)
                if len(out) >= limit:
                    break
        return out

    def acknowledge(self, offsets: Iterable[int]) -> None:
        """Mark outbox entries handled; they are never delivered again."""
        for offset in offsets:
            self._outbox.pop(offset, None)

    def commit(self) -> None:
        """Nothing to flush in memory."""

    def close(self) -> None:
        """Idempotent; the ledger stays readable in memory."""
        self._closed = True
