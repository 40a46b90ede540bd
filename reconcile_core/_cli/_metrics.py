"""``--metrics-port``: the session's health counters as Prometheus metrics.

Needs the optional extra: ``pip install 'reconcile-trading[metrics]'``.
Metrics are read from :meth:`Session.health` at scrape time, so nothing is
counted twice and nothing grows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reconcile_core.errors import UsageError
from reconcile_core.runtime import ConnectionState, Session

__all__ = ["MetricsServer", "health_metrics", "serve_metrics"]


def _value(number: float) -> float:
    """A Prometheus sample value (a count or a flag, never money)."""
    return float(number)  # float ok: metric values, not money


def health_metrics(session: Session) -> Iterator[tuple[str, str, str, dict[str, str], float]]:
    """(name, type, help, labels, value) for every metric of one session."""
    health = session.health()
    base = {"venue": health.venue, "account": health.account}
    yield (
        "reconcile_connected",
        "gauge",
        "1 when the stream is connected",
        base,
        _value(health.state in (ConnectionState.SYNCING, ConnectionState.LIVE)),
    )
    yield (
        "reconcile_synced",
        "gauge",
        "1 after a full pass since the last connect",
        base,
        _value(health.synced),
    )
    if health.last_reconcile_at is not None:
        yield (
            "reconcile_last_reconcile_timestamp_seconds",
            "gauge",
            "venue time of the last finished pass",
            base,
            health.last_reconcile_at / 1000,
        )
    if health.last_reconcile_duration_ms is not None:
        yield (
            "reconcile_last_reconcile_duration_seconds",
            "gauge",
            "duration of the last finished pass",
            base,
            health.last_reconcile_duration_ms / 1000,
        )
    counters = {
        "reconcile_fills_from_stream_total": (health.fills_from_stream, "fills first seen on the stream"),
        "reconcile_fills_from_rest_total": (health.fills_from_rest, "fills recovered by REST"),
        "reconcile_duplicates_suppressed_total": (health.duplicates_suppressed, "repeated fills suppressed"),
        "reconcile_stale_ignored_total": (health.stale_ignored, "stale observations ignored"),
        "reconcile_reconnects_total": (health.reconnects, "stream reconnects"),
        "reconcile_passes_ok_total": (health.passes_ok, "reconciliation passes that finished"),
        "reconcile_passes_failed_total": (health.passes_failed, "reconciliation passes that failed"),
    }
    for name, (value, text) in counters.items():
        yield name, "counter", text, base, _value(value)
    for kind, count in health.discrepancies.items():
        yield (
            "reconcile_discrepancies_total",
            "counter",
            "discrepancies by kind",
            {**base, "kind": kind.value},
            _value(count),
        )
    yield (
        "reconcile_unknown_orders",
        "gauge",
        "orders the venue cannot account for",
        base,
        _value(health.unknown_orders),
    )
    yield (
        "reconcile_unacknowledged",
        "gauge",
        "delivered fills not yet acknowledged",
        base,
        _value(health.unacknowledged),
    )


class MetricsServer:
    """A running Prometheus endpoint; :meth:`close` stops it."""

    def __init__(self, server: Any, thread: Any, registry: Any) -> None:
        self._server = server
        self._thread = thread
        self.registry = registry

    @property
    def port(self) -> int:
        """The port it listens on (useful when asked for port 0)."""
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(session: Session, port: int, *, address: str = "127.0.0.1") -> MetricsServer:
    try:
        from prometheus_client import CollectorRegistry, start_http_server  # noqa: PLC0415
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415
    except ImportError as exc:
        msg = "--metrics-port needs prometheus-client: pip install 'reconcile-trading[metrics]'"
        raise UsageError(msg) from exc

    class _Collector:
        def collect(self) -> Iterator[Any]:
            families: dict[str, Any] = {}
            for name, kind, text, labels, value in health_metrics(session):
                family = families.get(name)
                if family is None:
                    if kind == "counter":
                        family = CounterMetricFamily(name.removesuffix("_total"), text, labels=list(labels))
                    else:
                        family = GaugeMetricFamily(name, text, labels=list(labels))
                    families[name] = family
                family.add_metric(list(labels.values()), value)
            yield from families.values()

    registry = CollectorRegistry()
    registry.register(_Collector())
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        msg = f"cannot serve metrics on {address}:{port}: {exc.strerror}"
        raise UsageError(msg) from exc
    return MetricsServer(server, thread, registry)
