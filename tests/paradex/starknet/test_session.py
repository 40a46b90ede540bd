"""A live Session on a ParadexSource whose JWTs are minted with a Starknet key, against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

pytest.importorskip("starknet_py", reason="needs the 'starknet' extra: pip install 'reconcile-trading[starknet]'")

from reconcile_core import FillRecorded, MemoryLedger
from reconcile_core.runtime import ConnectionState, Session
from reconcile_paradex.testing import ParadexSimulator

from ...runtime._support import DEADLINE, Collector, fast, simulated_source
from ._support import RecordingProvider, sim_provider

pytestmark = pytest.mark.anyio

#: The JWT lifetime for these tests, in virtual ms (Paradex: 300 000).
TTL_MS = 2_000


@asynccontextmanager
async def live_session(sim: ParadexSimulator) -> AsyncIterator[tuple[Session, RecordingProvider, Collector]]:
    """A running session over the simulator's first account, authenticated by a Starknet-key provider."""
    account = sim.accounts[0]
    key = sim.new_starknet_key(account)
    async with sim, httpx.AsyncClient(transport=sim.http_transport()) as client:
        provider = RecordingProvider(sim_provider(sim, client, account=account, private_key=key))
        source = simulated_source(sim, client, token=provider)
        async with source, Session(source, MemoryLedger(), config=fast()) as session, anyio.create_task_group() as tg:
            collector = Collector(session)
            await tg.start(collector.run)
            with anyio.fail_after(DEADLINE):
                await session.wait_synced()
            yield session, provider, collector
            tg.cancel_scope.cancel()


def _tokens(provider: RecordingProvider) -> list[str]:
    """The distinct tokens handed out, in order."""
    return list(dict.fromkeys(token for _, token in provider.calls))


async def test_a_session_outlives_several_jwts_without_an_auth_failure() -> None:
    sim = ParadexSimulator(seed=31, accounts=1, settlement_lag_ms=50)
    sim.jwt_ttl_ms = TTL_MS
    sim.run_until(steps=50)
    async with live_session(sim) as (session, provider, collector):
        started = sim.now
        # Five JWT lifetimes of virtual time, with venue activity and a full pass every 400 ms.
        while sim.now - started < 5 * TTL_MS:
            await sim.run(steps=5)
            sim.advance(400)
            with anyio.fail_after(DEADLINE):
                summary = await session.reconcile_now(reason="tick")
            assert summary.ok, summary
        sim.quiesce()
        with anyio.fail_after(DEADLINE):
            assert (await session.reconcile_now(reason="final")).ok
        health = session.health()
        truth = sim.truth(sim.accounts[0])

    assert health.passes_failed == 0
    assert not health.authentication_failing
    assert health.reconnects == 0
    # No request was ever refused: a 401 (REST) or 40111 (WS) would have forced a refresh.
    assert provider.forced == 0
    # Refreshed along the way: at least one JWT per lifetime, each minted by the venue.
    minted = sim.starknet_auth_counts()
    assert set(minted) == {"ok"}
    assert minted["ok"] == provider.inner.mints == len(_tokens(provider))
    assert minted["ok"] >= 5
    # And the session did its job meanwhile.
    delivered = {event.fill.key.fill_id for event in collector.of(FillRecorded)}
    assert delivered == {fill.id for fill in (*truth.fills, *truth.busted_fills)}


async def test_a_reconnect_authenticates_with_a_freshly_minted_token() -> None:
    sim = ParadexSimulator(seed=32, accounts=1)
    sim.jwt_ttl_ms = TTL_MS
    async with live_session(sim) as (session, provider, _collector):
        before = list(provider.calls)
        # The cached token expires while the connection is up; then the connection drops (paradex-py #116).
        sim.advance(TTL_MS + 500)
        assert sim.disconnect_websockets() == 1
        with anyio.fail_after(DEADLINE):
            health = await session.wait_health(lambda h: h.reconnects == 1 and h.state is ConnectionState.LIVE)
        after = provider.calls[len(before) :]

    assert not health.authentication_failing
    # The first token asked for after the drop (the WebSocket's auth) is forced fresh: a new one, minted then.
    forced, token = after[0]
    assert forced
    assert token not in {old for _, old in before}
    # The venue accepted it at once: every mint succeeded, no 40111.
    assert sim.starknet_auth_counts()["ok"] == provider.inner.mints == len(_tokens(provider))


async def test_a_reconnect_mints_even_while_the_cached_token_is_fresh() -> None:
    """Never reuse a token on a new connection (paradex-py #116), even one that looks valid."""
    sim = ParadexSimulator(seed=34, accounts=1)
    async with live_session(sim) as (session, provider, _collector):
        mints = provider.inner.mints
        cached = provider.calls[-1][1]
        assert sim.disconnect_websockets() == 1
        with anyio.fail_after(DEADLINE):
            await session.wait_health(lambda h: h.reconnects == 1 and h.state is ConnectionState.LIVE)
    assert provider.inner.mints == mints + 1
    assert provider.calls[-1][1] != cached


async def test_a_revoked_token_is_never_sent_again_after_a_reconnect() -> None:
    sim = ParadexSimulator(seed=33, accounts=1)
    async with live_session(sim) as (session, provider, _collector):
        current = provider.calls[-1][1]
        # Still fresh by its exp, but the venue no longer accepts it; the reconnect mints anyway.
        sim.revoke_token(current)
        sim.disconnect_websockets()
        with anyio.fail_after(DEADLINE):
            health = await session.wait_health(lambda h: h.reconnects == 1 and h.state is ConnectionState.LIVE)

    assert not health.authentication_failing
    assert provider.forced >= 1
    assert provider.calls[-1][1] != current
    assert provider.inner.mints == 2
