"""A simulated Paradex venue for tests: ground truth, seeded activity, fault injection.

Test your own trading code against "Paradex" the way you would test AWS code
against moto. :class:`ParadexSimulator` keeps the venue's truth (accounts,
orders with Paradex's lifecycle, fills of every type, trade busts,
positions), drives it with a seeded activity generator on a virtual clock,
and serves it in Paradex's wire formats: REST under ``/v1`` and the
WebSocket JSON-RPC (``auth``, ``subscribe``, notifications). Faults (dropped,
duplicated, reordered and delayed messages, disconnects, auth errors, 429s,
500s, slow and stale reads, awkward page boundaries, settlement lag) are
injected from their own seeded streams.

Run it in-process (``sim.http_transport()`` for httpx, ``sim.ws_connector``
for a raw WebSocket byte stream) or on a real uvicorn server on 127.0.0.1
(``sim.serve_loopback()``; needs ``pip install 'reconcile-trading[simulator]'``).
"""

from __future__ import annotations

from ._activity import ActivityMix, StepReport
from ._bridge import MemoryByteStream
from ._clock import DEFAULT_START_MS
from ._faults import FaultCounts, FaultSettings
from ._loopback import LoopbackEndpoints
from ._markets import DEFAULT_MARKETS, MarketSpec
from ._simulator import ParadexSimulator
from ._truth import (
    AccountSummaryTruth,
    AccountTruth,
    BustTruth,
    FillTruth,
    ModifyRequest,
    OrderTruth,
    PositionTruth,
)
from ._venue import FILL_TYPES, WS_SEQ_SKEW_MS, Venue

__all__ = [
    "DEFAULT_MARKETS",
    "DEFAULT_START_MS",
    "FILL_TYPES",
    "WS_SEQ_SKEW_MS",
    "AccountSummaryTruth",
    "AccountTruth",
    "ActivityMix",
    "BustTruth",
    "FaultCounts",
    "FaultSettings",
    "FillTruth",
    "LoopbackEndpoints",
    "MarketSpec",
    "MemoryByteStream",
    "ModifyRequest",
    "OrderTruth",
    "ParadexSimulator",
    "PositionTruth",
    "StepReport",
    "Venue",
]
