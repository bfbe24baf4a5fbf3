"""Prometheus metrics (liveactors.metrics): registration is idempotent, a scrape follows what
the orchestrator did (connects, handoffs, reconnects, close codes, tokens by modality, events
and drops per overflow policy, tool calls, restarts exhausted), agrees with ``statistics()``,
keeps counters after the orchestrator closes, and is safe from another thread."""

from __future__ import annotations

import threading
import urllib.request
from typing import Any

import prometheus_client
import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest

import liveactors
import liveactors.metrics
from liveactors import _observe
from liveactors.testing import open_fake_server

from .conftest import eventually, parse, scrape, total, value

FRAGILE = liveactors.RestartPolicy(
    max_restarts=2, within=60.0, backoff_initial=0.01, backoff_max=0.01, jitter=0.0
)


def test_register_is_idempotent(registry: CollectorRegistry) -> None:
    first = liveactors.metrics.register(registry)
    assert liveactors.metrics.register(registry) is first
    assert liveactors.metrics.register(registry, orchestrator=None) is first
    text = generate_latest(registry).decode()
    assert text.count("# HELP liveactors_turns_total ") == 1
    # The global registry too (the default), and taking it out again.
    collector = liveactors.metrics.register()
    assert liveactors.metrics.register() is collector
    assert b"liveactors_conversations" in generate_latest(prometheus_client.REGISTRY)
    liveactors.metrics.unregister()
    assert b"liveactors_conversations" not in generate_latest(prometheus_client.REGISTRY)
    liveactors.metrics.unregister()  # again: nothing to do


def test_every_metric_is_exposed_once(registry: CollectorRegistry) -> None:
    liveactors.metrics.register(registry)
    text = generate_latest(registry).decode()
    declared = [
        line.split()[2].removesuffix("_total")
        for line in text.splitlines()
        if line.startswith("# TYPE")
    ]
    names = [spec.name.removesuffix("_total") for spec in liveactors.metrics.METRICS]
    assert sorted(declared) == sorted(names)
    assert len(set(names)) == len(names)
    assert all(name.startswith("liveactors_") for name in names)


def test_histogram_buckets_count_values_up_to_their_bound() -> None:
    histogram = _observe.Histogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(seconds)
    got = histogram.value()
    assert got.counts == (2, 2, 1) and got.count == 5 and got.sum == pytest.approx(8.65)


async def test_a_scrape_follows_the_orchestrator(registry: CollectorRegistry) -> None:
    async def lookup(city: str) -> str:
        return f"sunny in {city}"

    class Weather(liveactors.Conversation):
        functions = {"lookup": lookup}

    config = {
        "tools": [
            {
                "function_declarations": [
                    {
                        "name": "lookup",
                        "description": "weather",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"city": {"type": "STRING"}},
                        },
                    }
                ]
            }
        ]
    }
    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend()) as orch,
    ):
        liveactors.metrics.register(registry, orchestrator=orch)
        before = scrape(registry)
        assert value(before, "liveactors_orchestrators") == 1
        assert value(before, "liveactors_conversations", state="ready") == 0

        a = await orch.spawn(config, name="a", actor=Weather)
        b = await orch.spawn(None, name="b")
        # A subscriber that never reads, with room for one event: it drops the rest.
        async with (
            b.subscribe(buffer=1, overflow="drop_oldest") as _lagging,
            orch.subscribe(buffer=4096) as everything,
        ):
            subscribed = scrape(registry)
            await a.ask('call lookup {"city": "Oslo"}')
            await b.ask("hello")
            server.faults.go_away_now(0.5, connection=server.open_connections[-1])
            await b.ask("again")
            await eventually(lambda: b.statistics().handoffs >= 1)
            server.faults.drop_now(server.open_connections[0])
            await a.ask("after the drop")
            await eventually(lambda: len(server.log.client_messages(kind="toolResponse")) >= 1)
            during = scrape(registry)
            stats = orch.statistics()
            while everything.receive_nowait() is not None:
                pass

        assert value(during, "liveactors_conversations", state="ready") == 2
        assert value(during, "liveactors_conversations_spawned_total") == 2
        assert value(during, "liveactors_connects_total", cause="first") == 2
        assert value(during, "liveactors_connects_total", cause="handoff") == 1
        assert value(during, "liveactors_connects_total", cause="reconnect") == 1
        assert total(during, "liveactors_connects_total") == stats.connects
        assert value(during, "liveactors_connect_attempts_total") == stats.connects
        assert value(during, "liveactors_handoffs_total", cause="goaway") == stats.handoffs == 1
        assert value(during, "liveactors_reconnects_total", cause="connection_lost") == 1
        assert total(during, "liveactors_reconnects_total") == stats.reconnects
        assert (
            value(during, "liveactors_connection_closes_total", code="1000", initiator="client")
            == 1
        )
        assert (
            value(during, "liveactors_connection_closes_total", code="1006", initiator="service")
            == 1
        )
        assert value(during, "liveactors_messages_total", direction="in") == stats.messages_in
        assert value(during, "liveactors_messages_total", direction="out") == stats.messages_out
        assert value(during, "liveactors_turns_total") == stats.turns
        assert value(during, "liveactors_handoff_gap_seconds_count") == 1
        assert value(during, "liveactors_reconnect_gap_seconds_count") == 1
        assert 0 < value(during, "liveactors_handoff_gap_seconds_sum") < 5
        # Tokens by direction and modality add up to the usage reports' totals.
        assert total(during, "liveactors_tokens_total") == stats.tokens
        assert value(during, "liveactors_tokens_total", direction="out", modality="audio") > 0
        assert value(during, "liveactors_tokens_total", direction="in", modality="text") > 0
        assert value(during, "liveactors_tool_calls_total", outcome="ok") == 1
        # Events: each published once; the orchestrator-wide subscriber was handed every one
        # published since it subscribed.
        published = value(during, "liveactors_events_published_total")
        since = published - value(subscribed, "liveactors_events_published_total")
        assert since > 0
        assert value(during, "liveactors_subscribers", overflow="block") == 1
        assert value(during, "liveactors_subscribers", overflow="drop_oldest") == 1
        assert value(during, "liveactors_subscriber_lag_events_max", overflow="drop_oldest") == 1
        dropped = value(
            during, "liveactors_subscriber_events_dropped_total", overflow="drop_oldest"
        )
        assert dropped == b.statistics().events_dropped > 0
        handed = value(during, "liveactors_subscriber_events_total", overflow="drop_oldest")
        assert handed == dropped + 1
        assert value(during, "liveactors_subscriber_events_total", overflow="block") == since

        after_unsubscribe = scrape(registry)
        # Subscriptions that ended keep their counts.
        for policy in ("block", "drop_oldest"):
            for name in (
                "liveactors_subscriber_events_total",
                "liveactors_subscriber_events_dropped_total",
            ):
                assert value(after_unsubscribe, name, overflow=policy) >= value(
                    during, name, overflow=policy
                )
        assert value(after_unsubscribe, "liveactors_subscribers", overflow="block") == 0

    closed = scrape(registry)
    # After the orchestrator closed: no gauges of it, every counter kept (none went down).
    assert value(closed, "liveactors_orchestrators") == 0
    assert value(closed, "liveactors_conversations", state="ready") == 0
    assert value(closed, "liveactors_conversations_ended_total", outcome="closed") == 2
    for name, samples in during.items():
        if name.endswith(("_total", "_count", "_sum", "_bucket")):
            for labels, before_close in samples.items():
                assert closed[name][labels] >= before_close, (name, labels)


async def test_process_wide_counters_never_go_down(registry: CollectorRegistry) -> None:
    liveactors.metrics.register(registry)
    start = scrape(registry)
    async with open_fake_server(listen=False) as server:
        for _ in range(2):
            async with liveactors.open_orchestrator(server.backend()) as orch:
                conv = await orch.spawn(None)
                await conv.ask("hello")
                inside = scrape(registry)
                assert value(inside, "liveactors_orchestrators") >= 1
            after = scrape(registry)
            for name in ("liveactors_turns_total", "liveactors_events_published_total"):
                assert value(after, name) >= value(inside, name) > value(start, name)
    assert (
        value(after, "liveactors_conversations_spawned_total")
        == value(start, "liveactors_conversations_spawned_total") + 2
    )


async def test_restarts_exhausted_and_failures(registry: CollectorRegistry) -> None:
    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend(), restart=FRAGILE) as orch,
    ):
        liveactors.metrics.register(registry, orchestrator=orch)
        conv = await orch.spawn(None)
        server.faults.drop(connection="all")
        server.faults.drop_now()
        await conv.wait_closed()
    got = scrape(registry)
    assert value(got, "liveactors_restarts_exhausted_total", cause="connection_lost") == 1
    assert value(got, "liveactors_conversations_ended_total", outcome="failed") == 1
    assert value(got, "liveactors_reconnects_total", cause="connection_lost") == 2
    closes = got["liveactors_connection_closes_total"]
    assert {dict(labels)["initiator"] for labels in closes} == {"service"}
    assert sum(closes.values()) == 3  # the first connection and the two attempts after it


async def test_only_the_chosen_orchestrators(registry: CollectorRegistry) -> None:
    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend()) as mine,
        liveactors.open_orchestrator(server.backend()) as other,
    ):
        liveactors.metrics.register(registry, orchestrator=mine)
        await (await mine.spawn(None)).ask("mine")
        await (await other.spawn(None)).ask("other")
        await (await other.spawn(None)).ask("other")
        chosen = scrape(registry)
        assert value(chosen, "liveactors_orchestrators") == 1
        assert value(chosen, "liveactors_conversations_spawned_total") == 1
        liveactors.metrics.register(registry)  # widened to every orchestrator of the process
        everything = scrape(registry)
        assert value(everything, "liveactors_orchestrators") >= 2
        assert value(everything, "liveactors_conversations", state="ready") >= 3


async def test_scrapes_from_other_threads_read_in_the_trio_thread(
    registry: CollectorRegistry,
) -> None:
    seen: list[int] = []
    real = _observe.orchestrator_samples

    def spy(orch: Any) -> _observe.Samples:
        seen.append(threading.get_ident())
        return real(orch)

    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend()) as orch,
    ):
        liveactors.metrics.register(registry, orchestrator=orch)
        conv = await orch.spawn(None)
        await conv.ask("hello")
        _observe.orchestrator_samples = spy
        try:
            # prometheus-client's own HTTP server, in its thread, as `--metrics-port` runs it.
            with liveactors.metrics.serve(0, registry=registry) as http:
                assert http.url == f"http://127.0.0.1:{http.port}/metrics"

                def fetch() -> str:
                    with urllib.request.urlopen(http.url, timeout=10) as response:
                        text: str = response.read().decode()
                        return text

                text = await trio.to_thread.run_sync(fetch)
        finally:
            _observe.orchestrator_samples = real
    got = parse(text)
    assert value(got, "liveactors_turns_total") == 1
    assert value(got, "liveactors_conversations", state="ready") == 1
    assert seen == [threading.get_ident()]  # read in this (the trio) thread, not the server's


def test_a_trio_loop_that_does_not_answer_keeps_the_last_numbers() -> None:
    telemetry = _observe.Telemetry()
    telemetry.thread = -1  # "another thread"

    class Stuck:
        def run_sync_soon(self, job: Any) -> None:
            pass  # never runs it

    class Orch:
        _telemetry = telemetry

    telemetry.token = Stuck()  # type: ignore[assignment]
    telemetry.last = {"liveactors_turns_total": {(): 7}}
    assert _observe._read(Orch(), timeout=0.01) == {"liveactors_turns_total": {(): 7}}  # type: ignore[arg-type]


async def test_metrics_route_of_the_hypercorn_app(registry: CollectorRegistry) -> None:
    """docs/observability.md's Hypercorn wiring: ``/metrics`` mounted in liveactors.web's app,
    served on trio in the orchestrator's loop."""
    pytest.importorskip("hypercorn")
    import httpx
    from starlette.routing import Route

    import liveactors.web

    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend()) as orch,
    ):
        liveactors.metrics.register(registry, orchestrator=orch)
        app = liveactors.web.app(orch)
        app.router.routes.append(Route("/metrics", liveactors.metrics.asgi_app(registry)))
        await (await orch.spawn(None)).ask("hello")
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(liveactors.web.serve, app, "127.0.0.1", 0)
            async with httpx.AsyncClient() as client:
                response = await client.get(urls[0] + "/metrics")
            nursery.cancel_scope.cancel()
    assert response.status_code == 200
    got = parse(response.text)
    assert value(got, "liveactors_turns_total") == 1
    assert value(got, "liveactors_conversations", state="ready") == 1
