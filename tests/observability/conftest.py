"""Helpers of the observability tests: a private Prometheus registry, an OpenTelemetry SDK
tracer provider collecting spans in memory, and scraping.

The SDK is only ever used here: liveactors itself depends on ``opentelemetry-api`` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import liveactors.otel

#: Labels -> value, per sample name (``liveactors_turns_total``, ``..._bucket``...).
Scrape = dict[str, dict[tuple[tuple[str, str], ...], float]]


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``check()`` holds (a statistic, the server's log: no event to wait for)."""
    with trio.fail_after(within):
        while not check():  # noqa: ASYNC110 - polled: no single event to wait for
            await trio.sleep(0.02)


def parse(text: str) -> Scrape:
    """A scrape's text, parsed with prometheus-client's own parser."""
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[labels] = sample.value
    return out


def families(text: str) -> set[str]:
    """Every metric name a scrape declares: families (counters with ``_total``) and samples."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        names.update(sample.name for sample in family.samples)
    return names


def scrape(registry: CollectorRegistry) -> Scrape:
    return parse(generate_latest(registry).decode())


def value(scraped: Scrape, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return scraped.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def total(scraped: Scrape, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for key, v in scraped.get(name, {}).items() if want <= set(key))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


class Spans:
    """The spans finished so far, and a tracer for the test's own spans."""

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter
        self.tracer = provider.get_tracer("tests")

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        [span] = self.named(name)
        return span

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return [
            s
            for s in self.finished()
            if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]

    @staticmethod
    def attributes(span: ReadableSpan) -> dict[str, Any]:
        return dict(span.attributes or {})


@pytest.fixture
def spans() -> Iterator[Spans]:
    """liveactors traced into an in-memory exporter, for the conversations the test spawns."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    liveactors.otel.instrument(provider)
    try:
        yield Spans(provider, exporter)
    finally:
        liveactors.otel.uninstrument()
        provider.shutdown()
