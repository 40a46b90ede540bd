"""ParadexSource passes the generic StateSource contract against the fake venue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from reconcile_core import FillKey
from reconcile_core.testing import SourceCase, SourceScenario, StateSourceContract

from .fake_venue import (
    ACCOUNT,
    FakeParadex,
    bust_payload,
    fill_payload,
    order_payload,
    paradex_source,
    position_payload,
)


class TestParadexSourceContract(StateSourceContract):
    @pytest.fixture
    async def source_case(self) -> AsyncIterator[SourceCase]:
        fake = FakeParadex()
        fake.orders = {
            "o1": order_payload("o1", status="OPEN", created_at=1_000),
            "o2": order_payload("o2", status="NEW", created_at=2_000),
            "o3": order_payload("o3", status="UNTRIGGERED", type="STOP_MARKET", created_at=3_000),
            "o4": order_payload("o4", status="CLOSED", remaining_size="0", created_at=4_000),
            "o5": order_payload("o5", status="CLOSED", cancel_reason="USER_CANCELED", created_at=500),
        }
        fake.fills = [
            fill_payload(f"f{i}", created_at=1_000 + i, fill_type=("FILL", "LIQUIDATION", "TRANSFER")[i % 3])
            for i in range(11)
        ]
        fake.positions = [position_payload("BTC-USD-PERP", "1"), position_payload("ETH-USD-PERP", "-3")]
        fake.busts = [bust_payload("f1", created_at=5_000), bust_payload("f2", created_at=6_000)]
        canonical = {"FILL": "FILL", "LIQUIDATION": "LIQUIDATION", "TRANSFER": "UNWIND_TRANSFER"}
        scenario = SourceScenario(
            open_order_ids={"o1", "o2", "o3"},
            position_instruments={"BTC-USD-PERP", "ETH-USD-PERP"},
            fills_since=1_002,
            fill_keys={
                FillKey(venue="paradex", account=ACCOUNT, fill_type=canonical[f["fill_type"]], fill_id=f["id"])
                for f in fake.fills
                if f["created_at"] >= 1_002
            },
            min_fill_pages=3,
            order_history_ids={"o1", "o2", "o3", "o4"},
            history_since=1_000,
            bust_fill_ids={"f2"},
            busts_since=5_500,
            known_order_id="o4",
            push_hint=lambda: fake.push("orders.ALL", order_payload("o1", status="OPEN", last_updated_at=9_999)),
        )
        async with paradex_source(fake, page_size=4) as source:
            yield SourceCase(source=source, scenario=scenario)
