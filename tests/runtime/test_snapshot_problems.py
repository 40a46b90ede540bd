"""Rows a source could not parse in a snapshot reach the consumer as discrepancies."""

from __future__ import annotations

import anyio
import attrs
import pytest

from reconcile_core import Discrepancy, DiscrepancyKind, MemoryLedger, OpenOrdersSnapshot, PositionsSnapshot
from reconcile_core.runtime import Session
from reconcile_core.testing import FakeVenue, FaultySource

from ._support import DEADLINE, FAST


def _problem(what: str) -> Discrepancy:
    return Discrepancy(kind=DiscrepancyKind.MALFORMED_MESSAGE, subject=f"{what} row 3", detail="size is not a decimal")


class SnapshotWithBadRows(FaultySource):
    """A source whose snapshots each lost one row to a parse error."""

    async def open_orders(self) -> OpenOrdersSnapshot:
        snapshot = await super().open_orders()
        return attrs.evolve(snapshot, complete=False, problems=(_problem("open orders"),))

    async def positions(self) -> PositionsSnapshot:
        snapshot = await super().positions()
        return attrs.evolve(snapshot, complete=False, problems=(_problem("positions"),))


@pytest.mark.anyio
async def test_snapshot_problems_are_delivered() -> None:
    venue = FakeVenue(seed=3)
    venue.place("main")
    seen: list[Discrepancy] = []
    async with Session(SnapshotWithBadRows(venue), MemoryLedger(), config=FAST) as session:
        with anyio.fail_after(DEADLINE):
            async for event in session.events():
                if isinstance(event, Discrepancy):
                    seen.append(event)
                if len(seen) == 2:
                    break
    assert {d.subject for d in seen} == {"open orders row 3", "positions row 3"}
    assert session.health().discrepancies[DiscrepancyKind.MALFORMED_MESSAGE] >= 2
