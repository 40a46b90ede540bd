"""Benchmark (e): our Paradex parsers against ccxt's, and what the guarantees cost.

Run it through nox (``nox -s bench``; the session installs ccxt) or directly,
from the repository root, with ccxt installed (``pip install ccxt``)::

    python -m tests.benchmarks.bench_peer            # 100,000 notifications, 5 rounds
    python -m tests.benchmarks.bench_peer --quick    # 20,000 notifications, 3 rounds

The payloads are the ``data`` objects of the WebSocket ``fills.ALL`` and
``orders.ALL`` notifications of ``bench_ingest`` (full ``FillResult`` and
``OrderResp`` shapes), decoded once with ``json.loads``; both sides parse the
same dicts.

* **Parsers**: ``ccxt.paradex().parse_trade`` / ``parse_order`` against our
  ``parse_fill`` / ``parse_order``. ccxt runs without network, so its
  markets are not loaded: it passes the market id through as the symbol (a
  lookup it would otherwise make) and returns floats; ours returns validated
  ``Decimal``-valued frozen types, with fill keys, kinds and the status
  mapping. Goal: ours is faster.
* **What the guarantees cost**, from the message text to the consumer:
  a naive seed-style loop (``json.loads``, a ``set`` of fill ids for
  dedup, a ``dict`` of orders by id, last write wins); ccxt's parsers in the
  same loop; ours (text parsed as ``ParadexSource`` does: the msgspec fast
  path, ``decode_json`` + the strict parsers where it declines) with the
  reconciler over a ``MemoryLedger`` (exact
  decimals, dedup by fill key, version-gated order merge, gap checks, events);
  and ours over a ``SqliteLedger`` (every fill durable, a commit every 256).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconcile_core import AccountReconciler, MemoryLedger, Source
from reconcile_core.sqlite import SqliteLedger
from reconcile_paradex import decode_json, parse_fill, parse_order
from reconcile_paradex._wire import decode_notification, value_from_wire
from tests.benchmarks._payloads import MESSAGES_PER_ORDER, notifications, rpc_text
from tests.benchmarks._support import (
    ACCOUNT,
    alternate,
    arguments,
    finish,
    machine,
    ratio_figures,
    spread,
    table,
)

BATCH = 256


def load_ccxt() -> tuple[Any, str] | None:
    """``(ccxt.paradex(), version)``, or ``None`` when ccxt is not installed."""
    try:
        import ccxt  # type: ignore[import-not-found,unused-ignore]  # optional, and untyped
    except ImportError:
        return None
    return ccxt.paradex(), str(ccxt.__version__)


def _rate(count: int, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return count / (time.perf_counter() - started)


def _each(parse: Callable[[dict[str, Any]], object], payloads: list[dict[str, Any]]) -> float:
    """Parse every payload, keeping no result (a stream parser hands each one on)."""

    def run() -> None:
        for payload in payloads:
            parse(payload)

    return _rate(len(payloads), run)


# -- parsers ----------------------------------------------------------------------------------


def ours_fills(fills: list[dict[str, Any]]) -> float:
    return _each(lambda f: parse_fill(f, account=ACCOUNT, source=Source.WS), fills)


def ours_orders(orders: list[dict[str, Any]]) -> float:
    return _each(lambda o: parse_order(o, source=Source.WS), orders)


def ccxt_fills(exchange: Any, fills: list[dict[str, Any]]) -> float:
    return _each(exchange.parse_trade, fills)


def ccxt_orders(exchange: Any, orders: list[dict[str, Any]]) -> float:
    return _each(exchange.parse_order, orders)


# -- from text to the consumer ------------------------------------------------------------------


def naive(texts: list[str]) -> float:
    """A seed-style loop: json.loads, a set of fill ids, a dict of orders (last write wins)."""

    def run() -> None:
        seen: set[str] = set()
        orders: dict[str, dict[str, Any]] = {}
        delivered = 0
        for text in texts:
            params = json.loads(text)["params"]
            data = params["data"]
            if params["channel"].startswith("fills"):
                if data["id"] not in seen:
                    seen.add(data["id"])
                    delivered += 1
            else:
                orders[data["id"]] = data
                delivered += 1
        assert delivered == len(texts)

    return _rate(len(texts), run)


def ccxt_loop(exchange: Any, texts: list[str]) -> float:
    """The same loop with ccxt's parsers (unified trade and order dicts)."""

    def run() -> None:
        seen: set[str] = set()
        orders: dict[str, dict[str, Any]] = {}
        for text in texts:
            params = json.loads(text)["params"]
            if params["channel"].startswith("fills"):
                trade = exchange.parse_trade(params["data"])
                seen.add(trade["id"])
            else:
                order = exchange.parse_order(params["data"])
                orders[order["id"]] = order

    return _rate(len(texts), run)


def ours_loop(texts: list[str], ledger: Any) -> float:
    """Our parsers (as the source), the reconciler over ``ledger`` (commit every ``BATCH``), events counted."""
    reconciler = AccountReconciler(venue="paradex", account=ACCOUNT, ledger=ledger)

    def run() -> None:
        events = 0
        for number, text in enumerate(texts, 1):
            # As the source parses: the msgspec fast path, the strict parsers where it declines.
            decoded = decode_notification(text)
            value: Any = None if decoded is None else value_from_wire(decoded[1], account=ACCOUNT, source=Source.WS)
            if value is None:
                params: Any = decode_json(text)
                params = params["params"]
                if params["channel"].startswith("fills"):
                    value = parse_fill(params["data"], account=ACCOUNT, source=Source.WS).value
                else:
                    value = parse_order(params["data"], source=Source.WS).value
            events += len(reconciler.merge(value).events)
            if number % BATCH == 0:
                ledger.commit()
        ledger.commit()
        assert events == len(texts), (events, len(texts))

    return _rate(len(texts), run)


def measure(messages: int, rounds: int, scratch: Path) -> dict[str, Any]:
    orders = max(1, messages // MESSAGES_PER_ORDER)
    pairs = notifications(orders)
    texts = [rpc_text(channel, data) for channel, data in pairs]
    fill_dicts = [json.loads(json.dumps(data)) for channel, data in pairs if channel.startswith("fills")]
    order_dicts = [json.loads(json.dumps(data)) for channel, data in pairs if channel.startswith("orders")]
    loaded = load_ccxt()
    serial = iter(range(10**9))

    def sqlite_loop() -> float:
        ledger = SqliteLedger(scratch / f"peer-{next(serial)}.sqlite")
        try:
            return ours_loop(texts, ledger)
        finally:
            ledger.close()

    parsers: dict[str, Callable[[], float]] = {"ours_fill": lambda: ours_fills(fill_dicts)}
    if loaded is not None:
        parsers["ccxt_fill"] = lambda: ccxt_fills(loaded[0], fill_dicts)
    parsers["ours_order"] = lambda: ours_orders(order_dicts)
    if loaded is not None:
        parsers["ccxt_order"] = lambda: ccxt_orders(loaded[0], order_dicts)
    loops: dict[str, Callable[[], float]] = {"naive": lambda: naive(texts)}
    if loaded is not None:
        loops["ccxt"] = lambda: ccxt_loop(loaded[0], texts)
    loops["ours_memory"] = lambda: ours_loop(texts, MemoryLedger())
    loops["ours_sqlite"] = sqlite_loop

    parser_runs = alternate(rounds, parsers)
    loop_runs = alternate(rounds, loops)
    figures: dict[str, Any] = {}
    for kind in ("fill", "order"):
        runs = {name: values for name, values in parser_runs.items() if name.endswith(kind)}
        figures.update(ratio_figures(runs, f"ccxt_{kind}" if loaded is not None else f"ours_{kind}"))
    figures.update(ratio_figures(loop_runs, "naive"))
    return {
        "messages": len(texts),
        "fills": len(fill_dicts),
        "orders": len(order_dicts),
        "rounds": rounds,
        "ccxt": None if loaded is None else loaded[1],
        "runs": {**parser_runs, **loop_runs},
        "figures": figures,
    }


def report(result: dict[str, Any], info: dict[str, str]) -> str:
    figures = result["figures"]
    ccxt_version = result["ccxt"]
    out = [
        f"\n(e) Peer — {info['python']}, {info['machine']}, {info['date']}; "
        + (f"ccxt {ccxt_version}" if ccxt_version else "ccxt NOT INSTALLED (pip install ccxt)")
        + f"\n\n{result['fills']:,} fill and {result['orders']:,} order payloads; medians of {result['rounds']} "
        "alternating rounds.\n\n"
    ]
    rows: list[tuple[str, ...]] = []
    for kind, ours, theirs in (("fill", "ours_fill", "ccxt_fill"), ("order", "ours_order", "ccxt_order")):
        ours_rate = figures[ours]["median"]
        if ccxt_version:
            theirs_rate = figures[theirs]["median"]
            ratio = f"{figures[ours]['ratio']:.2f}"
            rows.append((kind, f"{theirs_rate:,.0f}", f"{ours_rate:,.0f}", ratio, spread(figures[ours])))
        else:
            rows.append((kind, "n/a", f"{ours_rate:,.0f}", "n/a", "n/a"))
    out.append(table(["payload", "ccxt parse, /s", "ours parse, /s", "ours / ccxt", "range"], rows))
    labels = {
        "naive": "naive: `json.loads` + `set` + `dict`",
        "ccxt": "ccxt: `json.loads` + ccxt parsers + `set` + `dict`",
        "ours_memory": "ours: msgspec fast path (strict parsers as fallback) + reconciler (MemoryLedger)",
        "ours_sqlite": "ours, durable: + SqliteLedger, commit every 256",
    }
    rows = [
        (label, f"{figures[name]['median']:,.0f}", f"{figures[name]['ratio']:.2f}", spread(figures[name]))
        for name, label in labels.items()
        if name in figures
    ]
    out.append("\n" + table(["from text to the consumer", "messages/s", "/ naive", "range"], rows))
    if ccxt_version:
        faster = figures["ours_fill"]["ratio"] > 1 and figures["ours_order"]["ratio"] > 1
        out.append(f"\nGoal, ours faster than ccxt: {'met' if faster else 'MISSED'}.\n")
    return "".join(out)


def main() -> None:
    parser = arguments(__doc__, rounds=5)
    parser.add_argument("--messages", type=int, help="notifications (default 100,000; --quick 20,000)")
    options = parser.parse_args()
    messages = options.messages or (20_000 if options.quick else 100_000)
    rounds = min(options.rounds, 3) if options.quick else options.rounds
    info = machine()
    with tempfile.TemporaryDirectory(dir=options.dir) as scratch:
        result = measure(messages, rounds, Path(scratch))
    result["machine"] = info
    finish(result, report(result, info), options.json)


if __name__ == "__main__":
    main()
