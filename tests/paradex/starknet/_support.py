"""Helpers for the Starknet-auth tests: a simulator with a registered key, and a recording provider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from reconcile_paradex import StarknetKeyTokenProvider
from reconcile_paradex.testing import ParadexSimulator

#: A deadline for waiting on events: only hit when a test fails.
DEADLINE = 10.0


def sim_clock(sim: ParadexSimulator, offset_s: float = 0.0) -> Callable[[], float]:
    """The simulator's virtual clock in unix seconds (what a client there would read)."""
    return lambda: sim.now / 1000 + offset_s


@asynccontextmanager
async def sim_client(sim: ParadexSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=sim.http_transport()) as client:
        yield client


def sim_provider(
    sim: ParadexSimulator, client: httpx.AsyncClient, *, account: str, private_key: int, **options: Any
) -> StarknetKeyTokenProvider:
    options.setdefault("wall_clock", sim.wall_clock)
    return StarknetKeyTokenProvider(
        account=account, private_key=private_key, env=None, rest_url=sim.rest_url, http_client=client, **options
    )


class RecordingProvider:
    """Wraps a provider and records every call: ``(force_refresh, token)``."""

    def __init__(self, inner: StarknetKeyTokenProvider) -> None:
        self.inner = inner
        self.calls: list[tuple[bool, str]] = []

    async def token(self, *, force_refresh: bool = False) -> str:
        token = await self.inner.token(force_refresh=force_refresh)
        self.calls.append((force_refresh, token))
        return token

    @property
    def forced(self) -> int:
        return sum(1 for forced, _ in self.calls if forced)
