"""``InputLedger`` (docs/protocol.md, "Session resumption"): exchanges, handle modes, coverage,
``handoff_ready`` and resume plans, walked through realistic message sequences.

Two styles: direct calls with exact expectations on the ledger and its plans, and sweeps that
drop the connection at every point of a conversation against the model service of
``ledger_model`` and then check what the service ends up holding.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types
from ledger_model import Driver, ModelServer, answer, ask

from liveactors._protocol import encode
from liveactors._protocol.ledger import (
    Exchange,
    HandleMode,
    InputLedger,
    ResumePlan,
    history_message,
    is_trigger,
)

AUDIO = encode.realtime_audio(b"\x01\x00\x02\x00")
CONTINUE = {"clientContent": {"turnComplete": True}}


def context(text: str) -> dict[str, Any]:
    return encode.client_content(text, turn_complete=False)


def tool_response() -> dict[str, Any]:
    return encode.tool_response([types.FunctionResponse(id="c1", name="f", response={"x": 1})])


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def model(text: str) -> dict[str, Any]:
    return {"role": "model", "parts": [{"text": text}]}


class Client:
    """The supervisor's side of the ledger: connections, client indices, sends."""

    def __init__(self, ledger: InputLedger | None = None) -> None:
        self.ledger = ledger if ledger is not None else InputLedger()
        self.index = 0
        self.connect(have_handle=False)

    def connect(self, *, have_handle: bool, lost: bool = False) -> ResumePlan:
        if lost:
            self.ledger.turn_lost()
        self.ledger.new_connection()
        plan = self.ledger.plan(have_handle=have_handle)
        self.index = len(plan.messages)  # the plan goes out first, with indices 1..k
        return plan

    def send(self, message: dict[str, Any]) -> Exchange | None:
        self.index += 1
        return self.ledger.sent(message, self.index)

    def turn(self, *texts: str) -> Exchange | None:
        for text in texts:
            self.ledger.model_output(text)
        return self.ledger.turn_complete()

    def handle(self, *, resumable: bool = True) -> None:
        self.ledger.resumption_update(resumable=resumable)


def per_turn_client() -> Client:
    """A client whose ledger learned PER_TURN: setup handle, one turn, post-turn handle."""
    c = Client()
    c.handle()
    c.send(ask("q0"))
    c.turn("a0")
    c.handle()
    assert c.ledger.mode is HandleMode.PER_TURN
    assert not c.ledger.exchanges
    return c


def once_client() -> Client:
    """A client whose ledger learned ONCE: one handle, then two turns with no update."""
    c = Client()
    c.handle()
    c.send(ask("q0"))
    c.turn("a0")
    c.send(ask("q1"))
    c.ledger.model_output("a1")
    c.ledger.turn_complete()
    assert c.ledger.mode is HandleMode.ONCE
    assert not c.ledger.exchanges  # once: answered means covered
    return c


# -- triggers and exchanges -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "trigger"),
    [
        (encode.client_content("hi"), True),
        (encode.client_content("hi", turn_complete=False), False),
        (encode.client_content(None, turn_complete=True), True),
        (encode.realtime_text("hi"), True),
        ({"realtimeInput": {"text": ""}}, False),
        (AUDIO, False),
        (encode.realtime_video(b"\xff\xd8"), False),
        (encode.audio_stream_end(), True),
        (encode.activity_start(), False),
        (encode.activity_end(), True),
        (tool_response(), False),
    ],
)
def test_is_trigger(message: dict[str, Any], trigger: bool) -> None:
    assert is_trigger(message) is trigger


def test_input_up_to_a_trigger_forms_one_exchange() -> None:
    c = Client()
    first = c.send(context("Some context."))
    assert first is not None and not first.triggered
    assert c.send(AUDIO) is first
    assert c.send(ask(" Question?")) is first
    assert first.triggered
    assert first.number == 1
    assert [p for p, _ in first.inputs] == [1, 2, 3]
    assert first.position == 3  # the trigger's position
    assert first.user_text == ["Some context.", " Question?"]
    second = c.send(ask("Next"))
    assert second is not None and second is not first
    assert second.number == 2
    assert list(c.ledger.exchanges) == [first, second]


def test_tool_responses_join_no_exchange_and_take_no_position() -> None:
    c = Client()
    c.send(ask("q1"))
    assert c.send(tool_response()) is None
    second = c.send(ask("q2"))
    assert second is not None
    assert [p for p, _ in second.inputs] == [2]
    assert all("toolResponse" not in m for e in c.ledger.exchanges for _, m in e.inputs)


def test_exchange_contents_prefer_user_text_then_input_transcript() -> None:
    typed = Exchange(1, user_text=["typed"], input_transcript=["spoken"], model_text=["a", "b"])
    assert typed.contents() == [user("typed"), model("ab")]
    spoken = Exchange(2, input_transcript=["hel", "lo"], model_text=["hi"])
    assert spoken.contents() == [user("hello"), model("hi")]
    unanswered = Exchange(3, user_text=["q"])
    assert unanswered.contents() == [user("q")]
    assert Exchange(4).contents() == []


def test_model_output_and_transcripts_land_on_the_exchange_being_answered() -> None:
    c = Client()
    c.send(AUDIO)
    c.send(AUDIO)
    c.ledger.input_transcript("What is ")
    c.ledger.input_transcript("two plus two?")
    c.ledger.model_output("Four")  # an AUDIO turn's output transcript
    c.ledger.model_output()  # an audio chunk: output without text
    c.ledger.model_output(".")
    exchange = c.ledger.turn_complete()
    assert exchange is not None
    # Server-side VAD answered the open exchange: that closes it.
    assert exchange.triggered and exchange.answered and exchange.output_seen
    assert exchange.position == 2
    assert exchange.contents() == [user("What is two plus two?"), model("Four.")]
    nxt = c.send(AUDIO)
    assert nxt is not exchange  # later audio starts the next exchange


def test_answers_go_to_questions_in_the_order_they_were_asked() -> None:
    c = Client()
    c.send(ask("q1"))
    c.send(ask("q2"))
    first = c.turn("a1")
    second = c.turn("a2")
    assert first is not None and second is not None
    assert (first.user_text, first.model_text) == (["q1"], ["a1"])
    assert (second.user_text, second.model_text) == (["q2"], ["a2"])
    assert c.ledger.turn_complete() is None  # nothing left to answer


def test_a_turn_nobody_asked_for_keeps_its_place_in_history() -> None:
    c = per_turn_client()
    c.send(ask("book a table"))
    c.turn("Booking it now.")
    # A NON_BLOCKING result makes the model speak again, with no question of ours behind it;
    # no handle came between the two turns (a call was running).
    c.ledger.model_output("Good news: booked.")
    assert c.ledger.turn_complete() is None
    plan = c.connect(have_handle=False)  # a fresh session restores everything, in order
    assert plan.history is not None
    assert plan.history["clientContent"]["turns"][-3:] == [
        user("book a table"),
        model("Booking it now."),
        model("Good news: booked."),
    ]


def test_a_lost_turn_forgets_its_partial_answer() -> None:
    c = per_turn_client()
    c.send(ask("q1"))
    c.ledger.model_output("half an ans")
    plan = c.connect(have_handle=True, lost=True)
    assert plan.messages == [ask("q1")]
    exchange = c.turn("the whole answer")
    assert exchange is not None
    assert exchange.model_text == ["the whole answer"]


# -- learning the handle mode -----------------------------------------------------------------


def test_a_second_resumable_update_on_one_connection_means_per_turn() -> None:
    c = Client()
    c.handle()
    assert c.ledger.mode is HandleMode.UNKNOWN
    c.handle(resumable=False)  # `{}` while busy does not count
    assert c.ledger.mode is HandleMode.UNKNOWN
    c.handle()
    assert c.ledger.mode is HandleMode.PER_TURN


def test_one_update_per_connection_teaches_nothing() -> None:
    c = Client()
    for _ in range(3):
        c.handle()
        c.connect(have_handle=True)
    assert c.ledger.mode is HandleMode.UNKNOWN


def test_more_output_with_no_update_since_an_idle_end_means_once() -> None:
    """A per-turn service sends its handle right after an idle turnComplete, before anything
    else: output of the next turn with no update between shows one handle per connection."""
    c = Client()
    c.handle()
    c.send(ask("q1"))
    c.turn("a1")
    assert c.ledger.mode is HandleMode.UNKNOWN
    c.send(ask("q2"))
    c.ledger.model_output("a2")
    assert c.ledger.mode is HandleMode.ONCE
    c.ledger.turn_complete()
    assert c.ledger.mode is HandleMode.ONCE


def test_a_goaway_with_no_update_since_an_idle_end_means_once() -> None:
    c = Client()
    c.handle()
    c.send(ask("q1"))
    c.turn("a1")
    c.ledger.go_away()
    assert c.ledger.mode is HandleMode.ONCE
    # Kept across reconnects: the next connection plans as a once-mode one.
    c.connect(have_handle=True)
    assert c.ledger.mode is HandleMode.ONCE


def test_a_goaway_after_the_post_turn_handle_teaches_nothing() -> None:
    c = Client()
    c.handle()
    c.send(ask("q1"))
    c.turn("a1")
    c.handle()
    c.ledger.go_away()
    assert c.ledger.mode is HandleMode.PER_TURN


def test_a_turn_that_ended_with_a_call_running_is_no_evidence_of_once() -> None:
    # A per-turn service sends no handle while a NON_BLOCKING call runs.
    c = Client()
    c.handle()
    c.send(ask("q1"))
    c.ledger.model_output("on it")
    c.ledger.turn_complete(calls_running=True)
    c.ledger.model_output("result is in")
    c.ledger.turn_complete()
    assert c.ledger.mode is HandleMode.UNKNOWN


def test_per_turn_evidence_corrects_a_once_guess() -> None:
    c = once_client()
    c.handle()
    c.handle()
    assert c.ledger.mode is HandleMode.PER_TURN


@pytest.mark.parametrize("resumable", [True, False])
def test_only_a_resumable_update_after_the_turn_is_no_evidence_of_once(resumable: bool) -> None:
    """The 3.x service sends updates unasked, some not resumable: only a resumable one at
    the idle point shows that handles come per turn."""
    c = Client()
    c.handle()
    c.send(ask("q1"))
    c.turn("a1")
    c.handle(resumable=resumable)
    c.send(ask("q2"))
    c.turn("a2")
    assert c.ledger.mode is (HandleMode.PER_TURN if resumable else HandleMode.ONCE)


def test_no_handle_on_this_connection_is_no_evidence_of_once() -> None:
    c = Client()
    c.send(ask("q1"))
    c.turn("a1")
    c.send(ask("q2"))
    c.turn("a2")
    assert c.ledger.mode is HandleMode.UNKNOWN


def test_a_consumed_index_means_transparent_and_overrides_what_was_learned() -> None:
    c = per_turn_client()
    c.ledger.consumed_index(0)
    assert c.ledger.mode is HandleMode.TRANSPARENT
    c.handle()
    c.send(ask("q"))
    c.turn("a")
    c.send(ask("q2"))
    c.turn("a2")
    assert c.ledger.mode is HandleMode.TRANSPARENT


def test_a_learned_mode_sticks() -> None:
    c = per_turn_client()
    c.send(ask("q1"))
    c.turn("a1")
    c.send(ask("q2"))
    c.turn("a2")  # two turns with no update between: would mean ONCE for an unknown service
    assert c.ledger.mode is HandleMode.PER_TURN


# -- coverage ---------------------------------------------------------------------------------


def test_per_turn_handle_covers_answered_exchanges_up_to_the_last_completed_turn() -> None:
    c = per_turn_client()
    c.send(ask("q1"))
    c.turn("a1")
    c.send(ask("q2"))  # asked, not answered yet
    c.handle()
    assert [e.user_text for e in c.ledger.exchanges] == [["q2"]]
    assert list(c.ledger.transcript)[-2:] == [user("q1"), model("a1")]
    c.turn("a2")
    assert len(c.ledger.exchanges) == 1  # answered, but no handle covers it yet
    c.handle()
    assert not c.ledger.exchanges
    assert list(c.ledger.transcript) == [
        user("q0"),
        model("a0"),
        user("q1"),
        model("a1"),
        user("q2"),
        model("a2"),
    ]


def test_a_handle_covers_only_turns_completed_on_its_own_connection() -> None:
    c = per_turn_client()
    c.send(ask("q1"))
    c.turn("a1")
    plan = c.connect(have_handle=True, lost=True)  # dropped before the post-turn handle
    assert plan.history == history_message([user("q1"), model("a1")])
    c.handle()  # issued right after setup, before the service read the history
    assert [e.user_text for e in c.ledger.exchanges] == [["q1"]]
    c.send(ask("q2"))
    c.turn("a2")
    c.handle()  # now the history and q2 are both behind the handle
    assert not c.ledger.exchanges


def test_transcript_is_bounded_by_its_limit_oldest_first_out() -> None:
    c = Client(InputLedger(transcript_limit=3))
    c.handle()
    for i in range(1, 4):
        c.send(ask(f"q{i}"))
        c.turn(f"a{i}")
        c.handle()
    assert list(c.ledger.transcript) == [model("a2"), user("q3"), model("a3")]
    plan = c.connect(have_handle=False, lost=True)
    assert plan.history == history_message([model("a2"), user("q3"), model("a3")])


def test_transcript_limit_bounds_a_long_conversation() -> None:
    c = Client(InputLedger(transcript_limit=50))
    c.handle()
    for i in range(100):
        c.send(ask(f"q{i}"))
        c.turn(f"a{i}")
        c.handle()
    assert len(c.ledger.transcript) == 50
    assert list(c.ledger.transcript)[-1] == model("a99")


# -- transparent resumption (docs/protocol.md, "Transparent resumption") -----------------------


def test_transparent_replay_follows_the_documented_example() -> None:
    ctx = context("ctx")
    chunk_c, chunk_d = encode.realtime_audio(b"\x0c\x00"), encode.realtime_audio(b"\x0d\x00")
    c = Client()  # connection A: setup is index 0
    c.handle()  # index absent: 0
    assert c.send(AUDIO) is not None  # 1
    c.send(AUDIO)  # 2
    c.send(ctx)  # 3
    c.ledger.consumed_index(2)
    assert c.ledger.mode is HandleMode.TRANSPARENT
    (exchange,) = c.ledger.exchanges
    assert [m for _, m in exchange.inputs] == [ctx]
    c.send(chunk_c)  # 4
    assert c.ledger.handoff_ready  # nothing was asked: switching loses and repeats nothing
    plan = c.connect(have_handle=True)  # connection B
    assert plan.resume and plan.history is None and not plan.prompt_continue
    assert plan.messages == [ctx, chunk_c]  # indices 1 and 2 on B
    c.send(chunk_d)  # 3 on B
    c.ledger.consumed_index(1)  # B consumed its first message only
    assert [m for _, m in exchange.inputs] == [chunk_c, chunk_d]
    c.ledger.consumed_index(3)
    assert exchange.inputs == []
    again = c.connect(have_handle=True, lost=True)
    assert again.messages == []


def test_transparent_indices_restart_on_every_connection() -> None:
    c = Client()
    c.ledger.consumed_index(0)
    c.send(ask("q1"))  # index 1 on A
    c.send(ask("q2"))  # index 2 on A
    plan = c.connect(have_handle=True, lost=True)
    assert plan.messages == [ask("q1"), ask("q2")]
    # On the new connection index 1 is the replayed q1, not A's q1 (gone) or anything else.
    c.ledger.consumed_index(1)
    assert [[m for _, m in e.inputs] for e in c.ledger.exchanges] == [[], [ask("q2")]]
    assert c.connect(have_handle=True, lost=True).messages == [ask("q2")]


def test_transparent_answered_and_consumed_exchanges_are_covered() -> None:
    c = Client()
    c.handle()
    c.send(ask("q1"))  # 1
    c.turn("a1")
    c.ledger.consumed_index(1)
    assert not c.ledger.exchanges
    assert list(c.ledger.transcript) == [user("q1"), model("a1")]
    c.send(ask("q2"))  # 2
    c.turn("a2")
    plan = c.connect(have_handle=True, lost=True)  # before the index said 2
    assert plan.resume
    assert plan.history == history_message([user("q2"), model("a2")])
    assert plan.replay == ()
    c.ledger.consumed_index(1)  # the history message on the new connection
    assert not c.ledger.exchanges


def test_transparent_handoff_waits_only_for_answers() -> None:
    c = Client()
    c.ledger.consumed_index(0)
    c.send(ask("q1"))
    assert not c.ledger.handoff_ready
    c.turn("a1")
    assert c.ledger.handoff_ready  # answered; the plan restores it if the index lags


# -- handoff_ready ----------------------------------------------------------------------------


def test_per_turn_handoff_waits_for_the_covering_handle() -> None:
    c = per_turn_client()
    assert c.ledger.handoff_ready
    c.send(AUDIO)
    assert c.ledger.handoff_ready  # open streamed input is simply sent again
    c.send(ask("q1"))
    assert not c.ledger.handoff_ready
    c.turn("a1")
    assert not c.ledger.handoff_ready  # answered but not yet behind a handle
    c.handle()
    assert c.ledger.handoff_ready


def test_unknown_mode_handoff_waits_for_the_covering_handle() -> None:
    c = Client()
    c.handle()
    c.send(ask("q1"))
    c.turn("a1")
    assert not c.ledger.handoff_ready
    c.handle()
    assert c.ledger.handoff_ready


def test_once_handoff_waits_only_for_answers() -> None:
    c = once_client()
    c.send(ask("q2"))
    assert not c.ledger.handoff_ready
    c.ledger.model_output("a2")
    assert not c.ledger.handoff_ready
    c.ledger.turn_complete()
    assert c.ledger.handoff_ready


# -- plans ------------------------------------------------------------------------------------


def test_first_connection_plan_is_empty_and_fresh() -> None:
    ledger = InputLedger()
    ledger.new_connection()
    plan = ledger.plan(have_handle=False)
    assert plan == ResumePlan(resume=False)
    assert plan.messages == []


def test_plan_messages_are_history_then_replay_then_continue() -> None:
    history = history_message([user("q"), model("a")])
    plan = ResumePlan(resume=True, history=history, replay=(AUDIO, ask("x")), prompt_continue=True)
    assert plan.messages == [history, AUDIO, ask("x"), CONTINUE]
    assert "turnComplete" not in history["clientContent"]
    assert "q" not in repr(plan)  # contents stay out of reprs


def test_without_a_handle_the_plan_restores_transcript_answers_and_replays_questions() -> None:
    c = per_turn_client()
    c.send(ask("q1"))
    c.turn("a1")  # answered, not covered
    c.send(context("ctx"))
    c.send(ask("q2"))  # unanswered
    c.send(AUDIO)  # open
    plan = c.connect(have_handle=False, lost=True)
    assert not plan.resume
    assert plan.history == history_message([user("q0"), model("a0"), user("q1"), model("a1")])
    assert plan.replay == (context("ctx"), ask("q2"), AUDIO)
    assert not plan.prompt_continue


def test_per_turn_drop_at_every_point_of_one_exchange() -> None:
    """The plan after a drop at each point of q1's life, and then q1 answered exactly once."""
    q1 = ask("q1")
    expected = [
        # (steps before the drop, history expected, replay expected)
        (0, None, (q1,)),  # sent, not read
        (1, None, (q1,)),  # part of the answer arrived
        (2, history_message([user("q1"), model("a1")]), ()),  # turn complete, no handle
        (3, None, ()),  # the handle covers it
    ]
    for steps, history, replay in expected:
        c = per_turn_client()
        c.send(q1)
        walk = [
            lambda c=c: c.ledger.model_output("a"),
            lambda c=c: c.turn("1"),
            lambda c=c: c.handle(),
        ]
        for action in walk[:steps]:
            action()
        plan = c.connect(have_handle=True, lost=True)
        assert plan.resume, steps
        assert plan.history == history, steps
        assert plan.replay == replay, steps
        assert not plan.prompt_continue
        answered = [e for e in [c.turn("a1")] if e is not None] if replay else []
        c.handle()
        c.send(ask("q2"))
        c.turn("a2")
        c.handle()
        assert [e.user_text for e in answered] == ([["q1"]] if replay else [])
        transcript = list(c.ledger.transcript)
        assert transcript.count(user("q1")) == 1, (steps, transcript)
        assert transcript[-4:] == [user("q1"), model("a1"), user("q2"), model("a2")]


def test_unknown_mode_with_answers_starts_fresh_even_with_a_handle() -> None:
    c = Client()
    c.handle()
    c.send(ask("q1"))
    c.turn("a1")
    plan = c.connect(have_handle=True, lost=True)
    assert not plan.resume
    assert plan.history == history_message([user("q1"), model("a1")])


def test_once_mode_continues_a_started_turn_instead_of_asking_again() -> None:
    c = once_client()
    c.send(ask("q2"))
    c.ledger.model_output("half")
    c.send(AUDIO)  # streamed after the question: open, sent again
    plan = c.connect(have_handle=True, lost=True)
    assert plan.resume
    assert plan.history is None
    assert plan.replay == (AUDIO,)
    assert plan.prompt_continue
    assert plan.messages == [AUDIO, CONTINUE]
    exchange = c.turn("whole answer")
    assert exchange is not None and exchange.user_text == ["q2"]
    assert exchange.model_text == ["whole answer"]


def test_once_mode_starts_fresh_when_a_question_got_no_output() -> None:
    c = once_client()
    c.send(ask("q2"))  # did the service read it? Nothing says.
    plan = c.connect(have_handle=True, lost=True)
    assert not plan.resume
    assert plan.history == history_message([user("q0"), model("a0"), user("q1"), model("a1")])
    assert plan.replay == (ask("q2"),)


def test_once_mode_answered_exchanges_are_not_restored() -> None:
    c = once_client()
    c.send(ask("q2"))
    c.turn("a2")
    plan = c.connect(have_handle=True, lost=True)
    assert plan == ResumePlan(resume=True)


def test_tool_responses_are_never_replayed() -> None:
    c = per_turn_client()
    c.send(ask("What is the weather?"))
    c.ledger.model_output()  # the toolCall
    c.send(tool_response())
    c.ledger.model_output("Sunny")
    for have_handle in (True, False):
        plan = c.connect(have_handle=have_handle, lost=True)
        assert plan.replay == (ask("What is the weather?"),)
        assert all("toolResponse" not in m for m in plan.messages)


def test_plan_messages_take_client_indices_one_to_k() -> None:
    c = per_turn_client()
    c.send(ask("q1"))
    c.turn("a1")  # -> history (index 1)
    c.send(ask("q2"))  # -> replay (index 2)
    c.send(ask("q3"))  # -> replay (index 3)
    c.ledger.consumed_index(0)  # switch to transparent: trimming by index from here on
    plan = c.connect(have_handle=True, lost=True)
    assert plan.messages == [history_message([user("q1"), model("a1")]), ask("q2"), ask("q3")]
    c.ledger.consumed_index(2)  # the history and q2 on the new connection
    # The service holds the restored answer now: it is covered, and q2 needs no replay.
    assert list(c.ledger.transcript)[-2:] == [user("q1"), model("a1")]
    plan = c.connect(have_handle=True, lost=True)
    assert plan.history is None
    assert plan.replay == (ask("q3"),)


def test_a_refused_connect_leaves_the_plan_intact_for_the_next_attempt() -> None:
    c = per_turn_client()
    c.send(ask("q1"))
    c.turn("a1")
    c.send(ask("q2"))
    first = c.connect(have_handle=True, lost=True)
    # The connect failed before anything was sent: the next attempt plans the same.
    second = c.connect(have_handle=True, lost=True)
    assert second == first
    assert second.messages == [history_message([user("q1"), model("a1")]), ask("q2")]


# -- sweeps against the model service ---------------------------------------------------------


def _sequential(n: int) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for i in range(1, n + 1):
        out += [("ask", f"q{i}"), ("deliver",), ("step",), ("step",)]
    return out


def _burst() -> list[tuple[str, ...]]:
    return [
        ("ask", "q1"),
        ("ask", "q2"),
        ("deliver",),
        ("deliver",),
        ("step",),
        ("step",),
        ("ask", "q3"),
        ("step",),
        ("step",),
        ("deliver",),
        ("step",),
        ("step",),
    ]


SCRIPTS = {"sequential": _sequential(3), "burst": _burst()}


def _play(d: Driver, actions: list[tuple[str, ...]]) -> None:
    for action in actions:
        if action[0] == "ask":
            d.ask(action[1])
        elif action[0] == "deliver":
            if d.in_flight:
                d.deliver()
        else:
            d.step()
        d.check_no_duplicate_input()


def _fault(d: Driver, fault: str) -> None:
    if fault == "drop":
        d.drop()
    elif fault == "refused":
        d.drop(refused=2)
    elif fault == "drop_twice":
        d.drop()
        d.drop()
    elif fault == "expired":
        d.server.expire()
        d.drop()
    elif fault == "go_away":
        d.go_away()
    else:  # pragma: no cover
        raise AssertionError(fault)


def _sweep_cases(modes: tuple[str, ...]) -> list[Any]:
    cases = []
    for mode in modes:
        for name, script in SCRIPTS.items():
            for fault in ("drop", "refused", "drop_twice", "expired", "go_away"):
                for point in range(len(script) + 1):
                    cases.append(
                        pytest.param(mode, name, fault, point, id=f"{mode}-{name}-{fault}-{point}")
                    )
    return cases


@pytest.mark.parametrize(
    ("mode", "script", "fault", "point"), _sweep_cases(("per_turn", "transparent"))
)
def test_a_fault_at_any_point_loses_and_doubles_nothing(
    mode: Any, script: str, fault: str, point: int
) -> None:
    d = Driver(ModelServer(mode))
    actions = SCRIPTS[script]
    _play(d, actions[:point])
    _fault(d, fault)
    d.check_no_duplicate_input()
    _play(d, actions[point:])
    d.ask("last")
    d.settle()
    d.check_settled()


@pytest.mark.parametrize(("mode", "script", "fault", "point"), _sweep_cases(("once",)))
def test_a_fault_at_any_point_once_the_once_mode_is_known(
    mode: Any, script: str, fault: str, point: int
) -> None:
    d = Driver(ModelServer(mode))
    d.ask("p1")
    d.settle()
    d.ask("p2")
    d.settle()
    assert d.ledger.mode is HandleMode.ONCE
    actions = SCRIPTS[script]
    _play(d, actions[:point])
    _fault(d, fault)
    d.check_no_duplicate_input()
    _play(d, actions[point:])
    d.ask("last")
    d.settle()
    d.check_settled()


def test_a_long_conversation_through_a_fault_at_every_turn() -> None:
    d = Driver(ModelServer("per_turn"))
    faults = ["drop", "refused", "drop_twice", "go_away"]
    for i in range(40):
        d.ask(f"q{i}")
        if d.in_flight and i % 2:
            d.deliver()
        if i % 3 == 0:
            d.step()
        _fault(d, faults[i % len(faults)])
        d.check_no_duplicate_input()
    d.settle()
    d.check_settled()
    assert len(d.questions) == 40


# -- known bugs (lead to fix in ledger.py) ----------------------------------------------------


def test_unknown_mode_never_replays_a_question_the_service_may_have_read() -> None:
    c = Client()
    c.handle()  # the one handle of a once-mode service, or the first of a per-turn one
    c.send(ask("q1"))
    c.ledger.model_output("a")  # the service read q1 and began to answer
    plan = c.connect(have_handle=True, lost=True)
    # A per-turn handle lacks q1 but a once-mode handle has it: only a fresh session is safe.
    assert not plan.resume
    assert plan.replay == (ask("q1"),)


@pytest.mark.parametrize("output_seen", [False, True])
def test_a_once_service_is_not_asked_twice_before_its_mode_is_known(output_seen: bool) -> None:
    d = Driver(ModelServer("once"))
    d.ask("q1")
    d.deliver()
    if output_seen:
        d.step()
    assert d.ledger.mode is HandleMode.UNKNOWN
    d.drop()
    d.settle()
    d.check_settled()


def test_a_restored_transcript_survives_a_drop_before_the_next_turn() -> None:
    d = Driver(ModelServer("per_turn"))
    d.ask("q1")
    d.settle()
    d.server.expire()  # the handle is refused: fresh session, transcript restored
    plan = d.drop()
    assert not plan.resume and plan.history is not None
    d.settle()
    assert d.server.state is not None and d.server.state.user_entries() == ["q1"]
    d.drop()  # before any turn on the fresh session
    plan = d.plans[-1]
    assert plan.history == history_message([user("q1"), model(answer("q1"))]) or not plan.resume
    d.ask("q2")
    d.settle()
    d.check_settled()


def test_back_to_back_questions_do_not_make_a_per_turn_service_look_once() -> None:
    d = Driver(ModelServer("per_turn", busy_update=False))
    d.ask("q1")
    d.ask("q2")
    d.deliver()
    d.deliver()
    d.step()
    d.step()  # q1 answered; the service goes straight on to q2: not idle, no handle
    d.step()  # q2's answer begins
    assert d.ledger.mode is not HandleMode.ONCE
    d.drop()
    d.settle()
    d.check_settled()


def test_audio_stream_end_after_a_vad_answer_asks_for_nothing() -> None:
    c = per_turn_client()
    c.send(AUDIO)
    c.ledger.input_transcript("hello")
    spoken = c.turn("hi there")  # server-side VAD answered the utterance
    assert spoken is not None and spoken.contents() == [user("hello"), model("hi there")]
    c.handle()
    c.send(encode.audio_stream_end())  # the user closed the microphone
    c.send(ask("q"))
    answered = c.turn("answer to q")
    assert answered is not None and answered.user_text == ["q"]
    c.handle()
    assert c.ledger.handoff_ready
    assert c.connect(have_handle=True, lost=True).messages == []


def test_a_replayed_utterance_is_not_transcribed_twice_in_history() -> None:
    c = per_turn_client()
    c.send(AUDIO)
    c.send(encode.audio_stream_end())
    c.ledger.input_transcript("hello")
    c.ledger.model_output("hi")  # cut off
    plan = c.connect(have_handle=True, lost=True)
    assert plan.replay == (AUDIO, encode.audio_stream_end())
    c.ledger.input_transcript("hello")  # the service transcribes the replayed audio again
    exchange = c.turn("hi there")
    assert exchange is not None
    assert exchange.contents() == [user("hello"), model("hi there")]


# -- bounded replay: realtime media older than the replay window is trimmed --------------------


def chunk(n: int) -> dict[str, Any]:
    """100 ms of 16 kHz PCM silence, made distinct by ``n``."""
    return encode.realtime_audio(n.to_bytes(4, "little") + bytes(3196), rate=16000)


def held(ledger: InputLedger) -> list[dict[str, Any]]:
    return [m for e in ledger.exchanges for _, m in e.inputs]


def stream(c: Client, start: float, seconds: float, *, first: int = 0) -> float:
    """Send a chunk every 100 ms for ``seconds`` from ``start``; returns the time after."""
    count = round(seconds * 10)
    for n in range(count):
        c.index += 1
        c.ledger.sent(chunk(first + n), c.index, start + n / 10)
    return start + count / 10


def test_a_silent_stream_keeps_only_the_replay_window() -> None:
    c = Client(InputLedger(replay_window=15.0))
    stream(c, 0.0, 600.0)  # ten minutes of microphone silence: no turn ever
    kept = held(c.ledger)
    # What was sent in the last 15 s (and the chunk at its edge): bounded, the newest kept.
    assert 150 <= len(kept) <= 151
    assert kept[-1] == chunk(5999)
    assert c.ledger.trimmed == 6000 - len(kept)


def test_the_window_is_measured_from_the_newest_media_not_the_clock() -> None:
    c = Client(InputLedger(replay_window=15.0))
    now = stream(c, 0.0, 10.0)
    # Nothing is sent for a minute: the ten seconds of stream are all still held.
    assert c.ledger.trimmed == 0
    stream(c, now + 60.0, 0.1, first=100)
    assert c.ledger.trimmed == 100
    assert held(c.ledger) == [chunk(100)]


def test_text_client_content_and_markers_are_never_trimmed() -> None:
    c = Client(InputLedger(replay_window=15.0))
    c.index += 1
    c.ledger.sent(encode.activity_start(), c.index, 0.0)
    c.index += 1
    c.ledger.sent(context("some context"), c.index, 0.5)
    c.index += 1
    c.ledger.sent(encode.realtime_video(b"\xff\xd8 frame"), c.index, 0.6)
    now = stream(c, 1.0, 60.0)
    c.ledger.sent(encode.tool_response([]), c.index + 1, now)  # joins no exchange
    kept = held(c.ledger)
    assert kept[:2] == [encode.activity_start(), context("some context")]
    assert encode.realtime_video(b"\xff\xd8 frame") not in kept  # video is media too
    assert 150 <= len(kept) - 2 <= 151
    assert c.ledger.trimmed == 1 + 600 - (len(kept) - 2)


def test_a_replay_sends_the_window_and_reports_what_it_lacks_once() -> None:
    c = per_turn_client()
    c.ledger.replay_window = 15.0
    stream(c, 100.0, 60.0)
    plan = c.connect(have_handle=True, lost=True)
    assert plan.resume
    assert 150 <= len(plan.replay) <= 151
    assert plan.replay[-1] == chunk(599)
    assert plan.trimmed == 600 - len(plan.replay)
    assert plan.trimmed_seconds == pytest.approx(plan.trimmed / 10)
    # A second reconnect replays the same window and has nothing new to report.
    again = c.connect(have_handle=True, lost=True)
    assert again.replay == plan.replay
    assert (again.trimmed, again.trimmed_seconds) == (0, 0.0)


def test_trimmed_media_an_answer_covered_is_not_reported() -> None:
    c = per_turn_client()
    c.ledger.replay_window = 15.0
    stream(c, 100.0, 60.0)
    c.ledger.input_transcript("hello")
    assert c.turn("hi") is not None  # server-side VAD answered the stream
    plan = c.connect(have_handle=True, lost=True)  # answered, not yet covered: history
    assert plan.replay == ()
    assert (plan.trimmed, plan.trimmed_seconds) == (0, 0.0)
    assert c.ledger.trimmed == 600 - 151 or c.ledger.trimmed == 600 - 150


def test_the_default_window_is_fifteen_seconds_and_infinity_keeps_everything() -> None:
    assert InputLedger().replay_window == 15.0
    c = Client(InputLedger(replay_window=float("inf")))
    stream(c, 0.0, 120.0)
    assert len(held(c.ledger)) == 1200 and c.ledger.trimmed == 0


def test_per_chunk_work_does_not_grow_with_the_ledger() -> None:
    """Model output, the answering exchange, ``outstanding`` and ``handoff_ready`` cost the
    same whether the ledger holds ten exchanges or twenty thousand (answered, no handle yet)."""
    import time

    def build(exchanges: int) -> InputLedger:
        c = Client()
        for n in range(exchanges):
            c.send(ask(f"q{n}"))
            c.turn(f"a{n}")
        c.send(ask("the question being answered"))
        return c.ledger

    def cost(ledger: InputLedger) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(2000):
                ledger.model_output("x")
                ledger.answering()
                _ = ledger.outstanding
                _ = ledger.handoff_ready
            best = min(best, time.perf_counter() - start)
        return best

    small, large = build(10), build(20_000)
    assert len(large.exchanges) == 20_001
    assert cost(large) < 5 * cost(small) + 0.005
