"""Token providers, and the rule that tokens never show in logs, reprs or error messages."""

from __future__ import annotations

import base64
import json
import logging
import pickle
from typing import Any

import anyio
import pytest

from reconcile_core import Discrepancy
from reconcile_core.errors import AuthenticationError, ReconcileError, UsageError
from reconcile_paradex import (
    CallableTokenProvider,
    ParadexSource,
    ReadOnlyToken,
    Secret,
    TokenProvider,
    jwt_expiry,
)
from reconcile_paradex._auth import redact

from .fake_venue import FakeParadex, order_payload, paradex_source, token_minter

pytestmark = pytest.mark.anyio


def make_jwt(exp: float | None, subject: str = "0x1", *, iat: float | None = None) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims: dict[str, object] = {"sub": subject}
    if exp is not None:
        claims["exp"] = exp
    if iat is not None:
        claims["iat"] = iat
    return f"{part({'alg': 'ES384'})}.{part(claims)}.c2lnbmF0dXJlLXNpZw"


def test_a_secret_never_shows_itself() -> None:
    secret = Secret("hunter2-token")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret} {secret!r} {secret:>20}"
    assert secret.reveal() == "hunter2-token"
    assert secret == Secret("hunter2-token")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(UsageError):
        Secret("")


async def test_read_only_token() -> None:
    provider = ReadOnlyToken("long-lived-read-only-jwt")
    assert isinstance(provider, TokenProvider)
    assert await provider.token() == "long-lived-read-only-jwt"
    assert await provider.token(force_refresh=True) == "long-lived-read-only-jwt"
    assert "long-lived" not in repr(provider)


def test_a_token_whose_claims_nest_too_deep_is_unreadable_not_a_crash() -> None:
    claims = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode().rstrip("=")
    token = f"eyJhbGciOiJFUzM4NCJ9.{claims}.c2ln"
    assert jwt_expiry(token) is None
    ParadexSource(account="0x1", token=token)  # its subject unreadable: left to the venue


def test_jwt_expiry() -> None:
    assert jwt_expiry(make_jwt(1681452907)) == 1681452907
    assert jwt_expiry(make_jwt(None)) is None
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry("a.%%%.c") is None


async def test_callable_provider_caches_until_shortly_before_exp() -> None:
    now = [1000.0]
    calls = 0

    def mint() -> str:
        nonlocal calls
        calls += 1
        return make_jwt(now[0] + 300, subject=f"call-{calls}")

    provider = CallableTokenProvider(mint, refresh_margin=30, wall_clock=lambda: now[0])
    first = await provider.token()
    assert await provider.token() == first
    now[0] += 269  # 31 s before exp: still good
    assert await provider.token() == first
    now[0] += 2  # 29 s before exp: refresh
    second = await provider.token()
    assert second != first
    assert calls == 2
    assert await provider.token(force_refresh=True) != second
    assert calls == 3


async def test_callable_provider_calls_at_most_every_10_s_when_the_local_clock_runs_ahead() -> None:
    # The venue's clock says the token lives 300 s; ours is 600 s ahead, so by our clock
    # every fresh token has already expired. It must still be reused, not minted per request.
    now = [1000.0]
    calls = 0

    def mint() -> str:
        nonlocal calls
        calls += 1
        venue_now = now[0] - 600
        return make_jwt(venue_now + 300, subject=f"call-{calls}", iat=venue_now)

    provider = CallableTokenProvider(mint, refresh_margin=30, wall_clock=lambda: now[0])
    first = await provider.token()
    for _ in range(20):
        assert await provider.token() == first
    now[0] += 9.9
    assert await provider.token() == first
    assert calls == 1
    now[0] += 0.2
    assert await provider.token() != first
    assert calls == 2


async def test_callable_provider_refreshes_a_partly_used_token_before_its_exp() -> None:
    # A function handing out a token minted 250 s ago (a file another process keeps fresh):
    # its exp, not its lifetime, says when to ask again.
    now = [1000.0]
    calls = 0

    def mint() -> str:
        nonlocal calls
        calls += 1
        return make_jwt(now[0] + 50, subject=f"call-{calls}", iat=now[0] - 250)

    provider = CallableTokenProvider(mint, refresh_margin=30, wall_clock=lambda: now[0])
    first = await provider.token()
    now[0] += 19.9
    assert await provider.token() == first
    now[0] += 0.2  # 29.9 s before exp
    assert await provider.token() != first
    assert calls == 2


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"refresh_margin": float("nan")}, "refresh_margin"),
        ({"refresh_margin": "30"}, "refresh_margin"),
        ({"refresh_margin": -1}, "refresh_margin"),
        ({"default_lifetime": 0}, "default_lifetime"),
        ({"default_lifetime": float("inf")}, "default_lifetime"),
        ({"wall_clock": 5}, "wall_clock"),
    ],
)
def test_callable_provider_refuses_unusable_options(options: dict[str, Any], name: str) -> None:
    with pytest.raises(UsageError, match=name):
        CallableTokenProvider(lambda: "token", **options)


async def test_callable_provider_accepts_async_functions_and_tokens_without_exp() -> None:
    now = [0.0]

    async def mint() -> Secret:
        await anyio.lowlevel.checkpoint()
        return Secret(f"opaque-{now[0]}")

    provider = CallableTokenProvider(mint, default_lifetime=240, wall_clock=lambda: now[0])
    assert await provider.token() == "opaque-0.0"
    now[0] = 239
    assert await provider.token() == "opaque-0.0"
    now[0] = 240
    assert await provider.token() == "opaque-240"


async def test_concurrent_callers_share_one_refresh() -> None:
    calls = 0
    release = anyio.Event()

    async def mint() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return make_jwt(10**10)

    provider = CallableTokenProvider(mint)
    results: list[str] = []

    async def ask() -> None:
        results.append(await provider.token())

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert calls == 1
    assert len(set(results)) == 1


async def test_a_failing_token_function_says_so_without_its_message() -> None:
    def mint() -> str:
        raise ValueError("private key 0xdeadbeef is invalid")

    with pytest.raises(AuthenticationError) as caught:
        await CallableTokenProvider(mint).token()
    assert "deadbeef" not in str(caught.value)
    assert "ValueError" in str(caught.value)

    with pytest.raises(AuthenticationError, match="returned int"):
        await CallableTokenProvider(lambda: 5).token()  # type: ignore[arg-type, return-value]


def test_redact() -> None:
    jwt = make_jwt(1)
    text = f'{{"bearer": "{jwt}"}} Authorization: Bearer abcdefghijklmnopqrstuvwxyz plain-secret'
    cleaned = redact(text, "plain-secret")
    assert jwt not in cleaned
    assert "abcdefghijklmnop" not in cleaned
    assert "plain-secret" not in cleaned
    assert redact("invalid bearer jwt: token is expired by 9s") == "invalid bearer jwt: token is expired by 9s"


async def test_tokens_never_reach_logs_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeParadex()
    secrets = "secretvalue"  # every minted token ends with it: tok-1-secretvalue, tok-2-secretvalue, ...
    seen: list[str] = []
    provider = CallableTokenProvider(token_minter(fake))
    async with paradex_source(fake, token=provider) as source:
        seen += [repr(source), repr(source.rest), repr(source._ws), repr(provider)]
        # REST: an expired token and a refresh, a 429, a 5xx, then an error that echoes the token
        await source.positions()
        fake.expired_tokens.add("tok-1-secretvalue")
        fake.script("/positions", 429, {}, headers={"Retry-After": "1"})
        fake.script("/positions", 500, {"message": "boom"})
        await source.positions()
        fake.script("/positions", 400, {"error": "VALIDATION_ERROR", "message": "bad bearer tok-2-secretvalue"})
        with pytest.raises(ReconcileError) as caught:
            await source.positions()
        seen.append(str(caught.value))
        # WS: a refused auth, then a stream with a message that echoes the token
        fake.ws_auth_errors.append(40111)
        async with source.subscribe() as hints:
            token = fake.ws_auth_tokens[-1]
            await fake.push_text('{"jsonrpc": "2.0", "oops": "' + token + '"')
            await fake.push("orders.ALL", order_payload("o1", market=["not", token]))
            with anyio.fail_after(5):
                problems = [await anext(hints), await anext(hints)]
        assert all(isinstance(p, Discrepancy) for p in problems)
        seen += [repr(p) for p in problems]
        fake.ws_auth_errors.extend([40111, 40111])
        with pytest.raises(AuthenticationError) as auth_error:
            async with source.subscribe():
                pass
        seen.append(str(auth_error.value))
    seen.append(caplog.text)
    assert fake.ws_auth_tokens  # the scenario really sent tokens
    for text in seen:
        assert secrets not in text, text
