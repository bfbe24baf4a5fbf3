"""liveactors.aio: the trio API, awaited from asyncio — same values, same events, same errors."""

from __future__ import annotations

import struct
from typing import Any

import pytest
import trio
from aio_helpers import LOOPS, TEXT, fake, fake_text, guest_tasks, run
from google.genai import types

import liveactors
from liveactors import aio, events
from liveactors.testing import CallTool, TurnContext, echo_responder, open_fake_server

QUESTIONS = ["Hello", "What is trio?", "Bye"]


def _shape(event: events.Event) -> tuple[Any, ...]:
    """An event without what differs between two runs (the usage's numbers do not)."""
    return (type(event).__name__, event.seq, event.turn, getattr(event, "text", None))


@pytest.mark.parametrize("loop", LOOPS)
def test_ask_and_stream_give_what_the_trio_api_gives(loop: str) -> None:
    async def with_trio() -> tuple[list[str], list[tuple[Any, ...]]]:
        async with (
            open_fake_server(listen=False, chunks=3) as server,
            liveactors.open_orchestrator(server.backend()) as orch,
        ):
            seen = []
            # Subscribed to the name before the spawn: every event, Connected included.
            async with orch.subscribe(conversation="c") as stream:
                conv = await orch.spawn(name="c")
                await conv.send_text(QUESTIONS[0])
                async for event in stream:
                    seen.append(_shape(event))
                    if isinstance(event, events.TurnComplete):
                        break
            replies = [(await conv.ask(q)).text for q in QUESTIONS[1:]]
            return replies, seen

    async def with_aio() -> tuple[list[str], list[tuple[Any, ...]]]:
        async with aio.open_orchestrator(fake(chunks=3)) as orch:
            seen = []
            async with orch.subscribe(conversation="c") as stream:
                assert isinstance(stream, aio.Subscription)
                conv = await orch.spawn(name="c")
                assert isinstance(conv, aio.ConversationRef)
                await conv.send_text(QUESTIONS[0])
                async for event in stream:
                    seen.append(_shape(event))
                    if isinstance(event, events.TurnComplete):
                        break
            replies = []
            for question in QUESTIONS[1:]:
                reply = await conv.ask(question)
                assert isinstance(reply, liveactors.Reply) and reply.audio
                replies.append(reply.text)
            return replies, seen

    expected = trio.run(with_trio)
    assert expected[0] == ["echo #2: What is trio?", "echo #3: Bye"]
    assert expected[1][0][0] == "Connected" and expected[1][-1][0] == "TurnComplete"
    assert run(with_aio, loop=loop) == expected


def test_every_command_reaches_the_server() -> None:
    manual = types.LiveConnectConfig(
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(disabled=True)
        )
    )
    loud = struct.pack("<h", 8000) * 1600  # 0.1 s at 16 kHz
    with_tools = types.LiveConnectConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="lookup")])]
    )

    def model(ctx: TurnContext) -> Any:
        if ctx.user_text == "look it up":
            return CallTool("lookup", {"q": "x"})
        return echo_responder(ctx)

    async def main() -> None:
        backend = fake(responder=model)
        async with aio.open_orchestrator(backend) as orch:
            auto = await orch.spawn(name="auto")
            await auto.send_text("history only", turn_complete=False)
            await auto.send_content(
                [types.Content(role="user", parts=[types.Part(text="more history")])],
                turn_complete=False,
            )
            await auto.send_video(b"\xff\xd8 not really a jpeg")
            await auto.send_realtime_text("typed as speech")
            for _ in range(5):
                await auto.send_audio(loud)
            await auto.audio_stream_end()
            await auto.stop()

            tools = await orch.spawn(with_tools, name="tools")
            async with tools.subscribe(events.ToolCall) as calls:
                await tools.send_text("look it up")
                call = (await anext(calls)).calls[0]
            await tools.send_tool_response([{"id": call.id, "name": "lookup", "response": {}}])
            await tools.stop()

            by_hand = await orch.spawn(manual, name="manual")
            await by_hand.activity_start()
            await by_hand.send_audio(loud)
            await by_hand.activity_end()
            await by_hand.stop()
        server = backend.server
        assert server is not None
        kinds = {m.kind for m in server.log.client_messages()}
        assert kinds >= {
            "setup",
            "clientContent",
            "realtimeInput.video",
            "realtimeInput.text",
            "realtimeInput.audio",
            "realtimeInput.audioStreamEnd",
            "realtimeInput.activityStart",
            "realtimeInput.activityEnd",
            "toolResponse",
        }
        assert server.log.errors == []
        assert server.log.notes_of("ignored_tool_response") == []

    run(main)


def test_errors_are_the_liveactors_ones() -> None:
    async def main() -> None:
        backend = fake()
        async with aio.open_orchestrator(backend) as orch:
            conv = await orch.spawn(name="c")
            with pytest.raises(liveactors.InvalidCommand, match="text must be a str"):
                await conv.send_text(42)  # type: ignore[arg-type]
            with pytest.raises(liveactors.InvalidCommand):
                await conv.activity_start()  # automatic VAD
            with pytest.raises(liveactors.InvalidCommand):
                await conv.send_tool_response([{"response": {"x": {1, 2}}}])
            with pytest.raises(liveactors.InvalidCommand, match="overflow"):
                async with conv.subscribe(overflow="sometimes"):  # type: ignore[arg-type]
                    pass
            with pytest.raises(liveactors.InvalidCommand):
                await orch.spawn(name="c")  # the name is taken
            with pytest.raises(liveactors.InvalidConfig) as refused:
                await orch.spawn(TEXT)  # gemini-3.8-live speaks only
            assert refused.value.field == "response_modalities"
            with pytest.raises(KeyError):
                orch.get("nobody")
            with pytest.raises(KeyError):
                await orch.stop("nobody")
            # The service refuses the session: SessionRejected, with its close code.
            assert backend.server is not None
            backend.server.faults.close(code=1008, reason="Requested entity was not found.")
            with pytest.raises(liveactors.SessionRejected) as rejected:
                await orch.spawn(name="refused")
            assert rejected.value.code == 1008
            # Nothing above disturbed the conversation.
            assert (await conv.ask("still there?")).text == "echo #1: still there?"
            await conv.stop()
            with pytest.raises(liveactors.ConversationStopped):
                await conv.send_text("too late")
            assert guest_tasks(orch) == 0

    run(main)


def test_refs_statistics_and_names() -> None:
    async def main() -> None:
        async with aio.open_orchestrator(fake_text()) as orch:
            a = await orch.spawn(TEXT, name="a")
            b = await orch.spawn(TEXT)
            assert orch.get("a") is a and a != b and len({a, b, orch.get(b.name)}) == 2
            assert orch.conversations == [a, b]
            assert a.state is liveactors.ConversationState.READY
            assert repr(a) == "<aio.ConversationRef 'a' ready>"
            assert (await a.ask("x")).text == "echo #1: x"
            assert a.statistics().turns == 1
            stats = orch.statistics()
            assert (stats.conversations, stats.spawned, stats.turns) == (2, 2, 1)
            assert not orch.closing
            await orch.stop(b.name)
            assert orch.conversations == [a]
            assert b.state is liveactors.ConversationState.CLOSED
            assert orch.trio.get("a") is a.trio  # the trio objects behind
            await orch.flush_handles()

    run(main)


def test_run_trio_runs_trio_code_in_the_guest() -> None:
    async def trio_side(x: int) -> tuple[int, str]:
        await trio.lowlevel.checkpoint()
        return x + 1, trio.lowlevel.current_task().name

    async def trio_fails() -> None:
        await trio.lowlevel.checkpoint()
        raise ValueError("from trio")

    async def main() -> None:
        async with aio.open_orchestrator(fake()) as orch:
            value, task = await orch.run_trio(trio_side, 41)
            assert value == 42 and "_run" in task
            with pytest.raises(ValueError, match="from trio"):
                await orch.run_trio(trio_fails)
            assert await orch.run_trio_sync(trio.current_time) > 0
            # The fake server's async API, from asyncio.
            server = orch.fake_server
            assert server is not None
            conv = await orch.spawn()
            await conv.send_text("Hi")
            await orch.run_trio(server.log.wait_for, lambda: server.log.answer_counts()["Hi"] == 1)

    run(main)


class Recorder(liveactors.Actor[str]):
    def __init__(self) -> None:
        super().__init__("recorder")
        self.seen: list[str] = []

    async def handle(self, message: str) -> None:
        self.seen.append(message)


def test_custom_actors_run_in_the_guest() -> None:
    async def main() -> None:
        async with aio.open_orchestrator(fake()) as orch:
            recorder = Recorder()
            assert await orch.spawn_actor(recorder) is recorder
            await orch.run_trio(recorder.send, "hello")
            await orch.run_trio(recorder.send, "again")
            assert orch.statistics().actors == 1
        assert recorder.seen == ["hello", "again"]  # stopped after its mailbox was drained

    run(main)


def test_the_public_names() -> None:
    assert set(aio.__all__) == {
        "HANDOFF",
        "ConversationRef",
        "FakeBackend",
        "Orchestrator",
        "Subscription",
        "open_orchestrator",
    }
    for name in set(aio.__all__) - {"HANDOFF"}:
        assert getattr(aio, name).__module__.startswith("liveactors.aio")
    # Every command of the trio ref has its asyncio counterpart, and every orchestrator method.
    for trio_class, aio_class in (
        (liveactors.ConversationRef, aio.ConversationRef),
        (liveactors.Orchestrator, aio.Orchestrator),
    ):
        public = {n for n in vars(trio_class) if not n.startswith("_")}
        assert public <= set(dir(aio_class)), public - set(dir(aio_class))
