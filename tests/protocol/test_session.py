"""``ProtocolSession``: one conversation's protocol state across connections, driven the way the
supervisor drives it (frames and commands in, frames and events out), with no socket or clock."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.genai import types

from liveactors import InvalidCommand, SessionRejected
from liveactors import events as ev
from liveactors._errors import CloseInfo
from liveactors._protocol import encode
from liveactors._protocol.connection import ConnectionState
from liveactors._protocol.session import ProtocolSession
from liveactors._protocol.setup import encode_setup

SETUP = encode_setup({"response_modalities": ["TEXT"], "session_resumption": {}}, "models/m")
READY = b'{"setupComplete":{"sessionId":"s-1"}}'


def frame(**message: Any) -> bytes:
    return json.dumps(message).encode()


def answer(text: str) -> list[bytes]:
    return [
        frame(serverContent={"modelTurn": {"parts": [{"text": text}]}}),
        frame(serverContent={"turnComplete": True}),
    ]


def handle(name: str) -> bytes:
    return frame(sessionResumptionUpdate={"newHandle": name, "resumable": True})


def up(session: ProtocolSession, number: int = 1) -> tuple[dict[str, Any], ev.Event]:
    """Connect, set up, replay: the setup sent and the Connected event."""
    setup = json.loads(session.connect(number))
    assert not session.receive_setup(b"{}")  # bare {} frames may come first
    assert session.receive_setup(READY)
    return setup, session.connected()


def feed(session: ProtocolSession, *frames: bytes) -> list[tuple[ev.Event, int | None]]:
    """Each event of ``frames`` with the exchange it was accounted to, as the reader does."""
    out = []
    for raw in frames:
        for event in session.receive(raw):
            out.append((event, session.account(event)))
    return out


def test_a_conversation_across_a_dropped_connection() -> None:
    session = ProtocolSession("c1", setup=SETUP)
    setup, connected = up(session)
    assert "handle" not in setup["setup"].get("sessionResumption", {})
    assert isinstance(connected, ev.Connected)
    assert (connected.session_id, connected.resumed, connected.connection) == ("s-1", False, 1)
    assert session.replay() == [] and session.restored() is None
    assert session.replay_trimmed() is None

    feed(session, handle("h-0"))  # a handle at setup, and one after each turn: per turn
    text, exchange = session.send_input(encode.client_content("q1"), now=0.0)
    assert json.loads(text) == encode.client_content("q1") and exchange == 1
    assert session.outstanding and session.answering == 1
    got = feed(session, *answer("a1"), handle("h-1"))
    assert [(type(e).__name__, n) for e, n in got] == [
        ("TextDelta", 1),
        ("TurnComplete", 1),
        ("ResumptionUpdate", None),
    ]
    assert not session.outstanding and session.turns_completed == 1

    session.send_input(encode.client_content("q2"), now=1.0)
    feed(session, frame(serverContent={"modelTurn": {"parts": [{"text": "half"}]}}))
    assert session.turn_open
    cut = session.connection_lost()  # the socket died mid-answer
    assert [type(e).__name__ for e in cut] == ["Interrupted", "TurnComplete"]
    last_seq = cut[-1].seq
    assert session.connection.state is ConnectionState.CLOSED

    setup, connected = up(session, 2)
    assert setup["setup"]["sessionResumption"]["handle"] == "h-1"
    assert connected.resumed  # type: ignore[attr-defined]
    # q1 is behind the handle; q2 goes again, before any new input.
    assert [json.loads(f) for f in session.replay()] == [encode.client_content("q2")]
    feed(session, *answer("a2"))
    assert not session.outstanding
    assert connected.seq == last_seq + 1  # seq continues across connections


def test_nothing_may_be_sent_before_setup_completes() -> None:
    session = ProtocolSession("c1", setup=SETUP)
    with pytest.raises(InvalidCommand, match="closed"):
        session.send_input(encode.client_content("early"), now=0.0)
    session.connect(1)
    with pytest.raises(InvalidCommand, match="before the server confirmed setup"):
        session.send_input(encode.client_content("early"), now=0.0)


def test_a_refused_handle_means_a_fresh_session_that_restores_the_transcript() -> None:
    session = ProtocolSession("c1", setup=SETUP, handle="stored")
    setup, _ = up(session)
    assert setup["setup"]["sessionResumption"]["handle"] == "stored"
    session.send_input(encode.client_content("q1"), now=0.0)
    feed(session, *answer("a1"))
    session.connection_lost()
    session.handle_refused()
    setup, connected = up(session, 2)
    assert "handle" not in setup["setup"]["sessionResumption"]
    assert not connected.resumed  # type: ignore[attr-defined]
    (history,) = [json.loads(f) for f in session.replay()]
    assert history["clientContent"]["turns"][0] == {"role": "user", "parts": [{"text": "q1"}]}
    restored = session.restored()
    assert isinstance(restored, ev.HistoryRestored) and restored.turns == 2


def test_tool_responses_answer_only_pending_calls() -> None:
    session = ProtocolSession("c1", setup=SETUP)
    up(session)
    session.send_input(encode.client_content("call f"), now=0.0)
    call = {"functionCalls": [{"id": "fc-1", "name": "f", "args": {}}]}
    feed(session, frame(toolCall=call))
    assert session.turn_open  # waits for the response
    late = types.FunctionResponse(id="fc-9", name="f", response={})
    with pytest.raises(InvalidCommand, match=r"fc-9.*pending: fc-1"):
        session.check_tool_responses([late])
    ok = types.FunctionResponse(id="fc-1", name="f", response={"x": 1})
    session.check_tool_responses([ok])
    text = session.send_tool_responses([ok, late])
    assert text is not None
    assert [r["id"] for r in json.loads(text)["toolResponse"]["functionResponses"]] == ["fc-1"]
    assert session.send_tool_responses([ok]) is None  # answered already: nothing to send


def test_initial_history_is_seeded_then_questions_are_asked() -> None:
    session = ProtocolSession("c1", setup=SETUP, initial_history=True, text_as_realtime=True)
    up(session)
    seed = session.text_message("earlier words", turn_complete=True)
    assert "clientContent" in seed  # history goes as clientContent while seeding
    assert session.send_input(seed, now=0.0)[1] is None  # history asks nothing
    question = session.text_message("now a question", turn_complete=True)
    assert question == encode.realtime_text("now a question")
    assert session.send_input(question, now=1.0)[1] == 1


def test_undelivered_hands_back_unanswered_questions_then_queued_input() -> None:
    session = ProtocolSession("c1", setup=SETUP)
    assert session.undelivered([]) is None
    up(session)
    session.send_input(encode.client_content("asked"), now=0.0)
    session.connection_lost()
    event = session.undelivered([encode.client_content("queued")])
    assert isinstance(event, ev.InputUndelivered)
    assert event.commands == (encode.client_content("asked"), encode.client_content("queued"))


def test_vad_commands_follow_the_vad_mode() -> None:
    automatic = ProtocolSession("c1", setup=SETUP)
    automatic.require_vad("audio_stream_end", manual=False)
    with pytest.raises(InvalidCommand, match="needs manual VAD"):
        automatic.require_vad("activity_start", manual=True)
    manual = ProtocolSession("c1", setup=SETUP, manual_vad=True)
    manual.require_vad("activity_end", manual=True)
    with pytest.raises(InvalidCommand, match="with manual VAD use activity_end"):
        manual.require_vad("audio_stream_end", manual=False)


def test_a_rejection_names_the_setup_fields_sent_without_their_values() -> None:
    session = ProtocolSession("c1", setup=SETUP)
    rejected = SessionRejected("invalid argument", CloseInfo(1007, "invalid argument"))
    explained = session.explain_rejection(rejected)
    assert type(explained) is SessionRejected
    assert "'models/m'" in str(explained)
    assert "generationConfig.responseModalities=['TEXT']" in str(explained)
    other = SessionRejected("auth", CloseInfo(1011, "x"))
    assert session.explain_rejection(other) is other


@pytest.mark.parametrize("bad", [-1, "15", True, float("nan")])
def test_the_replay_window_must_be_seconds(bad: Any) -> None:
    with pytest.raises(InvalidCommand, match="replay_window"):
        ProtocolSession("c1", setup=SETUP, replay_window=bad)


def test_a_replay_without_its_oldest_media_is_reported_once_even_if_a_connect_fails() -> None:
    session = ProtocolSession("c1", setup=SETUP, replay_window=1.0)
    up(session)
    for n in range(30):  # three seconds of stream; no turn
        session.send_input(encode.realtime_audio(bytes([n, 0])), now=n / 10)
    session.connection_lost()
    session.connect(2)  # this attempt fails before its replay goes out ...
    session.connection_lost()
    up(session, 3)  # ... the next one replays the window and reports what it lacks
    assert 10 <= len(session.replay()) <= 11
    trimmed = session.replay_trimmed()
    assert isinstance(trimmed, ev.ReplayTrimmed)
    assert trimmed.chunks == session.ledger.trimmed
    assert trimmed.seconds == pytest.approx(trimmed.chunks / 10)
    assert session.replay_trimmed() is None
