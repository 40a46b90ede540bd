"""The simulator's ``POST /v1/auth``: requests signed here with starknet-py directly, not with the provider."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

pytest.importorskip("starknet_py", reason="needs the 'starknet' extra: pip install 'reconcile-trading[starknet]'")

from starknet_py.cairo.felt import encode_shortstring
from starknet_py.hash.utils import message_signature, private_to_stark_key
from starknet_py.utils.typed_data import TypedData

from reconcile_core.errors import UsageError
from reconcile_paradex import StarknetKeyTokenProvider
from reconcile_paradex.testing import ParadexSimulator

from ..simulator._helpers import open_ws
from ._support import sim_clock

pytestmark = pytest.mark.anyio

CHAIN_ID = "PRIVATE_SN_PARACLEAR_SIMULATOR"


def signed_headers(
    account: str, private_key: int, *, timestamp: int, expiration: int, chain_id: str = CHAIN_ID
) -> dict[str, str]:
    document: Any = {
        "domain": {"name": "Paradex", "chainId": hex(encode_shortstring(chain_id)), "version": "1"},
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
        "message": {"method": "POST", "path": "/v1/auth", "body": "", "timestamp": timestamp, "expiration": expiration},
    }
    r, s = message_signature(TypedData.from_dict(document).message_hash(int(account, 16)), private_key)
    return {
        "PARADEX-STARKNET-ACCOUNT": account,
        "PARADEX-STARKNET-SIGNATURE": json.dumps([str(r), str(s)]),
        "PARADEX-TIMESTAMP": str(timestamp),
        "PARADEX-SIGNATURE-EXPIRATION": str(expiration),
    }


class Venue:
    def __init__(self, sim: ParadexSimulator) -> None:
        self.sim = sim
        self.account = sim.accounts[0]
        self.key = sim.new_starknet_key(self.account)
        self.public_key = hex(private_to_stark_key(self.key))

    def headers(self, *, key: int | None = None, account: str | None = None, **changes: Any) -> dict[str, str]:
        now = self.sim.now // 1000
        arguments: dict[str, Any] = {"timestamp": now, "expiration": now + 300, **changes}
        return signed_headers(account or self.account, self.key if key is None else key, **arguments)

    async def post(self, headers: dict[str, str], *, path: str | None = None) -> httpx.Response:
        async with httpx.AsyncClient(transport=self.sim.http_transport()) as client:
            return await client.post(
                f"{self.sim.rest_url}/auth/{self.public_key if path is None else path}", headers=headers
            )


@pytest.fixture
def venue() -> Venue:
    return Venue(ParadexSimulator(seed=5, accounts=2))


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error", "message", "data"}
    assert body["data"] is None
    return response.status_code, body["error"]


async def test_a_good_request_gets_a_jwt_for_the_account(venue: Venue) -> None:
    response = await venue.post(venue.headers())
    assert response.status_code == 200
    token = response.json()["jwt_token"]
    async with httpx.AsyncClient(transport=venue.sim.http_transport()) as client:
        orders = await client.get(f"{venue.sim.rest_url}/orders", headers={"Authorization": f"Bearer {token}"})
    assert orders.status_code == 200
    assert venue.sim.starknet_auth_counts() == {"ok": 1}


async def test_plain_v1_auth_uses_the_accounts_main_key(venue: Venue) -> None:
    async with httpx.AsyncClient(transport=venue.sim.http_transport()) as client:
        response = await client.post(f"{venue.sim.rest_url}/auth", headers=venue.headers())
    assert response.status_code == 200


async def test_the_jwt_lives_jwt_ttl_ms_of_virtual_time(venue: Venue) -> None:
    venue.sim.jwt_ttl_ms = 2_000
    token = (await venue.post(venue.headers())).json()["jwt_token"]
    async with httpx.AsyncClient(transport=venue.sim.http_transport()) as client:

        async def status() -> int:
            response = await client.get(f"{venue.sim.rest_url}/orders", headers={"Authorization": f"Bearer {token}"})
            return response.status_code

        venue.sim.advance(1_999)
        assert await status() == 200
        venue.sim.advance(1)
        assert await status() == 401


async def test_the_minted_jwt_authenticates_a_websocket(venue: Venue) -> None:
    token = (await venue.post(venue.headers())).json()["jwt_token"]
    async with venue.sim:
        client = await open_ws(venue.sim.ws_connector, venue.sim.ws_url)
        reply = await client.call("auth", {"bearer": token}, 1)
        await client.aclose()
    assert "result" in reply


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad signature", (401, "STARKNET_SIGNATURE_VERIFICATION_FAILED")),
        ("signed for another chain", (401, "STARKNET_SIGNATURE_VERIFICATION_FAILED")),
        ("signed with another key", (401, "STARKNET_SIGNATURE_VERIFICATION_FAILED")),
        ("expired", (401, "INVALID_STARKNET_SIGNATURE")),
        ("wrong account", (401, "STARKNET_SIGNATURE_VERIFICATION_FAILED")),
        ("unknown account", (400, "NOT_ONBOARDED")),
        ("unknown key", (401, "STARKNET_SIGNATURE_VERIFICATION_FAILED")),
        ("future timestamp", (400, "INVALID_TIMESTAMP")),
        ("expiration before timestamp", (400, "INVALID_REQUEST_PARAMETER")),
        ("expiration beyond a week", (400, "INVALID_REQUEST_PARAMETER")),
        ("missing header", (400, "VALIDATION_ERROR")),
        ("signature not a pair", (400, "INVALID_STARKNET_SIGNATURE")),
        ("signature not json", (400, "INVALID_STARKNET_SIGNATURE")),
        ("signature zero", (400, "INVALID_STARKNET_SIGNATURE")),
        ("timestamp not a number", (400, "VALIDATION_ERROR")),
        ("account not hex", (400, "VALIDATION_ERROR")),
        ("path key not hex", (400, "VALIDATION_ERROR")),
    ],
)
async def test_refusals_look_like_paradex_errors(venue: Venue, case: str, expected: tuple[int, str]) -> None:
    sim = venue.sim
    now = sim.now // 1000
    path = None
    headers = venue.headers()
    if case == "bad signature":
        r, s = json.loads(headers["PARADEX-STARKNET-SIGNATURE"])
        headers["PARADEX-STARKNET-SIGNATURE"] = json.dumps([r, str(int(s) + 1)])
    elif case == "signed for another chain":
        headers = venue.headers(chain_id="PRIVATE_SN_POTC_SEPOLIA")
    elif case == "signed with another key":
        headers = venue.headers(key=venue.key + 1)
    elif case == "expired":
        headers = venue.headers(timestamp=now - 600, expiration=now - 300)
    elif case == "wrong account":
        headers = venue.headers(account=sim.accounts[1])
    elif case == "unknown account":
        headers = venue.headers(account="0x1234")
    elif case == "unknown key":
        path = hex(private_to_stark_key(venue.key + 1))
        headers = venue.headers(key=venue.key + 1)
    elif case == "future timestamp":
        headers = venue.headers(timestamp=now + 3600, expiration=now + 3900)
    elif case == "expiration before timestamp":
        headers = venue.headers(timestamp=now, expiration=now)
    elif case == "expiration beyond a week":
        headers = venue.headers(timestamp=now, expiration=now + 8 * 86_400)
    elif case == "missing header":
        del headers["PARADEX-TIMESTAMP"]
    elif case == "signature not a pair":
        headers["PARADEX-STARKNET-SIGNATURE"] = json.dumps(["1", "2", "3"])
    elif case == "signature not json":
        headers["PARADEX-STARKNET-SIGNATURE"] = "r,s"
    elif case == "signature zero":
        headers["PARADEX-STARKNET-SIGNATURE"] = json.dumps(["0", "0"])
    elif case == "timestamp not a number":
        headers["PARADEX-TIMESTAMP"] = "soon"
    elif case == "account not hex":
        headers["PARADEX-STARKNET-ACCOUNT"] = "alice"
    elif case == "path key not hex":
        path = "alice"
    response = await venue.post(headers, path=path)
    assert _error(response) == expected
    assert sim.starknet_auth_counts() == {expected[1]: 1}
    assert sim.server_errors == ()


async def test_a_subkey_signs_for_its_main_account_until_revoked(venue: Venue) -> None:
    sim = venue.sim
    subkey = sim.new_starknet_key(venue.account, subkey=True)
    sub_public = hex(private_to_stark_key(subkey))
    assert (await venue.post(venue.headers(key=subkey), path=sub_public)).status_code == 200
    # The subkey's path with a signature by the main key does not verify.
    assert _error(await venue.post(venue.headers(), path=sub_public)) == (401, "STARKNET_SIGNATURE_VERIFICATION_FAILED")
    sim.revoke_starknet_key(sub_public)
    assert _error(await venue.post(venue.headers(key=subkey), path=sub_public)) == (401, "INVALID_SUBKEY")


async def test_a_signature_stays_valid_until_its_expiration(venue: Venue) -> None:
    headers = venue.headers()
    venue.sim.advance(299_999)
    assert (await venue.post(headers)).status_code == 200
    venue.sim.advance(1)
    assert _error(await venue.post(headers)) == (401, "INVALID_STARKNET_SIGNATURE")


def test_registering_keys_is_checked() -> None:
    sim = ParadexSimulator(seed=6, accounts=2)
    first, second = sim.accounts
    key = sim.new_starknet_key(first)
    public_key = private_to_stark_key(key)
    sim.register_starknet_key(first, public_key)  # the same registration again is fine
    with pytest.raises(UsageError, match="unknown account"):
        sim.register_starknet_key("0x1234", 5)
    with pytest.raises(UsageError, match="already registered"):
        sim.register_starknet_key(second, public_key)
    with pytest.raises(UsageError, match="already has the main key"):
        sim.register_starknet_key(first, hex(public_key + 1))
    with pytest.raises(UsageError, match="not registered"):
        sim.revoke_starknet_key(7)
    with pytest.raises(UsageError, match="hex"):
        sim.register_starknet_key(first, "five")
    with pytest.raises(UsageError, match="jwt_ttl_ms"):
        sim.jwt_ttl_ms = 0
    # Keys are deterministic per seed.
    assert ParadexSimulator(seed=6, accounts=2).new_starknet_key(first) == key
    assert "key" not in repr(sim).lower()


async def test_the_provider_works_against_the_loopback_server() -> None:
    sim = ParadexSimulator(seed=8)
    account = sim.accounts[0]
    key = sim.new_starknet_key(account)
    async with sim.serve_loopback() as (rest_url, _ws_url), httpx.AsyncClient() as client:
        provider = StarknetKeyTokenProvider(
            account=account, private_key=key, env=None, rest_url=rest_url, http_client=client, wall_clock=sim_clock(sim)
        )
        token = await provider.token()
        response = await client.get(f"{rest_url}/positions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert sim.starknet_auth_counts() == {"ok": 1}


def test_accounts_that_are_not_addresses_cannot_register_keys_but_the_simulator_works() -> None:
    sim = ParadexSimulator(seed=6, accounts=["alice", "0xabc"])
    with pytest.raises(UsageError, match="not a Starknet address"):
        sim.new_starknet_key("alice")
    sim.new_starknet_key("0xabc")


def test_wall_clock_is_the_virtual_clock_in_seconds() -> None:
    sim = ParadexSimulator(seed=6, start_ms=1_900_000_000_250)
    assert sim.wall_clock() == 1_900_000_000.25
    sim.advance(750)
    assert sim.wall_clock() == 1_900_000_001.0
