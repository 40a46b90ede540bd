"""Paginated reads: the next page is read while the current one merges, and nothing else changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from reconcile_core import Page
from reconcile_core.errors import ConnectionLostError, LedgerError
from reconcile_core.runtime import SessionConfig
from reconcile_core.runtime._passes import Reconciliation, SourceFailedError

pytestmark = pytest.mark.anyio


def _reconciliation(request_timeout: float = 5.0) -> Reconciliation:
    # pages() uses only the config (each page's read is under request_timeout).
    none = cast("Any", None)
    return Reconciliation(
        source=none,
        ledger=none,
        reconciler=none,
        gate=none,
        config=SessionConfig(request_timeout=request_timeout),
        metrics=none,
    )


class Pages:
    """A paginated read that logs when each page's read starts and ends."""

    def __init__(self, count: int, *, fail_at: int | None = None, delay: float = 0.0) -> None:
        self.count = count
        self.fail_at = fail_at
        self.delay = delay
        self.log: list[str] = []
        self.closed = False

    async def read(self) -> AsyncIterator[Page[int]]:
        try:
            for number in range(self.count):
                self.log.append(f"read {number}")
                await anyio.sleep(self.delay)
                if number == self.fail_at:
                    raise ConnectionLostError(f"page {number} failed")
                self.log.append(f"got {number}")
                yield Page(items=(number,))
        finally:
            self.closed = True


async def test_the_next_page_is_read_while_the_current_one_merges() -> None:
    pages = Pages(4, delay=0.01)
    merged: list[int] = []

    async def on_page(page: Page[int]) -> None:
        pages.log.append(f"merge {page.items[0]} starts")
        await anyio.sleep(0.05)  # longer than a read: the next one finishes meanwhile
        merged.extend(page.items)
        pages.log.append(f"merge {page.items[0]} ends")

    await _reconciliation().pages("fills", pages.read, on_page)
    assert merged == [0, 1, 2, 3]
    log = pages.log
    # Page 1 was read while page 0 merged; never more than one page ahead.
    assert log.index("merge 0 starts") < log.index("got 1") < log.index("merge 0 ends")
    # Never more than one page ahead: page 2 is read once page 1 was handed over.
    assert log.index("read 2") > log.index("merge 0 ends")
    assert pages.closed


async def test_the_next_request_is_sent_before_a_synchronous_merge_holds_the_loop() -> None:
    # A merge is synchronous: whatever the reader has not sent when it starts waits
    # for its end. The reader here needs two steps to "send" (like httpx's pool
    # and connection locks); the merger gives it them first.
    log: list[str] = []

    async def read() -> AsyncIterator[Page[int]]:
        for number in range(3):
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
            log.append(f"sent {number}")
            await anyio.sleep(0.01)  # the venue prepares the page
            yield Page(items=(number,))

    async def on_page(page: Page[int]) -> None:
        log.append(f"merge {page.items[0]}")  # no await: holds the loop

    await _reconciliation().pages("fills", read, on_page)
    assert log.index("sent 1") < log.index("merge 0")
    assert log.index("sent 2") < log.index("merge 1")


async def test_a_failed_read_is_raised_after_every_page_before_it_merged() -> None:
    pages = Pages(5, fail_at=3)
    merged: list[int] = []

    async def on_page(page: Page[int]) -> None:
        merged.extend(page.items)

    with pytest.raises(SourceFailedError) as caught:
        await _reconciliation().pages("fills", pages.read, on_page)
    assert merged == [0, 1, 2]
    assert caught.value.what == "fills"
    assert isinstance(caught.value.error, ConnectionLostError)
    assert pages.closed


async def test_a_merge_failure_is_raised_as_it_is_and_reading_stops() -> None:
    pages = Pages(10)

    async def on_page(page: Page[int]) -> None:
        if page.items == (1,):
            raise LedgerError("disk full")

    with pytest.raises(LedgerError, match="disk full"):  # not wrapped in an exception group
        await _reconciliation().pages("fills", pages.read, on_page)
    assert "read 4" not in pages.log  # at most one page was read ahead
    assert pages.closed


async def test_a_slow_page_times_out_as_a_source_failure() -> None:
    pages = Pages(3, delay=1.0)

    async def on_page(page: Page[int]) -> None:
        raise AssertionError("no page arrives in time")

    with pytest.raises(SourceFailedError) as caught:
        await _reconciliation(request_timeout=0.05).pages("fills", pages.read, on_page)
    assert "longer than" in str(caught.value)
    assert pages.closed


async def test_cancelling_the_caller_stops_the_read_ahead() -> None:
    pages = Pages(1000, delay=0.001)

    async def on_page(page: Page[int]) -> None:
        await anyio.sleep(0.001)

    with anyio.move_on_after(0.05) as scope:
        await _reconciliation().pages("fills", pages.read, on_page)
    assert scope.cancelled_caught
    assert pages.closed
    assert len(pages.log) < 200
