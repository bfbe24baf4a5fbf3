"""GoAway handoffs: hold new input, let the turn reach a resumable point, close the old socket,
resume on a new one, flush the held input. Nothing lost, nothing sent twice."""

from __future__ import annotations

import trio
from google.genai import types

import liveactors
from liveactors import events
from liveactors._models import FAKE_TEXT_MODEL
from liveactors.testing import CallTool, Say, TurnContext, open_fake_server

from .resilience import (
    assert_answered_once,
    assert_gap_free,
    assert_replies,
    conversation,
)


async def test_goaway_while_idle_hands_off_before_the_next_question(autojump_clock: object) -> None:
    async with conversation() as (server, _, conv, recorder):
        first = await conv.ask("one")
        server.faults.go_away_now(5.0)
        await server.log.wait_for(lambda: len(server.log.connections) == 2)
        second = await conv.ask("two")

    assert_replies([first.text, second.text], ["one", "two"])
    assert_answered_once(server, ["one", "two"])
    old, new = server.log.connections
    # The old socket was closed by us, normally, before the resume (the service refuses a resume
    # while it is open), and the new connection resumed the same session.
    assert old.close_code == 1000
    assert old.cause == "client"
    assert old.closed_at is not None and old.closed_at <= new.opened_at
    assert new.resumed_from is not None
    assert server.log.client_kinds(old.id).count("clientContent") == 1
    assert server.log.client_kinds(new.id).count("clientContent") == 1
    stats = conv.statistics()
    assert (stats.handoffs, stats.reconnects) == (1, 0)
    assert [type(e) for e in recorder.of(events.GoAway, events.Connected)] == [
        events.Connected,
        events.GoAway,
        events.Connected,
    ]
    assert_gap_free(recorder)


async def test_goaway_mid_turn_lets_the_turn_finish_and_holds_new_input(
    autojump_clock: object,
) -> None:
    async with conversation(chunks=4, chunk_delay=0.5) as (server, _, conv, recorder):
        server.faults.go_away(20.0, connection=1, after="modelTurn")
        async with trio.open_nursery() as nursery:
            replies: dict[str, str] = {}

            async def ask(question: str) -> None:
                replies[question] = (await conv.ask(question)).text

            nursery.start_soon(ask, "long question")
            await recorder.wait_for(events.GoAway)
            # Input sent during the handoff is held and goes out on the new connection only.
            nursery.start_soon(ask, "held question")

    assert_replies(
        [replies["long question"], replies["held question"]], ["long question", "held question"]
    )
    assert_answered_once(server, ["long question", "held question"])
    first, second = server.log.model_turns()
    assert (first.connection, first.outcome) == (1, "completed")
    assert (second.connection, second.outcome) == (2, "completed")
    texts_on_first = [m.body for m in server.log.client_messages(1, kind="clientContent")]
    assert "held question" not in str(texts_on_first)
    assert server.log.connection(1).close_code == 1000
    assert conv.statistics().handoffs == 1
    assert not any(isinstance(e, events.Reconnecting) for e in recorder.events)
    assert_gap_free(recorder)


class Weather(liveactors.Conversation):
    calls = 0

    async def get_weather(self, city: str) -> dict[str, object]:
        Weather.calls += 1
        await trio.sleep(2.0)
        return {"city": city, "sky": "clear"}

    async def on_tool_call(self, call: types.FunctionCall) -> object:
        return await self.get_weather(**(call.args or {}))


def weather_responder(ctx: TurnContext) -> object:
    if ctx.tool_results:
        return [Say(f"echo #{ctx.turn}: weather done")]
    return [CallTool("get_weather", {"city": "Paris"})]


WEATHER_CONFIG = {
    "response_modalities": ["TEXT"],
    "tools": [
        {
            "function_declarations": [
                {
                    "name": "get_weather",
                    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
                }
            ]
        }
    ],
}


async def test_goaway_mid_tool_call_answers_the_call_then_hands_off(autojump_clock: object) -> None:
    Weather.calls = 0
    async with open_fake_server(listen=False, responder=weather_responder) as server:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        async with liveactors.open_orchestrator(backend) as orch:
            conv = await orch.spawn(WEATHER_CONFIG, name="c", actor=Weather)
            server.faults.go_away(30.0, connection=1, after="toolCall")
            reply = await conv.ask("weather?")
            await server.log.wait_for(lambda: len(server.log.connections) == 2)
            after = await conv.ask("again")

    assert reply.text == "echo #1: weather done"
    assert after.text == "echo #2: weather done"
    assert Weather.calls == 2  # one call per question, none repeated by the handoff
    # The tool response went out on the old connection, before the switch.
    assert server.log.client_kinds(1).count("toolResponse") == 1
    assert server.log.connection(1).close_code == 1000
    assert conv.statistics().handoffs == 1


async def test_goaway_with_too_little_time_reads_until_the_service_closes(
    autojump_clock: object,
) -> None:
    # The turn needs ~4 s; the goAway leaves 1 s. The conversation keeps reading until the
    # service closes at its deadline (so nothing it sent is left unread), then resumes; the
    # cut answer is regenerated on the new connection, exactly once, and it is a handoff, not
    # a failure.
    async with conversation(chunks=8, chunk_delay=0.5) as (server, _, conv, recorder):
        server.faults.go_away(1.0, connection=1, after="modelTurn")
        reply = await conv.ask("slow question")
        follow = await conv.ask("next")

    assert_replies([reply.text, follow.text], ["slow question", "next"])
    assert_answered_once(server, ["slow question", "next"])
    outcomes = [(t.connection, t.outcome) for t in server.log.model_turns()]
    assert outcomes[0] == (1, "cut")
    # The cut turn was closed for subscribers, then answered again under a new turn number.
    cut = [e for e in recorder.events if isinstance(e, events.TurnComplete) and e.interrupted]
    assert [e.reason for e in cut] == ["CONNECTION_LOST"]
    text_turns = {e.turn for e in recorder.of(events.TextDelta)}
    assert cut[0].turn in text_turns and max(text_turns) > cut[0].turn
    first = server.log.connection(1)
    assert (first.close_code, first.cause) == (1011, "fault")  # the service's deadline
    stats = conv.statistics()
    assert (stats.handoffs, stats.reconnects) == (1, 0)
    assert not recorder.of(events.Reconnecting)
    assert_gap_free(recorder)


async def test_repeated_lifetimes_hand_off_every_time_without_loss(autojump_clock: object) -> None:
    # Ten-minute connections at time_scale 0.01 last 6 s, with a goAway 1 s before the end.
    async with conversation(time_scale=0.01, chunks=3, chunk_delay=0.2) as (server, _, conv, rec):
        questions = [f"q{i}" for i in range(30)]
        replies = []
        for question in questions:
            replies.append((await conv.ask(question)).text)
            await trio.sleep(0.7)

    assert_replies(replies, questions)
    assert_answered_once(server, questions)
    assert conv.statistics().handoffs >= 3
    assert conv.statistics().reconnects == 0
    # Each old connection ended by us (1000) or, when a turn ran into its deadline, by the
    # service at the end of its lifetime; none broke.
    for connection in server.log.connections[:-1]:
        assert (connection.close_code, connection.cause) in ((1000, "client"), (1011, "lifetime"))
    assert_gap_free(rec)
