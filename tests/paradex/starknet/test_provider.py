"""StarknetKeyTokenProvider: minting against the simulator, refresh timing, errors, secrets."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import re
import sys
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import httpx
import pytest

pytest.importorskip("starknet_py", reason="needs the 'starknet' extra: pip install 'reconcile-trading[starknet]'")

from starknet_py.hash.utils import private_to_stark_key, verify_message_signature
from starknet_py.utils.typed_data import TypedData

import reconcile_paradex._starknet as starknet_module
from reconcile_core.errors import (
    AuthenticationError,
    RateLimitedError,
    TransportError,
    UsageError,
    VenueError,
)
from reconcile_core.errors import TimeoutError as RequestTimeoutError
from reconcile_paradex import ParadexRestClient, Secret, StarknetKeyTokenProvider, TokenBucket, TokenProvider
from reconcile_paradex._starknet import INSTALL_HINT
from reconcile_paradex.testing import ParadexSimulator

from ._support import RecordingProvider, sim_client, sim_clock, sim_provider

pytestmark = pytest.mark.anyio

ACCOUNT = "0x495d2eb5236a12b8b4ad7d3849ce6a203ce21c43f473c248dfd5ce70d9454fa"
PRIVATE_KEY = 0x3C1E9550E66958296D11B60F8E8E7A7AD990D07FA65D5F7652C4A6C87D4E3CC


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _jwt(claims: object) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES384'})}.{part(claims)}.c2lnbmF0dXJl"


class MockVenue:
    """A scripted Paradex for ``httpx.MockTransport``: config and auth answers, every request recorded."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.config: Callable[[], httpx.Response] = lambda: httpx.Response(
            200, json={"starknet_chain_id": "PRIVATE_SN_POTC_SEPOLIA"}
        )
        self.auth: Callable[[], httpx.Response] = lambda: httpx.Response(200, json={"jwt_token": self.token})
        self.token = _jwt({"exp": 2_000_000_300, "iat": 2_000_000_000})
        self.now = 2_000_000_000.0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v1/system/config":
            return self.config()
        return self.auth()

    def provider(self, **options: Any) -> StarknetKeyTokenProvider:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        options.setdefault("wall_clock", lambda: self.now)
        options.setdefault("private_key", PRIVATE_KEY)
        return StarknetKeyTokenProvider(
            account=ACCOUNT,
            env=None,
            rest_url="https://paradex.test/v1",
            http_client=client,
            **options,
        )


@pytest.fixture
def sim() -> ParadexSimulator:
    return ParadexSimulator(seed=9)


@pytest.fixture
def quick_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    """A constant signature instead of a real one (~0.1 s each), for tests against MockVenue that ignore it."""
    monkeypatch.setattr(starknet_module, "_sign", lambda _message_hash, _private_key: (1, 2))


class TestMinting:
    async def test_a_minted_jwt_is_accepted_by_the_simulator(self, sim: ParadexSimulator) -> None:
        account = sim.accounts[0]
        key = sim.new_starknet_key(account)
        async with sim_client(sim) as client:
            provider = sim_provider(sim, client, account=account, private_key=key)
            assert isinstance(provider, TokenProvider)
            token = await provider.token()
            response = await client.get(f"{sim.rest_url}/orders", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert _claims(token)["sub"] == account
        assert sim.starknet_auth_counts() == {"ok": 1}
        assert provider.mints == 1
        assert provider.public_key == hex(private_to_stark_key(key))

    async def test_the_request_is_the_documented_one_and_its_signature_verifies(self) -> None:
        venue = MockVenue()
        provider = venue.provider(signature_ttl=600)
        await provider.token()
        config, auth = venue.requests
        assert (config.method, config.url.path) == ("GET", "/v1/system/config")
        assert auth.method == "POST"
        assert auth.url.path == f"/v1/auth/{hex(private_to_stark_key(PRIVATE_KEY))}"
        assert auth.content == b""
        headers = auth.headers
        assert headers["PARADEX-STARKNET-ACCOUNT"] == ACCOUNT
        assert headers["PARADEX-TIMESTAMP"] == "2000000000"
        assert headers["PARADEX-SIGNATURE-EXPIRATION"] == "2000000600"
        r, s = (int(part) for part in json.loads(headers["PARADEX-STARKNET-SIGNATURE"]))
        document = {
            "domain": {
                "name": "Paradex",
                "chainId": hex(int.from_bytes(b"PRIVATE_SN_POTC_SEPOLIA", "big")),
                "version": "1",
            },
            "primaryType": "Request",
            "types": {
                "StarkNetDomain": [
                    {"name": "name", "type": "felt"},
                    {"name": "chainId", "type": "felt"},
                    {"name": "version", "type": "felt"},
                ],
                "Request": [
                    {"name": "method", "type": "felt"},
                    {"name": "path", "type": "felt"},
                    {"name": "body", "type": "felt"},
                    {"name": "timestamp", "type": "felt"},
                    {"name": "expiration", "type": "felt"},
                ],
            },
            "message": {
                "method": "POST",
                "path": "/v1/auth",
                "body": "",
                "timestamp": 2_000_000_000,
                "expiration": 2_000_000_600,
            },
        }
        message_hash = TypedData.from_dict(document).message_hash(int(ACCOUNT, 16))  # type: ignore[arg-type]
        assert verify_message_signature(message_hash, [r, s], private_to_stark_key(PRIVATE_KEY))

    async def test_the_chain_id_comes_from_system_config_and_is_read_once(self) -> None:
        venue = MockVenue()
        venue.config = lambda: httpx.Response(200, json={"starknet_chain_id": "SOME_OTHER_CHAIN"})
        provider = venue.provider()
        for _ in range(3):
            await provider.token(force_refresh=True)
        assert await provider.chain_id() == "SOME_OTHER_CHAIN"
        paths = Counter(request.url.path for request in venue.requests)
        assert paths["/v1/system/config"] == 1
        assert provider.mints == 3
        # The signature covers that chain: it verifies for it and for no other.
        auth = venue.requests[-1]
        r, s = (int(part) for part in json.loads(auth.headers["PARADEX-STARKNET-SIGNATURE"]))
        arguments = {
            "account": ACCOUNT,
            "timestamp": int(auth.headers["PARADEX-TIMESTAMP"]),
            "expiration": int(auth.headers["PARADEX-SIGNATURE-EXPIRATION"]),
        }
        public_key = private_to_stark_key(PRIVATE_KEY)
        assert verify_message_signature(
            starknet_module.auth_message_hash(chain_id="SOME_OTHER_CHAIN", **arguments), [r, s], public_key
        )
        assert not verify_message_signature(
            starknet_module.auth_message_hash(chain_id="PRIVATE_SN_POTC_SEPOLIA", **arguments), [r, s], public_key
        )

    async def test_a_wrong_chain_id_makes_the_venue_refuse_the_signature(self, sim: ParadexSimulator) -> None:
        account = sim.accounts[0]
        key = sim.new_starknet_key(account)

        async def other_chain(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/system/config":
                return httpx.Response(200, json={"starknet_chain_id": "PRIVATE_SN_POTC_SEPOLIA"})
            return await sim.http_transport().handle_async_request(request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(other_chain)) as client:
            provider = sim_provider(sim, client, account=account, private_key=key)
            with pytest.raises(AuthenticationError) as caught:
                await provider.token()
        assert caught.value.code == "STARKNET_SIGNATURE_VERIFICATION_FAILED"

    async def test_a_subkey_signs_for_the_main_account(self, sim: ParadexSimulator) -> None:
        account = sim.accounts[0]
        sim.new_starknet_key(account)
        subkey = sim.new_starknet_key(account, subkey=True)
        requests: list[httpx.Request] = []

        async def recording(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return await sim.http_transport().handle_async_request(request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
            provider = sim_provider(sim, client, account=account, private_key=subkey)
            token = await provider.token()
        auth = requests[-1]
        assert auth.url.path == f"/v1/auth/{hex(private_to_stark_key(subkey))}"
        assert auth.headers["PARADEX-STARKNET-ACCOUNT"] == account
        assert _claims(token)["sub"] == account

    async def test_a_key_given_as_hex_text_or_secret_is_the_same_key(self) -> None:
        public_keys = {
            MockVenue().provider(private_key=value).public_key
            for value in (PRIVATE_KEY, hex(PRIVATE_KEY), str(PRIVATE_KEY), Secret(hex(PRIVATE_KEY)))
        }
        assert public_keys == {hex(private_to_stark_key(PRIVATE_KEY))}

    async def test_without_an_injected_client_each_mint_uses_its_own(self, monkeypatch: pytest.MonkeyPatch) -> None:
        venue = MockVenue()
        made: list[httpx.AsyncClient] = []
        real = httpx.AsyncClient

        def client_factory(**options: Any) -> httpx.AsyncClient:
            client = real(transport=httpx.MockTransport(venue.handle), **options)
            made.append(client)
            return client

        monkeypatch.setattr(starknet_module.httpx, "AsyncClient", client_factory)
        provider = StarknetKeyTokenProvider(
            account=ACCOUNT, private_key=PRIVATE_KEY, env="prod", wall_clock=lambda: venue.now
        )
        await provider.token()
        await provider.token(force_refresh=True)
        assert len(made) == 2
        assert all(client.is_closed for client in made)
        assert {str(request.url.copy_with(path="/")) for request in venue.requests} == {
            "https://api.prod.paradex.trade/"
        }


class TestRefresh:
    async def _setup(self, sim: ParadexSimulator, client: httpx.AsyncClient) -> StarknetKeyTokenProvider:
        account = sim.accounts[0]
        return sim_provider(sim, client, account=account, private_key=sim.new_starknet_key(account))

    @pytest.mark.parametrize(
        ("ttl_ms", "reused_for_ms"),
        [
            (300_000, 180_000),  # Paradex's 5 minutes: refresh at 3 minutes
            (100_000, 70_000),  # 30 s before the token's own exp
            (2_000, 1_000),  # short-lived: at half its life
        ],
    )
    async def test_a_token_is_reused_until_its_refresh_point(
        self, sim: ParadexSimulator, ttl_ms: int, reused_for_ms: int
    ) -> None:
        sim.jwt_ttl_ms = ttl_ms
        async with sim_client(sim) as client:
            provider = await self._setup(sim, client)
            first = await provider.token()
            sim.advance(reused_for_ms - 1)
            assert await provider.token() == first
            sim.advance(1)
            second = await provider.token()
        assert second != first
        assert sim.starknet_auth_counts() == {"ok": 2}

    async def test_an_expired_token_is_never_returned(self, sim: ParadexSimulator) -> None:
        async with sim_client(sim) as client:
            provider = await self._setup(sim, client)
            first = await provider.token()
            sim.advance(3_600_000)
            second = await provider.token()
            response = await client.get(f"{sim.rest_url}/positions", headers={"Authorization": f"Bearer {second}"})
        assert second != first
        assert response.status_code == 200

    async def test_force_refresh_mints_a_new_token(self, sim: ParadexSimulator) -> None:
        async with sim_client(sim) as client:
            provider = await self._setup(sim, client)
            first = await provider.token()
            assert await provider.token(force_refresh=True) != first
        assert provider.mints == 2

    async def test_concurrent_callers_share_one_mint(self, sim: ParadexSimulator) -> None:
        tokens: list[str] = []
        async with sim_client(sim) as client:
            provider = await self._setup(sim, client)

            async def call(*, force: bool) -> None:
                tokens.append(await provider.token(force_refresh=force))

            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(partial(call, force=False))
            assert len(set(tokens)) == 1
            assert provider.mints == 1
            # Ten callers told at once that the token was rejected: one new token for all.
            tokens.clear()
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(partial(call, force=True))
        assert len(set(tokens)) == 1
        assert provider.mints == 2
        assert sim.starknet_auth_counts() == {"ok": 2}

    @pytest.mark.parametrize(
        ("token", "reused_for"),
        [
            ("not-a-jwt", 180.0),  # unreadable: Paradex's 5 minutes assumed
            (_jwt({"sub": "0x1"}), 180.0),  # no exp
            (_jwt({"exp": "soon", "iat": 2_000_000_000}), 180.0),  # garbled exp
            (_jwt({"exp": 2_000_000_100}), 70.0),  # exp only: judged against the local minting time
            (_jwt({"exp": 1_000_000_000}), 180.0),  # exp in the past by our clock (skew): 5 minutes assumed
            (_jwt({"exp": 5_000_000_060, "iat": 5_000_000_000}), 30.0),  # venue clock far ahead: exp - iat counts
            (_jwt(["a", "list"]), 180.0),
            ("a.b@d.c", 180.0),
        ],
    )
    @pytest.mark.usefixtures("quick_sign")
    async def test_odd_tokens_still_get_a_sane_refresh_point(self, token: str, reused_for: float) -> None:
        venue = MockVenue()
        venue.token = token
        provider = venue.provider()
        assert await provider.token() == token
        venue.now += reused_for - 0.001
        await provider.token()
        assert provider.mints == 1
        venue.now += 0.001
        await provider.token()
        assert provider.mints == 2

    async def test_a_rest_401_forces_a_fresh_token_and_the_request_succeeds(self, sim: ParadexSimulator) -> None:
        account = sim.accounts[0]
        async with sim_client(sim) as client:
            inner = sim_provider(sim, client, account=account, private_key=sim.new_starknet_key(account))
            provider = RecordingProvider(inner)
            rest = ParadexRestClient(
                rest_url=sim.rest_url,
                account=account,
                token=provider,
                http_client=client,
                rate_limiter=TokenBucket(100, 100),
            )
            await rest.positions()
            sim.revoke_token(provider.calls[-1][1])  # the venue stops accepting it
            await rest.positions()
        assert [forced for forced, _ in provider.calls] == [False, False, True]
        assert inner.mints == 2

    async def test_a_failed_mint_is_not_cached(self, sim: ParadexSimulator) -> None:
        account = sim.accounts[0]
        async with sim_client(sim) as client:
            provider = sim_provider(sim, client, account=account, private_key=PRIVATE_KEY)
            with pytest.raises(AuthenticationError):
                await provider.token()
            sim.register_starknet_key(account, private_to_stark_key(PRIVATE_KEY))
            token = await provider.token()
        assert _claims(token)["sub"] == account


class TestVenueRefusals:
    """The simulator refuses; the provider raises AuthenticationError with the venue's code."""

    async def _refused(self, sim: ParadexSimulator, **options: Any) -> AuthenticationError:
        async with sim_client(sim) as client:
            provider = sim_provider(sim, client, **options)
            with pytest.raises(AuthenticationError) as caught:
                await provider.token()
        return caught.value

    async def test_a_bad_signature(self, sim: ParadexSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
        account = sim.accounts[0]
        key = sim.new_starknet_key(account)
        real_sign = starknet_module._sign
        monkeypatch.setattr(
            starknet_module, "_sign", lambda message_hash, private_key: real_sign(message_hash + 1, private_key)
        )
        error = await self._refused(sim, account=account, private_key=key)
        assert (error.code, error.status) == ("STARKNET_SIGNATURE_VERIFICATION_FAILED", 401)
        assert "did not accept the signature" in str(error)
        assert sim.starknet_auth_counts() == {"STARKNET_SIGNATURE_VERIFICATION_FAILED": 1}

    async def test_an_expired_signature(self, sim: ParadexSimulator) -> None:
        account = sim.accounts[0]
        key = sim.new_starknet_key(account)
        # The local clock is an hour behind: the 5-minute signature expired before it was sent.
        error = await self._refused(sim, account=account, private_key=key, wall_clock=sim_clock(sim, -3600))
        assert (error.code, error.status) == ("INVALID_STARKNET_SIGNATURE", 401)
        assert "signature expired" in str(error)

    async def test_the_wrong_account(self, sim: ParadexSimulator) -> None:
        key = sim.new_starknet_key(sim.accounts[0])
        error = await self._refused(sim, account=sim.accounts[1], private_key=key)
        assert (error.code, error.status) == ("STARKNET_SIGNATURE_VERIFICATION_FAILED", 401)
        assert sim.accounts[1] in str(error)

    async def test_an_account_that_was_never_onboarded(self, sim: ParadexSimulator) -> None:
        sim.new_starknet_key(sim.accounts[0])
        error = await self._refused(sim, account="0x1234", private_key=PRIVATE_KEY)
        assert error.code == "NOT_ONBOARDED"
        assert "has not been onboarded" in str(error)
        assert "/v1/onboarding" in str(error)

    async def test_a_clock_far_ahead(self, sim: ParadexSimulator) -> None:
        account = sim.accounts[0]
        key = sim.new_starknet_key(account)
        error = await self._refused(sim, account=account, private_key=key, wall_clock=sim_clock(sim, 3600))
        assert error.code == "INVALID_TIMESTAMP"
        assert "clock" in str(error)

    async def test_a_revoked_subkey(self, sim: ParadexSimulator) -> None:
        account = sim.accounts[0]
        subkey = sim.new_starknet_key(account, subkey=True)
        sim.revoke_starknet_key(private_to_stark_key(subkey))
        error = await self._refused(sim, account=account, private_key=subkey)
        assert error.code == "INVALID_SUBKEY"

    async def test_the_signature_quoted_back_is_redacted(self, sim: ParadexSimulator) -> None:
        # The venue sees the signature (it mints JWTs until it expires) and may quote it.
        account = sim.accounts[0]
        key = sim.new_starknet_key(account)
        sent: list[str] = []

        def echoing(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/system/config"):
                return httpx.Response(200, json={"starknet_chain_id": "PRIVATE_SN_POTC_SEPOLIA"})
            signature = request.headers["PARADEX-STARKNET-SIGNATURE"]
            r, s = json.loads(signature)
            sent.extend([r, s, hex(int(r)), hex(int(s))])
            return httpx.Response(
                400,
                json={
                    "error": f"INVALID_TIMESTAMP {r}",
                    "message": f"in the future (signature {signature}, s={hex(int(s))})",
                },
            )

        async with httpx.AsyncClient(transport=httpx.MockTransport(echoing)) as client:
            provider = sim_provider(sim, client, account=account, private_key=key)
            with pytest.raises(AuthenticationError) as caught:
                await provider.token()
        text = str(caught.value)
        assert "in the future" in text
        assert sent
        for part in sent:
            assert part not in text
            assert part[:20] not in text


@pytest.mark.usefixtures("quick_sign")
class TestOtherFailures:
    @pytest.mark.parametrize(
        ("answer", "error_type", "match"),
        [
            (
                httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "Too Many Requests"}),
                RateLimitedError,
                "429",
            ),
            (httpx.Response(503, json={"error": "SERVICE_UNAVAILABLE", "message": "down"}), VenueError, "503"),
            (httpx.Response(200, text="<html>hello</html>"), VenueError, "not JSON"),
            (httpx.Response(200, json={"token": "x"}), VenueError, "without a jwt_token"),
            (httpx.Response(200, json={"jwt_token": ""}), VenueError, "without a jwt_token"),
            (httpx.Response(403, json={"error": "GEO_IP_BLOCK", "message": "blocked"}), AuthenticationError, "region"),
            (httpx.Response(401, json={"message": "nope"}), AuthenticationError, "did not accept the signature"),
            (httpx.Response(400, text="garbage"), AuthenticationError, "HTTP 400"),
            (
                httpx.Response(403, text="<html><body>403 Forbidden (CloudFront)</body></html>"),
                AuthenticationError,
                (
                    r"HTTP 403: a body that is not JSON: '<html><body>403 Forbidden \(CloudFront\).*"
                    r"not an answer from Paradex's API: check rest_url"
                ),
            ),
        ],
    )
    async def test_auth_answers_map_to_library_errors(
        self, answer: httpx.Response, error_type: type[Exception], match: str
    ) -> None:
        venue = MockVenue()
        venue.auth = lambda: answer
        with pytest.raises(error_type, match=match) as caught:
            await venue.provider().token()
        if isinstance(caught.value, RateLimitedError):
            assert caught.value.retry_after == 7.0
        if error_type is VenueError:
            assert not isinstance(caught.value, AuthenticationError)

    @pytest.mark.parametrize(
        "answer",
        [
            httpx.Response(200, json={"environment": "testnet"}),
            httpx.Response(200, json={"starknet_chain_id": 5}),
            httpx.Response(200, json=["starknet_chain_id"]),
            httpx.Response(200, json={"starknet_chain_id": "X" * 40}),
            httpx.Response(500, json={"error": "INTERNAL_ERROR", "message": "boom"}),
        ],
    )
    async def test_an_unusable_system_config_is_a_venue_error(self, answer: httpx.Response) -> None:
        venue = MockVenue()
        venue.config = lambda: answer
        with pytest.raises(VenueError) as caught:
            await venue.provider().token()
        assert not isinstance(caught.value, AuthenticationError)

    async def test_an_unusable_chain_id_is_not_cached(self) -> None:
        venue = MockVenue()
        venue.config = lambda: httpx.Response(200, json={"starknet_chain_id": "É" * 5})
        provider = venue.provider()
        with pytest.raises(VenueError, match="unusable starknet_chain_id"):
            await provider.token()
        venue.config = lambda: httpx.Response(200, json={"starknet_chain_id": "PRIVATE_SN_POTC_SEPOLIA"})
        assert await provider.token() == venue.token
        assert await provider.chain_id() == "PRIVATE_SN_POTC_SEPOLIA"

    @pytest.mark.parametrize(
        ("failure", "error_type"),
        [(httpx.ConnectError("refused"), TransportError), (httpx.ReadTimeout("slow"), RequestTimeoutError)],
    )
    async def test_network_failures_are_transport_errors(self, failure: Exception, error_type: type[Exception]) -> None:
        venue = MockVenue()

        def fail() -> httpx.Response:
            raise failure

        venue.auth = fail
        with pytest.raises(error_type) as caught:
            await venue.provider().token()
        assert caught.value.__cause__ is failure


@pytest.mark.usefixtures("quick_sign")
class TestSecrets:
    SECRET_FORMS = (hex(PRIVATE_KEY), f"{PRIVATE_KEY:x}", str(PRIVATE_KEY), f"{PRIVATE_KEY:064x}")

    def _assert_clean(self, text: str) -> None:
        lowered = text.lower()
        for form in self.SECRET_FORMS:
            assert form.lower() not in lowered

    async def test_repr_shows_the_public_key_only(self) -> None:
        provider = MockVenue().provider()
        text = repr(provider)
        self._assert_clean(text)
        assert provider.public_key in text
        assert "Secret('***')" in text
        self._assert_clean(str(provider))
        assert not hasattr(provider, "__dict__")

    async def test_no_secret_in_logs_or_errors(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        venue = MockVenue()
        provider = venue.provider()
        token = await provider.token()
        venue.auth = lambda: httpx.Response(
            401, json={"error": "INVALID_STARKNET_SIGNATURE", "message": f"bad key {hex(PRIVATE_KEY)} / {PRIVATE_KEY}"}
        )
        with pytest.raises(AuthenticationError) as caught:
            await provider.token(force_refresh=True)
        self._assert_clean(str(caught.value))
        assert "***" in str(caught.value)
        assert "minted a Paradex JWT" in caplog.text
        self._assert_clean(caplog.text)
        assert token not in caplog.text
        assert token not in str(caught.value)

    async def test_it_cannot_be_pickled(self) -> None:
        with pytest.raises(TypeError, match="private key"):
            pickle.dumps(MockVenue().provider())

    @pytest.mark.parametrize(
        "private_key",
        ["0xnot-hex-0123456789abcdef", "12ab34cd-secretish", "0x" + "f" * 64, 0, -5, 2**300],
    )
    async def test_a_bad_key_is_refused_without_showing_it(self, private_key: object) -> None:
        with pytest.raises(UsageError) as caught:
            StarknetKeyTokenProvider(account=ACCOUNT, private_key=private_key)  # type: ignore[arg-type]
        assert str(private_key) not in str(caught.value)
        assert "0123456789abcdef" not in str(caught.value)
        assert "secretish" not in str(caught.value)


class TestUsage:
    async def test_a_missing_extra_names_what_to_install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in list(sys.modules):
            if name == "starknet_py" or name.startswith(("starknet_py.", "crypto_cpp_py")):
                monkeypatch.setitem(sys.modules, name, None)
        with pytest.raises(UsageError, match=re.escape(INSTALL_HINT)):
            StarknetKeyTokenProvider(account=ACCOUNT, private_key=PRIVATE_KEY)
        sim = ParadexSimulator(seed=1)
        with pytest.raises(UsageError, match=re.escape(INSTALL_HINT)):
            sim.register_starknet_key(sim.accounts[0], "0x1234")

    @pytest.mark.parametrize(
        ("options", "match"),
        [
            ({"env": "mainnet"}, "unknown Paradex environment"),
            ({"env": None}, "needs rest_url"),
            ({"rest_url": "ftp://x"}, "http"),
            ({"refresh_after": 0}, "refresh_after"),
            ({"refresh_margin": -1}, "refresh_margin"),
            ({"timeout": float("nan")}, "timeout"),
            ({"signature_ttl": 0}, "signature_ttl"),
            ({"signature_ttl": 8 * 86_400}, "signature_ttl"),
            ({"signature_ttl": 1.5}, "signature_ttl"),
            ({"wall_clock": 5}, "wall_clock"),
            ({"account": "alice"}, "hex Starknet address"),
        ],
    )
    async def test_bad_options_are_usage_errors(self, options: dict[str, Any], match: str) -> None:
        arguments: dict[str, Any] = {"account": ACCOUNT, "private_key": PRIVATE_KEY, **options}
        with pytest.raises(UsageError, match=match):
            StarknetKeyTokenProvider(**arguments)

    async def test_the_account_is_normalised(self) -> None:
        provider = StarknetKeyTokenProvider(account="0x00ABC", private_key=PRIVATE_KEY, env="testnet")
        assert provider.account == "0xabc"
        assert provider.rest_url == "https://api.testnet.paradex.trade/v1"
