"""The signed auth message (API.md §2.2): typed data, message hash, signature, headers."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("starknet_py", reason="needs the 'starknet' extra: pip install 'reconcile-trading[starknet]'")

from starknet_py.cairo.felt import encode_shortstring
from starknet_py.hash.utils import compute_hash_on_elements, private_to_stark_key, verify_message_signature
from starknet_py.utils.typed_data import TypedData

from reconcile_core.errors import UsageError
from reconcile_paradex import StarknetKeyTokenProvider, auth_message_hash, auth_typed_data
from reconcile_paradex._starknet import _sign

ACCOUNT = "0x495d2eb5236a12b8b4ad7d3849ce6a203ce21c43f473c248dfd5ce70d9454fa"
CHAIN_ID = "PRIVATE_SN_POTC_SEPOLIA"
TIMESTAMP = 1_681_452_607
EXPIRATION = 1_681_452_907
PRIVATE_KEY = 0x3C1E9550E66958296D11B60F8E8E7A7AD990D07FA65D5F7652C4A6C87D4E3CC

#: The message exactly as API.md §2.2 writes it, with the fixed inputs filled in.
API_MD_MESSAGE: dict[str, Any] = {
    "domain": {"name": "Paradex", "chainId": hex(int.from_bytes(CHAIN_ID.encode(), "big")), "version": "1"},
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
    "message": {"method": "POST", "path": "/v1/auth", "body": "", "timestamp": TIMESTAMP, "expiration": EXPIRATION},
}

#: Precomputed in API.md §2.2 (pure-Python keccak, independent of starknet-py).
DOMAIN_TYPE_HASH = 0x98D1932052FC5137543DE5ED85B7A88555A4CD1FF5D5BFEDB62ED9B9A1F0DB
REQUEST_TYPE_HASH = 0x186CDEF6B179923C411C13C11B8A825F12BF34203BDDA0A984DA9D6F2313C2
#: What the computations below agree on, pinned against silent drift.
PINNED_HASH = 0x47DE38C6CB4F158B25747998FC62DC05B266595348E78AFDD0C4905829743CC
SHORT_STRINGS = {
    "StarkNet Message": 0x537461726B4E6574204D657373616765,
    "Paradex": 0x50617261646578,
    "POST": 0x504F5354,
    "/v1/auth": 0x2F76312F61757468,
}


def _hash() -> int:
    return auth_message_hash(account=ACCOUNT, chain_id=CHAIN_ID, timestamp=TIMESTAMP, expiration=EXPIRATION)


def test_the_typed_data_is_the_documented_message() -> None:
    assert auth_typed_data(chain_id=CHAIN_ID, timestamp=TIMESTAMP, expiration=EXPIRATION) == API_MD_MESSAGE


def test_the_message_hash_equals_starknet_pys_typed_data_built_from_api_md() -> None:
    independent = TypedData.from_dict(API_MD_MESSAGE).message_hash(int(ACCOUNT, 16))  # type: ignore[arg-type]
    assert _hash() == independent


def test_the_type_hashes_and_short_strings_match_the_values_precomputed_in_api_md() -> None:
    typed = TypedData.from_dict(API_MD_MESSAGE)  # type: ignore[arg-type]
    assert typed.type_hash("StarkNetDomain") == DOMAIN_TYPE_HASH
    assert typed.type_hash("Request") == REQUEST_TYPE_HASH
    for text, value in SHORT_STRINGS.items():
        assert encode_shortstring(text) == value


def test_the_message_hash_equals_the_hash_chain_spelled_out_in_api_md() -> None:
    # H(x1..xn) = pedersen chain with the length last; hash_struct(T, v) = H(type_hash(T), enc(v)...);
    # "1" (version) is all digits: it encodes as 1; "" encodes as 0.
    chain = int.from_bytes(CHAIN_ID.encode(), "big")
    domain = compute_hash_on_elements([DOMAIN_TYPE_HASH, SHORT_STRINGS["Paradex"], chain, 1])
    request = compute_hash_on_elements(
        [REQUEST_TYPE_HASH, SHORT_STRINGS["POST"], SHORT_STRINGS["/v1/auth"], 0, TIMESTAMP, EXPIRATION]
    )
    expected = compute_hash_on_elements([SHORT_STRINGS["StarkNet Message"], domain, int(ACCOUNT, 16), request])
    assert _hash() == expected


def test_the_message_hash_is_pinned() -> None:
    # A regression guard: the value the three computations above agree on.
    assert _hash() == PINNED_HASH


def test_every_input_changes_the_hash() -> None:
    base = _hash()
    changed = [
        auth_message_hash(
            account=hex(int(ACCOUNT, 16) + 1), chain_id=CHAIN_ID, timestamp=TIMESTAMP, expiration=EXPIRATION
        ),
        auth_message_hash(
            account=ACCOUNT, chain_id="PRIVATE_SN_PARACLEAR_MAINNET", timestamp=TIMESTAMP, expiration=EXPIRATION
        ),
        auth_message_hash(account=ACCOUNT, chain_id=CHAIN_ID, timestamp=TIMESTAMP + 1, expiration=EXPIRATION),
        auth_message_hash(account=ACCOUNT, chain_id=CHAIN_ID, timestamp=TIMESTAMP, expiration=EXPIRATION + 1),
    ]
    assert base not in changed
    assert len(set(changed)) == len(changed)


def test_a_produced_signature_verifies_against_the_public_key() -> None:
    message_hash = _hash()
    r, s = _sign(message_hash, PRIVATE_KEY)
    public_key = private_to_stark_key(PRIVATE_KEY)
    assert verify_message_signature(message_hash, [r, s], public_key)
    # ...and only for that message and that key.
    assert not verify_message_signature(message_hash + 1, [r, s], public_key)
    assert not verify_message_signature(message_hash, [r, s], private_to_stark_key(PRIVATE_KEY + 1))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"chain_id": ""}, "chain_id"),
        ({"chain_id": "X" * 32}, "short string"),
        ({"chain_id": "PARADEX_É"}, "short string"),
        ({"timestamp": 1.5}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"expiration": -1}, "expiration"),
        ({"account": "495d2e"}, "hex Starknet address"),
        ({"account": "0xZZ"}, "hex Starknet address"),
        ({"account": "0x0"}, "not a Starknet address"),
    ],
)
def test_bad_inputs_are_usage_errors(changes: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {
        "account": ACCOUNT,
        "chain_id": CHAIN_ID,
        "timestamp": TIMESTAMP,
        "expiration": EXPIRATION,
        **changes,
    }
    with pytest.raises(UsageError, match=match):
        auth_message_hash(**arguments)


def test_the_signature_header_is_a_json_array_of_two_decimal_strings() -> None:
    provider = StarknetKeyTokenProvider(account=ACCOUNT, private_key=PRIVATE_KEY)
    headers = provider._signed_headers(CHAIN_ID, TIMESTAMP, EXPIRATION)
    assert headers["PARADEX-STARKNET-ACCOUNT"] == ACCOUNT
    assert headers["PARADEX-TIMESTAMP"] == str(TIMESTAMP)
    assert headers["PARADEX-SIGNATURE-EXPIRATION"] == str(EXPIRATION)
    r, s = json.loads(headers["PARADEX-STARKNET-SIGNATURE"])
    assert r.isdigit()
    assert s.isdigit()
    assert verify_message_signature(_hash(), [int(r), int(s)], private_to_stark_key(PRIVATE_KEY))
