"""The Paradex WebSocket client against the fake venue over in-memory byte streams."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import anyio
import anyio.abc
import pytest

from reconcile_core import (
    Discrepancy,
    DiscrepancyKind,
    Fill,
    FillBust,
    FillKind,
    Order,
    OrderStatus,
    Position,
    Side,
    Source,
)
from reconcile_core.errors import AuthenticationError, ConnectionLostError, ReconcileError, TransportError, VenueError
from reconcile_core.typing import Hint
from reconcile_paradex import DEFAULT_CHANNELS, CallableTokenProvider, WebSocketSettings

from .fake_venue import (
    ACCOUNT,
    FakeParadex,
    bust_payload,
    fill_payload,
    order_payload,
    paradex_source,
    position_payload,
    token_minter,
)

pytestmark = pytest.mark.anyio


async def next_hint(hints: AsyncIterator[Hint]) -> Hint:
    with anyio.fail_after(5):
        return await anext(hints)


async def test_subscribe_authenticates_and_subscribes_every_channel_once() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        # Entering returned: every channel is acked already.
        assert dict(fake.subscribe_counts) == dict.fromkeys(DEFAULT_CHANNELS, 1)
        (session,) = fake.sessions
        assert session.authed
        assert session.token in fake.valid_tokens
        assert hints is not None


async def test_notifications_become_ws_hints_in_order() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push("orders.ALL", order_payload("o1", status="NEW"))
        await fake.push("fills.ALL", fill_payload("f1", fill_type="TRANSFER"))
        await fake.push("positions", position_payload("BTC-USD-PERP", "-0.5"))
        await fake.push("tradebusts", bust_payload("f1"))
        await fake.push("account", {"account": ACCOUNT, "account_value": "12.5", "updated_at": 3})
        await fake.push("orders.ALL", order_payload("o1", status="CLOSED", remaining_size="0"))

        order = await next_hint(hints)
        assert isinstance(order, Order)
        assert (order.order_id, order.status, order.source) == ("o1", OrderStatus.NEW, Source.WS)
        fill = await next_hint(hints)
        assert isinstance(fill, Fill)
        assert fill.key.fill_type == "UNWIND_TRANSFER"
        assert fill.kind is FillKind.TRANSFER
        assert fill.key.account == ACCOUNT
        position = await next_hint(hints)
        assert isinstance(position, Position)
        assert position.size == Decimal("-0.5")
        bust = await next_hint(hints)
        assert isinstance(bust, FillBust)
        assert bust.fill_id == "f1"
        # the account summary is not a hint: the next hint is the closed order
        closed = await next_hint(hints)
        assert isinstance(closed, Order)
        assert closed.status is OrderStatus.FILLED
        assert source.account_summary is not None
        assert source.account_summary.account_value == Decimal("12.5")


async def test_unknown_enum_values_give_the_value_and_a_discrepancy() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push("fills.ALL", fill_payload("f9", fill_type="FUNDING_SWAP", side="HOLD"))
        fill = await next_hint(hints)
        assert isinstance(fill, Fill)
        assert fill.kind is FillKind.UNKNOWN
        assert fill.side is Side.UNKNOWN
        assert fill.key.fill_type == "FUNDING_SWAP"
        problems = [await next_hint(hints), await next_hint(hints)]
        assert all(isinstance(p, Discrepancy) and p.kind is DiscrepancyKind.UNKNOWN_VALUE for p in problems)
        assert {p.seen for p in problems if isinstance(p, Discrepancy)} == {"FUNDING_SWAP", "HOLD"}


def fill_notification(members: str) -> str:
    """A ``fills.ALL`` notification of fill ``f1`` with extra JSON-RPC ``members`` (``'"result":null,'``)."""
    data = json.dumps(fill_payload("f1"))
    return (
        '{"jsonrpc":"2.0",' + members + '"method":"subscription","params":{"channel":"fills.ALL","data":' + data + "}}"
    )


@pytest.mark.parametrize("members", ['"result":null,', '"error":null,', '"result":null,"error":null,'])
async def test_a_notification_with_null_result_or_error_members_is_still_a_notification(members: str) -> None:
    # Some JSON-RPC servers write every member; null is no answer, so the fill must not be dropped.
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push_text(fill_notification(members))
        fill = await next_hint(hints)
    assert isinstance(fill, Fill)
    assert fill.key.fill_id == "f1"


@pytest.mark.parametrize("result", ["{}", "true", '"ok"'])
async def test_a_notification_that_also_carries_a_result_is_reported_not_dropped(result: str) -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push_text(fill_notification(f'"result":{result},'))
        await fake.push("orders.ALL", order_payload("o1"))
        problem = await next_hint(hints)
        assert isinstance(problem, Discrepancy)
        assert problem.kind is DiscrepancyKind.MALFORMED_MESSAGE
        assert "also carries result or error" in problem.detail
        assert isinstance(await next_hint(hints), Order)


async def test_a_token_echoed_in_a_channel_name_is_redacted_from_the_discrepancy() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        token = fake.ws_auth_tokens[-1]
        await fake.push_text(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "subscription",
                    "params": {"channel": "fills." + token, "data": {"id": "f1", "echo": token}},
                }
            )
        )
        problem = await next_hint(hints)
    assert isinstance(problem, Discrepancy)
    assert problem.subject.startswith("WebSocket fills.")
    assert all(token not in text for text in (problem.subject, problem.detail, problem.seen or ""))


async def test_an_unsolicited_error_with_a_huge_code_is_reported_in_short_without_stalling() -> None:
    # A megabyte of "eyJeyJ...": the JWT pattern took quadratic time over it (minutes, with
    # the event loop blocked); the code is cut before anything is redacted.
    fake = FakeParadex()
    code = "eyJ" * 350_000
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push_text('{"jsonrpc":"2.0","id":null,"error":{"code":"' + code + '","message":"x"}}')
        await fake.push("orders.ALL", order_payload("o1"))
        with anyio.fail_after(30):  # a guard for the old behaviour, not a measurement
            problem = await next_hint(hints)
            assert isinstance(await next_hint(hints), Order)
    assert isinstance(problem, Discrepancy)
    assert problem.detail.startswith("unsolicited JSON-RPC error eyJeyJ")
    assert len(problem.detail) < 100


@pytest.mark.parametrize("spelling", ["{}.0", "{}e0", "{}.00"])
async def test_an_answer_spelling_the_id_as_another_json_number_still_answers_the_call(spelling: str) -> None:
    # JSON has one number type: 1.0 is the id 1 the client sent.
    fake = FakeParadex()
    fake.ws_id_spelling = spelling.format
    settings = WebSocketSettings(rpc_timeout=5)
    async with paradex_source(fake, ws_settings=settings) as source, source.subscribe() as hints:
        await fake.push("orders.ALL", order_payload("o1"))
        assert isinstance(await next_hint(hints), Order)
    assert fake.ws_connections == 1


async def test_orders_and_positions_of_another_account_are_discrepancies_not_hints() -> None:
    # Fills, busts and summaries were checked; orders and positions were taken as this account's.
    fake = FakeParadex()
    same = ACCOUNT.upper().replace("0X", "0x0")  # this account, written otherwise
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push("orders.ALL", order_payload("o9", account="0xdeadbeef"))
        await fake.push("positions", position_payload("ETH-USD-PERP", "3", account="0xdeadbeef"))
        await fake.push("orders.ALL", order_payload("o1", account=same))
        await fake.push("positions", position_payload("BTC-USD-PERP", "1", account=same))
        for _ in range(2):
            problem = await next_hint(hints)
            assert isinstance(problem, Discrepancy)
            assert problem.kind is DiscrepancyKind.MALFORMED_MESSAGE
            assert "0xdeadbeef" in problem.detail
        order = await next_hint(hints)
        assert isinstance(order, Order)
        assert order.order_id == "o1"
        position = await next_hint(hints)
        assert isinstance(position, Position)
        assert position.instrument == "BTC-USD-PERP"


async def test_an_account_summary_of_another_account_is_a_discrepancy_not_the_summary() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push("account", {"account": "0xdeadbeef", "account_value": "999999", "updated_at": 3})
        await fake.push(
            "account", {"account": ACCOUNT.upper().replace("0X", "0x0"), "account_value": "12.5", "updated_at": 4}
        )
        await fake.push("orders.ALL", order_payload("o1"))
        problem = await next_hint(hints)
        assert isinstance(problem, Discrepancy)
        assert problem.kind is DiscrepancyKind.MALFORMED_MESSAGE
        assert "0xdeadbeef" in problem.detail
        assert isinstance(await next_hint(hints), Order)  # the second summary is this account's: no hint
    assert source.account_summary is not None
    assert source.account_summary.account_value == Decimal("12.5")


async def test_a_json_rpc_batch_of_notifications_gives_each_one() -> None:
    # JSON-RPC 2.0 lets a server send several messages as one array.
    fake = FakeParadex()
    order = json.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "orders.ALL", "data": order_payload("o1")}}
    )
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push_text(f"[{fill_notification('')}, {order}, 7]")
        first, second, third = [await next_hint(hints) for _ in range(3)]
    assert isinstance(first, Fill)
    assert first.key.fill_id == "f1"
    assert isinstance(second, Order)
    assert second.order_id == "o1"
    assert isinstance(third, Discrepancy)
    assert "must be an object" in third.detail


async def test_malformed_json_is_a_discrepancy_and_the_stream_goes_on() -> None:
    fake = FakeParadex()
    jwt_like = "eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiIweDEifQ.c2lnbmF0dXJl"
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push_text('{"jsonrpc":"2.0","method":"subscription", "params": {"bearer": "' + jwt_like + '", ')
        await fake.push("fills.ALL", {"id": "f1"})  # valid JSON, not a fill
        await fake.push("orders.ALL", order_payload("o2"))
        first = await next_hint(hints)
        assert isinstance(first, Discrepancy)
        assert first.kind is DiscrepancyKind.MALFORMED_MESSAGE
        assert first.seen is not None
        assert jwt_like not in first.seen
        assert "subscription" in first.seen
        second = await next_hint(hints)
        assert isinstance(second, Discrepancy)
        assert second.kind is DiscrepancyKind.MALFORMED_MESSAGE
        assert "fill_type" in second.detail or "market" in second.detail
        third = await next_hint(hints)
        assert isinstance(third, Order)
        assert third.order_id == "o2"


async def test_a_token_is_asked_for_at_every_connection() -> None:
    fake = FakeParadex()
    mint = token_minter(fake)

    class EveryCallNew:
        async def token(self, *, force_refresh: bool = False) -> str:
            return mint()

    async with paradex_source(fake, token=EveryCallNew()) as source:
        for _ in range(3):
            async with source.subscribe():
                pass
    assert fake.ws_connections == 3
    assert len(set(fake.ws_auth_tokens)) == 3


async def test_a_failing_provider_of_your_own_is_an_authentication_error_on_connect() -> None:
    fake = FakeParadex()
    key = "0xDEADBEEFSECRETKEYMATERIAL123456"

    class Broken:
        async def token(self, *, force_refresh: bool = False) -> str:
            raise RuntimeError(f"vault unreachable; key {key}")

    async with paradex_source(fake, token=Broken()) as source:
        with pytest.raises(AuthenticationError, match="RuntimeError") as caught:
            async with source.subscribe():
                pass
    assert key not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert not any(session.authed for session in fake.sessions)


@pytest.mark.parametrize("code", [[40111], {"n": 40111}, "40111", None, 1.5])
async def test_an_error_code_that_is_no_int_is_a_library_error(code: object) -> None:
    fake = FakeParadex()
    fake.ws_auth_replies.append(lambda token: {"error": {"code": code, "message": "refused"}})
    async with paradex_source(fake) as source:
        with pytest.raises(ReconcileError) as caught:
            async with source.subscribe():
                pass
    assert "refused" in str(caught.value)


@pytest.mark.parametrize("ack", [{}, "upper"], ids=["empty", "upper-case"])
async def test_a_subscribe_ack_without_the_channel_name_is_an_ack(ack: object) -> None:
    # The spec's subscribe result has a channel property, but does not require it.
    fake = FakeParadex()
    fake.ws_subscribe_result = lambda channel: {"channel": channel.upper()} if ack == "upper" else ack
    async with paradex_source(fake) as source, source.subscribe():
        assert dict(fake.subscribe_counts) == dict.fromkeys(DEFAULT_CHANNELS, 1)


async def test_a_subscribe_ack_naming_another_channel_is_a_venue_error() -> None:
    fake = FakeParadex()
    fake.ws_subscribe_result = lambda channel: {"channel": "trades.ALL"}
    async with paradex_source(fake) as source:
        with pytest.raises(VenueError, match="acknowledged subscribe"):
            async with source.subscribe():
                pass


async def test_auth_failure_40111_reauthenticates_on_a_new_socket() -> None:
    fake = FakeParadex()
    forced: list[bool] = []

    class Recording(CallableTokenProvider):
        async def token(self, *, force_refresh: bool = False) -> str:
            forced.append(force_refresh)
            return await super().token(force_refresh=force_refresh)

    fake.ws_auth_errors.append(40111)
    async with paradex_source(fake, token=Recording(token_minter(fake))) as source, source.subscribe() as hints:
        await fake.push("orders.ALL", order_payload("o1"))
        assert isinstance(await next_hint(hints), Order)
    assert fake.ws_connections == 2
    assert forced == [False, True]
    first, second = fake.sessions
    assert not first.authed
    assert first.channels == set()  # nothing was subscribed on the refused socket
    assert second.channels == set(DEFAULT_CHANNELS)
    assert fake.ws_auth_tokens[0] != fake.ws_auth_tokens[1]


async def test_auth_refused_twice_is_an_authentication_error_and_the_next_connect_forces_refresh() -> None:
    fake = FakeParadex()
    fake.ws_auth_errors.extend([40111, 40110])
    forced: list[bool] = []

    class Recording(CallableTokenProvider):
        async def token(self, *, force_refresh: bool = False) -> str:
            forced.append(force_refresh)
            return await super().token(force_refresh=force_refresh)

    async with paradex_source(fake, token=Recording(token_minter(fake))) as source:
        with pytest.raises(AuthenticationError, match="40110") as caught:
            async with source.subscribe():
                pass
        assert source._ws.reauth_needed
        async with source.subscribe():
            pass
        assert not source._ws.reauth_needed
    assert forced == [False, True, True]
    assert "tok-" not in str(caught.value)


async def test_an_auth_refusal_and_a_close_frame_in_one_read_still_reauthenticates() -> None:
    # The answer reached its call before the close: the call reports the answer (40111: a
    # fresh token on a new socket), not the connection that ended right after it.
    fake = FakeParadex()
    fake.ws_auth_errors.append(40111)
    fake.close_after_answer = ("auth", 1008, "auth failed")
    forced: list[bool] = []

    class Recording(CallableTokenProvider):
        async def token(self, *, force_refresh: bool = False) -> str:
            forced.append(force_refresh)
            return await super().token(force_refresh=force_refresh)

    async with paradex_source(fake, token=Recording(token_minter(fake))) as source, source.subscribe() as hints:
        await fake.push("orders.ALL", order_payload("o1"))
        assert isinstance(await next_hint(hints), Order)
    assert forced == [False, True]
    assert fake.ws_connections == 2


async def test_a_geo_block_and_a_close_frame_in_one_read_is_the_geo_block() -> None:
    fake = FakeParadex()
    fake.ws_auth_errors.append(40112)
    fake.close_after_answer = ("auth", 1008, "restricted")
    async with paradex_source(fake) as source:
        with pytest.raises(AuthenticationError, match="GEO_IP_BLOCK"):
            async with source.subscribe():
                pass


async def test_geo_block_40112_is_an_authentication_error() -> None:
    fake = FakeParadex()
    fake.ws_auth_errors.append(40112)
    async with paradex_source(fake) as source:
        with pytest.raises(AuthenticationError, match="GEO_IP_BLOCK"):
            async with source.subscribe():
                pass


async def test_a_dropped_connection_ends_the_stream_with_connection_lost() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push("orders.ALL", order_payload("o1"))
        await fake.drop_all()
        assert isinstance(await next_hint(hints), Order)  # what arrived before the drop is delivered
        with pytest.raises(ConnectionLostError, match="1006"):
            await next_hint(hints)
        with pytest.raises(ConnectionLostError):  # and stays ended
            await next_hint(hints)


async def test_a_server_close_frame_ends_the_stream() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.close_all(1011, "keepalive ping timeout")
        with pytest.raises(ConnectionLostError, match=r"1011.*keepalive"):
            await next_hint(hints)


async def test_a_close_frame_that_came_with_the_handshake_is_reported_with_its_code_and_reason() -> None:
    fake = FakeParadex()
    fake.close_with_accept = (4003, "go away now")
    async with paradex_source(fake) as source:
        with anyio.fail_after(5), pytest.raises(ConnectionLostError, match=r"code 4003: go away now"):
            async with source.subscribe():
                pass
    assert fake.ws_auth_tokens == []  # the auth was never sent on the closed connection


async def test_an_invalid_frame_ends_the_stream() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.send_raw(b"\x83\x01x")  # opcode 3 is reserved
        with pytest.raises(ConnectionLostError, match="1002"):
            await next_hint(hints)


async def test_a_truncated_stream_ends_with_connection_lost() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.send_raw(b"\x81\x7e\x10")  # a text frame header cut short
        await fake.drop_all()
        with pytest.raises(ConnectionLostError):
            await next_hint(hints)


async def test_a_silent_dead_connection_is_detected() -> None:
    fake = FakeParadex()
    fake.ignore_pings = True
    settings = WebSocketSettings(ping_interval=0.05, pong_timeout=0.05)
    async with paradex_source(fake, ws_settings=settings) as source, source.subscribe() as hints:
        with pytest.raises(ConnectionLostError, match="dead"):
            await next_hint(hints)


async def test_our_pings_keep_a_quiet_connection_alive() -> None:
    fake = FakeParadex()
    settings = WebSocketSettings(ping_interval=0.02, pong_timeout=1)
    async with paradex_source(fake, ws_settings=settings) as source, source.subscribe() as hints:
        # several idle intervals pass: we ping each time, the fake answers, the stream stays open
        await fake.wait_until(lambda: fake.pings_received >= 3)
        assert len(fake.live_sessions()) == 1
        await fake.push("orders.ALL", order_payload("o1"))
        assert isinstance(await next_hint(hints), Order)


async def test_server_pings_are_answered() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe():
        await fake.ping_all()
        await fake.wait_until(lambda: fake.pongs_received == 1)


async def test_a_consumer_that_falls_behind_gets_disconnected_not_a_growing_buffer() -> None:
    fake = FakeParadex()
    settings = WebSocketSettings(buffer_size=3)
    async with paradex_source(fake, ws_settings=settings) as source, source.subscribe() as hints:
        for i in range(10):
            await fake.push("orders.ALL", order_payload(f"o{i}"))
        await fake.wait_until(lambda: not fake.live_sessions())
        received = [await next_hint(hints) for _ in range(3)]
        with pytest.raises(ConnectionLostError, match="behind"):
            await next_hint(hints)
    assert [h.order_id for h in received if isinstance(h, Order)] == ["o0", "o1", "o2"]


async def test_an_unsolicited_40111_drops_the_connection_and_forces_a_refresh_next_time() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source, source.subscribe() as hints:
        await fake.push_text('{"jsonrpc":"2.0","id":99,"error":{"code":40111,"message":"Invalid Bearer Token"}}')
        with pytest.raises(ConnectionLostError, match="40111"):
            await next_hint(hints)
        assert source._ws.reauth_needed


async def test_connect_errors_are_transport_errors() -> None:
    async def refuse(url: str) -> anyio.abc.ByteStream:
        raise ConnectionRefusedError("refused")

    fake = FakeParadex()
    async with paradex_source(fake, ws_connector=refuse) as source:
        with pytest.raises(TransportError, match="cannot connect"):
            async with source.subscribe():
                pass


async def test_an_error_in_the_body_is_not_wrapped_in_an_exception_group() -> None:
    fake = FakeParadex()
    async with paradex_source(fake) as source:
        with pytest.raises(KeyError):
            async with source.subscribe():
                raise KeyError("consumer bug")
        # the socket was closed on the way out
        await fake.wait_until(lambda: not fake.live_sessions())


class _HangsUp(anyio.abc.ByteStream):
    """A peer that closes the connection before answering the WebSocket upgrade."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise anyio.EndOfStream

    async def send(self, item: bytes) -> None:
        pass

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_a_failed_handshake_leaves_no_stream_open() -> None:
    """Regression (chaos seed 103): the notification buffer's send side leaked when the handshake failed."""

    async def hang_up(url: str) -> anyio.abc.ByteStream:
        return _HangsUp()

    fake = FakeParadex()
    async with paradex_source(fake, ws_connector=hang_up) as source:
        with pytest.raises(ConnectionLostError, match="during the WebSocket handshake"):
            async with source.subscribe():
                pass
    gc.collect()  # an unclosed memory stream warns here (ResourceWarning: an error in this suite)
