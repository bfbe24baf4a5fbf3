"""Annotated transcripts of whole turns (docs/protocol.md, "Turn orderings"), frame by frame,
into ``liveactors.events``.

Each server frame goes through ``LiveConnection.receive`` and ``EventTracker.events`` exactly as
the conversation actor runs them; the tests check the events, their order, their ``seq`` and
``turn`` numbers, the turn phase and the latest resumable handle.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from liveactors import events as ev
from liveactors._protocol import encode
from liveactors._protocol.connection import ConnectionState, LiveConnection
from liveactors._protocol.ledger import InputLedger
from liveactors._protocol.setup import encode_setup
from liveactors._protocol.tracker import EventTracker, TurnPhase

PCM_OUT = bytes(range(256)) * 4
AUDIO_OUT = base64.b64encode(PCM_OUT).decode()


def audio_frame(data: str = AUDIO_OUT) -> str:
    part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}
    return json.dumps({"serverContent": {"modelTurn": {"role": "model", "parts": [part]}}})


def usage(prompt: int, response: int) -> str:
    total = prompt + response
    return (
        f'"usageMetadata":{{"promptTokenCount":{prompt},"responseTokenCount":{response},'
        f'"totalTokenCount":{total}}}'
    )


class Session:
    """One connection's worth of protocol state plus the conversation's tracker."""

    def __init__(self, config: Any = None, tracker: EventTracker | None = None) -> None:
        self.tracker = tracker or EventTracker("c1")
        self.conn = LiveConnection()
        self.setup = json.loads(self.conn.send_setup(encode_setup(config, "m")))

    def feed(self, *frames: str | bytes) -> list[ev.Event]:
        out: list[ev.Event] = []
        for frame in frames:
            # The service sends binary frames; alternate to cover both.
            raw = frame.encode() if isinstance(frame, str) and len(out) % 2 else frame
            out.extend(self.tracker.events(self.conn.receive(raw)))
        return out


def summary(events: list[ev.Event]) -> list[tuple[Any, ...]]:
    """(type, turn, payload) per event, payload being what matters for that type."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        payload: Any = None
        if isinstance(e, ev.TextDelta | ev.InputTranscript | ev.OutputTranscript):
            payload = e.text
        elif isinstance(e, ev.AudioChunk):
            payload = (len(e.data), e.mime_type)
        elif isinstance(e, ev.ToolCall):
            payload = tuple((c.id, c.name, c.args) for c in e.calls)
        elif isinstance(e, ev.ToolCallCancelled):
            payload = e.ids
        elif isinstance(e, ev.Usage):
            payload = e.metadata.total_token_count
        elif isinstance(e, ev.ResumptionUpdate):
            payload = (e.handle, e.resumable, e.last_consumed_client_message_index)
        elif isinstance(e, ev.GoAway):
            payload = e.time_left
        elif isinstance(e, ev.TurnComplete):
            payload = e.reason
        out.append((type(e).__name__, e.turn, payload))
    return out


def assert_seq(events: list[ev.Event], start: int = 1) -> None:
    assert [e.seq for e in events] == list(range(start, start + len(events)))
    assert all(e.conversation == "c1" for e in events)


# --- a text turn ----------------------------------------------------------------------------------


def test_text_turn_11_1() -> None:
    s = Session({"response_modalities": ["TEXT"]})
    assert s.setup == {
        "setup": {"model": "models/m", "generationConfig": {"responseModalities": ["TEXT"]}}
    }
    assert s.feed('{"setupComplete":{}}') == []
    assert s.conn.state is ConnectionState.READY
    _, text = s.conn.send(encode.client_content("What is the capital of France?"))
    assert json.loads(text) == {
        "clientContent": {
            "turns": [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}],
            "turnComplete": True,
        }
    }
    got = s.feed(
        '{"serverContent":{"modelTurn":{"role":"model","parts":[{"text":"The capital of '
        'France"}]}}}',
        '{"serverContent":{"modelTurn":{"role":"model","parts":[{"text":" is Paris."}]}}}',
        '{"serverContent":{"generationComplete":true}}',
        '{"serverContent":{"turnComplete":true},"usageMetadata":{"promptTokenCount":9,'
        '"responseTokenCount":7,"totalTokenCount":16,"promptTokensDetails":[{"modality":"TEXT",'
        '"tokenCount":9}],"responseTokensDetails":[{"modality":"TEXT","tokenCount":7}]}}',
    )
    assert summary(got) == [
        ("TextDelta", 1, "The capital of France"),
        ("TextDelta", 1, " is Paris."),
        ("GenerationComplete", 1, None),
        ("Usage", 1, 16),
        ("TurnComplete", 1, None),
    ]
    assert_seq(got)
    complete = got[-1]
    assert isinstance(complete, ev.TurnComplete) and not complete.interrupted
    usage_event = got[3]
    assert isinstance(usage_event, ev.Usage)
    assert usage_event.metadata.response_token_count == 7
    assert s.tracker.phase is TurnPhase.IDLE
    assert (s.tracker.turn, s.tracker.turns_completed, s.tracker.turn_text) == (2, 1, [])


# --- an audio turn, transcription, barge-in -------------------------------------------------------


def test_audio_turn_with_transcription_and_barge_in_11_2() -> None:
    s = Session(
        {
            "response_modalities": ["AUDIO"],
            "input_audio_transcription": {},
            "output_audio_transcription": {},
        }
    )
    assert s.setup["setup"]["inputAudioTranscription"] == {}
    assert s.setup["setup"]["outputAudioTranscription"] == {}
    s.feed('{"setupComplete":{}}')
    for _ in range(3):
        s.conn.send(encode.realtime_audio(b"\x00\x00" * 1600))
    got = s.feed(
        '{"serverContent":{"inputTranscription":{"text":"Tell me a long"}}}',
        '{"serverContent":{"inputTranscription":{"text":" story."}}}',
        audio_frame(),
        '{"serverContent":{"outputTranscription":{"text":"Once upon a time"}}}',
        audio_frame(),
    )
    assert s.tracker.phase is TurnPhase.GENERATING
    got += s.feed(
        '{"serverContent":{"interrupted":true}}',
        '{"serverContent":{"turnComplete":true},' + usage(120, 55) + "}",
    )
    assert s.tracker.phase is TurnPhase.IDLE
    got += s.feed(
        '{"serverContent":{"inputTranscription":{"text":"Actually, make it short."}}}',
        audio_frame(),
        '{"serverContent":{"outputTranscription":{"text":"Sure: the end."}}}',
        '{"serverContent":{"generationComplete":true}}',
        '{"serverContent":{"turnComplete":true},' + usage(190, 20) + "}",
    )
    audio = (len(PCM_OUT), "audio/pcm;rate=24000")
    assert summary(got) == [
        ("InputTranscript", 1, "Tell me a long"),
        ("InputTranscript", 1, " story."),
        ("AudioChunk", 1, audio),
        ("OutputTranscript", 1, "Once upon a time"),
        ("AudioChunk", 1, audio),
        ("Interrupted", 1, None),
        ("Usage", 1, 175),
        ("TurnComplete", 1, None),
        ("InputTranscript", 2, "Actually, make it short."),
        ("AudioChunk", 2, audio),
        ("OutputTranscript", 2, "Sure: the end."),
        ("GenerationComplete", 2, None),
        ("Usage", 2, 210),
        ("TurnComplete", 2, None),
    ]
    assert_seq(got)
    chunk = got[2]
    assert isinstance(chunk, ev.AudioChunk) and chunk.data == PCM_OUT
    _, text = s.conn.send(encode.audio_stream_end())
    assert json.loads(text) == {"realtimeInput": {"audioStreamEnd": True}}


def test_turn_complete_after_a_separate_interrupted_is_marked_interrupted() -> None:
    s = Session()
    s.feed('{"setupComplete":{}}', audio_frame())
    got = s.feed(
        '{"serverContent":{"interrupted":true}}', '{"serverContent":{"turnComplete":true}}'
    )
    complete = got[-1]
    assert isinstance(complete, ev.TurnComplete)
    assert complete.interrupted


def test_interrupted_and_turn_complete_in_one_message() -> None:
    s = Session()
    s.feed('{"setupComplete":{}}', audio_frame())
    got = s.feed('{"serverContent":{"interrupted":true,"turnComplete":true}}')
    assert summary(got) == [("Interrupted", 1, None), ("TurnComplete", 1, None)]
    complete = got[-1]
    assert isinstance(complete, ev.TurnComplete) and complete.interrupted


def test_turn_complete_on_the_last_model_turn_message() -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    got = s.feed(
        '{"serverContent":{"modelTurn":{"parts":[{"text":"Done."}]},"turnComplete":true,'
        '"turnCompleteReason":"NEED_MORE_INPUT"}}'
    )
    assert summary(got) == [("TextDelta", 1, "Done."), ("TurnComplete", 1, "NEED_MORE_INPUT")]
    assert s.tracker.turn == 2


# --- a tool call, cancelled by barge-in -----------------------------------------------------------


def test_tool_call_answered_then_cancelled_by_barge_in_11_3() -> None:
    config = {
        "response_modalities": ["AUDIO"],
        "tools": [
            {
                "function_declarations": [
                    {
                        "name": "get_weather",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"city": {"type": "STRING"}},
                        },
                    },
                    {
                        "name": "book_table",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"time": {"type": "STRING"}},
                        },
                    },
                ]
            }
        ],
        "session_resumption": {},
    }
    s = Session(config)
    assert s.setup == {
        "setup": {
            "model": "models/m",
            "generationConfig": {"responseModalities": ["AUDIO"]},
            "tools": [
                {
                    "functionDeclarations": [
                        {
                            "name": "get_weather",
                            "parameters": {
                                "type": "OBJECT",
                                "properties": {"city": {"type": "STRING"}},
                            },
                        },
                        {
                            "name": "book_table",
                            "parameters": {
                                "type": "OBJECT",
                                "properties": {"time": {"type": "STRING"}},
                            },
                        },
                    ]
                }
            ],
            "sessionResumption": {},
        }
    }
    got = s.feed(
        '{"setupComplete":{}}',
        '{"sessionResumptionUpdate":{"newHandle":"h-1","resumable":true}}',
    )
    assert s.tracker.handle == "h-1"
    got += s.feed(
        '{"sessionResumptionUpdate":{}}',
        '{"toolCall":{"functionCalls":[{"id":"fc-1","name":"get_weather","args":{"city":"Paris"}}]}}',
    )
    assert s.tracker.handle == "h-1"  # {} never erases the last resumable handle
    assert s.tracker.phase is TurnPhase.AWAITING_TOOL
    assert set(s.tracker.pending_calls) == {"fc-1"}

    _, text = s.conn.send(
        encode.tool_response(
            encode.function_responses(
                {"id": "fc-1", "name": "get_weather", "response": {"output": {"tempC": 18}}}
            )
        )
    )
    assert json.loads(text) == {
        "toolResponse": {
            "functionResponses": [
                {"id": "fc-1", "name": "get_weather", "response": {"output": {"tempC": 18}}}
            ]
        }
    }
    s.tracker.tool_responded(["fc-1"])
    assert s.tracker.phase is TurnPhase.GENERATING
    got += s.feed(
        audio_frame(),
        '{"serverContent":{"generationComplete":true}}',
        '{"serverContent":{"turnComplete":true},' + usage(50, 10) + "}",
        '{"sessionResumptionUpdate":{"newHandle":"h-2","resumable":true}}',
        '{"toolCall":{"functionCalls":[{"id":"fc-2","name":"book_table","args":{"time":"20:00"}}]}}',
        '{"serverContent":{"interrupted":true}}',
        '{"toolCallCancellation":{"ids":["fc-2"]}}',
        '{"serverContent":{"turnComplete":true}}',
    )
    assert s.tracker.pending_calls == {}
    got += s.feed(
        '{"serverContent":{"modelTurn":{"parts":[{"text":"Okay, I won\'t book it."}]}}}',
        '{"serverContent":{"generationComplete":true}}',
        '{"serverContent":{"turnComplete":true},' + usage(80, 8) + "}",
        '{"sessionResumptionUpdate":{"newHandle":"h-3","resumable":true}}',
    )
    assert summary(got) == [
        ("ResumptionUpdate", 1, ("h-1", True, None)),
        ("ResumptionUpdate", 1, (None, False, None)),
        ("ToolCall", 1, (("fc-1", "get_weather", {"city": "Paris"}),)),
        ("AudioChunk", 1, (len(PCM_OUT), "audio/pcm;rate=24000")),
        ("GenerationComplete", 1, None),
        ("Usage", 1, 60),
        ("TurnComplete", 1, None),
        ("ResumptionUpdate", 2, ("h-2", True, None)),
        ("ToolCall", 2, (("fc-2", "book_table", {"time": "20:00"}),)),
        ("Interrupted", 2, None),
        ("ToolCallCancelled", 2, ("fc-2",)),
        ("TurnComplete", 2, None),
        ("TextDelta", 3, "Okay, I won't book it."),
        ("GenerationComplete", 3, None),
        ("Usage", 3, 88),
        ("TurnComplete", 3, None),
        ("ResumptionUpdate", 4, ("h-3", True, None)),
    ]
    assert_seq(got)
    assert s.tracker.handle == "h-3"
    assert s.tracker.handles_received == 3
    assert s.tracker.turns_completed == 3


def test_non_blocking_calls_do_not_pause_the_turn() -> None:
    tracker = EventTracker("c1", non_blocking=frozenset({"book_table"}))
    s = Session(tracker=tracker)
    s.feed(
        '{"setupComplete":{}}',
        '{"toolCall":{"functionCalls":[{"id":"a","name":"book_table","args":{}}]}}',
    )
    assert s.tracker.phase is TurnPhase.GENERATING
    assert not s.tracker.awaiting_tool
    s.feed('{"toolCall":{"functionCalls":[{"id":"b","name":"get_weather"}]}}')
    assert s.tracker.phase is TurnPhase.AWAITING_TOOL
    s.tracker.tool_responded(["b"])
    assert s.tracker.phase is TurnPhase.GENERATING
    assert set(s.tracker.pending_calls) == {"a"}


def test_several_calls_in_one_message() -> None:
    s = Session()
    got = s.feed(
        '{"setupComplete":{}}',
        '{"toolCall":{"functionCalls":[{"id":"a","name":"f","args":{"x_y":1}},'
        '{"id":"b","name":"g"}]}}',
    )
    ((_, _, calls),) = summary(got)
    assert calls == (("a", "f", {"x_y": 1}), ("b", "g", None))
    s.tracker.tool_responded(["a"])
    assert s.tracker.phase is TurnPhase.AWAITING_TOOL
    s.tracker.tool_responded(["b"])
    assert s.tracker.phase is TurnPhase.GENERATING


# --- goAway and transparent replay ----------------------------------------------------------------


def test_go_away_and_transparent_replay_on_a_new_connection_11_4() -> None:
    tracker = EventTracker("c1")
    ledger = InputLedger()
    a = Session({"session_resumption": {}}, tracker=tracker)
    assert a.conn.index == 0  # setup is index 0
    a.feed(
        '{"setupComplete":{}}',
        '{"sessionResumptionUpdate":{"newHandle":"h-A1","resumable":true}}',
    )
    sent = [
        encode.realtime_audio(b"\x01\x00", rate=16000),
        encode.realtime_audio(b"\x02\x00", rate=16000),
        encode.client_content("chunk", turn_complete=False),
    ]
    for message in sent:
        index, _ = a.conn.send(message)
        ledger.sent(message, index)
    assert [p for e in ledger.exchanges for p, _ in e.inputs] == [1, 2, 3]
    got = a.feed(
        '{"sessionResumptionUpdate":{"newHandle":"h-A2","resumable":true,'
        '"lastConsumedClientMessageIndex":"2"}}'
    )
    (update,) = got
    assert isinstance(update, ev.ResumptionUpdate)
    assert update.last_consumed_client_message_index == 2
    ledger.consumed_index(2)
    assert [m for e in ledger.exchanges for _, m in e.inputs] == [sent[2]]

    chunk_c = encode.realtime_audio(b"\x03\x00")
    index, _ = a.conn.send(chunk_c)
    ledger.sent(chunk_c, index)
    assert index == 4
    got = a.feed('{"goAway":{"timeLeft":"10s"}}')
    assert summary(got) == [("GoAway", 1, 10.0)]
    assert a.conn.state is ConnectionState.GOING_AWAY
    a.conn.local_close()

    b_conn = LiveConnection(number=2)
    assert tracker.handle == "h-A2"
    setup = encode_setup({"session_resumption": {}}, "m", handle=tracker.handle)
    assert json.loads(b_conn.send_setup(setup))["setup"]["sessionResumption"] == {"handle": "h-A2"}
    assert b_conn.index == 0
    tracker.events(b_conn.receive(b'{"setupComplete":{}}'))
    ledger.new_connection()
    plan = ledger.plan(have_handle=True)
    assert plan.resume and plan.history is None
    assert plan.messages == [sent[2], chunk_c]  # what connection A did not consume
    assert [b_conn.send(m)[0] for m in plan.messages] == [1, 2]
    chunk_d = encode.realtime_audio(b"\x04\x00")
    index, _ = b_conn.send(chunk_d)
    ledger.sent(chunk_d, index)
    assert index == 3
    assert [m for e in ledger.exchanges for _, m in e.inputs] == [sent[2], chunk_c, chunk_d]
    got = tracker.events(
        b_conn.receive(
            b'{"sessionResumptionUpdate":{"newHandle":"h-B1","resumable":true,'
            b'"lastConsumedClientMessageIndex":"3"}}'
        )
    )
    (update,) = got
    assert isinstance(update, ev.ResumptionUpdate)
    ledger.consumed_index(update.last_consumed_client_message_index or 0)
    assert [m for e in ledger.exchanges for _, m in e.inputs] == []
    assert tracker.handle == "h-B1"


# --- other server messages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time_left", "seconds"),
    [('"10s"', 10.0), ('"1.500s"', 1.5), ('"9.5s"', 9.5), ('"0.000000001s"', 1e-9), ("3", 3.0)],
)
def test_go_away_time_left_in_seconds(time_left: str, seconds: float) -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    (go_away,) = s.feed('{"goAway":{"timeLeft":' + time_left + "}}")
    assert isinstance(go_away, ev.GoAway)
    assert go_away.time_left == pytest.approx(seconds)


def test_go_away_without_time_left_means_now() -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    (go_away,) = s.feed('{"goAway":{}}')
    assert isinstance(go_away, ev.GoAway) and go_away.time_left == 0.0


@pytest.mark.parametrize(
    ("updates", "handle"),
    [
        (['{"newHandle":"h1","resumable":true}', "{}"], "h1"),
        (['{"newHandle":"h1","resumable":true}', '{"newHandle":"h2","resumable":false}'], "h1"),
        (['{"newHandle":"h1","resumable":true}', '{"newHandle":"","resumable":true}'], "h1"),
        (['{"newHandle":"h1","resumable":true}', '{"resumable":true}'], "h1"),
        (['{"newHandle":"h1","resumable":true}', '{"newHandle":"h2","resumable":true}'], "h2"),
        (['{"newHandle":"h1"}'], None),
        (["{}"], None),
    ],
)
def test_latest_resumable_handle(updates: list[str], handle: str | None) -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    for update in updates:
        s.feed('{"sessionResumptionUpdate":' + update + "}")
    assert s.tracker.handle == handle


@pytest.mark.parametrize("index", ['"42"', "42", "42.0"])
def test_consumed_index_as_string_or_number(index: str) -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    (update,) = s.feed(
        '{"sessionResumptionUpdate":{"newHandle":"h","resumable":true,'
        '"lastConsumedClientMessageIndex":' + index + "}}"
    )
    assert isinstance(update, ev.ResumptionUpdate)
    assert update.last_consumed_client_message_index == 42


def test_handles_never_show_in_reprs() -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    (update,) = s.feed('{"sessionResumptionUpdate":{"newHandle":"SECRET-HANDLE","resumable":true}}')
    assert "SECRET-HANDLE" not in repr(update)
    assert "SECRET-HANDLE" not in str(update)
    assert "SECRET-HANDLE" not in repr(s.tracker)
    assert update == ev.ResumptionUpdate(
        conversation="c1", seq=1, turn=1, handle="SECRET-HANDLE", resumable=True
    )


def test_other_parts_become_model_parts() -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    got = s.feed(
        '{"serverContent":{"modelTurn":{"parts":['
        '{"executableCode":{"language":"PYTHON","code":"print(1)"}},'
        '{"codeExecutionResult":{"outcome":"OUTCOME_OK","output":"1"}},'
        '{"text":"thinking...","thought":true},'
        '{"inlineData":{"mimeType":"image/png","data":"iVBORw=="}}]}}}'
    )
    assert [type(e).__name__ for e in got] == ["ModelPart"] * 4
    parts = [e.part for e in got if isinstance(e, ev.ModelPart)]
    assert parts[0].executable_code and parts[0].executable_code.code == "print(1)"
    assert parts[1].code_execution_result and parts[1].code_execution_result.output == "1"
    assert parts[2].thought is True and parts[2].text == "thinking..."
    assert parts[3].inline_data and parts[3].inline_data.data == base64.b64decode("iVBORw==")
    assert s.tracker.turn_text == []  # thoughts are not the answer


@pytest.mark.parametrize(
    "part",
    [
        '{"text":"hi","thought":false}',
        '{"text":"hi","futureField":1}',
        '{"inlineData":{"mimeType":"audio/pcm;rate=24000","data":"AAA="},"futureField":1}',
    ],
)
def test_unknown_fields_in_a_part_do_not_change_its_event(part: str) -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    (event,) = s.feed('{"serverContent":{"modelTurn":{"parts":[' + part + "]}}}")
    assert isinstance(event, ev.TextDelta | ev.AudioChunk)


def test_grounding_and_url_context_metadata() -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    (event,) = s.feed(
        '{"serverContent":{"groundingMetadata":{"webSearchQueries":["weather paris"]},'
        '"urlContextMetadata":{"urlMetadata":[{"retrievedUrl":"https://x.test"}]}}}'
    )
    assert isinstance(event, ev.Grounding)
    assert event.grounding_metadata is not None
    assert event.grounding_metadata.web_search_queries == ["weather paris"]
    assert event.url_context_metadata is not None


def test_vertex_usage_names_are_renamed() -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    (event,) = s.feed('{"usageMetadata":{"candidatesTokenCount":5,"totalTokenCount":9}}')
    assert isinstance(event, ev.Usage)
    assert event.metadata.response_token_count == 5
    assert s.tracker.usage == event.metadata


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ('{"voiceActivity":{"type":"ACTIVITY_START","audioOffset":"1.200s"}}', "ACTIVITY_START"),
        (
            '{"voiceActivityDetectionSignal":{"vadSignalType":"VAD_SIGNAL_TYPE_EOS"}}',
            "VAD_SIGNAL_TYPE_EOS",
        ),
    ],
)
def test_voice_activity(frame: str, kind: str) -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    (event,) = s.feed(frame)
    assert isinstance(event, ev.VoiceActivity) and event.kind == kind


def test_unknown_messages_and_empty_content_make_no_events() -> None:
    s = Session()
    got = s.feed(
        '{"setupComplete":{},"futureTopLevel":1}',
        '{"futureMessage":{"x":1}}',
        '{"serverContent":{}}',
        '{"serverContent":{"inputTranscription":{}}}',
        '{"serverContent":{"outputTranscription":{"text":""}}}',
    )
    assert got == []
    assert s.tracker.phase is TurnPhase.IDLE


@pytest.mark.parametrize("model_turn", ["{}", '{"role":"model"}', '{"parts":[]}'])
def test_model_turn_without_parts_is_accepted(model_turn: str) -> None:
    s = Session()
    s.feed('{"setupComplete":{}}')
    assert s.feed('{"serverContent":{"modelTurn":' + model_turn + "}}") == []


def test_connection_lost_mid_turn_closes_the_turn() -> None:
    s = Session()
    s.feed('{"setupComplete":{}}', audio_frame())
    got = s.tracker.connection_lost()
    assert summary(got) == [("Interrupted", 1, None), ("TurnComplete", 1, "CONNECTION_LOST")]
    complete = got[-1]
    assert isinstance(complete, ev.TurnComplete) and complete.interrupted
    assert s.tracker.turn == 2 and s.tracker.phase is TurnPhase.IDLE
    assert s.tracker.connection_lost() == []  # idle: nothing to close


def test_seq_continues_across_connections_and_local_events() -> None:
    tracker = EventTracker("c1")
    first = Session(tracker=tracker)
    got = first.feed('{"setupComplete":{}}', '{"serverContent":{"turnComplete":true}}')
    got.append(tracker.emit(ev.Reconnecting, reason="drop", attempt=1, delay=0.1))
    second = Session(tracker=tracker)
    got += second.feed('{"setupComplete":{}}', '{"serverContent":{"turnComplete":true}}')
    assert_seq(got)
    assert [e.turn for e in got] == [1, 2, 2]
