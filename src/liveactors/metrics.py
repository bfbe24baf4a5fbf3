"""Prometheus metrics of liveactors: conversations, connections, handoffs, events, tokens.

::

    import prometheus_client
    import liveactors.metrics

    liveactors.metrics.register()              # into prometheus_client's global registry
    prometheus_client.start_http_server(9464)  # or mount liveactors.metrics.asgi_app()

:func:`register` adds one collector to a prometheus-client registry. It reads the live numbers
of the orchestrators **at scrape time** (so the message path pays nothing), and reports every
orchestrator of the process — each is known from the moment ``open_orchestrator`` starts, and a
closed one's counters are kept, so they never go down — or only the ones you name with
``register(registry, orchestrator=orch)``. A scrape from another thread (the thread of
``start_http_server``) reads each orchestrator in its own trio thread, never while trio
changes it.

The metric names, labels and meanings are in :data:`METRICS` and docs/observability.md; a
Grafana dashboard of them is docs/grafana-dashboard.json. Needs the ``metrics`` extra:
``pip install 'liveactors[metrics]'``.
"""

from __future__ import annotations

try:
    import prometheus_client as _prometheus_client
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "liveactors.metrics needs prometheus-client: pip install 'liveactors[metrics]'"
    ) from exc

import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from . import _observe
from ._observe import SPECS, HistogramValue, MetricSpec

if TYPE_CHECKING:
    from ._orchestrator import Orchestrator

__all__ = [
    "METRICS",
    "LiveactorsCollector",
    "MetricSpec",
    "MetricsServer",
    "asgi_app",
    "register",
    "serve",
    "unregister",
]

#: Every metric: ``name`` (as exposed: counters end in ``_total``), ``kind`` (counter, gauge,
#: histogram), ``help`` and ``labels``.
METRICS: Final[tuple[MetricSpec, ...]] = SPECS


def _family(spec: MetricSpec) -> Metric:
    if spec.kind == "counter":
        return CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    if spec.kind == "gauge":
        return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    return HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)


def _fill(family: Metric, spec: MetricSpec, values: dict[tuple[str, ...], Any]) -> None:
    for labels, value in sorted(values.items()):
        if isinstance(value, HistogramValue):
            assert isinstance(family, HistogramMetricFamily)
            cumulative, buckets = 0, []
            for bound, count in zip((*value.bounds, float("inf")), value.counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric(list(labels), buckets, value.sum)
        else:
            family.add_metric(list(labels), value)  # type: ignore[attr-defined]


class LiveactorsCollector(Collector):
    """The liveactors metrics of every orchestrator of the process, or of chosen ones (see
    :func:`register`); each scrape reads them afresh."""

    def __init__(self) -> None:
        #: Report every orchestrator of the process (else only ``_chosen``).
        self.everything = False
        self._chosen: weakref.WeakSet[Orchestrator] = weakref.WeakSet()

    def include(self, orchestrator: Orchestrator | None) -> None:
        """Report ``orchestrator`` too (None: every orchestrator of the process)."""
        if orchestrator is None:
            self.everything = True
        else:
            self._chosen.add(orchestrator)

    def samples(self) -> _observe.Samples:
        """The numbers a scrape now reports (metric name -> label values -> value)."""
        if self.everything:
            return _observe.collect()
        samples = _observe.collect(list(self._chosen))
        samples.setdefault("liveactors_orchestrators", {(): 0})
        return samples

    def collect(self) -> Iterator[Metric]:
        samples = self.samples()
        for spec in SPECS:
            family = _family(spec)
            _fill(family, spec, samples.get(spec.name, {}))
            yield family

    def describe(self) -> Iterator[Metric]:
        """The families without samples (the registry checks names with it, at no cost)."""
        for spec in SPECS:
            yield _family(spec)


_lock = threading.Lock()
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, LiveactorsCollector] = (
    weakref.WeakKeyDictionary()
)


def register(
    registry: CollectorRegistry | None = None, *, orchestrator: Orchestrator | None = None
) -> LiveactorsCollector:
    """Add the liveactors collector to ``registry`` (default: prometheus-client's global
    ``REGISTRY``) and return it. Idempotent: a registry gets one collector, however often this
    is called.

    Without ``orchestrator`` the collector reports every orchestrator of the process, open or
    closed (counters summed over them; gauges of the open ones). With one, it reports only the
    orchestrators named this way — call it again to add another; a call without one widens it
    to all.
    """
    registry = _prometheus_client.REGISTRY if registry is None else registry
    with _lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = LiveactorsCollector()
            registry.register(collector)
            _collectors[registry] = collector
        collector.include(orchestrator)
    return collector


def _ensure(registry: CollectorRegistry) -> None:
    """A registry without the liveactors collector gets the process-wide one; one that has it
    keeps it as it is (reporting the orchestrators it was given)."""
    with _lock:
        if registry in _collectors:
            return
    register(registry)


def unregister(registry: CollectorRegistry | None = None) -> None:
    """Take the liveactors collector out of ``registry`` (default: the global one)."""
    registry = _prometheus_client.REGISTRY if registry is None else registry
    with _lock:
        collector = _collectors.pop(registry, None)
        if collector is not None:
            registry.unregister(collector)


def asgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Awaitable[None]]:
    """An ASGI app serving ``registry`` (default: the global one) in the text format; the
    process-wide liveactors collector is registered in it unless it has one already. Route
    ``/metrics`` to it in a Starlette app under Hypercorn (on trio, in the orchestrator's loop:
    the scrape reads it directly) — ``Route("/metrics", asgi_app())`` — or in an asyncio app
    running ``liveactors.aio`` (FastAPI: ``app.add_route("/metrics", asgi_app())``)."""
    registry = _prometheus_client.REGISTRY if registry is None else registry
    _ensure(registry)
    return _MetricsApp(_prometheus_client.make_asgi_app(registry))


class _MetricsApp:
    """prometheus-client's ASGI app as an object, not a function: Starlette's ``Route`` then
    hands it the raw ASGI call (a function would be taken for a request handler)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


class MetricsServer:
    """``/metrics`` served by prometheus-client's HTTP server in a daemon thread."""

    def __init__(self, port: int, host: str, registry: CollectorRegistry) -> None:
        self._server, self._thread = _prometheus_client.start_http_server(
            port, addr=host, registry=registry
        )
        self.host = host
        #: The port it listens on (the one picked when asked for 0).
        self.port: int = self._server.server_port

    @property
    def url(self) -> str:
        """Where Prometheus scrapes: ``http://HOST:PORT/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving (waits for the thread)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    port: int, host: str = "127.0.0.1", *, registry: CollectorRegistry | None = None
) -> MetricsServer:
    """Serve ``registry`` (default: the global one; the process-wide liveactors collector is
    registered in it unless it has one already) on ``http://host:port/metrics`` from a daemon
    thread, until ``close()``; port 0 picks a free one (``.port``, ``.url``). What
    ``liveactors serve --metrics-port`` and ``liveactors demo --metrics-port`` run."""
    registry = _prometheus_client.REGISTRY if registry is None else registry
    _ensure(registry)
    return MetricsServer(port, host, registry)
