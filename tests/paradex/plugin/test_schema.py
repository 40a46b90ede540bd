"""Objects generated from Paradex's official OpenAPI response schemas parse.

(Generated with :mod:`.schema_strategy`: hypothesis-jsonschema no longer
works with current Hypothesis.) Two levels:

* the raw spec: every documented GET response (``$ref``s resolved from
  ``components``) parses or raises only ``ParseError``. The raw spec marks no
  field required and types decimals as any string, so most raw objects are
  legitimately incomplete;
* the spec as the venue fills it: the same item schemas, with the official
  AsyncAPI ``required`` lists (the same objects on the stream), decimals as
  decimal strings (API.md §3.0) and integers within int64. These must *all*
  parse, except for combinations the spec allows but that are nonsense, each
  with its own precise oracle (an order whose remaining size exceeds its size;
  a position with no timestamp at all).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile_core import Source
from reconcile_core.errors import ParseError
from reconcile_paradex import (
    parse_account_summary,
    parse_balances,
    parse_fill,
    parse_fill_bust,
    parse_markets,
    parse_open_orders,
    parse_order,
    parse_page,
    parse_position,
    parse_positions,
    parse_server_time,
)

from .schema_strategy import from_schema
from .shared_files import asyncapi, openapi

_ANNOTATIONS = ("example", "description", "x-enum-varnames", "x-enum-comments", "x-enum-descriptions")


def resolve(schema: Any, components: dict[str, Any]) -> Any:
    """Inline every ``#/components/schemas/...`` reference; drop annotations hypothesis-jsonschema ignores."""
    if isinstance(schema, list):
        return [resolve(item, components) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return resolve(components[name], components)
    return {key: resolve(value, components) for key, value in schema.items() if key not in _ANNOTATIONS}


@cache
def _spec() -> dict[str, Any]:
    return openapi()


def response_schema(path: str) -> dict[str, Any]:
    spec = _spec()
    schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return resolve(schema, spec["components"]["schemas"])


def _fills(value: object) -> object:
    return parse_page(value, "fills", lambda r: parse_fill(r, account=None, source=Source.REST))


def _orders_page(value: object) -> object:
    return parse_page(value, "orders", lambda r: parse_order(r, source=Source.REST))


def _busts(value: object) -> object:
    return parse_page(value, "busts", lambda r: parse_fill_bust(r, account=None, source=Source.REST))


ENDPOINTS: dict[str, Callable[[object], object]] = {
    "/orders": parse_open_orders,
    "/orders/{order_id}": lambda v: parse_order(v, source=Source.REST),
    "/orders/by_client_id/{client_id}": lambda v: parse_order(v, source=Source.REST),
    "/orders-history": _orders_page,
    "/fills": _fills,
    "/positions": parse_positions,
    "/tradebusts": _busts,
    "/account": parse_account_summary,
    "/balance": parse_balances,
    "/markets": parse_markets,
    "/system/time": parse_server_time,
}


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(data=st.data())
def test_raw_spec_responses_parse_or_raise_only_parse_error(path: str, data: st.DataObject) -> None:
    value = data.draw(from_schema(response_schema(path)))
    with contextlib.suppress(ParseError):
        ENDPOINTS[path](value)


# -- the spec as the venue fills it ---------------------------------------------------

NON_NEGATIVE_DECIMALS = {"size", "remaining_size"}
DECIMAL_FIELDS = {
    "size", "remaining_size", "price", "avg_fill_price", "trigger_price", "fee", "realized_pnl", "realized_funding",
    "underlying_price", "average_entry_price", "average_entry_price_usd", "average_exit_price", "cost", "cost_usd",
    "cached_funding_index", "unrealized_pnl", "unrealized_funding_pnl", "realized_positional_pnl",
    "realized_positional_funding_pnl", "leverage", "liquidation_price",
}  # fmt: skip
# Decimals our parser needs; the others may be "" (absent), as the venue sends them.
REQUIRED_DECIMALS = {
    "responses.OrderResp": {"size", "remaining_size"},
    "responses.FillResult": {"price", "size"},
    "responses.PositionResp": {"size"},
}


@cache
def _asyncapi() -> dict[str, Any]:
    return asyncapi()


@cache
def venue_shaped(name: str) -> dict[str, Any]:
    """An item schema tightened by the documented conventions (see the module docstring)."""
    spec = _spec()
    schema = copy.deepcopy(resolve(spec["components"]["schemas"][name], spec["components"]["schemas"]))
    ws_name = "Responses" + name.removeprefix("responses.")
    schema["required"] = _asyncapi()["components"]["schemas"][ws_name]["required"]
    for field, prop in schema["properties"].items():
        if field in DECIMAL_FIELDS:
            fmt = "unsigned-decimal" if field in NON_NEGATIVE_DECIMALS else "decimal"
            optional = field not in REQUIRED_DECIMALS.get(name, set())
            prop["format"] = f"{fmt}-or-empty" if optional else fmt
        elif prop.get("type") == "integer":
            prop.update(minimum=0, maximum=2**63 - 1)
        elif prop.get("type") == "string" and "enum" not in prop and "allOf" not in prop:
            prop.update(minLength=1, maxLength=40)
    return schema


def _order_oracle(item: dict[str, Any]) -> str | None:
    if Decimal(item["remaining_size"]) > Decimal(item["size"]):
        return "remaining_size"
    return None


def _position_oracle(item: dict[str, Any]) -> str | None:
    # Without a time, and with no snapshot reading to date it by (a WebSocket update).
    if not {"last_updated_at", "created_at", "closed_at"} & set(item):
        return "last_updated_at"
    return None


ITEMS: dict[str, tuple[Callable[[object], object], Callable[[dict[str, Any]], str | None]]] = {
    "responses.OrderResp": (lambda v: parse_order(v, source=Source.WS), _order_oracle),
    "responses.FillResult": (lambda v: parse_fill(v, account=None, source=Source.WS), lambda _: None),
    "responses.PositionResp": (lambda v: parse_position(v, source=Source.WS), _position_oracle),
    "responses.TradebustResult": (lambda v: parse_fill_bust(v, account=None, source=Source.WS), lambda _: None),
}


@pytest.mark.parametrize("name", sorted(ITEMS))
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_venue_shaped_spec_objects_all_parse(name: str, data: st.DataObject) -> None:
    items = data.draw(st.lists(from_schema(venue_shaped(name)), min_size=1, max_size=5))
    parse, oracle = ITEMS[name]
    for item in items:
        expected_failure = oracle(item)
        if expected_failure is None:
            parsed = parse(item)
            assert parsed is not None
            continue
        with pytest.raises(ParseError) as caught:
            parse(item)
        assert caught.value.field == expected_failure


def test_the_venue_shaped_schemas_keep_the_official_required_lists() -> None:
    order = venue_shaped("responses.OrderResp")
    assert {"id", "market", "side", "type", "size", "remaining_size", "status", "created_at"} <= set(order["required"])
    fill = venue_shaped("responses.FillResult")
    assert {"id", "fill_type", "account", "market", "price", "size", "created_at"} <= set(fill["required"])
