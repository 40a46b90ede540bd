"""Run the docs' Paradex programs against the Paradex simulator instead of testnet.

A program in the docs is what a user copies: it builds a ``ParadexSource``
for testnet from environment variables, and ends with ``anyio.run(main)``.
Here it runs unchanged except for where it connects: ``ParadexSource`` (and
``StarknetKeyTokenProvider``) get the loopback simulator's URLs, the
environment variables hold the simulator's account and tokens, ``print``
is recorded, and the run is bounded (it stops when ``stop`` says so, and
fails after a deadline).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from reconcile_paradex import ParadexSource
from reconcile_paradex.testing import LoopbackEndpoints, ParadexSimulator

from ._blocks import Block

#: Seconds a docs program may run before the test fails.
DEADLINE = 60.0
#: The last line of every runnable docs program.
ENTRY = "anyio.run(main)"


@attrs.frozen
class SimulatedTestnet:
    """The stand-in for Paradex testnet: a simulator served on 127.0.0.1."""

    simulator: ParadexSimulator
    endpoints: LoopbackEndpoints
    account: str
    token: str
    private_key: int

    def every_fill_id(self) -> set[str]:
        """Every fill the venue ever reported for the account, busted ones included."""
        truth = self.simulator.truth(self.account)
        return {f.id for f in truth.fills} | {f.id for f in truth.busted_fills}


@contextmanager
def simulated_testnet(
    monkeypatch: pytest.MonkeyPatch, workdir: Path, *, seed: int = 21, fills: int = 30
) -> Iterator[SimulatedTestnet]:
    """A settled simulated account, its credentials in the environment, ``workdir`` as the current directory."""
    simulator = ParadexSimulator(seed=seed, accounts=1, settlement_lag_ms=50)
    simulator.run_until(fills=fills)
    simulator.advance(1_000)  # every fill settled: REST lists them all
    (account,) = simulator.accounts
    token = simulator.issue_read_only_token(account)
    private_key = simulator.new_starknet_key(account)
    monkeypatch.setenv("PARADEX_ACCOUNT", account)
    monkeypatch.setenv("PARADEX_TOKEN", token)
    monkeypatch.setenv("PARADEX_L2_PRIVATE_KEY", hex(private_key))
    monkeypatch.chdir(workdir)
    with simulator.serve_loopback_sync() as endpoints:
        yield SimulatedTestnet(simulator, endpoints, account, token, private_key)


def load_program(block: Block, *, entry: str | None = ENTRY) -> dict[str, Any]:
    """Execute a program's definitions: everything but its last line, which must be ``entry``.

    With ``entry=None`` the whole block runs (a block that only defines things, like a test module).
    """
    body = block.code
    if entry is not None:
        body, _, last = block.code.rstrip().rpartition("\n")
        assert last == entry, f"{block.where()}: a runnable program ends with {entry!r}, not {last!r}"
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    # Pad so that tracebacks give the line number on the page.
    source = "\n" * block.line + body
    exec(compile(source, block.page, "exec"), namespace)  # noqa: S102 - our own docs
    if entry is not None:
        assert callable(namespace.get("main")), f"{block.where()}: the program defines no main()"
    return namespace


def run_program(
    block: Block,
    testnet: SimulatedTestnet,
    *,
    backend: str,
    stop: Callable[[tuple[Any, ...]], bool] = lambda _args: False,
) -> list[tuple[Any, ...]]:
    """Run the program against ``testnet``; return what it printed (the arguments of each ``print``)."""
    namespace = load_program(block)
    endpoints = testnet.endpoints
    printed: list[tuple[Any, ...]] = []
    scopes: list[anyio.CancelScope] = []

    def recording_print(*args: Any, **_kwargs: Any) -> None:
        printed.append(args)
        if stop(args):
            scopes[0].cancel()

    namespace["print"] = recording_print
    namespace["ParadexSource"] = functools.partial(
        ParadexSource, env=None, rest_url=endpoints.rest_url, ws_url=endpoints.ws_url
    )
    if "StarknetKeyTokenProvider" in namespace:
        simulator = testnet.simulator
        namespace["StarknetKeyTokenProvider"] = functools.partial(
            namespace["StarknetKeyTokenProvider"],
            env=None,
            rest_url=endpoints.rest_url,
            wall_clock=lambda: simulator.now / 1000,  # the simulator's virtual clock
        )

    async def bounded() -> None:
        with anyio.fail_after(DEADLINE), anyio.CancelScope() as scope:
            scopes.append(scope)
            await namespace["main"]()

    anyio.run(bounded, backend=backend)
    return printed
