"""Conversations on the 3.x generation (gemini-3.8-live, the default): audio answers read as
transcripts, several parts per message, interaction status, early goAways with minutes left,
once-per-connection handles, re-seeded initial history, NON_BLOCKING tools by default.

Each runs over the fake server's in-memory transport on MockClock; the first is repeated over
real loopback sockets.
"""

from __future__ import annotations

import base64
from typing import Any

import trio
from trio.testing import MockClock

import liveactors
from liveactors import events
from liveactors.testing import Pause, SendMessage, TurnContext, open_fake_server

from .conftest import client_bodies, fake, pcm, recording

DEFAULT = liveactors.DEFAULT_MODEL


def audio_part(data: bytes) -> dict[str, Any]:
    encoded = base64.b64encode(data).decode()
    return {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": encoded}}


def multipart(ctx: TurnContext) -> list[Any]:
    """Two messages, each with two audio parts and a piece of the transcript beside them."""
    return [
        SendMessage(
            {
                "serverContent": {
                    "modelTurn": {"parts": [audio_part(b"\x01\x00"), audio_part(b"\x02\x00")]},
                    "outputTranscription": {"text": f"You said {ctx.user_text}"},
                }
            }
        ),
        SendMessage(
            {
                "serverContent": {
                    "outputTranscription": {"text": "."},
                    "modelTurn": {"parts": [audio_part(b"\x03\x00"), audio_part(b"\x04\x00")]},
                }
            }
        ),
    ]


async def _multipart_conversation(**options: Any) -> None:
    async with open_fake_server(responder=multipart, **options) as server:
        backend = server.backend(model=DEFAULT)
        async with liveactors.open_orchestrator(backend) as orch:
            conv = await orch.spawn(None, name="c")
            async with recording(conv.subscribe) as rec:
                reply = await conv.ask("hello")
                await rec.wait_for(lambda: rec.of(events.TurnComplete))
            [setup] = client_bodies(server, "setup")
    # The default config asks for audio with its transcript, and nothing the model refuses.
    assert setup["model"] == "models/gemini-3.8-live"
    assert "generationConfig" not in setup
    assert setup["outputAudioTranscription"] == {}
    # Every part of every message arrived, in part order, and ask() has the transcript.
    assert reply.text == "You said hello."
    assert reply.output_transcript == "You said hello."
    assert reply.audio == b"\x01\x00\x02\x00\x03\x00\x04\x00"
    kinds = [
        type(e) for e in rec.events if isinstance(e, events.AudioChunk | events.OutputTranscript)
    ]
    assert kinds == [
        events.AudioChunk,
        events.AudioChunk,
        events.OutputTranscript,
        events.AudioChunk,
        events.AudioChunk,
        events.OutputTranscript,
    ]
    seqs = [e.seq for e in rec.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def test_several_parts_per_message_in_memory(autojump_clock: MockClock) -> None:
    await _multipart_conversation(listen=False)


async def test_several_parts_per_message_over_loopback() -> None:
    await _multipart_conversation()


async def test_interaction_status_reaches_subscribers(autojump_clock: MockClock) -> None:
    def thinking(ctx: TurnContext) -> list[Any]:
        return [
            SendMessage({"serverContent": {"interactionStatus": "IN_PROGRESS"}}),
            Pause(0.5),
            f"echo: {ctx.user_text}",
        ]

    async with (
        fake(responder=thinking) as server,
        liveactors.open_orchestrator(server.backend(model=DEFAULT)) as orch,
    ):
        conv = await orch.spawn(None, name="c")
        async with recording(conv.subscribe) as rec:
            reply = await conv.ask("think")
            await rec.wait_for(lambda: rec.of(events.TurnComplete))
    [status] = rec.of(events.InteractionStatus)
    assert status.status == "IN_PROGRESS"
    assert status.turn == reply.turn
    assert reply.text == "echo: think"


async def test_an_early_goaway_with_minutes_left_never_cuts_the_reply(
    autojump_clock: MockClock,
) -> None:
    """3.8 was seen to send goAway with ``timeLeft: 300s`` a second into a connection. The
    reply in flight finishes whole, the switch follows right after it (not minutes later,
    holding the user's next question), and nothing is asked twice."""
    async with (
        fake(chunks=6, chunk_delay=0.5) as server,
        liveactors.open_orchestrator(server.backend(model=DEFAULT)) as orch,
    ):
        conv = await orch.spawn(None, name="c")
        async with recording(conv.subscribe) as rec:
            start = trio.current_time()
            server.faults.go_away(300.0, connection=1, after_seconds=1.0)
            first = await conv.ask("tell me a long story")
            finished = trio.current_time()
            second = await conv.ask("and then?")
            asked_second = trio.current_time()
        stats = conv.statistics()
    assert not first.interrupted
    assert first.text.endswith("tell me a long story")
    assert second.text.endswith("and then?")
    assert [e.time_left for e in rec.of(events.GoAway)] == [300.0]
    assert not rec.of(events.Interrupted)
    assert (stats.handoffs, stats.reconnects) == (1, 0)
    old, new = server.log.connections
    assert old.closed_at is not None
    # Switched within a couple of seconds of the end of the reply, long before the deadline.
    assert old.closed_at - start < finished - start + 2.0
    assert asked_second - start < 30.0
    assert new.resumed_from is not None
    assert sorted(server.log.answered()) == ["and then?", "tell me a long story"]


async def test_once_mode_is_learned_and_a_drop_mid_answer_resumes_the_cut_turn(
    autojump_clock: MockClock,
) -> None:
    """A service with one handle per connection: once learned, the knowledge survives the
    reconnect, and a drop mid-answer resumes the same session and finishes the cut turn
    rather than starting a fresh session (which would lose the server-side context)."""
    async with (
        fake(handle_mode="once", chunks=4, chunk_delay=0.5) as server,
        liveactors.open_orchestrator(server.backend(model=DEFAULT)) as orch,
    ):
        conv = await orch.spawn(None, name="c")
        async with recording(conv.subscribe) as rec:
            await conv.ask("one")
            await conv.ask("two")
            # Mid-answer: after the third of the four audio chunks of "three".
            server.faults.drop(connection=1, after="modelTurn", nth=3)
            three = await conv.ask("three")
            four = await conv.ask("four")
    assert three.text.endswith("three") and four.text.endswith("four")
    assert len(server.log.sessions) == 1  # never a fresh session
    assert not rec.of(events.HistoryRestored)
    assert [e.resumed for e in rec.of(events.Connected)] == [True]
    cut = rec.of(events.TurnComplete)[2]
    assert cut.reason == "CONNECTION_LOST"
    # The resumed connection asked the session to finish the cut turn, not the question again.
    second = server.log.connections[1]
    resumed = server.log.client_messages(connection=second.id, kind="clientContent")
    assert resumed[0].body == {"turnComplete": True}
    assert server.log.answer_counts() == {"one": 1, "two": 1, "three": 1, "four": 1}


async def test_a_resumed_38_session_is_seeded_with_its_initial_history_again(
    autojump_clock: MockClock,
) -> None:
    config = {"history_config": {"initial_history_in_client_content": True}}
    seed = [
        {"role": "user", "parts": [{"text": "My name is Ada."}]},
        {"role": "model", "parts": [{"text": "Hello Ada."}]},
    ]
    async with (
        fake() as server,
        liveactors.open_orchestrator(server.backend(model=DEFAULT)) as orch,
    ):
        conv = await orch.spawn(config, name="c")
        await conv.send_content(seed)
        await conv.ask("one")
        server.faults.go_away_now(10.0)
        await server.log.wait_for(lambda: len(server.log.connections) == 2)
        reply = await conv.ask("two")
    assert reply.text.endswith("two")
    first, second = server.log.connections
    [setup1] = [m.body for m in server.log.client_messages(connection=first.id, kind="setup")]
    [setup2] = [m.body for m in server.log.client_messages(connection=second.id, kind="setup")]
    assert setup1["historyConfig"] == {"initialHistoryInClientContent": True}
    assert "historyConfig" not in setup2  # a resumed session has begun already
    contents = [
        m.body for m in server.log.client_messages(connection=second.id, kind="clientContent")
    ]
    # First the seed again, as history the model takes without answering, then the question.
    assert contents[0]["turns"][: len(seed)] == seed
    assert not contents[0].get("turnComplete")
    assert server.log.answer_counts() == {"one": 1, "two": 1}


async def test_other_generations_are_not_seeded_again(autojump_clock: MockClock) -> None:
    config = {"history_config": {"initial_history_in_client_content": True}}
    async with (
        fake() as server,
        liveactors.open_orchestrator(
            server.backend(model="gemini-2.5-flash-native-audio-preview-12-2025")
        ) as orch,
    ):
        conv = await orch.spawn(config, name="c")
        await conv.send_content(
            [
                {"role": "user", "parts": [{"text": "My name is Ada."}]},
                {"role": "model", "parts": [{"text": "Hello Ada."}]},
            ]
        )
        await conv.ask("one")
        server.faults.go_away_now(10.0)
        await server.log.wait_for(lambda: len(server.log.connections) == 2)
        await conv.ask("two")
    second = server.log.connections[1]
    contents = [
        m.body for m in server.log.client_messages(connection=second.id, kind="clientContent")
    ]
    assert all("Ada" not in str(c) for c in contents)
    assert server.log.answer_counts() == {"one": 1, "two": 1}


class Weather(liveactors.Conversation):
    """Answers ``get_weather`` itself."""

    async def on_tool_call(self, call: Any) -> Any:
        await trio.sleep(1.0)
        return {"forecast": "sunny"}


async def test_tools_run_non_blocking_by_default_on_38(autojump_clock: MockClock) -> None:
    """On 3.8 a function declared without ``behavior`` runs NON_BLOCKING: its response goes
    out with a scheduling (WHEN_IDLE unless the actor says otherwise)."""
    config = {"tools": [{"function_declarations": [{"name": "get_weather"}]}]}
    async with (
        fake() as server,
        liveactors.open_orchestrator(server.backend(model=DEFAULT)) as orch,
    ):
        conv = await orch.spawn(config, name="c", actor=Weather)
        await conv.ask("call get_weather")
        await server.log.wait_for(lambda: client_bodies(server, "toolResponse"))
    [response] = client_bodies(server, "toolResponse")
    [function_response] = response["functionResponses"]
    assert function_response["name"] == "get_weather"
    assert function_response["response"] == {"output": {"forecast": "sunny"}}
    assert function_response["scheduling"] == "WHEN_IDLE"


class SlowLookup(liveactors.Conversation):
    """A blocking function that takes five seconds and counts how often it ran."""

    runs = 0

    async def on_tool_call(self, call: Any) -> Any:
        type(self).runs += 1
        await trio.sleep(5.0)
        return {"answer": 42}


async def test_a_blocking_call_reissued_under_a_new_id_runs_once(
    autojump_clock: MockClock,
) -> None:
    """3.8 drops a BLOCKING call that new input interrupts and asks it again under a new id
    seconds later, with no toolCallCancellation: the function runs once, and the result
    answers the call the service waits for."""
    SlowLookup.runs = 0
    declaration = {"name": "lookup", "behavior": "BLOCKING", "parameters": {"type": "OBJECT"}}
    config = {"tools": [{"function_declarations": [declaration]}]}
    async with (
        fake(model_profile="3.8") as server,
        liveactors.open_orchestrator(server.backend(model=DEFAULT)) as orch,
    ):
        conv = await orch.spawn(config, name="c", actor=SlowLookup)
        async with recording(conv.subscribe) as rec, trio.open_nursery() as nursery:

            async def ask() -> None:
                await conv.ask('call lookup {"q": "meaning"}')

            nursery.start_soon(ask)
            await rec.wait_for(lambda: rec.of(events.ToolCall))
            await trio.sleep(1.0)
            await conv.send_realtime_text("are you there?")
            await rec.wait_for(lambda: len(rec.of(events.ToolCall)) == 2)
            await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) >= 1)
    first, second = rec.of(events.ToolCall)
    assert first.calls[0].id != second.calls[0].id
    assert first.calls[0].args == second.calls[0].args
    assert not rec.of(events.ToolCallCancelled)
    assert SlowLookup.runs == 1
    answered = {
        r["id"] for body in client_bodies(server, "toolResponse") for r in body["functionResponses"]
    }
    assert second.calls[0].id in answered
    assert conv.state is not liveactors.ConversationState.FAILED
    assert not server.log.errors


async def test_the_transcription_model_is_a_transcription_session(
    autojump_clock: MockClock,
) -> None:
    """``gemini-3.5-transcribe-live`` writes what it hears and never answers: interim pieces,
    then the final transcript, a turnComplete per utterance, no model output."""
    async with (
        fake(model_profile="3.8") as server,
        liveactors.open_orchestrator(server.backend(model="gemini-3.5-transcribe-live")) as orch,
    ):
        conv = await orch.spawn(None, name="t")
        async with recording(conv.subscribe) as rec:
            for _ in range(5):
                await conv.send_audio(pcm(0.1))
                await trio.sleep(0.1)
            await conv.audio_stream_end()
            await rec.wait_for(lambda: rec.of(events.TurnComplete))
        [setup] = client_bodies(server, "setup")
    assert setup["generationConfig"] == {"responseModalities": ["TEXT"]}
    assert "outputAudioTranscription" not in setup
    transcripts = rec.of(events.InputTranscript)
    assert [t.interim for t in transcripts][-1] is False
    assert any(t.interim for t in transcripts)
    assert transcripts[-1].text == "<audio 0.50s>"
    assert not rec.of(events.AudioChunk) and not rec.of(events.TextDelta)
    assert not rec.of(events.OutputTranscript)
    assert server.log.turns == []


async def test_a_live_avatar_streams_video_chunks_init_segment_first(
    autojump_clock: MockClock,
) -> None:
    config = {"response_modalities": ["VIDEO"], "avatar_config": {"avatar_name": "Kira"}}
    async with (
        fake(model_profile="3.8", vertex=True) as server,
        liveactors.open_orchestrator(server.vertex_backend()) as orch,
    ):
        conv = await orch.spawn(config, name="a")
        async with recording(conv.subscribe) as rec:
            reply = await conv.ask("hello")
            await rec.wait_for(lambda: rec.of(events.TurnComplete))
    video = rec.of(events.VideoChunk)
    assert video and video[0].init and not any(v.init for v in video[1:])
    assert all(v.mime_type == "video/mp4" for v in video)
    assert video[0].data[4:8] == b"ftyp"
    assert not rec.of(events.AudioChunk)  # the voice is muxed into the video
    assert reply.text.endswith("hello")


async def test_client_content_with_roles_mid_session(autojump_clock: MockClock) -> None:
    """3.8 takes clientContent with explicit roles throughout a session."""
    async with (
        fake(model_profile="3.8") as server,
        liveactors.open_orchestrator(server.backend(model=DEFAULT)) as orch,
    ):
        conv = await orch.spawn(None, name="c")
        await conv.ask("one")
        await conv.send_content(
            [
                {"role": "user", "parts": [{"text": "Remember: the code is 7."}]},
                {"role": "model", "parts": [{"text": "Noted."}]},
            ],
            turn_complete=False,
        )
        reply = await conv.ask("two")
        assert conv.state is liveactors.ConversationState.READY
    assert reply.text.endswith("two")
    assert server.log.answer_counts() == {"one": 1, "two": 1}
    assert len(server.log.connections) == 1


async def test_a_goaway_waits_while_extended_thinking_says_in_progress(
    autojump_clock: MockClock,
) -> None:
    """On the extended-thinking model a turnComplete with ``interactionStatus: IN_PROGRESS``
    is not a resumable point: the model goes on, and the handoff waits until it is IDLE."""

    def thinker(ctx: TurnContext) -> list[Any]:
        return [
            "first thoughts",
            SendMessage(
                {"serverContent": {"turnComplete": True, "interactionStatus": "IN_PROGRESS"}}
            ),
            Pause(3.0),
            f"answer: {ctx.user_text}",
            SendMessage({"serverContent": {"interactionStatus": "IDLE"}}),
        ]

    async with (
        fake(model_profile="3.8", responder=thinker, interaction_status=False) as server,
        liveactors.open_orchestrator(
            server.backend(model="gemini-3.8-live-extended-thinking")
        ) as orch,
    ):
        conv = await orch.spawn(None, name="x")
        async with recording(conv.subscribe) as rec:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conv.send_text, "ponder")
                await rec.wait_for(lambda: rec.of(events.TurnComplete))
                assert rec.of(events.TurnComplete)[0].interaction_status == "IN_PROGRESS"
                server.faults.go_away_now(30.0)
                await rec.wait_for(lambda: len(rec.of(events.Connected)) >= 1)
            idle_at = next(e.seq for e in rec.of(events.InteractionStatus) if e.status == "IDLE")
            [connected] = rec.of(events.Connected)
    assert connected.seq > idle_at  # switched only once the model was idle
    assert not rec.of(events.Interrupted)
    assert "answer: ponder" in "".join(e.text for e in rec.of(events.OutputTranscript))


async def test_text_goes_as_realtime_text_on_31(autojump_clock: MockClock) -> None:
    """gemini-3.1-flash-live-preview closes the session (1007) on clientContent after the
    first model turn: ask() and send_text() use realtime text there, so a conversation of
    several questions keeps going."""
    async with (
        fake(model_profile="3.1") as server,
        liveactors.open_orchestrator(server.backend(model="gemini-3.1-flash-live-preview")) as orch,
    ):
        conv = await orch.spawn(None, name="c")
        replies = [(await conv.ask(q)).text for q in ("one", "two", "three")]
        assert conv.state is liveactors.ConversationState.READY
    assert [r.rsplit(": ", 1)[-1] for r in replies] == ["one", "two", "three"]
    assert client_bodies(server, "clientContent") == []
    assert [b["text"] for b in client_bodies(server, "realtimeInput")] == ["one", "two", "three"]
    assert len(server.log.connections) == 1
