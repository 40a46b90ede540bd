"""The simulator speaks the official wire formats: every body validates against Paradex's specs.

REST bodies are checked against the OpenAPI response schema of their path
(``$ref``s resolved). The OpenAPI schemas declare no required fields, so the
objects the WebSocket also carries (orders, fills, positions, account,
busts) are checked a second time against the AsyncAPI schemas, which list
required fields and forbid unknown ones. WebSocket notifications, the
``auth`` result and the ``subscribe`` ack are checked against the AsyncAPI.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest

from reconcile_paradex.testing import ParadexSimulator
from tests.paradex.simulator._helpers import (
    ALL_CHANNELS,
    TIMEOUT,
    asyncapi,
    authed_ws,
    openapi,
    openapi_response_schema,
)

jsonschema = pytest.importorskip("jsonschema")

pytestmark = pytest.mark.anyio

#: AsyncAPI schema of each object the REST endpoints return.
STRICT = {
    "/orders": "ResponsesOrderResp",
    "/orders/{order_id}": "ResponsesOrderResp",
    "/orders/by_client_id/{client_id}": "ResponsesOrderResp",
    "/orders-history": "ResponsesOrderResp",
    "/fills": "ResponsesFillResult",
    "/positions": "ResponsesPositionResp",
    "/tradebusts": "ResponsesTradebustResult",
    "/account": "ResponsesAccountSummaryResponse",
}
CHANNEL_SCHEMA = {
    "orders": "ResponsesOrderResp",
    "fills": "ResponsesFillResult",
    "positions": "ResponsesPositionResp",
    "tradebusts": "ResponsesTradebustResult",
    "account": "ResponsesAccountSummaryResponse",
}


_VALIDATORS: dict[int, Any] = {}


def _validate(schema: dict[str, Any], body: Any) -> None:
    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        validator = _VALIDATORS[id(schema)] = (jsonschema.Draft7Validator(schema), schema)
    errors = sorted(validator[0].iter_errors(body), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def _busy_simulator() -> ParadexSimulator:
    sim = ParadexSimulator(seed=31, accounts=2)
    sim.run_until(steps=1500)
    account = sim.accounts[0]
    venue = sim.venue
    # Make sure every shape occurs: a modified order, a client id, a stop order.
    order = venue.place_order(
        account, market="BTC-USD-PERP", side="BUY", size=Decimal(1), price=Decimal(90000), client_id="spec-1"
    )
    venue.accept_order(order.id)
    venue.modify_order(order.id, price=Decimal(91000))
    venue.place_order(
        account,
        market="ETH-USD-PERP",
        side="SELL",
        size=Decimal(1),
        order_type="STOP_MARKET",
        trigger_price=Decimal(3000),
        flags=["STOP_CONDITION_BELOW_TRIGGER"],
    )
    sim.advance(sim.max_settlement_lag_ms)
    return sim


async def test_rest_bodies_validate_against_openapi_and_asyncapi() -> None:
    spec = openapi()
    strict = asyncapi()["components"]["schemas"]
    sim = _busy_simulator()
    account = sim.accounts[0]
    truth = sim.truth(account)
    closed = next(o for o in truth.orders.values() if o.status == "CLOSED")
    modified = next(o for o in truth.orders.values() if o.request_info is not None)
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("/orders", "/orders", {}),
        ("/orders/{order_id}", f"/orders/{closed.id}", {}),
        ("/orders/{order_id}", f"/orders/{modified.id}", {}),
        ("/orders/by_client_id/{client_id}", "/orders/by_client_id/spec-1", {}),
        ("/orders-history", "/orders-history", {"page_size": 5000}),
        ("/fills", "/fills", {"page_size": 5000}),
        ("/fills", "/fills", {"page_size": 3}),
        ("/positions", "/positions", {}),
        ("/tradebusts", "/tradebusts", {}),
        ("/account", "/account", {}),
        ("/balance", "/balance", {}),
        ("/markets", "/markets", {}),
        ("/system/time", "/system/time", {}),
        ("/system/state", "/system/state", {}),
        ("/system/config", "/system/config", {}),
    ]
    headers = {"Authorization": f"Bearer {sim.issue_token(account)}"}
    schemas = {path: openapi_response_schema(spec, path) for path, _, _ in requests}
    seen_modify = False
    async with httpx.AsyncClient(transport=sim.http_transport(), base_url=sim.rest_url) as http:
        for spec_path, path, params in requests:
            response = await http.get(path, params=params, headers=headers)
            assert response.status_code == 200, (path, response.text)
            body = response.json()
            _validate(schemas[spec_path], body)
            if spec_path in STRICT:
                objects = body.get("results", [body])
                assert objects, path
                for item in objects:
                    _validate(strict[STRICT[spec_path]], item)
                    seen_modify |= "request_info" in item
        # Error bodies are ApiError.
        response = await http.get("/orders/1", headers=headers)
        _validate(openapi_response_schema(spec, "/orders/{order_id}", "400"), response.json())
        response = await http.get("/fills", params={"page_size": 0}, headers=headers)
        _validate(openapi_response_schema(spec, "/fills", "400"), response.json())
        response = await http.get("/account", headers={"Authorization": "Bearer nope"})
        _validate(openapi_response_schema(spec, "/account", "401"), response.json())
    assert seen_modify


async def test_ws_payloads_validate_against_asyncapi() -> None:
    document = asyncapi()
    strict = document["components"]["schemas"]
    channels = document["channels"]
    sim = ParadexSimulator(seed=32, accounts=1)
    account = sim.accounts[0]
    async with sim:
        client = await authed_ws(sim, sim.ws_connector, sim.ws_url, account, [])
        reply = await client.call("auth", {"bearer": sim.issue_token(account)}, 100)
        _validate(channels["/auth"]["subscribe"]["message"]["payload"], reply["result"])
        for number, channel in enumerate([*ALL_CHANNELS, "orders.SOL-USD-PERP"], start=1):
            request = {"channel": channel}
            _validate(channels["/subscribe"]["publish"]["message"]["payload"], request)
            reply = await client.call("subscribe", request, number)
            _validate(channels["/subscribe"]["subscribe"]["message"]["payload"], reply["result"])
        await sim.run(steps=800)
        seen: set[str] = set()
        with anyio.fail_after(TIMEOUT):
            while seen != set(CHANNEL_SCHEMA):
                note = await client.receive_json()
                assert note["jsonrpc"] == "2.0"
                assert note["method"] == "subscription"
                assert set(note["params"]) == {"channel", "data"}
                kind = note["params"]["channel"].split(".")[0]
                _validate(strict[CHANNEL_SCHEMA[kind]], note["params"]["data"])
                seen.add(kind)
        await client.aclose()
