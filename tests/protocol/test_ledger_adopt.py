"""Taking a conversation over from its durable record (sans-IO): ``InputLedger.adopt`` and
``ProtocolSession.adopt``.

A cluster worker that takes over a conversation feeds the ledger the input no handle covers
(tagged with its stream ids), the answers of the exchanges already answered (keyed by the tag
of the exchange's last message) and the tags of exchanges whose answer had begun. The first
plan must then resume / restore / replay exactly as a reconnect in one process would: nothing
answered is asked again, nothing unanswered is lost, and the order is kept.
"""

from __future__ import annotations

import json
from typing import Any

from google.genai import types

from liveactors import events as ev
from liveactors._protocol import encode
from liveactors._protocol.ledger import HandleMode, InputLedger, ResumePlan, history_message
from liveactors._protocol.session import ProtocolSession
from liveactors._protocol.setup import encode_setup

AUDIO = encode.realtime_audio(b"\x01\x00\x02\x00")
CONTINUE = {"clientContent": {"turnComplete": True}}
SETUP = encode_setup({"response_modalities": ["TEXT"], "session_resumption": {}}, "models/m")
READY = b'{"setupComplete":{"sessionId":"s-9"}}'


def ask(text: str) -> dict[str, Any]:
    return encode.client_content(text)


def context(text: str) -> dict[str, Any]:
    return encode.client_content(text, turn_complete=False)


def tool_response() -> dict[str, Any]:
    return encode.tool_response([types.FunctionResponse(id="c1", name="f", response={"x": 1})])


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def model(text: str) -> dict[str, Any]:
    return {"role": "model", "parts": [{"text": text}]}


def adopted(
    mode: HandleMode,
    inputs: list[tuple[str, dict[str, Any]]],
    *,
    answered: dict[str, list[str]] | None = None,
    seen: set[str] | None = None,
    transcript: list[dict[str, Any]] | None = None,
    have_handle: bool = True,
) -> tuple[InputLedger, ResumePlan]:
    """A new ledger that adopted ``inputs`` (sent one second apart), and its first plan."""
    ledger = InputLedger()
    ledger.adopt(
        inputs=[(tag, message, float(i)) for i, (tag, message) in enumerate(inputs)],
        answered=answered or {},
        seen=seen or set(),
        mode=mode,
        transcript=transcript or [],
    )
    ledger.new_connection()
    return ledger, ledger.plan(have_handle=have_handle)


# -- InputLedger.adopt -------------------------------------------------------------------------


def test_per_turn_with_a_handle_resumes_restores_answered_replays_unanswered() -> None:
    ledger, plan = adopted(
        HandleMode.PER_TURN,
        [("1-0", ask("q1")), ("2-0", context("ctx")), ("3-0", ask("q2")), ("4-0", ask("q3"))],
        answered={"1-0": ["a", "1"]},
    )
    assert ledger.mode is HandleMode.PER_TURN
    assert plan.resume
    # The answered exchange goes back as history (not asked again) ...
    assert plan.history == history_message([user("q1"), model("a1")])
    # ... the unanswered ones are sent again, in order, context included.
    assert plan.replay == (context("ctx"), ask("q2"), ask("q3"))
    assert not plan.prompt_continue
    assert plan.messages == [plan.history, context("ctx"), ask("q2"), ask("q3")]
    # The model answers the oldest unanswered one first.
    answering = ledger.answering()
    assert answering is not None and answering.last_tag == "3-0"
    assert ledger.outstanding
    assert ledger.unanswered_input() == [context("ctx"), ask("q2"), ask("q3")]


def test_per_turn_with_everything_answered_resumes_without_asking_anything() -> None:
    ledger, plan = adopted(
        HandleMode.PER_TURN,
        [("1-0", ask("q1")), ("2-0", ask("q2"))],
        answered={"1-0": ["a1"], "2-0": ["a2"]},
    )
    assert plan.resume and plan.replay == () and not plan.prompt_continue
    assert plan.history == history_message([user("q1"), model("a1"), user("q2"), model("a2")])
    assert not ledger.outstanding and ledger.unanswered_input() == []


def test_unknown_mode_with_an_answered_exchange_starts_fresh_restoring_the_transcript() -> None:
    covered = [user("q0"), model("a0")]
    ledger, plan = adopted(
        HandleMode.UNKNOWN,
        [("1-0", ask("q1")), ("2-0", ask("q2"))],
        answered={"1-0": ["a1"]},
        transcript=covered,
    )
    # The handle cannot tell whether it holds q1's answer: a fresh session, restored.
    assert not plan.resume
    assert plan.history == history_message([*covered, user("q1"), model("a1")])
    assert plan.replay == (ask("q2"),)
    assert list(ledger.transcript) == covered


def test_unknown_mode_without_anything_uncovered_resumes() -> None:
    _, plan = adopted(HandleMode.UNKNOWN, [], transcript=[user("q0"), model("a0")])
    assert plan.resume and plan.history is None and plan.replay == ()


def test_no_handle_starts_fresh_even_per_turn() -> None:
    _, plan = adopted(
        HandleMode.PER_TURN,
        [("1-0", ask("q1")), ("2-0", ask("q2"))],
        answered={"1-0": ["a1"]},
        have_handle=False,
    )
    assert not plan.resume
    assert plan.history == history_message([user("q1"), model("a1")])
    assert plan.replay == (ask("q2"),)


def test_once_mode_with_output_seen_resumes_and_prompts_to_continue() -> None:
    ledger, plan = adopted(HandleMode.ONCE, [("1-0", ask("q1"))], seen={"1-0"})
    # The service consumed q1 (its answer had begun): resume and ask it to finish, never
    # send q1 again.
    assert plan.resume
    assert plan.replay == ()
    assert plan.prompt_continue
    assert plan.messages == [CONTINUE]
    answering = ledger.answering()
    assert answering is not None and answering.output_seen


def test_once_mode_without_output_seen_starts_fresh_and_asks_again() -> None:
    _, plan = adopted(HandleMode.ONCE, [("1-0", ask("q1"))])
    assert not plan.resume
    assert plan.replay == (ask("q1"),)
    assert not plan.prompt_continue


def test_tool_responses_are_never_replayed() -> None:
    ledger, plan = adopted(
        HandleMode.PER_TURN,
        [("1-0", ask("q1")), ("2-0", tool_response()), ("3-0", ask("q2"))],
        answered={"1-0": ["a1"]},
    )
    assert plan.resume
    assert plan.history == history_message([user("q1"), model("a1")])
    assert plan.replay == (ask("q2"),)
    assert all("toolResponse" not in m for m in plan.messages)
    assert ledger.last_sent_tag == "3-0"


def test_an_audio_stream_answered_by_server_vad_is_keyed_by_its_last_tag() -> None:
    # What the journal writes: a live ledger whose stream server-side VAD answered names the
    # exchange by the tag of its last chunk.
    live = InputLedger(journaling=True)
    for tag in ("1-0", "2-0", "3-0"):
        live.sent(AUDIO, None, 0.0, tag)
    live.model_output("heard you")
    exchange = live.turn_complete()
    assert exchange is not None
    assert [e.last_tag for e in live.answered_log] == ["3-0"]

    # Adopting it with that key: the stream is answered (not sent again), new input after it
    # is a new exchange.
    ledger, plan = adopted(
        HandleMode.PER_TURN,
        [("1-0", AUDIO), ("2-0", AUDIO), ("3-0", AUDIO), ("4-0", ask("next"))],
        answered={"3-0": ["heard you"]},
    )
    assert plan.resume
    assert plan.history == history_message([model("heard you")])
    assert plan.replay == (ask("next"),)
    assert AUDIO not in plan.messages
    assert len(ledger.exchanges) == 2


def test_an_unanswered_audio_stream_is_replayed_whole() -> None:
    _, plan = adopted(
        HandleMode.PER_TURN,
        [("1-0", ask("q1")), ("2-0", AUDIO), ("3-0", AUDIO)],
        answered={"1-0": ["a1"]},
    )
    assert plan.resume and plan.replay == (AUDIO, AUDIO)


def test_earliest_held_tag_moves_past_covered_input() -> None:
    ledger = InputLedger()
    assert ledger.earliest_held_tag() is None
    ledger.resumption_update(resumable=True)  # the handle at setup
    ledger.sent(ask("q1"), 1, 0.0, "1-0")
    assert ledger.earliest_held_tag() == "1-0"
    ledger.model_output("a1")
    ledger.turn_complete()
    assert ledger.earliest_held_tag() == "1-0"  # answered, not covered by a handle yet
    ledger.sent(ask("q2"), 2, 1.0, "2-0")
    ledger.resumption_update(resumable=True)  # covers q1 (answered before it), not q2
    assert ledger.mode is HandleMode.PER_TURN
    assert ledger.earliest_held_tag() == "2-0"
    ledger.model_output("a2")
    ledger.turn_complete()
    ledger.resumption_update(resumable=True)
    assert ledger.earliest_held_tag() is None  # everything covered
    assert [c["parts"][0]["text"] for c in ledger.transcript] == ["q1", "a1", "q2", "a2"]


def test_earliest_held_tag_after_adopt_is_the_oldest_uncovered_input() -> None:
    ledger, _ = adopted(
        HandleMode.PER_TURN,
        [("5-0", ask("q1")), ("6-0", ask("q2"))],
        answered={"5-0": ["a1"]},
    )
    # q1 goes back as history, never as a question; but until a handle covers that history
    # the record must keep q1 and its answer (another owner could need them again).
    assert ledger.earliest_held_tag() == "5-0"
    ledger.model_output("a2")
    ledger.turn_complete()
    ledger.resumption_update(resumable=True)
    ledger.resumption_update(resumable=True)
    assert ledger.earliest_held_tag() is None


def test_last_sent_tag_is_the_latest_tagged_input() -> None:
    ledger = InputLedger()
    assert ledger.last_sent_tag is None
    ledger.sent(ask("q1"), 1, 0.0, "1-0")
    assert ledger.last_sent_tag == "1-0"
    ledger.sent(ask("untagged"), 2, 0.0)
    assert ledger.last_sent_tag == "1-0"
    ledger.sent(tool_response(), 3, 0.0, "2-0")  # a tool response joins no exchange ...
    assert ledger.last_sent_tag == "2-0"  # ... but it was sent: the stream may drop it
    ledger.sent(encode.audio_stream_end(), 4, 0.0, "3-0")  # a marker asking nothing
    assert ledger.last_sent_tag == "3-0"


# -- ProtocolSession.adopt ---------------------------------------------------------------------


def connect(session: ProtocolSession, number: int = 1) -> dict[str, Any]:
    setup: dict[str, Any] = json.loads(session.connect(number))
    assert session.receive_setup(READY)
    session.connected()
    return setup


def test_adopting_an_open_turn_closes_it_after_the_last_seq_and_advances_the_turn() -> None:
    session = ProtocolSession("c1", setup=SETUP)
    cut = session.adopt(
        handle="h-41",
        seq=41,
        turn=7,
        turn_open=True,
        started=True,
        inputs=[("1-0", ask("q1"), 0.0)],
        answered={},
        seen={"1-0"},
        mode=HandleMode.PER_TURN,
        transcript=[],
    )
    assert [type(e) for e in cut] == [ev.Interrupted, ev.TurnComplete]
    assert [e.seq for e in cut] == [42, 43]
    assert [e.turn for e in cut] == [7, 7]
    assert all(e.conversation == "c1" for e in cut)
    done = cut[1]
    assert isinstance(done, ev.TurnComplete)
    assert done.reason == "CONNECTION_LOST" and done.interrupted
    # The answer is regenerated under the next turn number, numbered after the cut.
    assert session.tracker.turn == 8
    later = session.emit(ev.Reconnecting, attempt=1, delay=0.0, reason="adopted")
    assert (later.seq, later.turn) == (44, 8)
    # The first connection resumes from the adopted handle and sends q1 again.
    setup = connect(session)
    assert setup["setup"]["sessionResumption"]["handle"] == "h-41"
    assert [json.loads(f) for f in session.replay()] == [ask("q1")]


def test_adopting_a_closed_turn_emits_nothing_and_keeps_the_numbers() -> None:
    session = ProtocolSession("c1", setup=SETUP)
    cut = session.adopt(
        handle=None,
        seq=12,
        turn=3,
        turn_open=False,
        started=True,
        inputs=[],
        answered={},
        seen=set(),
        mode=HandleMode.UNKNOWN,
        transcript=[user("q0"), model("a0")],
    )
    assert cut == []
    assert session.tracker.turn == 3
    event = session.emit(ev.Reconnecting, attempt=1, delay=0.0, reason="adopted")
    assert (event.seq, event.turn) == (13, 3)
    # No handle: a fresh session restoring the covered history.
    setup = connect(session)
    assert "handle" not in setup["setup"].get("sessionResumption", {})
    assert [json.loads(f) for f in session.replay()] == [history_message([user("q0"), model("a0")])]


def test_adopting_a_started_conversation_ends_the_initial_history() -> None:
    session = ProtocolSession("c1", setup=SETUP, initial_history=True)
    session.adopt(
        handle="h-1",
        seq=5,
        turn=2,
        turn_open=False,
        started=True,
        inputs=[],
        answered={},
        seen=set(),
        mode=HandleMode.PER_TURN,
        transcript=[],
    )
    connect(session)
    session.replay()
    # clientContent is now a question (it joins an exchange), not more initial history.
    _, exchange = session.send_input(ask("q"), now=0.0, tag="9-0")
    assert exchange is not None
    assert session.ledger.last_sent_tag == "9-0"
