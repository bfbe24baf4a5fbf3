"""OpenTelemetry spans (liveactors.otel), collected with the SDK's in-memory exporter:
conversation -> connection -> turn, usage as turn attributes, a tool call's span current inside
the function (async, and sync in a worker thread) so the user's spans nest under it, failures as
error statuses."""

from __future__ import annotations

from typing import Any

import trio
from opentelemetry.trace import StatusCode

import liveactors
import liveactors.otel
from liveactors import events
from liveactors.testing import open_fake_server

from .conftest import Spans, eventually

#: A fast restart policy: a conversation whose connections keep dropping fails in moments.
FRAGILE = liveactors.RestartPolicy(
    max_restarts=2, within=60.0, backoff_initial=0.01, backoff_max=0.01, jitter=0.0
)


def tools(*names: str) -> dict[str, Any]:
    """A config declaring functions ``names``, each taking a ``city``."""
    declarations = [
        {
            "name": name,
            "description": f"the {name} function",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
        }
        for name in names
    ]
    return {"tools": [{"function_declarations": declarations}]}


async def test_conversation_connection_turn_hierarchy_with_usage(spans: Spans) -> None:
    usage: dict[int, list[Any]] = {}
    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend()) as orch,
    ):
        with spans.tracer.start_as_current_span("request"):
            conv = await orch.spawn(None, name="c1")
        async with conv.subscribe(events.Usage, buffer=1024) as sub:
            await conv.ask("hello")
            server.faults.go_away_now(0.5)
            await conv.ask("after the goAway")
            await eventually(lambda: conv.statistics().handoffs >= 1)
            await conv.ask("on the second connection")
            await conv.stop()
            async for event in sub:
                assert isinstance(event, events.Usage)
                usage.setdefault(event.turn, []).append(event.metadata)

    request = spans.one("request")
    conversation = spans.one("liveactors.conversation")
    assert conversation.parent is not None and request.context is not None
    assert conversation.parent.span_id == request.context.span_id  # the spawner's span
    attributes = spans.attributes(conversation)
    assert attributes["liveactors.conversation"] == "c1"
    assert attributes["gen_ai.request.model"] == liveactors.DEFAULT_MODEL
    assert attributes["liveactors.conversation.state"] == "closed"
    assert attributes["liveactors.conversation.connections"] == 2
    assert attributes["liveactors.conversation.handoffs"] == 1
    assert conversation.status.status_code is StatusCode.UNSET

    connections = sorted(
        spans.children(conversation), key=lambda s: s.attributes["liveactors.connection.number"]
    )
    assert [s.name for s in connections] == ["liveactors.connection"] * 2
    first, second = (spans.attributes(s) for s in connections)
    assert first["liveactors.connection.cause"] == "first"
    assert first["liveactors.connection.resumed"] is False
    assert first["liveactors.connection.ending"] == "handoff"
    assert (first["liveactors.close.code"], first["liveactors.close.initiator"]) == (
        "1000",
        "client",
    )
    assert [e.name for e in connections[0].events] == ["ready", "goaway"]
    assert second["liveactors.connection.cause"] == "handoff"
    assert second["liveactors.connection.resumed"] is True
    assert second["liveactors.connection.ending"] == "stop"

    turns = [t for c in connections for t in spans.children(c)]
    assert all(t.name == "liveactors.turn" for t in turns)
    assert len(turns) == len(spans.named("liveactors.turn")) == 3
    assert {spans.attributes(t)["liveactors.turn.number"] for t in turns} == {1, 2, 3}
    assert len(spans.children(connections[1])) >= 1  # the last question, after the handoff
    for turn in turns:
        got = spans.attributes(turn)
        reports = usage[got["liveactors.turn.number"]]
        assert got["liveactors.turn.interrupted"] is False
        assert got["gen_ai.usage.input_tokens"] == sum(u.prompt_token_count or 0 for u in reports)
        assert got["gen_ai.usage.output_tokens"] == sum(
            u.response_token_count or 0 for u in reports
        )
        assert got["liveactors.usage.total_tokens"] == sum(u.total_token_count for u in reports)
        # Per modality, as the service broke them down (the fake answers in speech).
        audio_out = sum(
            d.token_count
            for u in reports
            for d in u.response_tokens_details or ()
            if d.modality and d.modality.value == "AUDIO"
        )
        assert audio_out > 0
        assert got["liveactors.usage.output_tokens.audio"] == audio_out
        assert turn.context is not None and conversation.context is not None
        assert turn.context.trace_id == conversation.context.trace_id


async def _city_lookup(tracer: Any, city: str) -> dict[str, str]:
    with tracer.start_as_current_span("user.lookup") as span:
        span.set_attribute("city", city)
        await trio.sleep(0.01)
    return {"forecast": f"sunny in {city}"}


async def test_tool_call_span_is_current_inside_the_function(spans: Spans) -> None:
    tracer = spans.tracer

    async def get_weather(city: str) -> dict[str, str]:
        return await _city_lookup(tracer, city)

    def get_rain(city: str) -> str:  # sync: runs in a worker thread
        with tracer.start_as_current_span("user.sync_lookup"):
            return f"rain in {city}"

    async def get_snow(city: str) -> str:
        with tracer.start_as_current_span("user.failing_lookup"):
            raise ValueError(f"no snow data for {city}")

    class Weather(liveactors.Conversation):
        functions = {"get_weather": get_weather, "get_rain": get_rain, "get_snow": get_snow}

    calls: dict[str, str] = {}
    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend()) as orch,
    ):
        conv = await orch.spawn(tools("get_weather", "get_rain", "get_snow"), actor=Weather)
        async with conv.subscribe(events.ToolCall, buffer=64) as sub:
            for name in ("get_weather", "get_rain", "get_snow"):
                await conv.ask(f'call {name} {{"city": "Paris"}}')
            await eventually(lambda: len(server.log.client_messages(kind="toolResponse")) >= 3)
            await conv.stop()
            async for event in sub:
                assert isinstance(event, events.ToolCall)
                for call in event.calls:
                    assert call.name is not None and call.id is not None
                    calls[call.name] = call.id

    for name, user_span in (
        ("get_weather", "user.lookup"),
        ("get_rain", "user.sync_lookup"),
        ("get_snow", "user.failing_lookup"),
    ):
        tool = spans.one(f"execute_tool {name}")
        attributes = spans.attributes(tool)
        assert attributes["gen_ai.operation.name"] == "execute_tool"
        assert attributes["gen_ai.tool.name"] == name
        assert attributes["gen_ai.tool.call.id"] == calls[name]
        # The call's span is a child of the turn that asked for it...
        assert tool.parent is not None
        [turn] = [
            s
            for s in spans.named("liveactors.turn")
            if s.context is not None and s.context.span_id == tool.parent.span_id
        ]
        assert turn.context is not None and tool.context is not None
        assert turn.context.trace_id == tool.context.trace_id
        # ... and the user's span, started inside the function, is a child of the call's.
        inner = spans.one(user_span)
        assert inner.parent is not None and inner.parent.span_id == tool.context.span_id
        assert inner.context is not None and inner.context.trace_id == tool.context.trace_id

    assert (
        spans.attributes(spans.one("execute_tool get_weather"))["liveactors.tool_call.outcome"]
        == "ok"
    )
    failed = spans.one("execute_tool get_snow")
    assert spans.attributes(failed)["liveactors.tool_call.outcome"] == "error"
    assert failed.status.status_code is StatusCode.ERROR
    assert "ValueError: no snow data for Paris" in (failed.status.description or "")
    assert [e.name for e in failed.events] == ["exception"]


async def test_a_turn_cut_by_a_drop_and_a_failed_conversation(spans: Spans) -> None:
    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend(), restart=FRAGILE) as orch,
    ):
        conv = await orch.spawn(None, name="fragile")
        server.faults.drop(connection="open", after="modelTurn")
        reply = await conv.ask("cut me")  # answered again on the next connection
        assert reply.text
        # From now on every connection drops at once: the restart budget runs out.
        server.faults.drop(connection="all")
        server.faults.drop_now()
        await conv.wait_closed()
        assert conv.state is liveactors.ConversationState.FAILED

    conversation = spans.one("liveactors.conversation")
    assert conversation.status.status_code is StatusCode.ERROR
    assert spans.attributes(conversation)["liveactors.conversation.state"] == "failed"
    reconnects = [e for e in conversation.events if e.name == "reconnecting"]
    assert reconnects and all(
        (e.attributes or {})["liveactors.reconnect.cause"] == "connection_lost" for e in reconnects
    )
    connections = sorted(
        spans.children(conversation), key=lambda s: s.attributes["liveactors.connection.number"]
    )
    first = spans.attributes(connections[0])
    assert first["liveactors.connection.ending"] == "failure"
    assert (first["liveactors.close.code"], first["liveactors.close.initiator"]) == (
        "1006",
        "service",
    )
    assert connections[0].status.status_code is StatusCode.ERROR
    assert spans.attributes(connections[1])["liveactors.connection.cause"] == "reconnect"
    cut = [s for s in spans.children(connections[0]) if s.attributes["liveactors.turn.interrupted"]]
    assert [spans.attributes(s)["liveactors.turn.reason"] for s in cut] == ["CONNECTION_LOST"]


async def test_conversations_spawned_after_uninstrument_are_not_traced(spans: Spans) -> None:
    assert liveactors.otel.instrumented()
    liveactors.otel.uninstrument()
    assert not liveactors.otel.instrumented()
    async with (
        open_fake_server(listen=False) as server,
        liveactors.open_orchestrator(server.backend()) as orch,
    ):
        conv = await orch.spawn(None)
        await conv.ask("hello")
    assert spans.finished() == []
